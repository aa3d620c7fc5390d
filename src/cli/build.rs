//! `pkgbuild build`: flags → `engine::BuildOptions`, one build per recipe.
//! Every recipe is compiled before anything runs (all recipe errors are
//! reported, exit code 2); then the recipes build in dependency order
//! (`engine::multi`), up to `--jobs` at a time, and a summary of what was
//! built, failed and skipped ends the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::arch::Arch;
use crate::engine::multi::{self, Outcome, Skip};
use crate::engine::{self, epoch, keys, BuildError, BuildLog, BuildOptions, Verbosity};
use crate::plan::Plan;
use crate::sandbox::RunnerKind;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerArg {
    /// bubblewrap sandbox: no network, read-only host /usr (or the guest
    /// root of a hermetic build), private /tmp. Also `bubblewrap`, melange's
    /// spelling.
    #[value(alias = "bubblewrap")]
    Bwrap,
    /// No isolation; for machines without bubblewrap.
    Host,
    /// melange's other runners: refused, with what to use instead.
    #[value(hide = true)]
    Docker,
    #[value(hide = true)]
    Qemu,
    #[value(hide = true)]
    Kubernetes,
    #[value(hide = true)]
    Lima,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe files to build (default: ./.melange.yaml, as melange). A
    /// recipe whose environment.contents.packages (or test environment)
    /// names a package another recipe produces is built after it;
    /// otherwise in the order given.
    #[arg(value_name = "RECIPE")]
    pub recipes: Vec<PathBuf>,
    /// Build up to N independent recipes at once (0: one per CPU).
    #[arg(long, short = 'j', default_value_t = 1, value_name = "N")]
    pub jobs: usize,
    /// After a failed build, go on with every recipe that does not need
    /// it (directly or through others). Default: start nothing new.
    #[arg(long)]
    pub keep_going: bool,
    /// Skip a recipe whose every package file
    /// (<name>-<version>-r<epoch>.apk) is already in <out-dir>/<arch>/.
    #[arg(long)]
    pub skip_existing: bool,
    /// Repository root; packages go to <DIR>/<arch>/.
    #[arg(long, default_value = "packages", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// RSA private key (PEM) that signs packages and index. Default: a
    /// key created once in ~/.config/pkgbuild/keys.
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// Target architectures (apk or Go spelling, `host`; comma list or
    /// repeated), each built in turn. Default: the host's.
    #[arg(long = "arch", value_name = "ARCH", value_delimiter = ',')]
    pub archs: Vec<String>,
    /// How steps run. Default: bwrap when installed, else host (with a warning).
    #[arg(long, value_enum)]
    pub runner: Option<RunnerArg>,
    /// Files copied into the workspace. Default: the recipe's folder (or
    /// its <package-name>/ subfolder when there is one).
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
    /// Download cache, keyed by checksum. Default: ~/.cache/pkgbuild.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Extra directory of pipelines, searched before the built-ins.
    #[arg(long = "pipeline-dir", value_name = "DIR")]
    pub pipeline_dirs: Vec<PathBuf>,
    /// KEY=VALUE file whose values reach the steps but never a package
    /// (repeatable; a later file wins).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a build option declared in the recipe's `options:`.
    #[arg(long = "build-option", value_name = "NAME")]
    pub build_options: Vec<String>,
    /// YAML file of extra `vars`.
    #[arg(long, value_name = "FILE")]
    pub vars_file: Option<PathBuf>,
    /// Allow network access inside the sandbox.
    #[arg(long)]
    pub network: bool,
    /// Keep the workspace after the build and print its path.
    #[arg(long)]
    pub keep_workspace: bool,
    /// melange's spelling: `--cleanup=false` keeps the workspace.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = clap::ArgAction::Set)]
    pub cleanup: bool,
    /// Rewrite <out-dir>/<arch>/APKINDEX.tar.gz after publishing
    /// (`--generate-index=false`: only add the package files).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value_t = true, action = clap::ArgAction::Set)]
    pub generate_index: bool,
    /// Distribution namespace in the SBOM's package URLs (pkg:apk/NS/...).
    #[arg(long, value_name = "NS", default_value = "local")]
    pub namespace: String,
    /// Start the steps in an empty workspace (copy no source directory).
    #[arg(long)]
    pub empty_workspace: bool,
    /// Kill the build (with every process it started) after this long:
    /// 90s, 45m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration::parse)]
    pub timeout: Option<std::time::Duration>,
    /// Make these linters required (comma list or repeated); see `pkgbuild lint --list`.
    #[arg(long, value_name = "LINTER", value_delimiter = ',')]
    pub lint_require: Vec<String>,
    /// Make these linters warnings only (comma list or repeated).
    #[arg(long, value_name = "LINTER", value_delimiter = ',')]
    pub lint_warn: Vec<String>,
    /// `commit` recorded in packages whose recipe sets none.
    #[arg(long, value_name = "SHA")]
    pub git_commit: Option<String>,
    /// The repository holding the recipe, recorded in the SBOM with the
    /// recipe's path and commit.
    #[arg(long, value_name = "URL")]
    pub git_repo_url: Option<String>,
    /// The licence of the recipe itself (an SPDX expression), recorded in
    /// the SBOM; the package's licence stays the recipe's `copyright`.
    #[arg(long, value_name = "SPDX")]
    pub license: Option<String>,
    /// Build in this directory (the steps' /home/build): empty or absent
    /// before, kept after the build. One recipe, one architecture.
    #[arg(long, value_name = "DIR")]
    pub workspace_dir: Option<PathBuf>,
    /// Timestamp for every file (seconds or YYYY-MM-DD[THH:MM:SSZ]).
    /// Default: SOURCE_DATE_EPOCH, else the recipe's last git commit, else 0.
    #[arg(long, value_name = "DATE")]
    pub build_date: Option<String>,
    /// Also sign with a SHA-1 `RSA` signature for very old apk clients.
    #[arg(long)]
    pub legacy_sha1_signature: bool,
    /// Print debug output.
    #[arg(long)]
    pub debug: bool,
    /// Print only errors and the produced files.
    #[arg(long, short)]
    pub quiet: bool,
    /// When a step fails and stdin is a terminal, open a shell in its
    /// sandbox (same mounts, environment, user; at its working directory);
    /// the build fails as usual once the shell exits.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// `KEY=VALUE` lines; `#` comments, optional `export ` and quotes.
pub fn parse_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read env file", path.display()))?;
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            bail!("{}:{}: expected KEY=VALUE", path.display(), i + 1);
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("{}:{}: invalid variable name {k:?}", path.display(), i + 1);
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    if args.recipes.is_empty() {
        let default = PathBuf::from(".melange.yaml");
        if !default.is_file() {
            return Err(input(anyhow::anyhow!(
                "no recipe given, and there is no .melange.yaml in this directory"
            )));
        }
        args.recipes.push(default);
    }
    for l in args.lint_require.iter().chain(&args.lint_warn) {
        if !crate::meta::lint::LINTERS
            .iter()
            .any(|(name, _, _)| name == l)
        {
            return Err(input(anyhow::anyhow!(
                "unknown linter {l:?} (pkgbuild lint --list shows them)"
            )));
        }
    }
    if args.namespace.is_empty()
        || !args
            .namespace
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return Err(input(anyhow::anyhow!(
            "--namespace {:?}: expected a purl namespace such as wolfi or my-org (letters, digits, . - _)",
            args.namespace
        )));
    }
    args.interactive = crate::sandbox::interactive::requested(args.interactive);
    let archs = resolve_archs(&args.archs)?;
    crate::cli::build_flags::check(&args, archs.len())?;
    let runner = crate::cli::resolve_runner(args.runner, "build")?;
    let mut secret_env = BTreeMap::new();
    for p in &args.env_files {
        secret_env.extend(parse_env_file(p).map_err(input)?);
    }
    let cache_dir = crate::cli::cache_dir(args.cache_dir.as_deref())?;

    // Everything is compiled for every architecture before anything runs,
    // and every broken recipe is reported, not only the first.
    let mut runs = Vec::new();
    for &arch in &archs {
        runs.push(compile_all(&args, arch, runner, &cache_dir, &secret_env)?);
    }
    let (key, key_files) = signing_key(&args)?;
    crate::cli::outdir::ensure_writable("--out-dir", &args.out_dir)?;
    let mut failed = false;
    for mut run in runs {
        for u in &mut run.units {
            u.opts.key_files = key_files.clone();
        }
        if archs.len() > 1 && !args.quiet {
            crate::errln!("==> building for {}", run.arch.apk());
        }
        failed |= build_all(&args, &run, &key);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `--arch` values: apk or Go spellings, comma lists, `host`; default the
/// host's. Each architecture is built in turn.
fn resolve_archs(flags: &[String]) -> anyhow::Result<Vec<Arch>> {
    if flags.is_empty() {
        return Ok(vec![crate::cli::resolve_arch(None)?]);
    }
    let mut out: Vec<Arch> = Vec::new();
    for f in flags {
        let arch = if f == "host" {
            crate::cli::resolve_arch(None)?
        } else {
            crate::cli::resolve_arch(Some(f))?
        };
        if !out.contains(&arch) {
            out.push(arch);
        }
    }
    Ok(out)
}

/// The recipes of one architecture, compiled and ordered.
struct ArchRun {
    arch: Arch,
    units: Vec<Unit>,
    edges: Vec<Vec<multi::Edge>>,
    deps: Vec<Vec<usize>>,
}

fn compile_all(
    args: &Args,
    arch: Arch,
    runner: RunnerKind,
    cache_dir: &Path,
    secret_env: &BTreeMap<String, String>,
) -> anyhow::Result<ArchRun> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    let mut units = Vec::new();
    let mut errors = Vec::new();
    for recipe in &args.recipes {
        match unit(args, recipe, arch, runner, cache_dir, secret_env) {
            Ok(u) => units.push(u),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(recipe_errors(errors, args.recipes.len()));
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

/// Build one architecture's recipes in dependency order; true when a
/// build failed.
fn build_all(args: &Args, run: &ArchRun, key: &crate::apk::sign::SigningKey) -> bool {
    let ArchRun {
        arch,
        units,
        edges,
        deps,
    } = run;
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.debug {
        Verbosity::Debug
    } else {
        Verbosity::Normal
    };

    let preset = decided_before_the_run(units, args, *arch);
    let jobs = match args.jobs {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let to_build = preset.iter().filter(|p| p.is_none()).count();
    if units.len() > 1 && verbosity != Verbosity::Quiet {
        announce(units, edges, deps, &preset, jobs);
    }
    // Builds sharing the terminal tag their messages with the package.
    let tagged = jobs > 1 && to_build > 1;
    let many = units.len() > 1;
    let report = multi::run(deps, preset, jobs, args.keep_going, |i| {
        let u = &units[i];
        let log = if tagged {
            BuildLog::tagged(verbosity, u.name())
        } else {
            BuildLog::new(verbosity)
        };
        match engine::build_plan(&u.opts, &u.plan, key, &log) {
            Ok(summary) => {
                let mut out = std::io::stdout().lock();
                for p in &summary.packages {
                    let _ = writeln!(out, "{}", p.display());
                }
                Ok(())
            }
            Err(e) => {
                if many {
                    crate::errln!("error: {}: {e:#}", u.id);
                } else {
                    crate::errln!("error: {e:#}");
                }
                Err(failure_reason(&e))
            }
        }
    });
    print_summary(units, &report);
    report
        .outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Failed(_)))
}

/// `--signing-key`, else the default key (created once); with the key's
/// files, which must never reach a workspace.
fn signing_key(args: &Args) -> anyhow::Result<(crate::apk::sign::SigningKey, Vec<PathBuf>)> {
    Ok(match &args.signing_key {
        Some(p) => {
            let mut public = p.clone().into_os_string();
            public.push(".pub");
            let files = vec![p.clone(), PathBuf::from(public)];
            let key = crate::apk::sign::SigningKey::load(p).map_err(crate::cli::input_error)?;
            (key, files)
        }
        None => {
            let dir = keys::default_key_dir(env_var).context("no HOME: pass --signing-key")?;
            let k = keys::load_or_create(&dir)?;
            if k.created {
                crate::errln!("created signing key {}", k.private_path.display());
            }
            crate::errln!(
                "signing with {} — to trust it: cp {} /etc/apk/keys/",
                k.private_path.display(),
                k.public_path.display()
            );
            (k.key, vec![k.private_path, k.public_path])
        }
    })
}

/// Recipes skipped before anything runs: not for this architecture, or
/// (`--skip-existing`) with every package file already published.
fn decided_before_the_run(units: &[Unit], args: &Args, arch: Arch) -> Vec<Option<Outcome>> {
    let arch_dir = args.out_dir.join(arch.apk());
    units
        .iter()
        .map(|u| {
            if !u.plan.builds_for_arch {
                let why = engine::skip_reason(&u.plan, arch);
                Some(Outcome::Skipped(Skip::Arch(why)))
            } else if args.skip_existing
                && engine::package_files(&u.plan)
                    .iter()
                    .all(|f| arch_dir.join(f).is_file())
            {
                Some(Outcome::Skipped(Skip::UpToDate))
            } else {
                None
            }
        })
        .collect()
}

/// One recipe, compiled, with the options it builds with.
struct Unit {
    recipe: PathBuf,
    /// `name-version-rN` of the main package.
    id: String,
    opts: BuildOptions,
    plan: Plan,
}

impl Unit {
    fn name(&self) -> &str {
        self.plan.packages.first().map_or("", |p| p.name.as_str())
    }
}

fn unit(
    args: &Args,
    recipe: &Path,
    arch: Arch,
    runner: RunnerKind,
    cache_dir: &Path,
    secret_env: &BTreeMap<String, String>,
) -> anyhow::Result<Unit> {
    let (epoch, _) = epoch::resolve(args.build_date.as_deref(), env_var, recipe)
        .map_err(crate::cli::input_error)?;
    let opts = BuildOptions {
        recipe: recipe.to_path_buf(),
        out_dir: args.out_dir.clone(),
        arch,
        runner,
        source_dir: args.source_dir.clone(),
        cache_dir: cache_dir.to_path_buf(),
        pipeline_dirs: args.pipeline_dirs.clone(),
        build_options: args.build_options.clone(),
        vars_file: args.vars_file.clone(),
        secret_env: secret_env.clone(),
        env_files: args.env_files.clone(),
        key_files: Vec::new(),
        network: args.network,
        keep_workspace: args.keep_workspace || !args.cleanup,
        epoch,
        legacy_sha1_signature: args.legacy_sha1_signature,
        description: None,
        extra: args.env.extra(),
        apk: args.env.apk(cache_dir),
        timeout: args.timeout,
        generate_index: args.generate_index,
        namespace: args.namespace.clone(),
        empty_workspace: args.empty_workspace,
        lint_require: args.lint_require.clone(),
        lint_warn: args.lint_warn.clone(),
        git_commit: args.git_commit.clone(),
        interactive: args.interactive,
        workspace_dir: args.workspace_dir.clone(),
        git_repo_url: args.git_repo_url.clone(),
        license: args.license.clone(),
    };
    let plan = engine::compile_plan(&opts)?;
    let id = plan
        .packages
        .first()
        .map(|m| format!("{}-{}", m.name, m.full_version))
        .unwrap_or_default();
    Ok(Unit {
        recipe: recipe.to_path_buf(),
        id,
        opts,
        plan,
    })
}

/// One recipe's error as it was; several are each printed and summed up.
fn recipe_errors(mut errors: Vec<anyhow::Error>, total: usize) -> anyhow::Error {
    if errors.len() == 1 && total == 1 {
        return errors.remove(0);
    }
    // A bad --build-date or SOURCE_DATE_EPOCH is the same error for every
    // recipe: said once.
    let mut said = std::collections::BTreeSet::new();
    for e in &errors {
        let text = format!("{e:#}");
        if said.insert(text.clone()) {
            crate::errln!("error: {text}");
        }
    }
    crate::cli::input_error(anyhow::anyhow!(
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

/// The plan of the run: order, jobs, and what waits for what.
fn announce(
    units: &[Unit],
    edges: &[Vec<multi::Edge>],
    deps: &[Vec<usize>],
    preset: &[Option<Outcome>],
    jobs: usize,
) {
    let order: Vec<&str> = multi::order(deps)
        .into_iter()
        .filter(|&i| preset[i].is_none())
        .map(|i| units[i].id.as_str())
        .collect();
    crate::errln!(
        "==> {} recipes, {} to build, up to {jobs} at a time, in dependency order: {}",
        units.len(),
        order.len(),
        order.join(", ")
    );
    for (i, e) in edges.iter().enumerate() {
        if preset[i].is_some() || e.is_empty() {
            continue;
        }
        let on: Vec<String> = e
            .iter()
            .map(|e| format!("{} ({})", units[e.on].id, e.entry))
            .collect();
        crate::errln!("==> {} waits for {}", units[i].id, on.join(", "));
    }
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
            let text = format!("{e:#}");
            let line = text.lines().next().unwrap_or("").trim();
            match line.char_indices().nth(160) {
                Some((cut, _)) => format!("{}...", &line[..cut]),
                None => line.to_string(),
            }
        }
    }
}

/// The table that ends every run: what was built, what failed and where,
/// what was skipped and why. Recipes that started come in the order they
/// started, then the rest in the order given.
fn print_summary(units: &[Unit], report: &multi::Report) {
    let mut rows: Vec<usize> = report.started.clone();
    rows.extend((0..units.len()).filter(|i| !report.started.contains(i)));
    let count = |f: fn(&Outcome) -> bool| report.outcomes.iter().filter(|o| f(o)).count();
    let mut text = format!(
        "==> summary: {} built, {} failed, {} skipped\n",
        count(|o| matches!(o, Outcome::Built)),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_))),
    );
    let id_w = units.iter().map(|u| u.id.len()).max().unwrap_or(0);
    let recipe_w = units
        .iter()
        .map(|u| u.recipe.display().to_string().len())
        .max()
        .unwrap_or(0);
    for i in rows {
        let (status, detail) = match &report.outcomes[i] {
            Outcome::Built => ("built", String::new()),
            Outcome::Failed(why) => ("failed", why.clone()),
            Outcome::Skipped(Skip::Arch(why)) => ("skipped", why.clone()),
            Outcome::Skipped(Skip::UpToDate) => (
                "skipped",
                "up to date (every package file is already in the repository)".to_string(),
            ),
            Outcome::Skipped(Skip::DependencyFailed(j)) => {
                ("skipped", format!("dependency failed: {}", units[*j].id))
            }
            Outcome::Skipped(Skip::NotReached) => (
                "skipped",
                "not reached (the run stopped after a failure; --keep-going builds what does not need it)"
                    .to_string(),
            ),
        };
        let line = format!(
            "  {status:<7}  {:<id_w$}  {:<recipe_w$}  {detail}",
            units[i].id,
            units[i].recipe.display().to_string()
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
