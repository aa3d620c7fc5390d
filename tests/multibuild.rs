//! `pkgbuild build A.yaml B.yaml ...` over several recipes, through the
//! real binary: dependency order whatever the command line says (a recipe
//! that lists another's `-dev` subpackage builds after it and installs it),
//! independent recipes building at the same time without mixing their
//! lines, cycles and broken recipes refused before anything runs, a failure
//! stopping the run or (`--keep-going`) only what needs it, `--skip-existing`
//! and recipes skipped for the architecture. Steps run with the host
//! runner, so the tests need no bubblewrap.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use util::*;

/// A recipe `name` 1.0.0 whose main package holds `/usr/share/<name>/x`
/// and whose `<name>-dev` subpackage holds `/usr/include/<name>.h`.
/// `needs` go to `environment.contents.packages`; `script` runs first;
/// `extra` is more YAML inside `package:`.
fn recipe(dir: &Path, name: &str, needs: &[&str], script: &str, extra: &str) -> PathBuf {
    let needs = needs
        .iter()
        .map(|n| format!("\n      - {n}"))
        .collect::<String>();
    let script = script
        .lines()
        .map(|l| format!("      {l}\n"))
        .collect::<String>();
    write_recipe(
        dir,
        name,
        &format!(
            r#"package:
  name: {name}
  version: 1.0.0
  epoch: 0
{extra}  description: {name} for the multibuild tests
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - busybox{needs}
pipeline:
  - name: make
    runs: |
{script}      mkdir -p "${{{{targets.destdir}}}}/usr/share/{name}"
      echo {name} > "${{{{targets.destdir}}}}/usr/share/{name}/x"
subpackages:
  - name: {name}-dev
    pipeline:
      - runs: |
          mkdir -p "${{{{targets.subpkgdir}}}}/usr/include"
          echo '#define FROM_{upper} 1' > "${{{{targets.subpkgdir}}}}/usr/include/{name}.h"
"#,
            upper = name.to_uppercase().replace('-', "_"),
        ),
    )
}

/// `pkgbuild build RECIPES... --runner host EXTRA...` into `out`.
fn build_all(recipes: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<String> = recipes[1..]
        .iter()
        .map(|r| r.display().to_string())
        .collect();
    args.extend(["--runner", "host"].map(String::from));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build(recipes[0], out, &args)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The summary rows (`  built    name-1.0.0-r0  recipe ...`) as
/// (status, id, rest), in the order printed.
fn summary(out: &Output) -> Vec<(String, String, String)> {
    let err = stderr(out);
    let table = err
        .split_once("==> summary:")
        .map(|(_, t)| t.to_string())
        .unwrap_or_else(|| panic!("no summary\n{}", show(out)));
    table
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| {
            let mut w = l.split_whitespace();
            let status = w.next().unwrap_or("").to_string();
            let id = w.next().unwrap_or("").to_string();
            (status, id, w.collect::<Vec<_>>().join(" "))
        })
        .collect()
}

fn row<'a>(rows: &'a [(String, String, String)], id: &str) -> &'a (String, String, String) {
    rows.iter()
        .find(|r| r.1 == id)
        .unwrap_or_else(|| panic!("{id} not in summary {rows:?}"))
}

fn log_of(out: &Path, id: &str) -> String {
    fs::read_to_string(out.join("logs").join(format!("{id}.log"))).unwrap_or_default()
}

