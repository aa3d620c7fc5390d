//! The recipe embedded in every package as `.melange.yaml` is a real
//! recipe: built from the example, taken back out of the package, and
//! built again, it yields byte-identical packages. `--env-file` values
//! never reach it.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use util::*;

const SECRET: &str = "tok-embedded-5a4b3c2d1e";

/// The `.apk` files of a repository, by file name.
fn packages(out: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(out.join(arch()))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "apk"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect()
}

fn embedded(apk: &Path) -> String {
    let control = control_entries(apk);
    let entry = control
        .get(".melange.yaml")
        .unwrap_or_else(|| panic!("{} has no .melange.yaml", apk.display()));
    String::from_utf8(entry.content.clone()).unwrap()
}

/// `examples/hello` without its recipe, so the rebuild sees the same
/// source files beside the recipe it is given.
fn copy_sources(to: &Path) -> PathBuf {
    let from = repo_root().join("examples/hello");
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(&from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().is_some_and(|n| n != "hello.yaml") {
            fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    to.join("hello.yaml")
}

#[test]
fn embedded_recipe_rebuilds_byte_identical_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("build.env");
    fs::write(&env, format!("DEPLOY_TOKEN={SECRET}\n")).unwrap();
    let env_arg = ["--env-file", env.to_str().unwrap()];

    let first = tmp.path().join("first");
    assert_ok(&build(
        &repo_root().join("examples/hello/hello.yaml"),
        &first,
        &env_arg,
    ));
    let first_pkgs = packages(&first);
    assert_eq!(
        first_pkgs.keys().collect::<Vec<_>>(),
        [
            "hello-1.2.0-r0.apk",
            "hello-dev-1.2.0-r0.apk",
            "hello-doc-1.2.0-r0.apk"
        ]
    );

    let recipe = embedded(&apk(&first, "hello-1.2.0-r0.apk"));
    // The same recipe travels in every package of the build.
    for name in first_pkgs.keys() {
        assert_eq!(embedded(&apk(&first, name)), recipe, "{name}");
    }
    assert!(
        !recipe.contains(SECRET),
        "env-file value embedded:\n{recipe}"
    );
    assert!(
        recipe.starts_with('#') && recipe.contains("\npackage:\n  name: hello\n"),
        "not a recipe:\n{recipe}"
    );
    // `uses:` steps stay steps, not the pipelines they were inlined into.
    assert!(recipe.contains("  - uses: strip\n"), "{recipe}");
    assert!(recipe.contains("      - uses: split/dev\n"), "{recipe}");

    let rebuilt_recipe = copy_sources(&tmp.path().join("src"));
    fs::write(&rebuilt_recipe, &recipe).unwrap();
    let second = tmp.path().join("second");
    assert_ok(&build(&rebuilt_recipe, &second, &env_arg));
    let second_pkgs = packages(&second);
    assert_eq!(
        first_pkgs.keys().collect::<Vec<_>>(),
        second_pkgs.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        embedded(&apk(&second, "hello-1.2.0-r0.apk")),
        recipe,
        "the rebuild embeds a different recipe"
    );
    for (name, bytes) in &first_pkgs {
        assert!(
            second_pkgs[name] == *bytes,
            "{name} differs after a rebuild from its embedded recipe"
        );
    }
}

#[test]
fn a_plan_the_embedded_recipe_cannot_express_is_refused_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    // The main description is substituted once, before `vars`; one that
    // quotes itself would come out longer on every rebuild.
    let recipe = write_recipe(
        tmp.path(),
        "selfref",
        r#"package:
  name: selfref
  version: 1.0.0
  epoch: 0
  description: "x ${{package.description}}"
pipeline:
  - runs: echo building
"#,
    );
    let out = tmp.path().join("repo");
    let res = build(&recipe, &out, &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("package.description"), "{err}");
    // Refused before the build log is even opened, so before any step.
    assert!(!out.join("logs").exists(), "the build started");
    assert!(!out.join(arch()).join("APKINDEX.tar.gz").exists());
}
