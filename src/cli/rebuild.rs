//! `pkgbuild rebuild APK...`: the reproducibility check. Each package is
//! built again from the recipe it carries (`.melange.yaml`), for its
//! architecture, with its `builddate` as SOURCE_DATE_EPOCH and its
//! `commit`, into a separate repository, and compared with the original:
//! `identical`, or `differs` with every differing file and `.PKGINFO`
//! field. Packages of one build (same recipe, architecture, date and
//! commit) are rebuilt once.
//!
//! Exit codes: 0 all identical, 1 a difference or a failed rebuild, 2 bad
//! input (not a package, no embedded recipe, unusable key or out-dir).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::apk::diff::{self, Difference};
use crate::engine::rebuild::{embedded, Embedded};
use crate::engine::{self, BuildLog, BuildOptions, Verbosity};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Packages to rebuild and compare (each must carry .melange.yaml).
    #[arg(value_name = "APK", required = true)]
    pub apks: Vec<PathBuf>,
    /// RSA private key (PEM) to sign the rebuild with: the one that signed
    /// the originals, for a byte-identical result.
    #[arg(long, value_name = "KEY")]
    pub signing_key: PathBuf,
    /// Files copied into the workspace that the recipe does not fetch
    /// (for `build`, the recipe's folder). Default: none.
    #[arg(long, value_name = "DIR")]
    pub source_dir: Option<PathBuf>,
    /// Keep the rebuilt packages (and build logs) in this repository.
    /// Default: a temporary directory, removed afterwards. Never the
    /// originals' repository.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Architecture to rebuild `noarch` packages on. Default: the host's.
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// How steps run. Default: bwrap when installed, else host (with a warning).
    #[arg(long, value_enum)]
    pub runner: Option<crate::cli::build::RunnerArg>,
    /// Download cache, keyed by checksum. Default: ~/.cache/pkgbuild.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Extra directory of pipelines, searched before the built-ins.
    #[arg(long = "pipeline-dir", value_name = "DIR")]
    pub pipeline_dirs: Vec<PathBuf>,
    /// KEY=VALUE file whose values reach the steps but never a package
    /// (repeatable; a later file wins).
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Distribution namespace in the SBOM's package URLs, as the original
    /// build was given it.
    #[arg(long, value_name = "NS", default_value = "local")]
    pub namespace: String,
    /// The recipe repository's URL, as the original build was given it
    /// (its SBOM records it).
    #[arg(long, value_name = "URL")]
    pub git_repo_url: Option<String>,
    /// The recipe's own licence, as the original build was given it.
    #[arg(long, value_name = "SPDX")]
    pub license: Option<String>,
    /// Allow network access inside the sandbox.
    #[arg(long)]
    pub network: bool,
    /// Keep the workspace after the build and print its path.
    #[arg(long)]
    pub keep_workspace: bool,
    /// Kill a rebuild (with every process it started) after this long.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::duration::parse)]
    pub timeout: Option<std::time::Duration>,
    /// Print debug output.
    #[arg(long)]
    pub debug: bool,
    /// Print only errors and the verdicts.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub env: crate::cli::EnvArgs,
}

/// The packages of one original build, rebuilt together.
struct Group {
    first: Embedded,
    members: Vec<(PathBuf, Embedded)>,
}

/// What became of one package.
enum Verdict {
    Identical,
    Differs(Vec<Difference>),
    Failed(String),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let input = |e: anyhow::Error| crate::cli::input_error(e);
    let key =
        crate::apk::sign::SigningKey::load(&args.signing_key).map_err(crate::cli::input_error)?;
    let mut public = args.signing_key.clone().into_os_string();
    public.push(".pub");
    let key_files = vec![args.signing_key.clone(), PathBuf::from(public)];
    let noarch = crate::cli::resolve_arch(args.arch.as_deref())?;

    let mut groups: BTreeMap<(Vec<u8>, String, u64, Option<String>), Group> = BTreeMap::new();
    for apk in &args.apks {
        let e = embedded(apk).map_err(input)?;
        let arch = e.arch.unwrap_or(noarch).apk().to_string();
        let k = (e.recipe.clone(), arch, e.builddate, e.commit.clone());
        groups
            .entry(k)
            .or_insert_with(|| Group {
                first: e.clone(),
                members: Vec::new(),
            })
            .members
            .push((apk.clone(), e));
    }
    if let Some(out) = &args.out_dir {
        crate::cli::outdir::ensure_writable("--out-dir", out)?;
        refuse_original_repository(out, &args.apks)?;
    }
    let runner = crate::cli::resolve_runner(args.runner, "rebuild")?;
    let cache_dir = crate::cli::cache_dir(args.cache_dir.as_deref())?;
    let mut secret_env = BTreeMap::new();
    for p in &args.env_files {
        secret_env.extend(crate::cli::build::parse_env_file(p).map_err(input)?);
    }
    let verbosity = if args.quiet {
        Verbosity::Quiet
    } else if args.debug {
        Verbosity::Debug
    } else {
        Verbosity::Normal
    };

