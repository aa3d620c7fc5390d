//! `<recipe>.lock.json`: the exact build environment of a recipe, per
//! architecture, in the shape of apko's lock file (`version`, `config`
//! with a checksum of what it was made from, `contents` with `keyring`,
//! `repositories` and `packages`), so tools that read apko locks read ours.
//!
//! A build with a lock installs exactly the files named there, checked
//! against their `C:` checksum and size, and reads no index. The config
//! checksum covers everything that decides the resolution (repositories,
//! keyring, requested packages, CLI additions); when it no longer matches,
//! the lock is stale and the build stops rather than silently resolving
//! something else.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const LOCK_VERSION: &str = "v1";

/// Largest lock file read: a few thousand packages fit in well under this.
const MAX_LOCK_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockFile {
    pub version: String,
    pub config: LockConfig,
    pub contents: LockContents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockConfig {
    /// The recipe's file name.
    pub name: String,
    /// `sha256:<hex>` of [`EnvironmentKey`] as JSON.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockContents {
    pub keyring: Vec<LockKey>,
    #[serde(default)]
    pub build_repositories: Vec<LockRepo>,
    pub repositories: Vec<LockRepo>,
    /// Every architecture's packages, each arch in install order.
    pub packages: Vec<LockPackage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockKey {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRepo {
    pub name: String,
    /// The index URL (`<root>/<arch>/APKINDEX.tar.gz`).
    pub url: String,
    pub architecture: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockPackage {
    pub name: String,
    /// The package file's URL (or local path).
    pub url: String,
    pub version: String,
    pub architecture: String,
    /// The repository root it came from, as the recipe names it.
    pub repository: String,
    /// `Q1…`: SHA-1 of the control member, the index's `C:`.
    pub checksum: String,
    /// File size, the index's `S:`.
    pub size: u64,
}

/// What a lock was made from: anything here changing makes it stale.
#[derive(Debug, Serialize)]
pub struct EnvironmentKey<'a> {
    pub repositories: &'a [String],
    pub keyring: &'a [String],
    pub packages: &'a [String],
}

impl EnvironmentKey<'_> {
    pub fn checksum(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("sha256:{}", hex(&Sha256::digest(json)))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `hello.yaml` → `hello.lock.json`, beside it.
pub fn default_path(recipe: &Path) -> PathBuf {
    let stem = recipe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "recipe".into());
    recipe.with_file_name(format!("{stem}.lock.json"))
}

impl LockFile {
    pub fn read(path: &Path) -> Result<LockFile> {
        use std::io::Read;
        let f = std::fs::File::open(path)
            .with_context(|| format!("{}: cannot open lock file", path.display()))?;
        let mut text = String::new();
        f.take(MAX_LOCK_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("{}: cannot read lock file", path.display()))?;
        if text.len() as u64 > MAX_LOCK_BYTES {
            bail!(
                "{}: lock file larger than {MAX_LOCK_BYTES} bytes",
                path.display()
            );
        }
        let lock: LockFile = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}:{}:{}: not a pkgbuild lock file: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })?;
        if lock.version != LOCK_VERSION {
            bail!(
                "{}: lock file version {:?}, expected {LOCK_VERSION:?}",
                path.display(),
                lock.version
            );
        }
        for p in &lock.contents.packages {
            let ok_name = !p.name.is_empty()
                && !p.name.contains(['/', '\0'])
                && !p.version.contains(['/', '\0'])
                && !p.name.starts_with('.');
            if !ok_name || !p.checksum.starts_with("Q1") {
                bail!(
                    "{}: package record {:?} {:?}: invalid name, version or checksum",
                    path.display(),
                    p.name,
                    p.version
                );
            }
        }
        Ok(lock)
    }

    /// Stop when the recipe's environment is no longer what the lock was
    /// made from.
    pub fn check_fresh(&self, path: &Path, key: &EnvironmentKey) -> Result<()> {
        let now = key.checksum();
        if self.config.checksum != now {
            bail!(
                "{}: the recipe's build environment changed since this lock was made ({} there, {now} now); run `pkgbuild lock` again",
                path.display(),
                self.config.checksum
            );
        }
        Ok(())
    }

    /// The packages locked for `arch`, in install order; none is an error
    /// naming the architectures the lock has.
    pub fn packages_for(&self, path: &Path, arch: &str) -> Result<Vec<&LockPackage>> {
        let pkgs: Vec<&LockPackage> = self
            .contents
            .packages
            .iter()
            .filter(|p| p.architecture == arch)
            .collect();
        if pkgs.is_empty() && !self.contents.packages.is_empty() {
            let mut archs: Vec<&str> = self
                .contents
                .packages
                .iter()
                .map(|p| p.architecture.as_str())
                .collect();
            archs.sort();
            archs.dedup();
            bail!(
                "{}: locked for {} only, not {arch}; run `pkgbuild lock --arch {arch}`",
                path.display(),
                archs.join(", ")
            );
        }
        Ok(pkgs)
    }

    /// Write atomically, pretty and with a final newline (it is committed
    /// and reviewed like source).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        crate::atomic::write(path, 0o644, text.as_bytes())
            .with_context(|| format!("{}: cannot write lock file", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(checksum: &str) -> LockFile {
        LockFile {
            version: LOCK_VERSION.into(),
            config: LockConfig {
                name: "hello.yaml".into(),
                checksum: checksum.into(),
            },
            contents: LockContents {
                packages: vec![LockPackage {
                    name: "busybox".into(),
                    url: "http://127.0.0.1:1/x86_64/busybox-1.36-r0.apk".into(),
                    version: "1.36-r0".into(),
                    architecture: "x86_64".into(),
                    repository: "http://127.0.0.1:1".into(),
                    checksum: "Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
                    size: 10,
                }],
                ..Default::default()
            },
        }
    }

    #[test]
    fn round_trips_and_detects_a_changed_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = default_path(&dir.path().join("hello.yaml"));
        assert_eq!(p.file_name().unwrap(), "hello.lock.json");
        let pk = ["busybox".to_string()];
        let key = EnvironmentKey {
            repositories: &[],
            keyring: &[],
            packages: &pk,
        };
        let l = lock(&key.checksum());
        l.write(&p).unwrap();
        let back = LockFile::read(&p).unwrap();
        assert_eq!(back, l);
        back.check_fresh(&p, &key).unwrap();
        let more = ["busybox".to_string(), "make".to_string()];
        let changed = EnvironmentKey {
            packages: &more,
            ..key
        };
        let err = back.check_fresh(&p, &changed).unwrap_err().to_string();
        assert!(err.contains("pkgbuild lock"), "{err}");
        assert_eq!(back.packages_for(&p, "x86_64").unwrap().len(), 1);
        let err = back.packages_for(&p, "aarch64").unwrap_err().to_string();
        assert!(err.contains("x86_64") && err.contains("aarch64"), "{err}");
    }

    #[test]
    fn hostile_lock_files_are_refused_with_a_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock.json");
        std::fs::write(&p, "{\"version\": 3").unwrap();
        let err = LockFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("x.lock.json:1:"), "{err}");
        let mut l = lock("sha256:0");
        l.contents.packages[0].name = "../../etc".into();
        l.write(&p).unwrap();
        assert!(LockFile::read(&p).is_err());
    }
}
