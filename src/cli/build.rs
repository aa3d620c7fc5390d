//! `pkgbuild build`: flags → `engine::batch::BatchOptions`, a reporter
//! (the terminal, plus the `--json` document when asked), one engine call
//! (`engine::batch::build_recipes`), and its report → the exit code.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::arch::Arch;
use crate::engine::batch::{self, BatchOptions};
use crate::engine::report::{self, JsonReporter, Reporter, TerminalReporter};
use crate::engine::{keys, BuildOptions, Verbosity};
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
    /// (<name>-<version>-r<epoch>.apk) is already in <out-dir>/<arch>/,
    /// unless the input hash recorded there (by an earlier build) differs:
    /// then it is rebuilt, saying why.
    #[arg(long)]
    pub skip_existing: bool,
    /// Skip a recipe whose every package file is already published at
    /// DEST (s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, a directory; as for
    /// `publish`, credentials and endpoint from the environment), unless
    /// the input hash recorded there (`publish --input-hash`) differs.
    #[arg(long, value_name = "DEST")]
    pub skip_published: Option<String>,
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
    /// Print only errors and the produced files (the default signing
    /// key's notice only the first time).
    #[arg(long, short)]
    pub quiet: bool,
    /// Write the results as one JSON document to FILE (`-`: stdout; the
    /// produced files' paths then go to stderr). Format: README, "Results
    /// for CI".
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// When a step fails and stdin is a terminal, open a shell in its
    /// sandbox (same mounts, environment, user; at its working directory);
    /// the build fails as usual once the shell exits.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    #[command(flatten)]
    pub step_limits: crate::cli::step_limits::StepLimitArgs,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// `KEY=VALUE` lines; `#` comments, optional `export ` and quotes.
pub fn parse_env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    // Bounded: an env file that is /dev/zero or huge must not eat memory.
    let text = crate::recipe::read_bounded(path).context("cannot read env file")?;
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
            bail!(
                "{}:{}: invalid variable name {}",
                path.display(),
                i + 1,
                crate::term::quote(k)
            );
        }
        let v = v.trim();
        // The environment of a process cannot hold a NUL; refuse it here,
        // where the line is known, rather than when a step is spawned.
        if v.contains('\0') {
            bail!(
                "{}:{}: {}: value holds a NUL byte",
                path.display(),
                i + 1,
                crate::term::quote(k)
            );
        }
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

    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.debug {
        Verbosity::Debug
    } else {
        Verbosity::Normal
    };
    let json_to_stdout = args.json.as_deref() == Some(Path::new("-"));
    let terminal = TerminalReporter::new(verbosity).stdout_taken(json_to_stdout);
    let json = JsonReporter::new(&terminal);
    let reporter: &dyn Reporter = if args.json.is_some() {
        &json
    } else {
        &terminal
    };
    let mut common = options(&args, runner, &cache_dir, secret_env);
    let (key, key_files) = signing_key(&args)?;
    crate::cli::outdir::ensure_writable("--out-dir", &args.out_dir)?;
    common.key_files = key_files;
    let skip_published = match &args.skip_published {
        Some(d) => {
            let vars: Vec<(String, String)> = std::env::vars().collect();
            Some(crate::publish::Dest::parse(d, None, &vars).map_err(|e| input(e.into()))?)
        }
        None => None,
    };
    let batch = BatchOptions {
        recipes: args.recipes.clone(),
        archs: archs.clone(),
        jobs: args.jobs,
        keep_going: args.keep_going,
        skip_existing: args.skip_existing,
        skip_published,
        build_date: args.build_date.clone(),
        verbosity,
        common,
    };
    let report = batch::build_recipes(&batch, &key, reporter)?;
    if let Some(dest) = &args.json {
        let doc = json.document("build", &archs, report.duration);
        report::json::write(dest, &doc)?;
    }
    Ok(if report.failed() {
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
            // `-q` says it once per key: the marker beside the key
            // remembers that it was said.
            let mut marker = k.private_path.clone().into_os_string();
            marker.push(".noticed");
            let marker = PathBuf::from(marker);
            if !args.quiet || !marker.exists() {
                crate::errln!(
                    "signing with {} — to trust it: cp {} /etc/apk/keys/",
                    k.private_path.display(),
                    k.public_path.display()
                );
                // Best effort: without the marker the notice comes again.
                let _ = crate::atomic::write(&marker, 0o644, b"");
            }
            (k.key, vec![k.private_path, k.public_path])
        }
    })
}

/// What every recipe builds with; the engine sets recipe, arch and epoch.
fn options(
    args: &Args,
    runner: RunnerKind,
    cache_dir: &Path,
    secret_env: BTreeMap<String, String>,
) -> BuildOptions {
    BuildOptions {
        recipe: PathBuf::new(),
        out_dir: args.out_dir.clone(),
        arch: Arch::X86_64,
        runner,
        source_dir: args.source_dir.clone(),
        cache_dir: cache_dir.to_path_buf(),
        pipeline_dirs: args.pipeline_dirs.clone(),
        build_options: args.build_options.clone(),
        vars_file: args.vars_file.clone(),
        secret_env,
        env_files: args.env_files.clone(),
        key_files: Vec::new(),
        network: args.network,
        keep_workspace: args.keep_workspace || !args.cleanup,
        epoch: 0,
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
        limits: args.step_limits.limits(),
    }
}
