//! `pkgbuild compile` (print the compiled plan as JSON; its `host_stages`
//! say what will run on the host, outside the sandbox) and
//! `pkgbuild package-version` (print `name-version-rN`). Flags turn into
//! `plan::CompileOptions`; all the work happens in `plan::compile`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::arch::Arch;
use crate::cli::input_error;
use crate::plan::{self, CompileOptions};

/// Flags shared by every command that compiles a recipe.
#[derive(clap::Args, Debug, Clone)]
pub struct CompileFlags {
    /// Target architecture: apk name (x86_64, aarch64) or Go/OCI name (amd64, arm64).
    #[arg(long, default_value_t = default_arch())]
    pub arch: String,
    /// Directory searched for `uses:` pipelines before the built-ins (repeatable, in order).
    #[arg(long = "pipeline-dir")]
    pub pipeline_dirs: Vec<PathBuf>,
    /// Enable a recipe build option (repeatable).
    #[arg(long = "build-option")]
    pub build_options: Vec<String>,
    /// YAML file of variables merged over the recipe's `vars`.
    #[arg(long = "vars-file")]
    pub vars_file: Option<PathBuf>,
}

fn default_arch() -> String {
    Arch::host().unwrap_or(Arch::X86_64).apk().to_string()
}

impl CompileFlags {
    /// Resolve flags into library options (unknown arch is a usage error).
    pub fn options(&self) -> anyhow::Result<CompileOptions> {
        let arch = Arch::parse(&self.arch).ok_or_else(|| {
            input_error(anyhow::anyhow!(
                "unknown architecture `{}` (use an apk name like x86_64/aarch64 or a Go name like amd64/arm64)",
                self.arch
            ))
        })?;
        Ok(CompileOptions {
            arch,
            pipeline_dirs: self.pipeline_dirs.clone(),
            build_options: self.build_options.clone(),
            vars_file: self.vars_file.clone(),
            ..CompileOptions::default()
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The recipe YAML file.
    pub recipe: PathBuf,
    #[command(flatten)]
    pub flags: CompileFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.flags.options()?;
    let plan = plan::compile(&args.recipe, &opts).map_err(input_error)?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &plan).context("writing plan")?;
    writeln!(out).context("writing plan")?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct PackageVersionArgs {
    /// The recipe YAML file (only the recipe is read; pipelines are not needed).
    pub recipe: PathBuf,
}

pub fn run_package_version(args: PackageVersionArgs) -> anyhow::Result<ExitCode> {
    let pv = plan::package_version(&args.recipe).map_err(input_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{pv}").context("writing output")?;
    Ok(ExitCode::SUCCESS)
}
