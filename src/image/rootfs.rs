//! Turning an installed guest root into an image root: the image's
//! `/etc/apk/repositories`, accounts (`/etc/passwd`, `/etc/group`, home
//! directories), `paths:` mutations and `/etc/os-release`.
//!
//! Every path is resolved inside the root with the installer's chroot-like
//! resolver, so a package's symlink can never send a write outside it.
//! Owners and modes the image needs are recorded in [`Overrides`] (and set
//! on disk when possible): the layer writer takes them from there, so the
//! image is the same whether or not pkgbuild runs as root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::config::{ImageConfig, PathKind, PathMutation, UserAccount};
use crate::install::paths::Resolver;

/// Owner and permission bits for one in-root path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (at most 0o7777).
    pub mode: u32,
}

/// In-root path (`etc/passwd`, no leading `/`) → what the layer must say.
pub type Overrides = BTreeMap<String, Meta>;

/// One package record of `lib/apk/db/installed`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub license: String,
    pub url: String,
    pub origin: String,
    pub description: String,
    /// `Q1…`, the index's `C:`.
    pub checksum: String,
    /// `D:` dependency strings.
    pub depends: Vec<String>,
    /// `p:` provides (`so:libc.so.6=6`, `cmd:hello=1.2.0-r0`).
    pub provides: Vec<String>,
    /// Paths this package installed (`usr/bin/hello`), as the archive
    /// named them.
    pub files: Vec<String>,
}

/// Largest database read (a few thousand packages fit easily).
const MAX_DB_BYTES: u64 = 256 << 20;

