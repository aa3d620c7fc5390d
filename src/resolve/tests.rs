//! One small hand-made repository per rule; the 300 apk-tools oracle
//! cases live in `tests/solver_cases.rs`.

use super::*;
use crate::apk::index::Index;

/// Build index entries from compact records: one package per line,
/// `name version [D:a,b] [p:x,y=1] [i:c,d] [k:10] [A:arch]`.
fn entries(spec: &str) -> Vec<IndexEntry> {
    let mut text = String::new();
    for (n, line) in spec
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let mut words = line.split_whitespace();
        let (name, version) = (words.next().unwrap(), words.next().unwrap());
        // Distinct control checksums: identical ones would be merged as
        // one package present in several repositories.
        let sum = format!("{:040x}", n + 1 + spec.len() * 1000);
        text.push_str(&format!("C:X1{sum}\nP:{name}\nV:{version}\n"));
        let mut arch = "x86_64".to_string();
        for w in words {
            let (key, value) = w.split_at(2);
            match key {
                "A:" => arch = value.into(),
                "k:" => text.push_str(&format!("k:{value}\n")),
                _ => text.push_str(&format!("{key}{}\n", value.replace(',', " "))),
            }
        }
        text.push_str(&format!("A:{arch}\nI:1\n\n"));
    }
    Index::parse_text(&text).expect("test index parses")
}

fn repo(spec: &str) -> Vec<RepoIndex> {
    vec![RepoIndex {
        tag: None,
        entries: entries(spec),
    }]
}

