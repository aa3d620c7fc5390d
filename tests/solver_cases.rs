//! The resolver against apk-tools 3.0.6 on the 300 shared oracle cases
//! (`apk-solver-cases/`): same installed set (name + version) for every
//! case apk accepted, a refusal for every case it refused, and an order in
//! which every package comes after the packages it depends on.

mod util;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::resolve::{resolve, Pick, RepoIndex};

/// Cases where agreeing with apk is known to be impossible: none.
const EXCEPTIONS: &[(&str, &str)] = &[];

#[derive(serde::Deserialize)]
struct Case {
    id: String,
    repository: String,
    world: Vec<String>,
    apk3: Outcome,
}

#[derive(serde::Deserialize)]
struct Outcome {
    ok: bool,
    installed: Option<Vec<(String, String)>>,
    message: Option<String>,
}

fn load_cases(dir: &Path) -> Vec<Case> {
    let text = std::fs::read_to_string(dir.join("cases.json"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("cases.json").display()));
    serde_json::from_str(&text).expect("cases.json parses")
}

/// Every package (other than itself) that meets one of `entry`'s
/// dependencies must come earlier, unless it depends back on `entry`
/// (a cycle, which no order can satisfy).
fn order_problems(entries: &[&IndexEntry]) -> Vec<String> {
    let provider = |dep: &str| -> Option<usize> {
        let d: pkgbuild::apk::dep::Dep = dep.parse().ok()?;
        if d.conflict {
            return None;
        }
        entries.iter().position(|e| {
            e.info.name == d.name
                || e.info
                    .provides
                    .iter()
                    .any(|p| p.split('=').next() == Some(d.name.as_str()))
        })
    };
    let reaches = |from: usize, to: usize| -> bool {
        let mut seen = vec![false; entries.len()];
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            if i == to {
                return true;
            }
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(entries[i].info.depends.iter().filter_map(|d| provider(d)));
        }
        false
    };
    let mut problems = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        for d in &e.info.depends {
            if let Some(j) = provider(d) {
                if j > i && !reaches(j, i) {
                    problems.push(format!(
                        "{} comes before its dependency {} ({d})",
                        e.info.name, entries[j].info.name
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn resolver_agrees_with_apk_tools_3_on_every_oracle_case() {
    let dir = util::testdata::testdata().join("apk-solver-cases");
    let cases = load_cases(&dir);
    assert_eq!(cases.len(), 300, "expected 300 oracle cases");
    let exceptions: HashMap<&str, &str> = EXCEPTIONS.iter().copied().collect();
    let (mut agree, mut exact_order, mut ok_cases) = (0, 0, 0);
    let mut disagreements = Vec::new();
    for case in &cases {
        let path = dir.join(&case.repository).join("x86_64/APKINDEX.tar.gz");
        let index = Index::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let repos = vec![RepoIndex {
            tag: None,
            entries: index.entries,
        }];
        let got = resolve(&repos, &case.world, "x86_64");
        let entry = |p: &Pick| &repos[p.repo].entries[p.entry];
        let problem = match (&got, case.apk3.ok) {
            (Ok(picks), true) => {
                ok_cases += 1;
                let expected = case.apk3.installed.clone().unwrap_or_default();
                let ours: Vec<(String, String)> = picks
                    .iter()
                    .map(|p| (entry(p).info.name.clone(), entry(p).info.version.clone()))
                    .collect();
                let (want, have): (BTreeSet<_>, BTreeSet<_>) = (
                    expected.iter().cloned().collect(),
                    ours.iter().cloned().collect(),
                );
                let order = order_problems(&picks.iter().map(entry).collect::<Vec<_>>());
                if want != have {
                    Some(format!(
                        "installed sets differ\n    apk only: {:?}\n    ours only: {:?}",
                        want.difference(&have).collect::<Vec<_>>(),
                        have.difference(&want).collect::<Vec<_>>()
                    ))
                } else if !order.is_empty() {
                    Some(format!("order puts a dependency late: {order:?}"))
                } else {
                    if ours == expected {
                        exact_order += 1;
                    }
                    None
                }
            }
            (Ok(picks), false) => Some(format!(
                "apk refused but we installed {:?}\n    apk said: {}",
                picks
                    .iter()
                    .map(|p| format!("{}-{}", entry(p).info.name, entry(p).info.version))
                    .collect::<Vec<_>>(),
                case.apk3
                    .message
                    .as_deref()
                    .unwrap_or("")
                    .replace('\n', "\n    ")
            )),
            (Err(e), true) => Some(format!(
                "apk installed {:?} but we refused:\n    {}",
                case.apk3.installed,
                e.to_string().replace('\n', "\n    ")
            )),
            (Err(_), false) => None,
        };
        match (problem, exceptions.get(case.id.as_str())) {
            (None, _) => agree += 1,
            (Some(p), None) => {
                disagreements.push(format!("{} world={:?}: {p}", case.id, case.world))
            }
            (Some(_), Some(_)) => {}
        }
    }
    println!(
        "agreement: {agree}/{} cases; exact apk install order in {exact_order}/{ok_cases} accepted cases; {} listed exceptions",
        cases.len(),
        exceptions.len()
    );
    for d in &disagreements {
        println!("DISAGREE {d}");
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements (listed above)",
        disagreements.len()
    );
}
