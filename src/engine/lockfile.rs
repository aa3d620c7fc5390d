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
//!
//! Test environments are locked too, under an optional top-level `tests`
//! key (one entry per package with a hermetic test), each with its own
//! config checksum. The package under test, and any other package the
//! same recipe builds, is rebuilt on every `pkgbuild build`: a checksum
//! would be stale at once, so those are recorded by exact version only
//! (`rebuilt`) and taken from the output repository at test time.

use std::collections::BTreeMap;
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
    /// Each hermetic test environment, by the name of the package tested.
    /// Absent in locks made before tests were locked, which still read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tests: BTreeMap<String, LockTest>,
}

/// One package's locked test environment.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockTest {
    pub config: LockTestConfig,
    pub repositories: Vec<LockRepo>,
    /// Every architecture's packages, each arch in install order, without
    /// the packages the recipe itself builds.
    pub packages: Vec<LockPackage>,
    /// The packages of this recipe the environment needs (the package
    /// under test first), pinned by version only.
    #[serde(default)]
    pub rebuilt: Vec<LockRebuilt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LockTestConfig {
    /// `sha256:<hex>` of the test's [`EnvironmentKey`] as JSON.
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRebuilt {
    pub name: String,
    pub version: String,
    pub architecture: String,
}

/// The part of a lock one environment installs, checked fresh.
#[derive(Debug, Clone)]
pub struct LockedEnv<'a> {
    /// The lock file, for messages.
    pub path: &'a Path,
    /// Checksum-pinned files, in install order.
    pub packages: Vec<&'a LockPackage>,
    /// Packages taken from the output repository by exact version.
    pub rebuilt: Vec<&'a LockRebuilt>,
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
        format!("sha256:{}", hex::encode(Sha256::digest(json)))
    }
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
        let f = crate::open::regular(path)
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
        let tests = lock.tests.values().flat_map(|t| &t.packages);
        for p in lock.contents.packages.iter().chain(tests) {
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
        for (name, t) in &lock.tests {
            for r in &t.rebuilt {
                if r.name.is_empty() || r.version.is_empty() {
                    bail!(
                        "{}: tests.{name}: rebuilt package record {:?} {:?}: empty name or version",
                        path.display(),
                        r.name,
                        r.version
                    );
                }
            }
        }
        Ok(lock)
    }

    /// The build environment for `arch`, after checking the lock is fresh.
    pub fn build_env<'a>(
        &'a self,
        path: &'a Path,
        key: &EnvironmentKey,
        arch: &str,
    ) -> Result<LockedEnv<'a>> {
        self.check_fresh(path, key)?;
        Ok(LockedEnv {
            path,
            packages: self.packages_for(path, arch)?,
            rebuilt: Vec::new(),
        })
    }

    /// The test environment of `package` for `arch`, after checking the
    /// lock has one and it was made from this environment.
    pub fn test_env<'a>(
        &'a self,
        path: &'a Path,
        package: &str,
        key: &EnvironmentKey,
        arch: &str,
    ) -> Result<LockedEnv<'a>> {
        let Some(t) = self.tests.get(package) else {
            bail!(
                "{}: locks no test environment for {package}; run `pkgbuild lock` again",
                path.display()
            );
        };
        let now = key.checksum();
        if t.config.checksum != now {
            bail!(
                "{}: the test environment of {package} changed since this lock was made ({} there, {now} now); run `pkgbuild lock` again",
                path.display(),
                t.config.checksum
            );
        }
        let packages: Vec<&LockPackage> = t
            .packages
            .iter()
            .filter(|p| p.architecture == arch)
            .collect();
        let rebuilt: Vec<&LockRebuilt> = t
            .rebuilt
            .iter()
            .filter(|r| r.architecture == arch)
            .collect();
        if packages.is_empty() && rebuilt.is_empty() {
            let mut archs: Vec<&str> = t
                .packages
                .iter()
                .map(|p| p.architecture.as_str())
                .chain(t.rebuilt.iter().map(|r| r.architecture.as_str()))
                .collect();
            archs.sort();
            archs.dedup();
            bail!(
                "{}: the test environment of {package} is locked for {} only, not {arch}; run `pkgbuild lock --arch {arch}`",
                path.display(),
                if archs.is_empty() { "no architecture".to_string() } else { archs.join(", ") }
            );
        }
        Ok(LockedEnv {
            path,
            packages,
            rebuilt,
        })
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
            tests: BTreeMap::new(),
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

    fn test_entry(checksum: &str) -> LockTest {
        let mut pkg = lock("x").contents.packages[0].clone();
        pkg.name = "pinned-data".into();
        LockTest {
            config: LockTestConfig {
                checksum: checksum.into(),
            },
            repositories: Vec::new(),
            packages: vec![pkg],
            rebuilt: vec![LockRebuilt {
                name: "hello".into(),
                version: "1.2.0-r0".into(),
                architecture: "x86_64".into(),
            }],
        }
    }

    #[test]
    fn test_environments_are_locked_under_tests_and_checked_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hello.lock.json");
        let build_pk = ["busybox".to_string()];
        let build_key = EnvironmentKey {
            repositories: &[],
            keyring: &[],
            packages: &build_pk,
        };
        let test_pk = ["hello=1.2.0-r0".to_string(), "pinned-data".to_string()];
        let repos = ["http://127.0.0.1:1".to_string()];
        let test_key = EnvironmentKey {
            repositories: &repos,
            keyring: &[],
            packages: &test_pk,
        };
        let mut l = lock(&build_key.checksum());
        l.tests
            .insert("hello".into(), test_entry(&test_key.checksum()));
        l.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["tests"]["hello"]["rebuilt"][0]["version"], "1.2.0-r0");
        assert_eq!(v["contents"]["packages"][0]["name"], "busybox");
        let back = LockFile::read(&p).unwrap();
        assert_eq!(back, l);

        let env = back.test_env(&p, "hello", &test_key, "x86_64").unwrap();
        assert_eq!(env.packages.len(), 1);
        assert_eq!(env.packages[0].name, "pinned-data");
        assert_eq!(env.rebuilt[0].name, "hello");
        let env = back.build_env(&p, &build_key, "x86_64").unwrap();
        assert_eq!(env.packages[0].name, "busybox");
        assert!(env.rebuilt.is_empty());

        let err = back
            .test_env(&p, "hello-dev", &test_key, "x86_64")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hello-dev") && err.contains("pkgbuild lock"),
            "{err}"
        );
        let newer = ["hello=1.3.0-r0".to_string(), "pinned-data".to_string()];
        let changed = EnvironmentKey {
            packages: &newer,
            ..test_key
        };
        let err = back
            .test_env(&p, "hello", &changed, "x86_64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("test environment of hello changed"), "{err}");
        let err = back
            .test_env(&p, "hello", &test_key, "aarch64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x86_64") && err.contains("aarch64"), "{err}");
    }

    #[test]
    fn locks_without_tests_still_read_and_write_no_tests_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.lock.json");
        let l = lock("sha256:0");
        l.write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("\"tests\""), "{text}");
        assert!(LockFile::read(&p).unwrap().tests.is_empty());
        let key = EnvironmentKey {
            repositories: &[],
            keyring: &[],
            packages: &[],
        };
        let err = LockFile::read(&p)
            .unwrap()
            .test_env(&p, "hello", &key, "x86_64")
            .unwrap_err()
            .to_string();
        assert!(err.contains("locks no test environment for hello"), "{err}");
    }

    #[test]
    fn hostile_test_records_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock.json");
        let mut l = lock("sha256:0");
        let mut t = test_entry("sha256:1");
        t.packages[0].name = "../../etc".into();
        l.tests.insert("hello".into(), t);
        l.write(&p).unwrap();
        assert!(LockFile::read(&p).is_err());
        let mut t = test_entry("sha256:1");
        t.rebuilt[0].version = String::new();
        l.tests.insert("hello".into(), t);
        l.write(&p).unwrap();
        let err = LockFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("tests.hello"), "{err}");
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