fn world(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// `name-version` of each pick, in order.
fn solve(repos: &[RepoIndex], items: &[&str]) -> Result<Vec<String>, ResolveError> {
    let picks = resolve(repos, &world(items), "x86_64")?;
    Ok(picks
        .iter()
        .map(|p| {
            let i = &repos[p.repo].entries[p.entry].info;
            format!("{}-{}", i.name, i.version)
        })
        .collect())
}

fn ok(repos: &[RepoIndex], items: &[&str]) -> Vec<String> {
    solve(repos, items).unwrap_or_else(|e| panic!("{items:?} refused:\n{e}"))
}

fn refused(repos: &[RepoIndex], items: &[&str]) -> ResolveError {
    match solve(repos, items) {
        Ok(got) => panic!("{items:?} resolved to {got:?}, expected a refusal"),
        Err(e) => e,
    }
}

#[test]
fn newest_fitting_version_wins() {
    let r = repo("foo 1.0-r0\nfoo 2.0-r0\nfoo 1.5-r3");
    assert_eq!(ok(&r, &["foo"]), ["foo-2.0-r0"]);
    assert_eq!(ok(&r, &["foo<2"]), ["foo-1.5-r3"]);
}

#[test]
fn every_version_operator_follows_apk() {
    let r = repo("foo 1.0-r0\nfoo 1.2.3-r1\nfoo 2.0-r0");
    for (want, expect) in [
        ("foo=1.2.3-r1", "foo-1.2.3-r1"),
        ("foo<1.2", "foo-1.0-r0"),
        ("foo<=1.2.3-r1", "foo-1.2.3-r1"),
        ("foo>1.0-r0", "foo-2.0-r0"),
        ("foo>=1.0", "foo-2.0-r0"),
        ("foo~1.2", "foo-1.2.3-r1"),
        ("foo=~1", "foo-1.2.3-r1"),
    ] {
        assert_eq!(ok(&r, &[want]), [expect], "{want}");
    }
    // `=` is exact: 1.2.3-r1 is not 1.2.3.
    let e = refused(&r, &["foo=1.2.3"]);
    assert_eq!(e.candidates.len(), 3);
    assert!(
        e.to_string().contains("version does not match =1.2.3"),
        "{e}"
    );
}

#[test]
fn dependencies_come_first_in_depth_first_order() {
    let r = repo("app 1-r0 D:libb,liba\nliba 1-r0 D:libc\nlibb 1-r0\nlibc 1-r0");
    assert_eq!(
        ok(&r, &["app"]),
        ["libb-1-r0", "libc-1-r0", "liba-1-r0", "app-1-r0"]
    );
}

#[test]
fn a_later_world_entry_replaces_an_earlier_one_for_the_same_name() {
    let r = repo("foo 1.0-r0\nfoo 2.0-r0");
    assert_eq!(ok(&r, &["foo<2", "foo"]), ["foo-2.0-r0"]);
    assert_eq!(ok(&r, &["foo", "foo<2"]), ["foo-1.0-r0"]);
}

#[test]
fn versioned_provides_satisfy_versioned_dependencies() {
    let r = repo(
        "app 1-r0 D:so:libz.so.1>=1.2,cmd:zip\n\
         zlib 1.3-r0 p:so:libz.so.1=1.3.1\n\
         oldz 1.1-r0 p:so:libz.so.1=1.1\n\
         zip 3.0-r0 p:cmd:zip=3.0-r0",
    );
    assert_eq!(ok(&r, &["app"]), ["zlib-1.3-r0", "zip-3.0-r0", "app-1-r0"]);
    assert_eq!(ok(&r, &["so:libz.so.1<1.2"]), ["oldz-1.1-r0"]);
}

#[test]
fn an_unversioned_provide_does_not_meet_a_minimum_version() {
    // apk gives a bare provide the empty version, older than any other.
    let r = repo("app 1-r0 D:virt>=1\nreal 1-r0 p:virt k:10");
    let e = refused(&r, &["app"]);
    assert_eq!(e.requirement, "virt>=1");
    assert!(
        e.to_string()
            .contains("provides virt=, which does not match >=1"),
        "{e}"
    );
}

#[test]
fn an_unversioned_virtual_with_several_unprioritised_providers_is_refused() {
    let r = repo("app 1-r0 D:mta\npostfix 3-r0 p:mta\nexim 4-r0 p:mta");
    let e = refused(&r, &["app"]);
    assert_eq!(e.requirement, "mta");
    let names: Vec<&str> = e.candidates.iter().map(|c| c.package.as_str()).collect();
    assert_eq!(names, ["postfix-3-r0", "exim-4-r0"]);
    let text = e.to_string();
    assert!(
        text.contains("without a version and has no provider_priority"),
        "{text}"
    );
    assert!(text.contains("ask for one of them explicitly"), "{text}");
    // Naming one in the world settles it.
    assert_eq!(ok(&r, &["app", "exim"]), ["exim-4-r0", "app-1-r0"]);
}

#[test]
fn apk_refuses_even_a_single_unprioritised_virtual_provider() {
    let r = repo("postfix 3-r0 p:mta");
    refused(&r, &["mta"]);
}

#[test]
fn provider_priority_picks_among_virtual_providers() {
    let r = repo("app 1-r0 D:mta\npostfix 3-r0 p:mta k:20\nexim 4-r0 p:mta k:10");
    assert_eq!(ok(&r, &["app"]), ["postfix-3-r0", "app-1-r0"]);
}

#[test]
fn a_versioned_provide_beats_priority_on_version() {
    let r = repo("a 1-r0 p:v=1 k:99\nb 1-r0 p:v=2");
    assert_eq!(ok(&r, &["v"]), ["b-1-r0"]);
}

#[test]
fn world_conflicts_exclude_packages() {
    let r = repo("app 1-r0 D:mta\npostfix 3-r0 p:mta=1 \nexim 4-r0 p:mta=2");
    assert_eq!(ok(&r, &["app"]), ["exim-4-r0", "app-1-r0"]);
    assert_eq!(ok(&r, &["app", "!exim"]), ["postfix-3-r0", "app-1-r0"]);
    // apk keeps one world entry per name: the later one wins.
    assert_eq!(ok(&r, &["exim", "!exim"]), Vec::<String>::new());
    let e = refused(&r, &["app", "!mta"]);
    assert_eq!(e.requirement, "mta");
    assert!(e.to_string().contains("conflicts with world: !mta"), "{e}");
}

#[test]
fn dependency_conflicts_exclude_packages() {
    let r = repo("app 1-r0 D:!legacy,tool\ntool 2-r0 D:legacy\ntool 1-r0\nlegacy 1-r0");
    assert_eq!(ok(&r, &["app"]), ["tool-1-r0", "app-1-r0"]);
    let e = refused(&r, &["app", "legacy"]);
    assert_eq!(
        e.to_string(),
        "cannot satisfy !legacy\n  \
         required by: app-1-r0 (required by world: app)\n  \
         candidates: legacy-1-r0 (installed anyway: required by world: legacy)"
    );
}

#[test]
fn install_if_adds_a_package_when_all_its_conditions_hold_and_chains() {
    let r = repo(
        "bash 5-r0\n\
         man 1-r0\n\
         bash-doc 5-r0 i:bash,man D:doc-base\n\
         doc-base 1-r0\n\
         doc-index 1-r0 i:doc-base",
    );
    assert_eq!(ok(&r, &["bash"]), ["bash-5-r0"]);
    let got = ok(&r, &["bash", "man"]);
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "bash-5-r0",
            "bash-doc-5-r0",
            "doc-base-1-r0",
            "doc-index-1-r0",
            "man-1-r0"
        ]
    );
    let at = |n: &str| got.iter().position(|g| g.starts_with(n)).unwrap();
    assert!(at("doc-base") < at("bash-doc"), "{got:?}");
    assert!(
        at("man") < at("bash-doc") && at("bash-5") < at("bash-doc"),
        "{got:?}"
    );
}

