//! `pkgbuild sign` and `pkgbuild sign-index`: replace the signature member
//! of packages or indexes in place, keeping every other byte.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::apk::package::SignOptions;
use crate::apk::resign;
use crate::apk::sign::SigningKey;
use crate::cli::input_error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Private key (`*.rsa`); the public key apk looks up is `<key file name>.pub`.
    #[arg(short = 'k', long)]
    pub signing_key: PathBuf,
    /// Add a SHA-1 `.SIGN.RSA.` signature after the RSA256 one, for very old apk-tools.
    #[arg(long)]
    pub legacy_sha1_signature: bool,
    /// Packages to re-sign in place.
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let key = SigningKey::load(&args.signing_key).map_err(input_error)?;
    let opts = SignOptions {
        key: Some(&key),
        legacy_sha1: args.legacy_sha1_signature,
    };
    for p in &args.packages {
        resign::resign_package(p, &opts)?;
        crate::outln!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// Private key (`*.rsa`).
    #[arg(short = 'k', long)]
    pub signing_key: PathBuf,
    /// Replace the signature of an index that is already signed (without
    /// it such an index is left as it is, as melange does).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Index files (`APKINDEX.tar.gz`) to re-sign in place.
    #[arg(required = true)]
    pub indexes: Vec<PathBuf>,
}

pub fn run_index(args: IndexArgs) -> anyhow::Result<ExitCode> {
    let key = SigningKey::load(&args.signing_key).map_err(input_error)?;
    let opts = SignOptions {
        key: Some(&key),
        legacy_sha1: false,
    };
    for p in &args.indexes {
        if !args.force && is_signed(p) {
            crate::errln!(
                "{}: already signed, left as it is (--force re-signs it)",
                p.display()
            );
            continue;
        }
        resign::resign_index(p, &opts)?;
        crate::outln!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `path` reads as an index with a signature member; anything
/// unreadable is left to `resign_index` to report.
fn is_signed(path: &std::path::Path) -> bool {
    crate::apk::index::read_head(path).is_ok_and(|h| h.signed)
}
