//! `pkgbuild index`: write a signed `APKINDEX.tar.gz` for a set of
//! packages, reading only their signature and control members (in
//! parallel), optionally merging into an existing index.
//!
//! With `--keys-dir`, every package's signature must verify against a key
//! there, as `apk index` demands; one that does not is named with the
//! reason and nothing is written, so a repository never indexes a package
//! its users' apk would refuse.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use rayon::prelude::*;

use crate::apk::index::{Index, IndexEntry, IndexError, MAX_DESCRIPTION_LEN};
use crate::apk::read;
use crate::apk::sign::SigningKey;
use crate::apk::verify::{self, VerifyError};
use crate::cli::input_error;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Index file to write.
    #[arg(short = 'o', long = "output", default_value = "APKINDEX.tar.gz")]
    pub output: PathBuf,
    /// Private key (`*.rsa`) to sign the index with; apk refuses unsigned indexes.
    #[arg(long)]
    pub signing_key: Option<PathBuf>,
    /// Keep the records already in the index (OUTPUT, or --source),
    /// replacing those with the same name and version.
    #[arg(short = 'm', long)]
    pub merge: bool,
    /// With --merge: take the existing records from this index instead of OUTPUT.
    #[arg(short = 's', long = "source", value_name = "FILE")]
    pub source: Option<PathBuf>,
    /// Index only packages built for this architecture (`A:` equal to it;
    /// others, noarch included, are left out with a warning), as melange's
    /// `index --arch`.
    #[arg(short = 'a', long = "arch", value_name = "ARCH")]
    pub arch: Option<String>,
    /// Write `A:` as this arch for `noarch` packages (so apk fetches them
    /// from this arch's directory), as `apk index --rewrite-arch`.
    #[arg(long, value_name = "ARCH")]
    pub rewrite_arch: Option<String>,
    /// Repository description (at most 160 bytes).
    #[arg(short = 'd', long)]
    pub description: Option<String>,
    /// Refuse (and write nothing) unless every package's signature verifies
    /// against a public key in DIR, as `apk index` does.
    #[arg(long, value_name = "DIR")]
    pub keys_dir: Option<PathBuf>,
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
    for (flag, value) in [
        ("--arch", &args.arch),
        ("--rewrite-arch", &args.rewrite_arch),
    ] {
        if let Some(a) = value {
            // apk builds download URLs from `A:`; keep it a plain path segment.
            let plain = !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
            if !plain {
                return Err(input_error(anyhow::anyhow!(
                    "{flag} {a:?}: expected an architecture name such as x86_64 or aarch64"
                )));
            }
        }
    }
    let key = args
        .signing_key
        .as_deref()
        .map(SigningKey::load)
        .transpose()
        .map_err(input_error)?;
    if let Some(dir) = &args.keys_dir {
        if !dir.is_dir() {
            return Err(input_error(VerifyError::NoKeysDir(dir.clone())));
        }
    }
    let results: Vec<Result<IndexEntry, Refused>> = args
        .packages
        .par_iter()
        .map(|p| index_entry(p, args.keys_dir.as_deref()))
        .collect();
    let mut entries = Vec::with_capacity(results.len());
    let mut untrusted = 0usize;
    for (path, result) in args.packages.iter().zip(results) {
        match result {
            Ok(e) => match &args.arch {
                Some(want) if &e.info.arch != want => crate::errln!(
                    "warning: {}: {}-{} is built for {}, not {want}: left out of the index",
                    path.display(),
                    e.info.name,
                    e.info.version,
                    e.info.arch
                ),
                _ => entries.push(e),
            },
            Err(Refused::Signature(e)) => {
                crate::errln!("{}: {e}", path.display());
                untrusted += 1;
            }
            Err(Refused::Unreadable(e)) => return Err(e.into()),
        }
    }
    if untrusted > 0 {
        crate::errln!(
            "{untrusted} of {} package(s) failed the signature check; {} not written",
            args.packages.len(),
            args.output.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    // Builds publishing into this directory hold the same lock: without
    // it, two read-merge-writes lose each other's records.
    let dir = match args.output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let _lock = crate::repo::lock_dir(dir, || {
        crate::errln!(
            "waiting for another pkgbuild to release the lock on {}",
            dir.display()
        )
    })?;
    if let Some(name) = args.output.file_name() {
        crate::repo::remove_stale_temps(dir, &name.to_string_lossy());
    }
    let source = args.source.as_deref().unwrap_or(&args.output);
    let mut index = if args.merge && source.exists() {
        Index::read(source).context("reading the index to merge into")?
    } else {
        Index::default()
    };
    if args.description.is_some() {
        index.description = args.description;
    }
    index.merge(entries);
    if key.is_none() {
        crate::errln!(
            "warning: {}: writing an UNSIGNED index (no --signing-key); apk refuses it \
             (UNTRUSTED signature) unless run with --allow-untrusted",
            args.output.display()
        );
    }
    index.write(&args.output, key.as_ref(), args.rewrite_arch.as_deref())?;
    crate::errln!("Index has {} packages", index.entries.len());
    crate::outln!("{}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// Why a package was left out of the index.
enum Refused {
    /// Its signature does not verify against `--keys-dir`.
    Signature(VerifyError),
    Unreadable(IndexError),
}

/// The package's index record, after checking its signature when a keys
/// directory is given (the head is read once for both).
fn index_entry(path: &Path, keys_dir: Option<&Path>) -> Result<IndexEntry, Refused> {
    let unreadable = |source| {
        Refused::Unreadable(IndexError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let Some(keys_dir) = keys_dir else {
        return IndexEntry::from_package(path).map_err(Refused::Unreadable);
    };
    let (head, size) = read::read_head_file(path).map_err(unreadable)?;
    verify::check_signature(&head, keys_dir).map_err(Refused::Signature)?;
    let ctl = read::control_from_head(head, size).map_err(unreadable)?;
    IndexEntry::from_control(path, ctl).map_err(Refused::Unreadable)
}
