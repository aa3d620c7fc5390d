//! Regression tests for the repository-integrity and hostile-input faults
//! of issue 11, driven through the real binary where the fault was seen.

mod util;

use std::fs;
use std::path::{Path, PathBuf};

use pkgbuild::apk::index::Index;
use pkgbuild::apk::package::{write_package, PackageError, PackageSpec, SignOptions};
use pkgbuild::apk::pkginfo::PkgInfo;
use pkgbuild::apk::sign::SigningKey;
use util::*;

/// A small signed package `name-version.apk` in `out` holding `content`.
fn make_package(out: &Path, name: &str, version: &str, content: &str) -> PathBuf {
    let key = SigningKey::load(test_key()).unwrap();
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("usr/share").join(name)).unwrap();
    fs::write(root.path().join("usr/share").join(name).join("f"), content).unwrap();
    let spec = PackageSpec {
        root: root.path().to_path_buf(),
        info: PkgInfo {
            name: name.into(),
            version: version.into(),
            arch: "x86_64".into(),
            description: format!("{name} test"),
            license: "MIT".into(),
            ..Default::default()
        },
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let sign = SignOptions {
        key: Some(&key),
        legacy_sha1: false,
    };
    write_package(&spec, &sign, out).unwrap().path
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const COPY_ALL: &str = "package:\n  name: copier\n  version: 1.0.0\n  epoch: 0\n  description: c\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/copier\n      for f in * .*; do if [ -f \"$f\" ]; then cp \"$f\" ${{targets.destdir}}/usr/share/copier/; fi; done\n";

#[test]
fn the_signing_key_beside_the_recipe_never_reaches_the_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "copier", COPY_ALL);
    // The common layout: the key lives in the recipe's folder.
    let key = tmp.path().join("repo-key.rsa");
    fs::copy(test_key(), &key).unwrap();
    fs::write(tmp.path().join("repo-key.rsa.pub"), "public half").unwrap();
    fs::write(tmp.path().join("data.txt"), "kept").unwrap();
    let out = tmp.path().join("repo");
    let home = tmp.path().join("home");
    let res = util::cmd()
        .arg("build")
        .arg(&recipe)
        .arg("--out-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(&key)
        .arg("--runner")
        .arg("host")
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_ok(&res);
    let names: Vec<String> = entries(&apk(&out, "copier-1.0.0-r0.apk"))
        .into_keys()
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("copier/data.txt")),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("usr/") && n.contains("repo-key")),
        "key packaged: {names:?}"
    );
}

#[test]
fn a_private_key_in_the_output_is_refused_naming_file_and_package() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "leaky",
        "package:\n  name: leaky\n  version: 1.0.0\n  epoch: 0\n  description: l\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/etc/leaky\n      printf '\\n-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n' > ${{targets.destdir}}/etc/leaky/id.pem\n",
    );
    let out = tmp.path().join("repo");
    let res = build(&recipe, &out, &["--runner", "host"]);
    assert!(!res.status.success(), "{}", show(&res));
    let err = stderr(&res);
    assert!(err.contains("etc/leaky/id.pem"), "{err}");
    assert!(err.contains("leaky"), "{err}");
    assert!(err.contains("private key"), "{err}");
    assert!(!apk(&out, "leaky-1.0.0-r0.apk").exists());
}

