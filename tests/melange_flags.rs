//! melange's `build` flags, as a melange user types them: runner and
//! option spellings, repeatable env files, no index, SBOM namespace, an
//! empty workspace, a build-wide timeout, linter levels, `--cleanup=false`
//! and `.melange.yaml` as the default recipe. Each drives the real binary
//! and reads back what it wrote.

mod util;

use std::path::Path;
use std::process::Command;

use util::*;

fn recipe(dir: &Path, name: &str, steps: &str) -> std::path::PathBuf {
    write_recipe(
        dir,
        name,
        &format!(
            "package:\n  name: {name}\n  version: 1.0.0\n  epoch: 0\n  description: flags\n  copyright:\n    - license: MIT\npipeline:\n{steps}"
        ),
    )
}

#[test]
fn runner_spellings_env_files_index_namespace_and_workspace_flags() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("from-source-dir"), "x").unwrap();
    let r = recipe(
        &src,
        "flags",
        "  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/flags\n      echo \"$COLOUR $SHAPE\" > ${{targets.destdir}}/usr/share/flags/env\n      if test -e from-source-dir; then echo copied; else echo empty; fi > ${{targets.destdir}}/usr/share/flags/ws\n",
    );
    let env1 = tmp.path().join("one.env");
    let env2 = tmp.path().join("two.env");
    std::fs::write(&env1, "COLOUR=red\nSHAPE=round\n").unwrap();
    std::fs::write(&env2, "COLOUR=blue\n").unwrap();
    let out = tmp.path().join("out");
    let res = build(
        &r,
        &out,
        &[
            "--runner",
            "bubblewrap",
            "--env-file",
            env1.to_str().unwrap(),
            "--env-file",
            env2.to_str().unwrap(),
            "--namespace",
            "acme",
            "--generate-index=false",
        ],
    );
    assert_ok(&res);
    let apk = util::apk(&out, "flags-1.0.0-r0.apk");
    let e = entries(&apk);
    assert_eq!(
        e["usr/share/flags/env"].content, b"blue round\n",
        "later --env-file wins"
    );
    assert_eq!(e["usr/share/flags/ws"].content, b"copied\n");
    let sbom = e
        .iter()
        .find(|(k, _)| k.ends_with(".spdx.json"))
        .map(|(_, v)| String::from_utf8_lossy(&v.content).into_owned())
        .expect("sbom");
    assert!(sbom.contains("pkg:apk/acme/flags@1.0.0-r0"), "{sbom}");
    assert!(
        !out.join(arch()).join("APKINDEX.tar.gz").exists(),
        "--generate-index=false wrote an index"
    );

    // --empty-workspace copies nothing; the index appears with the default.
    let out2 = tmp.path().join("out2");
    assert_ok(&build(&r, &out2, &["--empty-workspace"]));
    let e = entries(&util::apk(&out2, "flags-1.0.0-r0.apk"));
    assert_eq!(e["usr/share/flags/ws"].content, b"empty\n");
    assert!(out2.join(arch()).join("APKINDEX.tar.gz").is_file());

    // melange's other runners are refused by name, with what to use.
    let res = build(&r, &tmp.path().join("out3"), &["--runner", "docker"]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(show(&res).contains("--runner bwrap"), "{}", show(&res));
}

#[test]
fn timeout_kills_the_step_tree_and_says_it_was_the_build_limit() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(
        tmp.path(),
        "slow",
        "  - runs: |\n      (sleep 60; echo survived > /home/build/late) &\n      sleep 60\n",
    );
    let out = tmp.path().join("out");
    let started = std::time::Instant::now();
    let res = build(&r, &out, &["--timeout", "2s", "--cleanup=false"]);
    assert!(!res.status.success());
    let text = show(&res);
    assert!(text.contains("--timeout of 2s"), "{text}");
    assert!(started.elapsed().as_secs() < 50, "the step was not killed");
    assert!(
        text.contains("workspace kept at"),
        "--cleanup=false keeps it: {text}"
    );
    assert!(!out.join(arch()).join("slow-1.0.0-r0.apk").exists());
}

#[test]
fn lint_levels_and_the_default_recipe_file() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // A file under /dev is a required finding by default.
    let steps = "  - runs: |\n      mkdir -p ${{targets.destdir}}/dev\n      echo x > ${{targets.destdir}}/dev/thing\n";
    let r = recipe(tmp.path(), "devfile", steps);
    let out = tmp.path().join("out");
    let res = build(&r, &out, &[]);
    assert!(!res.status.success(), "{}", show(&res));
    assert!(show(&res).contains("[dev]"));
    let res = build(&r, &out, &["--lint-warn", "dev"]);
    assert_ok(&res);
    let res = build(&r, &out, &["--lint-require", "nosuch"]);
    assert_eq!(res.status.code(), Some(2));

    // No recipe argument: ./.melange.yaml, as melange reads it.
    let dir = tmp.path().join("default");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        recipe(tmp.path(), "dflt", "  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/dflt\n      touch ${{targets.destdir}}/usr/share/dflt/x\n"),
        dir.join(".melange.yaml"),
    )
    .unwrap();
    let out = tmp.path().join("out-default");
    let res = util::cmd()
        .current_dir(&dir)
        .args(["build", "--out-dir"])
        .arg(&out)
        .arg("--signing-key")
        .arg(test_key())
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("HOME", tmp.path())
        .output()
        .unwrap();
    assert_ok(&res);
    assert!(util::apk(&out, "dflt-1.0.0-r0.apk").is_file());
}

