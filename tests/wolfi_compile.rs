//! Every recipe of the Wolfi sample compiles with the real binary (with
//! `--pipeline-dir` at the sample's `pipelines/`), every package name is
//! fully resolved, and each recipe's package list is the main package plus
//! its subpackages after `range` expansion.
//!
//! The expected list is worked out here, independently of the recipe
//! module: yaml-rust2 reads the recipe, and `package.*`, `vars.*`,
//! `var-transforms` and `range.*` are replaced by plain text search.

mod util;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use yaml_rust2::{Yaml, YamlLoader};

use util::testdata::testdata;

fn text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Replace `${{name}}` (with optional blanks) for every known name.
fn fill(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("${{{{{k}}}}}"), v);
        out = out.replace(&format!("${{{{ {k} }}}}"), v);
    }
    out
}

/// Go's `$1` in a replacement means group 1; Rust reads `$1x` as a name.
fn go_replacement(r: &str) -> String {
    let mut out = String::new();
    let b = r.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            out.push_str(&format!("${{{}}}", &r[start..j]));
            i = j;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The package names a recipe defines: main, then subpackages with ranges expanded.
fn expected_names(recipe: &Path) -> Vec<String> {
    let src = std::fs::read_to_string(recipe).unwrap();
    let doc = &YamlLoader::load_from_str(&src).unwrap()[0];
    let pkg = &doc["package"];
    let mut vars = HashMap::new();
    let name = text(&pkg["name"]).unwrap();
    let version = text(&pkg["version"]).unwrap();
    let epoch = text(&pkg["epoch"]).unwrap_or_else(|| "0".into());
    vars.insert("package.name".to_string(), name.clone());
    vars.insert("package.version".to_string(), version.clone());
    vars.insert(
        "package.full-version".to_string(),
        format!("{version}-r{epoch}"),
    );
    if let Some(h) = doc["vars"].as_hash() {
        for (k, v) in h {
            vars.insert(
                format!("vars.{}", text(k).unwrap()),
                text(v).unwrap_or_default(),
            );
        }
    }
    for t in doc["var-transforms"].as_vec().into_iter().flatten() {
        let from = fill(&text(&t["from"]).unwrap(), &vars);
        let re = regex::Regex::new(&text(&t["match"]).unwrap()).unwrap();
        let rep = go_replacement(&text(&t["replace"]).unwrap_or_default());
        let to = text(&t["to"]).unwrap();
        vars.insert(
            format!("vars.{to}"),
            re.replace_all(&from, rep.as_str()).into_owned(),
        );
    }
    let mut data: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for d in doc["data"].as_vec().into_iter().flatten() {
        let mut items: Vec<(String, String)> = d["items"]
            .as_hash()
            .into_iter()
            .flatten()
            .map(|(k, v)| (text(k).unwrap(), text(v).unwrap_or_default()))
            .collect();
        items.sort();
        data.insert(text(&d["name"]).unwrap(), items);
    }
    let mut names = vec![fill(&name, &vars)];
    for sp in doc["subpackages"].as_vec().into_iter().flatten() {
        let raw = text(&sp["name"]).unwrap();
        match text(&sp["range"]) {
            None => names.push(fill(&raw, &vars)),
            Some(r) => {
                for (k, v) in &data[&r] {
                    let mut vs = vars.clone();
                    vs.insert("range.key".into(), k.clone());
                    vs.insert("range.value".into(), v.clone());
                    names.push(fill(&raw, &vs));
                }
            }
        }
    }
    names
}

#[test]
fn every_wolfi_sample_recipe_compiles_to_its_package_set() {
    let sample = testdata().join("wolfi-sample");
    let pipelines = sample.join("pipelines");
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(sample.join("recipes"))
        .expect("wolfi sample recipes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 200, "only {} recipes", recipes.len());

    let queue = Mutex::new(recipes.clone());
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let Some(r) = queue.lock().unwrap().pop() else {
                    return;
                };
                let out = util::cmd()
                    .arg("compile")
                    .arg(&r)
                    .args(["--arch", "x86_64", "--pipeline-dir"])
                    .arg(&pipelines)
                    .output()
                    .expect("run pkgbuild");
                let fail = |msg: String| failures.lock().unwrap().push(msg);
                if !out.status.success() {
                    fail(String::from_utf8_lossy(&out.stderr).into_owned());
                    continue;
                }
                let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let got: Vec<String> = plan["packages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["name"].as_str().unwrap().to_string())
                    .collect();
                if let Some(n) = got.iter().find(|n| n.contains("${{")) {
                    fail(format!("{}: unresolved name {n}", r.display()));
                }
                let want = expected_names(&r);
                if got != want {
                    fail(format!("{}: got {got:?}\n want {want:?}", r.display()));
                }
                for p in plan["packages"].as_array().unwrap() {
                    for key in [
                        "name",
                        "version",
                        "epoch",
                        "description",
                        "dependencies",
                        "steps",
                    ] {
                        if p.get(key).is_none() {
                            fail(format!("{}: package lacks `{key}`", r.display()));
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} recipes failed:\n{}",
        failures.len(),
        recipes.len(),
        failures.join("\n")
    );
}
