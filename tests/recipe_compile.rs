//! `pkgbuild compile` and `package-version` on the fixture recipe
//! tests/fixtures/recipes/full.yaml, which exercises vars, var-transforms,
//! range, `if:` on steps and subpackages, nested pipelines, input defaults
//! that refer to other inputs, working-directory inheritance, environment
//! merging, needs, build options, tests and --vars-file.

use std::process::Command;

use serde_json::Value;

const RECIPE: &str = "tests/fixtures/recipes/full.yaml";
const PIPELINES: &str = "tests/fixtures/recipes/pipelines";

fn pkgbuild(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pkgbuild"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run pkgbuild")
}

fn compile(extra: &[&str]) -> Value {
    let mut args = vec!["compile", RECIPE, "--pipeline-dir", PIPELINES];
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
    // Tests run in their own environment, not the build's.
    assert!(plan["packages"][0]["test"]["steps"][0]["environment"]["CFLAGS"].is_null());
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
