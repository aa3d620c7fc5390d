//! Getting one package file, checked against the record that named it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hex::FromHex;

use crate::apk::index::IndexEntry;
use crate::apk::read::{self, ReadError};

use super::http::Got;
use super::spec::safe_component;
use super::{persist, temp_in, Client, RepoSpec, UpstreamError};

/// What the record promises about the file.
struct Expect<'a> {
    name: &'a str,
    version: &'a str,
    sha1: [u8; 20],
    size: u64,
}

impl Expect<'_> {
    fn label(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    fn checksum_field(&self) -> String {
        format!("Q1{}", BASE64.encode(self.sha1))
    }
}

/// The index's `C:` (`Q1` + base64) or 40 hex digits, as 20 bytes.
pub(super) fn parse_checksum(s: &str) -> Option<[u8; 20]> {
    let s = s.trim();
    if let Some(b64) = s.strip_prefix("Q1") {
        return BASE64.decode(b64).ok()?.try_into().ok();
    }
    <[u8; 20]>::from_hex(s).ok()
}

/// Size, then `C:`, name and version, then `datahash` over the data member
/// (and the per-file checksums `read_data` checks on the way).
fn check(path: &Path, want: &Expect) -> Result<(), String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len != want.size {
        return Err(format!(
            "file is {len} bytes, the record says {}",
            want.size
        ));
    }
    let ctl = read::read_control(path).map_err(|e| e.to_string())?;
    if ctl.control_sha1 != want.sha1 {
        return Err(format!(
            "control member hashes to C:Q1{}, the record says C:{}",
            BASE64.encode(ctl.control_sha1),
            want.checksum_field()
        ));
    }
    if ctl.pkginfo.name != want.name || ctl.pkginfo.version != want.version {
        return Err(format!(
            "holds {}-{}",
            ctl.pkginfo.name, ctl.pkginfo.version
        ));
    }
    read::read_data(path, &ctl, |_, _| Ok::<(), ReadError>(())).map_err(|e| e.to_string())?;
    Ok(())
}

pub(super) fn fetch(
    client: &Client,
    repo: &RepoSpec,
    arch: &str,
    entry: &IndexEntry,
) -> Result<PathBuf, UpstreamError> {
    let info = &entry.info;
    let file_arch = match info.arch.as_str() {
        "" | "noarch" => arch,
        a => a,
    };
    let bad = |problem: String| UpstreamError::BadPackage {
        package: format!("{}-{}", info.name, info.version),
        repo: repo.url.clone(),
        problem,
    };
    for (what, v) in [
        ("arch", file_arch),
        ("name", &info.name),
        ("version", &info.version),
    ] {
        if !safe_component(v) {
            return Err(bad(format!(
                "the record's {what} `{}` cannot be part of a file name",
                v.escape_debug()
            )));
        }
    }
    let url = repo.join(&format!("{file_arch}/{}-{}.apk", info.name, info.version));
    let want = Expect {
        name: &info.name,
        version: &info.version,
        sha1: entry.control_sha1,
        size: entry.file_size,
    };
    get(client, &url, &repo.url, &want)
}

pub(super) fn fetch_pinned(
    client: &Client,
    url: &str,
    name: &str,
    version: &str,
    checksum: &str,
    size: u64,
) -> Result<PathBuf, UpstreamError> {
    let bad = |problem: String| UpstreamError::BadPackage {
        package: format!("{name}-{version}"),
        repo: url.to_string(),
        problem,
    };
    let sha1 = parse_checksum(checksum).ok_or_else(|| {
        bad(format!(
            "checksum `{checksum}` is neither Q1<base64 SHA-1> nor 40 hex digits"
        ))
    })?;
    if !safe_component(name) || !safe_component(version) {
        return Err(bad("name or version cannot be part of a file name".into()));
    }
    let want = Expect {
        name,
        version,
        sha1,
        size,
    };
    get(client, url, url, &want)
}

fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(p) = url.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    (!url.contains("://")).then(|| PathBuf::from(url))
}

/// The cached, checked copy of the package at `url`.
fn get(client: &Client, url: &str, repo: &str, want: &Expect) -> Result<PathBuf, UpstreamError> {
    let bad = |problem: String| UpstreamError::BadPackage {
        package: want.label(),
        repo: repo.to_string(),
        problem,
    };
    let dest = client.cache.package_path(&want.sha1);
    if dest.is_file() {
        // Re-checked: the cache is shared and lives long.
        if check(&dest, want).is_ok() {
            return Ok(dest);
        }
        let _ = std::fs::remove_file(&dest);
    }
    let dir = dest.parent().unwrap_or(client.cache.root()).to_path_buf();
    let mut tmp = temp_in(&dir)?;
    match local_path(url) {
        Some(src) => copy_local(&src, url, want.size, tmp.as_file_mut())?,
        None if client.offline => {
            return Err(UpstreamError::Offline {
                url: url.to_string(),
                cache: dest,
            })
        }
        None => {
            let got = client.http.get(url, None, want.size, tmp.as_file_mut())?;
            debug_assert!(matches!(got, Got::Body(_)));
            client.downloads.fetch_add(1, Ordering::SeqCst);
        }
    }
    check(tmp.path(), want).map_err(|p| bad(format!("{p} ({url})")))?;
    persist(tmp, &dest)?;
    Ok(dest)
}

/// Copy at most `size + 1` bytes (a longer file is then refused by size).
fn copy_local(src: &Path, url: &str, size: u64, to: &mut File) -> Result<(), UpstreamError> {
    let f = File::open(src).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => UpstreamError::NotFound {
            url: url.to_string(),
        },
        _ => UpstreamError::Io {
            what: "opening",
            path: src.to_path_buf(),
            source,
        },
    })?;
    io::copy(&mut f.take(size + 1), to).map_err(|source| UpstreamError::Io {
        what: "copying",
        path: src.to_path_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_parse_in_index_and_hex_forms() {
        let q1 = "Q1nO7CmxdGHJEmoneupOUkkhqAtxk=";
        let bytes = parse_checksum(q1).unwrap();
        let hex = hex::encode(bytes);
        assert_eq!(parse_checksum(&hex), Some(bytes));
        assert_eq!(parse_checksum("Q1short"), None);
        assert_eq!(parse_checksum("zz"), None);
        assert_eq!(parse_checksum(&"g".repeat(40)), None);
    }
}
