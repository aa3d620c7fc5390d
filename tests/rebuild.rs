//! `pkgbuild rebuild`: a package built by `build` rebuilds byte-identical
//! from the recipe it carries, whatever the caller's SOURCE_DATE_EPOCH;
//! when the build's environment changed, the report names each file and
//! `.PKGINFO` field that differs; bad input is exit code 2.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use util::base;
use util::*;

/// `pkgbuild rebuild APKS --signing-key <test key> EXTRA...`, with its own
/// HOME and a SOURCE_DATE_EPOCH that must not matter.
fn rebuild(home: &Path, apks: &[PathBuf], extra: &[&str]) -> Output {
    fs::create_dir_all(home).unwrap();
    util::cmd()
        .arg("rebuild")
        .args(apks)
        .arg("--signing-key")
        .arg(test_key())
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .args(extra)
        .env("HOME", home)
        .env("SOURCE_DATE_EPOCH", "12345")
        .output()
        .unwrap()
}

fn apks(out: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(out.join(arch()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "apk"))
        .collect();
    v.sort();
    v
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_package_built_by_build_rebuilds_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let hello = repo_root().join("examples/hello");
    assert_ok(&build(
        &hello.join("hello.yaml"),
        &out,
        &["--git-commit", "0123456789abcdef0123456789abcdef01234567"],
    ));
    let originals = apks(&out);
    assert_eq!(originals.len(), 3);
    let before = snapshot(&out);

    let kept = tmp.path().join("rebuilt");
    let res = rebuild(
        &tmp.path().join("home"),
        &originals,
        &[
            "--source-dir",
            hello.to_str().unwrap(),
            "--out-dir",
            kept.to_str().unwrap(),
        ],
    );
    assert_ok(&res);
    let text = stdout(&res);
    for apk in &originals {
        assert!(
            text.contains(&format!("{}: identical\n", apk.display())),
            "{}",
            show(&res)
        );
        let again = kept.join(arch()).join(apk.file_name().unwrap());
        assert_eq!(fs::read(&again).unwrap(), fs::read(apk).unwrap());
        assert!(
            text.contains(&format!("  rebuilt: {}\n", again.display())),
            "{text}"
        );
    }
    // One build served the three packages of the recipe.
    let err = String::from_utf8_lossy(&res.stderr);
    assert_eq!(err.matches("==> rebuilding ").count(), 1, "{err}");
    assert!(err.contains("SOURCE_DATE_EPOCH=1700000000"), "{err}");
    assert!(err.contains("3 identical, 0 differ, 0 failed"), "{err}");
    // The originals' repository was not touched.
    assert_eq!(before, snapshot(&out));

    // Into the originals' own repository: refused.
    let res = rebuild(
        &tmp.path().join("home"),
        &originals[..1],
        &["--out-dir", out.to_str().unwrap()],
    );
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(String::from_utf8_lossy(&res.stderr).contains("is the repository of"));
    assert_eq!(before, snapshot(&out));
}

/// A recipe whose output depends on the build's environment (`--env-file`
/// values reach the steps): the content and mode of one file.
const ENV_RECIPE: &str = r#"package:
  name: envdep
  version: 1.0.0
  epoch: 0
  description: output that depends on the environment
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p ${{targets.destdir}}/usr/share/envdep
      printf '%s\n' "$GREETING" > ${{targets.destdir}}/usr/share/envdep/greeting
      chmod "$MODE" ${{targets.destdir}}/usr/share/envdep/greeting
      echo fixed > ${{targets.destdir}}/usr/share/envdep/fixed
"#;

#[test]
fn a_changed_environment_is_named_file_by_file() {
    let tmp = tempfile::tempdir().unwrap();
    let env_a = tmp.path().join("a.env");
    fs::write(&env_a, "GREETING=hello\nMODE=644\n").unwrap();
    let env_b = tmp.path().join("b.env");
    fs::write(
        &env_b,
        "GREETING=good morning, and a longer one\nMODE=755\n",
    )
    .unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let recipe = write_recipe(&src, "envdep", ENV_RECIPE);
    let out = tmp.path().join("repo");
    assert_ok(&build(
        &recipe,
        &out,
        &["--env-file", env_a.to_str().unwrap()],
    ));
    let original = apk(&out, "envdep-1.0.0-r0.apk");
    let home = tmp.path().join("home");

    // The same environment: identical.
    let same = rebuild(
        &home,
        std::slice::from_ref(&original),
        &["--env-file", env_a.to_str().unwrap()],
    );
    assert_ok(&same);
    assert!(stdout(&same).contains(": identical"), "{}", show(&same));

    // Another environment: differs, and says where.
    let res = rebuild(
        &home,
        std::slice::from_ref(&original),
        &["--env-file", env_b.to_str().unwrap()],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let text = stdout(&res);
    assert!(
        text.starts_with(&format!("{}: differs\n", original.display())),
        "{text}"
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("usr/share/envdep/greeting:"))
        .unwrap_or_else(|| panic!("greeting not named:\n{text}"));
    assert!(line.contains("content (sha256 "), "{line}");
    assert!(line.contains("mode (0644 → 0755)"), "{line}");
    assert!(!line.contains("owner"), "{line}");
    assert!(!text.contains("usr/share/envdep/fixed"), "{text}");
    assert!(text.contains("  .PKGINFO datahash: "), "{text}");
    // The longer greeting made the package bigger.
    let size = pkginfo(&original)["size"][0].clone();
    assert!(
        text.contains(&format!("  .PKGINFO size: {size} → ")),
        "{text}"
    );
    assert!(!text.contains(".PKGINFO pkgname"), "{text}");
    assert!(String::from_utf8_lossy(&res.stderr).contains("0 identical, 1 differ"));
}

#[test]
fn bad_input_is_exit_code_two_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let junk = tmp.path().join("junk.apk");
    fs::write(&junk, "not a package").unwrap();
    let res = rebuild(&home, std::slice::from_ref(&junk), &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains(&junk.display().to_string()),
        "{}",
        show(&res)
    );

    // A package without an embedded recipe (apk-tools' test package).
    let foreign = util::testdata::hello_apk();
    let res = rebuild(&home, std::slice::from_ref(&foreign), &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains(&foreign.display().to_string()), "{err}");
    assert!(err.contains("no .melange.yaml"), "{err}");

    // No key: a usage error from clap; the public half: said so.
    let res = util::cmd().arg("rebuild").arg(&junk).output().unwrap();
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let public = format!("{}.pub", test_key().display());
    let res = util::cmd()
        .arg("rebuild")
        .arg(&junk)
        .args(["--signing-key", &public])
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(
        String::from_utf8_lossy(&res.stderr).contains("a public key"),
        "{}",
        show(&res)
    );
}

