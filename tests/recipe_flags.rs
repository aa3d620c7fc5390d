//! melange's `build` flags about the recipe and its workspace:
//! `--workspace-dir` (the build happens in a directory of the user's,
//! empty before and kept after), `--git-repo-url` and `--license` (the
//! recipe's own repository and licence, recorded in the SBOM as a package
//! the apk is DESCRIBED_BY, validated with pyspdxtools).

mod util;

use std::fs;
use std::path::Path;

use util::*;

const RECIPE: &str = r#"package:
  name: wsdemo
  version: 1.0.0
  epoch: 0
  description: writes where it ran
  copyright:
    - license: MIT
pipeline:
  - runs: |
      pwd > where
      cat seed > seen
      mkdir -p ${{targets.destdir}}/usr/share/wsdemo
      cp where ${{targets.destdir}}/usr/share/wsdemo/
"#;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn recipe_in(dir: &Path, name: &str) -> std::path::PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("seed"), "from the source dir\n").unwrap();
    write_recipe(
        dir,
        name,
        &RECIPE.replace("name: wsdemo", &format!("name: {name}")),
    )
}

#[test]
fn the_workspace_dir_is_the_build_root_and_is_kept() {
    let mut runners = vec!["host"];
    if bwrap_or_skip() {
        runners.push("bwrap");
    }
    for runner in runners {
        let tmp = tempfile::tempdir().unwrap();
        let name = format!("wsdemo-{runner}");
        let recipe = recipe_in(&tmp.path().join("src"), &name);
        let ws = tmp.path().join("new/ws");
        let out = tmp.path().join("repo");
        let res = build(
            &recipe,
            &out,
            &["--runner", runner, "--workspace-dir", ws.to_str().unwrap()],
        );
        assert_ok(&res);
        let abs = ws.canonicalize().unwrap();
        assert!(
            stderr(&res).contains(&format!("workspace is {}", abs.display())),
            "{}",
            show(&res)
        );
        // The sources were copied in, the steps ran there, the outputs stay.
        assert_eq!(
            fs::read_to_string(ws.join("seen")).unwrap(),
            "from the source dir\n"
        );
        let inside = match runner {
            "bwrap" => "/home/build".to_string(),
            _ => abs.display().to_string(),
        };
        assert_eq!(fs::read_to_string(ws.join("where")).unwrap().trim(), inside);
        assert!(ws
            .join(format!("melange-out/{name}/usr/share/wsdemo/where"))
            .is_file());
        let pkg = apk(&out, &format!("{name}-1.0.0-r0.apk"));
        assert_eq!(
            entries(&pkg)["usr/share/wsdemo/where"].content,
            format!("{inside}\n").into_bytes()
        );

        // Used once, it is not empty: a second build is refused, untouched.
        let before = snapshot(&ws);
        let res = build(
            &recipe,
            &tmp.path().join("repo2"),
            &["--runner", runner, "--workspace-dir", ws.to_str().unwrap()],
        );
        assert_eq!(res.status.code(), Some(2), "{}", show(&res));
        let err = stderr(&res);
        assert!(
            err.contains(&format!("--workspace-dir {}: not empty", ws.display())),
            "{err}"
        );
        assert_eq!(before, snapshot(&ws));
        assert!(!tmp.path().join("repo2").join(arch()).exists());
    }
}

