//! The CLI conveniences every Rust tool is expected to have: shell
//! completions, man pages, and a version that names the commit the binary
//! was built from (also in every SBOM it writes).

mod util;

use std::fs;
use std::process::Command;

use util::*;

/// The subcommands a user sees in `--help` (hidden ones excluded).
/// Every subcommand `--help` lists, from the CLI's own definition.
fn visible() -> Vec<String> {
    use clap::CommandFactory;
    pkgbuild::cli::Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The commit of the checkout the test binary was built in, or "unknown".
fn head() -> (String, String) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".to_string())
    };
    (
        git(&["rev-parse", "HEAD"]),
        git(&["log", "-1", "--format=%cs", "HEAD"]),
    )
}

#[test]
fn completions_cover_every_subcommand_and_are_valid_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = pkgbuild(&["completion", shell]);
        assert_ok(&out);
        let text = stdout(&out);
        for sub in visible() {
            assert!(text.contains(&sub), "{shell} completion lacks {sub}");
        }
        assert!(text.contains("signing-key"), "{shell}: no build flags");
    }
    // bash parses what it would source.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pkgbuild.bash");
    fs::write(&file, stdout(&pkgbuild(&["completion", "bash"]))).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert_ok(&check);
    // Sourced, it registers a completion for pkgbuild.
    let reg = Command::new("bash")
        .arg("-c")
        .arg(format!(". {} && complete -p pkgbuild", file.display()))
        .output()
        .unwrap();
    assert_ok(&reg);
    assert!(stdout(&reg).contains("pkgbuild"), "{}", show(&reg));

    let bad = pkgbuild(&["completion", "powershell-9"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
}

#[test]
fn man_writes_a_page_for_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man1");
    let out = pkgbuild(&[std::ffi::OsStr::new("man"), man.as_os_str()]);
    assert_ok(&out);
    let mut pages: Vec<String> = fs::read_dir(&man)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = visible()
        .iter()
        .map(|s| format!("pkgbuild-{s}.1"))
        .chain(["pkgbuild.1".to_string()])
        .collect();
    want.sort();
    assert_eq!(pages, want);
    // Each written page is listed on stdout.
    assert_eq!(stdout(&out).lines().count(), want.len(), "{}", show(&out));

    let build = fs::read_to_string(man.join("pkgbuild-build.1")).unwrap();
    assert!(
        build.starts_with(".ie") || build.contains(".TH pkgbuild-build 1"),
        "{build}"
    );
    assert!(build.contains("signing\\-key"), "{build}");
    let top = fs::read_to_string(man.join("pkgbuild.1")).unwrap();
    assert!(
        top.contains("pkgbuild\\-build(1)") || top.contains("build"),
        "{top}"
    );
    // man(1) renders it, when installed.
    if let Ok(o) = Command::new("man")
        .arg("-l")
        .arg(man.join("pkgbuild-build.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "200")
        .output()
    {
        if o.status.success() {
            assert!(stdout(&o).contains("--signing-key"), "{}", show(&o));
        }
    }
}

#[test]
fn version_names_the_commit_and_date_it_was_built_from() {
    let (commit, date) = head();
    let want = format!("pkgbuild 0.1.0 (commit {commit}, {date})");
    assert_ne!(commit, "", "git printed nothing");
    for args in [&["version"][..], &["-V"], &["--version"]] {
        let out = pkgbuild(args);
        assert_ok(&out);
        assert_eq!(stdout(&out).trim(), want, "{args:?}");
    }
}

#[test]
fn the_sbom_creator_names_the_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "creator",
        "package:\n  name: creator\n  version: 1.0.0\n  epoch: 0\n  description: d\n  copyright:\n    - license: MIT\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/usr/share && echo hi > ${{targets.destdir}}/usr/share/hi\n",
    );
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe, &out, &["--runner", "host"]));
    let pkg = apk(&out, "creator-1.0.0-r0.apk");
    let entries = entries(&pkg);
    let (name, sbom) = entries
        .iter()
        .find(|(k, _)| k.ends_with(".spdx.json"))
        .expect("an SBOM in the package");
    let doc: serde_json::Value = serde_json::from_slice(&sbom.content).unwrap();
    let (commit, date) = head();
    assert_eq!(
        doc["creationInfo"]["creators"],
        serde_json::json!([format!("Tool: pkgbuild-0.1.0 (commit {commit}, {date})")]),
        "{name}"
    );
    validate_spdx(&[("creator".to_string(), sbom.content.clone())]);
}