#[test]
fn install_if_respects_versions_in_its_conditions() {
    let r = repo("lib 1.0-r0\nlib 2.0-r0\nlib-compat 1-r0 i:lib<2");
    assert_eq!(ok(&r, &["lib"]), ["lib-2.0-r0"]);
    assert_eq!(ok(&r, &["lib<2"]), ["lib-1.0-r0", "lib-compat-1-r0"]);
}

#[test]
fn tagged_repositories_are_used_only_through_tagged_world_entries() {
    let repos = vec![
        RepoIndex {
            tag: None,
            entries: entries("app 1-r0\nlib 1-r0"),
        },
        RepoIndex {
            tag: Some("edge".into()),
            entries: entries("app 2-r0 D:lib>=2\nlib 2-r0\nnew 1-r0"),
        },
    ];
    assert_eq!(ok(&repos, &["app"]), ["app-1-r0"]);
    // The tagged entry reaches into @edge, and so do its dependencies.
    assert_eq!(ok(&repos, &["app@edge"]), ["lib-2-r0", "app-2-r0"]);
    let e = refused(&repos, &["new"]);
    assert!(e.to_string().contains("tagged"), "{e}");
    assert_eq!(ok(&repos, &["new@edge"]), ["new-1-r0"]);
    let e = refused(&repos, &["app@testing"]);
    assert!(
        e.to_string()
            .contains("no repository is tagged @testing (tags: @edge)"),
        "{e}"
    );
}

#[test]
fn packages_for_another_arch_are_uninstallable() {
    let r = repo("tool 2-r0 A:aarch64\ntool 1-r0\ndata 1-r0 A:noarch");
    assert_eq!(ok(&r, &["tool", "data"]), ["data-1-r0", "tool-1-r0"]);
    let e = refused(&r, &["tool=2-r0"]);
    assert!(
        e.to_string().contains("built for aarch64, not x86_64"),
        "{e}"
    );
}

