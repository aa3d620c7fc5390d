//! `APKINDEX.tar.gz`: building, merging, rendering and signing the
//! repository index (apk-format.md §4).
//!
//! Each record is built from a package's signature and control members
//! only: `C:` is the SHA-1 of the compressed control member and `S:` the
//! file size, so the data member is never inflated. The text is written
//! exactly as `apk index` writes it (field order, `T:`/`U:`/`L:` always
//! present, a blank line after every record) so the output is
//! byte-identical to apk-tools' own for the same packages.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hex::FromHex;

use super::gzip::gzip_member;
use super::package::{signature_member, PackageError, SignOptions};
use super::pkginfo::{PkgInfo, MAX_BUILDDATE};
use super::read::{self, Payload, ReadError};
use super::sign::SigningKey;
use super::tar::memory_tar;
use super::version;

/// apk3 ignores a `DESCRIPTION` longer than this.
pub const MAX_DESCRIPTION_LEN: usize = 160;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: ReadError },
    #[error("{path}: {problem}")]
    Package { path: PathBuf, problem: String },
    #[error("APKINDEX line {line}: {problem}")]
    Parse { line: usize, problem: String },
    #[error("description is {0} bytes; apk3 ignores descriptions longer than {MAX_DESCRIPTION_LEN} bytes")]
    DescriptionTooLong(usize),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signing the index: {0}")]
    Sign(#[from] PackageError),
}

/// One package's record in the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The index fields (no `datahash`, `replaces`, `triggers`: apk takes
    /// those from `.PKGINFO` at install time).
    pub info: PkgInfo,
    /// SHA-1 of the compressed control member (`C:Q1…`).
    pub control_sha1: [u8; 20],
    /// Size of the `.apk` file (`S:`).
    pub file_size: u64,
}

impl IndexEntry {
    /// Build a record from a package file, reading only its signature and
    /// control members.
    pub fn from_package(path: &Path) -> Result<Self, IndexError> {
        let ctl = read::read_control(path).map_err(|source| IndexError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_control(path, ctl)
    }

    /// Build a record from control members already read from `path`
    /// (for callers that look at the signature first).
    pub fn from_control(path: &Path, ctl: read::ApkControl) -> Result<Self, IndexError> {
        // apk2 identifies a package without datahash by control *and* data,
        // so a `C:` over the control member alone would not match it.
        if ctl.pkginfo.datahash.is_empty() {
            return Err(IndexError::Package {
                path: path.to_path_buf(),
                problem: "no datahash in .PKGINFO; apk would not match its C: identity".into(),
            });
        }
        Ok(IndexEntry {
            info: ctl.pkginfo,
            control_sha1: ctl.control_sha1,
            file_size: ctl.file_size,
        })
    }

    /// `Q1` + base64 of the control SHA-1, as written after `C:`.
    pub fn checksum_field(&self) -> String {
        format!("Q1{}", BASE64.encode(self.control_sha1))
    }

    fn render(&self, out: &mut String, arch_rewrite: Option<&str>) {
        let i = &self.info;
        let one = |s: &str| s.replace(['\n', '\r'], " ");
        let arch = match arch_rewrite {
            Some(a) if i.arch == "noarch" => a,
            _ => &i.arch,
        };
        let _ = writeln!(out, "C:{}", self.checksum_field());
        let _ = writeln!(out, "P:{}", one(&i.name));
        let _ = writeln!(out, "V:{}", one(&i.version));
        if !arch.is_empty() {
            let _ = writeln!(out, "A:{}", one(arch));
        }
        let _ = writeln!(out, "S:{}", self.file_size);
        let _ = writeln!(out, "I:{}", i.size);
        let _ = writeln!(out, "T:{}", one(&i.description));
        let _ = writeln!(out, "U:{}", one(&i.url));
        let _ = writeln!(out, "L:{}", one(&i.license));
        let optional = [
            ('o', i.origin.clone()),
            ('m', i.maintainer.clone()),
            ('t', nonzero(i.builddate)),
            ('c', i.commit.clone()),
            ('k', nonzero(i.provider_priority.unwrap_or(0))),
            ('D', i.depends.join(" ")),
            ('p', i.provides.join(" ")),
            ('i', i.install_if.join(" ")),
        ];
        for (letter, value) in optional {
            if !value.is_empty() {
                let _ = writeln!(out, "{letter}:{}", one(&value));
            }
        }
        out.push('\n');
    }
}

fn nonzero(v: u64) -> String {
    if v == 0 {
        String::new()
    } else {
        v.to_string()
    }
}

/// Order records as `apk index` does: by name, then by apk version.
fn record_order(a: &IndexEntry, b: &IndexEntry) -> Ordering {
    a.info
        .name
        .cmp(&b.info.name)
        .then_with(|| version::compare(&a.info.version, &b.info.version))
        .then_with(|| a.info.version.cmp(&b.info.version))
}

/// Decode `Q1<base64>` (or apk's older `X1<hex>`) into a SHA-1.
fn parse_checksum(value: &str) -> Option<[u8; 20]> {
    if let Some(b64) = value.strip_prefix("Q1") {
        let bytes = BASE64.decode(b64).ok()?;
        return bytes.try_into().ok();
    }
    <[u8; 20]>::from_hex(value.strip_prefix("X1")?).ok()
}

/// A repository index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    pub description: Option<String>,
    pub entries: Vec<IndexEntry>,
}

