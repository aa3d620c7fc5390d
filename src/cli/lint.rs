//! `pkgbuild lint`: check recipes without building. Each recipe is fully
//! compiled (keys, names, versions, pipelines, inputs, substitutions,
//! conditions); every failure is printed as `file:line:col: message` and
//! the exit code is 2 if any recipe failed. Package linters (on built
//! `.apk` files) are wired in separately.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::compile::CompileFlags;
use crate::plan;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe YAML files to check.
    #[arg(required = true)]
    pub recipes: Vec<PathBuf>,
    #[command(flatten)]
    pub flags: CompileFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.flags.options()?;
    let mut failed = 0usize;
    for r in &args.recipes {
        if let Err(e) = plan::compile(r, &opts) {
            eprintln!("{e}");
            failed += 1;
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} recipe(s) failed the checks",
            args.recipes.len()
        );
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
