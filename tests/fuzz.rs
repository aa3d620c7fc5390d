//! Fuzz targets that stay: every parser of untrusted input, run from a
//! committed seed corpus for a few seconds each (see `fuzz/harness.rs` for
//! the knobs: `PKGBUILD_FUZZ_SECS`, `PKGBUILD_FUZZ_SEED`,
//! `PKGBUILD_FUZZ_ITERS`). Each target checks invariants, not only "no
//! panic". Longer local run:
//!
//! ```text
//! PKGBUILD_FUZZ_SECS=600 cargo test --test fuzz -- --nocapture
//! ```
//!
//! Seeds: the shared Wolfi sample recipes, the shared accepted and rejected
//! packages and indexes, the solver cases' indexes, and the hand-made files
//! under `tests/fuzz/corpus/<target>/` (which also keep every input that
//! once failed, so each failure stays a regression test).

mod util;

#[path = "fuzz/archive.rs"]
mod archive;
#[path = "fuzz/harness.rs"]
mod harness;
#[path = "fuzz/inputs.rs"]
mod inputs;
#[path = "fuzz/resolver.rs"]
mod resolver;

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use harness::{committed, files_in, Target, Verdict, Violation};
use pkgbuild::apk::dep::Dep;
use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::apk::{read, verify, version};
use pkgbuild::arch::Arch;
use pkgbuild::plan::{compile, emit, CompileOptions};
use pkgbuild::recipe::{cond, subst};
use util::testdata::{accepted_repo, keys_dir, rejected_dir, testdata};

fn text(input: &[u8]) -> Option<&str> {
    std::str::from_utf8(input).ok()
}

