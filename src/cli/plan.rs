//! `pkgbuild plan RECIPE... --format json|github-actions|argo`: the build
//! graph for a CI engine (see [`crate::ciplan`]), on stdout or `--output`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::ciplan::{self, emit};
use crate::cli::compile::CompileFlags;
use crate::cli::input_error;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    GithubActions,
    Argo,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipes to plan (order is kept within each wave).
    #[arg(required = true)]
    pub recipes: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Where each job publishes (s3://BUCKET/PREFIX, gs://..., a directory).
    #[arg(long, value_name = "DEST")]
    pub publish: Option<String>,
    /// Repository the jobs also install from (the published repository
    /// over HTTP), so later waves find earlier waves' packages.
    #[arg(long, value_name = "URL")]
    pub repository: Option<String>,
    /// File name of the signing key on the runner (users trust NAME.pub).
    #[arg(long, value_name = "NAME", default_value = "pkgbuild.rsa")]
    pub key_name: String,
    /// Container image with pkgbuild installed (argo).
    #[arg(long, default_value = "pkgbuild:latest")]
    pub image: String,
    /// Extra argument for every job's `pkgbuild build` (repeatable), such
    /// as `--build-arg=--runner --build-arg=host`.
    #[arg(long = "build-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub build_args: Vec<String>,
    /// Write here instead of stdout (atomically).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub flags: CompileFlags,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opts = args.flags.options()?;
    if !crate::publish::plain_arch(&args.key_name.replace(['.', '-'], "_")) {
        return Err(input_error(anyhow::anyhow!(
            "--key-name {:?}: expected a plain file name such as packager.rsa",
            args.key_name
        )));
    }
    let graph =
        ciplan::graph(&args.recipes, &opts, args.publish.as_deref()).map_err(input_error)?;
    let eo = emit::EmitOptions {
        key_name: args.key_name.clone(),
        repository: args.repository.clone(),
        image: args.image.clone(),
        build_args: args.build_args.clone(),
    };
    let text = match args.format {
        Format::Json => emit::json(&graph, &eo),
        Format::GithubActions => emit::github_actions(&graph, &eo),
        Format::Argo => emit::argo(&graph, &eo),
    };
    match &args.output {
        Some(path) => crate::atomic::write(path, 0o644, text.as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?,
        None => crate::term::stdout(&text),
    }
    Ok(ExitCode::SUCCESS)
}
