//! `pkgbuild index`, `sign`, `sign-index` and `verify` driven through the
//! binary, reading back what they wrote.

mod util;

use std::fs;
use std::path::{Path, PathBuf};

use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::apk::package::{write_package, PackageSpec, SignOptions};
use pkgbuild::apk::pkginfo::PkgInfo;
use pkgbuild::apk::read::read_control;
use pkgbuild::apk::sign::{self, SigningKey};
use util::testdata::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Build a small signed package `name-version.apk` in `out` whose one file
/// holds `content` (so two builds of one version differ in `C:`).
fn make_package(out: &Path, name: &str, version: &str, arch: &str, content: &str) -> PathBuf {
    let key = SigningKey::load(&private_key()).unwrap();
    make_signed_package(out, name, version, arch, content, &key)
}

/// `make_package` signed with `key`.
fn make_signed_package(
    out: &Path,
    name: &str,
    version: &str,
    arch: &str,
    content: &str,
    key: &SigningKey,
) -> PathBuf {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("usr/share").join(name)).unwrap();
    fs::write(root.path().join("usr/share").join(name).join("f"), content).unwrap();
    let spec = PackageSpec {
        root: root.path().to_path_buf(),
        info: PkgInfo {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            description: format!("{name} test"),
            license: "MIT".into(),
            builddate: 1_700_000_000,
            ..Default::default()
        },
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let sign = SignOptions {
        key: Some(key),
        legacy_sha1: false,
    };
    write_package(&spec, &sign, out).unwrap().path
}

/// A fresh key pair in `dir`: returns (private key path, keys dir).
fn new_key(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let pair = sign::generate(2048).unwrap();
    let keys = dir.join(format!("keys-{name}"));
    fs::create_dir_all(&keys).unwrap();
    let private = dir.join(format!("{name}.rsa"));
    fs::write(&private, pair.private_pem).unwrap();
    fs::write(keys.join(format!("{name}.rsa.pub")), pair.public_pem).unwrap();
    (private, keys)
}

fn records(index: &Path) -> Vec<(String, String, String)> {
    let text = String::from_utf8(tar_gz_entry(index, "APKINDEX").unwrap()).unwrap();
    let mut out = Vec::new();
    for rec in text.split("\n\n").filter(|r| !r.is_empty()) {
        let field = |l: &str| {
            rec.lines()
                .find_map(|x| x.strip_prefix(l))
                .unwrap_or("")
                .to_string()
        };
        out.push((field("P:"), field("V:"), field("C:")));
    }
    out
}

#[test]
fn index_merge_replaces_same_name_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a1 = make_package(d, "alpha", "1.0-r0", "x86_64", "one");
    let key = private_key();
    let idx = d.join("APKINDEX.tar.gz");
    pkgbuild(
        d,
        &["index", "--signing-key", s(&key), "-d", "repo", s(&a1)],
    )
    .expect_code(0);
    let first = records(&idx);
    assert_eq!(first.len(), 1);

    // Rebuild alpha 1.0-r0 with other content, add beta; merge.
    let sub = d.join("new");
    fs::create_dir(&sub).unwrap();
    let a2 = make_package(&sub, "alpha", "1.0-r0", "x86_64", "two");
    let b = make_package(&sub, "beta", "2.0-r1", "x86_64", "b");
    let a3 = make_package(&sub, "alpha", "1.10-r0", "x86_64", "three");
    pkgbuild(
        d,
        &[
            "index",
            "--merge",
            "--signing-key",
            s(&key),
            s(&b),
            s(&a3),
            s(&a2),
        ],
    )
    .expect_code(0);
    let merged = records(&idx);
    let names: Vec<_> = merged.iter().map(|(n, v, _)| format!("{n}-{v}")).collect();
    assert_eq!(names, ["alpha-1.0-r0", "alpha-1.10-r0", "beta-2.0-r1"]);
    assert_ne!(merged[0].2, first[0].2, "alpha 1.0-r0 record was replaced");
    assert_eq!(
        merged[0].2,
        IndexEntry::from_package(&a2).unwrap().checksum_field()
    );
    // Our own reader agrees with the independent tar/flate2 reading.
    let parsed = Index::read(&idx).unwrap();
    assert_eq!(parsed.entries.len(), 3);
    // The description survives a merge that does not set one.
    assert_eq!(
        tar_gz_entry(&idx, "DESCRIPTION").as_deref(),
        Some(&b"repo"[..])
    );
    pkgbuild(d, &["verify", "--keys-dir", s(&keys_dir()), s(&idx)]).expect_code(0);

    // Without --merge the old records are gone.
    pkgbuild(d, &["index", "--signing-key", s(&key), s(&b)]).expect_code(0);
    assert_eq!(records(&idx).len(), 1);
}

