//! `pkgbuild plan`: the graph as JSON, a GitHub Actions workflow checked
//! against GitHub's schema with `check-jsonschema` (PyPI; its bundled
//! schema works offline), an Argo Workflow checked for the structure Argo
//! requires and loaded into Argo's model (PyPI `hera`, offline), and a plan
//! executed wave by wave into a repository that `pkgbuild root` (apk's
//! install rules) installs from. The Python tools come from the virtual
//! environment `target/jsonschema-venv` (or `$PKGBUILD_TOOLS_VENV`); the
//! checks skip without them, except under `CI`.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use util::{assert_ok, bin, show, test_key, write_recipe, EPOCH};

fn recipe(dir: &Path, name: &str, needs: &[&str]) -> PathBuf {
    let needs: String = needs.iter().map(|n| format!("\n      - {n}")).collect();
    write_recipe(
        dir,
        name,
        &format!(
            r#"package:
  name: {name}
  version: 1.0.0
  epoch: 0
  description: {name} for the plan tests
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - busybox{needs}
pipeline:
  - runs: |
      mkdir -p "${{{{targets.destdir}}}}/usr/share/{name}"
      echo {name} > "${{{{targets.destdir}}}}/usr/share/{name}/x"
subpackages:
  - name: {name}-dev
    pipeline:
      - runs: |
          mkdir -p "${{{{targets.subpkgdir}}}}/usr/include"
          echo '/* {name} */' > "${{{{targets.subpkgdir}}}}/usr/include/{name}.h"
"#
        ),
    )
}

/// ant <- bee (needs ant-dev) <- cat (needs bee), plus a lone dog.
fn chain(dir: &Path) -> Vec<PathBuf> {
    // Each recipe in its own directory, so each has its own source dir.
    let mk = |name: &str, needs: &[&str]| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        recipe(&d, name, needs)
    };
    vec![
        mk("cat", &["bee"]),
        mk("ant", &[]),
        mk("bee", &["ant-dev"]),
        mk("dog", &[]),
    ]
}

fn plan(recipes: &[PathBuf], extra: &[&str]) -> Output {
    let mut cmd = util::cmd();
    cmd.arg("plan").args(recipes).args(extra);
    if !extra.contains(&"--arch") {
        cmd.args(["--arch", "x86_64"]);
    }
    cmd.output().unwrap()
}

