//! Host-side source preparation. Build steps have no network, so every
//! `fetch` is downloaded (and checked against its digest) and every
//! `git-checkout` is cloned (and checked against its commit) here, before
//! any step runs. The step then finds its source through an environment
//! variable pointing into a read-only mount.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::BuildLog;
use crate::meta::sbom::SourceRef;
use crate::plan::{Plan, Step};
use crate::sandbox::RunnerKind;
use crate::source::{self, Checksum, GitCheckout};

/// Guest paths of the two read-only source mounts under bubblewrap.
const GUEST_CACHE: &str = "/var/cache/pkgbuild";
const GUEST_SOURCES: &str = "/var/lib/pkgbuild/sources";

/// Sources ready for the steps.
#[derive(Default)]
pub struct Prepared {
    /// Step identity → variables that tell it where its source is.
    env: BTreeMap<usize, BTreeMap<String, String>>,
    pub ro_binds: Vec<(PathBuf, String)>,
    pub sbom_sources: Vec<SourceRef>,
}

fn key(step: &Step) -> usize {
    step as *const Step as usize
}

impl Prepared {
    pub fn env_for(&self, step: &Step) -> BTreeMap<String, String> {
        self.env.get(&key(step)).cloned().unwrap_or_default()
    }
}

fn visit<'a>(steps: &'a [Step], out: &mut Vec<&'a Step>) {
    for s in steps {
        out.push(s);
        visit(&s.pipeline, out);
    }
}

fn input<'a>(step: &'a Step, name: &str) -> Option<&'a str> {
    step.with
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

/// Download and clone everything the plan needs.
pub fn prepare(
    plan: &Plan,
    cache_dir: &Path,
    sources_dir: &Path,
    runner: RunnerKind,
    epoch: u64,
    log: &BuildLog,
) -> anyhow::Result<Prepared> {
    let mut steps = Vec::new();
    for p in &plan.packages {
        visit(&p.steps, &mut steps);
    }
    let guest = |host: &Path, host_root: &Path, guest_root: &str| -> String {
        match runner {
            RunnerKind::Host => host.to_string_lossy().into_owned(),
            RunnerKind::Bwrap => {
                let rel = host.strip_prefix(host_root).unwrap_or(host);
                format!("{guest_root}/{}", rel.to_string_lossy())
            }
        }
    };
    let mut prepared = Prepared::default();
    let mut uses_cache = false;
    let mut uses_git = false;
    for (n, step) in steps.into_iter().enumerate() {
        match step.uses.as_deref() {
            Some("fetch") => {
                let uri = input(step, "uri").context("fetch: no `uri` input")?;
                let checksum = match (input(step, "expected-sha256"), input(step, "expected-sha512")) {
                    (Some(h), _) => Checksum::Sha256(h.to_ascii_lowercase()),
                    (None, Some(h)) => Checksum::Sha512(h.to_ascii_lowercase()),
                    (None, None) => bail!(
                        "fetch {uri}: expected-sha256 or expected-sha512 is required (pkgbuild never uses an unchecked download)"
                    ),
                };
                log.info(&format!("fetching {uri}"));
                let file = source::fetch(uri, &checksum, cache_dir)?;
                let path = guest(&file, cache_dir, GUEST_CACHE);
                prepared
                    .env
                    .entry(key(step))
                    .or_default()
                    .insert("PKGBUILD_FETCHED_FILE".into(), path);
                let (sha256, sha512) = match checksum {
                    Checksum::Sha256(h) => (Some(h), None),
                    Checksum::Sha512(h) => (None, Some(h)),
                };
                prepared.sbom_sources.push(SourceRef::Fetch {
                    url: uri.to_string(),
                    sha256,
                    sha512,
                });
                uses_cache = true;
            }
            Some("git-checkout") => {
                let repository = input(step, "repository")
                    .context("git-checkout: no `repository` input")?
                    .to_string();
                let spec = GitCheckout {
                    repository: repository.clone(),
                    branch: input(step, "branch").map(str::to_string),
                    tag: input(step, "tag").map(str::to_string),
                    expected_commit: input(step, "expected-commit").map(str::to_string),
                    depth: input(step, "depth").and_then(|d| d.trim().parse().ok()),
                    recurse_submodules: input(step, "recurse-submodules") == Some("true"),
                    cherry_picks: input(step, "cherry-picks")
                        .map(|c| c.lines().map(str::to_string).collect())
                        .unwrap_or_default(),
                    destination_name: input(step, "destination").unwrap_or(".").to_string(),
                    source_date_epoch: Some(epoch),
                };
                let dest = sources_dir.join(format!("git-{n}"));
                log.info(&format!("cloning {repository}"));
                let commit = source::git_checkout(&spec, &dest)?;
                let path = guest(&dest, sources_dir, GUEST_SOURCES);
                prepared
                    .env
                    .entry(key(step))
                    .or_default()
                    .insert("PKGBUILD_CHECKOUT_DIR".into(), path);
                prepared.sbom_sources.push(SourceRef::Git {
                    repository,
                    commit,
                    tag: spec.tag.clone(),
                    branch: spec.branch.clone(),
                });
                uses_git = true;
            }
            _ => {}
        }
    }
    if runner == RunnerKind::Bwrap {
        if uses_cache {
            prepared
                .ro_binds
                .push((cache_dir.to_path_buf(), GUEST_CACHE.to_string()));
        }
        if uses_git {
            prepared
                .ro_binds
                .push((sources_dir.to_path_buf(), GUEST_SOURCES.to_string()));
        }
    }
    Ok(prepared)
}
