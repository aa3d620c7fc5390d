//! Command-line front end. Each subcommand lives in its own file with a
//! clap `Args` struct and a `run` function that turns flags into library
//! options and calls the library; no packaging logic lives here.
//!
//! Exit codes: 0 success, 1 a build/verification failure, 2 bad input
//! (usage, recipe or plan errors) detected before anything ran.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod build;
mod build_flags;
pub mod compile;
pub mod docs;
pub mod duration;
pub mod image;
pub mod index;
pub mod keygen;
pub mod limits;
pub mod lint;
pub mod lock;
pub mod outdir;
pub mod pack;
pub mod plan;
pub mod publish;
pub mod rebuild;
pub mod root;
pub mod sign;
pub mod step_limits;
pub mod test;
pub mod verify;

#[derive(Parser, Debug)]
#[command(
    name = "pkgbuild",
    version = crate::build_info::LONG_VERSION,
    about = "Build signed Alpine (.apk) packages from YAML recipes"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build recipes into signed packages in a local repository.
    Build(Box<build::Args>),
    /// Rebuild packages from the recipe they carry and report whether the
    /// result is byte-identical (and what differs when not).
    Rebuild(Box<rebuild::Args>),
    /// Run recipes' `test:` pipelines against the packages built earlier.
    Test(test::Args),
    /// Compile a recipe into its resolved build plan (JSON on stdout).
    Compile(compile::Args),
    /// Print `name-version-rN` of a recipe's main package.
    PackageVersion(compile::PackageVersionArgs),
    /// Build an OCI image from apk repositories (apko's configuration schema).
    Image(image::Args),
    /// Resolve recipes' build environments into <recipe>.lock.json files.
    Lock(lock::Args),
    /// Install packages from signed repositories into a fresh root, as
    /// `apk add --root DIR --initdb` does.
    Root(root::Args),
    /// Check recipes (and finished .apk files) without building.
    Lint(lint::Args),
    /// Create an RSA signing key pair.
    Keygen(keygen::Args),
    /// Write a signed APKINDEX.tar.gz for a set of packages.
    Index(index::Args),
    /// Emit the multi-recipe build graph for a CI engine (JSON, GitHub
    /// Actions workflow, Argo Workflow).
    Plan(plan::Args),
    /// Upload a repository to object storage (S3, GCS) or a directory and
    /// merge it into the signed index there; --reconcile rebuilds indexes.
    Publish(publish::Args),
    /// Re-sign packages in place.
    Sign(sign::Args),
    /// Re-sign an APKINDEX.tar.gz in place.
    SignIndex(sign::IndexArgs),
    /// Check signatures and integrity of packages and indexes.
    Verify(verify::Args),
    /// Print shell completions (bash, zsh or fish) on stdout.
    Completion(docs::CompletionArgs),
    /// Write man pages for pkgbuild and every subcommand into DIR.
    Man(docs::ManArgs),
    /// Print the version and the git commit and date it was built from.
    Version,
    /// Package a staged directory directly (benchmark/debug aid).
    #[command(hide = true)]
    Pack(pack::Args),
}

pub use crate::error::{input_error, InputError};

/// Where a build environment's packages come from, beyond the recipe
/// (melange's flags), shared by `build`, `test` and `lock`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EnvArgs {
    /// Also install from this repository ([@tag ]URL or directory; the
    /// index is <URL>/<arch>/APKINDEX.tar.gz). Naming any repository, here
    /// or in the recipe, makes the build hermetic.
    #[arg(
        short = 'r',
        long = "repository-append",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub repositories: Vec<String>,
    /// Also trust this public key (file or URL) for repository indexes.
    #[arg(
        short = 'k',
        long = "keyring-append",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub keyring: Vec<String>,
    /// Also install this package (an apk dependency string; melange's
    /// `test` spells it `--test-package-append`).
    #[arg(
        long = "package-append",
        visible_alias = "test-package-append",
        value_name = "PKG",
        value_delimiter = ','
    )]
    pub packages: Vec<String>,
    /// Cache of downloaded indexes and packages (keyed by checksum) and of
    /// unpacked roots. Default: <cache-dir>/apk.
    #[arg(long, value_name = "DIR")]
    pub apk_cache_dir: Option<PathBuf>,
    /// Download nothing: use the cache and local repositories only.
    #[arg(long)]
    pub offline: bool,
    /// Install exactly what this lock file names. Default:
    /// <recipe>.lock.json beside the recipe, when it exists.
    #[arg(long, value_name = "FILE")]
    pub lockfile: Option<PathBuf>,
}

