//! `pkgbuild lint`: check recipes and finished packages without building.
//!
//! A recipe is fully compiled (keys, names, versions, pipelines, inputs,
//! substitutions, conditions); every failure is printed on stderr as
//! `file:line:col: message`. A package (`.apk`, recognised by its gzip
//! magic, whatever its name) is unpacked into a temporary directory and the
//! package linters run on it, one stdout line per finding:
//! `FILE: [linter] level: message (path)`, or `FILE: OK` when there is none.
//! Linters the package's embedded recipe turned off (its `checks.disabled`)
//! stay off, named on one line first: `FILE: disabled by the package: ...`
//! (`--ignore-package-checks` runs them anyway).
//!
//! Exit code: 2 if any recipe failed to compile, else 1 if any package has
//! a required-level finding or cannot be read, else 0 (warnings alone pass).
//! `--json FILE` also writes every file's result as one JSON document.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::compile::CompileFlags;
use crate::cli::input_error;
use crate::engine::report;
use crate::meta::apk_lint;
use crate::meta::lint::{self, Level};
use crate::plan;
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe YAML files and/or .apk packages to check.
    #[arg(required_unless_present = "list")]
    pub files: Vec<PathBuf>,
    /// Turn a package linter off (repeatable; see --list), in addition to
    /// those a package's embedded recipe turns off for it.
    #[arg(long = "disable", value_name = "LINTER")]
    pub disable: Vec<String>,
    /// Run the linters a package's embedded recipe turned off, too (an audit
    /// of what `checks.disabled` let through).
    #[arg(long)]
    pub ignore_package_checks: bool,
    /// List the package linters with their level and exit.
    #[arg(long)]
    pub list: bool,
    /// Check each package's signature against the public keys in DIR, as
    /// apk does (a bad or unknown signature is a required finding).
    /// Without it signatures are not checked, and lint says so.
    #[arg(long, value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,
    /// Write the results as one JSON document to FILE (`-`: stdout; the
    /// findings' lines then go to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub limits: crate::cli::limits::LimitArgs,
    #[command(flatten)]
    pub flags: CompileFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.list {
        for (name, level, help) in lint::LINTERS {
            crate::outln!("{name:<14} {:<8} {help}", level_name(*level));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let unknown = lint::unknown_linters(&args.disable);
    if !unknown.is_empty() {
        return Err(input_error(anyhow::anyhow!(
            "unknown linter(s) for --disable: {} (see `pkgbuild lint --list`)",
            unknown.join(", ")
        )));
    }
    if let Some(dir) = &args.keys_dir {
        if !dir.is_dir() {
            return Err(input_error(crate::apk::verify::VerifyError::NoKeysDir(
                dir.clone(),
            )));
        }
    }
    let apk_opts = apk_lint::ApkLintOptions {
        disabled: &args.disable,
        package_checks: !args.ignore_package_checks,
        limits: args.limits.limits(),
        keys_dir: args.keys_dir.as_deref(),
    };
    let opts = args.flags.options()?;
    let started = std::time::Instant::now();
    let out = Out {
        to_stderr: args.json.as_deref() == Some(Path::new("-")),
    };
    let mut entries: Vec<Value> = Vec::new();
    let mut packages = 0usize;
    let mut recipes_failed = 0usize;
    let mut recipes = 0usize;
    let mut packages_failed = 0usize;
    for f in &args.files {
        if is_package(f) {
            packages += 1;
            let (ok, entry) = lint_package(f, &apk_opts, &out);
            if !ok {
                packages_failed += 1;
            }
            entries.push(entry);
            continue;
        }
        recipes += 1;
        let error = plan::compile(f, &opts).err().map(|e| {
            crate::errln!("{e}");
            recipes_failed += 1;
            e.to_string()
        });
        entries.push(json!({
            "path": f.to_string_lossy(),
            "kind": "recipe",
            "status": if error.is_some() { "failed" } else { "ok" },
            "error": error,
            "findings": [],
            "disabled_by_package": [],
        }));
    }
    if packages > 0 && args.keys_dir.is_none() {
        crate::errln!(
            "note: package signatures were NOT checked (no --keys-dir); \
             apk refuses unsigned packages and unknown keys"
        );
    }
    if recipes_failed > 0 {
        crate::errln!("{recipes_failed} of {recipes} recipe(s) failed the checks");
    }
    if packages_failed > 0 {
        crate::errln!(
            "{packages_failed} of {} package(s) failed the checks",
            args.files.len() - recipes
        );
    }
    if let Some(dest) = &args.json {
        let ok = recipes_failed == 0 && packages_failed == 0;
        let mut doc = report::json::header("lint", &[], ok, started.elapsed());
        doc["signatures_checked"] = args.keys_dir.is_some().into();
        doc["files"] = entries.into();
        report::json::write(dest, &doc)?;
    }
    Ok(if recipes_failed > 0 {
        ExitCode::from(2)
    } else if packages_failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Required => "required",
        Level::Warning => "warning",
    }
}

/// A package is a gzip stream; a recipe is YAML text and never starts with
/// the gzip magic. Unreadable paths go the recipe way, whose error names them.
fn is_package(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    crate::open::regular(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
        || path.extension().is_some_and(|e| e == "apk")
}

/// Where the per-file lines go: stdout, unless it carries the JSON document.
struct Out {
    to_stderr: bool,
}

impl Out {
    fn line(&self, text: String) {
        if self.to_stderr {
            crate::errln!("{text}");
        } else {
            crate::outln!("{text}");
        }
    }
}

/// Prints the package's findings; false when it must fail the run. With
/// the file's entry of the JSON document.
fn lint_package(path: &Path, opts: &apk_lint::ApkLintOptions<'_>, out: &Out) -> (bool, Value) {
    let file = path.display();
    let mut entry = json!({
        "path": path.to_string_lossy(),
        "kind": "package",
        "status": "failed",
        "error": null,
        "findings": [],
        "disabled_by_package": [],
    });
    let result = match apk_lint::lint_apk(path, opts) {
        Ok(r) => r,
        Err(e) => {
            out.line(format!("{file}: error: {e}"));
            entry["error"] = e.to_string().into();
            return (false, entry);
        }
    };
    if !result.package_disabled.is_empty() {
        out.line(format!(
            "{file}: disabled by the package: {}",
            result.package_disabled.join(", ")
        ));
    }
    if result.findings.is_empty() {
        out.line(format!("{file}: OK"));
    }
    for f in &result.findings {
        let place = f
            .path
            .as_deref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default();
        out.line(format!(
            "{file}: [{}] {}: {}{place}",
            f.linter,
            level_name(f.level),
            f.message
        ));
    }
    let ok = !result.findings.iter().any(|f| f.level == Level::Required);
    entry["status"] = if ok { "ok" } else { "failed" }.into();
    entry["disabled_by_package"] = result.package_disabled.clone().into();
    entry["findings"] = result
        .findings
        .iter()
        .map(|f| {
            json!({
                "linter": f.linter,
                "level": level_name(f.level),
                "message": f.message,
                "path": f.path,
            })
        })
        .collect::<Vec<_>>()
        .into();
    (ok, entry)
}
