//! Turning each `melange-out/<name>` tree into a signed package: lint it,
//! scan dependencies across siblings, add the SBOM, gather scripts and
//! metadata, and write the `.apk` into the staging directory.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use super::{sources, BuildError, BuildLog, BuildOptions};
use crate::apk::package::{self, PackageSpec, Script, SignOptions};
use crate::apk::pkginfo::PkgInfo;
use crate::apk::sign::SigningKey;
use crate::meta::{lint, sbom, scan};
use crate::plan::{self, PackagePlan, Plan};

fn copyright_text(p: &PackagePlan) -> String {
    p.copyright
        .iter()
        .map(|c| c.attestation.value.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The recipe's structured `cpe:` as a CPE 2.3 formatted string.
fn cpe23(p: &PackagePlan) -> Option<String> {
    let get = |k: &str| p.cpe.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let vendor = get("vendor")?;
    let product = get("product")?;
    let field = |k: &str| get(k).unwrap_or("*").to_string();
    Some(format!(
        "cpe:2.3:{}:{vendor}:{product}:{}:*:{}:{}:{}:{}:{}:{}",
        get("part").unwrap_or("a"),
        p.version,
        field("edition"),
        field("language"),
        field("sw_edition"),
        field("target_sw"),
        field("target_hw"),
        field("other"),
    ))
}

fn scripts_of(p: &PackagePlan) -> Vec<(Script, Vec<u8>)> {
    let s = &p.scriptlets;
    let table = [
        (Script::PreInstall, &s.pre_install),
        (Script::PostInstall, &s.post_install),
        (Script::PreDeinstall, &s.pre_deinstall),
        (Script::PostDeinstall, &s.post_deinstall),
        (Script::PreUpgrade, &s.pre_upgrade),
        (Script::PostUpgrade, &s.post_upgrade),
    ];
    let mut out: Vec<(Script, Vec<u8>)> = table
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|t| (k, with_shebang(t))))
        .collect();
    if let Some(t) = &s.trigger {
        if !t.script.trim().is_empty() {
            out.push((Script::Trigger, with_shebang(&t.script)));
        }
    }
    out
}

/// apk executes scripts directly, so they need an interpreter line.
fn with_shebang(text: &str) -> Vec<u8> {
    if text.starts_with("#!") {
        text.as_bytes().to_vec()
    } else {
        format!("#!/bin/sh\n{text}").into_bytes()
    }
}

