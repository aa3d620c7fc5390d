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
use crate::engine::report::{self, JsonReporter, Reporter, TerminalReporter};
use crate::engine::test::{self as t, Outcome, TestOptions};
use crate::engine::{keys, BuildLog, Verbosity};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe files whose packages to test, in order. As in melange,
    /// `test RECIPE PACKAGE` (one recipe, then a name that is not a file)
    /// tests PACKAGE, taken from the repositories, with the recipe's main
    /// test block.
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
    /// Extra directory of pipelines, searched before the built-ins
    /// (repeatable; melange's `--pipeline-dirs` takes a comma list).
    #[arg(
        long = "pipeline-dir",
        visible_alias = "pipeline-dirs",
        value_name = "DIR",
        value_delimiter = ','
    )]
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
    /// KEY=VALUE file whose values reach the steps (repeatable; a later
    /// file wins).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable a build option declared in the recipe's `options:` (also
    /// melange's `--test-option`).
    #[arg(
        long = "build-option",
        visible_alias = "test-option",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub build_options: Vec<String>,
    /// Kill a package's test (with everything it started) after this
    /// long: 90s, 45m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration::parse)]
    pub timeout: Option<std::time::Duration>,
    /// Allow network access inside the sandbox.
    #[arg(long)]
    pub network: bool,
    /// Trace every command of the steps (`set -x`) and print debug output.
    #[arg(long)]
    pub debug: bool,
    /// Write the results as one JSON document to FILE (`-`: stdout; the
    /// PASS/FAIL/SKIP lines then go to stderr).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// When a test step fails and stdin is a terminal, open a shell in its
    /// sandbox at its working directory; the test fails as usual once the
    /// shell exits.
    #[arg(long, short = 'i')]
    pub interactive: bool,
    /// Cache directory: the apk cache's default parent, and the persistent
    /// /var/cache/melange of hermetic tests (default ~/.cache/pkgbuild).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
    #[command(flatten)]
    pub step_limits: crate::cli::step_limits::StepLimitArgs,
}

fn env_var(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The keys a local index must be signed with: `--keys-dir`, the public
/// half of `--signing-key`, or the default key directory `build` uses.
fn trusted(args: &Args) -> anyhow::Result<Vec<TrustedKey>> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    // melange's harness trusts the output repository with `-k KEY.pub`.
    let mut appended = Vec::new();
    for k in &args.env.keyring {
        let spec = k.strip_prefix("file://").unwrap_or(k);
        if !spec.contains("://") {
            appended.push(
                TrustedKey::from_file(std::path::Path::new(spec)).map_err(|e| input(e.into()))?,
            );
        }
    }
    if let Some(k) = &args.signing_key {
        let key = crate::apk::sign::SigningKey::load(k).map_err(|e| input(e.into()))?;
        appended.push(TrustedKey::of(&key));
        return Ok(appended);
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
    let mut keys = if dir.is_dir() {
        t::keys_in_dir(&dir).map_err(input)?
    } else {
        Vec::new()
    };
    keys.extend(appended);
    if keys.is_empty() {
        return Err(input(anyhow::anyhow!(
            "no public keys (*.pub) in {}: pass --keys-dir DIR, --signing-key KEY (the key the packages were built with) or -k KEY.pub",
            dir.display()
        )));
    }
    Ok(keys)
}

pub fn run(mut args: Args) -> anyhow::Result<ExitCode> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    let package = split_package(&mut args.recipes);
    let arch = crate::cli::resolve_arch(args.arch.as_deref())?;
    let runner = crate::cli::resolve_runner(args.runner, "test")?;
    let interactive = crate::sandbox::interactive::requested(args.interactive);
    let mut secret_env = BTreeMap::new();
    for p in &args.env_files {
        secret_env.extend(parse_env_file(p).map_err(input)?);
    }
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
                env_files: args.env_files.clone(),
                network: args.network,
                trace: args.debug,
                trusted: trusted.clone(),
                cache_dir: cache_dir.clone(),
                extra: args.env.extra(),
                apk: apk.clone(),
                package: package.clone(),
                timeout: args.timeout,
                interactive,
                limits: args.step_limits.limits(),
            };
            let compiled = t::compile(&opts)?;
            Ok((opts, compiled))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = std::time::Instant::now();
    let terminal = TerminalReporter::new(verbosity)
        .stdout_taken(args.json.as_deref() == Some(std::path::Path::new("-")));
    let json = JsonReporter::new(&terminal);
    let reporter: &dyn Reporter = if args.json.is_some() {
        &json
    } else {
        &terminal
    };
    let mut failures = Vec::new();
    for (opts, compiled) in runs {
        let log = BuildLog::with_reporter(reporter, verbosity, None);
        let results = t::run(&opts, compiled, &log, &mut |r| {
            reporter.test_result(&opts.recipe, arch, r)
        })?;
        failures.extend(results.into_iter().filter_map(|r| match r.outcome {
            Outcome::Fail(why) => Some(why),
            _ => None,
        }));
    }
    if let Some(dest) = &args.json {
        report::json::write(dest, &json.document("test", &[arch], started.elapsed()))?;
    }
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for why in &failures {
        crate::errln!("error: {why}");
    }
    Ok(ExitCode::FAILURE)
}

/// melange's `test RECIPE PACKAGE`: a second argument that is not a file
/// and does not look like one names the package to test.
fn split_package(recipes: &mut Vec<PathBuf>) -> Option<String> {
    if recipes.len() != 2 {
        return None;
    }
    let second = &recipes[1];
    let looks_like_recipe = second.is_file()
        || second
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml");
    if looks_like_recipe {
        return None;
    }
    recipes.pop().map(|p| p.to_string_lossy().into_owned())
}