    let scratch = tempfile::Builder::new()
        .prefix("pkgbuild-rebuild-")
        .tempdir()
        .context("cannot create a temporary directory for the rebuild")?;
    let mut verdicts: Vec<(PathBuf, Verdict, Option<PathBuf>)> = Vec::new();
    for (i, group) in groups.into_values().enumerate() {
        let dir = scratch.path().join(i.to_string());
        let out_dir = args.out_dir.clone().unwrap_or_else(|| dir.join("out"));
        let arch = group.first.arch.unwrap_or(noarch);
        let recipe = dir.join(format!("{}.yaml", group.first.origin));
        let opts = BuildOptions {
            recipe: recipe.clone(),
            out_dir: out_dir.clone(),
            arch,
            runner,
            // Without --source-dir the workspace starts with the recipe
            // alone, in its own folder.
            source_dir: args.source_dir.clone(),
            cache_dir: cache_dir.clone(),
            pipeline_dirs: args.pipeline_dirs.clone(),
            build_options: Vec::new(),
            vars_file: None,
            secret_env: secret_env.clone(),
            env_files: args.env_files.clone(),
            key_files: key_files.clone(),
            network: args.network,
            keep_workspace: args.keep_workspace,
            epoch: group.first.builddate,
            legacy_sha1_signature: false,
            description: None,
            extra: args.env.extra(),
            apk: args.env.apk(&cache_dir),
            timeout: args.timeout,
            generate_index: true,
            namespace: args.namespace.clone(),
            empty_workspace: false,
            lint_require: Vec::new(),
            lint_warn: Vec::new(),
            git_commit: group.first.commit.clone(),
            interactive: false,
            workspace_dir: None,
            git_repo_url: args.git_repo_url.clone(),
            license: args.license.clone(),
            limits: crate::sandbox::StepLimits::default(),
        };
        if verbosity != Verbosity::Quiet {
            let names: Vec<String> = group.members.iter().map(|(_, e)| e.file_name()).collect();
            crate::errln!(
                "==> rebuilding {} for {} (SOURCE_DATE_EPOCH={})",
                names.join(", "),
                arch.apk(),
                group.first.builddate
            );
        }
        let built = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&recipe, &group.first.recipe))
            .with_context(|| format!("{}: cannot write the embedded recipe", recipe.display()))
            .and_then(|()| engine::compile_plan(&opts))
            .and_then(|plan| engine::build_plan(&opts, &plan, &key, &BuildLog::new(verbosity)));
        for (apk, e) in group.members {
            let rebuilt = out_dir.join(arch.apk()).join(e.file_name());
            let verdict = match &built {
                Err(err) => {
                    Verdict::Failed(format!("the rebuild failed: {}", crate::error::chain(err)))
                }
                Ok(_) if !rebuilt.is_file() => Verdict::Failed(format!(
                    "the rebuild wrote no {} (the embedded recipe does not produce it)",
                    e.file_name()
                )),
                Ok(_) => match diff::compare(&apk, &rebuilt) {
                    Ok(None) => Verdict::Identical,
                    Ok(Some(d)) => Verdict::Differs(d),
                    Err(err) => Verdict::Failed(crate::error::chain(&err)),
                },
            };
            let kept = args.out_dir.is_some().then_some(rebuilt);
            verdicts.push((apk, verdict, kept));
        }
    }
    report(&verdicts, args.out_dir.is_none())
}

/// Building into the originals' own repository would replace them (and
/// their index) with the rebuild.
fn refuse_original_repository(out: &Path, apks: &[PathBuf]) -> anyhow::Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    let Some(out) = canon(out) else {
        return Ok(());
    };
    for apk in apks {
        let repo = canon(apk).and_then(|a| a.parent()?.parent().map(Path::to_path_buf));
        if repo.as_deref() == Some(&out) {
            return Err(crate::cli::input_error(anyhow::anyhow!(
                "--out-dir {}: is the repository of {}; a rebuild goes elsewhere so the original stays to compare with",
                out.display(),
                apk.display()
            )));
        }
    }
    Ok(())
}

fn report(
    verdicts: &[(PathBuf, Verdict, Option<PathBuf>)],
    temporary: bool,
) -> anyhow::Result<ExitCode> {
    let mut text = String::new();
    let (mut same, mut differ, mut failed) = (0, 0, 0);
    for (apk, verdict, kept) in verdicts {
        let name = apk.display();
        match verdict {
            Verdict::Identical => {
                same += 1;
                text.push_str(&format!("{name}: identical\n"));
            }
            Verdict::Differs(diffs) => {
                differ += 1;
                text.push_str(&format!("{name}: differs\n"));
                for d in diffs {
                    text.push_str(&format!("  {d}\n"));
                }
            }
            Verdict::Failed(why) => {
                failed += 1;
                // A multi-line cause stays under its package.
                let why = why.trim_end().replace('\n', "\n  ");
                text.push_str(&format!("{name}: failed: {why}\n"));
            }
        }
        if let Some(p) = kept.as_ref().filter(|p| p.is_file()) {
            text.push_str(&format!("  rebuilt: {}\n", p.display()));
        }
    }
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing the report")?;
    crate::errln!("==> rebuild: {same} identical, {differ} differ, {failed} failed");
    if failed > 0 && temporary {
        crate::errln!("    pass --out-dir DIR to keep the rebuild and its log (DIR/logs/)");
    }
    Ok(if differ + failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
