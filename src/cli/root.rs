//! `pkgbuild root DIR -r URL... PACKAGE...`: install packages from signed
//! repositories into a fresh root, as `apk add --root DIR --initdb` does.
//!
//! Only flags live here: the keyring, indexes, resolver, cache, checks,
//! unpacked-root templates and install scripts are the hermetic build
//! environment's own (`engine::guest`), so this is exactly the root a
//! hermetic build would run its steps in, minus the build.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, Context};

use crate::cli::input_error;
use crate::engine::{guest, ApkOptions};
use crate::lockdir::LockedDir;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The root to fill; created when missing, refused when not empty.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Packages to install (apk dependency strings: `name`, `name>=1.2`,
    /// `so:libc.so.6`, ...). They become the root's /etc/apk/world.
    #[arg(required = true, value_name = "PACKAGE")]
    pub packages: Vec<String>,
    /// Repository to install from ([@tag ]URL or directory; the index is
    /// <URL>/<arch>/APKINDEX.tar.gz). Repeatable, read in order.
    #[arg(
        short = 'r',
        long = "repository",
        visible_alias = "repository-append",
        required = true,
        value_name = "URL"
    )]
    pub repositories: Vec<String>,
    /// Public key (file or URL) trusted to sign the indexes. Repeatable.
    #[arg(
        short = 'k',
        long = "keyring",
        visible_alias = "keyring-append",
        value_name = "KEY"
    )]
    pub keyring: Vec<String>,
    /// Cache of downloaded indexes and packages (keyed by checksum) and of
    /// unpacked roots. Default: <cache-dir>/apk (~/.cache/pkgbuild/apk).
    #[arg(long, value_name = "DIR")]
    pub apk_cache_dir: Option<PathBuf>,
    /// Download nothing: use the cache and local repositories only.
    #[arg(long)]
    pub offline: bool,
    /// Architecture to install (apk or Go spelling). Default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Also print what was read and installed (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let arch = crate::cli::resolve_arch(args.arch.as_deref())?;
    // Refused before anything is read, so a typo in DIR costs nothing.
    match std::fs::read_dir(&args.dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(input_error(anyhow!(
                    "{}: not empty; `pkgbuild root` only fills a fresh root",
                    args.dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(input_error(anyhow!(
                "{}: cannot use as a root: {e}",
                args.dir.display()
            )))
        }
    }
    // Install scripts run in bubblewrap with the root bound by path.
    let root = std::path::absolute(&args.dir)
        .with_context(|| format!("{}: cannot make absolute", args.dir.display()))?;
    let cache_dir = match &args.apk_cache_dir {
        Some(d) => std::path::absolute(d)
            .with_context(|| format!("{}: cannot make absolute", d.display()))?,
        None => crate::cli::cache_dir(None)?.join("apk"),
    };
    let apk = ApkOptions {
        cache_dir,
        offline: args.offline,
        lockfile: None,
    };
    let client = apk.client()?;
    let request = guest::Request {
        repositories: args.repositories,
        keyring: args.keyring,
        packages: args.packages,
    };
    let scratch = LockedDir::create(&std::env::temp_dir(), "pkgbuild-root-")
        .context("creating a scratch directory for install scripts")?;
    let env = guest::prepare(&guest::Inputs {
        request: &request,
        client: &client,
        out_dir: None,
        arch: arch.apk(),
        own_keys: Vec::new(),
        lock: None,
        templates: &apk.cache_dir.join("roots"),
        root: &root,
        scratch: &scratch.path().join("scripts"),
    })
    .with_context(|| format!("preparing {}", root.display()))?;
    if args.verbose {
        for line in &env.log {
            crate::errln!("{line}");
        }
    }
    crate::outln!(
        "{}: {} packages installed for {} ({} downloaded) in {:.3} s",
        args.dir.display(),
        env.installed.len(),
        arch.apk(),
        client.downloads(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
