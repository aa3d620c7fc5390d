//! `pkgbuild keygen`: create an RSA signing key pair the way apk tooling
//! expects it (apk-format.md §3.1): a PKCS#1 PEM private key `<name>.rsa`
//! (mode 0600) and its SubjectPublicKeyInfo PEM `<name>.rsa.pub`, which is
//! the file name apk and apko look up when checking signatures.
//!
//! Existing files are never replaced: losing a signing key silently would
//! orphan every repository signed with it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::apk::sign;
use crate::cli::input_error;

/// Smallest key accepted; smaller RSA keys are breakable.
const MIN_BITS: usize = 2048;
/// Largest key accepted; beyond this generation takes minutes for no gain.
const MAX_BITS: usize = 16384;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Private key path; must end in `.rsa`. The public key is PATH.pub.
    #[arg(default_value = "pkgbuild.rsa")]
    pub path: PathBuf,
    /// RSA modulus size in bits (at least 2048).
    #[arg(long, default_value_t = 4096)]
    pub key_size: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let private = args.path;
    if private.extension().and_then(|e| e.to_str()) != Some("rsa")
        || private.file_stem().is_none_or(|s| s.is_empty())
    {
        return Err(input_error(anyhow::anyhow!(
            "{}: key path must end in `.rsa` (apko only trusts public keys named `*.rsa.pub`)",
            private.display()
        )));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&args.key_size) {
        return Err(input_error(anyhow::anyhow!(
            "--key-size {}: must be between {MIN_BITS} and {MAX_BITS} bits",
            args.key_size
        )));
    }
    let mut public = private.clone().into_os_string();
    public.push(".pub");
    let public = PathBuf::from(public);
    for p in [&private, &public] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(input_error(anyhow::anyhow!(
                "{}: already exists; refusing to overwrite a key",
                p.display()
            )));
        }
    }

    let pair = sign::generate(args.key_size).context("generating the RSA key")?;
    write_new(&private, 0o600, pair.private_pem.as_bytes())?;
    if let Err(e) = write_new(&public, 0o644, pair.public_pem.as_bytes()) {
        // Don't leave half a pair behind: a private key without its public
        // half is confusing and would block a retry.
        let _ = fs::remove_file(&private);
        return Err(e);
    }
    crate::outln!("{}", private.display());
    crate::outln!("{}", public.display());
    Ok(ExitCode::SUCCESS)
}

/// Write a complete file that did not exist: temp file, then a rename that
/// fails instead of replacing a file that appeared meanwhile.
fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let fill = || -> io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".pkgbuild-keygen.")
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(mode))
            .tempfile_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist_noclobber(path).map_err(|e| e.error)?;
        Ok(())
    };
    fill().with_context(|| format!("{}: cannot write key file", path.display()))
}
