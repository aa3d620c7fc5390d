//! Every recipe of the Wolfi sample, on both architectures, survives the
//! trip a rebuild takes: compile, write the plan back as the embedded
//! `.melange.yaml` (`plan::emit::recipe_yaml`), compile that text, and get
//! the same plan; writing it again gives the same text. This is the corpus
//! half of `plan::emit`'s unit tests, here because compiling a few hundred
//! recipes twice takes seconds.

mod util;

use std::path::{Path, PathBuf};

use pkgbuild::arch::Arch;
use pkgbuild::plan::emit::recipe_yaml;
use pkgbuild::plan::{compile, CompileOptions, Plan, Step};

use util::testdata::testdata;

/// Whether each step (depth first) was inlined from a `uses:`; the JSON
/// form leaves this out, and emit writes such steps back as `uses`.
fn inlined_flags(steps: &[Step], out: &mut Vec<bool>) {
    for s in steps {
        out.push(s.inlined);
        inlined_flags(&s.pipeline, out);
    }
}

fn all_flags(plan: &Plan) -> Vec<bool> {
    let mut out = Vec::new();
    for p in &plan.packages {
        inlined_flags(&p.steps, &mut out);
        if let Some(t) = &p.test {
            inlined_flags(&t.steps, &mut out);
        }
    }
    out
}

/// Compile, emit, compile the emitted text, and compare the plans; the
/// second emission must be the same text (so a rebuild embeds the same
/// recipe again).
fn round_trip(recipe: &Path, opts: &CompileOptions, scratch: &Path) -> Result<(), String> {
    let name = recipe.display();
    let plan = compile(recipe, opts).map_err(|e| format!("{name}: first compile: {e}"))?;
    let text = recipe_yaml(&plan).map_err(|e| format!("{name}: emit: {e}"))?;
    let path = scratch.join("embedded.yaml");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    // Build options and `--vars-file` are spent: the rebuild needs neither.
    let spent = CompileOptions {
        build_options: Vec::new(),
        vars_file: None,
        ..opts.clone()
    };
    let again = compile(&path, &spent).map_err(|e| format!("{name}: recompile: {e}\n{text}"))?;
    let (a, b) = (
        serde_json::to_value(&plan).map_err(|e| e.to_string())?,
        serde_json::to_value(&again).map_err(|e| e.to_string())?,
    );
    if let Some(d) = util::first_difference(&a, &b, "plan") {
        return Err(format!("{name}: plans differ at {d}\n--- emitted\n{text}"));
    }
    if all_flags(&plan) != all_flags(&again) {
        return Err(format!("{name}: `uses` inlined differently\n{text}"));
    }
    let text2 = recipe_yaml(&again).map_err(|e| format!("{name}: emit again: {e}"))?;
    if text2 != text {
        return Err(format!(
            "{name}: second emission differs\n--- first\n{text}\n--- second\n{text2}"
        ));
    }
    Ok(())
}

#[test]
fn every_wolfi_sample_recipe_round_trips_on_both_arches() {
    let sample = testdata().join("wolfi-sample");
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(sample.join("recipes"))
        .unwrap_or_else(|e| panic!("{}: {e}", sample.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 200, "only {} recipes", recipes.len());
    let scratch = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for arch in [Arch::X86_64, Arch::Aarch64] {
        let opts = CompileOptions {
            arch,
            pipeline_dirs: vec![sample.join("pipelines")],
            ..CompileOptions::default()
        };
        failures.extend(
            recipes
                .iter()
                .filter_map(|r| round_trip(r, &opts, scratch.path()).err()),
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} recipe builds did not round-trip:\n{}",
        failures.len(),
        2 * recipes.len(),
        failures.join("\n\n")
    );
}