#[test]
fn the_writer_refuses_every_kind_of_pem_private_key() {
    for marker in [
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    ] {
        let root = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::write(root.path().join("etc/k"), format!("{marker}\nAAAA\n")).unwrap();
        let spec = PackageSpec {
            root: root.path().to_path_buf(),
            info: PkgInfo {
                name: "k".into(),
                version: "1-r0".into(),
                arch: "x86_64".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = write_package(&spec, &SignOptions::default(), out.path()).unwrap_err();
        assert!(
            matches!(&err, PackageError::PrivateKey { path, .. } if path.contains("etc/k")),
            "{marker}: {err}"
        );
    }
    // A public key, or a key quoted in a document, is fine.
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::write(root.path().join("pub.pem"), "-----BEGIN PUBLIC KEY-----\n").unwrap();
    fs::write(
        root.path().join("README"),
        "Example:\n-----BEGIN PRIVATE KEY-----\n",
    )
    .unwrap();
    let spec = PackageSpec {
        root: root.path().to_path_buf(),
        info: PkgInfo {
            name: "k".into(),
            version: "1-r0".into(),
            arch: "x86_64".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    write_package(&spec, &SignOptions::default(), out.path()).unwrap();
}

#[test]
fn concurrent_index_merges_lose_no_record() {
    let tmp = tempfile::tempdir().unwrap();
    let pkgs = tmp.path().join("pkgs");
    fs::create_dir_all(&pkgs).unwrap();
    let out = tmp.path().join("repo/APKINDEX.tar.gz");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let lanes: Vec<Vec<PathBuf>> = ["a", "b"]
        .iter()
        .map(|lane| {
            (0..25)
                .map(|i| make_package(&pkgs, &format!("{lane}{i}"), "1.0-r0", lane))
                .collect()
        })
        .collect();
    // Each round starts both merges at once, so that without a lock they
    // read the same old index and one write drops the other's record.
    let start = std::sync::Barrier::new(2);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for lane in &lanes {
            let (out, start, failures) = (&out, &start, &failures);
            s.spawn(move || {
                for p in lane {
                    start.wait();
                    let res = util::cmd()
                        .args(["index", "--merge", "-o"])
                        .arg(out)
                        .arg(p)
                        .output()
                        .unwrap();
                    // No assert here: a panic would leave the other lane
                    // waiting at the barrier for ever.
                    if !res.status.success() {
                        failures.lock().unwrap().push(show(&res));
                    }
                }
            });
        }
    });
    assert_eq!(failures.into_inner().unwrap(), Vec::<String>::new());
    let index = Index::read(&out).unwrap();
    assert_eq!(index.entries.len(), 50);
}

fn named(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn the_next_build_removes_control_dirs_and_temp_indexes_of_a_killed_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let recipes = tmp.path().join("recipes");
    fs::create_dir(&recipes).unwrap();
    let out = tmp.path().join("repo");
    let slow = write_recipe(
        &recipes,
        "slow",
        "package:\n  name: slow\n  version: 1.0.0\n  epoch: 0\n  description: s\npipeline:\n  - runs: |\n      echo started\n      sleep 60\n",
    );
    let mut cmd = build_command(&slow, &out, &[]);
    cmd.env("TMPDIR", &tmpdir);
    kill_when_printed(cmd, "started");
    assert_eq!(named(&tmpdir, "pkgbuild-control-").len(), 1);
    // What a build killed while writing the index leaves.
    let arch_dir = out.join(arch());
    fs::create_dir_all(&arch_dir).unwrap();
    let temp_index = arch_dir.join(".APKINDEX.tar.gz.Xy12Ab.tmp");
    fs::write(&temp_index, "half an index").unwrap();

    let fine = write_recipe(
        &recipes,
        "fine",
        "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/fine\n      echo ok > ${{targets.destdir}}/usr/share/fine/f\n",
    );
    let mut cmd = build_command(&fine, &out, &[]);
    assert_ok(&cmd.env("TMPDIR", &tmpdir).output().unwrap());
    assert_eq!(named(&tmpdir, "pkgbuild-control-"), Vec::<String>::new());
    assert_eq!(named(&arch_dir, ".APKINDEX"), Vec::<String>::new());
}

#[test]
fn an_unreadable_package_in_the_repository_is_named_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let arch_dir = out.join(arch());
    fs::create_dir_all(&arch_dir).unwrap();
    fs::write(arch_dir.join("junk-1.0-r0.apk"), "not a package").unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "fine",
        "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/fine\n      echo ok > ${{targets.destdir}}/usr/share/fine/f\n",
    );
    let res = build(&recipe, &out, &[]);
    assert_ok(&res);
    let err = stderr(&res);
    assert!(err.contains("junk-1.0-r0.apk"), "{err}");
    assert!(err.contains("left out of the index"), "{err}");
    let index = Index::read(&arch_dir.join("APKINDEX.tar.gz")).unwrap();
    let names: Vec<_> = index.entries.iter().map(|e| e.info.name.as_str()).collect();
    assert_eq!(names, ["fine"]);
    // The next build of something else still works.
    assert_ok(&build(&recipe, &out, &[]));
}

