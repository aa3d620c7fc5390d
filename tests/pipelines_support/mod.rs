//! Reads the built-in pipeline YAML files under `pipelines/` into a small model shared by
//! the README consistency test and the script tests. Parsing goes straight through
//! `yaml_rust2` so these tests do not depend on (and cannot be fooled by) the recipe module.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use yaml_rust2::{Yaml, YamlLoader};

/// One declared input of a pipeline.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub description: Option<String>,
    /// The default rendered as text (YAML booleans and numbers included); `None` when absent.
    pub default: Option<String>,
    pub required: bool,
}

/// One step: either a shell body or a nested pipeline.
#[derive(Debug, Clone)]
pub struct Step {
    pub runs: Option<String>,
    pub uses: Option<String>,
    pub with: Vec<(String, String)>,
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Name as recipes write it in `uses:`, e.g. `split/dev`.
    pub name: String,
    pub title: String,
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
}

impl Pipeline {
    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }
}

pub fn pipelines_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines")
}

/// Scalars as the compiler substitutes them: `true`, `1`, `-g`; `None` for maps, lists, null.
pub fn scalar(y: &Yaml) -> Option<String> {
    match y {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// Parses one pipeline file; panics with the file and the offending key on malformed input.
pub fn load(path: &Path) -> Pipeline {
    let root = pipelines_dir();
    let name = path
        .strip_prefix(&root)
        .unwrap_or(path)
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()));
    let doc = docs
        .first()
        .unwrap_or_else(|| panic!("{}: empty document", path.display()));
    let title = doc["name"]
        .as_str()
        .unwrap_or_else(|| panic!("{name}: `name:` must be a string"))
        .to_string();

    let mut inputs = Vec::new();
    if let Some(map) = doc["inputs"].as_hash() {
        for (key, spec) in map {
            let input = key
                .as_str()
                .unwrap_or_else(|| panic!("{name}: input names must be strings"))
                .to_string();
            let required = match &spec["required"] {
                Yaml::BadValue | Yaml::Null => false,
                Yaml::Boolean(b) => *b,
                other => {
                    panic!("{name}: input {input}: `required` must be a boolean, got {other:?}")
                }
            };
            inputs.push(Input {
                description: scalar(&spec["description"]).map(|d| d.trim().to_string()),
                default: scalar(&spec["default"]),
                required,
                name: input,
            });
        }
    } else if !doc["inputs"].is_badvalue() && !doc["inputs"].is_null() {
        panic!("{name}: `inputs:` must be a mapping");
    }

    let steps = doc["pipeline"]
        .as_vec()
        .unwrap_or_else(|| panic!("{name}: `pipeline:` must be a list of steps"))
        .iter()
        .enumerate()
        .map(|(n, s)| {
            let with = s["with"]
                .as_hash()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let k = k.as_str().unwrap_or_default().to_string();
                            let v = scalar(v).unwrap_or_else(|| {
                                panic!("{name}: step {n}: with.{k} is not a scalar")
                            });
                            (k, v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let step = Step {
                runs: s["runs"].as_str().map(str::to_string),
                uses: s["uses"].as_str().map(str::to_string),
                with,
                working_directory: s["working-directory"].as_str().map(str::to_string),
            };
            assert!(
                step.runs.is_some() != step.uses.is_some(),
                "{name}: step {n} must have exactly one of `runs` and `uses`"
            );
            step
        })
        .collect();

    Pipeline {
        name,
        title,
        inputs,
        steps,
    }
}

/// Every pipeline under `pipelines/`, sorted by name.
pub fn load_all() -> Vec<Pipeline> {
    let mut files = Vec::new();
    yaml_files(&pipelines_dir(), &mut files);
    let mut all: Vec<Pipeline> = files.iter().map(|p| load(p)).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all
}

/// Looks a pipeline up by its `uses:` name.
pub fn find(name: &str) -> Pipeline {
    let path = pipelines_dir().join(format!("{name}.yaml"));
    assert!(path.is_file(), "no built-in pipeline named {name}");
    load(&path)
}