#[test]
fn index_with_keys_dir_refuses_packages_apk_would_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = private_key();
    let trusted = make_package(d, "good", "1.0-r0", "x86_64", "g");
    // Signed by a key the keys directory does not have.
    let (stranger, _) = new_key(d, "stranger");
    let stranger = SigningKey::load(&stranger).unwrap();
    let untrusted = make_signed_package(d, "foreign", "1.0-r0", "x86_64", "f", &stranger);
    // Signed by another key that bears the trusted key's name.
    fs::create_dir(d.join("impostor")).unwrap();
    let (impostor, _) = new_key(&d.join("impostor"), "test-5f3a");
    let impostor = SigningKey::load(&impostor).unwrap();
    let forged = make_signed_package(d, "forged", "1.0-r0", "x86_64", "x", &impostor);
    let unsigned = {
        let root = tempfile::tempdir().unwrap();
        let spec = PackageSpec {
            root: root.path().to_path_buf(),
            info: PkgInfo {
                name: "bare".into(),
                version: "1.0-r0".into(),
                arch: "x86_64".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        write_package(&spec, &SignOptions::default(), d)
            .unwrap()
            .path
    };

    let keys = keys_dir();
    pkgbuild(
        d,
        &[
            "index",
            "--signing-key",
            s(&key),
            "--keys-dir",
            s(&keys),
            s(&trusted),
        ],
    )
    .expect_code(0);
    let idx = d.join("APKINDEX.tar.gz");
    assert_eq!(records(&idx).len(), 1);
    let before = fs::read(&idx).unwrap();

    let run = pkgbuild(
        d,
        &[
            "index",
            "--merge",
            "--signing-key",
            s(&key),
            "--keys-dir",
            s(&keys),
            s(&trusted),
            s(&untrusted),
            s(&forged),
            s(&unsigned),
        ],
    );
    run.expect_code(1);
    let lines: Vec<&str> = run.stderr.lines().collect();
    for (file, reason) in [
        (
            &untrusted,
            "UNTRUSTED signature: no key for stranger.rsa.pub",
        ),
        (
            &forged,
            "BAD signature: .SIGN.RSA256.test-5f3a.rsa.pub does not verify",
        ),
        (&unsigned, "UNTRUSTED signature: the file is not signed"),
    ] {
        let want = format!("{}: {reason}", file.display());
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "no `{want}` in:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains(&format!("{}:", trusted.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("3 of 4 package(s)"), "{}", run.stderr);
    assert_eq!(fs::read(&idx).unwrap(), before, "the old index was changed");

    // Without --keys-dir the same packages are indexed, as before.
    pkgbuild(
        d,
        &[
            "index",
            "--signing-key",
            s(&key),
            s(&trusted),
            s(&untrusted),
            s(&forged),
        ],
    )
    .expect_code(0);
    assert_eq!(records(&idx).len(), 3);

    // A keys directory that does not exist is an input error.
    let run = pkgbuild(d, &["index", "--keys-dir", s(&d.join("nope")), s(&trusted)]);
    run.expect_code(2);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn index_rewrites_noarch_and_warns_when_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = make_package(d, "docs", "1-r0", "noarch", "x");
    let run = pkgbuild(
        d,
        &[
            "index",
            "-o",
            "idx.tar.gz",
            "--rewrite-arch",
            "aarch64",
            s(&n),
        ],
    );
    run.expect_code(0);
    assert!(run.stderr.contains("UNSIGNED"), "{}", run.stderr);
    let text = String::from_utf8(tar_gz_entry(&d.join("idx.tar.gz"), "APKINDEX").unwrap()).unwrap();
    assert!(text.contains("\nA:aarch64\n"), "{text}");
    let v = pkgbuild(d, &["verify", "--keys-dir", s(&keys_dir()), "idx.tar.gz"]);
    v.expect_code(1);
    assert_eq!(
        v.stdout,
        "idx.tar.gz: UNTRUSTED signature: the file is not signed\n"
    );
}

#[test]
fn index_refuses_long_descriptions_and_bad_packages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "x".repeat(161);
    let run = pkgbuild(d, &["index", "-d", &long, s(&hello_apk())]);
    run.expect_code(2);
    assert!(run.stderr.contains("161 bytes"), "{}", run.stderr);
    let bad = rejected_dir().join("ctl_eoa.apk");
    let run = pkgbuild(d, &["index", s(&hello_apk()), s(&bad)]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("ctl_eoa.apk") && run.stderr.contains("end-of-archive"),
        "{}",
        run.stderr
    );
    assert!(
        !d.join("APKINDEX.tar.gz").exists(),
        "nothing written on failure"
    );
}

#[test]
fn sign_replaces_only_the_signature_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = d.join("hello-1.0-r0.apk");
    fs::copy(hello_apk(), &pkg).unwrap();
    let before = fs::read(&pkg).unwrap();
    let old = read_control(&pkg).unwrap();
    let (new_key, new_keys) = new_key(d, "rotated");

    pkgbuild(d, &["sign", "--signing-key", s(&new_key), s(&pkg)]).expect_code(0);
    let after = fs::read(&pkg).unwrap();
    let new = read_control(&pkg).unwrap();
    // Control and data bytes are kept exactly.
    assert_eq!(
        &after[new.data_offset as usize - new.control_member.len()..],
        &before[old.data_offset as usize - old.control_member.len()..]
    );
    assert_eq!(new.signatures.len(), 1);
    assert_eq!(new.signatures[0].key_name, "rotated.rsa.pub");

    let ok = pkgbuild(d, &["verify", "--keys-dir", s(&new_keys), s(&pkg)]);
    ok.expect_code(0);
    assert_eq!(ok.stdout, format!("{}: OK\n", pkg.display()));
    // The old key no longer vouches for it.
    let old_keys = pkgbuild(d, &["verify", "--keys-dir", s(&keys_dir()), s(&pkg)]);
    old_keys.expect_code(1);
    assert!(
        old_keys
            .stdout
            .contains("UNTRUSTED signature: no key for rotated.rsa.pub"),
        "{}",
        old_keys.stdout
    );

    // --legacy-sha1-signature adds a .SIGN.RSA. entry after the RSA256 one.
    pkgbuild(
        d,
        &[
            "sign",
            "--legacy-sha1-signature",
            "--signing-key",
            s(&private_key()),
            s(&pkg),
        ],
    )
    .expect_code(0);
    let sigs = read_control(&pkg).unwrap().signatures;
    let algs: Vec<String> = sigs.iter().map(|s| s.alg.to_string()).collect();
    assert_eq!(algs, ["RSA256", "RSA"]);
    pkgbuild(d, &["verify", "--keys-dir", s(&keys_dir()), s(&pkg)]).expect_code(0);
}

