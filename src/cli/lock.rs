//! `pkgbuild lock RECIPE...`: resolve each recipe's build environment,
//! and each hermetic test environment, per architecture from the
//! repository indexes alone (no package is downloaded) and write
//! `<recipe>.lock.json` beside it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};

use crate::arch::Arch;
use crate::cli::{input_error, EnvArgs};
use crate::engine::lockfile::{
    self, LockConfig, LockContents, LockFile, LockKey, LockTest, LOCK_VERSION,
};
use crate::engine::{guest, guest_request, test as t};
use crate::plan::{self, CompileOptions};
use crate::upstream::TrustedKey;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Recipe files to lock.
    #[arg(required = true, value_name = "RECIPE")]
    pub recipes: Vec<PathBuf>,
    /// Architectures to lock (apk or Go spelling; repeatable). Default: the host's.
    #[arg(long = "arch", value_name = "ARCH")]
    pub archs: Vec<String>,
    /// Directory searched for `uses:` pipelines before the built-ins.
    #[arg(long = "pipeline-dir", value_name = "DIR")]
    pub pipeline_dirs: Vec<PathBuf>,
    /// Also trust the public half of this signing key (as `build` does for
    /// its output repository).
    #[arg(long, value_name = "KEY")]
    pub signing_key: Option<PathBuf>,
    /// Repository root of the built packages (<DIR>/<arch>/), read first
    /// when a test environment is resolved: the package under test and
    /// its scanned dependencies come from there when it is built.
    #[arg(long, default_value = "packages", value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Write the lock here instead of beside the recipe (one recipe only).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Download cache (default ~/.cache/pkgbuild).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub env: EnvArgs,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.output.is_some() && args.recipes.len() > 1 {
        return Err(input_error(anyhow!("--output takes one recipe")));
    }
    let archs: Vec<Arch> = if args.archs.is_empty() {
        vec![crate::cli::resolve_arch(None)?]
    } else {
        args.archs
            .iter()
            .map(|a| crate::cli::resolve_arch(Some(a)))
            .collect::<anyhow::Result<_>>()?
    };
    let cache_dir = crate::cli::cache_dir(args.cache_dir.as_deref())?;
    let apk = args.env.apk(&cache_dir);
    let client = apk.client()?;
    let own: Vec<TrustedKey> = match &args.signing_key {
        Some(p) => vec![TrustedKey::of(&crate::apk::sign::SigningKey::load(p)?)],
        None => Vec::new(),
    };
    for recipe in &args.recipes {
        if crate::image::config::is_image_config(recipe) {
            lock_image(&args, recipe, &client)?;
            continue;
        }
        let mut contents = LockContents::default();
        let mut checksum = None;
        let mut tests: BTreeMap<String, LockTest> = BTreeMap::new();
        let mut anything = false;
        for &arch in &archs {
            let opts = CompileOptions {
                arch,
                pipeline_dirs: args.pipeline_dirs.clone(),
                ..CompileOptions::default()
            };
            let plan = plan::compile(recipe, &opts).map_err(input_error)?;
            let request = guest_request(&plan.environment.contents, &args.env.extra());
            let sum = request.key().checksum();
            let differs = || {
                input_error(anyhow!(
                    "{}: the build or test environment differs between architectures; lock each architecture into its own file with --output",
                    recipe.display()
                ))
            };
            if checksum.get_or_insert_with(|| sum.clone()) != &sum && request.is_hermetic() {
                return Err(differs());
            }
            if request.is_hermetic() {
                anything = true;
                let res = guest::resolve(&client, &request, None, arch.apk(), own.clone())
                    .with_context(|| format!("{} ({})", recipe.display(), arch.apk()))?;
                let (repos, pkgs) = guest::lock_records(&res, arch.apk());
                crate::errln!(
                    "{} ({}): {} packages",
                    recipe.display(),
                    arch.apk(),
                    pkgs.len()
                );
                contents.repositories.extend(repos);
                contents.packages.extend(pkgs);
                if contents.keyring.is_empty() {
                    contents.keyring = request
                        .keyring
                        .iter()
                        .map(|k| LockKey {
                            name: k.rsplit('/').next().unwrap_or(k).to_string(),
                            url: k.clone(),
                        })
                        .collect();
                }
            }
            let planned = t::planned_entries(&plan);
            for pkg in &plan.packages {
                let Some(test) = &pkg.test else { continue };
                let req = t::test_request(pkg, test, &args.env.extra());
                if !req.is_hermetic() {
                    continue;
                }
                anything = true;
                let res = guest::resolve_planned(
                    &client,
                    &req,
                    Some(&args.out_dir),
                    &planned,
                    arch.apk(),
                    own.clone(),
                )
                .with_context(|| {
                    format!(
                        "{} ({}): test environment of {}",
                        recipe.display(),
                        arch.apk(),
                        pkg.name
                    )
                })?;
                let (repos, pkgs, rebuilt) =
                    guest::lock_records_except(&res, arch.apk(), &|e| t::is_rebuilt(&plan, e));
                crate::errln!(
                    "{} ({}): test of {}: {} packages, and {} built by this recipe",
                    recipe.display(),
                    arch.apk(),
                    pkg.name,
                    pkgs.len(),
                    rebuilt.len()
                );
                let entry = tests.entry(pkg.name.clone()).or_default();
                let sum = req.key().checksum();
                if entry.config.checksum.is_empty() {
                    entry.config.checksum = sum;
                } else if entry.config.checksum != sum {
                    return Err(differs());
                }
                for r in repos {
                    if !entry.repositories.contains(&r) {
                        entry.repositories.push(r);
                    }
                }
                entry.packages.extend(pkgs);
                entry.rebuilt.extend(rebuilt);
            }
        }
        if !anything {
            return Err(input_error(anyhow!(
                "{}: names no repository (environment.contents.repositories, a test's, or -r): there is nothing to lock",
                recipe.display()
            )));
        }
        let lock = LockFile {
            version: LOCK_VERSION.into(),
            config: LockConfig {
                name: recipe
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                checksum: checksum.unwrap_or_default(),
            },
            contents,
            tests,
        };
        let path = args
            .output
            .clone()
            .unwrap_or_else(|| lockfile::default_path(recipe));
        lock.write(&path)?;
        crate::outln!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `pkgbuild lock IMAGE.yaml`: an image configuration (apko's schema: a
/// `contents:` and no `package:`) is locked for `--arch`, else its
/// `archs`, else the host's.
fn lock_image(
    args: &Args,
    path: &std::path::Path,
    client: &crate::upstream::Client,
) -> anyhow::Result<()> {
    let cfg = crate::image::config::load(path).map_err(input_error)?;
    let flag: Vec<Arch> = args
        .archs
        .iter()
        .map(|a| crate::cli::resolve_arch(Some(a)))
        .collect::<anyhow::Result<_>>()?;
    let archs = crate::image::archs(&cfg, &flag)?;
    let lock = crate::image::lock(&cfg, &args.env.extra(), client, &archs).map_err(|e| {
        if e.to_string().contains("names no") {
            input_error(e)
        } else {
            e
        }
    })?;
    for a in &archs {
        let n = lock
            .contents
            .packages
            .iter()
            .filter(|p| p.architecture == a.apk())
            .count();
        crate::errln!("{} ({}): {n} packages", path.display(), a.apk());
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| lockfile::default_path(path));
    lock.write(&out)?;
    crate::outln!("{}", out.display());
    Ok(())
}
