//! What differs between two builds of one package: the reproducibility
//! check of `pkgbuild rebuild`. Both files are untrusted and read with the
//! bounded readers of [`super::read`]; contents are compared by SHA-256,
//! never held whole.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::read::{self, ApkControl, DataEntry, EntryKind};

/// Largest `.PKGINFO` or `.melange.yaml` read for the comparison.
const MAX_CONTROL_FILE: u64 = 1 << 20;

/// Which of the two files something is found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Original,
    Rebuilt,
}

/// One way a data entry differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Aspect {
    /// SHA-256 of the contents, original then rebuilt.
    Content(String, String),
    Kind(EntryKind, EntryKind),
    Mode(u32, u32),
    /// `uid:gid uname:gname`.
    Owner(String, String),
    Link(Option<String>, Option<String>),
    /// Names of the extended attributes that differ (missing, extra or
    /// another value).
    Xattr(Vec<String>),
    Mtime(u64, u64),
    Device(Option<(u32, u32)>, Option<(u32, u32)>),
}

/// One difference between the original package and its rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A data entry in both, differing in each listed aspect.
    File { path: String, aspects: Vec<Aspect> },
    /// A data entry in only one of them.
    OnlyIn { path: String, side: Side },
    /// A `.PKGINFO` field with other values (all values of a repeated field
    /// such as `depend`, in order).
    PkgInfo {
        field: String,
        original: Vec<String>,
        rebuilt: Vec<String>,
    },
    /// An install script or `.melange.yaml` that differs or is missing on
    /// one side.
    ControlFile { name: String },
    /// The control member differs in something the fields above do not
    /// show (tar headers, order, compression).
    ControlMember,
    /// The data member differs though every entry is the same (order,
    /// padding, compression).
    DataMember,
    /// Everything signed is identical; only the signatures differ (another
    /// key, or a non-deterministic signer).
    Signature,
}

/// `None` when the two files are byte-identical, else every difference
/// found (never empty).
pub fn compare(original: &Path, rebuilt: &Path) -> anyhow::Result<Option<Vec<Difference>>> {
    let a =
        std::fs::read(original).with_context(|| format!("{}: cannot read", original.display()))?;
    let b =
        std::fs::read(rebuilt).with_context(|| format!("{}: cannot read", rebuilt.display()))?;
    if a == b {
        return Ok(None);
    }
    drop((a, b));
    let (orig, orig_tar) = control(original)?;
    let (new, new_tar) = control(rebuilt)?;
    let mut out = Vec::new();

    let fields_a = pkginfo_fields(&orig_tar, original)?;
    let fields_b = pkginfo_fields(&new_tar, rebuilt)?;
    let keys: std::collections::BTreeSet<&String> =
        fields_a.keys().chain(fields_b.keys()).collect();
    for k in keys {
        let va = fields_a.get(k).cloned().unwrap_or_default();
        let vb = fields_b.get(k).cloned().unwrap_or_default();
        if va != vb {
            out.push(Difference::PkgInfo {
                field: k.clone(),
                original: va,
                rebuilt: vb,
            });
        }
    }

    let mut scripts: Vec<&str> = orig
        .scripts
        .iter()
        .chain(&new.scripts)
        .map(|(n, _)| n.as_str())
        .collect();
    scripts.sort();
    scripts.dedup();
    for name in scripts {
        let find = |c: &ApkControl| {
            c.scripts
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
        };
        if find(&orig) != find(&new) {
            out.push(Difference::ControlFile {
                name: name.to_string(),
            });
        }
    }
    let recipe = |tar: &[u8], p: &Path| {
        read::control_file(tar, ".melange.yaml", MAX_CONTROL_FILE)
            .with_context(|| format!("{}: reading .melange.yaml", p.display()))
    };
    if recipe(&orig_tar, original)? != recipe(&new_tar, rebuilt)? {
        out.push(Difference::ControlFile {
            name: ".melange.yaml".to_string(),
        });
    }
    if out.is_empty() && orig.control_member != new.control_member {
        out.push(Difference::ControlMember);
    }

    let files_a = data(original, &orig)?;
    let files_b = data(rebuilt, &new)?;
    let mut data_diffs = Vec::new();
    for (path, ea) in &files_a {
        match files_b.get(path) {
            None => data_diffs.push(Difference::OnlyIn {
                path: path.clone(),
                side: Side::Original,
            }),
            Some(eb) => {
                let aspects = entry_aspects(ea, eb);
                if !aspects.is_empty() {
                    data_diffs.push(Difference::File {
                        path: path.clone(),
                        aspects,
                    });
                }
            }
        }
    }
    for path in files_b.keys().filter(|p| !files_a.contains_key(*p)) {
        data_diffs.push(Difference::OnlyIn {
            path: path.clone(),
            side: Side::Rebuilt,
        });
    }
    if data_diffs.is_empty() && orig.pkginfo.datahash != new.pkginfo.datahash {
        data_diffs.push(Difference::DataMember);
    }
    out.extend(data_diffs);
    if out.is_empty() {
        out.push(Difference::Signature);
    }
    Ok(Some(out))
}

