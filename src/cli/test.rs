//! `pkgbuild test`: flags → `engine::test::TestOptions`; every recipe is
//! compiled first (a recipe error is exit code 2 before any test runs),
//! then each recipe's packages are tested in turn. One summary line per
//! package on stdout (`PASS`, `FAIL`, `SKIP`); exit code 1 when any failed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::build::{parse_env_file, RunnerArg};
use crate::engine::buildenv::TrustedKey;
use crate::engine::test::{self as t, Outcome, TestOptions};
use crate::engine::{keys, BuildLog, Verbosity};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe files whose packages to test, in order.
    #[arg(required = true, value_name = "RECIPE")]
    pub recipes: Vec<PathBuf>,
    /// Repository root holding the built packages in <DIR>/<arch>/.
    #[arg(long, default_value = "packages", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Architecture of the packages to test (apk or Go spelling). Default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// How steps run. Default: bwrap when installed, else host (with a warning).
    #[arg(long, value_enum)]
    pub runner: Option<RunnerArg>,
    /// Extra directory of pipelines, searched before the built-ins.
    #[arg(long = "pipeline-dir", value_name = "DIR")]
    pub pipeline_dirs: Vec<PathBuf>,
    /// Files copied into each test's workspace (fixtures). Default: the
    /// recipe's folder (or its <package-name>/ subfolder when there is one).
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
    /// Trust the local index when a public key (*.pub) in DIR signed it.
    #[arg(long, value_name = "DIR", conflicts_with = "signing_key")]
    pub keys_dir: Option<PathBuf>,
    /// Trust the local index when this private key (the one `pkgbuild
    /// build --signing-key` used) signed it. Default: the keys in
    /// ~/.config/pkgbuild/keys.
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// KEY=VALUE file whose values reach the steps.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Enable a build option declared in the recipe's `options:`.
    #[arg(long = "build-option", value_name = "NAME")]
    pub build_options: Vec<String>,
    /// Allow network access inside the sandbox.
    #[arg(long)]
    pub network: bool,
    /// Trace every command of the steps (`set -x`) and print debug output.
    #[arg(long)]
    pub debug: bool,
    /// Cache directory: the apk cache's default parent, and the persistent
    /// /var/cache/melange of hermetic tests (default ~/.cache/pkgbuild).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The keys a local index must be signed with: `--keys-dir`, the public
/// half of `--signing-key`, or the default key directory `build` uses.
fn trusted(args: &Args) -> anyhow::Result<Vec<TrustedKey>> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    if let Some(k) = &args.signing_key {
        let key = crate::apk::sign::SigningKey::load(k).map_err(|e| input(e.into()))?;
        return Ok(vec![TrustedKey::of(&key)]);
    }
    let (dir, given) = match &args.keys_dir {
        Some(d) => (d.clone(), true),
        None => (
            keys::default_key_dir(env_var).context("no HOME: pass --keys-dir or --signing-key")?,
            false,
        ),
    };
    if !dir.is_dir() && given {
        return Err(input(anyhow::anyhow!(
            "keys directory {} does not exist",
            dir.display()
        )));
    }
    let keys = if dir.is_dir() {
        t::keys_in_dir(&dir).map_err(input)?
    } else {
        Vec::new()
    };
    if keys.is_empty() {
        return Err(input(anyhow::anyhow!(
            "no public keys (*.pub) in {}: pass --keys-dir DIR or --signing-key KEY (the key the packages were built with)",
            dir.display()
        )));
    }
    Ok(keys)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    let arch = crate::cli::resolve_arch(args.arch.as_deref())?;
    let runner = crate::cli::resolve_runner(args.runner, "test")?;
    let secret_env = match &args.env_file {
        Some(p) => parse_env_file(p).map_err(input)?,
        None => BTreeMap::new(),
    };
    let trusted = trusted(&args)?;
    let cache_dir = crate::cli::cache_dir(args.cache_dir.as_deref())?;
    let apk = args.env.apk(&cache_dir);
    let verbosity = if args.debug {
        Verbosity::Debug
    } else {
        Verbosity::Normal
    };
    let runs = args
        .recipes
        .iter()
        .map(|recipe| {
            let opts = TestOptions {
                recipe: recipe.clone(),
                out_dir: args.out_dir.clone(),
                arch,
                runner,
                source_dir: args.source_dir.clone(),
                pipeline_dirs: args.pipeline_dirs.clone(),
                build_options: args.build_options.clone(),
                secret_env: secret_env.clone(),
                env_file: args.env_file.clone(),
                network: args.network,
                trace: args.debug,
                trusted: trusted.clone(),
                cache_dir: cache_dir.clone(),
                extra: args.env.extra(),
                apk: apk.clone(),
            };
            let compiled = t::compile(&opts)?;
            Ok((opts, compiled))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut failures = Vec::new();
    for (opts, compiled) in runs {
        let log = BuildLog::new(verbosity);
        let results = t::run(&opts, compiled, &log, &mut |r| {
            crate::outln!("{}", r.summary())
        })?;
        failures.extend(results.into_iter().filter_map(|r| match r.outcome {
            Outcome::Fail(why) => Some(why),
            _ => None,
        }));
    }
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for why in &failures {
        crate::errln!("error: {why}");
    }
    Ok(ExitCode::FAILURE)
}
