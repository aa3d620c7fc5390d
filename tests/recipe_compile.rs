//! `pkgbuild compile` and `package-version` on the fixture recipe
//! tests/fixtures/recipes/full.yaml, which exercises vars, var-transforms,
//! range, `if:` on steps and subpackages, nested pipelines, input defaults
//! that refer to other inputs, working-directory inheritance, environment
//! merging, needs, build options, tests and --vars-file; and on
//! tests/fixtures/recipes/every-key.yaml, which uses every key melange's
//! schema accepts (apko's image settings under `environment` included).

mod util;

use std::path::Path;

use serde_json::Value;

const RECIPE: &str = "tests/fixtures/recipes/full.yaml";
const PIPELINES: &str = "tests/fixtures/recipes/pipelines";

fn pkgbuild(args: &[&str]) -> std::process::Output {
    util::cmd()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run pkgbuild")
}

fn compile(extra: &[&str]) -> Value {
    compile_file(RECIPE, extra)
}

fn compile_file(recipe: &str, extra: &[&str]) -> Value {
    let mut args = vec!["compile", recipe, "--pipeline-dir", PIPELINES];
    args.extend_from_slice(extra);
    let out = pkgbuild(&args);
    assert!(
        out.status.success(),
        "compile failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("plan is JSON")
}

fn names(plan: &Value) -> Vec<&str> {
    plan["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

fn runs(step: &Value) -> &str {
    step["runs"].as_str().unwrap_or("")
}

#[test]
fn packages_are_main_then_range_expanded_subpackages_without_false_if() {
    let plan = compile(&["--arch", "x86_64"]);
    // 3.10 sorts before 3.9 as text, as melange sorts range keys.
    assert_eq!(
        names(&plan),
        ["demo", "py3.10-demo", "py3.9-demo", "demo-doc"]
    );
    let main = &plan["packages"][0];
    assert_eq!(main["version"], "1.10");
    assert_eq!(main["epoch"], "3");
    assert_eq!(main["full_version"], "1.10-r3");
    assert_eq!(main["description"], "demo 1.10 package");
    assert_eq!(main["license"], "MIT AND Apache-2.0");
    assert_eq!(main["dependencies"]["runtime"][0], "libfoo=1.10-r3");
    assert_eq!(main["dependencies"]["provider_priority"], "10");
    assert_eq!(plan["packages"][1]["description"], "python 3.10 (310)");
    assert_eq!(plan["packages"][1]["is_subpackage"], true);
    assert_eq!(plan["builds_for_arch"], true);
}

#[test]
fn uses_steps_bind_inputs_with_defaults_and_nested_steps() {
    let plan = compile(&["--arch", "x86_64"]);
    let steps = plan["packages"][0]["steps"].as_array().unwrap();
    let fetch = &steps[0];
    assert_eq!(fetch["uses"], "demo/fetch");
    assert_eq!(fetch["with"]["strip-components"], "1");
    assert_eq!(fetch["with"]["directory"], "demo-src");
    assert_eq!(fetch["with"]["label"], "demo-src@1");
    assert_eq!(fetch["with"]["expected-commit"], "");
    assert_eq!(fetch["needs_packages"][0], "wget");
    assert_eq!(
        runs(&fetch["pipeline"][0]),
        "echo fetch https://example.org/demo-1.10.tar.gz into demo-src strip 1\necho label demo-src@1\n"
    );

    let configure = &steps[1];
    assert_eq!(configure["working_directory"], "/home/build/src");
    assert_eq!(configure["environment"]["STEP"], "one");
    assert_eq!(configure["environment"]["CFLAGS"], "-O2");
    assert_eq!(
        runs(&configure["pipeline"][0]),
        "./configure --prefix=/usr --host=x86_64-pc-linux-gnu"
    );
    // Nested steps inherit the working directory, environment and inputs.
    let nested = &configure["pipeline"][1];
    assert_eq!(nested["working_directory"], "/home/build/src/build");
    let echo = &nested["pipeline"][0];
    assert_eq!(echo["working_directory"], "/home/build/src/build");
    assert_eq!(echo["environment"]["STEP"], "one");
    assert_eq!(runs(echo), "echo \"in --prefix=/usr\" from demo");
}

#[test]
fn if_conditions_drop_steps_and_vars_resolve() {
    let plan = compile(&["--arch", "x86_64"]);
    let steps = plan["packages"][0]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "the `echo never` step is dropped");
    assert_eq!(runs(&steps[2]), "echo 1_10 1 true x86_64 amd64");
    // Absolute working directories stay; relative ones nest under the parent.
    assert_eq!(steps[3]["pipeline"][0]["working_directory"], "/opt/abs");
    assert_eq!(steps[3]["pipeline"][1]["working_directory"], "/opt/abs/sub");
}

#[test]
fn go_arch_names_are_accepted_and_change_conditions() {
    let plan = compile(&["--arch", "arm64"]);
    assert_eq!(plan["arch"], "aarch64");
    let steps = plan["packages"][0]["steps"].as_array().unwrap();
    assert_eq!(runs(&steps[2]), "echo never");
    assert_eq!(plan["builds_for_arch"], true);
    let plan = compile(&["--arch", "ppc64le"]);
    assert_eq!(plan["builds_for_arch"], false);
}

#[test]
fn subpackage_targets_and_context() {
    let plan = compile(&["--arch", "x86_64"]);
    let py = &plan["packages"][1]["steps"][0];
    assert_eq!(
        runs(py),
        "mkdir -p /home/build/melange-out/py3.10-demo /home/build/melange-out/py3.10-demo /home/build/melange-out/demo-doc"
    );
    let doc = &plan["packages"][3];
    assert_eq!(
        runs(&doc["steps"][0]),
        "echo demo-doc demo-doc /home/build/melange-out/demo"
    );
    let test = &doc["test"];
    assert_eq!(
        test["environment"]["contents"]["packages"],
        serde_json::json!(["busybox", "demo-doc"])
    );
    assert_eq!(runs(&test["steps"][0]), "echo \"testing\" from demo-doc");
}

#[test]
fn environment_gathers_needs_and_main_test_installs_the_package() {
    let plan = compile(&["--arch", "x86_64"]);
    assert_eq!(
        plan["environment"]["contents"]["packages"],
        serde_json::json!(["build-base", "wget", "busybox"])
    );
    assert_eq!(plan["environment"]["environment"]["HOME"], "/home/build");
    assert_eq!(
        plan["packages"][0]["test"]["environment"]["contents"]["packages"],
        serde_json::json!(["demo", "zz-tester"])
    );
    // Tests install their own packages but see the recipe's variables, as
    // melange's tests do.
    assert_eq!(
        plan["packages"][0]["test"]["steps"][0]["environment"]["CFLAGS"],
        "-O2"
    );
}

#[test]
fn build_option_changes_vars_packages_and_subpackage_if() {
    let plan = compile(&["--arch", "x86_64", "--build-option", "extra"]);
    assert_eq!(
        names(&plan),
        [
            "demo",
            "py3.10-demo",
            "py3.9-demo",
            "demo-doc",
            "demo-extra"
        ]
    );
    let steps = plan["packages"][0]["steps"].as_array().unwrap();
    assert_eq!(runs(&steps[2]), "echo 1_10 9 true x86_64 amd64");
    assert_eq!(
        plan["environment"]["contents"]["packages"],
        serde_json::json!(["extra-dep", "wget", "busybox"])
    );
}

#[test]
fn vars_file_overrides_recipe_vars() {
    let dir = tempfile::tempdir().unwrap();
    let vf = dir.path().join("vars.yaml");
    std::fs::write(&vf, "short: 00303\n").unwrap();
    let plan = compile(&["--arch", "x86_64", "--vars-file", vf.to_str().unwrap()]);
    let steps = plan["packages"][0]["steps"].as_array().unwrap();
    assert_eq!(runs(&steps[2]), "echo 1_10 00303 true x86_64 amd64");
}

#[test]
fn package_version_prints_name_version_release() {
    let out = pkgbuild(&["package-version", RECIPE]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "demo-1.10-r3\n");
}

#[test]
fn lint_passes_a_good_recipe() {
    let out = pkgbuild(&["lint", RECIPE, "--pipeline-dir", PIPELINES]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const EVERY_KEY: &str = "tests/fixtures/recipes/every-key.yaml";

/// The main package and its range-expanded subpackages, keys in byte order.
const EVERY_KEY_RANGE: &[&str] = &[
    "every-key",
    "py3.10-every-key",
    "py3.12-every-key",
    "py3.9-every-key",
];

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn every_key_recipe_compiles_to_melanges_package_set() {
    let plan = compile_file(EVERY_KEY, &["--arch", "x86_64"]);
    assert_eq!(plan["builds_for_arch"], true);
    // Range items in byte order of their keys; the doc subpackage's `if`
    // holds because the `no-docs` option is off.
    assert_eq!(names(&plan), [EVERY_KEY_RANGE, &["every-key-doc"]].concat());
    let main = &plan["packages"][0];
    assert_eq!(main["full_version"], "2.4.1-r3");
    assert_eq!(main["license"], "Apache-2.0 AND (MIT OR BSD-3-Clause)");
    assert_eq!(
        strs(&main["dependencies"]["provides"]),
        ["every-key-compat=2.4.1-r3"]
    );
    // The step that declares its own input sees the default; var-transforms apply.
    let build = &main["steps"][1];
    assert_eq!(build["working_directory"], "/home/build/src");
    assert_eq!(build["pipeline"][0]["runs"], "make -j4 VERSION=2.4");
    // Runtime-only repositories are the image's, not the build's.
    let contents = &plan["environment"]["contents"];
    assert_eq!(
        strs(&contents["repositories"]),
        [
            "https://build.example.com/os",
            "https://packages.example.com/os"
        ]
    );
    assert_eq!(
        strs(&contents["packages"]),
        ["build-base", "busybox", "make"]
    );
    let doc = &plan["packages"][4];
    assert_eq!(doc["license"], "CC-BY-4.0");
    assert_eq!(
        strs(&doc["test"]["environment"]["contents"]["packages"]),
        ["busybox", "every-key-doc"]
    );
}

#[test]
fn every_key_build_option_drops_the_conditional_subpackage() {
    let plan = compile_file(
        EVERY_KEY,
        &["--arch", "aarch64", "--build-option", "no-docs"],
    );
    assert_eq!(plan["builds_for_arch"], true);
    assert_eq!(names(&plan), EVERY_KEY_RANGE);
    let contents = &plan["environment"]["contents"];
    assert!(strs(&contents["packages"]).contains(&"texinfo-stub"));
}

#[test]
fn every_key_other_arches_are_not_built() {
    let plan = compile_file(EVERY_KEY, &["--arch", "riscv64"]);
    assert_eq!(plan["builds_for_arch"], false);
}

#[test]
fn every_key_package_version_reads_the_epoch() {
    let out = pkgbuild(&["package-version", EVERY_KEY]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "every-key-2.4.1-r3"
    );
}

/// Misspell one key of the fixture (the first line that is exactly
/// `from` after trimming) and expect exit code 2 naming the line.
fn every_key_typo(dir: &Path, from: &str, to: &str) -> (i32, String, usize) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(EVERY_KEY))
        .expect("fixture");
    let mut line_no = 0;
    let lines: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if line_no == 0 && l.trim_start().starts_with(from) {
                line_no = i + 1;
                l.replacen(from, to, 1)
            } else {
                l.to_string()
            }
        })
        .collect();
    assert_ne!(line_no, 0, "{from} not in fixture");
    let path = dir.join(format!("typo-{}.yaml", to.trim_end_matches(':')));
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = pkgbuild(&["compile", path.to_str().unwrap(), "--arch", "x86_64"]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        line_no,
    )
}