/// Errors quote what they refuse, cut to a readable length: a long
/// value must not come back whole.
fn check_length(msg: &str) -> Result<(), Violation> {
    const MOST: usize = 4096;
    if msg.len() > MOST {
        let head: String = msg.chars().take(300).collect();
        return Err(format!("error message of {} bytes: {head}...", msg.len()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Recipes: parser, compiler, and the `.melange.yaml` round trip

fn wolfi() -> PathBuf {
    testdata().join("wolfi-sample")
}

fn recipe_seeds() -> Vec<Vec<u8>> {
    let mut seeds = files_in(&wolfi().join("recipes"), Some("yaml"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recipes");
    seeds.extend(files_in(&fixtures, Some("yaml")));
    seeds.extend(committed("recipe"));
    seeds
}

const YAML_DICT: &[&[u8]] = &[
    b"${{",
    b"}}",
    b"${{package.version}}",
    b"${{vars.x}}",
    b"${{targets.destdir}}",
    b": ",
    b"- ",
    b"\n  ",
    b"\n    - ",
    b"uses: ",
    b"runs: ",
    b"if: ",
    b"with:\n",
    b"pipeline:\n",
    b"subpackages:\n",
    b"range: ",
    b"var-transforms:\n",
    b"data:\n",
    b"options:\n",
    b"&a ",
    b"*a",
    b"<<: ",
    b"!!str ",
    b"|\n",
    b">-\n",
    b"'",
    b"\"",
    b"\\u0000",
    b"{}",
    b"[]",
    b"~",
    b"null",
    b"epoch: ",
    b"version: ",
    b"name: ",
    b"dependencies:\n",
    b"runtime:\n",
    b"provides:\n",
    b"git-checkout",
    b"fetch",
    b"autoconf/make",
    b"split/dev",
    b"..",
    b"/",
    b"\t",
    b"#",
];

fn compile_opts() -> CompileOptions {
    CompileOptions {
        arch: Arch::X86_64,
        pipeline_dirs: vec![wolfi().join("pipelines")],
        ..CompileOptions::default()
    }
}

/// Compile the recipe; when it compiles, its emitted `.melange.yaml` must
/// compile to the same plan (or be refused by `emit` with its own error).
fn recipe_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    let opts = compile_opts();
    let plan = match compile(&path, &opts) {
        Ok(p) => p,
        Err(e) => {
            let msg = e.to_string();
            if !msg.contains("recipe.yaml") && !msg.contains("pipelines/") {
                return Err(format!("error names no file: {msg}"));
            }
            check_length(&msg)?;
            return Ok(Verdict::Rejected);
        }
    };
    let text = match emit::recipe_yaml(&plan) {
        Ok(t) => t,
        Err(_) => return Ok(Verdict::Rejected),
    };
    let again_path = dir.join("embedded.yaml");
    std::fs::write(&again_path, &text).map_err(|e| e.to_string())?;
    let again = compile(&again_path, &opts)
        .map_err(|e| format!("emitted recipe does not compile: {e}\n--- emitted\n{text}"))?;
    let (a, b) = (
        serde_json::to_value(&plan).map_err(|e| e.to_string())?,
        serde_json::to_value(&again).map_err(|e| e.to_string())?,
    );
    if let Some(d) = util::first_difference(&a, &b, "plan") {
        return Err(format!(
            "emitted recipe compiles to a different plan at {d}\n--- emitted\n{text}"
        ));
    }
    Ok(Verdict::Accepted)
}

#[test]
fn fuzz_recipe_compile_and_emit() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "recipe",
            seeds: recipe_seeds(),
            dict: YAML_DICT,
            max_len: 256 << 10,
            mutator: None,
        },
        |input| recipe_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// `if:` conditions and `${{...}}` substitution

fn lookup(name: &str) -> Option<String> {
    match name {
        "package.name" => Some("hello".into()),
        "build.arch" => Some("x86_64".into()),
        "vars.empty" => Some(String::new()),
        "vars.quote" => Some("it's \"q\"".into()),
        "vars.ref" => Some("${{vars.x}}".into()),
        n if n.starts_with("vars.") => Some(n[5..].to_string()),
        _ => None,
    }
}

const COND_DICT: &[&[u8]] = &[
    b"==",
    b"!=",
    b"&&",
    b"||",
    b"(",
    b")",
    b"${{",
    b"}}",
    b"${{package.name}}",
    b"${{build.arch}}",
    b"${{vars.empty}}",
    b"${{nope}}",
    b"'x86_64'",
    b"\"hello\"",
    b"'\\''",
    b"\\",
    b" ",
    b"\t",
    b"\n",
];

fn cond_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Some(expr) = text(input) else {
        return Ok(Verdict::Rejected);
    };
    let chars = expr.chars().count();
    match cond::evaluate(expr, &lookup) {
        Err(e) => {
            if e.column == 0 || e.column > chars + 1 {
                return Err(format!("column {} outside 1..={}", e.column, chars + 1));
            }
            Ok(Verdict::Rejected)
        }
        Ok(v) => {
            // Joining with a condition of known value must not change it,
            // whichever way the precedence of the parser groups things.
            for (joined, want) in [
                (format!("({expr}) && 'a' == 'a'"), v),
                (format!("({expr}) || 'a' != 'a'"), v),
                (format!("'a' == 'b' || ({expr})"), v),
                (format!("({expr}) && 'a' == 'b'"), false),
                (format!("({expr}) || 'a' == 'a'"), true),
            ] {
                match cond::evaluate(&joined, &lookup) {
                    Ok(got) if got == want => {}
                    other => return Err(format!("`{joined}` gave {other:?}, want Ok({want})")),
                }
            }
            Ok(Verdict::Accepted)
        }
    }
}

#[test]
fn fuzz_condition_parser() {
    harness::run(
        Target {
            name: "cond",
            seeds: committed("cond"),
            dict: COND_DICT,
            max_len: 4096,
            mutator: None,
        },
        cond_exec,
    );
}

fn subst_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Some(t) = text(input) else {
        return Ok(Verdict::Rejected);
    };
    for (name, at) in subst::references(t) {
        if !t.is_char_boundary(at) || !t[at..].starts_with("${{") || !t[at..].contains(&name) {
            return Err(format!("reference `{name}` at {at} is not where it says"));
        }
    }
    // Values without `$`, `{`, `}` cannot form a new `${{` with the text
    // around them, so a successful substitution leaves none behind.
    let plain = |n: &str| Some(format!("[{}]", n.replace(['$', '{', '}'], "")));
    match subst::substitute(t, &plain) {
        Ok(out) => {
            if out.contains("${{") {
                return Err(format!("`${{{{` left after substitution: {out:?}"));
            }
            if !t.contains("${{") && out != t {
                return Err("text without references changed".into());
            }
        }
        Err(e) => {
            if e.offset >= t.len() || !t.is_char_boundary(e.offset) {
                return Err(format!("error offset {} outside the text", e.offset));
            }
            if e.to_string().is_empty() {
                return Err("empty error message".into());
            }
            return Ok(Verdict::Rejected);
        }
    }
    // With a lookup that knows only some names, it either succeeds or
    // names an undefined variable; never a panic.
    let _ = subst::substitute(t, &lookup);
    Ok(Verdict::Accepted)
}

#[test]
fn fuzz_substitution_parser() {
    harness::run(
        Target {
            name: "subst",
            seeds: committed("subst"),
            dict: COND_DICT,
            max_len: 4096,
            mutator: None,
        },
        subst_exec,
    );
}

// ---------------------------------------------------------------------------
// Versions and dependency strings

const VERSION_DICT: &[&[u8]] = &[
    b".",
    b"-r",
    b"-r0",
    b"_alpha",
    b"_beta",
    b"_pre",
    b"_rc",
    b"_p",
    b"_cvs",
    b"_svn",
    b"_git",
    b"_hg",
    b"~",
    b"~abc123",
    b"a",
    b"z",
    b"0",
    b"00",
    b"99999999999999999999",
    b"-",
    b"_",
];

/// Split a seed into up to three versions (one per line).
fn three(input: &[u8]) -> Option<[String; 3]> {
    let t = text(input)?;
    let mut it = t.split('\n').map(str::to_string);
    Some([
        it.next()?,
        it.next().unwrap_or_default(),
        it.next().unwrap_or_default(),
    ])
}

fn version_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Some([a, b, c]) = three(input) else {
        return Ok(Verdict::Rejected);
    };
    for v in [&a, &b, &c] {
        if version::compare(v, v) != Ordering::Equal {
            return Err(format!("compare({v:?}, itself) is not Equal"));
        }
        if version::validate(v).is_ok() && !version::is_apk_valid(v) {
            return Err(format!("{v:?} validates but apk could not parse it"));
        }
        if version::validate_package_version(v).is_ok() && version::validate(v).is_err() {
            return Err(format!("{v:?} is a package version but not a version"));
        }
        if version::is_apk_valid(v) && !version::fuzzy_match(v, v) {
            return Err(format!("{v:?} does not fuzzy-match itself"));
        }
    }
    let cmp = version::compare;
    for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
        if cmp(x, y) != cmp(y, x).reverse() {
            return Err(format!("not antisymmetric: {x:?} vs {y:?}"));
        }
    }
    let valid = [&a, &b, &c].iter().all(|v| version::is_apk_valid(v));
    if valid {
        // Transitivity over every ordering of the triple.
        let vs = [&a, &b, &c];
        for (i, j, k) in [
            (0, 1, 2),
            (0, 2, 1),
            (1, 0, 2),
            (1, 2, 0),
            (2, 0, 1),
            (2, 1, 0),
        ] {
            let (x, y, z) = (vs[i], vs[j], vs[k]);
            let (xy, yz, xz) = (cmp(x, y), cmp(y, z), cmp(x, z));
            if xy != Ordering::Greater && yz != Ordering::Greater && xz == Ordering::Greater {
                return Err(format!(
                    "not transitive: {x:?} <= {y:?} <= {z:?} but {x:?} > {z:?}"
                ));
            }
            if xy == Ordering::Equal && yz == Ordering::Equal && xz != Ordering::Equal {
                return Err(format!("equality not transitive: {x:?} {y:?} {z:?}"));
            }
        }
        return Ok(Verdict::Accepted);
    }
    Ok(Verdict::Rejected)
}

