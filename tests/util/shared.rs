//! What test binaries share through `target/test-base/`: things slow to
//! make (the test key, the base repository) are made once by whichever
//! binary gets there first, while the others wait on a file lock and then
//! reuse them. A directory there is published by rename, so one that
//! exists is complete; it is only read afterwards.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// `<target>/test-base`, beside the binary under test (so `cargo clean`
/// removes it and each worktree has its own).
pub fn root() -> PathBuf {
    let bin = Path::new(super::bin());
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("the pkgbuild binary sits in <target>/<profile>/");
    target.join("test-base")
}

/// `root()/<name>`, filled by `make` (given an empty directory) the first
/// time any test binary asks for it. Concurrent callers wait for the one
/// that makes it; an error from `make` leaves nothing behind, so the next
/// caller tries again.
pub fn dir(name: &str, make: impl FnOnce(&Path) -> Result<(), String>) -> Result<PathBuf, String> {
    let root = root();
    let dest = root.join(name);
    if dest.is_dir() {
        return Ok(dest);
    }
    fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    // One lock per name: making one entry may need another (the base
    // repository needs the key), and a second lock on the same file from
    // this process would wait for itself.
    let lock_path = root.join(format!(".{name}.lock"));
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if dest.is_dir() {
        return Ok(dest);
    }
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(&root)
        .map_err(|e| format!("temporary directory in {}: {e}", root.display()))?;
    make(tmp.path())?;
    let built = tmp.keep();
    fs::rename(&built, &dest)
        .map_err(|e| format!("publish {} as {}: {e}", built.display(), dest.display()))?;
    Ok(dest)
}

/// After `keep` is published: remove the other entries named
/// `<prefix>...` (each new pkgbuild binary makes a new base repository, and
/// old ones only take space) and temporary directories a killed test
/// binary left a day or more ago. Only a test run of an older binary still
/// reading its own entry could notice.
pub fn prune(prefix: &str, keep: &Path) {
    let Ok(rd) = fs::read_dir(root()) else { return };
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    for e in rd.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let stale_tmp = name.starts_with(".tmp-")
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < day_ago);
        let old_entry = name.starts_with(prefix) && path != keep;
        if stale_tmp || old_entry {
            let _ = fs::remove_dir_all(&path);
        }
        if old_entry {
            let _ = fs::remove_file(root().join(format!(".{name}.lock")));
        }
    }
}
