//! Hermetic build environments: the guest root a build (or test) runs in,
//! assembled only from apk repositories.
//!
//! A build is hermetic as soon as a repository is named (the recipe's
//! `environment.contents.repositories` or `-r`). Then every requested
//! package must resolve there (nothing is "assumed from the host"), the
//! indexes must be signed by a keyring key (or the build's own key), every
//! package file is checked against its index record before use, and the
//! steps see the installed root as `/`.
//!
//! Order of work: keys → indexes (or the lock file, which replaces the
//! indexes and the resolver) → resolve → fetch and check every file →
//! install into a fresh root (from a template keyed by the exact package
//! set), running the packages' install scripts inside the sandbox with
//! that root as `/`. Everything before the install touches no root, so a
//! refused index or package leaves nothing behind.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::lockfile::{EnvironmentKey, LockPackage, LockRebuilt, LockRepo, LockedEnv};
use crate::apk::index::IndexEntry;
use crate::install::{self, Package, RootSetup, ScriptRun};
use crate::resolve::{self, RepoIndex};
use crate::sandbox::{self, RunnerKind, SandboxConfig, StepSpec};
use crate::upstream::{self, Client, RepoSpec, TrustedKey};

/// Where packages come from and what to install, after the command line
/// has been added to the recipe's `environment.contents`.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The recipe's repositories, then `-r`; `@tag` prefixes kept.
    pub repositories: Vec<String>,
    /// The recipe's keyring, then `-k`.
    pub keyring: Vec<String>,
    /// The recipe's packages, then `--package-append`.
    pub packages: Vec<String>,
}

impl Request {
    /// Whether this environment is built from repositories alone.
    pub fn is_hermetic(&self) -> bool {
        !self.repositories.is_empty()
    }

    /// What a lock file made from this request is checked against.
    pub fn key(&self) -> EnvironmentKey<'_> {
        EnvironmentKey {
            repositories: &self.repositories,
            keyring: &self.keyring,
            packages: &self.packages,
        }
    }
}

/// One package chosen for the root.
#[derive(Debug, Clone)]
pub struct Chosen {
    pub repo: RepoSpec,
    pub entry: IndexEntry,
}

impl Chosen {
    pub fn label(&self) -> String {
        format!("{}-{}", self.entry.info.name, self.entry.info.version)
    }

    /// `<root>/<arch>/<name>-<version>.apk`, as apk fetches it.
    fn file_url(&self, arch: &str) -> String {
        let a = match self.entry.info.arch.as_str() {
            "" | "noarch" => arch,
            other => other,
        };
        format!("{}/{a}/{}.apk", self.repo.url, self.label())
    }
}

/// The resolved environment, not yet installed.
pub struct Resolved {
    pub chosen: Vec<Chosen>,
    pub keys: Vec<TrustedKey>,
    /// Notes for the log.
    pub log: Vec<String>,
}

