//! `pkgbuild plan`: the multi-recipe build graph `build` computes
//! (`engine::multi`), handed to a CI engine that runs it across machines.
//!
//! Each recipe gets its wave (its depth in the graph: a wave's recipes
//! need only recipes of earlier waves, so they may build in parallel) and
//! its input hash (`engine::inputs`). Output is deterministic:
//! same inputs, same bytes. This module computes the graph; `emit` writes
//! it for each engine.

pub mod emit;

use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{inputs, multi};
use crate::plan::{self, CompileOptions, Plan};

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

impl From<inputs::InputHashError> for GraphError {
    fn from(e: inputs::InputHashError) -> GraphError {
        match e {
            inputs::InputHashError::Compile(m) => GraphError::Compile(m),
            inputs::InputHashError::Io { path, problem } => GraphError::Io { path, problem },
        }
    }
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
            input_hash: inputs::input_hash(path, p)?,
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
