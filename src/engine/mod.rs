//! The build engine: the only module that sees the whole flow.
//!
//! compile the recipe → fetch sources on the host (checksums and commits
//! checked before any step runs) → run every step in the sandbox, main
//! pipeline first, then each subpackage's → for each `melange-out/<name>`:
//! lint, scan dependencies, add the SBOM, write a signed `.apk` into a
//! staging directory → under the repository lock, move the packages in and
//! rewrite the signed index. A failure at any point leaves the repository
//! as it was.

pub mod buildenv;
pub mod epoch;
pub mod keys;
pub mod log;
pub mod multi;
pub mod sources;
pub mod test;
pub mod workspace;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rayon::prelude::*;

use crate::apk::package::{self, PackageSpec, Script, SignOptions};
use crate::apk::pkginfo::PkgInfo;
use crate::apk::sign::SigningKey;
use crate::arch::Arch;
use crate::meta::{lint, sbom, scan};
use crate::plan::{self, PackagePlan, Plan, Step};
use crate::repo::Repo;
use crate::sandbox::{self, RunnerKind, SandboxConfig, StepSpec};
use workspace::Workspace;

pub use log::{BuildLog, Verbosity};

/// Everything a build needs, resolved from flags by the CLI.
pub struct BuildOptions {
    pub recipe: PathBuf,
    pub out_dir: PathBuf,
    pub arch: Arch,
    pub runner: RunnerKind,
    /// None: the recipe's folder (or its `<package-name>/` subfolder).
    pub source_dir: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub pipeline_dirs: Vec<PathBuf>,
    pub build_options: Vec<String>,
    pub vars_file: Option<PathBuf>,
    /// Values from `--env-file`: reach the steps, never a package.
    pub secret_env: BTreeMap<String, String>,
    /// The env file itself, kept out of the workspace copy.
    pub env_file: Option<PathBuf>,
    pub network: bool,
    pub keep_workspace: bool,
    pub epoch: u64,
    pub legacy_sha1_signature: bool,
    pub description: Option<String>,
}

/// Why a build failed; `Step` failures are exit code 1, the rest depend on
/// the cause (the CLI maps compile errors to 2).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{package}: step {step:?} failed ({status})\n{tail}")]
    StepFailed {
        package: String,
        step: String,
        status: String,
        tail: String,
    },
    #[error("{package}: {count} required lint check(s) failed (a recipe turns one off for a package with `checks: disabled: [NAME]`):\n{findings}")]
    Lint {
        package: String,
        count: usize,
        findings: String,
    },
}

/// What a successful build produced.
#[derive(Debug)]
pub struct BuildSummary {
    pub packages: Vec<PathBuf>,
    pub index: PathBuf,
    pub log: PathBuf,
    pub skipped: Option<String>,
}

/// A step flattened out of the plan's tree, with the environment added by
/// host-side source preparation.
struct FlatStep<'a> {
    label: String,
    step: &'a Step,
    extra_env: BTreeMap<String, String>,
}

pub(crate) fn step_name(step: &Step, index: usize) -> String {
    step.name
        .clone()
        .or_else(|| step.uses.clone())
        .unwrap_or_else(|| format!("step {}", index + 1))
}

fn flatten<'a>(
    steps: &'a [Step],
    prefix: &str,
    prepared: &sources::Prepared,
    inherited: &BTreeMap<String, String>,
    out: &mut Vec<FlatStep<'a>>,
) {
    for (i, step) in steps.iter().enumerate() {
        let label = if prefix.is_empty() {
            step_name(step, i)
        } else {
            format!("{prefix}/{}", step_name(step, i))
        };
        let mut env = inherited.clone();
        env.extend(prepared.env_for(step));
        if step.runs.as_deref().is_some_and(|r| !r.trim().is_empty()) {
            out.push(FlatStep {
                label: label.clone(),
                step,
                extra_env: env.clone(),
            });
        }
        flatten(&step.pipeline, &label, prepared, &env, out);
    }
}

/// Build one recipe. `key` signs packages and index.
pub fn build(
    opts: &BuildOptions,
    key: &SigningKey,
    log: &BuildLog,
) -> anyhow::Result<BuildSummary> {
    let plan = compile_plan(opts)?;
    build_plan(opts, &plan, key, log)
}