/// Read the apk database the installer wrote: the packages, and the owner
/// and mode apk recorded for each path that differs from root:root.
pub fn read_db(root: &Path) -> Result<(Vec<DbPackage>, Overrides)> {
    use std::io::Read;
    let path = root.join("lib/apk/db/installed");
    let mut text = String::new();
    fs::File::open(&path)
        .and_then(|f| f.take(MAX_DB_BYTES).read_to_string(&mut text))
        .with_context(|| format!("{}: cannot read the apk database", path.display()))?;
    let mut pkgs = Vec::new();
    let mut acl = Overrides::new();
    let mut cur = DbPackage::default();
    let (mut dir, mut file) = (String::new(), String::new());
    let parse_acl = |v: &str| -> Option<Meta> {
        let mut it = v.split(':');
        Some(Meta {
            uid: it.next()?.parse().ok()?,
            gid: it.next()?.parse().ok()?,
            mode: u32::from_str_radix(it.next()?, 8).ok()? & 0o7777,
        })
    };
    for line in text.lines().chain(std::iter::once("")) {
        if line.is_empty() {
            if !cur.name.is_empty() {
                pkgs.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k {
            "P" => cur.name = v.into(),
            "V" => cur.version = v.into(),
            "A" => cur.arch = v.into(),
            "L" => cur.license = v.into(),
            "U" => cur.url = v.into(),
            "o" => cur.origin = v.into(),
            "T" => cur.description = v.into(),
            "C" => cur.checksum = v.into(),
            "D" => cur.depends = v.split_whitespace().map(str::to_string).collect(),
            "p" => cur.provides = v.split_whitespace().map(str::to_string).collect(),
            "F" => dir = v.into(),
            "R" => {
                file = if dir.is_empty() {
                    v.to_string()
                } else {
                    format!("{dir}/{v}")
                };
                cur.files.push(file.clone());
            }
            "M" => {
                if let Some(m) = parse_acl(v) {
                    acl.insert(dir.clone(), m);
                }
            }
            "a" => {
                if let Some(m) = parse_acl(v) {
                    acl.insert(file.clone(), m);
                }
            }
            _ => {}
        }
    }
    Ok((pkgs, acl))
}

/// Writes inside one root, never through a symlink out of it.
pub struct RootWriter {
    resolver: Resolver,
    pub overrides: Overrides,
}

fn split(rel: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let name = parts.pop().unwrap_or("");
    (parts, name)
}

impl RootWriter {
    pub fn new(root: &Path) -> RootWriter {
        RootWriter {
            resolver: Resolver::new(root),
            overrides: Overrides::new(),
        }
    }

    /// The host path and in-root key of `rel`; parents resolved (and
    /// created when `create`), the last component not followed.
    fn locate(&mut self, rel: &str, create: bool) -> Result<(PathBuf, String)> {
        let (parents, name) = split(rel);
        if name.is_empty() || name == ".." {
            bail!("`/{rel}` is not a path inside the image");
        }
        self.resolver.forget();
        let d = self
            .resolver
            .dir(&parents, create)
            .map_err(|e| anyhow!("`/{rel}`: {e}"))?;
        let key = if d.key.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", d.key)
        };
        Ok((d.host.join(name), key))
    }

    fn set(&mut self, key: String, host: &Path, meta: Meta) {
        // On-disk owners matter only to whoever looks at the staging root;
        // the layer takes them from the overrides.
        if crate::install::running_as_root() {
            let _ = std::os::unix::fs::lchown(host, Some(meta.uid), Some(meta.gid));
        }
        if !fs::symlink_metadata(host).is_ok_and(|m| m.file_type().is_symlink()) {
            let _ = fs::set_permissions(host, fs::Permissions::from_mode(meta.mode));
        }
        self.overrides.insert(key, meta);
    }

    /// Replace (or create) a regular file.
    pub fn write_file(&mut self, rel: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        let (host, key) = self.locate(rel, true)?;
        if fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
            bail!("`/{rel}` is a directory in the image");
        }
        crate::atomic::write(&host, mode, bytes)
            .with_context(|| format!("writing /{rel} into the image"))?;
        self.set(
            key,
            &host,
            Meta {
                uid: 0,
                gid: 0,
                mode,
            },
        );
        Ok(())
    }

    /// The content of a regular file in the root, if there is one.
    pub fn read_file(&mut self, rel: &str) -> Result<Option<String>> {
        let (host, _) = match self.locate(rel, false) {
            Ok(x) => x,
            Err(_) => return Ok(None),
        };
        match fs::symlink_metadata(&host) {
            Ok(m) if m.is_file() && m.len() <= 16 << 20 => Ok(Some(
                String::from_utf8_lossy(&fs::read(&host)?).into_owned(),
            )),
            _ => Ok(None),
        }
    }

    /// Whether something (a file, or a link even if dangling) is at `rel`.
    pub fn exists(&mut self, rel: &str) -> bool {
        self.locate(rel, false)
            .is_ok_and(|(h, _)| fs::symlink_metadata(h).is_ok())
    }

    /// Create `rel` and its parents as directories; set its owner/mode.
    pub fn mkdir(&mut self, rel: &str, meta: Meta) -> Result<()> {
        let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        self.resolver.forget();
        let d = self
            .resolver
            .dir(&parts, true)
            .map_err(|e| anyhow!("`/{rel}`: {e}"))?;
        self.set(d.key.clone(), &d.host, meta);
        Ok(())
    }

    fn apply(&mut self, p: &PathMutation) -> Result<()> {
        let meta = |default: u32| Meta {
            uid: p.uid,
            gid: p.gid,
            mode: p.mode.unwrap_or(default),
        };
        match p.kind {
            PathKind::Directory => {
                self.mkdir(&p.path, meta(0o755))?;
                if p.recursive {
                    self.recurse(&p.path, p.uid, p.gid, p.mode)?;
                }
            }
            PathKind::EmptyFile => {
                let m = meta(0o644);
                self.write_file(&p.path, m.mode, b"")?;
                let (host, key) = self.locate(&p.path, false)?;
                self.set(key, &host, m);
            }
            PathKind::Symlink => {
                let (host, key) = self.locate(&p.path, true)?;
                match fs::read_link(&host) {
                    Ok(t) if t == Path::new(&p.source) => {}
                    _ if fs::symlink_metadata(&host).is_ok() => {
                        bail!("`/{}` already exists in the image", p.path)
                    }
                    _ => std::os::unix::fs::symlink(&p.source, &host)
                        .with_context(|| format!("creating the symlink /{}", p.path))?,
                }
                self.overrides.insert(
                    key,
                    Meta {
                        uid: p.uid,
                        gid: p.gid,
                        mode: 0o777,
                    },
                );
            }
            PathKind::Hardlink => {
                let (src, _) = self.locate(&p.source, false)?;
                if !fs::symlink_metadata(&src).is_ok_and(|m| m.is_file()) {
                    bail!(
                        "hardlink source `/{}` is not a regular file in the image",
                        p.source
                    );
                }
                let (host, _) = self.locate(&p.path, true)?;
                if fs::symlink_metadata(&host).is_ok() {
                    bail!("`/{}` already exists in the image", p.path);
                }
                fs::hard_link(&src, &host)
                    .with_context(|| format!("linking /{} to /{}", p.path, p.source))?;
            }
            PathKind::Permissions => {
                let (host, key) = self.locate(&p.path, false)?;
                let m = fs::symlink_metadata(&host)
                    .map_err(|_| anyhow!("`/{}` does not exist in the image", p.path))?;
                let mode = p.mode.unwrap_or(m.mode() & 0o7777);
                self.set(
                    key,
                    &host,
                    Meta {
                        uid: p.uid,
                        gid: p.gid,
                        mode,
                    },
                );
                if p.recursive && m.is_dir() {
                    self.recurse(&p.path, p.uid, p.gid, p.mode)?;
                }
            }
        }
        Ok(())
    }

    /// Give everything below directory `rel` this owner (and mode).
    fn recurse(&mut self, rel: &str, uid: u32, gid: u32, mode: Option<u32>) -> Result<()> {
        let parts: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let d = self
            .resolver
            .dir(&parts, false)
            .map_err(|e| anyhow!("`/{rel}`: {e}"))?;
        let mut todo = vec![(d.host, d.key)];
        while let Some((host, key)) = todo.pop() {
            let mut names: Vec<_> = fs::read_dir(&host)
                .with_context(|| format!("{}", host.display()))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            for n in names {
                let h = host.join(&n);
                let k = format!("{key}/{}", n.to_string_lossy());
                let m = fs::symlink_metadata(&h)?;
                if m.file_type().is_symlink() {
                    continue;
                }
                let meta = Meta {
                    uid,
                    gid,
                    mode: mode.unwrap_or(m.mode() & 0o7777),
                };
                self.set(k.clone(), &h, meta);
                if m.is_dir() {
                    todo.push((h, k));
                }
            }
        }
        Ok(())
    }
}