#[test]
fn every_key_typos_name_the_place_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, want) in [
        ("test-resources:", "test-resource:", "test-resources"),
        ("os-release:", "os-releases:", "os-release"),
        ("retry:", "retyr:", "retry"),
        ("initial-delay:", "initial-dely:", "initial-delay"),
        (
            "runtime_repositories:",
            "runtime_repository:",
            "runtime_repositories",
        ),
        (
            "detection-override:",
            "detection-overide:",
            "detection-override",
        ),
        (
            "enable-prerelease-tags:",
            "enable-prerelease-tag:",
            "enable-prerelease-tags",
        ),
    ] {
        let (code, err, line) = every_key_typo(dir.path(), from, to);
        assert_eq!(code, 2, "{to}: {err}");
        let bad = to.trim_end_matches(':');
        assert!(
            err.contains(&format!(":{line}:"))
                && err.contains(&format!("unknown key `{bad}`"))
                && err.contains(&format!("(did you mean `{want}`?)")),
            "{to}: {err}"
        );
    }
}

#[test]
fn a_value_passed_through_to_a_nested_pipeline_is_the_callers_not_a_self_reference() {
    // outer passes its own `flavour` on as inner's `flavour` (and inner's
    // default for `greeting` uses inner's own `flavour`): melange's common
    // pass-through pattern.
    let dir = tempfile::tempdir().unwrap();
    let pipes = dir.path().join("pipes");
    std::fs::create_dir_all(&pipes).unwrap();
    std::fs::write(
        pipes.join("inner.yaml"),
        "inputs:\n  flavour:\n    description: f\n    default: plain\n  greeting:\n    description: g\n    default: hello-${{inputs.flavour}}\npipeline:\n  - runs: echo ${{inputs.greeting}} ${{inputs.flavour}}\n",
    )
    .unwrap();
    std::fs::write(
        pipes.join("outer.yaml"),
        "inputs:\n  flavour:\n    description: f\n    default: mild\npipeline:\n  - uses: inner\n    with:\n      flavour: ${{inputs.flavour}}\n",
    )
    .unwrap();
    let recipe = dir.path().join("r.yaml");
    std::fs::write(
        &recipe,
        "package:\n  name: r\n  version: 1.0.0\n  epoch: 0\npipeline:\n  - uses: outer\n    with:\n      flavour: spicy\n  - uses: outer\n",
    )
    .unwrap();
    let out = pkgbuild(&[
        "compile",
        recipe.to_str().unwrap(),
        "--pipeline-dir",
        pipes.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = plan.to_string();
    assert!(text.contains("echo hello-spicy spicy"), "{text}");
    assert!(text.contains("echo hello-mild mild"), "{text}");
}

#[test]
fn an_empty_range_is_no_range_and_an_empty_priority_is_absent_as_in_melange() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("empties.yaml");
    std::fs::write(
        &recipe,
        "package:\n  name: empties\n  version: 1.0.0\n  epoch: 0\n  description: x\n  copyright:\n    - license: MIT\n  dependencies:\n    replaces-priority: \"\"\nvars:\n  prio: \"\"\npipeline:\n  - runs: echo hi\nsubpackages:\n  - name: empties-sub\n    range: \"\"\n    description: sub\n    dependencies:\n      provider-priority: ${{vars.prio}}\n    pipeline:\n      - runs: echo sub\n",
    )
    .unwrap();
    let plan = compile_file(recipe.to_str().unwrap(), &[]);
    assert_eq!(names(&plan), ["empties", "empties-sub"]);
    for p in plan["packages"].as_array().unwrap() {
        assert!(p["dependencies"]["provider_priority"].is_null(), "{p}");
        assert!(p["dependencies"]["replaces_priority"].is_null(), "{p}");
    }
}

#[test]
fn compile_output_lists_host_stages_with_ids_and_what_they_fetch_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("r.yaml");
    let sha = "5ab2b0b2a1f2bd9c1b5ee9b48ae4bc3f4b5cbd0b2f0c9dd6e5d0a0e9e8f0c1d2";
    std::fs::write(
        &recipe,
        format!(
            "package:\n  name: r\n  version: 1.0.0\n  epoch: 0\n\
             pipeline:\n  - uses: fetch\n    with:\n      uri: https://example.org/r-${{{{package.version}}}}.tar.gz\n      expected-sha256: {sha}\n\
             \x20 - runs: make\n\
             subpackages:\n  - name: r-extra\n    pipeline:\n      - uses: git-checkout\n        with:\n          repository: https://example.org/extra.git\n          tag: v1\n          destination: extra\n"
        ),
    )
    .unwrap();
    let run = || {
        let out = pkgbuild(&["compile", recipe.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let stdout = run();
    assert_eq!(stdout, run(), "compile output is deterministic");
    let plan: Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(
        plan["host_stages"],
        serde_json::json!([
            {
                "id": "pipeline[0]",
                "runs_on": "host",
                "fetches": "https://example.org/r-1.0.0.tar.gz",
                "writes": format!("<download cache>/sha256/{sha}/r-1.0.0.tar.gz"),
                "hands_over": "PKGBUILD_FETCHED_FILE",
                "kind": "fetch",
                "uri": "https://example.org/r-1.0.0.tar.gz",
                "expected": {"sha256": sha},
                "extract": true,
                "strip_components": 1,
                "directory": "/home/build",
            },
            {
                "id": "subpackages[0].pipeline[0]",
                "runs_on": "host",
                "fetches": "https://example.org/extra.git",
                "writes": "<build scratch>/sources/git-subpackages-0-pipeline-0",
                "hands_over": "PKGBUILD_CHECKOUT_DIR",
                "kind": "git-checkout",
                "repository": "https://example.org/extra.git",
                "branch": null,
                "tag": "v1",
                "expected_commit": null,
                "depth": null,
                "recurse_submodules": false,
                "cherry_picks": [],
                "destination": "/home/build/extra",
            },
        ])
    );
    // Each stage is on its step too; a sandboxed step has no `host` key.
    let main = &plan["packages"][0]["steps"];
    assert_eq!(main[0]["host"], plan["host_stages"][0]);
    assert!(main[1].get("host").is_none(), "{}", main[1]);
    assert_eq!(
        plan["packages"][1]["steps"][0]["host"],
        plan["host_stages"][1]
    );
}
