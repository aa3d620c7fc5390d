//! `pkgbuild image CONFIG.yaml --out IMAGE.tar`: an OCI image (layout in a
//! tar) from apk repositories, configured in apko's schema. Stdout gets the
//! written path; progress, the digest and security findings go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;

use crate::arch::Arch;
use crate::cli::{input_error, EnvArgs};
use crate::image::{self, config};
use crate::{errln, outln};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image configuration (apko's schema).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Where to write the image: an OCI layout in a tar (`oci-archive`).
    #[arg(long, short = 'o', value_name = "IMAGE.tar")]
    pub out: PathBuf,
    /// Architectures to build (apk or OCI spelling; repeatable). Default:
    /// the config's `archs`, else the host's.
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<String>,
    /// Write an SPDX 2.3 SBOM per architecture here (`sbom-<arch>.spdx.json`).
    #[arg(long, value_name = "DIR")]
    pub sbom_dir: Option<PathBuf>,
    /// The image's name, recorded as `org.opencontainers.image.ref.name`
    /// (default `latest`).
    #[arg(long, value_name = "NAME:TAG")]
    pub tag: Option<String>,
    /// Make the security findings (runs as root, a shell or package manager
    /// nobody asked for) errors.
    #[arg(long)]
    pub strict: bool,
    /// The image's timestamp: seconds or YYYY-MM-DD[THH:MM:SSZ]. Default
    /// SOURCE_DATE_EPOCH, else the config's last git commit, else 0.
    #[arg(long, value_name = "DATE")]
    pub build_date: Option<String>,
    /// Download cache (default ~/.cache/pkgbuild).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub env: EnvArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let cfg = config::load(&args.config).map_err(input_error)?;
    let archs: Vec<Arch> = args
        .archs
        .iter()
        .map(|a| crate::cli::resolve_arch(Some(a)))
        .collect::<anyhow::Result<_>>()?;
    if let Some(t) = &args.tag {
        if t.is_empty() || t.contains(char::is_whitespace) {
            return Err(input_error(anyhow!("--tag {t:?}: expected NAME:TAG")));
        }
    }
    let (epoch, _) = crate::engine::epoch::resolve(
        args.build_date.as_deref(),
        |k| std::env::var(k).ok(),
        &args.config,
    )
    .map_err(input_error)?;
    let cache_dir = crate::cli::cache_dir(args.cache_dir.as_deref())?;
    let opts = image::Options {
        archs,
        out: args.out.clone(),
        extra: args.env.extra(),
        apk: args.env.apk(&cache_dir),
        sbom_dir: args.sbom_dir.clone(),
        tag: args.tag.clone(),
        strict: args.strict,
        epoch,
    };
    let outcome = image::build(&cfg, &opts, &mut |l| errln!("{l}"))?;
    for w in &outcome.warnings {
        errln!("warning: {w}");
    }
    for a in &outcome.archs {
        errln!(
            "{}: manifest {} ({} packages, layer {} bytes)",
            a.arch.apk(),
            a.manifest,
            a.packages,
            a.layer_size
        );
        if let Some(s) = &a.sbom {
            errln!("{}: SBOM {}", a.arch.apk(), s.display());
        }
    }
    errln!("image {}", outcome.digest);
    outln!("{}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
