//! `pkgbuild index`: write a signed `APKINDEX.tar.gz` for a set of
//! packages, reading only their signature and control members (in
//! parallel), optionally merging into an existing index.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use rayon::prelude::*;

use crate::apk::index::{Index, IndexEntry, MAX_DESCRIPTION_LEN};
use crate::apk::sign::SigningKey;
use crate::cli::input_error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Index file to write.
    #[arg(short = 'o', long = "output", default_value = "APKINDEX.tar.gz")]
    pub output: PathBuf,
    /// Private key (`*.rsa`) to sign the index with; apk refuses unsigned indexes.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Keep the records already in OUTPUT, replacing those with the same name and version.
    #[arg(long)]
    pub merge: bool,
    /// Write `A:` as this arch for `noarch` packages (so apk fetches them from this arch's directory).
    #[arg(long)]
    pub arch: Option<String>,
    /// Repository description (at most 160 bytes).
    #[arg(short = 'd', long)]
    pub description: Option<String>,
    /// Packages to index.
    #[arg(required = true)]
    pub packages: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(d) = &args.description {
        if d.len() > MAX_DESCRIPTION_LEN {
            return Err(input_error(anyhow::anyhow!(
                "--description is {} bytes; apk3 ignores descriptions longer than {MAX_DESCRIPTION_LEN} bytes",
                d.len()
            )));
        }
    }
    if let Some(a) = &args.arch {
        // apk builds download URLs from `A:`; keep it a plain path segment.
        let plain = !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if !plain {
            return Err(input_error(anyhow::anyhow!(
                "--arch {a:?}: expected an architecture name such as x86_64 or aarch64"
            )));
        }
    }
    let key = args
        .signing_key
        .as_deref()
        .map(SigningKey::load)
        .transpose()
        .map_err(input_error)?;
    let entries = args
        .packages
        .par_iter()
        .map(|p| IndexEntry::from_package(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut index = if args.merge && args.output.exists() {
        Index::read(&args.output).context("reading the index to merge into")?
    } else {
        Index::default()
    };
    if args.description.is_some() {
        index.description = args.description;
    }
    index.merge(entries);
    if key.is_none() {
        eprintln!(
            "warning: {}: writing an UNSIGNED index (no --signing-key); apk refuses it \
             (UNTRUSTED signature) unless run with --allow-untrusted",
            args.output.display()
        );
    }
    index.write(&args.output, key.as_ref(), args.arch.as_deref())?;
    eprintln!("Index has {} packages", index.entries.len());
    println!("{}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
