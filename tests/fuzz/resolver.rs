//! The resolver target. An input is a `world:` line (apk dependency
//! strings) followed by `APKINDEX` text; seeds are the 300 oracle cases
//! and small generated repositories. Whatever the resolver picks must meet
//! every world entry, every dependency and conflict of what it picked,
//! and hold one package per name.

use std::collections::HashMap;
use std::path::Path;

use pkgbuild::apk::dep::Dep;
use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::apk::read;
use pkgbuild::resolve::{resolve, RepoIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::archive;
use super::harness::{Verdict, Violation};

pub const DICT: &[&[u8]] = &[
    b"world: ",
    b"\nD:",
    b"\np:",
    b"\ni:",
    b"\nk:",
    b"\nA:noarch",
    b"\nA:aarch64",
    b"!",
    b">=",
    b"<",
    b"=",
    b"~",
    b"so:libx.so.1",
    b"=1.0",
    b"p0",
    b"p1",
    b"v0",
    b"\n\n",
    b"C:Q1",
];

#[derive(serde::Deserialize)]
struct Case {
    repository: String,
    world: Vec<String>,
}

/// Each oracle case's repository directory name and world.
pub fn oracle_worlds(testdata: &Path) -> HashMap<String, Vec<String>> {
    let path = testdata.join("apk-solver-cases/cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<Case> = serde_json::from_str(&text).expect("cases.json parses");
    cases.into_iter().map(|c| (c.repository, c.world)).collect()
}

pub fn seeds(cases: &HashMap<String, Vec<String>>) -> Vec<Vec<u8>> {
    let root = super::testdata().join("apk-solver-cases");
    let mut names: Vec<&String> = cases.keys().collect();
    names.sort();
    let mut seeds = Vec::new();
    for name in names {
        let file = root.join(name).join("x86_64/APKINDEX.tar.gz");
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let members = archive::split(&bytes).expect("oracle index is gzip");
        let tar = read::read_index_tar(members.last().expect("a member")).expect("index tar");
        let mut seed = format!("world: {}\n", cases[name].join(" ")).into_bytes();
        seed.extend(tar.apkindex);
        seeds.push(seed);
    }
    let mut rng = StdRng::seed_from_u64(11);
    seeds.extend((0..100).map(|_| generate(&mut rng).into_bytes()));
    seeds.extend(super::committed("resolver"));
    seeds
}

const NAMES: &[&str] = &["a", "b", "c", "d", "e", "so:libx.so.1", "cmd:x"];
const VERSIONS: &[&str] = &["1.0-r0", "1.0-r1", "1.1-r0", "2.0-r0", "2.0_rc1-r0", "3-r0"];
const OPS: &[&str] = &["", "=", "<", ">", "<=", ">=", "~"];

fn dep_text(rng: &mut StdRng) -> String {
    let name = NAMES[rng.gen_range(0..5)];
    let op = OPS[rng.gen_range(0..OPS.len())];
    let bang = if rng.gen_bool(0.15) { "!" } else { "" };
    if op.is_empty() {
        format!("{bang}{name}")
    } else {
        let v = VERSIONS[rng.gen_range(0..VERSIONS.len())];
        format!("{bang}{name}{op}{}", v.split('-').next().unwrap_or(v))
    }
}

/// A small random repository and world in the input format.
fn generate(rng: &mut StdRng) -> String {
    let world: Vec<String> = (0..rng.gen_range(1..=3)).map(|_| dep_text(rng)).collect();
    let mut out = format!("world: {}\n", world.join(" "));
    for n in 0..rng.gen_range(1..=8) {
        let name = NAMES[rng.gen_range(0..5)];
        let version = VERSIONS[rng.gen_range(0..VERSIONS.len())];
        out.push_str(&format!("C:Q1{:027}=\nP:{name}\nV:{version}\n", n));
        let arch = ["x86_64", "x86_64", "x86_64", "noarch", "aarch64"][rng.gen_range(0..5)];
        out.push_str(&format!("A:{arch}\nS:1\nI:1\n"));
        let deps: Vec<String> = (0..rng.gen_range(0..3)).map(|_| dep_text(rng)).collect();
        if !deps.is_empty() {
            out.push_str(&format!("D:{}\n", deps.join(" ")));
        }
        if rng.gen_bool(0.3) {
            let p = NAMES[rng.gen_range(0..NAMES.len())];
            let v = if rng.gen_bool(0.5) { "=1.0" } else { "" };
            out.push_str(&format!("p:{p}{v}\n"));
        }
        if rng.gen_bool(0.15) {
            out.push_str(&format!("i:{}\n", NAMES[rng.gen_range(0..5)]));
        }
        if rng.gen_bool(0.15) {
            out.push_str(&format!("k:{}\n", rng.gen_range(0..20)));
        }
        out.push('\n');
    }
    out
}

/// `(package, version it gives the name)` for every pick providing `name`;
/// an unversioned provide gives the empty version, as in apk.
fn providers<'a>(picked: &[&'a IndexEntry], name: &str) -> Vec<(&'a IndexEntry, String)> {
    let mut out = Vec::new();
    for e in picked {
        if e.info.name == name {
            out.push((*e, e.info.version.clone()));
        }
        for p in &e.info.provides {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            if n == name {
                out.push((*e, v.to_string()));
            }
        }
    }
    out
}