/// A rebuild at the same version killed after its package was renamed in
/// but before the index was: the index's C: is the old package's. The
/// next build must not trust that entry.
#[test]
fn a_stale_index_entry_is_repaired_by_the_next_build() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let arch_dir = out.join(arch());
    let pkgs = tmp.path().join("pkgs");
    fs::create_dir_all(&pkgs).unwrap();
    fs::create_dir_all(&arch_dir).unwrap();
    // Same name, version and size, different content: different C:.
    let old = make_package(&pkgs, "same", "1.0-r0", "aaaa");
    let new_dir = pkgs.join("new");
    fs::create_dir_all(&new_dir).unwrap();
    let size = |p: &Path| fs::metadata(p).unwrap().len();
    let new = (0..200)
        .map(|i| make_package(&new_dir, "same", "1.0-r0", &format!("b{i:03}")))
        .find(|p| size(p) == size(&old))
        .expect("no content of the same compressed size");
    let index = arch_dir.join("APKINDEX.tar.gz");
    assert_ok(&pkgbuild(&[
        "index".as_ref(),
        "-o".as_ref(),
        index.as_os_str(),
        old.as_os_str(),
    ]));
    fs::copy(&new, arch_dir.join("same-1.0-r0.apk")).unwrap();

    let recipe = write_recipe(
        tmp.path(),
        "fine",
        "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/fine\n      echo ok > ${{targets.destdir}}/usr/share/fine/f\n",
    );
    assert_ok(&build(&recipe, &out, &[]));
    let index = Index::read(&index).unwrap();
    for e in &index.entries {
        let file = arch_dir.join(format!("{}-{}.apk", e.info.name, e.info.version));
        let on_disk = pkgbuild::apk::index::IndexEntry::from_package(&file).unwrap();
        assert_eq!(
            e.checksum_field(),
            on_disk.checksum_field(),
            "{}",
            e.info.name
        );
    }
    assert_eq!(index.entries.len(), 2);
}

/// A pipe whose reading end is already closed: every write to it fails
/// with EPIPE (Rust ignores SIGPIPE).
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn closed_stdout_and_stderr_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write_recipe(tmp.path(), "bad", "package:\n  name: bad\npipline: []\n");
    let res = util::cmd()
        .arg("compile")
        .arg(&bad)
        .stdout(std::process::Stdio::null())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2));

    let pkg = make_package(tmp.path(), "p", "1.0-r0", "x");
    let index = tmp.path().join("APKINDEX.tar.gz");
    let res = util::cmd()
        .args(["index", "-o"])
        .arg(&index)
        .arg(&pkg)
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(0));
    assert!(index.is_file());
}

/// An unsigned package `name-1.0-r0.apk` whose `.PKGINFO` says
/// `builddate = <builddate>` (otherwise complete, with its datahash).
fn package_with_builddate(dir: &Path, name: &str, builddate: &str) -> PathBuf {
    use pkgbuild::apk::gzip::gzip_member;
    use pkgbuild::apk::tar::memory_tar;
    let data = gzip_member(&memory_tar(&[("usr/f", b"x")], 0o644, 0, true));
    let pkginfo = format!(
        "pkgname = {name}\npkgver = 1.0-r0\narch = x86_64\nsize = 1\nbuilddate = {builddate}\ndatahash = {}\n",
        sha256_hex(&data)
    );
    let control = gzip_member(&memory_tar(
        &[(".PKGINFO", pkginfo.as_bytes())],
        0o644,
        0,
        false,
    ));
    let path = dir.join(format!("{name}-1.0-r0.apk"));
    fs::write(&path, [control, data].concat()).unwrap();
    path
}

#[test]
fn an_out_of_range_builddate_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = package_with_builddate(tmp.path(), "fine", "1700000000");
    let index = tmp.path().join("APKINDEX.tar.gz");
    let idx = |pkg: &Path| {
        util::cmd()
            .args(["index", "-o"])
            .arg(&index)
            .arg(pkg)
            .output()
            .unwrap()
    };
    assert_ok(&idx(&ok));
    for bad in ["99999999999", "soon", "-1"] {
        let pkg = package_with_builddate(tmp.path(), "late", bad);
        let res = idx(&pkg);
        assert_eq!(res.status.code(), Some(1), "{bad}: {}", show(&res));
        let err = stderr(&res);
        assert!(err.contains("late-1.0-r0.apk"), "{err}");
        assert!(err.contains("builddate"), "{err}");
    }
    // The same in an index read back (t:) is refused too, not a panic.
    let text = "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:x\nV:1-r0\nt:99999999999\n\n";
    let err = Index::parse_text(text).unwrap_err().to_string();
    assert!(err.contains("t:99999999999"), "{err}");
}