#[test]
fn a_recipe_is_built_after_the_recipe_whose_package_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // On the command line the consumer comes first; it needs the other's
    // -dev subpackage, whose header must be in its sysroot.
    let consumer = recipe(
        tmp.path(),
        "mb-order-app",
        &["mb-order-lib-dev"],
        "test -f \"$PKGBUILD_SYSROOT/usr/include/mb-order-lib.h\"\ngrep FROM_MB_ORDER_LIB \"$PKGBUILD_SYSROOT/usr/include/mb-order-lib.h\"",
        "",
    );
    let lib = recipe(tmp.path(), "mb-order-lib", &[], "", "");
    let res = build_all(&[&consumer, &lib], &out, &[]);
    assert_ok(&res);
    let err = stderr(&res);
    assert!(
        err.contains("in dependency order: mb-order-lib-1.0.0-r0, mb-order-app-1.0.0-r0"),
        "{err}"
    );
    assert!(
        err.contains("mb-order-app-1.0.0-r0 waits for mb-order-lib-1.0.0-r0 (mb-order-lib-dev)"),
        "{err}"
    );
    let rows = summary(&res);
    let ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(ids, ["mb-order-lib-1.0.0-r0", "mb-order-app-1.0.0-r0"]);
    assert!(rows.iter().all(|r| r.0 == "built"), "{rows:?}");
    // The packages are printed as they are published: the library's first.
    let stdout = String::from_utf8_lossy(&res.stdout);
    let at = |f: &str| stdout.find(f).unwrap_or_else(|| panic!("{f}: {stdout}"));
    assert!(at("mb-order-lib-dev-1.0.0-r0.apk") < at("mb-order-app-1.0.0-r0.apk"));
    let app_log = log_of(&out, "mb-order-app-1.0.0-r0");
    assert!(
        app_log.contains("installing from local repository: mb-order-lib-dev-1.0.0-r0"),
        "{app_log}"
    );
    assert!(app_log.contains("#define FROM_MB_ORDER_LIB 1"), "{app_log}");
    let index = index_text(&out.join(arch()).join("APKINDEX.tar.gz"));
    for p in ["mb-order-lib", "mb-order-lib-dev", "mb-order-app"] {
        assert!(index.contains(&format!("P:{p}\n")), "{index}");
    }
}

#[test]
fn independent_recipes_build_at_the_same_time_without_mixing_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let meet = tmp.path().join("meet");
    fs::create_dir_all(&meet).unwrap();
    // Each build says it is here and waits for the other (at most 60 s,
    // then fails): built one after the other, the first would fail. Then
    // both print long lines at once.
    let script = |me: &str, other: &str| {
        format!(
            "touch {m}/{me}\ni=0; while [ ! -e {m}/{other} ]; do i=$((i+1)); [ $i -lt 600 ] || exit 9; sleep 0.1; done\nfor n in $(seq 1 300); do echo \"payload {me} $n {pad}\"; done",
            m = meet.display(),
            pad = "x".repeat(200)
        )
    };
    let a = recipe(tmp.path(), "mb-par-a", &[], &script("a", "b"), "");
    let b = recipe(tmp.path(), "mb-par-b", &[], &script("b", "a"), "");
    let res = build_all(&[&a, &b], &out, &["--jobs", "2"]);
    assert_ok(&res);
    let rows = summary(&res);
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.0 == "built"), "{rows:?}");
    for f in ["mb-par-a-1.0.0-r0.apk", "mb-par-b-1.0.0-r0.apk"] {
        assert!(out.join(arch()).join(f).is_file(), "{f}");
    }
    // Every payload line arrived whole, with its own package's prefix.
    let err = stderr(&res);
    let pad = "x".repeat(200);
    let mut seen = 0;
    for line in err.lines().filter(|l| l.contains("payload")) {
        let ok = ["a", "b"].iter().any(|me| {
            line.strip_prefix(&format!("mb-par-{me}/make: payload {me} "))
                .and_then(|rest| rest.split_once(' '))
                .is_some_and(|(n, p)| n.parse::<u32>().is_ok() && p == pad)
        });
        assert!(ok, "mixed line: {line:?}");
        seen += 1;
    }
    assert_eq!(seen, 600, "{err}");
    // Messages that do not name their package are tagged with it.
    assert!(
        err.contains("mb-par-a: building mb-par-a-1.0.0-r0"),
        "{err}"
    );
}

