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
use crate::meta::tree::StagedTree;
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

/// One package's staged tree and what linting and scanning it needs.
struct TreeChecks<'a> {
    name: &'a str,
    root: PathBuf,
    full_version: &'a str,
    checks_disabled: &'a [String],
    scan: scan::ScanOptions,
}

/// The package architecture and the command line's lint level overrides.
struct LintLevels<'a> {
    arch: &'a str,
    require: &'a [String],
    warn: &'a [String],
}

/// Lints and scans every package. Each staged tree is walked once and the
/// one listing handed to the linters, the `ld.so.conf.d` reader and the
/// scanner. All packages are linted before any is scanned, and all scanned
/// before returning: dependency resolution between siblings needs every
/// scan result, and a library directory named by any package's
/// `ld.so.conf.d` counts for all of them, since they are installed together.
fn lint_and_scan(
    pkgs: &[TreeChecks],
    levels: &LintLevels,
    warn: &dyn Fn(&str),
) -> anyhow::Result<Vec<scan::ScanResult>> {
    let trees = pkgs
        .iter()
        .map(|p| {
            StagedTree::walk(&p.root)
                .with_context(|| format!("{}: cannot list package tree", p.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (p, tree) in pkgs.iter().zip(&trees) {
        let findings = lint::lint_tree(
            tree,
            &lint::LintContext {
                package_name: p.name,
                disabled: p.checks_disabled,
                arch: levels.arch,
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
            let level = if levels.require.iter().any(|l| l == f.linter) {
                lint::Level::Required
            } else if levels.warn.iter().any(|l| l == f.linter) {
                lint::Level::Warning
            } else {
                f.level
            };
            match level {
                lint::Level::Required => required.push(text),
                lint::Level::Warning => warn(&text),
            }
        }
        if !required.is_empty() {
            return Err(BuildError::Lint {
                package: p.name.to_string(),
                count: required.len(),
                findings: required.join("\n"),
            }
            .into());
        }
    }
    let mut lib_dirs = std::collections::BTreeSet::new();
    for (p, tree) in pkgs.iter().zip(&trees) {
        lib_dirs.extend(
            scan::ld_so_conf_dirs(tree)
                .with_context(|| format!("{}: cannot read ld.so.conf.d", p.name))?,
        );
    }
    let lib_dirs: Vec<String> = lib_dirs.into_iter().collect();
    let mut scans = Vec::new();
    for (p, tree) in pkgs.iter().zip(&trees) {
        let result = scan::scan_tree_with_lib_dirs(tree, p.full_version, &p.scan, &lib_dirs)
            .with_context(|| format!("{}: cannot scan package tree", p.name))?;
        for w in &result.warnings {
            warn(&format!("{}: {w}", p.name));
        }
        scans.push(result);
    }
    Ok(scans)
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
    let checks: Vec<TreeChecks> = plan
        .packages
        .iter()
        .map(|p| TreeChecks {
            name: &p.name,
            root: out_root.join(&p.name),
            full_version: &p.full_version,
            checks_disabled: &p.checks_disabled,
            scan: scan::ScanOptions {
                no_provides: p.options.no_provides,
                no_depends: p.options.no_depends,
                no_commands: p.options.no_commands,
                no_versioned_shlib_deps: p.options.no_versioned_shlib_deps,
            },
        })
        .collect();
    let lint_levels = LintLevels {
        arch: opts.arch.apk(),
        require: &opts.lint_require,
        warn: &opts.lint_warn,
    };
    let scans = lint_and_scan(&checks, &lint_levels, &|m| log.warn(m))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::tree::WALKS;
    use std::cell::RefCell;
    use std::os::unix::fs::PermissionsExt;

    fn checks<'a>(root: &Path, names: &[&'a str], disabled: &'a [String]) -> Vec<TreeChecks<'a>> {
        names
            .iter()
            .map(|name| TreeChecks {
                name,
                root: root.join(name),
                full_version: "1.0-r0",
                checks_disabled: disabled,
                scan: scan::ScanOptions::default(),
            })
            .collect()
    }

    #[test]
    fn each_staged_tree_is_walked_once_for_lint_and_scan() {
        let out = tempfile::tempdir().unwrap();
        let bin = out.path().join("hello/usr/bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("hello"), b"#!/usr/bin/python3\nprint(1)\n").unwrap();
        fs::set_permissions(bin.join("hello"), fs::Permissions::from_mode(0o755)).unwrap();
        let conf = out.path().join("hello-libs/etc/ld.so.conf.d");
        fs::create_dir_all(&conf).unwrap();
        fs::write(conf.join("x.conf"), b"/opt/x/lib\n").unwrap();
        fs::create_dir_all(out.path().join("hello/usr/share/doc/hello")).unwrap();
        fs::write(out.path().join("hello/usr/share/doc/hello/README"), b"hi").unwrap();
        fs::create_dir_all(out.path().join("hello-doc")).unwrap();

        let pkgs = checks(out.path(), &["hello", "hello-libs", "hello-doc"], &[]);
        let levels = LintLevels {
            arch: "x86_64",
            require: &[],
            warn: &[],
        };
        let warnings = RefCell::new(Vec::new());
        let before = WALKS.with(|w| w.get());
        let scans = lint_and_scan(&pkgs, &levels, &|m| {
            warnings.borrow_mut().push(m.to_string())
        })
        .unwrap();
        assert_eq!(WALKS.with(|w| w.get()) - before, 3, "one walk per package");

        // The one listing fed the linters and the scanner.
        assert!(scans[0].provides.contains("cmd:hello=1.0-r0"));
        assert!(scans[0].depends.contains("cmd:python3"));
        assert!(scans[1].provides.is_empty());
        let warnings = warnings.into_inner();
        assert!(
            warnings.iter().any(|w| w.starts_with("hello-doc: [empty]")),
            "{warnings:?}"
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.starts_with("hello: [documentation]")),
            "{warnings:?}"
        );
    }

    #[test]
    fn a_required_finding_fails_before_any_scan() {
        let out = tempfile::tempdir().unwrap();
        fs::create_dir_all(out.path().join("bad/dev")).unwrap();
        fs::write(out.path().join("bad/dev/null"), b"").unwrap();
        let pkgs = checks(out.path(), &["bad"], &[]);
        let levels = LintLevels {
            arch: "x86_64",
            require: &[],
            warn: &[],
        };
        let err = lint_and_scan(&pkgs, &levels, &|_| {}).unwrap_err();
        assert!(err.to_string().contains("bad"), "{err:#}");
        let err = err.downcast::<BuildError>().unwrap();
        assert!(matches!(err, BuildError::Lint { count: 1, .. }), "{err}");
    }

    #[test]
    fn a_missing_tree_names_the_package() {
        let out = tempfile::tempdir().unwrap();
        let pkgs = checks(out.path(), &["gone"], &[]);
        let levels = LintLevels {
            arch: "x86_64",
            require: &[],
            warn: &[],
        };
        let err = lint_and_scan(&pkgs, &levels, &|_| {}).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("gone: cannot list package tree"), "{text}");
    }
}