#[test]
fn the_earlier_repository_wins_an_exact_tie() {
    let repos = vec![
        RepoIndex {
            tag: None,
            entries: entries("foo 1-r0"),
        },
        RepoIndex {
            tag: None,
            entries: entries("foo 1-r0 D:bar\nbar 1-r0"),
        },
    ];
    assert_eq!(
        resolve(&repos, &world(&["foo"]), "x86_64").unwrap(),
        [Pick { repo: 0, entry: 0 }]
    );
    let swapped = vec![repos[1].clone(), repos[0].clone()];
    assert_eq!(ok(&swapped, &["foo"]), ["bar-1-r0", "foo-1-r0"]);
}

#[test]
fn an_unsatisfiable_request_is_one_error_with_the_chain() {
    let r = repo("hello-dev 1.0-r0 D:libgreet=1.3\nlibgreet 1.2.0-r0");
    let e = refused(&r, &["hello-dev"]);
    assert_eq!(
        e.to_string(),
        "cannot satisfy libgreet=1.3\n  \
         required by: hello-dev-1.0-r0 (required by world: hello-dev)\n  \
         candidates: libgreet-1.2.0-r0 (version does not match =1.3)"
    );
}

#[test]
fn the_chain_runs_through_every_package_back_to_the_world() {
    let r = repo("app 1-r0 D:mid\nmid 1-r0 D:leaf>5\nleaf 1-r0\nleaf 2-r0 A:armv7");
    let e = refused(&r, &["app"]);
    assert_eq!(e.requirement, "leaf>5");
    assert_eq!(e.required_by, ["mid-1-r0", "app-1-r0", "world: app"]);
    let text = e.to_string();
    assert!(
        text.contains("required by: mid-1-r0 (required by app-1-r0, required by world: app)"),
        "{text}"
    );
    assert!(
        text.contains("leaf-1-r0 (version does not match >5)"),
        "{text}"
    );
    assert!(
        text.contains("leaf-2-r0 (built for armv7, not x86_64)"),
        "{text}"
    );
}

#[test]
fn a_missing_name_is_reported_as_such() {
    let r = repo("app 1-r0 D:ghost");
    let e = refused(&r, &["app"]);
    assert_eq!(e.requirement, "ghost");
    assert!(e.candidates.is_empty());
    let e = refused(&r, &["nothing-here"]);
    assert!(
        e.to_string()
            .contains("no package has or provides this name"),
        "{e}"
    );
}

#[test]
fn invalid_world_entries_are_refused_with_the_reason() {
    let r = repo("app 1-r0");
    let e = refused(&r, &["app>>1"]);
    assert!(e.to_string().contains("not a valid world entry"), "{e}");
    let e = refused(&r, &["app@"]);
    assert!(e.to_string().contains("repository tag"), "{e}");
}

#[test]
fn broken_index_dependencies_make_only_that_package_uninstallable() {
    let r = repo("app 2-r0 D:lib>~1\napp 1-r0");
    assert_eq!(ok(&r, &["app"]), ["app-1-r0"]);
}

#[test]
fn a_large_index_resolves_in_milliseconds() {
    // 20,000 packages in chains of ten, each with a soname provide;
    // the world asks for 30 chain heads.
    let mut spec = String::new();
    for i in 0..20_000 {
        let dep = if i % 10 == 9 {
            String::new()
        } else {
            format!(" D:so:lib{}.so.1", i + 1)
        };
        spec.push_str(&format!("pkg{i} 1.{}-r0 p:so:lib{i}.so.1=1{dep}\n", i % 7));
    }
    let r = repo(&spec);
    let items: Vec<String> = (0..30).map(|i| format!("pkg{}", i * 100)).collect();
    let start = std::time::Instant::now();
    let picks = resolve(&r, &items, "x86_64").expect("resolves");
    let took = start.elapsed();
    assert_eq!(picks.len(), 300);
    // Generous for unoptimised test builds on a shared machine; release
    // builds take a few milliseconds.
    assert!(took.as_millis() < 1500, "took {took:?}");
}
