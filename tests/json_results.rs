//! `--json` results for CI, through the real binary: a multi-recipe run
//! with one recipe built, one failed and one skipped writes a document that
//! validates against `schema/results.schema.json` and whose every package
//! entry (size, sha256, `C:`) matches the file on disk; `--json -` keeps
//! stdout for the document alone; `test` and `lint` documents validate too.
//! The engine's reporter is checked through the library with a recorder,
//! and `-q` says the default key's notice only the first time.

mod util;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use util::*;

fn schema() -> jsonschema::Validator {
    let text = fs::read_to_string(repo_root().join("schema/results.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).expect("the shipped schema is itself valid")
}

#[track_caller]
fn assert_valid(doc: &Value) {
    let errors: Vec<String> = schema()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{}\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(doc).unwrap()
    );
}

/// A recipe `name` 1.0.0 that runs `script` and installs one file;
/// `needs` go to the build environment.
fn recipe(dir: &Path, name: &str, needs: &[&str], script: &str) -> PathBuf {
    let needs: String = needs.iter().map(|n| format!("\n      - {n}")).collect();
    write_recipe(
        dir,
        name,
        &format!(
            r#"package:
  name: {name}
  version: 1.0.0
  epoch: 0
  description: {name} for the json tests
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - busybox{needs}
pipeline:
  - name: make
    runs: |
      {script}
      mkdir -p "${{{{targets.destdir}}}}/usr/share/{name}"
      echo {name} > "${{{{targets.destdir}}}}/usr/share/{name}/x"
subpackages:
  - name: {name}-doc
    pipeline:
      - runs: |
          mkdir -p "${{{{targets.subpkgdir}}}}/usr/share/doc/{name}"
          echo doc > "${{{{targets.subpkgdir}}}}/usr/share/doc/{name}/README"
test:
  pipeline:
    - name: has its file
      runs: test -f "$PKGBUILD_SYSROOT/usr/share/{name}/x"
"#
        ),
    )
}

/// Three recipes: `json-ok` builds, `json-bad` fails in its step, and
/// `json-after` needs `json-bad` and is skipped.
fn three_recipes(dir: &Path) -> Vec<PathBuf> {
    vec![
        recipe(dir, "json-ok", &[], "echo fine"),
        recipe(dir, "json-bad", &[], "echo 'the last words'\n      exit 4"),
        recipe(dir, "json-after", &["json-bad"], "true"),
    ]
}

fn build_json(recipes: &[PathBuf], out: &Path, json: &str) -> std::process::Output {
    let rest: Vec<String> = recipes[1..]
        .iter()
        .map(|r| r.display().to_string())
        .chain(
            ["--runner", "host", "--keep-going", "--json", json]
                .iter()
                .map(|s| s.to_string()),
        )
        .collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    build(&recipes[0], out, &rest)
}

fn entry<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {doc}"))
}

