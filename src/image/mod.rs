//! `pkgbuild image`: minimal OCI images from apk repositories, configured
//! in apko's schema.
//!
//! Per architecture: the packages are resolved, fetched, checked and
//! installed by the hermetic build environment's code (`engine::guest`,
//! with the same lock files, cache and trust rules), the root is finished
//! from the configuration (`rootfs`), checked against the security
//! defaults (`checks`), written as one reproducible layer (`layer`), and
//! described by an SPDX document (`sbom`). The layout with every
//! architecture is written last, atomically (`oci`), so a failure leaves
//! nothing at `--out`.
//!
//! Submodules: `config` (the apko schema), `rootfs`, `checks`, `layer`,
//! `oci`, `sbom`.

pub mod checks;
pub mod config;
pub mod layer;
pub mod oci;
pub mod rootfs;
pub mod sbom;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::arch::Arch;
use crate::engine::guest::{self, Request};
use crate::engine::lockfile::{self, LockConfig, LockContents, LockFile, LockKey, LOCK_VERSION};
use crate::engine::{ApkOptions, ExtraContents};
use crate::upstream::Client;
use config::ImageConfig;

/// Everything `pkgbuild image` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Architectures from the command line; empty: the config's, else the
    /// host's.
    pub archs: Vec<Arch>,
    pub out: PathBuf,
    pub extra: ExtraContents,
    pub apk: ApkOptions,
    pub sbom_dir: Option<PathBuf>,
    /// `NAME:TAG`, recorded as `org.opencontainers.image.ref.name`.
    pub tag: Option<String>,
    /// Security findings are errors.
    pub strict: bool,
    /// SOURCE_DATE_EPOCH: every mtime and the config's `created`.
    pub epoch: u64,
}

/// What one architecture became.
#[derive(Debug, Clone)]
pub struct ArchResult {
    pub arch: Arch,
    /// `sha256:<hex>` of its manifest.
    pub manifest: String,
    pub packages: usize,
    pub layer_size: u64,
    pub layer_entries: usize,
    pub sbom: Option<PathBuf>,
}

/// A finished image.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `sha256:<hex>` of the image index.
    pub digest: String,
    pub archs: Vec<ArchResult>,
    /// Security findings (not errors without `--strict`).
    pub warnings: Vec<String>,
}

/// The config's contents plus the command line's, as the guest code takes
/// them: the same shape (and lock checksum) as a recipe's environment.
pub fn request(cfg: &ImageConfig, extra: &ExtraContents) -> Request {
    let cat = |a: &[String], b: &[String]| {
        let mut v = a.to_vec();
        for x in b {
            if !v.contains(x) {
                v.push(x.clone());
            }
        }
        v
    };
    Request {
        repositories: cat(&cfg.repositories, &extra.repositories),
        keyring: cat(&cfg.keyring, &extra.keyring),
        packages: cat(&cfg.packages, &extra.packages),
    }
}

/// `--arch`, else the config's `archs`, else the host's.
pub fn archs(cfg: &ImageConfig, flag: &[Arch]) -> Result<Vec<Arch>> {
    if !flag.is_empty() {
        return Ok(flag.to_vec());
    }
    if !cfg.archs.is_empty() {
        return Ok(cfg.archs.clone());
    }
    Ok(vec![Arch::host().ok_or_else(|| {
        anyhow!("cannot tell the host architecture; pass --arch")
    })?])
}

fn check_request(cfg: &ImageConfig, req: &Request) -> Result<()> {
    if !req.is_hermetic() {
        bail!(
            "{}: names no repository (contents.repositories or -r): an image is built from repositories only",
            cfg.file.display()
        );
    }
    if req.packages.is_empty() {
        bail!(
            "{}: names no package (contents.packages or --package-append)",
            cfg.file.display()
        );
    }
    Ok(())
}