/// The signature and index members of an `APKINDEX.tar.gz`, read once:
/// refused when it is a package or has bytes after its last member.
pub fn read_head(path: &Path) -> Result<read::Head, ReadError> {
    let (head, size) = read::read_head_file(path)?;
    if head.payload != Payload::Index {
        return Err(ReadError::NotAnIndex(
            "it holds a .PKGINFO (is it a package?)",
        ));
    }
    if head.end != size {
        return Err(ReadError::TrailingGarbage(size.saturating_sub(head.end)));
    }
    Ok(head)
}

impl Index {
    /// Read an `APKINDEX.tar.gz` (signed or not; the signature is not
    /// checked here, that is `verify`'s job).
    pub fn read(path: &Path) -> Result<Self, IndexError> {
        let read_err = |source| IndexError::Read {
            path: path.to_path_buf(),
            source,
        };
        let head = read_head(path).map_err(read_err)?;
        let tar = read::read_index_tar(&head.tar).map_err(read_err)?;
        Self::from_tar(tar).map_err(|e| match e {
            IndexError::Parse { line, problem } => IndexError::Package {
                path: path.to_path_buf(),
                problem: format!("APKINDEX line {line}: {problem}"),
            },
            other => other,
        })
    }

    pub(crate) fn from_tar(tar: read::IndexTar) -> Result<Self, IndexError> {
        let text = String::from_utf8(tar.apkindex).map_err(|_| IndexError::Parse {
            line: 0,
            problem: "APKINDEX is not UTF-8".into(),
        })?;
        let description = tar.description.map(|d| {
            String::from_utf8_lossy(&d)
                .trim_end_matches('\n')
                .to_string()
        });
        Ok(Index {
            description,
            entries: Self::parse_text(&text)?,
        })
    }