#[test]
fn a_garbage_signing_key_names_the_file_and_what_was_expected() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("garbage.rsa");
    fs::write(&key, "hello\n").unwrap();
    let recipe = write_recipe(tmp.path(), "fine", "package:\n  name: fine\n  version: 1.0.0\n  epoch: 0\n  description: f\npipeline:\n  - runs: true\n");
    let res = util::cmd()
        .arg("build")
        .arg(&recipe)
        .arg("--signing-key")
        .arg(&key)
        .arg("--out-dir")
        .arg(tmp.path().join("repo"))
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = stderr(&res);
    assert!(err.contains("garbage.rsa"), "{err}");
    assert!(err.contains("PKCS#1") && err.contains("PKCS#8"), "{err}");
    assert!(err.contains("private key"), "{err}");
}

#[test]
fn a_huge_recipe_value_is_not_echoed_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let huge = "9".repeat(1 << 20);
    for (name, body) in [
        (
            "version",
            format!("package:\n  name: v\n  version: 1.0.0-{huge}\n  epoch: 0\n"),
        ),
        (
            "key",
            // YAML caps simple keys at 1024 characters.
            format!(
                "package:\n  name: k\n  version: 1.0.0\n  epoch: 0\nx{}: 1\n",
                &huge[..1000]
            ),
        ),
        (
            "epoch",
            format!("package:\n  name: u\n  version: 1.0.0\n  epoch: x{huge}\n"),
        ),
    ] {
        let recipe = write_recipe(tmp.path(), name, &body);
        let res = util::cmd().arg("compile").arg(&recipe).output().unwrap();
        assert_eq!(res.status.code(), Some(2), "{name}: {}", show(&res).len());
        let err = stderr(&res);
        assert!(err.len() < 1000, "{name}: {} bytes of error", err.len());
        assert!(err.contains(&format!("{name}.yaml:")), "{name}: {err}");
        assert!(err.contains("bytes)"), "{name}: {err}");
    }
}

#[test]
fn keep_workspace_keeps_it_when_the_build_fails_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().join("tmp");
    fs::create_dir(&tmpdir).unwrap();
    let recipes = tmp.path().join("recipes");
    fs::create_dir(&recipes).unwrap();
    // A fetch from a closed local port fails while sources are prepared,
    // before the first step.
    let (listener, port) = quiet_listener();
    drop(listener);
    let recipe = write_recipe(
        &recipes,
        "early",
        &format!(
            "package:\n  name: early\n  version: 1.0.0\n  epoch: 0\n  description: e\npipeline:\n  - uses: fetch\n    with:\n      uri: http://127.0.0.1:{port}/early.tar.gz\n      expected-sha256: {}\n",
            "0".repeat(64)
        ),
    );
    for runner in ["bwrap", "host"] {
        if runner == "bwrap" && !bwrap_or_skip() {
            continue;
        }
        let mut cmd = build_command(
            &recipe,
            &tmp.path().join("repo"),
            &["--keep-workspace", "--runner", runner],
        );
        let res = cmd.env("TMPDIR", &tmpdir).output().unwrap();
        assert_eq!(res.status.code(), Some(1), "{}", show(&res));
        let err = stderr(&res);
        let kept = err
            .lines()
            .find_map(|l| l.split("workspace kept at ").nth(1))
            .unwrap_or_else(|| panic!("{runner}: no kept workspace in: {err}"));
        assert!(Path::new(kept.trim()).is_dir(), "{runner}: {kept}");
    }
    // Without the flag an early failure leaves nothing.
    let mut cmd = build_command(&recipe, &tmp.path().join("repo"), &["--runner", "host"]);
    let res = cmd.env("TMPDIR", &tmpdir).output().unwrap();
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(!stderr(&res).contains("workspace kept"));
    let host = tmpdir.join(format!("pkgbuild-host-{}", our_uid()));
    assert!(!host.join(format!("early-{}", arch())).exists());
}

fn our_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file we just created is our uid.
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().metadata().unwrap().uid()
}