/// Publishes `pinned-data` at `version`, a file holding `content`, into
/// the repository `repo`, signed with the test key.
fn publish_data(work: &Path, repo: &Path, version: &str, content: &str) {
    let dir = work.join(format!("pin-{version}-{}", content.len()));
    fs::create_dir_all(&dir).unwrap();
    let r = write_recipe(
        &dir,
        "pinned-data",
        &format!("package:\n  name: pinned-data\n  version: {version}\n  epoch: 0\n  description: data\n  copyright:\n    - license: MIT\npipeline:\n  - runs: |\n      mkdir -p ${{{{targets.destdir}}}}/usr/share/pinned\n      echo '{content}' > ${{{{targets.destdir}}}}/usr/share/pinned/version\n"),
    );
    let res = pkgbuild(&[
        "build".as_ref(),
        r.as_os_str(),
        "--runner".as_ref(),
        "host".as_ref(),
        "--out-dir".as_ref(),
        repo.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "-q".as_ref(),
    ]);
    assert_ok(&res);
}

/// A hermetic build's embedded recipe pins the exact versions it was built
/// with: a newer version in the repository changes nothing, the same
/// version published again with other contents is named, and a version
/// gone from the repository fails the rebuild.
#[test]
fn a_changed_package_of_a_hermetic_environment_is_named() {
    let Some(base) = base::base() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("extra");
    publish_data(tmp.path(), &extra, "1.0", "1.0");
    fs::create_dir_all(tmp.path().join("src")).unwrap();
    let recipe = write_recipe(
        &tmp.path().join("src"),
        "pin-user",
        &format!(
            "package:\n  name: pin-user\n  version: 1.0.0\n  epoch: 0\n  description: copies what the environment has\n  copyright:\n    - license: MIT\nenvironment:\n  contents:\n    repositories:\n      - file://{base}\n      - file://{extra}\n    keyring:\n      - {key}\n    packages:\n      - busybox\n      - pinned-data\npipeline:\n  - runs: |\n      mkdir -p ${{{{targets.destdir}}}}/usr/share/seen\n      cp /usr/share/pinned/version ${{{{targets.destdir}}}}/usr/share/seen/\n",
            base = base.display(),
            extra = extra.display(),
            key = base::public_key().display(),
        ),
    );
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe, &out, &["--runner", "bwrap"]));
    let original = apk(&out, "pin-user-1.0.0-r0.apk");
    let home = tmp.path().join("home");

    // pinned-data 1.1 appears: the rebuild still installs 1.0.
    publish_data(tmp.path(), &extra, "1.1", "1.1");
    let same = rebuild(
        &home,
        std::slice::from_ref(&original),
        &["--runner", "bwrap"],
    );
    assert_ok(&same);
    assert!(stdout(&same).contains(": identical"), "{}", show(&same));
    assert!(String::from_utf8_lossy(&same.stderr).contains("pinned-data-1.0-r0"));

    // pinned-data 1.0-r0 is published again with other contents.
    fs::remove_dir_all(&extra).unwrap();
    publish_data(tmp.path(), &extra, "1.0", "1.0 respun");
    let res = rebuild(
        &home,
        std::slice::from_ref(&original),
        &["--runner", "bwrap"],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let text = stdout(&res);
    assert!(text.contains(": differs\n"), "{text}");
    assert!(
        text.contains("  usr/share/seen/version: content (sha256 "),
        "{text}"
    );
    assert!(text.contains("  .PKGINFO datahash: "), "{text}");

    // Only 1.1 is left: the pinned version cannot be had.
    fs::remove_dir_all(&extra).unwrap();
    publish_data(tmp.path(), &extra, "1.1", "1.1");
    let res = rebuild(
        &home,
        std::slice::from_ref(&original),
        &["--runner", "bwrap"],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let text = stdout(&res);
    assert!(
        text.starts_with(&format!(
            "{}: failed: the rebuild failed: ",
            original.display()
        )),
        "{text}"
    );
    assert!(text.contains("pinned-data"), "{text}");
}
