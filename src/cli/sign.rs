//! `pkgbuild` (under construction).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct IndexArgs {}

pub fn run_index(_args: IndexArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