fn fits(d: &Dep, version: &str) -> bool {
    d.constraint
        .as_ref()
        .is_none_or(|(op, want)| op.matches(version, want))
}

/// `None` when `req` (asked by `by`, or the world) is met by `picked`.
fn unmet(picked: &[&IndexEntry], by: Option<&IndexEntry>, req: &str) -> Option<String> {
    let d: Dep = req.parse().ok()?;
    let who = by.map_or("world".to_string(), |e| {
        format!("{}-{}", e.info.name, e.info.version)
    });
    let provs = providers(picked, &d.name);
    if !d.conflict {
        if provs.iter().any(|(_, v)| fits(&d, v)) {
            return None;
        }
        let have: Vec<String> = provs
            .iter()
            .map(|(p, v)| format!("{}-{} (as {v:?})", p.info.name, p.info.version))
            .collect();
        return Some(format!(
            "{who}: `{req}` is not met; providers picked: {have:?}"
        ));
    }
    // A conflict binds the package of that name, and a sole provider; with
    // several providers apk only weighs the one it chose for the name.
    let sole = provs.len() == 1;
    for (p, v) in &provs {
        let itself = by.is_some_and(|b| std::ptr::eq(b, *p));
        if !itself && (p.info.name == d.name || sole) && fits(&d, v) {
            return Some(format!(
                "{who}: conflict `{req}` but {}-{} was picked",
                p.info.name, p.info.version
            ));
        }
    }
    None
}

pub fn exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Ok(text) = std::str::from_utf8(input) else {
        return Ok(Verdict::Rejected);
    };
    let (first, index) = text.split_once('\n').unwrap_or((text, ""));
    let Some(world) = first.strip_prefix("world: ") else {
        return Ok(Verdict::Rejected);
    };
    let world: Vec<String> = world.split_whitespace().map(String::from).collect();
    let Ok(entries) = Index::parse_text(index) else {
        return Ok(Verdict::Rejected);
    };
    let repos = [RepoIndex { tag: None, entries }];
    let picks = match resolve(&repos, &world, "x86_64") {
        Ok(p) => p,
        Err(e) => {
            if e.to_string().is_empty() {
                return Err("empty resolver error".into());
            }
            return Ok(Verdict::Rejected);
        }
    };
    let picked: Vec<&IndexEntry> = picks
        .iter()
        .map(|p| {
            repos
                .get(p.repo)
                .and_then(|r| r.entries.get(p.entry))
                .ok_or_else(|| format!("pick {p:?} is outside the indexes"))
        })
        .collect::<Result<_, _>>()?;
    let mut seen = HashMap::new();
    for e in &picked {
        if let Some(v) = seen.insert(e.info.name.as_str(), e.info.version.as_str()) {
            return Err(format!(
                "{} picked twice ({v} and {})",
                e.info.name, e.info.version
            ));
        }
        if !["x86_64", "noarch", ""].contains(&e.info.arch.as_str()) {
            return Err(format!(
                "{}-{} has arch {:?}",
                e.info.name, e.info.version, e.info.arch
            ));
        }
    }
    // A later world entry for a name replaces an earlier one, as in apk.
    let mut last: Vec<(String, &String)> = Vec::new();
    for w in &world {
        let name = w.parse::<Dep>().map(|d| d.name).unwrap_or_default();
        last.retain(|(n, _)| *n != name);
        last.push((name, w));
    }
    for (_, w) in last {
        if let Some(problem) = unmet(&picked, None, w) {
            return Err(problem);
        }
    }
    for e in &picked {
        for d in &e.info.depends {
            if let Some(problem) = unmet(&picked, Some(e), d) {
                return Err(problem);
            }
        }
    }
    Ok(Verdict::Accepted)
}
