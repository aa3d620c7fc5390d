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

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("pipelines");
    println!("cargo:rerun-if-changed=pipelines");
    println!("cargo:rerun-if-changed=build.rs");
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
