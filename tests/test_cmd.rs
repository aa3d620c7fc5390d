//! `pkgbuild test` through the real binary: the example's `test:` blocks
//! pass against the packages `pkgbuild build` wrote, under bubblewrap and
//! the host runner; a failing step is exit 1 naming package, step, status
//! and output; testing what was not built (or another version) says to
//! build first; the packaged program runs even where the host has one of
//! the same name; the sandbox has no network unless asked; an index signed
//! by an untrusted key is refused; recipe errors are exit 2.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use util::*;

/// `pkgbuild test RECIPE --out-dir OUT --signing-key <test key> EXTRA...`
/// with an isolated HOME.
fn test_cmd(recipe: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    test_trusting(&[recipe], out_dir, ("--signing-key", test_key()), extra)
}

/// `pkgbuild test RECIPES... --out-dir OUT FLAG PATH EXTRA...`, where
/// `trust` (`--signing-key` or `--keys-dir`) says which key to trust.
fn test_trusting(
    recipes: &[&Path],
    out_dir: &Path,
    trust: (&str, &Path),
    extra: &[&str],
) -> Output {
    let home = out_dir.with_extension("home");
    fs::create_dir_all(&home).unwrap();
    util::cmd()
        .arg("test")
        .args(recipes)
        .arg("--out-dir")
        .arg(out_dir)
        .arg(trust.0)
        .arg(trust.1)
        .env("HOME", &home)
        .args(extra)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn runners() -> Vec<&'static str> {
    let mut r = vec!["host"];
    if bwrap_or_skip() {
        r.push("bwrap");
    }
    r
}

#[test]
fn example_tests_pass_against_the_built_packages_under_both_runners() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = repo_root().join("examples/hello/hello.yaml");
    assert_ok(&build(&recipe, &out, &[]));
    let before = snapshot(&out.join(arch()));
    for runner in runners() {
        let res = test_cmd(&recipe, &out, &["--runner", runner]);
        assert_ok(&res);
        let lines: Vec<String> = stdout(&res).lines().map(String::from).collect();
        assert_eq!(
            lines,
            [
                "PASS hello-1.2.0-r0 (2 steps)",
                "PASS hello-dev-1.2.0-r0 (1 step)",
                "SKIP hello-doc-1.2.0-r0: no test",
            ],
            "{runner}\n{}",
            show(&res)
        );
        let err = stderr(&res);
        // Steps are streamed with package/test/step prefixes; the library
        // answered with its version, and hello-dev came with hello.
        assert!(
            err.contains("hello/test/version: hello (libgreet 1.2.0)"),
            "{err}"
        );
        assert!(
            err.contains("installing from local repository: hello-dev-1.2.0-r0, hello-1.2.0-r0"),
            "{err}"
        );
    }
    assert_eq!(
        snapshot(&out.join(arch())),
        before,
        "testing leaves the repository alone"
    );
    let log = fs::read_to_string(out.join("logs/hello-1.2.0-r0.test.log")).unwrap();
    assert!(log.contains("PASS hello-dev-1.2.0-r0"), "{log}");
}

/// A recipe with a shell-script tool `tool` at `/usr/bin/<tool>` that
/// prints `output`, a fixture file beside the recipe, and `test` as the
/// main package's test pipeline (YAML, indented four spaces).
fn tool_recipe(dir: &Path, name: &str, version: &str, tool: &str, test: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("fixture.txt"), "fixture from the source dir\n").unwrap();
    write_recipe(
        dir,
        name,
        &format!(
            r#"package:
  name: {name}
  version: {version}
  epoch: 0
  description: ships its own {tool}
  copyright:
    - license: MIT
pipeline:
  - runs: |
      d="${{{{targets.destdir}}}}/usr/bin"
      mkdir -p "$d"
      printf '#!/bin/sh\necho "{tool} from {name}"\n' > "$d/{tool}"
      chmod 755 "$d/{tool}"
test:
  pipeline:
{test}
"#
        ),
    )
}

