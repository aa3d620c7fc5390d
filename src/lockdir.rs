//! Private directories that clean up after a build killed outright.
//!
//! A build removes its workspace (`$TMPDIR/pkgbuild-ws-*`) and staging
//! directory (`<repo>/<arch>/.pkgbuild-staging-*`) when it ends, but a
//! SIGKILL gives it no chance. So each such directory holds a lock file
//! that its build keeps locked (`flock`) for as long as it lives; the
//! kernel drops the lock when the process dies, however it dies. Before a
//! build creates its own, it removes the siblings of the same prefix whose
//! lock it can take: nobody is using them.
//!
//! Only what is provably a dead pkgbuild directory goes: a real directory
//! (never a symlink) owned by our uid, holding a regular lock file owned by
//! us that nobody holds. The lock file appears only once locked (it is
//! locked under a temporary name and renamed into place), so a directory
//! being created is never taken for a leftover; a directory without a lock
//! file (a kept workspace, or one from an older pkgbuild) is left alone.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file inside each directory.
pub const LOCK_FILE: &str = ".pkgbuild-lock";
/// Its name until it is locked.
const PENDING_LOCK_FILE: &str = ".pkgbuild-lock.new";

/// A directory locked for the life of this value and removed on drop.
pub struct LockedDir {
    // Declared first so it is dropped first: the directory is removed
    // while it is still locked, so no cleanup races the removal.
    dir: tempfile::TempDir,
    lock: File,
}

impl LockedDir {
    /// Create `<parent>/<prefix><random>` (mode 0700), after removing the
    /// stale directories with that prefix in `parent` ([`remove_stale`]).
    pub fn create(parent: &Path, prefix: &str) -> io::Result<LockedDir> {
        remove_stale(parent, prefix);
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        let lock = take_lock(dir.path())?;
        Ok(LockedDir { dir, lock })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keep the directory beyond this process. Its lock file goes first,
    /// so a later build does not take it for a leftover.
    pub fn keep(self) -> PathBuf {
        let LockedDir { dir, lock } = self;
        let _ = fs::remove_file(dir.path().join(LOCK_FILE));
        let path = dir.keep();
        drop(lock);
        path
    }
}

/// Lock a fresh file, then give it its name: whoever finds `LOCK_FILE`
/// finds it locked until this process lets go.
fn take_lock(dir: &Path) -> io::Result<File> {
    let pending = dir.join(PENDING_LOCK_FILE);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pending)?;
    file.lock()?;
    fs::rename(&pending, dir.join(LOCK_FILE))?;
    Ok(file)
}

/// Remove the directories `<parent>/<prefix>*` left by builds that died
/// (see the module docs for what counts); returns the ones removed.
/// Problems are not errors: what cannot be judged or removed stays.
pub fn remove_stale(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let uid = rustix::process::getuid().as_raw();
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .filter(|dir| remove_if_stale(dir, uid))
        .collect()
}

fn remove_if_stale(dir: &Path, uid: u32) -> bool {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() && m.uid() == uid => {}
        _ => return false,
    }
    let lock_path = dir.join(LOCK_FILE);
    // No following a symlink, no hanging on a fifo planted as the lock.
    let Ok(lock) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&lock_path)
    else {
        return false;
    };
    let Ok(held) = lock.metadata() else {
        return false;
    };
    if !held.is_file() || held.uid() != uid || lock.try_lock().is_err() {
        return false;
    }
    // The lock is ours now; check it is still that directory's lock file
    // and not one its owner unlinked (to keep the directory) and let go.
    match fs::symlink_metadata(&lock_path) {
        Ok(m) if m.ino() == held.ino() && m.dev() == held.dev() => {}
        _ => return false,
    }
    // remove_dir_all never follows symlinks inside the tree.
    fs::remove_dir_all(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn stale(parent: &Path, name: &str) -> PathBuf {
        let dir = parent.join(name);
        fs::create_dir_all(dir.join("build/sub")).unwrap();
        fs::write(dir.join("build/sub/f"), "x").unwrap();
        fs::write(dir.join(LOCK_FILE), "").unwrap();
        dir
    }

    #[test]
    fn only_unlocked_directories_with_a_lock_file_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let dead = stale(p, "pkgbuild-ws-dead");
        let busy = stale(p, "pkgbuild-ws-busy");
        let held = File::open(busy.join(LOCK_FILE)).unwrap();
        held.lock().unwrap();
        let unlocked = p.join("pkgbuild-ws-nolock");
        fs::create_dir(&unlocked).unwrap();
        let other_prefix = stale(p, "other-dead");
        // A symlink to a dead-looking directory, and a lock that is a symlink.
        let target = stale(p, "victim");
        symlink(&target, p.join("pkgbuild-ws-link")).unwrap();
        let linked_lock = p.join("pkgbuild-ws-linkedlock");
        fs::create_dir(&linked_lock).unwrap();
        symlink(target.join(LOCK_FILE), linked_lock.join(LOCK_FILE)).unwrap();

        let removed = remove_stale(p, "pkgbuild-ws-");
        assert_eq!(removed.as_slice(), std::slice::from_ref(&dead));
        assert!(!dead.exists());
        for kept in [&busy, &unlocked, &other_prefix, &target, &linked_lock] {
            assert!(kept.is_dir(), "{} was removed", kept.display());
        }
        assert!(target.join("build/sub/f").is_file());
        assert!(fs::symlink_metadata(p.join("pkgbuild-ws-link")).is_ok());
        // Once its owner lets go, the busy one is stale too.
        drop(held);
        assert_eq!(remove_stale(p, "pkgbuild-ws-"), [busy]);
    }

    #[test]
    fn a_live_dir_survives_cleanup_and_goes_on_drop_a_kept_one_stays() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let live = LockedDir::create(p, "x-").unwrap();
        assert!(live.path().join(LOCK_FILE).is_file());
        assert!(!live.path().join(PENDING_LOCK_FILE).exists());
        assert!(remove_stale(p, "x-").is_empty());
        let path = live.path().to_path_buf();
        drop(live);
        assert!(!path.exists());

        let kept = LockedDir::create(p, "x-").unwrap().keep();
        assert!(kept.is_dir() && !kept.join(LOCK_FILE).exists());
        assert!(remove_stale(p, "x-").is_empty());
        assert!(kept.is_dir());
    }
}