fn control(path: &Path) -> anyhow::Result<(ApkControl, Vec<u8>)> {
    let (head, size) = read::read_head_file(path)
        .with_context(|| format!("{}: not a readable package", path.display()))?;
    let tar = head.tar.clone();
    let ctl = read::control_from_head(head, size)
        .with_context(|| format!("{}: not a readable package", path.display()))?;
    Ok((ctl, tar))
}

/// `.PKGINFO` as field → values, in file order; comments skipped.
fn pkginfo_fields(tar: &[u8], path: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let bytes = read::control_file(tar, ".PKGINFO", MAX_CONTROL_FILE)
        .with_context(|| format!("{}: reading .PKGINFO", path.display()))?
        .with_context(|| format!("{}: no .PKGINFO", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once(" = ") {
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    Ok(out)
}

/// Every data entry with the SHA-256 of its contents (empty for
/// non-files).
fn data(path: &Path, ctl: &ApkControl) -> anyhow::Result<BTreeMap<String, (DataEntry, String)>> {
    let mut out = BTreeMap::new();
    read::read_data(
        path,
        ctl,
        |e: &DataEntry, r: &mut dyn Read| -> anyhow::Result<()> {
            let mut h = Sha256::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = r.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            let digest = hex::encode(h.finalize());
            out.insert(e.path.clone(), (e.clone(), digest));
            Ok(())
        },
    )
    .with_context(|| format!("{}: reading the data member", path.display()))?;
    Ok(out)
}

fn entry_aspects(a: &(DataEntry, String), b: &(DataEntry, String)) -> Vec<Aspect> {
    let ((ea, ha), (eb, hb)) = (a, b);
    let mut out = Vec::new();
    if ea.kind != eb.kind {
        out.push(Aspect::Kind(ea.kind, eb.kind));
    }
    if ha != hb {
        out.push(Aspect::Content(ha.clone(), hb.clone()));
    }
    if ea.mode != eb.mode {
        out.push(Aspect::Mode(ea.mode, eb.mode));
    }
    let owner = |e: &DataEntry| format!("{}:{} {}:{}", e.uid, e.gid, e.uname, e.gname);
    if owner(ea) != owner(eb) {
        out.push(Aspect::Owner(owner(ea), owner(eb)));
    }
    if ea.link_target != eb.link_target {
        out.push(Aspect::Link(ea.link_target.clone(), eb.link_target.clone()));
    }
    let xa: BTreeMap<&String, &Vec<u8>> = ea.xattrs.iter().map(|(k, v)| (k, v)).collect();
    let xb: BTreeMap<&String, &Vec<u8>> = eb.xattrs.iter().map(|(k, v)| (k, v)).collect();
    let mut names: Vec<String> = xa
        .keys()
        .chain(xb.keys())
        .filter(|k| xa.get(*k) != xb.get(*k))
        .map(|k| k.to_string())
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        out.push(Aspect::Xattr(names));
    }
    if ea.mtime != eb.mtime {
        out.push(Aspect::Mtime(ea.mtime, eb.mtime));
    }
    if ea.device != eb.device {
        out.push(Aspect::Device(ea.device, eb.device));
    }
    out
}

impl Aspect {
    /// The aspect's one-word name: content, type, mode, owner, link,
    /// xattr, mtime, device.
    pub fn name(&self) -> &'static str {
        match self {
            Aspect::Content(..) => "content",
            Aspect::Kind(..) => "type",
            Aspect::Mode(..) => "mode",
            Aspect::Owner(..) => "owner",
            Aspect::Link(..) => "link",
            Aspect::Xattr(..) => "xattr",
            Aspect::Mtime(..) => "mtime",
            Aspect::Device(..) => "device",
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

impl fmt::Display for Aspect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".to_string());
        match self {
            Aspect::Content(a, b) => write!(f, "content (sha256 {}… → {}…)", short(a), short(b)),
            Aspect::Kind(a, b) => write!(f, "type ({a:?} → {b:?})"),
            Aspect::Mode(a, b) => write!(f, "mode ({a:04o} → {b:04o})"),
            Aspect::Owner(a, b) => write!(f, "owner ({a} → {b})"),
            Aspect::Link(a, b) => write!(f, "link ({} → {})", opt(a), opt(b)),
            Aspect::Xattr(names) => write!(f, "xattr ({})", names.join(", ")),
            Aspect::Mtime(a, b) => write!(f, "mtime ({a} → {b})"),
            Aspect::Device(a, b) => write!(f, "device ({a:?} → {b:?})"),
        }
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::File { path, aspects } => {
                let list: Vec<String> = aspects.iter().map(|a| a.to_string()).collect();
                write!(f, "{path}: {}", list.join(", "))
            }
            Difference::OnlyIn { path, side } => match side {
                Side::Original => write!(f, "{path}: only in the original"),
                Side::Rebuilt => write!(f, "{path}: only in the rebuild"),
            },
            Difference::PkgInfo {
                field,
                original,
                rebuilt,
            } => {
                let show = |v: &[String]| match v {
                    [] => "(absent)".to_string(),
                    v => v.join(", "),
                };
                write!(
                    f,
                    ".PKGINFO {field}: {} → {}",
                    show(original),
                    show(rebuilt)
                )
            }
            Difference::ControlFile { name } => write!(f, "control file {name}: content"),
            Difference::ControlMember => write!(f, "control member: tar headers or compression"),
            Difference::DataMember => write!(f, "data member: entry order, headers or compression"),
            Difference::Signature => write!(
                f,
                "signature only (another key, or a non-deterministic signer)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apk::package::{write_package, EntryOverride, PackageSpec, SignOptions};
    use crate::apk::pkginfo::PkgInfo;
    use std::path::PathBuf;

    /// A package of `files` (path, content) written into `out`, after
    /// `tweak` adjusted the spec.
    fn package(
        out: &Path,
        files: &[(&str, &str)],
        tweak: impl FnOnce(&mut PackageSpec),
    ) -> PathBuf {
        let root = out.join("root");
        std::fs::create_dir_all(&root).unwrap();
        for (p, c) in files {
            let path = root.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let mut spec = PackageSpec {
            root,
            info: PkgInfo {
                name: "p".into(),
                version: "1-r0".into(),
                arch: "x86_64".into(),
                license: "MIT".into(),
                ..Default::default()
            },
            control_extra: vec![(".melange.yaml".into(), b"package: {}\n".to_vec())],
            mtime: 1_700_000_000,
            ..Default::default()
        };
        tweak(&mut spec);
        write_package(&spec, &SignOptions::default(), out)
            .unwrap()
            .path
    }

    fn pair(
        files_a: &[(&str, &str)],
        files_b: &[(&str, &str)],
        tweak: impl FnOnce(&mut PackageSpec),
    ) -> Option<Vec<Difference>> {
        let dir = tempfile::tempdir().unwrap();
        let a = package(&dir.path().join("a"), files_a, |_| {});
        let b = package(&dir.path().join("b"), files_b, tweak);
        compare(&a, &b).unwrap()
    }

    #[test]
    fn identical_builds_compare_equal() {
        let files = [("usr/share/a", "a\n"), ("usr/bin/b", "#!/bin/sh\n")];
        assert_eq!(pair(&files, &files, |_| {}), None);
    }

    #[test]
    fn each_aspect_of_a_file_is_named() {
        let got = pair(
            &[("usr/share/a", "one\n")],
            &[("usr/share/a", "two\n")],
            |s| {
                s.overrides.insert(
                    "usr/share/a".into(),
                    EntryOverride {
                        uid: 7,
                        gid: 8,
                        uname: "u".into(),
                        gname: "g".into(),
                        mode: Some(0o755),
                        xattrs: vec![("user.x".into(), b"1".to_vec())],
                    },
                );
            },
        )
        .unwrap();
        let file = got
            .iter()
            .find_map(|d| match d {
                Difference::File { path, aspects } if path == "usr/share/a" => Some(aspects),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{got:?}"));
        let names: Vec<&str> = file.iter().map(Aspect::name).collect();
        assert_eq!(names, ["content", "mode", "owner", "xattr"]);
        assert!(file.contains(&Aspect::Mode(0o644, 0o755)), "{file:?}");
        assert!(
            file.contains(&Aspect::Xattr(vec!["user.x".into()])),
            "{file:?}"
        );
        // The data changed, so datahash did; content of the same length
        // keeps the size.
        assert!(got
            .iter()
            .any(|d| matches!(d, Difference::PkgInfo { field, .. } if field == "datahash")));
        assert!(!got
            .iter()
            .any(|d| matches!(d, Difference::PkgInfo { field, .. } if field == "size")));
        let text = got
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        assert!(text.contains("usr/share/a: content (sha256 "), "{text}");
        assert!(text.contains("mode (0644 → 0755)"), "{text}");
        assert!(text.contains("owner (0:0 root:root → 7:8 u:g)"), "{text}");
    }

    #[test]
    fn missing_files_fields_links_and_control_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = package(
            &dir.path().join("a"),
            &[("etc/x", "x"), ("etc/gone", "g")],
            |_| {},
        );
        let b_root = dir.path().join("b").join("root");
        std::fs::create_dir_all(b_root.join("etc")).unwrap();
        std::os::unix::fs::symlink("y", b_root.join("etc/x")).unwrap();
        std::fs::write(b_root.join("etc/new"), "n").unwrap();
        let b = package(&dir.path().join("b"), &[], |s| {
            s.info.depends = vec!["so:libc.so.6".into()];
            s.info.commit = "abc".into();
            s.control_extra = vec![(".melange.yaml".into(), b"package: {name: q}\n".to_vec())];
        });
        let got = compare(&a, &b).unwrap().unwrap();
        let has = |want: &Difference| got.contains(want);
        assert!(
            has(&Difference::OnlyIn {
                path: "etc/gone".into(),
                side: Side::Original
            }),
            "{got:?}"
        );
        assert!(
            has(&Difference::OnlyIn {
                path: "etc/new".into(),
                side: Side::Rebuilt
            }),
            "{got:?}"
        );
        assert!(
            has(&Difference::PkgInfo {
                field: "depend".into(),
                original: vec![],
                rebuilt: vec!["so:libc.so.6".into()],
            }),
            "{got:?}"
        );
        assert!(
            has(&Difference::PkgInfo {
                field: "commit".into(),
                original: vec![],
                rebuilt: vec!["abc".into()],
            }),
            "{got:?}"
        );
        assert!(
            has(&Difference::ControlFile {
                name: ".melange.yaml".into()
            }),
            "{got:?}"
        );
        let x = got.iter().find_map(|d| match d {
            Difference::File { path, aspects } if path == "etc/x" => Some(aspects.clone()),
            _ => None,
        });
        let x = x.unwrap_or_else(|| panic!("{got:?}"));
        assert!(x.iter().any(|a| a.name() == "type"), "{x:?}");
        assert!(x.contains(&Aspect::Link(None, Some("y".into()))), "{x:?}");
    }

    #[test]
    fn only_the_signature_differs_when_signed_with_another_key() {
        use crate::apk::sign::SigningKey;
        let dir = tempfile::tempdir().unwrap();
        let key = |name: &str| {
            let k = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
            SigningKey::from_key(k, name)
        };
        let (k1, k2) = (key("one.rsa.pub"), key("two.rsa.pub"));
        let write = |sub: &str, k: &SigningKey| {
            let out = dir.path().join(sub);
            let root = out.join("root");
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/a"), "a").unwrap();
            let spec = PackageSpec {
                root,
                info: PkgInfo {
                    name: "p".into(),
                    version: "1-r0".into(),
                    ..Default::default()
                },
                mtime: 1,
                ..Default::default()
            };
            let sign = SignOptions {
                key: Some(k),
                legacy_sha1: false,
            };
            write_package(&spec, &sign, &out).unwrap().path
        };
        let (a, b) = (write("a", &k1), write("b", &k2));
        assert_eq!(compare(&a, &b).unwrap(), Some(vec![Difference::Signature]));
    }

    #[test]
    fn a_file_that_is_not_a_package_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.apk");
        std::fs::write(&bad, b"not a package").unwrap();
        let good = package(&dir.path().join("g"), &[("a", "a")], |_| {});
        let err = format!("{:#}", compare(&good, &bad).unwrap_err());
        assert!(err.contains("bad.apk"), "{err}");
    }
}