#[test]
fn a_dependency_cycle_is_refused_naming_both_recipes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let a = recipe(tmp.path(), "mb-cyc-a", &["mb-cyc-b-dev"], "", "");
    let b = recipe(tmp.path(), "mb-cyc-b", &["mb-cyc-a"], "", "");
    let res = build_all(&[&a, &b], &out, &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = stderr(&res);
    assert!(err.contains("dependency cycle"), "{err}");
    assert!(
        err.contains("mb-cyc-a.yaml needs mb-cyc-b-dev from")
            && err.contains("mb-cyc-b.yaml needs mb-cyc-a from"),
        "{err}"
    );
    assert!(!out.exists(), "something was built");
}

#[test]
fn every_broken_recipe_is_reported_with_its_position_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let marker = tmp.path().join("ran");
    let good = recipe(
        tmp.path(),
        "mb-good",
        &[],
        &format!("touch {}", marker.display()),
        "",
    );
    let typo = write_recipe(
        tmp.path(),
        "mb-typo",
        "package:\n  name: mb-typo\n  version: 1.0.0\n  epoch: 0\npipline:\n  - runs: 'true'\n",
    );
    let undefined = write_recipe(
        tmp.path(),
        "mb-undef",
        "package:\n  name: mb-undef\n  version: 1.0.0\n  epoch: 0\npipeline:\n  - runs: echo ${{vars.nope}}\n",
    );
    let res = build_all(&[&typo, &good, &undefined], &out, &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = stderr(&res);
    assert!(err.contains("mb-typo.yaml:5:1"), "{err}");
    assert!(err.contains("mb-undef.yaml:6:"), "{err}");
    assert!(
        err.contains("2 of 3 recipes have errors; nothing was built"),
        "{err}"
    );
    assert!(!marker.exists(), "a step ran");
    assert!(!out.exists(), "something was written");
}

/// `mb-fail` fails in its step `make`; `mb-needs-fail` needs it; the
/// independent `mb-indep` comes last on the command line.
fn failing_set(dir: &Path) -> [PathBuf; 3] {
    [
        recipe(dir, "mb-fail", &[], "echo going down\nexit 3", ""),
        recipe(dir, "mb-needs-fail", &["mb-fail-dev"], "", ""),
        recipe(dir, "mb-indep", &[], "", ""),
    ]
}

#[test]
fn a_failure_stops_the_run_and_skips_what_needs_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let [fail, needs, indep] = failing_set(tmp.path());
    let res = build_all(&[&fail, &needs, &indep], &out, &[]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = stderr(&res);
    assert!(
        err.contains("exit status 3") && err.contains("going down"),
        "{err}"
    );
    let rows = summary(&res);
    let failed = row(&rows, "mb-fail-1.0.0-r0");
    assert_eq!(failed.0, "failed");
    assert!(
        failed.2.contains("step mb-fail/make: exit status 3"),
        "{rows:?}"
    );
    let dep = row(&rows, "mb-needs-fail-1.0.0-r0");
    assert_eq!(dep.0, "skipped");
    assert!(
        dep.2.contains("dependency failed: mb-fail-1.0.0-r0"),
        "{rows:?}"
    );
    let ind = row(&rows, "mb-indep-1.0.0-r0");
    assert_eq!(ind.0, "skipped");
    assert!(ind.2.contains("not reached"), "{rows:?}");
    assert!(err.contains("0 built, 1 failed, 2 skipped"), "{err}");
    assert!(!out.join(arch()).join("mb-indep-1.0.0-r0.apk").exists());
}