#[test]
fn sign_refuses_a_corrupt_package_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pkg = d.join("bad.apk");
    fs::copy(rejected_dir().join("bad_datahash.apk"), &pkg).unwrap();
    let before = fs::read(&pkg).unwrap();
    let run = pkgbuild(d, &["sign", "--signing-key", s(&private_key()), s(&pkg)]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("bad.apk") && run.stderr.contains("datahash mismatch"),
        "{}",
        run.stderr
    );
    assert_eq!(fs::read(&pkg).unwrap(), before);
    assert_eq!(fs::read_dir(d).unwrap().count(), 1, "no temp file left");
}

#[test]
fn sign_index_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let idx = d.join("APKINDEX.tar.gz");
    fs::copy(shipped_index(), &idx).unwrap();
    let text_before = tar_gz_entry(&idx, "APKINDEX").unwrap();
    let (new_key, new_keys) = new_key(d, "idxkey");
    // Already signed: left alone unless forced, as melange does.
    let before = fs::read(&idx).unwrap();
    let run = pkgbuild(d, &["sign-index", "--signing-key", s(&new_key), s(&idx)]);
    run.expect_code(0);
    assert!(run.stderr.contains("already signed"), "{}", run.stderr);
    assert_eq!(fs::read(&idx).unwrap(), before);
    pkgbuild(d, &["sign-index", "-f", "-k", s(&new_key), s(&idx)]).expect_code(0);
    assert_eq!(tar_gz_entry(&idx, "APKINDEX").unwrap(), text_before);
    pkgbuild(d, &["verify", "--keys-dir", s(&new_keys), s(&idx)]).expect_code(0);
    let old = pkgbuild(d, &["verify", "--keys-dir", s(&keys_dir()), s(&idx)]);
    old.expect_code(1);
    assert!(old.stdout.contains("UNTRUSTED"), "{}", old.stdout);
    // sign-index refuses a package.
    let pkg = d.join("p.apk");
    fs::copy(hello_apk(), &pkg).unwrap();
    let run = pkgbuild(d, &["sign-index", "--signing-key", s(&new_key), s(&pkg)]);
    run.expect_code(1);
    assert!(run.stderr.contains("not an index"), "{}", run.stderr);
}

