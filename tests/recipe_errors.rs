//! Broken recipes give one clear message with file:line:column and exit
//! code 2, never a panic. Each row is a fixture in tests/fixtures/bad-recipes.

mod util;

use std::path::Path;

const PIPELINES: &str = "tests/fixtures/recipes/pipelines";

/// (fixture, exact message after `error: `)
const TABLE: &[(&str, &str)] = &[
    (
        "wrong-indentation.yaml",
        "tests/fixtures/bad-recipes/wrong-indentation.yaml:4:7: invalid YAML: while parsing a block mapping, did not find expected key (is the indentation wrong?)",
    ),
    (
        "unknown-key.yaml",
        "tests/fixtures/bad-recipes/unknown-key.yaml:5:1: unknown key `pipline` in `recipe` (did you mean `pipeline`?)",
    ),
    (
        "uses-and-runs.yaml",
        "tests/fixtures/bad-recipes/uses-and-runs.yaml:6:5: step cannot have both `uses: demo/echo` and `runs`",
    ),
    (
        "with-without-uses.yaml",
        "tests/fixtures/bad-recipes/with-without-uses.yaml:6:5: step has `with` but no `uses`",
    ),
    (
        "missing-required-input.yaml",
        "tests/fixtures/bad-recipes/missing-required-input.yaml:6:5: pipeline `demo/fetch` requires input `uri`",
    ),
    (
        "unknown-input.yaml",
        "tests/fixtures/bad-recipes/unknown-input.yaml:9:7: unknown input `expected-sha265` for pipeline `demo/fetch` (did you mean `expected-sha256`?)",
    ),
    (
        "bad-checksum-length.yaml",
        "tests/fixtures/bad-recipes/bad-checksum-length.yaml:9:24: `expected-sha256` must be 64 hex digits, found 16",
    ),
    (
        "undefined-variable.yaml",
        "tests/fixtures/bad-recipes/undefined-variable.yaml:8:48: undefined variable `${{vars.prefix}}` in runs",
    ),
    (
        "undefined-in-pipeline.yaml",
        "tests/fixtures/recipes/pipelines/demo/broken.yaml:7:16: undefined variable `${{inputs.nope}}` in runs (in pipeline `demo/broken` used at tests/fixtures/bad-recipes/undefined-in-pipeline.yaml:7:5)",
    ),
    (
        "bad-if.yaml",
        "tests/fixtures/bad-recipes/bad-if.yaml:6:25: invalid `if` condition: expected `==` or `!=`, found `=`",
    ),
    (
        "range-missing-data.yaml",
        "tests/fixtures/bad-recipes/range-missing-data.yaml:12:12: subpackage `py${{range.key}}-bad` ranges over `python`, but no `data` entry has that name (did you mean `pythons`?)",
    ),
    (
        "duplicate-subpackage.yaml",
        "tests/fixtures/bad-recipes/duplicate-subpackage.yaml:10:11: duplicate subpackage name `bad-doc` (first defined at line 8)",
    ),
    (
        "subpackage-same-as-main.yaml",
        "tests/fixtures/bad-recipes/subpackage-same-as-main.yaml:8:11: subpackage `bad` has the same name as the main package",
    ),
    (
        "invalid-package-name.yaml",
        "tests/fixtures/bad-recipes/invalid-package-name.yaml:2:9: invalid package name `bad/name`: must match ^[A-Za-z0-9][A-Za-z0-9._+-]*$",
    ),
    (
        "invalid-version.yaml",
        "tests/fixtures/bad-recipes/invalid-version.yaml:3:12: invalid version `v1.0-beta`: expected an apk version such as 1.2.3, 1.2.3a, 1.0_rc1 or 2.0_p1",
    ),
    (
        "duplicate-key.yaml",
        "tests/fixtures/bad-recipes/duplicate-key.yaml:5:3: duplicate key `version` (first defined at line 3)",
    ),
    (
        "list-where-text.yaml",
        "tests/fixtures/bad-recipes/list-where-text.yaml:4:5: `version` must be text, found a list",
    ),
    (
        "uses-escapes.yaml",
        "tests/fixtures/bad-recipes/uses-escapes.yaml:6:11: invalid pipeline name `../../etc/passwd`: must be a relative name like `autoconf/make` (no `..`, no leading `/`)",
    ),
    (
        "unknown-pipeline.yaml",
        "tests/fixtures/bad-recipes/unknown-pipeline.yaml:6:11: unknown pipeline `demo/fecth`: not found in tests/fixtures/recipes/pipelines and the built-in pipelines (did you mean `demo/fetch`?)",
    ),
];

fn run(args: &[&str]) -> std::process::Output {
    util::cmd()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run pkgbuild")
}

#[test]
fn each_broken_recipe_gives_one_positioned_message() {
    let mut failures = Vec::new();
    for (fixture, want) in TABLE {
        let path = format!("tests/fixtures/bad-recipes/{fixture}");
        let out = run(&[
            "compile",
            &path,
            "--arch",
            "x86_64",
            "--pipeline-dir",
            PIPELINES,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = format!("error: {want}\n");
        if out.status.code() != Some(2) || stderr != expected || !out.stdout.is_empty() {
            failures.push(format!(
                "{fixture}: exit {:?}\n  want: {expected}  got:  {stderr}",
                out.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_fixture_is_in_the_table() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad-recipes");
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            TABLE.iter().any(|(f, _)| *f == name),
            "{name} has no expected message"
        );
    }
}

#[test]
fn lint_reports_every_broken_recipe_and_fails() {
    let mut args = vec!["lint", "--pipeline-dir", PIPELINES];
    let paths: Vec<String> = TABLE
        .iter()
        .map(|(f, _)| format!("tests/fixtures/bad-recipes/{f}"))
        .collect();
    args.extend(paths.iter().map(String::as_str));
    args.push("tests/fixtures/recipes/full.yaml");
    let out = run(&args);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (_, want) in TABLE {
        assert!(stderr.contains(want), "missing {want} in\n{stderr}");
    }
    assert!(stderr.contains(&format!(
        "{} of {} recipe(s) failed",
        TABLE.len(),
        TABLE.len() + 1
    )));
}

#[test]
fn unknown_arch_is_a_usage_error() {
    let out = run(&[
        "compile",
        "tests/fixtures/recipes/full.yaml",
        "--arch",
        "vax",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown architecture `vax`"));
}

#[test]
fn unknown_build_option_names_the_defined_ones() {
    let out = run(&[
        "compile",
        "tests/fixtures/recipes/full.yaml",
        "--pipeline-dir",
        PIPELINES,
        "--build-option",
        "extar",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown build option `extar` (did you mean `extra`?)"),
        "{stderr}"
    );
}

/// A seeded random loop: mangled recipes give errors, never panics.
#[test]
fn mutated_recipes_never_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = std::fs::read(root.join("tests/fixtures/recipes/full.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.yaml");
    let opts = pkgbuild::plan::CompileOptions {
        pipeline_dirs: vec![root.join(PIPELINES)],
        ..Default::default()
    };
    let alphabet = b" \n:-'\"{}[]$|>&*!#%@.0a";
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut errors = 0;
    for _ in 0..400 {
        let mut bytes = original.clone();
        for _ in 0..(1 + next() % 4) {
            let i = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        if let Err(e) = pkgbuild::plan::compile(&path, &opts) {
            assert!(
                e.to_string().starts_with(&path.display().to_string()) || e.file.ends_with(".yaml")
            );
            errors += 1;
        }
    }
    assert!(errors > 0, "mutations should break some recipes");
}
