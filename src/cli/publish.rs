//! `pkgbuild publish REPO DEST` and `pkgbuild publish --reconcile DEST`:
//! flags to [`crate::publish`] options, progress lines on stderr, the
//! summary on stderr and, with `--json`, in a file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::apk::sign::SigningKey;
use crate::cli::input_error;
use crate::publish::{self, reconcile, CasPolicy, Dest, Event, PublishError, PublishOptions};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The local repository (as `build` writes it: <REPO>/<arch>/*.apk),
    /// then the destination: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX,
    /// file:///DIR or a directory. With --reconcile, only DEST.
    #[arg(value_name = "REPO DEST", required = true, num_args = 1..=2)]
    pub paths: Vec<String>,
    /// Private key (`*.rsa`) that signed the packages and signs the index.
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// Publish only this architecture (repeatable). Default: every
    /// <arch>/ directory of REPO (with --reconcile: of DEST).
    #[arg(long = "arch", value_name = "ARCH")]
    pub arches: Vec<String>,
    /// S3 (or GCS) endpoint URL, for S3-compatible services; an http://
    /// URL is used as given. Default: AWS_ENDPOINT_URL, else AWS.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Check everything and report what would be uploaded; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Rebuild each arch's index at DEST from a listing of its packages.
    #[arg(long)]
    pub reconcile: bool,
    /// Record NAME=sha256:HEX (a recipe and its `pkgbuild plan` input
    /// hash) at DEST once everything is published (repeatable).
    #[arg(long = "input-hash", value_name = "NAME=HASH")]
    pub input_hashes: Vec<String>,
    /// Only check: exit 0 when DEST records NAME=HASH for every --arch
    /// (the recipe is published from the same inputs), 1 otherwise.
    #[arg(long, value_name = "NAME=HASH", conflicts_with_all = ["reconcile", "input_hashes", "dry_run"])]
    pub check_input: Option<String>,
    /// Packages uploaded at once (each is held in memory while it goes
    /// up, so this also bounds memory).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Print a line per package (default: every package up to 50, then
    /// every 5%).
    #[arg(short, long)]
    pub verbose: bool,
}

fn wrap(e: PublishError) -> anyhow::Error {
    if e.is_input() {
        input_error(e)
    } else {
        e.into()
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let only_dest = args.reconcile || args.check_input.is_some();
    let (repo, dest) = match (only_dest, args.paths.as_slice()) {
        (true, [dest]) => (None, dest.clone()),
        (false, [repo, dest]) => (Some(PathBuf::from(repo)), dest.clone()),
        (true, _) => {
            return Err(input_error(anyhow::anyhow!(
                "publish --reconcile and --check-input take only DEST"
            )))
        }
        (false, _) => {
            return Err(input_error(anyhow::anyhow!(
                "publish needs REPO and DEST (or --reconcile DEST)"
            )))
        }
    };
    let inputs = args
        .input_hashes
        .iter()
        .map(|v| publish::parse_input(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| input_error(anyhow::anyhow!("--input-hash {e}")))?;
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let dest = Dest::parse(&dest, args.endpoint.as_deref(), &vars).map_err(wrap)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the I/O runtime")?;
    let cas = CasPolicy::default();
    if let Some(check) = &args.check_input {
        let (name, hash) = publish::parse_input(check)
            .map_err(|e| input_error(anyhow::anyhow!("--check-input {e}")))?;
        if args.arches.is_empty() {
            return Err(input_error(anyhow::anyhow!("--check-input needs --arch")));
        }
        for arch in &args.arches {
            let current = runtime
                .block_on(publish::check_input(&dest, arch, &name, &hash))
                .map_err(wrap)?;
            if !current {
                crate::errln!(
                    "{}: {name} for {arch} is not published from {hash}",
                    dest.display()
                );
                return Ok(ExitCode::from(1));
            }
        }
        crate::errln!("{}: {name} is published from {hash}", dest.display());
        return Ok(ExitCode::SUCCESS);
    }
    let key = SigningKey::load(
        args.signing_key
            .as_deref()
            .ok_or_else(|| input_error(anyhow::anyhow!("--signing-key is required")))?,
    )
    .map_err(input_error)?;
    if let Some(repo) = repo {
        let opts = PublishOptions {
            repo,
            arches: args.arches.clone(),
            key: &key,
            dry_run: args.dry_run,
            jobs: args.jobs.into(),
            cas,
            inputs,
        };
        let verbose = args.verbose;
        let progress = move |e: Event<'_>| report(&e, verbose);
        let summary = runtime
            .block_on(publish::publish(&dest, &opts, &progress))
            .map_err(wrap)?;
        let verb = if summary.dry_run {
            "would upload"
        } else {
            "uploaded"
        };
        crate::errln!(
            "{}: {verb} {} ({} bytes), {} already present, {} refused, {} index retries",
            summary.dest,
            summary.uploaded.len(),
            summary.bytes_uploaded,
            summary.present.len(),
            summary.refused.len(),
            summary.index_retries
        );
        for r in &summary.refused {
            crate::errln!("refused: {}: {}", r.url, r.reason);
        }
        write_json(args.json.as_deref(), &summary)?;
        return Ok(if summary.refused.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let summary = runtime
        .block_on(reconcile::reconcile(
            &dest,
            &args.arches,
            &key,
            args.dry_run,
            args.jobs.into(),
            &cas,
        ))
        .map_err(wrap)?;
    for a in &summary.arches {
        let verb = if summary.dry_run {
            "would index"
        } else {
            "indexed"
        };
        crate::errln!(
            "{}: {verb} {} package(s), {} retries",
            a.url,
            a.entries,
            a.retries
        );
    }
    for f in &summary.failed {
        crate::errln!("left out: {}: {}", f.url, f.reason);
    }
    write_json(args.json.as_deref(), &summary)?;
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn report(e: &Event<'_>, verbose: bool) {
    // Every line up to 50 packages; past that every 5% unless --verbose,
    // so a 2,000-package publish does not drown the log.
    let shown = |done: usize, total: usize| {
        verbose || total <= 50 || done == total || done.is_multiple_of((total / 20).max(1))
    };
    match e {
        Event::Uploaded {
            url,
            bytes,
            done,
            total,
        } if shown(*done, *total) => {
            crate::errln!("[{done}/{total}] uploaded {url} ({bytes} bytes)")
        }
        Event::Present { url, done, total } if shown(*done, *total) => {
            crate::errln!("[{done}/{total}] already present {url}")
        }
        Event::Refused { url, reason } => crate::errln!("refused {url}: {reason}"),
        Event::Merging { url, entries } => {
            crate::errln!("merging {entries} record(s) into {url}")
        }
        Event::Merged { url, outcome } => crate::errln!(
            "{url}: {} ({} records, {} retries)",
            if outcome.written {
                "written"
            } else {
                "already up to date"
            },
            outcome.entries,
            outcome.retries
        ),
        _ => {}
    }
}

fn write_json<T: serde::Serialize>(
    path: Option<&std::path::Path>,
    value: &T,
) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    crate::atomic::write(path, 0o644, text.as_bytes())
        .with_context(|| format!("{}: cannot write the JSON summary", path.display()))
}