#[test]
fn verify_prints_one_line_per_file_and_fails_if_any_fails() {
    let d = rejected_dir();
    let good = hello_apk();
    let run = pkgbuild(
        &d,
        &[
            "verify",
            "--keys-dir",
            s(&keys_dir()),
            s(&good),
            "bad_datahash.apk",
            "does-not-exist.apk",
        ],
    );
    run.expect_code(1);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert_eq!(lines[0], format!("{}: OK", good.display()));
    assert!(
        lines[1].starts_with("bad_datahash.apk: datahash mismatch"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("does-not-exist.apk: cannot read:"),
        "{}",
        lines[2]
    );
}

#[test]
fn key_problems_name_the_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A keys dir whose key file for the signature is garbage.
    let keys = d.join("keys");
    fs::create_dir(&keys).unwrap();
    fs::write(keys.join("test-5f3a.rsa.pub"), "not a key").unwrap();
    let run = pkgbuild(d, &["verify", "--keys-dir", s(&keys), s(&hello_apk())]);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains(&format!("{}", keys.join("test-5f3a.rsa.pub").display()))
            && run.stdout.contains("not an RSA key"),
        "{}",
        run.stdout
    );
    // A different valid key with the right name: BAD signature, naming it.
    let (_, other_keys) = new_key(d, "test-5f3a");
    let run = pkgbuild(
        d,
        &["verify", "--keys-dir", s(&other_keys), s(&hello_apk())],
    );
    run.expect_code(1);
    assert!(
        run.stdout.contains("BAD signature") && run.stdout.contains("test-5f3a.rsa.pub"),
        "{}",
        run.stdout
    );
    // Unreadable signing keys and a missing keys dir are input errors.
    let missing = d.join("nope.rsa");
    for args in [
        vec!["sign", "--signing-key", s(&missing), s(&hello_apk())],
        vec![
            "sign-index",
            "--signing-key",
            s(&missing),
            s(&shipped_index()),
        ],
        vec!["index", "--signing-key", s(&missing), s(&hello_apk())],
    ] {
        let run = pkgbuild(d, &args);
        run.expect_code(2);
        assert!(run.stderr.contains("nope.rsa"), "{}", run.stderr);
    }
    let run = pkgbuild(d, &["verify", "--keys-dir", "no-such-dir", s(&hello_apk())]);
    run.expect_code(2);
    assert!(run.stderr.contains("no-such-dir"), "{}", run.stderr);
}

#[test]
fn index_arch_keeps_only_that_architecture_and_source_feeds_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = make_package(d, "tool", "1-r0", "x86_64", "x");
    let a = make_package(d, "tool-arm", "1-r0", "aarch64", "a");
    let n = make_package(d, "docs", "1-r0", "noarch", "n");
    let run = pkgbuild(
        d,
        &[
            "index",
            "-o",
            "only.tar.gz",
            "-a",
            "x86_64",
            s(&x),
            s(&a),
            s(&n),
        ],
    );
    run.expect_code(0);
    assert!(
        run.stderr.contains("tool-arm-1-r0 is built for aarch64"),
        "{}",
        run.stderr
    );
    let text =
        String::from_utf8(tar_gz_entry(&d.join("only.tar.gz"), "APKINDEX").unwrap()).unwrap();
    assert!(text.contains("P:tool\n"), "{text}");
    assert!(
        !text.contains("P:tool-arm\n") && !text.contains("P:docs\n"),
        "{text}"
    );

    // -s: the records to merge come from another index than the output.
    pkgbuild(d, &["index", "-o", "src.tar.gz", s(&n)]).expect_code(0);
    pkgbuild(
        d,
        &[
            "index",
            "-m",
            "-s",
            "src.tar.gz",
            "-o",
            "merged.tar.gz",
            s(&x),
        ],
    )
    .expect_code(0);
    let text =
        String::from_utf8(tar_gz_entry(&d.join("merged.tar.gz"), "APKINDEX").unwrap()).unwrap();
    assert!(
        text.contains("P:tool\n") && text.contains("P:docs\n"),
        "{text}"
    );
}