#[test]
fn the_packaged_program_runs_even_when_the_host_has_one_of_that_name() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // `uname` exists on every host and prints something else there; a
    // step that sets PATH itself still gets the package's first.
    let recipe = tool_recipe(
        tmp.path(),
        "fakeuname",
        "1.0.0",
        "uname",
        r#"    - name: shadows the host
      runs: |
        test "$(uname)" = "uname from fakeuname"
    - name: even with PATH set
      environment:
        PATH: /usr/bin:/bin
      runs: |
        test "$(uname)" = "uname from fakeuname"
        test "$(cat fixture.txt)" = "fixture from the source dir"
    - uses: test/says
      with:
        command: uname"#,
    );
    // A test pipeline from --pipeline-dir, as Wolfi's test/tw/* are used.
    let pipelines = tmp.path().join("pipelines");
    fs::create_dir_all(pipelines.join("test")).unwrap();
    fs::write(
        pipelines.join("test/says.yaml"),
        r#"name: says
inputs:
  command:
    required: true
  expect:
    default: ${{inputs.command}} from ${{package.name}}
pipeline:
  - runs: test "$(${{inputs.command}})" = "${{inputs.expect}}"
"#,
    )
    .unwrap();
    let dir = pipelines.to_str().unwrap();
    assert_ok(&build(&recipe, &out, &["--pipeline-dir", dir]));
    for runner in runners() {
        let res = test_cmd(&recipe, &out, &["--runner", runner, "--pipeline-dir", dir]);
        assert_ok(&res);
        assert_eq!(stdout(&res), "PASS fakeuname-1.0.0-r0 (3 steps)\n");
    }
    // The same check fails when the host's uname is the one that runs,
    // so the test above proves the order.
    let host = Command::new("uname").output().unwrap();
    assert_ne!(stdout(&host).trim(), "uname from fakeuname");
}

