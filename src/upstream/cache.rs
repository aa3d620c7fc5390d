//! The on-disk cache shared by builds (`--apk-cache-dir`).
//!
//! ```text
//! <cache>/packages/<hex SHA-1 of the control member>.apk   (C: identity)
//! <cache>/indexes/<hex SHA-256 of URL, 32 digits>/APKINDEX.tar.gz + meta
//! <cache>/keys/<hex SHA-256 of URL, 32 digits>/key + meta
//! ```
//!
//! Packages are keyed by what the index pins, so one file serves every
//! repository and mirror listing the same package, and nothing is stored
//! under a key it does not match: files are checked in a temp file beside
//! their final place and only then renamed there. `meta` records the URL,
//! the SHA-256 of the file it describes (a meta left from an older copy is
//! ignored rather than trusted), and the ETag / Last-Modified to revalidate.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::http::Validators;
use super::UpstreamError;

/// Largest `meta` file read.
const MAX_META: u64 = 16 * 1024;

pub struct Cache {
    root: PathBuf,
}

/// What `meta` says about a cached URL.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Meta {
    pub url: String,
    pub sha256: String,
    pub validators: Validators,
}

impl Meta {
    fn render(&self) -> String {
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        let mut out = format!("url {}\nsha256 {}\n", clean(&self.url), self.sha256);
        if let Some(e) = &self.validators.etag {
            out.push_str(&format!("etag {}\n", clean(e)));
        }
        if let Some(m) = &self.validators.last_modified {
            out.push_str(&format!("last-modified {}\n", clean(m)));
        }
        out
    }

    fn parse(text: &str) -> Meta {
        let mut m = Meta::default();
        for line in text.lines() {
            let (k, v) = line.split_once(' ').unwrap_or((line, ""));
            match k {
                "url" => m.url = v.to_string(),
                "sha256" => m.sha256 = v.to_string(),
                "etag" => m.validators.etag = Some(v.to_string()),
                "last-modified" => m.validators.last_modified = Some(v.to_string()),
                _ => {}
            }
        }
        m
    }
}

/// SHA-256 of a file, hex.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

impl Cache {
    pub fn open(root: &Path) -> Result<Cache, UpstreamError> {
        for sub in ["packages", "indexes", "keys"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|source| UpstreamError::Io {
                what: "creating cache directory",
                path: d,
                source,
            })?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the package whose control member hashes to `sha1` is kept.
    pub fn package_path(&self, sha1: &[u8; 20]) -> PathBuf {
        self.root
            .join("packages")
            .join(format!("{}.apk", hex::encode(sha1)))
    }

    /// The directory for one URL's copy (`kind`: `indexes`, `keys`).
    pub fn url_dir(&self, kind: &str, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        self.root.join(kind).join(hex::encode(&digest[..16]))
    }

    /// The validators of `file`, when `meta` beside it describes exactly
    /// that file for `url`.
    pub fn validators(&self, dir: &Path, file: &Path, url: &str) -> Option<Validators> {
        let f = fs::File::open(dir.join("meta")).ok()?;
        let mut text = String::new();
        f.take(MAX_META).read_to_string(&mut text).ok()?;
        let meta = Meta::parse(&text);
        let sha = file_sha256(file).ok()?;
        (meta.url == url && meta.sha256 == sha).then_some(meta.validators)
    }

    /// Record what the server said about the file now at `file`.
    pub fn write_meta(
        &self,
        dir: &Path,
        file: &Path,
        url: &str,
        validators: Validators,
    ) -> io::Result<()> {
        let meta = Meta {
            url: url.to_string(),
            sha256: file_sha256(file)?,
            validators,
        };
        crate::atomic::write(&dir.join("meta"), 0o644, meta.render().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_keyed_by_control_sha1_and_urls_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        let mut sha1 = [0u8; 20];
        sha1[0] = 0xab;
        sha1[19] = 0x01;
        assert_eq!(
            c.package_path(&sha1),
            dir.path()
                .join("packages/ab00000000000000000000000000000000000001.apk")
        );
        let a = c.url_dir("indexes", "https://x.org/os/x86_64/APKINDEX.tar.gz");
        let b = c.url_dir("indexes", "https://x.org/os/aarch64/APKINDEX.tar.gz");
        assert_ne!(a, b);
        assert_eq!(a.parent().unwrap(), dir.path().join("indexes"));
        assert_eq!(a.file_name().unwrap().len(), 32);
        assert_eq!(
            a,
            c.url_dir("indexes", "https://x.org/os/x86_64/APKINDEX.tar.gz")
        );
        for sub in ["packages", "indexes", "keys"] {
            assert!(dir.path().join(sub).is_dir(), "{sub}");
        }
    }

    #[test]
    fn validators_are_used_only_for_the_file_and_url_they_describe() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::open(dir.path()).unwrap();
        let d = c.url_dir("indexes", "http://h/r");
        fs::create_dir_all(&d).unwrap();
        let file = d.join("APKINDEX.tar.gz");
        fs::write(&file, b"one").unwrap();
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
        };
        c.write_meta(&d, &file, "http://h/r", v.clone()).unwrap();
        assert_eq!(c.validators(&d, &file, "http://h/r"), Some(v));
        assert_eq!(c.validators(&d, &file, "http://other/r"), None);
        fs::write(&file, b"two").unwrap();
        assert_eq!(c.validators(&d, &file, "http://h/r"), None, "stale meta");
    }
}