#[test]
fn fuzz_version_order() {
    harness::run(
        Target {
            name: "version",
            seeds: committed("version"),
            dict: VERSION_DICT,
            max_len: 256,
            mutator: None,
        },
        version_exec,
    );
}

const DEP_DICT: &[&[u8]] = &[
    b"!", b"=", b"<", b">", b"<=", b">=", b"~", b"=~", b"~=", b"><", b"@edge", b"so:", b"cmd:",
    b"pc:", b"/bin/sh", b"1.0-r0", b"2_rc1", b" ", b"[", b"]",
];

fn dep_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Some(s) = text(input) else {
        return Ok(Verdict::Rejected);
    };
    let mut accepted = false;
    for line in s.split('\n') {
        match line.parse::<Dep>() {
            Err(e) => {
                if e.reason.is_empty() {
                    return Err(format!("{line:?}: empty reason"));
                }
            }
            Ok(d) => {
                accepted = true;
                let shown = d.to_string();
                match shown.parse::<Dep>() {
                    Ok(back) if back == d => {}
                    other => {
                        return Err(format!(
                            "{line:?} shows as {shown:?}, which parses as {other:?}"
                        ))
                    }
                }
                if let Some((_, v)) = &d.constraint {
                    if version::validate(v).is_err() {
                        return Err(format!(
                            "{line:?}: accepted version {v:?} does not validate"
                        ));
                    }
                }
            }
        }
    }
    Ok(if accepted {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    })
}

