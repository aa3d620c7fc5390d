//! `pkgbuild plan`: the multi-recipe build graph `build` computes
//! (`engine::multi`), handed to a CI engine that runs it across machines.
//!
//! Each recipe gets its wave (its depth in the graph: a wave's recipes
//! need only recipes of earlier waves, so they may build in parallel) and
//! an input hash over everything that decides its output: the recipe
//! text, its compiled plan (which inlines the pipelines it uses and the
//! checksums of its sources), its source directory as the engine copies
//! it, its lock file and the target architecture. Output is deterministic:
//! same inputs, same bytes. This module computes the graph; `emit` writes
//! it for each engine.

pub mod emit;

use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::multi;
use crate::engine::workspace::IgnoreRules;
use crate::plan::{self, CompileOptions, Plan};

/// Bumped when what the input hash covers changes.
const HASH_DOMAIN: &str = "pkgbuild-plan-input-v1";
/// Bounds on hashing a recipe's source directory.
const MAX_SOURCE_FILES: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("{0}")]
    Compile(String),
    #[error("{}: {problem}", path.display())]
    Io { path: PathBuf, problem: String },
    #[error("dependency cycle between recipes: {0}")]
    Cycle(String),
    #[error("{first} and {second} both produce the package {package}")]
    Duplicate {
        package: String,
        first: String,
        second: String,
    },
}

/// One recipe in the graph.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Node {
    /// The recipe path as given.
    pub recipe: String,
    /// Its main package name.
    pub name: String,
    /// `<version>-r<epoch>`.
    pub version: String,
    /// Every package it produces (main first).
    pub packages: Vec<String>,
    /// Recipes (paths as given) whose packages its build or tests need.
    pub needs: Vec<String>,
    /// Depth in the graph: 0 needs nothing from other recipes.
    pub wave: usize,
    /// `sha256:<hex>` over everything that decides its output.
    pub input_hash: String,
}

/// A recipe left out because it is not built for the arch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    pub recipe: String,
    pub reason: String,
}

/// The whole graph for one architecture.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Graph {
    pub version: u32,
    pub arch: String,
    /// `--publish DEST`, when given.
    pub publish: Option<String>,
    /// In the order given on the command line.
    pub recipes: Vec<Node>,
    /// Recipe paths per wave, each in command-line order.
    pub waves: Vec<Vec<String>>,
    pub skipped: Vec<Skipped>,
}

/// Compile `recipes` and compute the graph.
pub fn graph(
    recipes: &[PathBuf],
    opts: &CompileOptions,
    publish: Option<&str>,
) -> Result<Graph, GraphError> {
    let mut compiled: Vec<(PathBuf, Plan)> = Vec::new();
    let mut skipped = Vec::new();
    for r in recipes {
        let p = plan::compile(r, opts).map_err(|e| GraphError::Compile(e.to_string()))?;
        if p.builds_for_arch {
            compiled.push((r.clone(), p));
        } else {
            skipped.push(Skipped {
                recipe: r.display().to_string(),
                reason: format!("not built for {}", opts.arch.apk()),
            });
        }
    }
    let mut owner: std::collections::BTreeMap<&str, usize> = Default::default();
    for (i, (_, p)) in compiled.iter().enumerate() {
        for pkg in &p.packages {
            if let Some(&j) = owner.get(pkg.name.as_str()) {
                return Err(GraphError::Duplicate {
                    package: pkg.name.clone(),
                    first: compiled[j].0.display().to_string(),
                    second: compiled[i].0.display().to_string(),
                });
            }
            owner.insert(&pkg.name, i);
        }
    }
    let plans: Vec<&Plan> = compiled.iter().map(|(_, p)| p).collect();
    let offers = vec![true; plans.len()];
    let edges = multi::dependencies(&plans, &offers);
    let deps: Vec<Vec<usize>> = edges
        .iter()
        .map(|e| e.iter().map(|e| e.on).collect())
        .collect();
    if let Some(cycle) = multi::find_cycle(&deps) {
        let names: Vec<String> = cycle
            .iter()
            .map(|&i| compiled[i].0.display().to_string())
            .collect();
        return Err(GraphError::Cycle(names.join(" -> ")));
    }
    let waves_of = waves(&deps);
    let mut nodes = Vec::with_capacity(compiled.len());
    for (i, (path, p)) in compiled.iter().enumerate() {
        let main = &p.packages[0];
        let mut needs: Vec<usize> = deps[i].clone();
        needs.sort();
        needs.dedup();
        nodes.push(Node {
            recipe: path.display().to_string(),
            name: main.name.clone(),
            version: main.full_version.clone(),
            packages: p.packages.iter().map(|k| k.name.clone()).collect(),
            needs: needs
                .iter()
                .map(|&j| compiled[j].0.display().to_string())
                .collect(),
            wave: waves_of[i],
            input_hash: input_hash(path, p)?,
        });
    }
    let depth = waves_of.iter().max().map_or(0, |m| m + 1);
    let mut waves = vec![Vec::new(); depth];
    for n in &nodes {
        waves[n.wave].push(n.recipe.clone());
    }
    Ok(Graph {
        version: 1,
        arch: opts.arch.apk().to_string(),
        publish: publish.map(str::to_string),
        recipes: nodes,
        waves,
        skipped,
    })
}

