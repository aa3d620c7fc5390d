//! The multi-recipe policy of `pkgbuild build`, behind one call:
//! [`build_recipes`] compiles every recipe for every architecture before
//! anything runs (all recipe errors at once, exit code 2), refuses two
//! recipes publishing one package name and dependency cycles, decides what
//! is skipped before the run (other architecture, `--skip-existing`),
//! builds the rest in dependency order through [`multi::run`], and returns
//! what became of each recipe. It prints nothing: everything goes to the
//! caller's [`Reporter`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::multi::{self, Outcome, Skip};
use super::report::{BuildReport, Failure, Level, PackageFile, RecipeResult, Reporter, RunStart};
use super::{epoch, BuildError, BuildLog, BuildOptions, Verbosity};
use crate::apk::sign::SigningKey;
use crate::arch::Arch;
use crate::plan::Plan;

/// A run of many recipes, resolved from flags by the CLI.
pub struct BatchOptions {
    pub recipes: Vec<PathBuf>,
    /// Built in turn, each with every recipe.
    pub archs: Vec<Arch>,
    /// Recipes built at once (0: one per CPU).
    pub jobs: usize,
    /// After a failure, go on with what does not need the failed recipe.
    pub keep_going: bool,
    /// Skip a recipe whose every package file is already in the output
    /// repository, unless the input hash recorded there differs.
    pub skip_existing: bool,
    /// Skip a recipe published at this destination (every package file
    /// there), unless the input hash recorded there differs.
    pub skip_published: Option<crate::publish::Dest>,
    /// `--build-date`; else each recipe's own epoch (`engine::epoch`).
    pub build_date: Option<String>,
    pub verbosity: Verbosity,
    /// What every recipe builds with; `recipe`, `arch` and `epoch` are
    /// set per recipe.
    pub common: BuildOptions,
}

/// Every architecture's report, in the order built.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub archs: Vec<BuildReport>,
    pub duration: Duration,
}

impl RunReport {
    pub fn failed(&self) -> bool {
        self.archs.iter().any(BuildReport::failed)
    }
}

/// Compile, order and build every recipe for every architecture. An
/// `Err` is found before anything runs (recipe errors, name clashes,
/// cycles); a failed build is in the report.
pub fn build_recipes(
    opts: &BatchOptions,
    key: &SigningKey,
    reporter: &dyn Reporter,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let mut runs = Vec::new();
    for &arch in &opts.archs {
        runs.push(compile_all(opts, arch, reporter)?);
    }
    let mut archs = Vec::new();
    for run in &runs {
        archs.push(build_all(opts, run, key, reporter));
    }
    Ok(RunReport {
        archs,
        duration: started.elapsed(),
    })
}

/// One recipe, compiled, with the options it builds with.
struct Unit {
    recipe: PathBuf,
    /// `name-version-rN` of the main package.
    id: String,
    opts: BuildOptions,
    plan: Plan,
    /// `pkgbuild plan`'s input hash, or why it could not be computed.
    input_hash: Result<String, String>,
}

impl Unit {
    fn name(&self) -> &str {
        self.plan.packages.first().map_or("", |p| p.name.as_str())
    }

    fn version(&self) -> &str {
        self.plan
            .packages
            .first()
            .map_or("", |p| p.full_version.as_str())
    }
}