/// One `name:…` line of passwd or group, by name.
fn upsert(lines: &mut Vec<String>, name: &str, line: String) {
    let prefix = format!("{name}:");
    match lines.iter_mut().find(|l| l.starts_with(&prefix)) {
        Some(l) => *l = line,
        None => lines.push(line),
    }
}

/// The uid and gid an image runs as (`run-as` resolved through the
/// image's passwd), `None` for root by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Merge the config's accounts into the packages' passwd/group, create
/// home directories owned by their users, and resolve `run-as`.
fn accounts(w: &mut RootWriter, cfg: &ImageConfig) -> Result<Option<RunAs>> {
    let read_lines = |w: &mut RootWriter, f: &str| -> Result<Vec<String>> {
        Ok(w.read_file(f)?
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    };
    let mut passwd = read_lines(w, "etc/passwd")?;
    let mut group = read_lines(w, "etc/group")?;
    let a = &cfg.accounts;
    if !a.users.is_empty() || !a.groups.is_empty() {
        if !passwd.iter().any(|l| l.starts_with("root:")) {
            passwd.insert(0, "root:x:0:0:root:/root:/bin/sh".into());
        }
        if !group.iter().any(|l| l.starts_with("root:")) {
            group.insert(0, "root:x:0:".into());
        }
        for g in &a.groups {
            upsert(
                &mut group,
                &g.name,
                format!("{}:x:{}:{}", g.name, g.gid, g.members.join(",")),
            );
        }
        for u in &a.users {
            upsert(
                &mut passwd,
                &u.name,
                format!(
                    "{}:x:{}:{}:{}:{}:{}",
                    u.name, u.uid, u.gid, u.name, u.home, u.shell
                ),
            );
        }
        let text = |l: &[String]| l.iter().map(|x| format!("{x}\n")).collect::<String>();
        w.write_file("etc/passwd", 0o644, text(&passwd).as_bytes())?;
        w.write_file("etc/group", 0o644, text(&group).as_bytes())?;
        for u in &a.users {
            home(w, u)?;
        }
    }
    let Some(run_as) = &a.run_as else {
        return Ok(None);
    };
    let field = |l: &str, i: usize| l.split(':').nth(i).map(str::to_string);
    let by_name = passwd
        .iter()
        .find(|l| field(l, 0).as_deref() == Some(run_as.value.as_str()));
    let by_uid = passwd
        .iter()
        .find(|l| field(l, 2).as_deref() == Some(run_as.value.as_str()));
    let ids = |l: &str| -> Option<(u32, u32)> {
        Some((field(l, 2)?.parse().ok()?, field(l, 3)?.parse().ok()?))
    };
    let found = by_name.or(by_uid).and_then(|l| ids(l));
    match found {
        Some((uid, gid)) => Ok(Some(RunAs {
            user: run_as.value.clone(),
            uid,
            gid,
        })),
        // A bare uid without a passwd entry still runs (as apko allows).
        None => match run_as.value.parse::<u32>() {
            Ok(uid) => Ok(Some(RunAs {
                user: run_as.value.clone(),
                uid,
                gid: uid,
            })),
            Err(_) => bail!(
                "{}: `run-as` {:?} is neither a uid nor a user of the image (users: {})",
                run_as.at,
                run_as.value,
                passwd
                    .iter()
                    .filter_map(|l| field(l, 0))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

fn home(w: &mut RootWriter, u: &UserAccount) -> Result<()> {
    let rel = u.home.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(());
    }
    w.mkdir(
        rel,
        Meta {
            uid: u.uid,
            gid: u.gid,
            mode: 0o755,
        },
    )
}

/// What [`finish`] decided.
pub struct Finished {
    pub overrides: Overrides,
    pub run_as: Option<RunAs>,
    pub packages: Vec<DbPackage>,
}

/// Apply the image configuration to an installed root.
pub fn finish(root: &Path, cfg: &ImageConfig) -> Result<Finished> {
    let (packages, acl) = read_db(root)?;
    let mut w = RootWriter::new(root);
    let repos: String = cfg
        .runtime_repositories
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    if repos.contains('\0') {
        bail!("a runtime repository contains NUL");
    }
    w.write_file("etc/apk/repositories", 0o644, repos.as_bytes())?;
    let run_as = accounts(&mut w, cfg)?;
    for p in &cfg.paths {
        w.apply(p).with_context(|| format!("{}: paths", p.at))?;
    }
    if !w.exists("etc/os-release") && !w.exists("usr/lib/os-release") {
        w.write_file("etc/os-release", 0o644, os_release(cfg).as_bytes())?;
    }
    // The database's owners first; what the image config set wins.
    let mut overrides = acl;
    overrides.extend(w.overrides);
    Ok(Finished {
        overrides,
        run_as,
        packages,
    })
}

fn os_release(cfg: &ImageConfig) -> String {
    let mut fields: Vec<(String, String)> = vec![
        ("ID".into(), "pkgbuild".into()),
        ("NAME".into(), "pkgbuild image".into()),
        ("PRETTY_NAME".into(), "pkgbuild image".into()),
    ];
    for (k, v) in &cfg.os_release {
        match fields.iter_mut().find(|(x, _)| x == k) {
            Some(slot) => slot.1 = v.clone(),
            None => fields.push((k.clone(), v.clone())),
        }
    }
    fields
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace(['\n', '\r'], " ")
                .replace(['"', '\\', '$', '`'], "");
            format!("{k}=\"{v}\"\n")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config;

    fn cfg(src: &str, dir: &Path) -> ImageConfig {
        let p = dir.join("c.yaml");
        fs::write(&p, src).unwrap();
        config::load(&p).unwrap()
    }

    fn fake_root(dir: &Path) -> PathBuf {
        let root = dir.join("root");
        fs::create_dir_all(root.join("lib/apk/db")).unwrap();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        // A package's hostile link: writes through it must stay inside.
        std::os::unix::fs::symlink("/", root.join("etc/escape")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        fs::write(
            root.join("lib/apk/db/installed"),
            "C:Q1abc=\nP:busybox\nV:1.36-r0\nA:x86_64\nL:GPL-2.0-only\nF:usr/bin\nR:busybox\na:0:0:4755\nR:sh\n\nC:Q1def=\nP:hello\nV:1.2.0-r0\nL:MIT\nF:usr/bin\nR:hello\n\n",
        )
        .unwrap();
        root
    }

    #[test]
    fn database_gives_packages_files_and_owners() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_root(dir.path());
        let (pkgs, acl) = read_db(&root).unwrap();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].files, ["usr/bin/busybox", "usr/bin/sh"]);
        assert_eq!(pkgs[1].license, "MIT");
        assert_eq!(acl["usr/bin/busybox"].mode, 0o4755);
    }

    #[test]
    fn accounts_paths_and_os_release_are_applied_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_root(dir.path());
        let c = cfg("contents:\n  repositories: [https://r.example.org]\naccounts:\n  groups:\n    - {groupname: app, gid: 65532}\n  users:\n    - {username: app, uid: 65532}\n  run-as: app\npaths:\n  - {path: /srv/data, type: directory, uid: 65532, gid: 65532, permissions: 0o750}\n  - {path: /etc/escape/pwned, type: empty-file}\n  - {path: /bin/ln-hello, type: symlink, source: hello}\n", dir.path());
        let f = finish(&root, &c).unwrap();
        let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
        assert!(
            passwd.contains("app:x:65532:65532:app:/home/app:/bin/sh"),
            "{passwd}"
        );
        assert!(passwd.starts_with("root:"), "{passwd}");
        assert_eq!(
            f.run_as,
            Some(RunAs {
                user: "app".into(),
                uid: 65532,
                gid: 65532
            })
        );
        assert_eq!(f.overrides["home/app"].uid, 65532);
        assert_eq!(f.overrides["srv/data"].mode, 0o750);
        // The link to `/` was resolved inside the root.
        assert!(root.join("pwned").exists());
        assert!(f.overrides.contains_key("pwned"));
        assert_eq!(
            fs::read_link(root.join("usr/bin/ln-hello")).unwrap(),
            Path::new("hello")
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/apk/repositories")).unwrap(),
            "https://r.example.org\n"
        );
        assert!(fs::read_to_string(root.join("etc/os-release"))
            .unwrap()
            .contains("ID=\"pkgbuild\""));
    }

    #[test]
    fn run_as_an_unknown_user_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = fake_root(dir.path());
        let c = cfg("accounts:\n  run-as: nobody\n", dir.path());
        let e = format!("{:#}", finish(&root, &c).err().unwrap());
        assert!(e.contains("c.yaml:2:11") && e.contains("nobody"), "{e}");
        let c = cfg("accounts:\n  run-as: 4242\n", dir.path());
        assert_eq!(finish(&root, &c).unwrap().run_as.unwrap().uid, 4242);
    }
}