#[test]
fn several_architectures_build_in_turn_and_a_foreign_hermetic_one_is_refused_by_name() {
    if !bwrap_or_skip() || arch() != "x86_64" {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(
        tmp.path(),
        "multi",
        "  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/multi\n      echo ${{build.arch}} > ${{targets.destdir}}/usr/share/multi/arch\n",
    );
    let out = tmp.path().join("out");
    let res = build(&r, &out, &["--arch", "host,amd64", "--arch", "aarch64"]);
    assert_ok(&res);
    for a in ["x86_64", "aarch64"] {
        let apk = out.join(a).join("multi-1.0.0-r0.apk");
        let e = entries(&apk);
        assert_eq!(
            e["usr/share/multi/arch"].content,
            format!("{a}\n").as_bytes()
        );
        assert!(out.join(a).join("APKINDEX.tar.gz").is_file());
    }
    // `host` and `amd64` are the same architecture: built once.
    assert_eq!(
        show(&res).matches("built    multi-1.0.0-r0").count(),
        2,
        "{}",
        show(&res)
    );

    if Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists() {
        return; // this machine can run aarch64 programs
    }
    let res = build(
        &r,
        &tmp.path().join("out2"),
        &[
            "--arch",
            "aarch64",
            "-r",
            tmp.path().join("none").to_str().unwrap(),
        ],
    );
    assert!(!res.status.success());
    let text = show(&res);
    assert!(
        text.contains("cannot build for aarch64") && text.contains("qemu"),
        "{text}"
    );
}

/// A Makefile written the way melange's documentation and distributions
/// drive melange (a `MELANGE` variable, `keygen` for the key, `build` with
/// the usual flags, a separate `index`, then `test`), run unchanged apart
/// from the binary it names.
const MAKEFILE: &str = r#"MELANGE ?= melange
ARCH ?= x86_64
KEY ?= local-melange.rsa
OUT ?= packages

MELANGE_OPTS += --arch ${ARCH}
MELANGE_OPTS += --signing-key ${KEY}
MELANGE_OPTS += --runner bubblewrap
MELANGE_OPTS += --env-file build-${ARCH}.env
MELANGE_OPTS += --namespace local
MELANGE_OPTS += --pipeline-dir ./pipelines/
MELANGE_OPTS += --out-dir ${OUT}
MELANGE_OPTS += --generate-index=false

all: ${OUT}/${ARCH}/APKINDEX.tar.gz

${KEY}:
	${MELANGE} keygen ${KEY}

${OUT}/${ARCH}/greet-1.0.0-r0.apk: greet.yaml ${KEY}
	${MELANGE} build greet.yaml ${MELANGE_OPTS} --source-dir ./greet/

${OUT}/${ARCH}/APKINDEX.tar.gz: ${OUT}/${ARCH}/greet-1.0.0-r0.apk
	${MELANGE} index -o $@ --signing-key ${KEY} ${OUT}/${ARCH}/*.apk

test: all
	${MELANGE} test greet.yaml --arch ${ARCH} --runner bubblewrap --pipeline-dirs ./pipelines/ --keyring-append ${KEY}.pub --out-dir ${OUT}

.PHONY: all test
"#;

#[test]
fn a_melange_makefile_runs_unchanged_with_the_binary_swapped() {
    if !bwrap_or_skip() || arch() != "x86_64" {
        return;
    }
    if !util::require("make", "it runs melange's Makefile (apt-get install make)") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(d.join("build-x86_64.env"), "GREETING=hello-from-env\n").unwrap();
    std::fs::create_dir_all(d.join("pipelines/local")).unwrap();
    std::fs::write(
        d.join("pipelines/local/write.yaml"),
        "name: write the greeting\ninputs:\n  text:\n    required: true\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/greet\n      echo \"${{inputs.text}} $GREETING\" > ${{targets.destdir}}/usr/share/greet/text\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("greet")).unwrap();
    std::fs::write(d.join("greet/extra"), "from the source dir\n").unwrap();
    std::fs::write(
        d.join("greet.yaml"),
        "package:\n  name: greet\n  version: 1.0.0\n  epoch: 0\n  description: makefile\n  copyright:\n    - license: MIT\npipeline:\n  - uses: local/write\n    with:\n      text: hi\n  - runs: cp extra ${{targets.destdir}}/usr/share/greet/extra\ntest:\n  pipeline:\n    - runs: test -f /etc/passwd\n",
    )
    .unwrap();
    let res = Command::new("make")
        .current_dir(d)
        .arg(format!("MELANGE={}", bin()))
        .arg("test")
        .env("HOME", d)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert_ok(&res);
    let apk = d.join("packages/x86_64/greet-1.0.0-r0.apk");
    let e = entries(&apk);
    assert_eq!(e["usr/share/greet/text"].content, b"hi hello-from-env\n");
    assert_eq!(e["usr/share/greet/extra"].content, b"from the source dir\n");
    let text = show(&res);
    assert!(text.contains("PASS greet-1.0.0-r0"), "{text}");
    let v = util::cmd()
        .args(["verify", "--keys-dir"])
        .arg(d)
        .arg(&apk)
        .arg(d.join("packages/x86_64/APKINDEX.tar.gz"))
        .output()
        .unwrap();
    assert_ok(&v);
}