/// The recipes of one architecture, compiled and ordered.
struct ArchRun {
    arch: Arch,
    units: Vec<Unit>,
    edges: Vec<Vec<multi::Edge>>,
    deps: Vec<Vec<usize>>,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn unit(opts: &BatchOptions, recipe: &Path, arch: Arch) -> anyhow::Result<Unit> {
    let (epoch, _) = epoch::resolve(opts.build_date.as_deref(), env_var, recipe)
        .map_err(crate::error::input_error)?;
    let mut build = opts.common.clone();
    build.recipe = recipe.to_path_buf();
    build.arch = arch;
    build.epoch = epoch;
    let plan = super::compile_plan(&build)?;
    let id = plan
        .packages
        .first()
        .map(|m| format!("{}-{}", m.name, m.full_version))
        .unwrap_or_default();
    let compile = crate::plan::CompileOptions {
        arch,
        pipeline_dirs: build.pipeline_dirs.clone(),
        build_options: build.build_options.clone(),
        vars_file: build.vars_file.clone(),
        ..Default::default()
    };
    let input_hash = if plan.builds_for_arch {
        // Left out as the build leaves them out of the workspace.
        let mut exclude = vec![build.out_dir.clone(), build.cache_dir.clone()];
        exclude.extend(build.env_files.iter().cloned());
        exclude.extend(build.key_files.iter().cloned());
        super::inputs::recipe_input_hash(recipe, &compile, build.source_dir.as_deref(), &exclude)
            .map_err(|e| e.to_string())
    } else {
        Err("not built for this architecture".into())
    };
    Ok(Unit {
        recipe: recipe.to_path_buf(),
        id,
        opts: build,
        plan,
        input_hash,
    })
}

fn compile_all(
    opts: &BatchOptions,
    arch: Arch,
    reporter: &dyn Reporter,
) -> anyhow::Result<ArchRun> {
    let input = crate::error::input_error;
    let mut units = Vec::new();
    let mut errors = Vec::new();
    for recipe in &opts.recipes {
        match unit(opts, recipe, arch) {
            Ok(u) => units.push(u),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(recipe_errors(errors, opts.recipes.len(), reporter));
    }
    check_unique_packages(&units).map_err(input)?;
    let plans: Vec<&Plan> = units.iter().map(|u| &u.plan).collect();
    let offers: Vec<bool> = plans.iter().map(|p| p.builds_for_arch).collect();
    let edges = multi::dependencies(&plans, &offers);
    let deps: Vec<Vec<usize>> = edges
        .iter()
        .map(|e| e.iter().map(|e| e.on).collect())
        .collect();
    if let Some(cycle) = multi::find_cycle(&deps) {
        return Err(input(cycle_error(&units, &edges, &cycle)));
    }
    Ok(ArchRun {
        arch,
        units,
        edges,
        deps,
    })
}

/// One recipe's error as it was; several are each reported and summed up.
fn recipe_errors(
    mut errors: Vec<anyhow::Error>,
    total: usize,
    reporter: &dyn Reporter,
) -> anyhow::Error {
    if errors.len() == 1 && total == 1 {
        return errors.remove(0);
    }
    // A bad --build-date or SOURCE_DATE_EPOCH is the same error for every
    // recipe: said once.
    let mut said = BTreeSet::new();
    for e in &errors {
        let text = crate::error::chain(e);
        if said.insert(text.clone()) {
            reporter.message(Level::Error, None, &text);
        }
    }
    crate::error::input_error(anyhow::anyhow!(
        "{} of {total} recipes have errors; nothing was built",
        errors.len()
    ))
}

/// Two recipes publishing one package name would overwrite each other.
/// Recipes not built for the architecture do not count (per-architecture
/// variants of one package are a common layout).
fn check_unique_packages(units: &[Unit]) -> anyhow::Result<()> {
    let mut owner: BTreeMap<&str, &Path> = BTreeMap::new();
    for u in units.iter().filter(|u| u.plan.builds_for_arch) {
        for p in &u.plan.packages {
            if let Some(first) = owner.insert(&p.name, &u.recipe) {
                bail!(
                    "package {} is produced by both {} and {}",
                    p.name,
                    first.display(),
                    u.recipe.display()
                );
            }
        }
    }
    Ok(())
}

fn cycle_error(units: &[Unit], edges: &[Vec<multi::Edge>], cycle: &[usize]) -> anyhow::Error {
    let steps: Vec<String> = cycle
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let next = cycle[(k + 1) % cycle.len()];
            let entry = edges[i]
                .iter()
                .find(|e| e.on == next)
                .map_or("", |e| e.entry.as_str());
            format!(
                "{} needs {entry} from {}",
                units[i].recipe.display(),
                units[next].recipe.display()
            )
        })
        .collect();
    anyhow::anyhow!(
        "dependency cycle between recipes: {}; break it by building one of them without the other's package first",
        steps.join(", ")
    )
}

