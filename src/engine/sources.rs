//! Running the plan's host stages. Build steps have no network, so the
//! compiler made every `fetch` and `git-checkout` of the build a typed
//! [`HostStage`](crate::plan::HostStage); each is downloaded (and checked
//! against its digest) or cloned (and checked against its commit) here,
//! before any step runs. Its step then finds the result through an
//! environment variable pointing into a read-only mount, looked up by the
//! stage's id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::BuildLog;
use crate::meta::sbom::SourceRef;
use crate::plan::stage::{CHECKOUT_DIR_VAR, FETCHED_FILE_VAR};
use crate::plan::{Digest, HostStageKind, Plan, Step};
use crate::sandbox::RunnerKind;
use crate::source::{self, Checksum, GitCheckout};

/// Guest paths of the two read-only source mounts under bubblewrap.
const GUEST_CACHE: &str = "/var/cache/pkgbuild";
const GUEST_SOURCES: &str = "/var/lib/pkgbuild/sources";

/// Sources ready for the steps.
#[derive(Default)]
pub struct Prepared {
    /// Host stage id → variables that tell its step where its source is.
    env: BTreeMap<String, BTreeMap<String, String>>,
    pub ro_binds: Vec<(PathBuf, String)>,
    pub sbom_sources: Vec<SourceRef>,
}

impl Prepared {
    /// The variables a step gets from its host stage (none for a step
    /// that is not one).
    pub fn env_for(&self, step: &Step) -> BTreeMap<String, String> {
        step.host
            .as_ref()
            .and_then(|h| self.env.get(&h.id))
            .cloned()
            .unwrap_or_default()
    }
}

/// Run every host stage of the plan, in plan order.
pub fn prepare(
    plan: &Plan,
    cache_dir: &Path,
    sources_dir: &Path,
    runner: RunnerKind,
    epoch: u64,
    log: &BuildLog,
) -> anyhow::Result<Prepared> {
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
    for stage in &plan.host_stages {
        let (var, path) = match &stage.kind {
            HostStageKind::Fetch { uri, expected, .. } => {
                let checksum = match expected {
                    Digest::Sha256(h) => Checksum::Sha256(h.clone()),
                    Digest::Sha512(h) => Checksum::Sha512(h.clone()),
                };
                log.info(&format!("host stage {}: fetching {uri}", stage.id));
                let file = source::fetch(uri, &checksum, cache_dir)?;
                let (sha256, sha512) = match checksum {
                    Checksum::Sha256(h) => (Some(h), None),
                    Checksum::Sha512(h) => (None, Some(h)),
                };
                prepared.sbom_sources.push(SourceRef::Fetch {
                    url: uri.clone(),
                    sha256,
                    sha512,
                });
                uses_cache = true;
                (FETCHED_FILE_VAR, guest(&file, cache_dir, GUEST_CACHE))
            }
            HostStageKind::GitCheckout {
                repository,
                branch,
                tag,
                expected_commit,
                depth,
                recurse_submodules,
                cherry_picks,
                destination,
            } => {
                let spec = GitCheckout {
                    repository: repository.clone(),
                    branch: branch.clone(),
                    tag: tag.clone(),
                    expected_commit: expected_commit.clone(),
                    depth: *depth,
                    recurse_submodules: *recurse_submodules,
                    cherry_picks: cherry_picks.clone(),
                    destination_name: destination.clone(),
                    source_date_epoch: Some(epoch),
                };
                let dest = sources_dir.join(format!("git-{}", stage.slug()));
                log.info(&format!("host stage {}: cloning {repository}", stage.id));
                let commit = source::git_checkout(&spec, &dest)?;
                prepared.sbom_sources.push(SourceRef::Git {
                    repository: repository.clone(),
                    commit,
                    tag: tag.clone(),
                    branch: branch.clone(),
                });
                uses_git = true;
                (CHECKOUT_DIR_VAR, guest(&dest, sources_dir, GUEST_SOURCES))
            }
        };
        prepared
            .env
            .entry(stage.id.clone())
            .or_default()
            .insert(var.to_string(), path);
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

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::engine::Verbosity;
    use crate::plan::{compile, CompileOptions};

    #[test]
    fn steps_get_their_stage_variables_by_stage_id_not_by_address_or_uses_name() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"not really a tarball".to_vec();
        let artifact = dir.path().join("src.bin");
        std::fs::write(&artifact, &data).unwrap();
        let sha: String = Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let recipe = dir.path().join("r.yaml");
        std::fs::write(
            &recipe,
            format!(
                "package:\n  name: r\n  version: 1.0\npipeline:\n  - runs: echo first\n  - uses: fetch\n    with:\n      uri: file://{}\n      expected-sha256: {sha}\n      extract: false\n",
                artifact.display()
            ),
        )
        .unwrap();
        let plan = compile(&recipe, &CompileOptions::default()).unwrap();
        let (cache, sources) = (dir.path().join("cache"), dir.path().join("sources"));
        std::fs::create_dir_all(&sources).unwrap();
        let log = BuildLog::new(Verbosity::Quiet);
        let prepared = prepare(&plan, &cache, &sources, RunnerKind::Host, 0, &log).unwrap();

        // A copy of the plan lives at other addresses: the id still finds it.
        let copy = plan.clone();
        let step = &copy.packages[0].steps[1];
        let env = prepared.env_for(step);
        let fetched = &env[FETCHED_FILE_VAR];
        assert_eq!(std::fs::read(fetched).unwrap(), data);
        assert!(Path::new(fetched).starts_with(&cache), "{fetched}");
        assert!(prepared.env_for(&copy.packages[0].steps[0]).is_empty());
        // `uses: fetch` alone is not a host stage: only the compiled stage is.
        let mut plain = step.clone();
        plain.host = None;
        assert_eq!(plain.uses.as_deref(), Some("fetch"));
        assert!(prepared.env_for(&plain).is_empty());
        assert_eq!(prepared.sbom_sources.len(), 1);
        assert!(prepared.ro_binds.is_empty(), "no binds for the host runner");
    }
}
