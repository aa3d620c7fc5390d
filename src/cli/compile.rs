//! `pkgbuild` (under construction).

use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}

#[derive(clap::Args, Debug)]
pub struct PackageVersionArgs {}

pub fn run_package_version(_args: PackageVersionArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not implemented yet")
}