/// What a repository holds of a recipe.
#[derive(Debug, PartialEq, Eq)]
enum Held {
    /// Not every package file.
    Missing,
    /// Every package file, recorded as built from the same inputs.
    Same,
    /// Every package file and no input record (built by an older
    /// pkgbuild, or by melange): as melange, the files decide.
    Unrecorded,
    /// Every package file, built from other inputs (the recorded hash).
    Changed(String),
}

fn held(all_files: bool, recorded: Option<String>, current: &Result<String, String>) -> Held {
    match (all_files, recorded, current) {
        (false, _, _) => Held::Missing,
        (true, None, _) => Held::Unrecorded,
        (true, Some(r), Ok(now)) if r == *now => Held::Same,
        // A hash we could not compute cannot show the inputs changed.
        (true, Some(_), Err(_)) => Held::Unrecorded,
        (true, Some(r), Ok(_)) => Held::Changed(r),
    }
}

/// What `--skip-published` finds at the destination, per unit (`Missing`
/// where not asked or not built for the arch).
fn held_at_dest(
    units: &[Unit],
    opts: &BatchOptions,
    arch: Arch,
) -> Result<Vec<Held>, crate::publish::PublishError> {
    let Some(dest) = &opts.skip_published else {
        return Ok(units.iter().map(|_| Held::Missing).collect());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::publish::PublishError::Dest {
            dest: dest.display().to_string(),
            problem: format!("cannot start the I/O runtime: {e}"),
        })?;
    rt.block_on(async {
        let mut out = Vec::with_capacity(units.len());
        for u in units {
            if !u.plan.builds_for_arch {
                out.push(Held::Missing);
                continue;
            }
            let files = super::package_files(&u.plan);
            let present = crate::publish::all_present(dest, arch.apk(), &files).await?;
            let recorded = if present {
                crate::publish::recorded_input(dest, arch.apk(), u.name()).await?
            } else {
                None
            };
            out.push(held(present, recorded, &u.input_hash));
        }
        Ok(out)
    })
}

/// Recipes skipped before anything runs: not for this architecture, or
/// (`--skip-existing`, `--skip-published`) with every package file already
/// there, built from the same inputs as far as the record there tells. A
/// recipe whose inputs changed since is rebuilt, saying why.
fn decided_before_the_run(
    units: &[Unit],
    opts: &BatchOptions,
    arch: Arch,
    reporter: &dyn Reporter,
) -> Vec<Option<Outcome>> {
    let at_dest = match held_at_dest(units, opts, arch) {
        Ok(h) => h,
        Err(e) => {
            // Unknown is not up to date: build, and say why.
            reporter.message(
                Level::Warn,
                None,
                &format!("--skip-published: {e}; building every recipe"),
            );
            units.iter().map(|_| Held::Missing).collect()
        }
    };
    let changed = |u: &Unit, place: &str, recorded: &str| {
        reporter.message(
            Level::Warn,
            None,
            &format!(
                "{}: rebuilding: {place} holds {} built from other inputs ({recorded}, now {}); publishing the new build will be refused, since a published name-version never changes: bump the epoch",
                u.recipe.display(),
                u.id,
                u.input_hash.as_deref().unwrap_or("?"),
            ),
        );
    };
    let repo = &opts.common.out_dir;
    units
        .iter()
        .zip(at_dest)
        .map(|(u, dest_held)| {
            if !u.plan.builds_for_arch {
                let why = super::skip_reason(&u.plan, arch);
                return Some(Outcome::Skipped(Skip::Arch(why)));
            }
            if opts.skip_existing {
                let all = super::package_files(&u.plan)
                    .iter()
                    .all(|f| repo.join(arch.apk()).join(f).is_file());
                let recorded = crate::publish::read_local_input(repo, arch.apk(), u.name());
                match held(all, recorded, &u.input_hash) {
                    Held::Same | Held::Unrecorded => return Some(Outcome::Skipped(Skip::UpToDate)),
                    Held::Changed(r) => {
                        changed(u, &repo.join(arch.apk()).display().to_string(), &r);
                        return None;
                    }
                    Held::Missing => {}
                }
            }
            match dest_held {
                Held::Same | Held::Unrecorded => {
                    if let Some(d) = &opts.skip_published {
                        reporter.message(
                            Level::Info,
                            None,
                            &format!(
                                "{}: {} is published at {}",
                                u.recipe.display(),
                                u.id,
                                d.display()
                            ),
                        );
                    }
                    Some(Outcome::Skipped(Skip::UpToDate))
                }
                Held::Changed(r) => {
                    let place = opts.skip_published.as_ref().map_or("", |d| d.display());
                    changed(u, place, &r);
                    None
                }
                Held::Missing => None,
            }
        })
        .collect()
}

