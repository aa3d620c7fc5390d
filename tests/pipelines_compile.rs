//! Every built-in pipeline must be usable from a recipe: for each file under `pipelines/`
//! this writes a small recipe that calls it with `uses:` (in the main package and in a
//! subpackage), passing a plausible value for every required input, runs `pkgbuild
//! compile` on it and reads the plan back. An input the scripts refer to but do not
//! declare, a substitution the compiler does not know, or a nested `uses:` that does not
//! resolve all fail here, long before a build would.

mod pipelines_support;
mod util;

use std::fs;

use pipelines_support::{load_all, Pipeline};
use serde_json::Value;

/// A value a recipe could plausibly pass for a required input of this name.
fn plausible(input: &str) -> &'static str {
    match input {
        "uri" | "repository" => "https://example.org/hello/hello-1.2.3.tar.gz",
        "packages" => "./cmd/hello",
        "output" | "package" | "gem" | "extension" => "hello",
        "version" => "1.2.3",
        "command" => "hello --version",
        "patches" => "fix-build.patch",
        "src" => "build/hello",
        "deps" => "golang.org/x/net@v0.33.0",
        "project" => "valkey",
        "path" => "src/hello",
        "executable-path" => "/usr/bin/hello",
        _ => "value",
    }
}

/// Inputs a pipeline needs beyond those it marks required: `fetch` is a host
/// stage, and the compiler refuses a download without a checksum although
/// each of its checksum inputs alone is optional.
fn also_needed(p: &Pipeline) -> &'static [(&'static str, &'static str)] {
    match p.name.as_str() {
        "fetch" => &[(
            "expected-sha256",
            "5ab2b0b2a1f2bd9c1b5ee9b48ae4bc3f4b5cbd0b2f0c9dd6e5d0a0e9e8f0c1d2",
        )],
        _ => &[],
    }
}

/// The `with:` block (indented for a step at `indent` spaces) for `p`'s required inputs.
fn with_block(p: &Pipeline, indent: usize) -> String {
    let mut given: Vec<(&str, &str)> = p
        .inputs
        .iter()
        .filter(|i| i.required)
        .map(|i| (i.name.as_str(), plausible(&i.name)))
        .collect();
    given.extend(also_needed(p).iter().copied());
    if given.is_empty() {
        return String::new();
    }
    let pad = " ".repeat(indent);
    let mut out = format!("{pad}  with:\n");
    for (name, value) in given {
        out.push_str(&format!("{pad}    {name}: \"{value}\"\n"));
    }
    out
}

fn recipe_for(p: &Pipeline) -> String {
    format!(
        "package:\n  name: hello\n  version: 1.2.3\n  epoch: 0\n  description: uses {name}\n  \
         copyright:\n    - license: MIT\n\
         pipeline:\n  - uses: {name}\n{main_with}\
         subpackages:\n  - name: hello-sub\n    pipeline:\n      - uses: {name}\n{sub_with}",
        name = p.name,
        main_with = with_block(p, 2),
        sub_with = with_block(p, 6),
    )
}

/// Every `uses` name in a compiled step list, nested steps included.
fn uses_in(steps: &Value, out: &mut Vec<String>) {
    for s in steps.as_array().into_iter().flatten() {
        if let Some(u) = s["uses"].as_str() {
            out.push(u.to_string());
        }
        uses_in(&s["pipeline"], out);
    }
}

#[test]
fn every_builtin_pipeline_compiles_from_a_recipe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pipelines = load_all();
    assert!(pipelines.len() >= 73, "only {} pipelines", pipelines.len());
    let mut problems = Vec::new();
    for p in &pipelines {
        let path = dir
            .path()
            .join(format!("{}.yaml", p.name.replace('/', "_")));
        let recipe = recipe_for(p);
        fs::write(&path, &recipe).expect("write recipe");
        let out = util::cmd()
            .arg("compile")
            .arg(&path)
            .output()
            .expect("run pkgbuild");
        if !out.status.success() {
            problems.push(format!(
                "{}: compile failed: {}\n{recipe}",
                p.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            continue;
        }
        let plan: Value = match serde_json::from_slice(&out.stdout) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: the plan is not JSON: {e}", p.name));
                continue;
            }
        };
        for (n, package) in ["hello", "hello-sub"].iter().enumerate() {
            let pkg = &plan["packages"][n];
            let mut used = Vec::new();
            uses_in(&pkg["steps"], &mut used);
            if pkg["name"] != *package || !used.contains(&p.name) {
                problems.push(format!(
                    "{}: package {package} of the plan does not run it (uses: {used:?})",
                    p.name
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn required_inputs_are_enforced_for_the_new_pipelines() {
    // A recipe that leaves out a required input must not compile; git-am is one whose
    // only input is required.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("git-am.yaml");
    fs::write(
        &path,
        "package:\n  name: hello\n  version: 1.2.3\n  epoch: 0\n  description: d\n  \
         copyright:\n    - license: MIT\npipeline:\n  - uses: git-am\n",
    )
    .expect("write recipe");
    let out = util::cmd()
        .arg("compile")
        .arg(&path)
        .output()
        .expect("run pkgbuild");
    assert!(!out.status.success(), "compiled without patches");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("patches"),
        "error does not name the input: {err}"
    );
}