fn json(recipes: &[PathBuf], extra: &[&str]) -> serde_json::Value {
    let out = plan(recipes, extra);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn json_names_waves_needs_and_input_hashes_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let recipes = chain(tmp.path());
    let a = plan(&recipes, &[]);
    let b = plan(&recipes, &[]);
    assert_ok(&a);
    assert_eq!(a.stdout, b.stdout, "same inputs, same bytes");
    let g: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let wave = |name: &str| {
        g["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(wave("ant")["wave"], 0);
    assert_eq!(wave("dog")["wave"], 0);
    assert_eq!(wave("bee")["wave"], 1);
    assert_eq!(wave("cat")["wave"], 2);
    assert_eq!(
        wave("ant")["packages"],
        serde_json::json!(["ant", "ant-dev"])
    );
    let bee_needs = wave("bee")["needs"].clone();
    assert_eq!(bee_needs.as_array().unwrap().len(), 1);
    assert!(bee_needs[0].as_str().unwrap().ends_with("ant/ant.yaml"));
    assert_eq!(g["waves"].as_array().unwrap().len(), 3);

    // The hash moves with the recipe text, a source file, a lock file and
    // the arch, and with nothing else.
    let hash = |g: &serde_json::Value, name: &str| {
        g["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["input_hash"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let before = hash(&g, "dog");
    assert!(before.starts_with("sha256:") && before.len() == 71);
    let dog_dir = tmp.path().join("dog");
    std::fs::write(dog_dir.join("patch.diff"), "x").unwrap();
    let with_source = hash(&json(&recipes, &[]), "dog");
    assert_ne!(with_source, before);
    std::fs::write(dog_dir.join("dog.lock.json"), "{}").unwrap();
    let with_lock = hash(&json(&recipes, &[]), "dog");
    assert_ne!(with_lock, with_source);
    assert_eq!(hash(&json(&recipes, &[]), "ant"), hash(&g, "ant"));
    let arm = hash(&json(&recipes, &["--arch", "aarch64"]), "ant");
    assert_ne!(arm, hash(&g, "ant"));
}

#[test]
fn a_cycle_is_refused_naming_the_recipes() {
    let tmp = tempfile::tempdir().unwrap();
    let a = recipe(tmp.path(), "ping", &["pong"]);
    let b = recipe(tmp.path(), "pong", &["ping-dev"]);
    let out = plan(&[a, b], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("dependency cycle") && err.contains("ping.yaml"),
        "{err}"
    );
}

/// `$PKGBUILD_TOOLS_VENV`, else `target/jsonschema-venv`: a virtual
/// environment with check-jsonschema, hera and pyyaml (PyPI).
fn tools_venv() -> PathBuf {
    std::env::var_os("PKGBUILD_TOOLS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/jsonschema-venv"))
}

fn check_jsonschema() -> Option<PathBuf> {
    ensure_tools();
    let venv = tools_venv();
    let candidates = [
        venv.join("bin/check-jsonschema"),
        PathBuf::from("check-jsonschema"),
    ];
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn the_github_workflow_validates_against_githubs_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let recipes = chain(tmp.path());
    let file = tmp.path().join("workflow.yml");
    let out = plan(
        &recipes,
        &[
            "--format",
            "github-actions",
            "--publish",
            "s3://bucket/repo",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("needs:\n      - wave-1"), "{text}");
    assert!(text.contains("${{ secrets.AWS_SECRET_ACCESS_KEY }}"));
    let Some(cj) = check_jsonschema() else {
        util::require_that(
            false,
            "check-jsonschema (PyPI)",
            "pip install check-jsonschema into target/jsonschema-venv",
        );
        return;
    };
    let out = Command::new(cj)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(&file)
        .output()
        .unwrap();
    assert_ok(&out);
}

#[test]
fn the_argo_workflow_has_the_structure_argo_requires() {
    let tmp = tempfile::tempdir().unwrap();
    let recipes = chain(tmp.path());
    let out = plan(
        &recipes,
        &["--format", "argo", "--publish", "s3://bucket/repo"],
    );
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    assert_eq!(doc["apiVersion"].as_str(), Some("argoproj.io/v1alpha1"));
    assert_eq!(doc["kind"].as_str(), Some("Workflow"));
    assert!(doc["metadata"]["generateName"].as_str().is_some());
    let entry = doc["spec"]["entrypoint"].as_str().unwrap();
    let templates = doc["spec"]["templates"].as_vec().unwrap();
    let names: Vec<&str> = templates
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&entry));
    let dag = templates
        .iter()
        .find(|t| t["name"].as_str() == Some(entry))
        .unwrap();
    let tasks = dag["dag"]["tasks"].as_vec().unwrap();
    assert_eq!(tasks.len(), 4);
    let task_names: Vec<&str> = tasks.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for t in tasks {
        let name = t["name"].as_str().unwrap();
        // DNS-1123 label, as Argo requires of task names.
        assert!(
            name.len() <= 63
                && name
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        );
        assert!(names.contains(&t["template"].as_str().unwrap()));
        if let Some(deps) = t["dependencies"].as_vec() {
            for d in deps {
                assert!(task_names.contains(&d.as_str().unwrap()));
            }
        }
    }
    let bee = tasks
        .iter()
        .find(|t| t["name"].as_str() == Some("r-bee"))
        .unwrap();
    assert_eq!(bee["dependencies"][0].as_str(), Some("r-ant"));
    assert!(text.contains("secretKeyRef"));

    // Argo's own model (Hera's, generated from Argo's API schema).
    let Some(python) = tools_python("hera.workflows.models") else {
        util::require_that(
            false,
            "hera and pyyaml (PyPI)",
            "the Argo model check needs them: pip install hera pyyaml into target/jsonschema-venv",
        );
        return;
    };
    let file = tmp.path().join("workflow.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/argo_validate.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: Workflow"));
}

/// Create the tools venv when it is missing or incomplete (once per test
/// binary, bounded in time); failures surface as the tool being absent.
fn ensure_tools() {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let venv = tools_venv();
        let python = venv.join("bin/python");
        let ready = Command::new(&python)
            .args(["-c", "import yaml, hera.workflows.models, check_jsonschema"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ready {
            return;
        }
        let run = |cmd: &mut Command| {
            let mut child = match cmd
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(_) => return false,
            };
            let start = std::time::Instant::now();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return status.success();
                }
                if start.elapsed() > std::time::Duration::from_secs(600) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        };
        if !python.exists() && !run(Command::new("python3").args(["-m", "venv"]).arg(&venv)) {
            return;
        }
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "check-jsonschema",
            "hera",
            "pyyaml",
        ]));
    });
}