#[test]
fn fuzz_dependency_strings() {
    harness::run(
        Target {
            name: "dep",
            seeds: committed("dep"),
            dict: DEP_DICT,
            max_len: 512,
            mutator: None,
        },
        dep_exec,
    );
}

// ---------------------------------------------------------------------------
// Packages: signature, control and data members

pub(crate) const ARCHIVE_DICT: &[&[u8]] = &[
    b"datahash = ",
    b"pkgname = ",
    b"pkgver = ",
    b"size = ",
    b"builddate = 99999999999\n",
    b"depend = ",
    b"provides = ",
    b"\n",
    b" = ",
    b"APK-TOOLS.checksum.SHA1=",
    b"../",
    b"/",
    b"\0",
    b"ustar\0",
    b"ustar  \0",
    b"C:Q1",
    b"P:",
    b"V:",
    b"S:",
    b"t:99999999999",
    b"k:",
];

fn package_seeds() -> Vec<Vec<u8>> {
    let mut seeds = files_in(&accepted_repo(), Some("apk"));
    seeds.extend(files_in(&rejected_dir(), Some("apk")));
    seeds.extend(committed("apk"));
    seeds
}

/// Every reader over the same bytes; the file is named in the errors that
/// carry a path, verification implies the data reads, and extraction never
/// writes outside its destination.
fn apk_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("pkg.apk");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    let ctl = read::read_control(&path);
    let data_ok = match &ctl {
        Ok(ctl) => read::read_data(&path, ctl, |_, content| {
            std::io::copy(content, &mut std::io::sink())?;
            Ok::<(), read::ReadError>(())
        })
        .is_ok(),
        Err(_) => false,
    };
    let verified = verify::verify_file(&path, &keys_dir()).is_ok();
    if verified && !data_ok {
        return Err("verify said OK but the data member does not read".into());
    }
    match IndexEntry::from_package(&path) {
        Err(e) => {
            if !e.to_string().contains("pkg.apk") {
                return Err(format!("index entry error names no file: {e}"));
            }
            check_length(&e.to_string())?;
        }
        // What was read from a package can always be indexed.
        Ok(entry) => {
            let index = Index {
                description: None,
                entries: vec![entry],
            };
            index
                .to_bytes(None, None)
                .map_err(|e| format!("indexing a package that reads: {e}"))?;
            round_trip_text(&index.entries)?;
        }
    }
    let root = dir.join("root");
    let dest = root.join("dest");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&dest).map_err(|e| e.to_string())?;
    let limits = read::Limits {
        max_unpacked: 16 << 20,
        max_entries: 10_000,
    };
    let _ = read::extract_limited(&path, &dest, limits, |_| false);
    let beside = harness::names_in(&root)?;
    let above = harness::names_in(dir)?;
    if beside != ["dest"] || above != ["pkg.apk", "root"] {
        return Err(format!(
            "extraction wrote outside its destination: {beside:?} {above:?}"
        ));
    }
    make_writable(&root);
    let _ = std::fs::remove_dir_all(&root);
    Ok(if ctl.is_ok() {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    })
}

/// Extracted directories can be read-only; make them removable.
fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            make_writable(&e.path());
        }
    }
}