/// Resolve every architecture from the indexes alone into a lock file.
pub fn lock(
    cfg: &ImageConfig,
    extra: &ExtraContents,
    client: &Client,
    archs: &[Arch],
) -> Result<LockFile> {
    let req = request(cfg, extra);
    check_request(cfg, &req)?;
    let mut contents = LockContents::default();
    for arch in archs {
        let res = guest::resolve(client, &req, None, arch.apk(), Vec::new())
            .with_context(|| format!("{} ({})", cfg.file.display(), arch.apk()))?;
        let (repos, pkgs) = guest::lock_records(&res, arch.apk());
        contents.repositories.extend(repos);
        contents.packages.extend(pkgs);
    }
    contents.keyring = req
        .keyring
        .iter()
        .map(|k| LockKey {
            name: k.rsplit('/').next().unwrap_or(k).to_string(),
            url: k.clone(),
        })
        .collect();
    Ok(LockFile {
        version: LOCK_VERSION.into(),
        config: LockConfig {
            name: cfg
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            checksum: req.key().checksum(),
        },
        contents,
        tests: Default::default(),
    })
}

/// The name an image goes by: its tag, else the config's file stem.
fn image_name(cfg: &ImageConfig, tag: Option<&str>) -> String {
    tag.map(str::to_string).unwrap_or_else(|| {
        cfg.file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
    })
}

/// Annotations of the manifests and the index (also the config's labels):
/// the config's, plus `vcs-url` as source and revision.
fn annotations(cfg: &ImageConfig) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = cfg.annotations.iter().cloned().collect();
    if let Some(url) = &cfg.vcs_url {
        match url.rsplit_once('@') {
            Some((src, rev)) if !rev.contains('/') && !src.ends_with(':') => {
                a.insert("org.opencontainers.image.source".into(), src.into());
                a.insert("org.opencontainers.image.revision".into(), rev.into());
            }
            _ => {
                a.insert("org.opencontainers.image.source".into(), url.clone());
            }
        }
    }
    a
}

fn run_config(cfg: &ImageConfig, labels: &BTreeMap<String, String>) -> oci::RunConfig {
    let mut env: Vec<String> = cfg
        .environment
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !cfg.environment.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, format!("PATH={}", config::DEFAULT_PATH));
    }
    oci::RunConfig {
        user: cfg
            .accounts
            .run_as
            .as_ref()
            .map(|r| r.value.clone())
            .unwrap_or_default(),
        env,
        entrypoint: cfg.entrypoint.clone(),
        cmd: cfg.cmd.clone(),
        working_dir: cfg.work_dir.clone().unwrap_or_default(),
        labels: labels.clone(),
        stop_signal: cfg.stop_signal.clone().unwrap_or_default(),
        volumes: cfg
            .volumes
            .iter()
            .map(|v| (v.clone(), oci::Empty {}))
            .collect(),
    }
}

/// Whether the installed packages ship SBOMs (`var/lib/db/sbom/*.spdx.json`).
fn packages_carry_sboms(root: &Path) -> bool {
    std::fs::read_dir(root.join("var/lib/db/sbom")).is_ok_and(|d| {
        d.flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".spdx.json"))
    })
}