/// The wave of each node: 0 without dependencies, else one more than its
/// deepest dependency. `deps` must be acyclic.
pub fn waves(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut wave = vec![0usize; deps.len()];
    for i in multi::order(deps) {
        wave[i] = deps[i].iter().map(|&d| wave[d] + 1).max().unwrap_or(0);
    }
    wave
}

fn io(path: &Path, e: impl std::fmt::Display) -> GraphError {
    GraphError::Io {
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
) -> Result<String, GraphError> {
    let opts = CompileOptions {
        build_root: CompileOptions::default().build_root,
        ..opts.clone()
    };
    let p = plan::compile(recipe, &opts).map_err(|e| GraphError::Compile(e.to_string()))?;
    let main = p.packages.first().map_or("", |p| p.name.as_str());
    let default_dir = crate::engine::default_source_dir(recipe, main);
    input_hash_from(recipe, &p, source_dir.unwrap_or(&default_dir), exclude)
}

/// `sha256:<hex>` over the recipe's inputs (see the module comment).
pub fn input_hash(recipe: &Path, plan: &Plan) -> Result<String, GraphError> {
    let main = plan.packages.first().map_or("", |p| p.name.as_str());
    let src = crate::engine::default_source_dir(recipe, main);
    input_hash_from(recipe, plan, &src, &[])
}

/// [`input_hash`] with the files of `src` as the recipe's source
/// directory, less `exclude`.
pub fn input_hash_from(
    recipe: &Path,
    plan: &Plan,
    src: &Path,
    exclude: &[PathBuf],
) -> Result<String, GraphError> {
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
    let lock = crate::engine::lockfile::default_path(recipe);
    match std::fs::read(&lock) {
        Ok(bytes) => field("lock", &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => field("lock", b"none"),
        Err(e) => return Err(io(&lock, e)),
    }
    let mut files = Vec::new();
    if src.is_dir() {
        // What the build copies: `.melangeignore` and `exclude` leave
        // paths out of the hash as they leave them out of the workspace.
        let rules = match std::fs::read_to_string(src.join(".melangeignore")) {
            Ok(t) => IgnoreRules::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(e) => return Err(io(&src.join(".melangeignore"), e)),
        };
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
    fn walk(&self, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), GraphError> {
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
                let mut f = std::fs::File::open(&path).map_err(|e| io(&path, e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_are_depths_in_the_graph() {
        // 0 <- 1 <- 3, 0 <- 2, 4 alone, 3 also needs 2.
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2], vec![]];
        assert_eq!(waves(&deps), [0, 1, 1, 2, 0]);
    }
}