/// `build_environment`: the SBOM's build dependencies (requests met
/// locally are pinned to the version installed).
#[allow(clippy::too_many_arguments)]
pub(super) fn package_all(
    plan: &Plan,
    out_root: &Path,
    prepared: &sources::Prepared,
    build_environment: &[String],
    opts: &BuildOptions,
    key: &SigningKey,
    staging: &Path,
    log: &BuildLog,
) -> anyhow::Result<Vec<PathBuf>> {
    let main = &plan.packages[0];
    // Lint and scan every package first: dependency resolution between
    // siblings needs all scan results.
    let mut scans = Vec::new();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        let findings = lint::lint_tree(
            &root,
            &lint::LintContext {
                package_name: &p.name,
                disabled: &p.checks_disabled,
                arch: opts.arch.apk(),
            },
        )
        .with_context(|| format!("{}: cannot lint package tree", p.name))?;
        let mut required = Vec::new();
        for f in &findings {
            let place = f
                .path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default();
            let text = format!("{}: [{}] {}{}", p.name, f.linter, f.message, place);
            let level = if opts.lint_require.iter().any(|l| l == f.linter) {
                lint::Level::Required
            } else if opts.lint_warn.iter().any(|l| l == f.linter) {
                lint::Level::Warning
            } else {
                f.level
            };
            match level {
                lint::Level::Required => required.push(text),
                lint::Level::Warning => log.warn(&text),
            }
        }
        if !required.is_empty() {
            return Err(BuildError::Lint {
                package: p.name.clone(),
                count: required.len(),
                findings: required.join("\n"),
            }
            .into());
        }
    }
    // A library directory named by any package's ld.so.conf.d counts for
    // all of them, since they are installed together.
    let mut lib_dirs = std::collections::BTreeSet::new();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        lib_dirs.extend(
            scan::ld_so_conf_dirs(&root)
                .with_context(|| format!("{}: cannot read ld.so.conf.d", p.name))?,
        );
    }
    let lib_dirs: Vec<String> = lib_dirs.into_iter().collect();
    for p in &plan.packages {
        let root = out_root.join(&p.name);
        let o = &p.options;
        let result = scan::scan_tree_with_lib_dirs(
            &root,
            &p.full_version,
            &scan::ScanOptions {
                no_provides: o.no_provides,
                no_depends: o.no_depends,
                no_commands: o.no_commands,
                no_versioned_shlib_deps: o.no_versioned_shlib_deps,
            },
            &lib_dirs,
        )
        .with_context(|| format!("{}: cannot scan package tree", p.name))?;
        for w in &result.warnings {
            log.warn(&format!("{}: {w}", p.name));
        }
        scans.push(result);
    }
    let deps_in: Vec<scan::PackageDeps> = plan
        .packages
        .iter()
        .zip(scans)
        .map(|(p, s)| scan::PackageDeps {
            name: &p.name,
            declared_depends: &p.dependencies.runtime,
            declared_provides: &p.dependencies.provides,
            scan: s,
        })
        .collect();
    let resolved = scan::resolve(&deps_in);

    let embedded = plan::emit::recipe_yaml(plan)?.into_bytes();
    let sbom_texts: Vec<(String, Option<String>)> = plan
        .packages
        .iter()
        .map(|p| (copyright_text(p), cpe23(p)))
        .collect();
    // The recipe itself, recorded when its repository or licence is given.
    let recipe_ref = (opts.git_repo_url.is_some() || opts.license.is_some()).then(|| {
        let commit = match main.commit.as_str() {
            "" => opts.git_commit.clone().unwrap_or_default(),
            c => c.to_string(),
        };
        (super::recipe_repo_path(&opts.recipe), commit)
    });
    let sbom_input = |i: usize| {
        let p = &plan.packages[i];
        sbom::SbomInput {
            name: &p.name,
            full_version: &p.full_version,
            arch: opts.arch.apk(),
            origin: &main.name,
            license: &p.license,
            copyright: &sbom_texts[i].0,
            cpe: sbom_texts[i].1.as_deref(),
            url: &p.url,
            namespace: &opts.namespace,
            sources: &prepared.sbom_sources,
            epoch: opts.epoch,
            description: &p.description,
            build_environment,
            recipe: recipe_ref.as_ref().map(|(path, commit)| sbom::RecipeRef {
                path,
                repository: opts.git_repo_url.as_deref(),
                commit,
                license: opts.license.as_deref(),
            }),
        }
    };
    // What the SBOM had to leave out or normalise (a license typo, a source
    // URL SPDX rejects) is said once, not once per subpackage.
    let mut said = std::collections::BTreeSet::new();
    for (i, p) in plan.packages.iter().enumerate() {
        for w in sbom::warnings(&sbom_input(i)) {
            if said.insert(w.clone()) {
                log.warn(&format!("{}: SBOM: {w}", p.name));
            }
        }
    }
    let jobs: Vec<(usize, scan::ResolvedDeps)> = resolved.into_iter().enumerate().collect();
    jobs.into_par_iter()
        .map(|(i, deps)| {
            let p = &plan.packages[i];
            let root = out_root.join(&p.name);
            let sbom_rel = sbom::sbom_path(&p.name, &p.full_version);
            let sbom_bytes = sbom::render(&sbom_input(i));
            let sbom_file = root.join(&sbom_rel);
            if let Some(dir) = sbom_file.parent() {
                fs::create_dir_all(dir)?;
            }
            fs::write(&sbom_file, sbom_bytes)?;

            let scripts = scripts_of(p);
            let mut depends = deps.depends.clone();
            if scripts.iter().any(|(_, t)| t.starts_with(b"#!/bin/sh"))
                && !deps.provides.iter().any(|x| x == "/bin/sh")
                && !depends.iter().any(|x| x == "/bin/sh")
            {
                depends.push("/bin/sh".into());
                depends.sort();
            }
            let info = PkgInfo {
                name: p.name.clone(),
                version: p.full_version.clone(),
                description: p.description.clone(),
                url: p.url.clone(),
                builddate: opts.epoch,
                packager: "pkgbuild".into(),
                arch: opts.arch.apk().to_string(),
                origin: main.name.clone(),
                commit: if p.commit.is_empty() {
                    opts.git_commit.clone().unwrap_or_default()
                } else {
                    p.commit.clone()
                },
                license: p.license.clone(),
                depends,
                provides: deps.provides.clone(),
                replaces: p.dependencies.replaces.clone(),
                provider_priority: p
                    .dependencies
                    .provider_priority
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                replaces_priority: p
                    .dependencies
                    .replaces_priority
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                triggers: p
                    .scriptlets
                    .trigger
                    .as_ref()
                    .map(|t| t.paths.clone())
                    .unwrap_or_default(),
                ..Default::default()
            };
            let spec = PackageSpec {
                root: root.clone(),
                info,
                scripts,
                control_extra: vec![(".melange.yaml".to_string(), embedded.clone())],
                mtime: opts.epoch,
                overrides: BTreeMap::new(),
            };
            let written = package::write_package(
                &spec,
                &SignOptions {
                    key: Some(key),
                    legacy_sha1: opts.legacy_sha1_signature,
                },
                staging,
            )
            .with_context(|| format!("{}: cannot write package", p.name))?;
            Ok(written.path)
        })
        .collect::<anyhow::Result<Vec<_>>>()
}