/// Whether the repository `spec` names the directory `dir` (melange's
/// harness names its own output directory with `-r "$PWD/packages"`).
fn is_dir(spec: &RepoSpec, dir: &Path) -> bool {
    let Some(root) = spec.local_root() else {
        return false;
    };
    let abs = |p: &Path| {
        p.canonicalize()
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    abs(&root) == abs(dir)
}

/// The repositories to read, each marked when it is the output
/// repository: `out_dir` first (what this run of pkgbuild published is
/// the freshest; it only wins exact ties), when it already holds an index
/// for `arch`, then the request's. A request entry naming `out_dir` is the
/// output repository, not a second copy of it: before the first build it
/// has no index yet, and that is no error.
fn specs(req: &Request, out_dir: Option<&Path>, arch: &str) -> Result<Vec<(RepoSpec, bool)>> {
    let mut v: Vec<(RepoSpec, bool)> = Vec::new();
    if let Some(dir) = out_dir {
        if dir.join(arch).join("APKINDEX.tar.gz").is_file() {
            v.push((RepoSpec::parse(&dir.to_string_lossy())?, true));
        }
    }
    for r in &req.repositories {
        let spec = RepoSpec::parse(r).with_context(|| format!("repository {r:?}"))?;
        // Already first in the list, or without an index yet.
        if spec.tag.is_none() && out_dir.is_some_and(|d| is_dir(&spec, d)) {
            continue;
        }
        if !v
            .iter()
            .any(|(s, _)| s.url == spec.url && s.tag == spec.tag)
        {
            v.push((spec, false));
        }
    }
    Ok(v)
}

/// Read every index (trust checked) and resolve the request in them.
pub fn resolve(
    client: &Client,
    req: &Request,
    out_dir: Option<&Path>,
    arch: &str,
    own: Vec<TrustedKey>,
) -> Result<Resolved> {
    resolve_planned(client, req, out_dir, &[], arch, own)
}

/// [`resolve`], with `planned` (records of packages a recipe will build,
/// not necessarily built yet) as a repository read right after `out_dir`:
/// what `pkgbuild lock` resolves a test environment in, whose package
/// under test may not exist yet. A planned record is chosen only where
/// the output repository has no package of that exact version.
pub fn resolve_planned(
    client: &Client,
    req: &Request,
    out_dir: Option<&Path>,
    planned: &[IndexEntry],
    arch: &str,
    own: Vec<TrustedKey>,
) -> Result<Resolved> {
    let keys = upstream::load_keyring(&req.keyring, own, client)?;
    let mut log = Vec::new();
    let mut repos: Vec<RepoSpec> = Vec::new();
    let mut indexes: Vec<RepoIndex> = Vec::new();
    let mut sources: Vec<(RepoSpec, bool, Option<Vec<IndexEntry>>)> = specs(req, out_dir, arch)?
        .into_iter()
        .map(|(s, is_out)| (s, is_out, None))
        .collect();
    if !planned.is_empty() {
        let dir = out_dir.context("planned packages need the output repository")?;
        let spec = RepoSpec::parse(&dir.to_string_lossy())?;
        let at = usize::from(sources.first().is_some_and(|(_, is_out, _)| *is_out));
        sources.insert(at, (spec, false, Some(planned.to_vec())));
    }
    for (spec, is_out, planned) in sources {
        if let Some(entries) = planned {
            log.push(format!(
                "packages this recipe builds: {}",
                entries
                    .iter()
                    .map(|e| format!("{}-{}", e.info.name, e.info.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            indexes.push(RepoIndex { tag: None, entries });
            repos.push(spec);
            continue;
        }
        match client.index(&spec, arch, &keys) {
            Ok(idx) => {
                log.push(format!(
                    "repository {} ({} packages, signed by {})",
                    spec.url,
                    idx.entries.len(),
                    idx.signer
                ));
                indexes.push(RepoIndex {
                    tag: spec.tag.clone(),
                    entries: idx.entries,
                });
                repos.push(spec);
            }
            // The output repository is re-signed by every build; after a
            // key change it is simply not a source until rebuilt.
            Err(e) if is_out => log.push(format!("note: output repository not used: {e}")),
            Err(e) => return Err(e.into()),
        }
    }
    let picks = resolve::resolve(&indexes, &req.packages, arch)
        .map_err(|e| anyhow!("cannot resolve the environment:\n{e}"))?;
    let chosen = picks
        .into_iter()
        .map(|p| Chosen {
            repo: repos[p.repo].clone(),
            entry: indexes[p.repo].entries[p.entry].clone(),
        })
        .collect();
    Ok(Resolved { chosen, keys, log })
}

/// The lock records for a resolution.
pub fn lock_records(res: &Resolved, arch: &str) -> (Vec<LockRepo>, Vec<LockPackage>) {
    let (repos, pkgs, _) = lock_records_except(res, arch, &|_| false);
    (repos, pkgs)
}

/// The lock records for a resolution, where the packages `rebuilt` says
/// are rebuilt by every build are recorded by version only (a checksum
/// would be stale after the next build).
pub fn lock_records_except(
    res: &Resolved,
    arch: &str,
    rebuilt: &dyn Fn(&IndexEntry) -> bool,
) -> (Vec<LockRepo>, Vec<LockPackage>, Vec<LockRebuilt>) {
    let mut repos: Vec<LockRepo> = Vec::new();
    let mut pkgs = Vec::new();
    let mut by_version = Vec::new();
    for c in &res.chosen {
        if rebuilt(&c.entry) {
            by_version.push(LockRebuilt {
                name: c.entry.info.name.clone(),
                version: c.entry.info.version.clone(),
                architecture: arch.to_string(),
            });
            continue;
        }
        let url = format!("{}/{arch}/APKINDEX.tar.gz", c.repo.url);
        if !repos.iter().any(|r| r.url == url) {
            repos.push(LockRepo {
                name: c.repo.url.clone(),
                url,
                architecture: arch.to_string(),
            });
        }
        pkgs.push(LockPackage {
            name: c.entry.info.name.clone(),
            url: c.file_url(arch),
            version: c.entry.info.version.clone(),
            architecture: arch.to_string(),
            repository: c.repo.url.clone(),
            checksum: c.entry.checksum_field(),
            size: c.entry.file_size,
        });
    }
    (repos, pkgs, by_version)
}

/// A package file, checked, with its record.
struct Fetched {
    path: PathBuf,
    entry: IndexEntry,
    repository: String,
}

/// Fetch and check every chosen package (from the cache when it is there).
fn fetch_resolved(client: &Client, res: &Resolved, arch: &str) -> Result<Vec<Fetched>> {
    res.chosen
        .iter()
        .map(|c| {
            let path = client.package(&c.repo, arch, &c.entry)?;
            Ok(Fetched {
                path,
                entry: c.entry.clone(),
                repository: c.repo.url.clone(),
            })
        })
        .collect()
}

/// Fetch exactly the locked files; the record is read back from each
/// checked file (no index is read).
fn fetch_locked(client: &Client, pkgs: &[&LockPackage]) -> Result<Vec<Fetched>> {
    pkgs.iter()
        .map(|p| {
            let path = client.package_pinned(&p.url, &p.name, &p.version, &p.checksum, p.size)?;
            let entry = IndexEntry::from_package(&path)
                .with_context(|| format!("{}-{} ({})", p.name, p.version, p.url))?;
            if entry.checksum_field() != p.checksum {
                bail!(
                    "{}-{}: {} has control checksum {}, the lock file says {}",
                    p.name,
                    p.version,
                    p.url,
                    entry.checksum_field(),
                    p.checksum
                );
            }
            Ok(Fetched {
                path,
                entry,
                repository: p.repository.clone(),
            })
        })
        .collect()
}

/// The packages a lock pins by version only, from the output repository
/// (its index trusted as any other), each checked against its record.
fn fetch_rebuilt(
    inp: &Inputs,
    rebuilt: &[&LockRebuilt],
    keys: &[TrustedKey],
) -> Result<Vec<Fetched>> {
    let out = inp
        .out_dir
        .context("a lock with rebuilt packages needs the output repository")?;
    let out_repo = out.join(inp.arch);
    let missing = |r: &LockRebuilt| {
        anyhow!(
            "{}={} is not in {}/: build it first with pkgbuild build",
            r.name,
            r.version,
            out_repo.display()
        )
    };
    if !out_repo.join("APKINDEX.tar.gz").is_file() {
        return Err(missing(rebuilt[0]));
    }
    let spec = RepoSpec::parse(&out.to_string_lossy())?;
    let index = inp.client.index(&spec, inp.arch, keys)?;
    rebuilt
        .iter()
        .map(|r| {
            let entry = index
                .entries
                .iter()
                .find(|e| e.info.name == r.name && e.info.version == r.version)
                .ok_or_else(|| missing(r))?;
            Ok(Fetched {
                path: inp.client.package(&spec, inp.arch, entry)?,
                entry: entry.clone(),
                repository: spec.url.clone(),
            })
        })
        .collect()
}

/// Order `fetched` for installing by resolving the request in exactly
/// those packages: a lock that no longer covers what a rebuilt package
/// depends on (its scanned `so:` names change with the build) is stale.
fn closed_order(
    fetched: Vec<Fetched>,
    req: &Request,
    arch: &str,
    lock_path: &Path,
) -> Result<Vec<Fetched>> {
    let index = RepoIndex {
        tag: None,
        entries: fetched.iter().map(|f| f.entry.clone()).collect(),
    };
    // Tags name repositories; here everything is one closed set.
    let world: Vec<String> = req
        .packages
        .iter()
        .map(|p| p.split('@').next().unwrap_or(p).to_string())
        .collect();
    let picks = resolve::resolve(std::slice::from_ref(&index), &world, arch).map_err(|e| {
        anyhow!(
            "{}: the locked packages no longer satisfy the environment (run `pkgbuild lock` again):\n{e}",
            lock_path.display()
        )
    })?;
    let mut slots: Vec<Option<Fetched>> = fetched.into_iter().map(Some).collect();
    Ok(picks
        .iter()
        .filter_map(|p| slots.get_mut(p.entry).and_then(Option::take))
        .collect())
}

/// What was installed, for the log, the SBOM and the embedded recipe.
#[derive(Debug, Clone)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub checksum: String,
    pub repository: String,
}

/// A ready guest root.
pub struct GuestEnv {
    pub root: PathBuf,
    pub installed: Vec<Installed>,
    pub log: Vec<String>,
}

impl GuestEnv {
    /// `name=version` of every installed package, in install order.
    pub fn pins(&self) -> Vec<String> {
        self.installed
            .iter()
            .map(|i| format!("{}={}", i.name, i.version))
            .collect()
    }
}

/// Everything [`prepare`] needs.
pub struct Inputs<'a> {
    pub request: &'a Request,
    pub client: &'a Client,
    /// The output repository, read as the first repository when present.
    pub out_dir: Option<&'a Path>,
    pub arch: &'a str,
    pub own_keys: Vec<TrustedKey>,
    /// The part of a lock file to install from instead of resolving
    /// (checked fresh by the caller).
    pub lock: Option<LockedEnv<'a>>,
    /// Where unpacked roots are kept, keyed by their package set.
    pub templates: &'a Path,
    /// The fresh, private root to fill (must not exist or be empty).
    pub root: &'a Path,
    /// Empty scratch directory for running install scripts.
    pub scratch: &'a Path,
}

/// Resolve (or read the lock), fetch, check and install.
pub fn prepare(inp: &Inputs) -> Result<GuestEnv> {
    let mut log = Vec::new();
    let (fetched, keys) = match &inp.lock {
        Some(lock) => {
            let keys =
                upstream::load_keyring(&inp.request.keyring, inp.own_keys.clone(), inp.client)?;
            log.push(format!(
                "installing {} packages locked in {}{}",
                lock.packages.len(),
                lock.path.display(),
                if lock.rebuilt.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", and {} from the output repository",
                        lock.rebuilt
                            .iter()
                            .map(|r| format!("{}={}", r.name, r.version))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
            let mut fetched = fetch_locked(inp.client, &lock.packages)?;
            if !lock.rebuilt.is_empty() {
                fetched.extend(fetch_rebuilt(inp, &lock.rebuilt, &keys)?);
                fetched = closed_order(fetched, inp.request, inp.arch, lock.path)?;
            }
            (fetched, keys)
        }
        None => {
            let res = resolve(
                inp.client,
                inp.request,
                inp.out_dir,
                inp.arch,
                inp.own_keys.clone(),
            )?;
            log.extend(res.log.iter().cloned());
            (fetch_resolved(inp.client, &res, inp.arch)?, res.keys)
        }
    };
    let key_files: Vec<(String, Vec<u8>)> = keys
        .iter()
        .filter_map(|k| {
            use rsa::pkcs8::EncodePublicKey;
            let pem = k.key.to_public_key_pem(rsa::pkcs8::LineEnding::LF).ok()?;
            let name = if k.name.ends_with(".pub") {
                k.name.clone()
            } else {
                format!("{}.pub", k.name)
            };
            Some((name, pem.into_bytes()))
        })
        .collect();
    let world: Vec<String> = inp.request.packages.clone();
    let setup = RootSetup {
        arch: inp.arch,
        world: &world,
        repositories: &inp.request.repositories,
        keys: &key_files,
    };
    let pkgs: Vec<Package> = fetched
        .iter()
        .map(|f| Package {
            path: &f.path,
            entry: &f.entry,
            repository: &f.repository,
        })
        .collect();
    std::fs::create_dir_all(inp.root)
        .with_context(|| format!("{}: cannot create the guest root", inp.root.display()))?;
    let mut run_script = |s: &ScriptRun| run_script_in(inp.scratch, s);
    let report =
        install::install_cached(inp.templates, inp.root, &pkgs, &setup, &mut run_script)
            .with_context(|| format!("installing the environment into {}", inp.root.display()))?;
    log.push(format!(
        "installed {} packages ({} files, {} bytes; {} install scripts ran): {}",
        report.packages,
        report.files,
        report.bytes,
        report.scripts_run,
        fetched
            .iter()
            .map(|f| format!("{}-{}", f.entry.info.name, f.entry.info.version))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let installed = fetched
        .iter()
        .map(|f| Installed {
            name: f.entry.info.name.clone(),
            version: f.entry.info.version.clone(),
            checksum: f.entry.checksum_field(),
            repository: f.repository.clone(),
        })
        .collect();
    Ok(GuestEnv {
        root: inp.root.to_path_buf(),
        installed,
        log,
    })
}

/// Run one install script with the guest root as `/`, as apk runs
/// scripts in a chroot: no network, nothing of the host mounted.
fn run_script_in(scratch: &Path, s: &ScriptRun) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut config = SandboxConfig::new(scratch);
    // The installer may be filling a template rather than the final root.
    config.guest_root = Some(s.root.to_path_buf());
    let runner = sandbox::new_runner(RunnerKind::Bwrap, config).map_err(|e| e.to_string())?;
    let mut cmd = sandbox::script::quote(s.guest_path);
    for a in &s.args {
        cmd.push(' ');
        cmd.push_str(&sandbox::script::quote(a));
    }
    let step = StepSpec {
        label: format!("{}-{}.{}", s.package, s.version, s.kind),
        script: cmd,
        workdir: "/".into(),
        env: Default::default(),
    };
    let mut lines = Vec::new();
    let outcome = runner
        .run(&step, &mut |l| lines.push(l.to_string()))
        .map_err(|e| e.to_string())?;
    if outcome.success() {
        Ok(())
    } else {
        Err(format!(
            "{} script of {}-{} failed ({}):\n{}",
            s.kind,
            s.package,
            s.version,
            outcome
                .status
                .map_or("killed".to_string(), |c| format!("exit status {c}")),
            lines.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(repos: &[String]) -> Request {
        Request {
            repositories: repos.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn a_named_output_directory_without_an_index_yet_is_no_repository_error() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("packages");
        let other = tmp.path().join("base");
        let named = [
            out.display().to_string(),
            format!("file://{}/", out.display()),
            other.display().to_string(),
        ];
        let urls = |v: Vec<(RepoSpec, bool)>| {
            v.into_iter()
                .map(|(s, out)| (s.url, out))
                .collect::<Vec<_>>()
        };
        let got = urls(specs(&request(&named), Some(&out), "x86_64").unwrap());
        assert_eq!(got, [(other.display().to_string(), false)]);

        // With an index it is read once, first, as the output repository.
        std::fs::create_dir_all(out.join("x86_64")).unwrap();
        std::fs::write(out.join("x86_64/APKINDEX.tar.gz"), b"").unwrap();
        let got = urls(specs(&request(&named), Some(&out), "x86_64").unwrap());
        assert_eq!(
            got,
            [
                (out.display().to_string(), true),
                (other.display().to_string(), false)
            ]
        );

        // Another directory is an ordinary repository: its missing index
        // is the client's error to report.
        let got = urls(specs(&request(&named[2..]), None, "x86_64").unwrap());
        assert_eq!(got, [(other.display().to_string(), false)]);
    }
}