/// Build one architecture's recipes in dependency order.
fn build_all(
    opts: &BatchOptions,
    run: &ArchRun,
    key: &SigningKey,
    reporter: &dyn Reporter,
) -> BuildReport {
    let started = Instant::now();
    let ArchRun {
        arch,
        units,
        edges,
        deps,
    } = run;
    let preset = decided_before_the_run(units, opts, *arch, reporter);
    let jobs = match opts.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let order: Vec<usize> = multi::order(deps)
        .into_iter()
        .filter(|&i| preset[i].is_none())
        .collect();
    let waits = edges
        .iter()
        .enumerate()
        .filter(|(i, e)| preset[*i].is_none() && !e.is_empty())
        .map(|(i, e)| (i, e.iter().map(|e| (e.on, e.entry.clone())).collect()))
        .collect();
    reporter.run_start(&RunStart {
        arch: *arch,
        arch_count: opts.archs.len(),
        recipes: units.iter().map(|u| u.id.clone()).collect(),
        order: order.clone(),
        jobs,
        waits,
    });
    // Builds sharing the terminal tag their messages with the package.
    let tagged = jobs > 1 && order.len() > 1;
    let many = units.len() > 1;
    let results: Vec<Mutex<Option<RecipeResult>>> =
        units.iter().map(|_| Mutex::new(None)).collect();
    let report = multi::run(deps, preset, jobs, opts.keep_going, |i| {
        let u = &units[i];
        reporter.recipe_start(&u.id);
        let log = BuildLog::with_reporter(reporter, opts.verbosity, tagged.then(|| u.name()));
        let began = Instant::now();
        let built = super::build_plan(&u.opts, &u.plan, key, &log);
        let duration = began.elapsed();
        let log_path = super::log_path(&u.opts, &u.plan);
        let mut result = blank_result(u, *arch);
        result.duration = Some(duration);
        result.log = log_path.is_file().then_some(log_path);
        let outcome = match built {
            Ok(summary) => {
                // Recorded once the packages are in place, so a record
                // never vouches for files a killed build did not write.
                if let Ok(hash) = &u.input_hash {
                    if let Err(e) = crate::publish::write_local_input(
                        &u.opts.out_dir,
                        arch.apk(),
                        u.name(),
                        hash,
                    ) {
                        reporter.message(
                            Level::Warn,
                            None,
                            &format!(
                                "{}: cannot record the input hash: {e}",
                                crate::publish::local_input_path(
                                    &u.opts.out_dir,
                                    arch.apk(),
                                    u.name()
                                )
                                .display()
                            ),
                        );
                    }
                }
                for p in &summary.packages {
                    match PackageFile::read(p) {
                        Ok(f) => result.packages.push(f),
                        Err(e) => reporter.message(
                            Level::Warn,
                            None,
                            &format!(
                                "{}: cannot describe the published package: {}",
                                p.display(),
                                crate::error::chain(&e)
                            ),
                        ),
                    }
                }
                Ok(())
            }
            Err(e) => {
                let reason = failure_reason(&e);
                result.outcome = Outcome::Failed(reason.clone());
                result.reason = reason.clone();
                result.failure = Some(failure(&e));
                Err(reason)
            }
        };
        reporter.recipe_finish(&result, many);
        *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        outcome
    });
    let recipes: Vec<RecipeResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            let outcome = report.outcomes[i].clone();
            let kept = slot.into_inner().unwrap_or_else(|e| e.into_inner());
            let mut r = kept.unwrap_or_else(|| {
                let r = blank_result(&units[i], *arch);
                reporter.recipe_finish(&with_outcome(r.clone(), &outcome, units), many);
                r
            });
            if !matches!(r.outcome, Outcome::Failed(_)) {
                r = with_outcome(r, &outcome, units);
            }
            r
        })
        .collect();
    let report = BuildReport {
        arch: *arch,
        recipes,
        started: report.started,
        duration: started.elapsed(),
    };
    reporter.run_finish(&report);
    report
}

