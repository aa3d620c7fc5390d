//! The input hash of a recipe: `sha256:` over everything that decides its
//! output (the recipe text, its compiled plan, which inlines the pipelines
//! it uses and its sources' checksums, its source directory as the
//! workspace copy sees it, its lock file and the target architecture).
//! `build` records it beside what it publishes and `pkgbuild plan` hands it
//! to CI jobs, so both skip a recipe whose inputs did not change.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::workspace::IgnoreRules;
use crate::plan::{self, CompileOptions, Plan};

/// Bumped when what the input hash covers changes.
const HASH_DOMAIN: &str = "pkgbuild-plan-input-v1";
/// Bounds on hashing a recipe's source directory.
const MAX_SOURCE_FILES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum InputHashError {
    #[error("{0}")]
    Compile(String),
    #[error("{}: {problem}", path.display())]
    Io { path: PathBuf, problem: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> InputHashError {
    InputHashError::Io {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

/// The input hash `pkgbuild plan` gives `recipe` for `opts.arch`, as
/// `build` computes it to record beside its packages: compiled with the
/// plan's own build root (a host build compiles with another, which
/// decides nothing about the output), over `source_dir` when one is given
/// instead of the recipe's own.
///
/// `exclude` are paths the build leaves out of its copy of the source
/// directory (its output and cache directories, key and env files): a
/// repository kept beside the recipe must not change the hash of the
/// recipe whose packages it holds.
pub fn recipe_input_hash(
    recipe: &Path,
    opts: &CompileOptions,
    source_dir: Option<&Path>,
    exclude: &[PathBuf],
) -> Result<String, InputHashError> {
    let opts = CompileOptions {
        build_root: CompileOptions::default().build_root,
        ..opts.clone()
    };
    let p = plan::compile(recipe, &opts).map_err(|e| InputHashError::Compile(e.to_string()))?;
    let main = p.packages.first().map_or("", |p| p.name.as_str());
    let default_dir = super::default_source_dir(recipe, main);
    input_hash_from(recipe, &p, source_dir.unwrap_or(&default_dir), exclude)
}

/// `sha256:<hex>` over the recipe's inputs (see the module comment).
pub fn input_hash(recipe: &Path, plan: &Plan) -> Result<String, InputHashError> {
    let main = plan.packages.first().map_or("", |p| p.name.as_str());
    let src = super::default_source_dir(recipe, main);
    input_hash_from(recipe, plan, &src, &[])
}

/// [`input_hash`] with the files of `src` as the recipe's source
/// directory, less `exclude`.
pub fn input_hash_from(
    recipe: &Path,
    plan: &Plan,
    src: &Path,
    exclude: &[PathBuf],
) -> Result<String, InputHashError> {
    let mut h = Sha256::new();
    let mut field = |name: &str, bytes: &[u8]| {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field("domain", HASH_DOMAIN.as_bytes());
    field("arch", plan.arch.as_bytes());
    field("recipe", &std::fs::read(recipe).map_err(|e| io(recipe, e))?);
    let compiled = serde_json::to_vec(plan).map_err(|e| io(recipe, e))?;
    field("plan", &compiled);
    let lock = super::lockfile::default_path(recipe);
    match std::fs::read(&lock) {
        Ok(bytes) => field("lock", &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => field("lock", b"none"),
        Err(e) => return Err(io(&lock, e)),
    }
    let mut files = Vec::new();
    if src.is_dir() {
        // What the build copies: `.melangeignore` and `exclude` leave
        // paths out of the hash as they leave them out of the workspace.
        let rules = IgnoreRules::load(src).map_err(|e| io(&src.join(".melangeignore"), e))?;
        let exclude: Vec<PathBuf> = exclude
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let walker = Walker {
            root: src,
            rules: &rules,
            exclude: &exclude,
        };
        walker.walk(src, &mut files)?;
    }
    files.sort();
    for (rel, digest) in files {
        field("source", rel.as_bytes());
        field("digest", &digest);
    }
    let digest = h.finalize();
    Ok(format!("sha256:{}", hex::encode(digest)))
}

/// Relative path and SHA-256 of every file under `root` (symlinks by
/// their target text, never followed); `.git` and other dot-directories,
/// which no build reads, are left out, and so is what the build does not
/// copy.
struct Walker<'a> {
    root: &'a Path,
    rules: &'a IgnoreRules,
    exclude: &'a [PathBuf],
}

impl Walker<'_> {
    fn walk(&self, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), InputHashError> {
        for e in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let e = e.map_err(|e| io(dir, e))?;
            let path = e.path();
            let name = e.file_name();
            let t = e.file_type().map_err(|e| io(&path, e))?;
            let rel = path
                .strip_prefix(self.root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            if self.rules.is_ignored(&rel, t.is_dir())
                || (!self.exclude.is_empty()
                    && std::fs::canonicalize(&path).is_ok_and(|c| self.exclude.contains(&c)))
            {
                continue;
            }
            if t.is_dir() {
                if !name.to_string_lossy().starts_with('.') {
                    self.walk(&path, out)?;
                }
            } else if t.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                out.push((rel, target.to_string_lossy().as_bytes().to_vec()));
            } else if t.is_file() {
                let mut f = crate::open::regular(&path).map_err(|e| io(&path, e))?;
                let mut h = Sha256::new();
                std::io::copy(&mut f, &mut h).map_err(|e| io(&path, e))?;
                out.push((rel, h.finalize().to_vec()));
            }
            if out.len() > MAX_SOURCE_FILES {
                return Err(io(
                    self.root,
                    format!("more than {MAX_SOURCE_FILES} files in the source directory"),
                ));
            }
        }
        Ok(())
    }
}