#[test]
fn a_built_a_failed_and_a_skipped_recipe_validate_and_match_the_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipes = three_recipes(tmp.path());
    let json_path = tmp.path().join("results.json");
    let res = build_json(&recipes, &out, json_path.to_str().unwrap());
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let doc: Value = serde_json::from_slice(&fs::read(&json_path).unwrap()).unwrap();
    assert_valid(&doc);

    assert_eq!(doc["command"], "build");
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["archs"], serde_json::json!([arch()]));
    assert_eq!(doc["recipes"].as_array().unwrap().len(), 3);

    let ok = entry(&doc, "json-ok");
    assert_eq!(ok["status"], "built");
    assert_eq!(ok["id"], "json-ok-1.0.0-r0");
    assert!(Path::new(ok["log"].as_str().unwrap()).is_file(), "{ok}");
    let packages = ok["packages"].as_array().unwrap();
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["json-ok", "json-ok-doc"]);
    let index = index_records(&index_text(&out.join(arch()).join("APKINDEX.tar.gz")));
    for p in packages {
        let path = Path::new(p["path"].as_str().unwrap());
        let bytes = fs::read(path).unwrap();
        assert_eq!(p["size"].as_u64(), Some(bytes.len() as u64), "{p}");
        assert_eq!(
            p["sha256"].as_str(),
            Some(sha256_hex(&bytes).as_str()),
            "{p}"
        );
        assert_eq!(p["version"], "1.0.0-r0");
        assert_eq!(p["arch"], arch());
        // The C: identity is the index's, and the SHA-1 of the file's
        // control member (the second gzip member of a signed package).
        let record = index
            .iter()
            .find(|r| Some(r.name.as_str()) == p["name"].as_str())
            .unwrap_or_else(|| panic!("{p} not in the index"));
        assert_eq!(
            record.fields.get(&'C').map(String::as_str),
            p["checksum"].as_str(),
            "{p}"
        );
        assert_eq!(record.fields.get(&'S'), Some(&bytes.len().to_string()));
        let control = &members(&bytes)[1];
        let sha1 = {
            use sha1::Digest;
            sha1::Sha1::digest(control)
        };
        use base64::Engine;
        let want = format!(
            "Q1{}",
            base64::engine::general_purpose::STANDARD.encode(sha1)
        );
        assert_eq!(p["checksum"].as_str(), Some(want.as_str()), "{p}");
    }

    let bad = entry(&doc, "json-bad");
    assert_eq!(bad["status"], "failed");
    assert!(bad["packages"].as_array().unwrap().is_empty());
    let failure = &bad["failure"];
    assert_eq!(failure["step"], "make");
    assert_eq!(failure["package"], "json-bad");
    assert_eq!(failure["exit_code"], 4);
    assert_eq!(failure["exit_status"], "exit status 4");
    let last: Vec<&str> = failure["last_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(last.contains(&"the last words"), "{failure}");
    let log = bad["log"].as_str().unwrap();
    assert!(fs::read_to_string(log).unwrap().contains("the last words"));
    // The terminal says where the log is, and what helps next.
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains(&format!("note: full log: {log}")), "{err}");
    assert!(
        err.contains("--keep-workspace") && err.contains("--debug"),
        "{err}"
    );
    assert!(err.contains("==> json-ok/make: done in "), "{err}");
    assert!(err.contains("==> json-bad/make: failed in "), "{err}");
    assert!(err.contains("1 built, 1 failed, 1 skipped in "), "{err}");

    // The schema does refuse what it should: a mangled digest, a failure
    // without its details.
    let mut broken = doc.clone();
    let i = doc["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["name"] == "json-ok")
        .unwrap();
    broken["recipes"][i]["packages"][0]["sha256"] = "not-hex".into();
    assert!(!schema().is_valid(&broken));
    let mut broken = doc.clone();
    broken["recipes"][i]["status"] = "failed".into();
    assert!(!schema().is_valid(&broken));

    let after = entry(&doc, "json-after");
    assert_eq!(after["status"], "skipped");
    assert_eq!(after["skip"], "dependency-failed");
    assert_eq!(after["reason"], "dependency failed: json-bad-1.0.0-r0");
    assert!(after["duration_seconds"].is_null() && after["log"].is_null());
}

#[test]
fn json_to_stdout_leaves_stdout_to_the_document() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipes = three_recipes(tmp.path());
    let res = build_json(&recipes[..1], &out, "-");
    assert_ok(&res);
    let doc: Value = serde_json::from_slice(&res.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", show(&res)));
    assert_valid(&doc);
    assert_eq!(doc["ok"], true);
    // The produced files' paths, normally on stdout, went to stderr.
    let path = entry(&doc, "json-ok")["packages"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(String::from_utf8_lossy(&res.stderr).contains(&path));
}

#[test]
fn test_and_lint_documents_validate_too() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipes = three_recipes(tmp.path());
    assert_ok(&build(&recipes[0], &out, &["--runner", "host"]));

    let home = out.with_extension("home");
    let test_json = tmp.path().join("test.json");
    let res = util::cmd()
        .args(["test", recipes[0].to_str().unwrap(), "--runner", "host"])
        .arg("--out-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(test_key())
        .arg("--json")
        .arg(&test_json)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_ok(&res);
    let doc: Value = serde_json::from_slice(&fs::read(&test_json).unwrap()).unwrap();
    assert_valid(&doc);
    assert_eq!(doc["command"], "test");
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests[0]["package"], "json-ok-1.0.0-r0");
    assert_eq!(tests[0]["status"], "passed");
    assert_eq!(tests[0]["steps"], 1);
    assert_eq!(tests[1]["status"], "skipped");

    let apk = out.join(arch()).join("json-ok-1.0.0-r0.apk");
    let broken = write_recipe(
        tmp.path(),
        "broken",
        "package:\n  name: broken\n  pipline: []\n",
    );
    let res = pkgbuild(&[
        "lint",
        apk.to_str().unwrap(),
        broken.to_str().unwrap(),
        "--json",
        "-",
    ]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let doc: Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_valid(&doc);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files[0]["kind"], "package");
    assert_eq!(files[0]["status"], "ok");
    assert_eq!(files[1]["kind"], "recipe");
    assert_eq!(files[1]["status"], "failed");
    assert!(files[1]["error"].as_str().unwrap().contains("pipline"));
    assert_eq!(doc["signatures_checked"], false);
}

