//! What a build killed with SIGKILL leaves behind is cleaned up by the next
//! build: its workspace in `$TMPDIR` and any staging directory in the
//! repository, each as soon as no live build holds its lock. Directories
//! in use, without a lock file, or not directories at all stay.

mod util;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use pkgbuild::lockdir::LOCK_FILE;
use util::*;

/// `pkgbuild build` with `TMPDIR` pointed at `tmpdir`.
fn build_cmd(recipe: &Path, out: &Path, tmpdir: &Path) -> Command {
    let mut cmd = build_command(recipe, out, &[]);
    cmd.env("TMPDIR", tmpdir);
    cmd
}

/// Names in `dir` starting with `prefix`.
fn named(dir: &Path, prefix: &str) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// A directory as a killed build leaves it: a lock file nobody holds.
fn leftover(parent: &Path, name: &str, file: &str) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(LOCK_FILE), "").unwrap();
    fs::write(dir.join(file), "half written").unwrap();
    dir
}

#[test]
fn the_next_build_removes_what_a_killed_build_left_and_nothing_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let out = tmp.path().join("repo");
    let arch_dir = out.join(arch());
    // Recipes in a directory of their own: it is the builds' source
    // directory, copied into the workspace, so it must not hold TMPDIR.
    let recipes = tmp.path().join("recipes");
    fs::create_dir(&recipes).unwrap();

    // A real build, killed in the middle of its step.
    let slow = write_recipe(
        &recipes,
        "slow",
        "package:\n  name: slow\n  version: 1.0.0\n  epoch: 0\n  description: s\npipeline:\n  - runs: |\n      echo started\n      sleep 60\n",
    );
    kill_when_printed(build_cmd(&slow, &out, &tmpdir), "started");
    let killed = named(&tmpdir, "pkgbuild-ws-");
    assert_eq!(killed.len(), 1, "the killed build's workspace: {killed:?}");
    let killed = tmpdir.join(killed.first().unwrap());
    assert!(killed.join(LOCK_FILE).is_file());

    // A workspace some other build is using (the test holds its lock), a
    // kept one (no lock file), and a symlink to a leftover elsewhere.
    let busy = leftover(&tmpdir, "pkgbuild-ws-busy", "f");
    let held = File::open(busy.join(LOCK_FILE)).unwrap();
    held.lock().unwrap();
    fs::create_dir(tmpdir.join("pkgbuild-ws-kept")).unwrap();
    let elsewhere = leftover(tmp.path(), "elsewhere", "f");
    std::os::unix::fs::symlink(&elsewhere, tmpdir.join("pkgbuild-ws-link")).unwrap();
    // Staging directories with half-written packages: a dead one and one
    // in use; neither may reach the index.
    leftover(&arch_dir, ".pkgbuild-staging-dead", "slow-1.0.0-r0.apk");
    let staging_busy = leftover(&arch_dir, ".pkgbuild-staging-busy", "slow-1.0.0-r0.apk");
    let held_staging = File::open(staging_busy.join(LOCK_FILE)).unwrap();
    held_staging.lock().unwrap();

    let fine = write_recipe(
        &recipes,
        "fine",
        "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/usr/share/fine && echo x > ${{targets.destdir}}/usr/share/fine/f\n",
    );
    let res = build_cmd(&fine, &out, &tmpdir).output().unwrap();
    assert_ok(&res);

    assert!(
        !killed.exists(),
        "the killed build's workspace is still there"
    );
    assert_eq!(
        named(&tmpdir, "pkgbuild-ws-"),
        BTreeSet::from(
            ["pkgbuild-ws-busy", "pkgbuild-ws-kept", "pkgbuild-ws-link"].map(String::from)
        ),
    );
    assert!(elsewhere.join("f").is_file() && elsewhere.join(LOCK_FILE).is_file());
    assert_eq!(
        named(&arch_dir, ".pkgbuild-staging-"),
        BTreeSet::from([".pkgbuild-staging-busy".to_string()]),
    );
    assert!(staging_busy.join("slow-1.0.0-r0.apk").is_file());
    let index = index_text(&arch_dir.join("APKINDEX.tar.gz"));
    assert!(
        index.contains("P:fine\n") && !index.contains("P:slow"),
        "{index}"
    );

    // Once their owner lets go, the next build takes those too.
    drop(held);
    drop(held_staging);
    assert_ok(&build_cmd(&fine, &out, &tmpdir).output().unwrap());
    assert!(!busy.exists() && !staging_busy.exists());
}
