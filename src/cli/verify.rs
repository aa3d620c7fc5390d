//! `pkgbuild verify`: check packages and indexes as `apk verify` does,
//! plus the layout rules that make `apk add` fail. One line per file,
//! `FILE: OK` or `FILE: <reason>`; exit code 1 when any file fails.

use std::path::PathBuf;
use std::process::ExitCode;

use rayon::prelude::*;

use crate::apk::verify::verify_file_limited;
use crate::cli::input_error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of trusted public keys (`<name>.rsa.pub`).
    #[arg(long)]
    pub keys_dir: PathBuf,
    #[command(flatten)]
    pub limits: crate::cli::limits::LimitArgs,
    /// Packages (`.apk`) and indexes (`APKINDEX.tar.gz`) to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.keys_dir.is_dir() {
        return Err(input_error(anyhow::anyhow!(
            "keys directory {} does not exist",
            args.keys_dir.display()
        )));
    }
    let results: Vec<_> = args
        .files
        .par_iter()
        .map(|f| verify_file_limited(f, &args.keys_dir, args.limits.limits()))
        .collect();
    let mut failed = false;
    for (file, result) in args.files.iter().zip(results) {
        match result {
            Ok(()) => crate::outln!("{}: OK", file.display()),
            Err(e) => {
                failed = true;
                crate::outln!("{}: {e}", file.display());
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