/// Build the image described by `cfg`. `log` receives progress lines.
pub fn build(cfg: &ImageConfig, opts: &Options, log: &mut dyn FnMut(&str)) -> Result<Outcome> {
    let req = request(cfg, &opts.extra);
    check_request(cfg, &req)?;
    let archs = archs(cfg, &opts.archs)?;
    let lock_path = opts
        .apk
        .lockfile
        .clone()
        .or_else(|| Some(lockfile::default_path(&cfg.file)).filter(|p| p.is_file()));
    let lock = match &lock_path {
        Some(p) => Some(LockFile::read(p).map_err(crate::error::input_error)?),
        None => None,
    };
    let client = opts.apk.client()?;
    let tmp = std::env::temp_dir();
    let staging = crate::lockdir::LockedDir::create(&tmp, "pkgbuild-image-")
        .with_context(|| format!("{}: cannot create a staging directory", tmp.display()))?;
    let name = image_name(cfg, opts.tag.as_deref());
    let labels = annotations(cfg);
    let run = run_config(cfg, &labels);
    let created = crate::meta::sbom::rfc3339(opts.epoch);
    let mut images = Vec::new();
    let mut results = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut sboms: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for &arch in &archs {
        let dir = staging.path().join(arch.apk());
        let root = dir.join("root");
        let env = guest::prepare(&guest::Inputs {
            request: &req,
            client: &client,
            out_dir: None,
            arch: arch.apk(),
            own_keys: Vec::new(),
            lock: match (lock_path.as_deref(), lock.as_ref()) {
                (Some(path), Some(l)) => Some(l.build_env(path, &req.key(), arch.apk())?),
                _ => None,
            },
            templates: &opts.apk.cache_dir.join("roots"),
            root: &root,
            scratch: &dir.join("scripts"),
        })
        .with_context(|| format!("{} ({})", cfg.file.display(), arch.apk()))?;
        for l in &env.log {
            log(&format!("{}: {l}", arch.apk()));
        }
        let fin = rootfs::finish(&root, cfg)
            .with_context(|| format!("{} ({})", cfg.file.display(), arch.apk()))?;
        for w in checks::findings(cfg, fin.run_as.as_ref(), &fin.packages) {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
        if opts.strict && !warnings.is_empty() {
            bail!(
                "--strict: {}\nnothing was written",
                warnings.join("\n--strict: ")
            );
        }
        let mut overrides = fin.overrides;
        if packages_carry_sboms(&root) {
            let doc = sbom::render(&sbom::ImageSbom {
                name: &name,
                arch: arch.apk(),
                go_arch: arch.go(),
                digest: None,
                packages: &fin.packages,
                epoch: opts.epoch,
            });
            let mut w = rootfs::RootWriter::new(&root);
            w.write_file(
                &format!("var/lib/db/sbom/image-{}.spdx.json", arch.apk()),
                0o644,
                &doc,
            )?;
            overrides.extend(w.overrides);
        }
        let layer = layer::write(&root, &overrides, opts.epoch, &dir.join("layer.tar.gz"))?;
        log(&format!(
            "{}: layer {} ({} entries, {} bytes)",
            arch.apk(),
            layer.digest,
            layer.entries,
            layer.size
        ));
        let img = oci::arch_image(arch.go(), &created, &run, layer, &labels);
        let sbom_path = opts
            .sbom_dir
            .as_ref()
            .map(|d| d.join(format!("sbom-{}.spdx.json", arch.apk())));
        if let Some(p) = &sbom_path {
            let doc = sbom::render(&sbom::ImageSbom {
                name: &name,
                arch: arch.apk(),
                go_arch: arch.go(),
                digest: Some(&img.manifest.digest),
                packages: &fin.packages,
                epoch: opts.epoch,
            });
            sboms.push((p.clone(), doc));
        }
        results.push(ArchResult {
            arch,
            manifest: img.manifest.digest.clone(),
            packages: fin.packages.len(),
            layer_size: img.layer.size,
            layer_entries: img.layer.entries,
            sbom: sbom_path,
        });
        images.push(img);
    }
    for (p, doc) in &sboms {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)
                .with_context(|| format!("{}: cannot create", d.display()))?;
        }
        crate::atomic::write(p, 0o644, doc)
            .with_context(|| format!("{}: cannot write the SBOM", p.display()))?;
    }
    let ref_name = opts.tag.clone().unwrap_or_else(|| "latest".into());
    let written = oci::write_archive(&opts.out, &images, &ref_name, &labels, opts.epoch)?;
    Ok(Outcome {
        digest: written.digest,
        archs: results,
        warnings,
    })
}