#[test]
fn keep_going_builds_everything_that_does_not_need_the_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let [fail, needs, indep] = failing_set(tmp.path());
    let res = build_all(&[&fail, &needs, &indep], &out, &["--keep-going"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let rows = summary(&res);
    assert_eq!(row(&rows, "mb-fail-1.0.0-r0").0, "failed");
    let dep = row(&rows, "mb-needs-fail-1.0.0-r0");
    assert_eq!(dep.0, "skipped");
    assert!(
        dep.2.contains("dependency failed: mb-fail-1.0.0-r0"),
        "{rows:?}"
    );
    assert_eq!(row(&rows, "mb-indep-1.0.0-r0").0, "built");
    assert!(out.join(arch()).join("mb-indep-1.0.0-r0.apk").is_file());
    assert!(!out.join(arch()).join("mb-needs-fail-1.0.0-r0.apk").exists());
    assert!(!log_of(&out, "mb-needs-fail-1.0.0-r0").contains("building"));
}

#[test]
fn skip_existing_builds_nothing_the_second_time_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // Outside the recipes' folder: a file there is one of their inputs.
    let marker = tmp.path().join("runs");
    let dir = tmp.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    let lib = recipe(
        &dir,
        "mb-skip-lib",
        &[],
        &format!("echo run >> {}", marker.display()),
        "",
    );
    let app = recipe(&dir, "mb-skip-app", &["mb-skip-lib-dev"], "", "");
    assert_ok(&build_all(&[&app, &lib], &out, &["--skip-existing"]));
    assert_eq!(fs::read_to_string(&marker).unwrap(), "run\n");
    let before = snapshot(&out.join(arch()));
    let res = build_all(&[&app, &lib], &out, &["--skip-existing", "--jobs", "0"]);
    assert_ok(&res);
    let rows = summary(&res);
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!(r.0, "skipped", "{rows:?}");
        assert!(r.2.contains("up to date"), "{rows:?}");
    }
    assert!(stderr(&res).contains("0 built, 0 failed, 2 skipped"));
    assert!(!stderr(&res).contains("==> mb-skip"), "{}", show(&res));
    assert_eq!(fs::read_to_string(&marker).unwrap(), "run\n", "a step ran");
    assert_eq!(snapshot(&out.join(arch())), before);

    // One package file missing: that recipe builds again, the other not.
    fs::remove_file(out.join(arch()).join("mb-skip-lib-dev-1.0.0-r0.apk")).unwrap();
    let res = build_all(&[&app, &lib], &out, &["--skip-existing"]);
    assert_ok(&res);
    let rows = summary(&res);
    assert_eq!(row(&rows, "mb-skip-lib-1.0.0-r0").0, "built");
    assert_eq!(row(&rows, "mb-skip-app-1.0.0-r0").0, "skipped");
}

#[test]
fn a_recipe_for_another_architecture_is_skipped_and_satisfies_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let other = if arch() == "aarch64" {
        "x86_64"
    } else {
        "aarch64"
    };
    let foreign = recipe(
        tmp.path(),
        "mb-foreign",
        &[],
        "",
        &format!("  target-architecture: [{other}]\n"),
    );
    let user = recipe(tmp.path(), "mb-foreign-user", &["mb-foreign-dev"], "", "");
    let plain = recipe(tmp.path(), "mb-native", &[], "", "");
    let res = build_all(&[&user, &foreign, &plain], &out, &[]);
    assert_ok(&res);
    let rows = summary(&res);
    let skipped = row(&rows, "mb-foreign-1.0.0-r0");
    assert_eq!(skipped.0, "skipped");
    assert!(
        skipped.2.contains(&format!("not built for {}", arch())) && skipped.2.contains(other),
        "{rows:?}"
    );
    assert_eq!(row(&rows, "mb-native-1.0.0-r0").0, "built");
    // Its packages are not waited for: they come from wherever the build
    // environment finds them (here: nowhere local, so the host).
    assert_eq!(row(&rows, "mb-foreign-user-1.0.0-r0").0, "built");
    let log = log_of(&out, "mb-foreign-user-1.0.0-r0");
    assert!(
        log.contains("from the host: busybox, mb-foreign-dev"),
        "{log}"
    );
    assert!(!out.join(arch()).join("mb-foreign-1.0.0-r0.apk").exists());
}

/// The input hash `pkgbuild plan` gives `recipe`.
fn plan_hash(recipe: &Path) -> String {
    let out = pkgbuild(&[
        "plan".as_ref(),
        recipe.as_os_str(),
        "--arch".as_ref(),
        arch().as_ref(),
    ]);
    assert_ok(&out);
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    g["recipes"][0]["input_hash"].as_str().unwrap().to_string()
}