fn blank_result(u: &Unit, arch: Arch) -> RecipeResult {
    RecipeResult {
        recipe: u.recipe.clone(),
        id: u.id.clone(),
        name: u.name().to_string(),
        version: u.version().to_string(),
        arch: arch.apk().to_string(),
        outcome: Outcome::Built,
        reason: String::new(),
        packages: Vec::new(),
        duration: None,
        log: None,
        failure: None,
    }
}

/// `r` with the scheduler's outcome and the summary's reason for it.
fn with_outcome(mut r: RecipeResult, outcome: &Outcome, units: &[Unit]) -> RecipeResult {
    r.reason = match outcome {
        Outcome::Built => String::new(),
        Outcome::Failed(why) => why.clone(),
        Outcome::Skipped(Skip::Arch(why)) => why.clone(),
        Outcome::Skipped(Skip::UpToDate) => {
            "up to date (every package file is already in the repository)".to_string()
        }
        Outcome::Skipped(Skip::DependencyFailed(j)) => {
            format!("dependency failed: {}", units[*j].id)
        }
        Outcome::Skipped(Skip::NotReached) => {
            "not reached (the run stopped after a failure; --keep-going builds what does not need it)"
                .to_string()
        }
    };
    r.outcome = outcome.clone();
    r
}

/// The short reason of a failure for the summary: the failed step when
/// there is one, else the first line of the error.
fn failure_reason(e: &anyhow::Error) -> String {
    match e.downcast_ref::<BuildError>() {
        Some(BuildError::StepFailed {
            package,
            step,
            status,
            ..
        }) => format!("step {package}/{step}: {status}"),
        Some(BuildError::Lint { package, count, .. }) => {
            format!("{package}: {count} required lint check(s) failed")
        }
        None => {
            let text = crate::error::chain(e);
            let line = text.lines().next().unwrap_or("").trim();
            match line.char_indices().nth(160) {
                Some((cut, _)) => format!("{}...", &line[..cut]),
                None => line.to_string(),
            }
        }
    }
}

/// The failure as the report keeps it: for a failed step, which one, its
/// status and the last lines it printed.
fn failure(e: &anyhow::Error) -> Failure {
    let mut f = Failure {
        message: crate::error::chain(e),
        ..Failure::default()
    };
    match e.downcast_ref::<BuildError>() {
        Some(BuildError::StepFailed {
            package,
            step,
            status,
            tail,
        }) => {
            f.package = Some(package.clone());
            f.step = Some(step.clone());
            f.exit_code = status
                .strip_prefix("exit status ")
                .and_then(|c| c.parse().ok());
            f.exit_status = Some(status.clone());
            f.last_lines = tail
                .lines()
                .map(|l| l.strip_prefix("  | ").unwrap_or(l).to_string())
                .collect();
        }
        Some(BuildError::Lint { package, .. }) => f.package = Some(package.clone()),
        None => {}
    }
    f
}