#[test]
fn the_engine_reports_steps_and_results_to_a_recorder() {
    use pkgbuild::engine::batch::{build_recipes, BatchOptions};
    use pkgbuild::engine::report::{Event, Recorder};
    use pkgbuild::engine::{ApkOptions, BuildOptions, ExtraContents, Verbosity};

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipes = three_recipes(tmp.path());
    let arch = pkgbuild::arch::Arch::host().unwrap();
    let cache = tmp.path().join("cache");
    let common = BuildOptions {
        recipe: PathBuf::new(),
        out_dir: out.clone(),
        arch,
        runner: pkgbuild::sandbox::RunnerKind::Host,
        source_dir: None,
        cache_dir: cache.clone(),
        pipeline_dirs: vec![],
        build_options: vec![],
        vars_file: None,
        secret_env: Default::default(),
        env_files: vec![],
        key_files: vec![],
        network: false,
        keep_workspace: false,
        epoch: 0,
        legacy_sha1_signature: false,
        description: None,
        extra: ExtraContents::default(),
        apk: ApkOptions::new(cache.join("apk")),
        timeout: None,
        generate_index: true,
        namespace: "local".into(),
        empty_workspace: false,
        lint_require: vec![],
        lint_warn: vec![],
        git_commit: None,
        interactive: false,
        workspace_dir: None,
        git_repo_url: None,
        license: None,
        limits: pkgbuild::sandbox::StepLimits::default(),
    };
    let opts = BatchOptions {
        recipes: recipes.clone(),
        archs: vec![arch],
        jobs: 1,
        keep_going: false,
        skip_existing: false,
        skip_published: None,
        build_date: Some("0".into()),
        verbosity: Verbosity::Normal,
        common,
    };
    let key = pkgbuild::apk::sign::SigningKey::load(test_key()).unwrap();
    let rec = Recorder::new();
    let report = build_recipes(&opts, &key, &rec).unwrap();
    assert!(report.failed());
    let events = rec.events();
    // Every step that started finished, with its outcome.
    let finished: Vec<(String, bool)> = events
        .iter()
        .filter_map(|e| match e {
            Event::StepFinish { step, ok, .. } => Some((step.clone(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(
        finished,
        [
            ("json-ok/make".to_string(), true),
            ("json-ok-doc/step 1".to_string(), true),
            ("json-bad/make".to_string(), false),
        ]
    );
    assert!(events.iter().any(|e| matches!(e,
        Event::StepOutput { step, line } if step == "json-bad/make" && line == "the last words")));
    let finishes: Vec<(String, &'static str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::RecipeFinish(r) => Some((r.id.clone(), r.status())),
            _ => None,
        })
        .collect();
    assert_eq!(
        finishes,
        [
            ("json-ok-1.0.0-r0".to_string(), "built"),
            ("json-bad-1.0.0-r0".to_string(), "failed"),
            ("json-after-1.0.0-r0".to_string(), "skipped"),
        ]
    );
    assert!(matches!(
        events.last(),
        Some(Event::RunFinish {
            built: 1,
            failed: 1,
            skipped: 1,
            ..
        })
    ));
    assert_eq!(report.archs[0].recipes[0].packages.len(), 2);
}

#[test]
fn quiet_says_the_default_key_notice_only_the_first_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let r = recipe(tmp.path(), "json-key", &[], "true");
    let run = |quiet: bool| {
        let mut cmd = util::cmd();
        cmd.arg("build")
            .arg(&r)
            .args(["--runner", "host", "--out-dir"])
            .arg(&out)
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env("SOURCE_DATE_EPOCH", "0");
        if quiet {
            cmd.arg("-q");
        }
        let res = cmd.output().unwrap();
        assert_ok(&res);
        String::from_utf8_lossy(&res.stderr).contains("signing with")
    };
    assert!(run(true), "the first quiet run says which key signs");
    assert!(!run(true), "a later quiet run does not");
    assert!(run(false), "without -q the notice always comes");
}