/// A signed package whose data holds `files` files of `size` zero bytes.
fn package_of(dir: &Path, name: &str, files: usize, size: usize) -> PathBuf {
    let key = SigningKey::load(test_key()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("usr/share").join(name);
    fs::create_dir_all(&d).unwrap();
    for i in 0..files {
        // Distinct content, so the duplicate linter stays quiet.
        let mut content = vec![0u8; size];
        content[..8.min(size)].copy_from_slice(&(i as u64).to_le_bytes()[..8.min(size)]);
        fs::write(d.join(format!("f{i}")), content).unwrap();
    }
    let spec = PackageSpec {
        root: root.path().to_path_buf(),
        info: PkgInfo {
            name: name.into(),
            version: "1.0-r0".into(),
            arch: "x86_64".into(),
            description: "d".into(),
            license: "MIT".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let sign = SignOptions {
        key: Some(&key),
        legacy_sha1: false,
    };
    write_package(&spec, &sign, dir).unwrap().path
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lint_and_verify_stop_at_the_unpacked_size_and_entry_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let big = package_of(tmp.path(), "big", 1, 4 << 20);
    let many = package_of(tmp.path(), "many", 300, 8);
    let private_tmp = tmp.path().join("tmp");
    fs::create_dir(&private_tmp).unwrap();
    let keys = test_key().parent().unwrap();
    let run = |cmd: &str, pkg: &Path, limit: &[&str]| {
        let mut c = util::cmd();
        c.arg(cmd);
        if cmd == "verify" {
            c.arg("--keys-dir").arg(keys);
        }
        c.args(limit)
            .arg(pkg)
            .env("TMPDIR", &private_tmp)
            .output()
            .unwrap()
    };
    for cmd in ["lint", "verify"] {
        let res = run(cmd, &big, &["--max-unpacked-size", "1M"]);
        assert_eq!(res.status.code(), Some(1), "{}", show(&res));
        let out = stdout(&res);
        assert!(out.contains("big-1.0-r0.apk"), "{out}");
        assert!(
            out.contains("unpacked size") && out.contains("--max-unpacked-size"),
            "{out}"
        );
        assert!(out.contains(&(1u64 << 20).to_string()), "{out}");

        let res = run(cmd, &many, &["--max-entries", "100"]);
        assert_eq!(res.status.code(), Some(1), "{}", show(&res));
        let out = stdout(&res);
        assert!(
            out.contains("--max-entries") && out.contains("100"),
            "{out}"
        );

        // Within the limits (and by default) both pass.
        assert_ok(&run(cmd, &big, &["--max-unpacked-size", "5M"]));
        assert_ok(&run(cmd, &many, &[]));
    }
    // Nothing of the unpacking is left behind.
    assert_eq!(named(&private_tmp, ""), Vec::<String>::new());
}

#[test]
fn lint_checks_what_apk_checks_or_says_it_did_not() {
    let tmp = tempfile::tempdir().unwrap();
    let signed = make_package(tmp.path(), "signed", "1.0-r0", "s");
    // Unsigned, and its file has no checksum.
    let bare = package_with_builddate(tmp.path(), "bare", "1700000000");
    let keys = test_key().parent().unwrap();
    let stranger = tmp.path().join("stranger");
    fs::create_dir(&stranger).unwrap();
    let lint = |pkg: &Path, keys: Option<&Path>| {
        let mut c = util::cmd();
        c.arg("lint");
        if let Some(k) = keys {
            c.arg("--keys-dir").arg(k);
        }
        c.arg(pkg).output().unwrap()
    };

    let res = lint(&signed, Some(keys));
    assert_ok(&res);
    assert!(!stderr(&res).contains("NOT checked"), "{}", show(&res));
    // Without keys: OK, but saying the signature was not looked at.
    let res = lint(&signed, None);
    assert_ok(&res);
    assert!(
        stderr(&res).contains("signatures were NOT checked"),
        "{}",
        show(&res)
    );
    // A key apk does not know.
    let res = lint(&signed, Some(&stranger));
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(
        stdout(&res).contains("[signature] required"),
        "{}",
        show(&res)
    );
    // Unsigned, and a file without its checksum.
    let res = lint(&bare, Some(keys));
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let out = stdout(&res);
    assert!(out.contains("[signature] required"), "{out}");
    assert!(
        out.contains("[checksum] required") && out.contains("(usr/f)"),
        "{out}"
    );
    let res = lint(&bare, None);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(
        stdout(&res).contains("[checksum] required"),
        "{}",
        show(&res)
    );
}