#[test]
fn fuzz_apk_reader() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "apk",
            seeds: package_seeds(),
            dict: ARCHIVE_DICT,
            max_len: 1 << 20,
            mutator: Some(archive::mutate),
        },
        |input| apk_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// Indexes: the `APKINDEX.tar.gz` reader and the `APKINDEX` text format

fn solver_case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(testdata().join("apk-solver-cases"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn index_file_seeds() -> Vec<Vec<u8>> {
    let mut seeds = files_in(&accepted_repo(), Some("gz"));
    // Every tenth solver case: enough shapes without slowing each round.
    for d in solver_case_dirs().iter().step_by(10) {
        seeds.extend(files_in(&d.join("x86_64"), Some("gz")));
    }
    seeds.extend(committed("index-file"));
    seeds
}

fn index_file_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("APKINDEX.tar.gz");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    let head_ok = pkgbuild::apk::index::read_head(&path).is_ok();
    let _ = verify::verify_file(&path, &keys_dir());
    match Index::read(&path) {
        Ok(index) => {
            if !head_ok {
                return Err("Index::read succeeded where read_head failed".into());
            }
            round_trip_text(&index.entries)?;
            rewrite_and_read(dir, &index)?;
            Ok(Verdict::Accepted)
        }
        Err(e) => {
            if !e.to_string().contains("APKINDEX.tar.gz") {
                return Err(format!("index error names no file: {e}"));
            }
            check_length(&e.to_string())?;
            Ok(Verdict::Rejected)
        }
    }
}

/// An index that was read can be written again, and reads back the same.
fn rewrite_and_read(dir: &Path, index: &Index) -> Result<(), Violation> {
    let bytes = match index.to_bytes(None, None) {
        Ok(b) => b,
        Err(pkgbuild::apk::index::IndexError::DescriptionTooLong(_)) => return Ok(()),
        Err(e) => return Err(format!("an index that reads cannot be written: {e}")),
    };
    let again = dir.join("again").join("APKINDEX.tar.gz");
    std::fs::create_dir_all(again.parent().unwrap()).map_err(|e| e.to_string())?;
    std::fs::write(&again, bytes).map_err(|e| e.to_string())?;
    let back =
        Index::read(&again).map_err(|e| format!("the rewritten index does not read: {e}"))?;
    let key = |e: &IndexEntry| (e.info.name.clone(), e.info.version.clone(), e.control_sha1);
    let mut want: Vec<IndexEntry> = index.entries.iter().map(as_rendered).collect();
    let mut got = back.entries;
    want.sort_by_key(key);
    got.sort_by_key(key);
    if want != got || back.description != index.description {
        return Err("the rewritten index reads back different".into());
    }
    Ok(())
}

/// What rendering promises to keep of an entry: a value cannot hold a line
/// break (a stray `\r` from a CRLF file becomes a blank), `k:0` is apk's
/// default priority, written as no `k:` line, and some `.PKGINFO` fields
/// have no index letter.
fn as_rendered(e: &IndexEntry) -> IndexEntry {
    let mut e = e.clone();
    let i = &mut e.info;
    for s in [
        &mut i.name,
        &mut i.version,
        &mut i.arch,
        &mut i.description,
        &mut i.url,
        &mut i.license,
        &mut i.origin,
        &mut i.maintainer,
        &mut i.commit,
    ] {
        *s = s.replace('\r', " ");
    }
    if i.provider_priority == Some(0) {
        i.provider_priority = None;
    }
    // `.PKGINFO` fields the index does not carry (apk reads them from the
    // package at install time).
    i.packager.clear();
    i.datahash.clear();
    i.replaces.clear();
    i.triggers.clear();
    i.replaces_priority = None;
    e
}

/// Rendering entries and parsing the text again gives the same entries
/// (up to [`as_rendered`]).
fn round_trip_text(entries: &[IndexEntry]) -> Result<(), Violation> {
    let index = Index {
        description: None,
        entries: entries.to_vec(),
    };
    let text = index.render_text();
    let back = Index::parse_text(&text)
        .map_err(|e| format!("rendered index does not parse: {e}\n{text}"))?;
    let key = |e: &IndexEntry| (e.info.name.clone(), e.info.version.clone(), e.control_sha1);
    let (mut a, mut b) = (entries.iter().map(as_rendered).collect::<Vec<_>>(), back);
    a.sort_by_key(key);
    b.sort_by_key(key);
    if a != b {
        let diff = a
            .iter()
            .zip(&b)
            .find(|(x, y)| x != y)
            .map(|(x, y)| format!("before {x:?}\nafter  {y:?}"))
            .unwrap_or_else(|| format!("{} entries became {}", a.len(), b.len()));
        return Err(format!("index text does not round-trip:\n{diff}"));
    }
    Ok(())
}

#[test]
fn fuzz_index_file_reader() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "index-file",
            seeds: index_file_seeds(),
            dict: ARCHIVE_DICT,
            max_len: 1 << 20,
            mutator: Some(archive::mutate),
        },
        |input| index_file_exec(dir.path(), input),
    );
}