#[test]
fn skip_existing_rebuilds_a_recipe_whose_inputs_changed_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    // The repository lives beside the recipe, as in melange's layout: it
    // must not count among the recipe's inputs.
    let dir = tmp.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    let out = dir.join("packages");
    let lib = recipe(&dir, "mb-hash-lib", &[], "", "");
    // Planned before the repository exists, as in a CI checkout: `plan`
    // cannot know which directory a build will write to.
    let first = plan_hash(&lib);
    assert_ok(&build_all(&[&lib], &out, &["--skip-existing"]));
    let record = out.join(arch()).join(".pkgbuild-inputs/mb-hash-lib");
    assert_eq!(fs::read_to_string(&record).unwrap(), format!("{first}\n"));

    // Same inputs: skipped.
    let res = build_all(&[&lib], &out, &["--skip-existing"]);
    assert_ok(&res);
    assert_eq!(row(&summary(&res), "mb-hash-lib-1.0.0-r0").0, "skipped");

    // Changed inputs, same version: rebuilt, saying why and what publish
    // will do with it.
    let text = fs::read_to_string(&lib).unwrap();
    fs::write(&lib, text.replace("echo mb-hash-lib >", "echo changed >")).unwrap();
    let res = build_all(&[&lib], &out, &["--skip-existing"]);
    assert_ok(&res);
    assert_eq!(row(&summary(&res), "mb-hash-lib-1.0.0-r0").0, "built");
    let err = stderr(&res);
    assert!(
        err.contains("rebuilding") && err.contains(&first) && err.contains("bump the epoch"),
        "{}",
        show(&res)
    );
    let second = fs::read_to_string(&record).unwrap();
    assert!(
        second.starts_with("sha256:") && second != format!("{first}\n"),
        "{second}"
    );

    // No record (a repository melange or an older pkgbuild built): the
    // package files decide, as in melange.
    fs::remove_file(&record).unwrap();
    fs::write(&lib, text).unwrap();
    let res = build_all(&[&lib], &out, &["--skip-existing"]);
    assert_ok(&res);
    assert_eq!(row(&summary(&res), "mb-hash-lib-1.0.0-r0").0, "skipped");
}

#[test]
fn skip_published_skips_what_the_destination_records_and_rebuilds_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("recipes");
    fs::create_dir_all(&dir).unwrap();
    let lib = recipe(&dir, "mb-pub-lib", &[], "", "");
    let hash = plan_hash(&lib);
    let local = tmp.path().join("local");
    assert_ok(&build_all(&[&lib], &local, &[]));
    let dest = tmp.path().join("published");
    let out = pkgbuild(&[
        "publish".as_ref(),
        local.as_os_str(),
        dest.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "--input-hash".as_ref(),
        format!("mb-pub-lib={hash}").as_ref(),
    ]);
    assert_ok(&out);

    // Another machine, an empty out-dir: the destination decides.
    let fresh = tmp.path().join("fresh");
    let skip = ["--skip-published", dest.to_str().unwrap()];
    let res = build_all(&[&lib], &fresh, &skip);
    assert_ok(&res);
    assert_eq!(row(&summary(&res), "mb-pub-lib-1.0.0-r0").0, "skipped");
    assert!(stderr(&res).contains("is published at"), "{}", show(&res));
    assert!(!fresh.join(arch()).join("mb-pub-lib-1.0.0-r0.apk").exists());

    let text = fs::read_to_string(&lib).unwrap();
    fs::write(&lib, text.replace("echo mb-pub-lib >", "echo changed >")).unwrap();
    let res = build_all(&[&lib], &fresh, &skip);
    assert_ok(&res);
    assert_eq!(row(&summary(&res), "mb-pub-lib-1.0.0-r0").0, "built");
    let err = stderr(&res);
    assert!(
        err.contains("rebuilding")
            && err.contains(dest.to_str().unwrap())
            && err.contains("bump the epoch"),
        "{}",
        show(&res)
    );
}