/// Compile `opts.recipe` exactly as [`build`] does (the host runner's
/// build root is part of the plan), with the checks that refuse a plan
/// before any step runs. Errors are input errors (exit code 2).
pub fn compile_plan(opts: &BuildOptions) -> anyhow::Result<Plan> {
    let build_root = match opts.runner {
        RunnerKind::Bwrap => "/home/build".to_string(),
        RunnerKind::Host => {
            // The name is needed before compiling: the build root is part
            // of the plan (targets.destdir and friends).
            let id = plan::package_version(&opts.recipe).map_err(crate::cli::input_error)?;
            let name = id.rsplitn(3, '-').nth(2).unwrap_or(&id);
            workspace::fixed_dir(name, opts.arch.apk())
                .to_string_lossy()
                .into_owned()
        }
    };
    let compile_opts = plan::CompileOptions {
        arch: opts.arch,
        pipeline_dirs: opts.pipeline_dirs.clone(),
        build_options: opts.build_options.clone(),
        vars_file: opts.vars_file.clone(),
        build_root,
    };
    let plan = plan::compile(&opts.recipe, &compile_opts).map_err(crate::cli::input_error)?;
    let refuse =
        |e: String| crate::cli::input_error(anyhow::anyhow!("{}: {e}", opts.recipe.display()));
    check_apk_metadata(&plan).map_err(refuse)?;
    // The recipe embedded in every package is written after the build;
    // a plan it cannot express is refused before any step runs.
    plan::emit::recipe_yaml(&plan).map_err(|e| refuse(e.to_string()))?;
    if plan.packages.is_empty() {
        return Err(refuse("recipe defines no package".into()));
    }
    Ok(plan)
}

/// The file names `<name>-<version>-r<epoch>.apk` a plan publishes.
pub fn package_files(plan: &Plan) -> Vec<String> {
    plan.packages
        .iter()
        .map(|p| format!("{}-{}.apk", p.name, p.full_version))
        .collect()
}

/// Build a plan from [`compile_plan`] for the same `opts`.
pub fn build_plan(
    opts: &BuildOptions,
    plan: &Plan,
    key: &SigningKey,
    log: &BuildLog,
) -> anyhow::Result<BuildSummary> {
    let main = plan
        .packages
        .first()
        .context("recipe defines no package")?
        .clone();
    let repo = Repo::new(&opts.out_dir, opts.arch.apk());
    let log_path = opts
        .out_dir
        .join("logs")
        .join(format!("{}-{}.log", main.name, main.full_version));

    if !plan.builds_for_arch {
        let why = skip_reason(plan, opts.arch);
        log.info(&format!("{}: {why}", main.name));
        return Ok(BuildSummary {
            packages: vec![],
            index: repo.index_path(),
            log: log_path,
            skipped: Some(why),
        });
    }
    let workspace = match opts.runner {
        RunnerKind::Bwrap => Workspace::temporary()?,
        RunnerKind::Host => Workspace::fixed(&main.name, opts.arch.apk(), log)?,
    };
    let ws_dir = workspace.build_dir().to_path_buf();
    let build_root = match opts.runner {
        RunnerKind::Bwrap => "/home/build".to_string(),
        RunnerKind::Host => ws_dir.to_string_lossy().into_owned(),
    };
    if build_root != plan.build_root.trim_end_matches('/') && opts.runner == RunnerKind::Host {
        bail!(
            "{}: compiled for build root {}, but the workspace is {build_root}",
            opts.recipe.display(),
            plan.build_root
        );
    }
    log.open_file(&log_path)
        .with_context(|| format!("{}: cannot write build log", log_path.display()))?;
    log.info(&format!(
        "building {}-{} for {} (SOURCE_DATE_EPOCH={})",
        main.name,
        main.full_version,
        opts.arch.apk(),
        opts.epoch
    ));
    // Before sources: an untrusted local index stops the build before any
    // download. The sysroot sits beside the workspace, never inside it.
    let env = buildenv::prepare(&buildenv::Inputs {
        contents: &plan.environment.contents,
        out_dir: &opts.out_dir,
        arch: opts.arch.apk(),
        key,
        runner: opts.runner,
        sysroot: &workspace.sysroot_dir(),
        scratch: workspace.scratch(),
    })?;
    for line in &env.log {
        log.info(line);
    }

    // Sources first: a wrong checksum or commit stops the build here.
    let sources_dir = workspace.scratch().join("sources");
    fs::create_dir_all(&sources_dir)?;
    let prepared = sources::prepare(
        plan,
        &opts.cache_dir,
        &sources_dir,
        opts.runner,
        opts.epoch,
        log,
    )?;

    let src_dir = opts
        .source_dir
        .clone()
        .unwrap_or_else(|| default_source_dir(&opts.recipe, &main.name));
    if src_dir.is_dir() {
        let mut exclude = vec![opts.out_dir.clone(), opts.cache_dir.clone()];
        exclude.extend(opts.env_file.clone());
        workspace::copy_source(&src_dir, &ws_dir, &exclude).with_context(|| {
            format!("{}: cannot copy sources into workspace", src_dir.display())
        })?;
    }
    let out_root = ws_dir.join("melange-out");
    for p in &plan.packages {
        fs::create_dir_all(out_root.join(&p.name))?;
    }

    let mut base_env: BTreeMap<String, String> = env.base_env.clone();
    base_env.insert("SOURCE_DATE_EPOCH".into(), opts.epoch.to_string());
    base_env.extend(opts.secret_env.clone());
    let mut ro_binds = prepared.ro_binds.clone();
    ro_binds.extend(env.ro_bind.clone());
    let config = SandboxConfig {
        workspace: ws_dir.clone(),
        build_root: build_root.clone(),
        network: opts.network,
        ro_binds,
        base_env,
        timeout: None,
    };
    let runner = sandbox::new_runner(opts.runner, config)?;

    let result = run_all_steps(
        plan,
        &prepared,
        env.visible.as_deref(),
        runner.as_ref(),
        log,
    );
    if let Err(e) = result {
        workspace.finish(opts.keep_workspace, log);
        return Err(e);
    }

    let staging = repo.staging_dir()?;
    let written = package_all(
        plan,
        &out_root,
        &prepared,
        &env.sbom,
        opts,
        key,
        staging.path(),
        log,
    );
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            workspace.finish(opts.keep_workspace, log);
            return Err(e);
        }
    };

    let lock =
        repo.lock(|| log.info("waiting for another build to release the repository lock"))?;
    let published = repo.publish(&written, Some(key), opts.description.as_deref(), &lock)?;
    drop(lock);
    for p in &published {
        log.info(&format!("wrote {}", p.display()));
    }
    log.info(&format!("updated {}", repo.index_path().display()));
    log.flush();
    workspace.finish(opts.keep_workspace, log);
    Ok(BuildSummary {
        packages: published,
        index: repo.index_path(),
        log: log_path,
        skipped: None,
    })
}