fn index_text_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for file in index_file_seeds() {
        if let Some(members) = archive::split(&file) {
            if let Some(tar) = members.last() {
                if let Ok(t) = read::read_index_tar(tar) {
                    seeds.push(t.apkindex);
                }
            }
        }
    }
    seeds.extend(committed("index-text"));
    seeds
}

fn index_text_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let Some(t) = text(input) else {
        return Ok(Verdict::Rejected);
    };
    match Index::parse_text(t) {
        Ok(entries) => {
            round_trip_text(&entries)?;
            Ok(Verdict::Accepted)
        }
        Err(_) => Ok(Verdict::Rejected),
    }
}

#[test]
fn fuzz_index_text() {
    harness::run(
        Target {
            name: "index-text",
            seeds: index_text_seeds(),
            dict: ARCHIVE_DICT,
            max_len: 64 << 10,
            mutator: None,
        },
        index_text_exec,
    );
}

// ---------------------------------------------------------------------------
// The resolver on small random indexes

#[test]
fn fuzz_resolver_on_random_indexes() {
    let cases: HashMap<String, Vec<String>> = resolver::oracle_worlds(&testdata());
    harness::run(
        Target {
            name: "resolver",
            seeds: resolver::seeds(&cases),
            dict: resolver::DICT,
            max_len: 16 << 10,
            mutator: None,
        },
        resolver::exec,
    );
}

// ---------------------------------------------------------------------------
// Regressions kept as named tests (their inputs are also seeds above)

fn corpus_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(rel)
}

#[test]
fn package_with_out_of_range_builddate_is_refused_naming_the_file() {
    let path = corpus_file("apk/builddate-overflow.apk");
    let err = IndexEntry::from_package(&path).unwrap_err().to_string();
    assert!(err.contains("builddate-overflow.apk"), "{err}");
    assert!(err.contains("99999999999"), "{err}");
}

#[test]
fn package_with_out_of_range_size_is_refused_naming_the_file() {
    let path = corpus_file("apk/size-overflow.apk");
    let err = IndexEntry::from_package(&path).unwrap_err().to_string();
    assert!(err.contains("size-overflow.apk"), "{err}");
    assert!(err.contains("expected a non-negative integer"), "{err}");
}

#[test]
fn index_with_out_of_range_builddate_is_refused_naming_the_file() {
    let path = corpus_file("index-file/builddate-overflow.tar.gz");
    let err = Index::read(&path).unwrap_err().to_string();
    assert!(err.contains("builddate-overflow.tar.gz"), "{err}");
    assert!(err.contains("t:99999999999 is out of range"), "{err}");
}

#[test]
fn capabilities_survive_the_embedded_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(corpus_file("recipe/capabilities.yaml")).unwrap();
    assert!(matches!(
        recipe_exec(dir.path(), &input),
        Ok(Verdict::Accepted)
    ));
}

#[test]
fn a_required_input_left_empty_by_a_var_is_refused_naming_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read(corpus_file("recipe/empty-var-in-required-input.yaml")).unwrap();
    let path = dir.path().join("recipe.yaml");
    std::fs::write(&path, input).unwrap();
    let err = compile(&path, &compile_opts()).unwrap_err().to_string();
    assert!(err.contains("recipe.yaml"), "{err}");
    assert!(
        err.contains("requires input `version`, but `${{vars.mangled-package-version}}` is empty"),
        "{err}"
    );
}
