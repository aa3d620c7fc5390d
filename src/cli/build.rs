//! `pkgbuild build`: flags → `engine::BuildOptions`, one build per recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::arch::Arch;
use crate::engine::{self, epoch, keys, BuildLog, BuildOptions, Verbosity};
use crate::sandbox::{self, RunnerKind};

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunnerArg {
    /// bubblewrap sandbox: no network, read-only host /usr, private /tmp.
    Bwrap,
    /// No isolation; for machines without bubblewrap.
    Host,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe files to build, in order.
    #[arg(required = true, value_name = "RECIPE")]
    pub recipes: Vec<PathBuf>,
    /// Repository root; packages go to <DIR>/<arch>/.
    #[arg(long, default_value = "packages", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// RSA private key (PEM) that signs packages and index. Default: a
    /// key created once in ~/.config/pkgbuild/keys.
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// Target architecture (apk or Go spelling). Default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
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
    /// KEY=VALUE file whose values reach the steps but never a package.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    let arch = match &args.arch {
        Some(a) => {
            Arch::parse(a).ok_or_else(|| input(anyhow::anyhow!("unknown architecture {a:?}")))?
        }
        None => Arch::host().context("cannot tell the host architecture; pass --arch")?,
    };
    let runner = match args.runner {
        Some(RunnerArg::Bwrap) => RunnerKind::Bwrap,
        Some(RunnerArg::Host) => RunnerKind::Host,
        None if sandbox::bwrap_available() => RunnerKind::Bwrap,
        None => {
            eprintln!("warning: bubblewrap (bwrap) is not installed: build steps run WITHOUT isolation (install bubblewrap, or pass --runner host to silence this)");
            RunnerKind::Host
        }
    };
    engine::check_runner(runner)?;
    let secret_env = match &args.env_file {
        Some(p) => parse_env_file(p).map_err(input)?,
        None => BTreeMap::new(),
    };
    let cache_dir = match &args.cache_dir {
        Some(d) => d.clone(),
        None => env_var("XDG_CACHE_HOME")
            .filter(|v| v.starts_with('/'))
            .map(PathBuf::from)
            .or_else(|| env_var("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|b| b.join("pkgbuild"))
            .context("no HOME: pass --cache-dir")?,
    };
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("{}: cannot create cache directory", cache_dir.display()))?;

    let key = match &args.signing_key {
        Some(p) => crate::apk::sign::SigningKey::load(p)?,
        None => {
            let dir = keys::default_key_dir(env_var).context("no HOME: pass --signing-key")?;
            let k = keys::load_or_create(&dir)?;
            if k.created {
                eprintln!("created signing key {}", k.private_path.display());
            }
            eprintln!(
                "signing with {} — to trust it: cp {} /etc/apk/keys/",
                k.private_path.display(),
                k.public_path.display()
            );
            k.key
        }
    };
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.debug {
        Verbosity::Debug
    } else {
        Verbosity::Normal
    };
    for recipe in &args.recipes {
        let (epoch, _) = epoch::resolve(args.build_date.as_deref(), env_var, recipe)
            .map_err(|e| input(e.into()))?;
        let opts = BuildOptions {
            recipe: recipe.clone(),
            out_dir: args.out_dir.clone(),
            arch,
            runner,
            source_dir: args.source_dir.clone(),
            cache_dir: cache_dir.clone(),
            pipeline_dirs: args.pipeline_dirs.clone(),
            build_options: args.build_options.clone(),
            vars_file: args.vars_file.clone(),
            secret_env: secret_env.clone(),
            env_file: args.env_file.clone(),
            network: args.network,
            keep_workspace: args.keep_workspace,
            epoch,
            legacy_sha1_signature: args.legacy_sha1_signature,
            description: None,
        };
        let log = BuildLog::new(verbosity);
        let summary = engine::build(&opts, &key, &log)?;
        for p in &summary.packages {
            println!("{}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