    /// Parse `APKINDEX` text. Unknown letters are ignored, as apk does for
    /// lowercase ones; every record needs `C:`, `P:` and `V:`.
    pub fn parse_text(text: &str) -> Result<Vec<IndexEntry>, IndexError> {
        let mut entries = Vec::new();
        let mut current: Option<(usize, IndexEntry, bool)> = None;
        let finish = |(start, entry, has_c): (usize, IndexEntry, bool)| {
            let missing = if !has_c {
                "C:"
            } else if entry.info.name.is_empty() {
                "P:"
            } else if entry.info.version.is_empty() {
                "V:"
            } else {
                return Ok(entry);
            };
            Err(IndexError::Parse {
                line: start,
                problem: format!("record has no {missing} field"),
            })
        };
        for (n, line) in text.split('\n').enumerate() {
            let lineno = n + 1;
            if line.is_empty() {
                if let Some(rec) = current.take() {
                    entries.push(finish(rec)?);
                }
                continue;
            }
            let bad = |problem: String| IndexError::Parse {
                line: lineno,
                problem,
            };
            let (letter, value) = match line.as_bytes() {
                [l, b':', ..] => (*l, &line[2..]),
                _ => return Err(bad("expected `X:value`".into())),
            };
            let (_, e, has_c) = current.get_or_insert_with(|| {
                (
                    lineno,
                    IndexEntry {
                        info: PkgInfo::default(),
                        control_sha1: [0; 20],
                        file_size: 0,
                    },
                    false,
                )
            });
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("`{}` is not a number", letter as char)))
            };
            let list = |v: &str| v.split_whitespace().map(String::from).collect::<Vec<_>>();
            let i = &mut e.info;
            match letter {
                b'C' => {
                    e.control_sha1 = parse_checksum(value)
                        .ok_or_else(|| bad("C: is not Q1 + base64 of a SHA-1".into()))?;
                    *has_c = true;
                }
                b'P' => i.name = value.into(),
                b'V' => i.version = value.into(),
                b'A' => i.arch = value.into(),
                b'S' => e.file_size = number(value)?,
                b'I' => i.size = number(value)?,
                b'T' => i.description = value.into(),
                b'U' => i.url = value.into(),
                b'L' => i.license = value.into(),
                b'o' => i.origin = value.into(),
                b'm' => i.maintainer = value.into(),
                b't' => {
                    i.builddate = number(value)?;
                    if i.builddate > MAX_BUILDDATE {
                        return Err(bad(format!(
                            "t:{} is out of range (at most {MAX_BUILDDATE}, the largest tar mtime)",
                            i.builddate
                        )));
                    }
                }
                b'c' => i.commit = value.into(),
                b'k' => i.provider_priority = Some(number(value)?),
                b'D' => i.depends = list(value),
                b'p' => i.provides = list(value),
                b'i' => i.install_if = list(value),
                _ => {}
            }
        }
        if let Some(rec) = current.take() {
            entries.push(finish(rec)?);
        }
        Ok(entries)
    }

    /// Add `new` records, replacing any with the same name and version.
    pub fn merge(&mut self, new: Vec<IndexEntry>) {
        for entry in new {
            self.entries.retain(|e| {
                !(e.info.name == entry.info.name && e.info.version == entry.info.version)
            });
            self.entries.push(entry);
        }
    }

    /// The `APKINDEX` text, records sorted by name then version.
    pub fn render_text(&self) -> String {
        self.render(None)
    }

    fn render(&self, arch_rewrite: Option<&str>) -> String {
        let mut sorted: Vec<&IndexEntry> = self.entries.iter().collect();
        sorted.sort_by(|a, b| record_order(a, b));
        let mut out = String::new();
        for e in sorted {
            e.render(&mut out, arch_rewrite);
        }
        out
    }

    /// The index file bytes: signature member (when `key` is given) and
    /// one gzip member holding `DESCRIPTION`, `APKINDEX` and end-of-archive.
    /// `arch_rewrite` turns `A:noarch` into that arch (abuild's
    /// `--rewrite-arch`), so apk fetches the file from the arch directory.
    pub fn to_bytes(
        &self,
        key: Option<&SigningKey>,
        arch_rewrite: Option<&str>,
    ) -> Result<Vec<u8>, IndexError> {
        let text = self.render(arch_rewrite);
        let mut files: Vec<(&str, &[u8])> = Vec::new();
        if let Some(d) = &self.description {
            if d.len() > MAX_DESCRIPTION_LEN {
                return Err(IndexError::DescriptionTooLong(d.len()));
            }
            files.push(("DESCRIPTION", d.as_bytes()));
        }
        files.push(("APKINDEX", text.as_bytes()));
        // The newest build date keeps the output reproducible.
        let mtime = self
            .entries
            .iter()
            .map(|e| e.info.builddate)
            .max()
            .unwrap_or(0)
            // Readers refuse larger dates; entries built in code are
            // clamped rather than allowed to overflow the tar header.
            .min(MAX_BUILDDATE);
        let member = gzip_member(&memory_tar(&files, 0o644, mtime, true));
        let sign = SignOptions {
            key,
            legacy_sha1: false,
        };
        let mut bytes = signature_member(&member, &sign, mtime)?;
        bytes.extend_from_slice(&member);
        Ok(bytes)
    }

    /// Write the index atomically (temp file + rename).
    pub fn write(
        &self,
        path: &Path,
        key: Option<&SigningKey>,
        arch_rewrite: Option<&str>,
    ) -> Result<(), IndexError> {
        let bytes = self.to_bytes(key, arch_rewrite)?;
        crate::atomic::write(path, 0o644, &bytes).map_err(|source| IndexError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> PathBuf {
        crate::testdata()
            .join("apk-tools-accepted/repo/x86_64")
            .join(name)
    }

    fn shipped_index() -> (read::IndexTar, Index) {
        let (head, _) = read::read_head_file(&shipped("APKINDEX.tar.gz")).unwrap();
        let tar = read::read_index_tar(&head.tar).unwrap();
        (tar.clone(), Index::from_tar(tar).unwrap())
    }

    #[test]
    fn record_from_the_accepted_package_matches_apk_index_byte_for_byte() {
        let (tar, shipped_idx) = shipped_index();
        let index = Index {
            description: shipped_idx.description.clone(),
            entries: vec![IndexEntry::from_package(&shipped("hello-1.0-r0.apk")).unwrap()],
        };
        assert_eq!(index.render_text().as_bytes(), &tar.apkindex[..]);
        assert_eq!(
            shipped_idx.description.as_deref(),
            Some("pkgbuild test repo")
        );
    }

    #[test]
    fn parse_and_render_round_trip() {
        let (tar, index) = shipped_index();
        assert_eq!(index.entries.len(), 1);
        assert_eq!(index.entries[0].file_size, 1178);
        assert_eq!(index.render_text().as_bytes(), &tar.apkindex[..]);
    }

    fn entry(name: &str, version: &str, arch: &str) -> IndexEntry {
        IndexEntry {
            info: PkgInfo {
                name: name.into(),
                version: version.into(),
                arch: arch.into(),
                size: 1,
                depends: vec!["a".into(), "b>=1".into()],
                install_if: vec!["x".into(), "y".into()],
                provider_priority: Some(5),
                ..Default::default()
            },
            control_sha1: [7; 20],
            file_size: 10,
        }
    }

    #[test]
    fn sorts_by_name_then_apk_version_and_merges() {
        let mut index = Index {
            description: None,
            entries: vec![
                entry("b", "1.0-r0", "x86_64"),
                entry("a", "1.10-r0", "x86_64"),
                entry("a", "1.9-r0", "x86_64"),
                entry("a", "1.9_rc1-r0", "x86_64"),
            ],
        };
        let mut replacement = entry("a", "1.9-r0", "x86_64");
        replacement.file_size = 99;
        index.merge(vec![replacement]);
        let text = index.render_text();
        let order: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("V:")).collect();
        assert_eq!(order, ["1.9_rc1-r0", "1.9-r0", "1.10-r0", "1.0-r0"]);
        assert_eq!(index.entries.len(), 4);
        assert!(text.contains("S:99\n"));
        assert!(text.contains("k:5\nD:a b>=1\n"));
        assert!(text.contains("i:x y\n\n"));
        assert_eq!(Index::parse_text(&text).unwrap().len(), 4);
    }

    #[test]
    fn noarch_is_rewritten_only_when_asked() {
        let index = Index {
            description: None,
            entries: vec![entry("n", "1-r0", "noarch"), entry("x", "1-r0", "aarch64")],
        };
        assert!(index.render(None).contains("A:noarch\n"));
        let r = index.render(Some("x86_64"));
        assert!(r.contains("P:n\nV:1-r0\nA:x86_64\n"));
        assert!(r.contains("A:aarch64\n"));
    }

    #[test]
    fn parse_text_rejects_malformed_records() {
        for (text, needle) in [
            ("P:a\nV:1\n\n", "no C:"),
            ("C:Q1AAAA\nP:a\nV:1\n\n", "SHA-1"),
            ("C:Q1nO7CmxdGHJEmoneupOUkkhqAtxk=\nV:1\n\n", "no P:"),
            (
                "C:Q1nO7CmxdGHJEmoneupOUkkhqAtxk=\nP:a\nS:x\n\n",
                "not a number",
            ),
            ("garbage\n", "X:value"),
        ] {
            let e = Index::parse_text(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn long_description_is_refused() {
        let index = Index {
            description: Some("x".repeat(161)),
            entries: vec![],
        };
        assert!(matches!(
            index.to_bytes(None, None),
            Err(IndexError::DescriptionTooLong(161))
        ));
    }
}