impl EnvArgs {
    pub fn extra(&self) -> crate::engine::ExtraContents {
        crate::engine::ExtraContents {
            repositories: self.repositories.clone(),
            keyring: self.keyring.clone(),
            packages: self.packages.clone(),
        }
    }

    pub fn apk(&self, cache_dir: &std::path::Path) -> crate::engine::ApkOptions {
        crate::engine::ApkOptions {
            cache_dir: self
                .apk_cache_dir
                .clone()
                .unwrap_or_else(|| cache_dir.join("apk")),
            offline: self.offline,
            lockfile: self.lockfile.clone(),
        }
    }
}

/// `--cache-dir`, or `$XDG_CACHE_HOME/pkgbuild`, or `~/.cache/pkgbuild`;
/// created.
pub(crate) fn cache_dir(flag: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    use anyhow::Context;
    let var = |k: &str| std::env::var(k).ok();
    let dir = match flag {
        Some(d) => d.to_path_buf(),
        None => var("XDG_CACHE_HOME")
            .filter(|v| v.starts_with('/'))
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| std::path::Path::new(&h).join(".cache")))
            .map(|b| b.join("pkgbuild"))
            .context("no HOME: pass --cache-dir")?,
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("{}: cannot create cache directory", dir.display()))?;
    Ok(dir)
}

/// `--arch`, or the host's architecture.
pub(crate) fn resolve_arch(flag: Option<&str>) -> anyhow::Result<crate::arch::Arch> {
    use anyhow::Context;
    match flag {
        Some(a) => crate::arch::Arch::parse(a)
            .ok_or_else(|| input_error(anyhow::anyhow!("unknown architecture {a:?}"))),
        None => crate::arch::Arch::host().context("cannot tell the host architecture; pass --arch"),
    }
}

/// `--runner`, or bubblewrap when installed and the host runner (with a
/// warning naming what runs unisolated) when not.
pub(crate) fn resolve_runner(
    flag: Option<build::RunnerArg>,
    what: &str,
) -> anyhow::Result<crate::sandbox::RunnerKind> {
    use crate::sandbox::{self, RunnerKind};
    let runner = match flag {
        Some(build::RunnerArg::Bwrap) => RunnerKind::Bwrap,
        Some(build::RunnerArg::Host) => RunnerKind::Host,
        Some(other) => {
            let name = format!("{other:?}").to_lowercase();
            return Err(input_error(anyhow::anyhow!(
                "--runner {name} is melange's and is not supported: pkgbuild runs steps with bubblewrap (`--runner bwrap`, also spelled `bubblewrap`), which isolates like a container without a daemon; for other architectures register qemu-user with binfmt_misc and keep bwrap; `--runner host` runs without isolation"
            )));
        }
        None if sandbox::bwrap_available() => RunnerKind::Bwrap,
        None => {
            crate::errln!("warning: bubblewrap (bwrap) is not installed: {what} steps run WITHOUT isolation (install bubblewrap, or pass --runner host to silence this)");
            RunnerKind::Host
        }
    };
    crate::engine::check_runner(runner)?;
    Ok(runner)
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            crate::errln!("error: {}", crate::error::chain(&err));
            if crate::error::is_input_error(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Build(a) => build::run(*a),
        Command::Test(a) => test::run(a),
        Command::Rebuild(a) => rebuild::run(*a),
        Command::Compile(a) => compile::run(a),
        Command::PackageVersion(a) => compile::run_package_version(a),
        Command::Lint(a) => lint::run(a),
        Command::Image(a) => image::run(a),
        Command::Lock(a) => lock::run(a),
        Command::Root(a) => root::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Index(a) => index::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Publish(a) => publish::run(a),
        Command::Sign(a) => sign::run(a),
        Command::SignIndex(a) => sign::run_index(a),
        Command::Verify(a) => verify::run(a),
        Command::Completion(a) => docs::run_completion(a),
        Command::Man(a) => docs::run_man(a),
        Command::Version => docs::run_version(),
        Command::Pack(a) => pack::run(a),
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    // serde_json wraps the write error it met without exposing it as a
    // source.
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
    })
}