#[test]
fn a_failing_test_is_exit_1_naming_package_step_status_and_output() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = write_recipe(
        tmp.path(),
        "flaky",
        r#"package:
  name: flaky
  version: 2.0.0
  epoch: 1
  description: its test fails
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p "${{targets.destdir}}/usr/share/flaky"
      echo data > "${{targets.destdir}}/usr/share/flaky/data"
test:
  pipeline:
    - name: first check
      runs: echo fine
    - name: broken check
      runs: |
        echo "the output before the failure"
        exit 3
    - name: never reached
      runs: touch should-not-run
subpackages:
  - name: flaky-extra
    description: passes
    pipeline:
      - runs: mkdir -p "${{targets.contextdir}}/usr/share/flaky-extra" && echo x > "${{targets.contextdir}}/usr/share/flaky-extra/x"
    test:
      pipeline:
        - runs: test -d "$PKGBUILD_SYSROOT/usr/share/flaky-extra"
"#,
    );
    assert_ok(&build(&recipe, &out, &[]));
    let res = test_cmd(&recipe, &out, &["--runner", "host"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert_eq!(
        stdout(&res),
        "FAIL flaky-2.0.0-r1: flaky: step \"test/broken check\" failed (exit status 3)\nPASS flaky-extra-2.0.0-r1 (1 step)\n",
        "{}",
        show(&res)
    );
    let err = stderr(&res);
    assert!(
        err.contains("error: flaky: step \"test/broken check\" failed (exit status 3)"),
        "{err}"
    );
    assert!(err.contains("  | the output before the failure"), "{err}");
    assert!(!err.contains("flaky/test/never reached"), "{err}");
}

#[test]
fn testing_before_building_says_to_build_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = repo_root().join("examples/hello/hello.yaml");
    let res = test_cmd(&recipe, &out, &["--runner", "host"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = stderr(&res);
    assert!(
        err.contains("hello=1.2.0-r0 is not in")
            && err.contains("build it first with pkgbuild build"),
        "{err}"
    );
    assert!(
        stdout(&res).starts_with("FAIL hello-1.2.0-r0: "),
        "{}",
        show(&res)
    );

    // Another version in the repository does not count: the version the
    // recipe builds is the one tested.
    let dir = tmp.path().join("v");
    let test = "    - runs: uname";
    let old = tool_recipe(&dir, "vers", "1.0.0", "uname", test);
    assert_ok(&build(&old, &out, &[]));
    let new = tool_recipe(&dir, "vers", "1.0.1", "uname", test);
    let res = test_cmd(&new, &out, &["--runner", "host"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(
        stderr(&res).contains("vers=1.0.1-r0 is not in"),
        "{}",
        show(&res)
    );
}

#[test]
fn bwrap_tests_have_no_network_unless_asked() {
    if !bwrap_or_skip() {
        return;
    }
    let (listener, port) = quiet_listener();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = tool_recipe(
        tmp.path(),
        "netcheck",
        "1.0.0",
        "netcheck",
        &format!("    - name: connect\n      runs: exec 3<>/dev/tcp/127.0.0.1/{port}"),
    );
    assert_ok(&build(&recipe, &out, &[]));
    let res = test_cmd(&recipe, &out, &["--runner", "bwrap"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(stdout(&res).starts_with("FAIL netcheck-1.0.0-r0: "));
    assert!(
        listener.accept().is_err(),
        "the sandbox reached a loopback server"
    );
    // The same step passes with --network: it failed for want of a network.
    let res = test_cmd(&recipe, &out, &["--runner", "bwrap", "--network"]);
    assert_ok(&res);
    listener.set_nonblocking(false).unwrap();
    assert!(listener.accept().is_ok());
}

#[test]
fn an_index_signed_by_another_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = tool_recipe(
        tmp.path(),
        "trusty",
        "1.0.0",
        "trusty",
        "    - runs: trusty",
    );
    assert_ok(&build(&recipe, &out, &[]));
    let other = tmp.path().join("other-keys");
    fs::create_dir_all(&other).unwrap();
    assert_ok(&pkgbuild(&[
        "keygen".as_ref(),
        "--key-size".as_ref(),
        "2048".as_ref(),
        other.join("other.rsa").as_os_str(),
    ]));
    let res = test_trusting(
        &[&recipe],
        &out,
        ("--keys-dir", &other),
        &["--runner", "host"],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(stderr(&res).contains("UNTRUSTED"), "{}", show(&res));
    // The test key's directory holds the right public key.
    let keys = test_key().parent().unwrap();
    let res = test_trusting(
        &[&recipe],
        &out,
        ("--keys-dir", keys),
        &["--runner", "host"],
    );
    assert_ok(&res);
}

#[test]
fn recipe_errors_are_exit_2_before_any_test_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let good = repo_root().join("examples/hello/hello.yaml");
    let bad = write_recipe(
        tmp.path(),
        "typo",
        "package:\n  name: typo\n  version: 1.0.0\n  epoch: 0\ntest:\n  pipline:\n    - runs: true\n",
    );
    let res = test_trusting(
        &[&good, &bad],
        &out,
        ("--signing-key", test_key()),
        &["--runner", "host"],
    );
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(stderr(&res).contains("typo.yaml:6:"), "{}", show(&res));
    assert_eq!(stdout(&res), "", "nothing was tested");
}

#[test]
fn by_default_the_keys_build_signs_with_are_trusted() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = tool_recipe(tmp.path(), "deflt", "1.0.0", "deflt", "    - runs: deflt");
    let run = |home: &Path, cmd: &str| {
        util::cmd()
            .arg(cmd)
            .arg(&recipe)
            .arg("--out-dir")
            .arg(&out)
            .args(["--runner", "host"])
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .output()
            .unwrap()
    };
    // No key yet: say where keys were looked for and what to pass.
    let empty = tmp.path().join("empty-home");
    fs::create_dir_all(&empty).unwrap();
    let res = run(&empty, "test");
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(
        stderr(&res).contains(".config/pkgbuild/keys") && stderr(&res).contains("--keys-dir"),
        "{}",
        show(&res)
    );
    // The default key directory `build` signs with (seeded with the test
    // key, 4096-bit generation is slow) is what `test` trusts.
    let home = tmp.path().join("home");
    let keys = home.join(".config/pkgbuild/keys");
    fs::create_dir_all(&keys).unwrap();
    for ext in ["rsa", "rsa.pub"] {
        fs::copy(
            test_key().with_extension(ext),
            keys.join(format!("local-test.{ext}")),
        )
        .unwrap();
    }
    assert_ok(&run(&home, "build"));
    let res = run(&home, "test");
    assert_ok(&res);
    assert_eq!(stdout(&res), "PASS deflt-1.0.0-r0 (1 step)\n");
}