/// Why a plan is not built for `arch` (when `builds_for_arch` is false).
pub fn skip_reason(plan: &Plan, arch: Arch) -> String {
    let targets = plan
        .packages
        .first()
        .map(|m| m.target_architecture.join(", "))
        .unwrap_or_default();
    format!(
        "not built for {} (target-architecture: {targets})",
        arch.apk()
    )
}

/// What the recipe may say but a package cannot carry, refused before any
/// step runs rather than after the whole build (or, for priorities, dropped
/// without a word as before).
fn check_apk_metadata(plan: &Plan) -> Result<(), String> {
    for p in &plan.packages {
        let d = &p.dependencies;
        for (what, value) in [
            ("provider-priority", &d.provider_priority),
            ("replaces-priority", &d.replaces_priority),
        ] {
            if let Some(v) = value.as_deref().filter(|v| v.parse::<u64>().is_err()) {
                return Err(format!(
                    "package {}: dependencies.{what} is `{v}`, but apk stores priorities as non-negative integers",
                    p.name
                ));
            }
        }
        if let Some(t) = &p.scriptlets.trigger {
            let problem = match (t.script.trim().is_empty(), t.paths.is_empty()) {
                (true, false) => "has paths but no script",
                (false, true) => "has a script but no paths to fire it",
                _ => continue,
            };
            return Err(format!("package {}: scriptlets.trigger {problem}", p.name));
        }
    }
    Ok(())
}

