//! `pkgbuild pack` (hidden): package an already staged directory as one
//! `.apk`, without a recipe. It exists for the packaging benchmark
//! (`bench/package.sh`) and for debugging the writer in isolation.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::apk::package::{self, PackageSpec, SignOptions};
use crate::apk::pkginfo::PkgInfo;
use crate::apk::sign::SigningKey;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Staged tree whose contents become the package data.
    #[arg(long)]
    pub root: PathBuf,
    #[arg(long)]
    pub name: String,
    /// Full version including `-rN`.
    #[arg(long)]
    pub version: String,
    #[arg(long, default_value = "x86_64")]
    pub arch: String,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Private key (`*.rsa`); unsigned when absent.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Compression threads (default: all cores). Output does not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// mtime of every entry.
    #[arg(long, env = "SOURCE_DATE_EPOCH", default_value_t = 0)]
    pub mtime: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = args
        .key
        .as_deref()
        .map(SigningKey::load)
        .transpose()
        .map_err(crate::cli::input_error)?;
    let spec = PackageSpec {
        root: args.root,
        info: PkgInfo {
            name: args.name,
            version: args.version,
            arch: args.arch,
            ..PkgInfo::default()
        },
        mtime: args.mtime,
        ..PackageSpec::default()
    };
    let sign = SignOptions {
        key: key.as_ref(),
        legacy_sha1: false,
    };
    let threads = args.threads.unwrap_or_else(package::default_threads);
    let written = package::write_package_with_threads(&spec, &sign, &args.out, threads)
        .context("writing the package")?;
    for w in &written.warnings {
        crate::errln!("warning: {w}");
    }
    crate::outln!("{}", written.path.display());
    Ok(ExitCode::SUCCESS)
}