/// The Python of the tools venv, when it can import `module` (and yaml).
fn tools_python(module: &str) -> Option<PathBuf> {
    ensure_tools();
    let python = tools_venv().join("bin/python");
    Command::new(&python)
        .args(["-c", &format!("import yaml, {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
        .then_some(python)
}

/// Run every entry's `command` wave by wave, the entries of a wave at
/// once, each in its own directory (its own "machine"); returns the
/// entries' stdout.
fn execute(g: &serde_json::Value, work: &Path, round: &str) -> Vec<String> {
    let bin_dir = Path::new(bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for (w, wave) in g["waves"].as_array().unwrap().iter().enumerate() {
        let jobs: Vec<_> = wave
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let node = g["recipes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|n| n["recipe"] == *r)
                    .unwrap();
                let dir = work.join(format!("{round}-job-{w}-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                Command::new("sh")
                    .args(["-ec", node["command"].as_str().unwrap()])
                    .current_dir(&dir)
                    .env("PATH", &path)
                    .env("PKGBUILD_SIGNING_KEY_FILE", test_key())
                    .env("SOURCE_DATE_EPOCH", EPOCH)
                    .env("HOME", &dir)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for j in jobs {
            let out = j.wait_with_output().unwrap();
            assert_ok(&out);
            outputs.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    outputs
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else if !p.ends_with(".pkgbuild.lock") {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_plan_executed_wave_by_wave_ends_in_an_installable_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let recipes = chain(tmp.path());
    let dest = tmp.path().join("published");
    let g = json(
        &recipes,
        &[
            "--publish",
            dest.to_str().unwrap(),
            "--build-arg=--runner",
            "--build-arg=host",
        ],
    );
    let first = execute(&g, tmp.path(), "first");
    assert!(first.iter().all(|o| !o.contains("up to date")), "{first:?}");

    // Installed as users do: over HTTP, trusting only the public key.
    let server = util::http::Server::start(&dest);
    let key = test_key();
    let root = tmp.path().join("root");
    let out = util::cmd()
        .arg("root")
        .arg(&root)
        .arg("-r")
        .arg(server.url(""))
        .arg("-k")
        .arg(format!("{}.pub", key.display()))
        .args(["--arch", "x86_64", "--apk-cache-dir"])
        .arg(tmp.path().join("apk-cache"))
        .args(["cat", "bee", "ant-dev", "dog"])
        .output()
        .unwrap();
    assert_ok(&out);
    for name in ["cat", "bee", "dog"] {
        let f = root.join(format!("usr/share/{name}/x"));
        assert_eq!(std::fs::read_to_string(&f).unwrap().trim(), name);
    }
    assert!(root.join("usr/include/ant.h").is_file());
    assert!(server.count("APKINDEX.tar.gz") > 0, "{:?}", server.hits());

    // Run again: every recipe is published from the same inputs, so every
    // job skips its build and nothing at the destination changes.
    let before = tree(&dest);
    let again = execute(&g, tmp.path(), "again");
    assert!(
        again.iter().all(|o| o.contains("up to date: skipped")),
        "{again:?}"
    );
    assert_eq!(tree(&dest), before);
}