/// melange's layout keeps a recipe's side files in `<recipe dir>/<name>/`;
/// a standalone recipe keeps them beside itself.
pub(crate) fn default_source_dir(recipe: &Path, name: &str) -> PathBuf {
    let dir = recipe
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let sub = dir.join(name);
    if sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

/// `sysroot`: how the steps see the build environment's sysroot, if any.
fn run_all_steps(
    plan: &Plan,
    prepared: &sources::Prepared,
    sysroot: Option<&str>,
    runner: &dyn sandbox::Runner,
    log: &BuildLog,
) -> anyhow::Result<()> {
    for pkg in &plan.packages {
        let mut flat = Vec::new();
        flatten(&pkg.steps, "", prepared, &BTreeMap::new(), &mut flat);
        let total = flat.len();
        for (i, fs_) in flat.iter().enumerate() {
            let prefix = format!("{}/{}", pkg.name, fs_.label);
            log.step_start(&prefix, i + 1, total);
            let mut env = fs_.step.environment.clone();
            env.extend(fs_.extra_env.clone());
            if let Some(s) = sysroot {
                buildenv::merge_step_env(&mut env, s);
            }
            let spec = StepSpec {
                label: prefix.clone(),
                script: fs_.step.runs.clone().unwrap_or_default(),
                workdir: fs_.step.working_directory.clone(),
                env,
            };
            let outcome = runner.run(&spec, &mut |line| log.step_output(&prefix, line))?;
            if outcome.status != Some(0) {
                let status = match (outcome.status, outcome.signal) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "killed".to_string(),
                };
                log.flush();
                return Err(BuildError::StepFailed {
                    package: pkg.name.clone(),
                    step: fs_.label.clone(),
                    status,
                    tail: outcome
                        .tail
                        .iter()
                        .map(|l| format!("  | {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
                .into());
            }
        }
    }
    Ok(())
}

fn copyright_text(p: &PackagePlan) -> String {
    p.copyright
        .iter()
        .map(|c| c.attestation.value.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The recipe's structured `cpe:` as a CPE 2.3 formatted string.
fn cpe23(p: &PackagePlan) -> Option<String> {
    let get = |k: &str| p.cpe.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let vendor = get("vendor")?;
    let product = get("product")?;
    let field = |k: &str| get(k).unwrap_or("*").to_string();
    Some(format!(
        "cpe:2.3:{}:{vendor}:{product}:{}:*:{}:{}:{}:{}:{}:{}",
        get("part").unwrap_or("a"),
        p.version,
        field("edition"),
        field("language"),
        field("sw_edition"),
        field("target_sw"),
        field("target_hw"),
        field("other"),
    ))
}

fn scripts_of(p: &PackagePlan) -> Vec<(Script, Vec<u8>)> {
    let s = &p.scriptlets;
    let table = [
        (Script::PreInstall, &s.pre_install),
        (Script::PostInstall, &s.post_install),
        (Script::PreDeinstall, &s.pre_deinstall),
        (Script::PostDeinstall, &s.post_deinstall),
        (Script::PreUpgrade, &s.pre_upgrade),
        (Script::PostUpgrade, &s.post_upgrade),
    ];
    let mut out: Vec<(Script, Vec<u8>)> = table
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|t| (k, with_shebang(t))))
        .collect();
    if let Some(t) = &s.trigger {
        if !t.script.trim().is_empty() {
            out.push((Script::Trigger, with_shebang(&t.script)));
        }
    }
    out
}

/// apk executes scripts directly, so they need an interpreter line.
fn with_shebang(text: &str) -> Vec<u8> {
    if text.starts_with("#!") {
        text.as_bytes().to_vec()
    } else {
        format!("#!/bin/sh\n{text}").into_bytes()
    }
}

/// `build_environment`: the SBOM's build dependencies (requests met
/// locally are pinned to the version installed).
#[allow(clippy::too_many_arguments)]
fn package_all(
    plan: &Plan,
    out_root: &Path,
    prepared: &sources::Prepared,
    build_environment: &[String],
    opts: &BuildOptions,
    key: &SigningKey,
    staging: &Path,
    log: &BuildLog,
) -> anyhow::Result<Vec<PathBuf>> {
    let main = &plan.packages[0];
    // Lint and scan every package first: dependency resolution between
    // siblings needs all scan results.
    let mut scans = Vec::new();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        let findings = lint::lint_tree(
            &root,
            &lint::LintContext {
                package_name: &p.name,
                disabled: &p.checks_disabled,
                arch: opts.arch.apk(),
            },
        )
        .with_context(|| format!("{}: cannot lint package tree", p.name))?;
        let mut required = Vec::new();
        for f in &findings {
            let place = f
                .path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let text = format!("{}: [{}] {}{}", p.name, f.linter, f.message, place);
            match f.level {
                lint::Level::Required => required.push(text),
                lint::Level::Warning => log.warn(&text),
            }
        }
        if !required.is_empty() {
            return Err(BuildError::Lint {
                package: p.name.clone(),
                count: required.len(),
                findings: required.join("\n"),
            }
            .into());
        }
    }
    // A library directory named by any package's ld.so.conf.d counts for
    // all of them, since they are installed together.
    let mut lib_dirs = std::collections::BTreeSet::new();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        lib_dirs.extend(
            scan::ld_so_conf_dirs(&root)
                .with_context(|| format!("{}: cannot read ld.so.conf.d", p.name))?,
        );
    }
    let lib_dirs: Vec<String> = lib_dirs.into_iter().collect();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        let o = &p.options;
        let result = scan::scan_tree_with_lib_dirs(
            &root,
            &p.full_version,
            &scan::ScanOptions {
                no_provides: o.no_provides,
                no_depends: o.no_depends,
                no_commands: o.no_commands,
                no_versioned_shlib_deps: o.no_versioned_shlib_deps,
            },
            &lib_dirs,
        )
        .with_context(|| format!("{}: cannot scan package tree", p.name))?;
        for w in &result.warnings {
            log.warn(&format!("{}: {w}", p.name));
        }
        scans.push(result);
    }
    let deps_in: Vec<scan::PackageDeps> = plan
        .packages
        .iter()
        .zip(scans)
        .map(|(p, s)| scan::PackageDeps {
            name: &p.name,
            declared_depends: &p.dependencies.runtime,
            declared_provides: &p.dependencies.provides,
            scan: s,
        })
        .collect();
    let resolved = scan::resolve(&deps_in);

    let embedded = plan::emit::recipe_yaml(plan)?.into_bytes();
    let sbom_texts: Vec<(String, Option<String>)> = plan
        .packages
        .iter()
        .map(|p| (copyright_text(p), cpe23(p)))
        .collect();
    let sbom_input = |i: usize| {
        let p = &plan.packages[i];
        sbom::SbomInput {
            name: &p.name,
            full_version: &p.full_version,
            arch: opts.arch.apk(),
            origin: &main.name,
            license: &p.license,
            copyright: &sbom_texts[i].0,
            cpe: sbom_texts[i].1.as_deref(),
            url: &p.url,
            namespace: "local",
            sources: &prepared.sbom_sources,
            epoch: opts.epoch,
            description: &p.description,
            build_environment,
        }
    };
    // What the SBOM had to leave out or normalise (a license typo, a source
    // URL SPDX rejects) is said once, not once per subpackage.
    let mut said = std::collections::BTreeSet::new();
    for (i, p) in plan.packages.iter().enumerate() {
        for w in sbom::warnings(&sbom_input(i)) {
            if said.insert(w.clone()) {
                log.warn(&format!("{}: SBOM: {w}", p.name));
            }
        }
    }
    let jobs: Vec<(usize, scan::ResolvedDeps)> = resolved.into_iter().enumerate().collect();
    jobs.into_par_iter()
        .map(|(i, deps)| {
            let p = &plan.packages[i];
            let root = out_root.join(&p.name);
            let sbom_rel = sbom::sbom_path(&p.name, &p.full_version);
            let sbom_bytes = sbom::render(&sbom_input(i));
            let sbom_file = root.join(&sbom_rel);
            if let Some(dir) = sbom_file.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&sbom_file, sbom_bytes)?;

            let scripts = scripts_of(p);
            let mut depends = deps.depends.clone();
            if scripts.iter().any(|(_, t)| t.starts_with(b"#!/bin/sh"))
                && !deps.provides.iter().any(|x| x == "/bin/sh")
                && !depends.iter().any(|x| x == "/bin/sh")
            {
                depends.push("/bin/sh".into());
                depends.sort();
            }
            let info = PkgInfo {
                name: p.name.clone(),
                version: p.full_version.clone(),
                description: p.description.clone(),
                url: p.url.clone(),
                builddate: opts.epoch,
                packager: "pkgbuild".into(),
                arch: opts.arch.apk().to_string(),
                origin: main.name.clone(),
                commit: p.commit.clone(),
                license: p.license.clone(),
                depends,
                provides: deps.provides.clone(),
                replaces: p.dependencies.replaces.clone(),
                provider_priority: p
                    .dependencies
                    .provider_priority
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                replaces_priority: p
                    .dependencies
                    .replaces_priority
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                triggers: p
                    .scriptlets
                    .trigger
                    .as_ref()
                    .map(|t| t.paths.clone())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let spec = PackageSpec {
                root: root.clone(),
                info,
                scripts,
                control_extra: vec![(".melange.yaml".to_string(), embedded.clone())],
                mtime: opts.epoch,
                overrides: BTreeMap::new(),
            };
            let written = package::write_package(
                &spec,
                &SignOptions {
                    key: Some(key),
                    legacy_sha1: opts.legacy_sha1_signature,
                },
                staging,
            )
            .with_context(|| format!("{}: cannot write package", p.name))?;
            Ok(written.path)
        })
        .collect::<anyhow::Result<Vec<_>>>()
}

/// Used by the CLI to refuse clearly instead of failing mid-build.
pub fn check_runner(kind: RunnerKind) -> anyhow::Result<()> {
    if kind == RunnerKind::Bwrap && !sandbox::bwrap_available() {
        bail!("bubblewrap (bwrap) is not installed: install it (e.g. `apt-get install bubblewrap`) or pass --runner host");
    }
    Ok(())
}