#[test]
fn workspace_dir_misuse_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let a = recipe_in(&tmp.path().join("a"), "wsa");
    let b = recipe_in(&tmp.path().join("b"), "wsb");
    let file = tmp.path().join("file");
    fs::write(&file, "x").unwrap();
    let out = tmp.path().join("repo");
    let res = build(
        &a,
        &out,
        &[
            "--runner",
            "host",
            "--workspace-dir",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(stderr(&res).contains("not a directory"), "{}", show(&res));

    let ws = tmp.path().join("ws");
    let res = build(
        &a,
        &out,
        &[
            b.to_str().unwrap(),
            "--runner",
            "host",
            "--workspace-dir",
            ws.to_str().unwrap(),
        ],
    );
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    assert!(stderr(&res).contains("takes one recipe"), "{}", show(&res));
    assert!(!ws.exists());
}

/// The SBOM of `apk` as JSON, with its bytes.
fn sbom_of(apk: &Path) -> (serde_json::Value, Vec<u8>) {
    let e = entries(apk);
    let (_, sbom) = e
        .iter()
        .find(|(k, _)| k.ends_with(".spdx.json"))
        .expect("an SBOM");
    (
        serde_json::from_slice(&sbom.content).unwrap(),
        sbom.content.clone(),
    )
}

#[test]
fn repository_and_licence_of_the_recipe_are_in_the_sbom() {
    let tmp = tempfile::tempdir().unwrap();
    // The recipe in a subdirectory of a git checkout: named by its path
    // there.
    let repo_dir = tmp.path().join("checkout");
    let recipe = recipe_in(&repo_dir.join("pkgs"), "meta-demo");
    git(&repo_dir, &["init", "-q", "-b", "main"]);
    git(&repo_dir, &["add", "."]);
    git(&repo_dir, &["commit", "-qm", "recipes"]);
    let commit = git(&repo_dir, &["rev-parse", "HEAD"]);
    let out = tmp.path().join("repo");
    assert_ok(&build(
        &recipe,
        &out,
        &[
            "--runner",
            "host",
            "--git-commit",
            &commit,
            "--git-repo-url",
            "https://github.com/example-org/recipes",
            "--license",
            "Apache-2.0 OR MIT",
        ],
    ));
    let pkg = apk(&out, "meta-demo-1.0.0-r0.apk");
    let (doc, bytes) = sbom_of(&pkg);
    let packages = doc["packages"].as_array().unwrap();
    let r = packages
        .iter()
        .find(|p| p["name"] == "pkgs/meta-demo.yaml")
        .unwrap_or_else(|| panic!("no recipe package: {doc:#}"));
    assert_eq!(r["versionInfo"], commit.as_str());
    assert_eq!(r["licenseDeclared"], "Apache-2.0 OR MIT");
    assert_eq!(
        r["downloadLocation"],
        format!("git+https://github.com/example-org/recipes@{commit}#pkgs/meta-demo.yaml")
    );
    assert_eq!(
        r["externalRefs"][0]["referenceLocator"],
        format!("pkg:github/example-org/recipes@{commit}#pkgs/meta-demo.yaml")
    );
    // The package's own licence is still the recipe's copyright.
    let main = packages.iter().find(|p| p["name"] == "meta-demo").unwrap();
    assert_eq!(main["licenseDeclared"], "MIT");
    let rels = doc["relationships"].as_array().unwrap();
    assert!(
        rels.iter().any(|x| x["spdxElementId"] == main["SPDXID"]
            && x["relationshipType"] == "DESCRIBED_BY"
            && x["relatedSpdxElement"] == r["SPDXID"]),
        "{rels:?}"
    );
    validate_spdx(&[("recipe-flags".to_string(), bytes)]);

    // Without the flags the SBOM has no recipe package.
    let plain = tmp.path().join("plain");
    assert_ok(&build(&recipe, &plain, &["--runner", "host"]));
    let (doc, _) = sbom_of(&apk(&plain, "meta-demo-1.0.0-r0.apk"));
    assert!(!doc["packages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"].as_str().unwrap().ends_with(".yaml")));
}

#[test]
fn bad_licence_or_repository_url_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe_in(&tmp.path().join("src"), "bad-flags");
    let out = tmp.path().join("repo");
    for (flag, value, says) in [
        ("--license", "Not A Licence", "--license \"Not A Licence\""),
        (
            "--git-repo-url",
            "not a url",
            "--git-repo-url \"not a url\"",
        ),
    ] {
        let res = build(&recipe, &out, &["--runner", "host", flag, value]);
        assert_eq!(res.status.code(), Some(2), "{}", show(&res));
        assert!(stderr(&res).contains(says), "{}", show(&res));
        assert!(!out.join(arch()).exists());
    }
}
