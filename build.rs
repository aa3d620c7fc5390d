//! Embeds every `pipelines/**/*.yaml` file as a built-in pipeline, so adding
//! a pipeline needs no code change: the generated table maps the `uses:`
//! name (path without `.yaml`) to the file's text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, base, out);
        } else if p.extension().is_some_and(|e| e == "yaml") {
            let rel = p.strip_prefix(base).expect("under base").with_extension("");
            let name = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((name, p));
        }
    }
}

/// `git` run in the crate's directory; None outside a checkout or
/// without git.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// The commit and commit date the binary is built from, for `-V` and the
/// SBOM; "unknown" when not built from a git checkout (a source tarball).
fn git_version(root: &Path) {
    let commit = git(root, &["rev-parse", "HEAD"]);
    let date = git(root, &["log", "-1", "--format=%cs", "HEAD"]);
    println!(
        "cargo:rustc-env=PKGBUILD_GIT_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "cargo:rustc-env=PKGBUILD_GIT_DATE={}",
        date.as_deref().unwrap_or("unknown")
    );
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the ref it
    // names (a commit). Worktrees keep HEAD in their own git dir.
    for file in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(root, &["rev-parse", "--git-path", file]) {
            let p = root.join(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("pipelines");
    println!("cargo:rerun-if-changed=pipelines");
    println!("cargo:rerun-if-changed=build.rs");
    git_version(&root);
    let mut found = Vec::new();
    collect(&dir, &dir, &mut found);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut code = String::from("pub(crate) static BUILTINS: &[(&str, &str)] = &[\n");
    for (name, path) in found {
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"))
        .join("builtin_pipelines.rs");
    std::fs::write(out, code).expect("write generated table");
}
