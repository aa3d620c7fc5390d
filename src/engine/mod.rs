//! The build engine: the only module that sees the whole flow.
//!
//! compile the recipe → fetch sources on the host (checksums and commits
//! checked before any step runs) → run every step in the sandbox, main
//! pipeline first, then each subpackage's → for each `melange-out/<name>`:
//! lint, scan dependencies, add the SBOM, write a signed `.apk` into a
//! staging directory → under the repository lock, move the packages in and
//! rewrite the signed index. A failure at any point leaves the repository
//! as it was.

mod accounts;
mod assemble;
pub mod batch;
pub mod buildenv;
pub mod epoch;
pub mod guest;
pub mod inputs;
pub mod keys;
pub mod lockfile;
pub mod log;
pub mod multi;
pub mod rebuild;
pub mod report;
pub mod sources;
mod steps;
pub mod test;
pub mod workspace;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::apk::sign::SigningKey;
use crate::arch::Arch;
use crate::plan::{self, Plan};
use crate::repo::Repo;
use crate::sandbox::{self, RunnerKind, SandboxConfig};
use workspace::{Workspace, WorkspaceGuard};

pub use log::{BuildLog, Verbosity};

/// Everything a build needs, resolved from flags by the CLI.
#[derive(Clone)]
pub struct BuildOptions {
    pub recipe: PathBuf,
    pub out_dir: PathBuf,
    pub arch: Arch,
    pub runner: RunnerKind,
    /// None: the recipe's folder (or its `<package-name>/` subfolder).
    pub source_dir: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub pipeline_dirs: Vec<PathBuf>,
    pub build_options: Vec<String>,
    pub vars_file: Option<PathBuf>,
    /// Values from `--env-file`: reach the steps, never a package.
    pub secret_env: BTreeMap<String, String>,
    /// The env files themselves, kept out of the workspace copy.
    pub env_files: Vec<PathBuf>,
    /// The signing key and its public half, kept out of the workspace copy
    /// (as are the recipe's local `environment.contents.keyring` files).
    pub key_files: Vec<PathBuf>,
    pub network: bool,
    pub keep_workspace: bool,
    pub epoch: u64,
    pub legacy_sha1_signature: bool,
    pub description: Option<String>,
    /// Where packages of the build environment come from, beyond the
    /// recipe's own (`-r`, `-k`, `--package-append`).
    pub extra: ExtraContents,
    /// Fetching packages for hermetic environments.
    pub apk: ApkOptions,
    /// The whole build (environment, sources, steps) must end within
    /// this; the step running then is killed with all it started.
    pub timeout: Option<std::time::Duration>,
    /// Rewrite the repository index after publishing (melange's
    /// `--generate-index`, default true).
    pub generate_index: bool,
    /// Distribution namespace of the purls in the SBOM (`--namespace`).
    pub namespace: String,
    /// Do not copy the source directory into the workspace.
    pub empty_workspace: bool,
    /// Linters made required / warnings (`--lint-require`, `--lint-warn`).
    pub lint_require: Vec<String>,
    pub lint_warn: Vec<String>,
    /// `commit` of packages whose recipe sets none (`--git-commit`, or the
    /// recipe's git checkout HEAD).
    pub git_commit: Option<String>,
    /// `-i`: a failing step opens a shell in its sandbox (only set when
    /// stdin is a terminal).
    pub interactive: bool,
    /// `--workspace-dir`: the workspace (the steps' build root) is this
    /// directory, empty or absent before the build and kept after it.
    pub workspace_dir: Option<PathBuf>,
    /// `--git-repo-url`: the repository holding the recipe (SBOM).
    pub git_repo_url: Option<String>,
    /// `--license`: the licence of the recipe itself (SBOM).
    pub license: Option<String>,
    /// `--max-processes`, `--max-disk`: what each step may use.
    pub limits: sandbox::StepLimits,
}

/// The recipe's path inside its git checkout (`dir/name.yaml`), or its file
/// name outside one: how the SBOM names it.
pub fn recipe_repo_path(recipe: &Path) -> String {
    let name = recipe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = recipe
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = duct::cmd!("git", "rev-parse", "--show-prefix")
        .dir(dir)
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!("{prefix}{name}")
}

/// Command-line additions to `environment.contents` (melange's `-r`, `-k`,
/// `--package-append`).
#[derive(Debug, Clone, Default)]
pub struct ExtraContents {
    pub repositories: Vec<String>,
    pub keyring: Vec<String>,
    pub packages: Vec<String>,
}

/// How hermetic environments are fetched.
#[derive(Debug, Clone)]
pub struct ApkOptions {
    /// Downloaded indexes and packages, and unpacked root templates.
    pub cache_dir: PathBuf,
    /// Use only the cache and local repositories.
    pub offline: bool,
    /// Install from this lock file (default: `<recipe>.lock.json` when it
    /// exists).
    pub lockfile: Option<PathBuf>,
}

impl ApkOptions {
    /// `~/.cache/pkgbuild/apk`, online, no explicit lock.
    pub fn new(cache_dir: PathBuf) -> ApkOptions {
        ApkOptions {
            cache_dir,
            offline: false,
            lockfile: None,
        }
    }

    pub fn client(&self) -> anyhow::Result<crate::upstream::Client> {
        Ok(crate::upstream::Client::new(
            crate::upstream::ClientOptions {
                cache_dir: self.cache_dir.clone(),
                offline: self.offline,
                timeout: std::time::Duration::from_secs(60),
            },
        )?)
    }
}

/// The recipe's contents plus the command line's.
pub fn guest_request(contents: &plan::Contents, extra: &ExtraContents) -> guest::Request {
    let cat = |a: &[String], b: &[String]| {
        let mut v = a.to_vec();
        for x in b {
            if !v.contains(x) {
                v.push(x.clone());
            }
        }
        v
    };
    guest::Request {
        repositories: cat(&contents.repositories, &extra.repositories),
        keyring: cat(&contents.keyring, &extra.keyring),
        packages: cat(&contents.packages, &extra.packages),
    }
}

/// Why a build failed; `Step` failures are exit code 1, the rest depend on
/// the cause (the CLI maps compile errors to 2).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{package}: step {step:?} failed ({status})\n{tail}")]
    StepFailed {
        package: String,
        step: String,
        status: String,
        tail: String,
    },
    #[error("{package}: {count} required lint check(s) failed (a recipe turns one off for a package with `checks: disabled: [NAME]`):\n{findings}")]
    Lint {
        package: String,
        count: usize,
        findings: String,
    },
}

/// What a successful build produced.
#[derive(Debug)]
pub struct BuildSummary {
    pub packages: Vec<PathBuf>,
    pub index: PathBuf,
    pub log: PathBuf,
    pub skipped: Option<String>,
}

/// Build one recipe. `key` signs packages and index.
pub fn build(
    opts: &BuildOptions,
    key: &SigningKey,
    log: &BuildLog,
) -> anyhow::Result<BuildSummary> {
    let plan = compile_plan(opts)?;
    build_plan(opts, &plan, key, log)
}

/// Compile `opts.recipe` exactly as [`build`] does (the host runner's
/// build root is part of the plan), with the checks that refuse a plan
/// before any step runs. Errors are input errors (exit code 2).
pub fn compile_plan(opts: &BuildOptions) -> anyhow::Result<Plan> {
    let build_root = match (opts.runner, &opts.workspace_dir) {
        (RunnerKind::Bwrap, _) => "/home/build".to_string(),
        // The steps see the given directory itself.
        (RunnerKind::Host, Some(dir)) => workspace::given_dir(dir)
            .map_err(crate::error::input_error)?
            .to_string_lossy()
            .into_owned(),
        (RunnerKind::Host, None) => {
            // The name is needed before compiling: the build root is part
            // of the plan (targets.destdir and friends).
            let id = plan::package_version(&opts.recipe).map_err(crate::error::input_error)?;
            let name = id.rsplitn(3, '-').nth(2).unwrap_or(&id);
            workspace::fixed_dir(name, opts.arch.apk())
                .to_string_lossy()
                .into_owned()
        }
    };
    let compile_opts = plan::CompileOptions {
        arch: opts.arch,
        pipeline_dirs: opts.pipeline_dirs.clone(),
        build_options: opts.build_options.clone(),
        vars_file: opts.vars_file.clone(),
        build_root,
    };
    let plan = plan::compile(&opts.recipe, &compile_opts).map_err(crate::error::input_error)?;
    let refuse =
        |e: String| crate::error::input_error(anyhow::anyhow!("{}: {e}", opts.recipe.display()));
    check_apk_metadata(&plan).map_err(refuse)?;
    // The recipe embedded in every package is written after the build;
    // a plan it cannot express is refused before any step runs.
    plan::emit::recipe_yaml(&plan).map_err(|e| refuse(e.to_string()))?;
    if plan.packages.is_empty() {
        return Err(refuse("recipe defines no package".into()));
    }
    Ok(plan)
}

/// The file names `<name>-<version>-r<epoch>.apk` a plan publishes.
pub fn package_files(plan: &Plan) -> Vec<String> {
    plan.packages
        .iter()
        .map(|p| format!("{}-{}.apk", p.name, p.full_version))
        .collect()
}

/// Where [`build_plan`] writes the full log of `plan`.
pub fn log_path(opts: &BuildOptions, plan: &Plan) -> PathBuf {
    let id = plan
        .packages
        .first()
        .map(|m| format!("{}-{}", m.name, m.full_version))
        .unwrap_or_default();
    opts.out_dir.join("logs").join(format!("{id}.log"))
}

/// Build a plan from [`compile_plan`] for the same `opts`.
pub fn build_plan(
    opts: &BuildOptions,
    plan: &Plan,
    key: &SigningKey,
    log: &BuildLog,
) -> anyhow::Result<BuildSummary> {
    let started = std::time::Instant::now();
    let main = plan
        .packages
        .first()
        .context("recipe defines no package")?
        .clone();
    let repo = Repo::new(&opts.out_dir, opts.arch.apk());
    let log_path = log_path(opts, plan);

    if !plan.builds_for_arch {
        let why = skip_reason(plan, opts.arch);
        log.info(&format!("{}: {why}", main.name));
        return Ok(BuildSummary {
            packages: vec![],
            index: repo.index_path(),
            log: log_path,
            skipped: Some(why),
        });
    }
    let workspace = match (&opts.workspace_dir, opts.runner) {
        (Some(dir), _) => Workspace::given(dir).map_err(crate::error::input_error)?,
        (None, RunnerKind::Bwrap) => Workspace::temporary()?,
        (None, RunnerKind::Host) => Workspace::fixed(&main.name, opts.arch.apk(), log)?,
    };
    let workspace = WorkspaceGuard::new(workspace, opts.keep_workspace, log);
    let ws_dir = workspace.build_dir().to_path_buf();
    let build_root = match opts.runner {
        RunnerKind::Bwrap => "/home/build".to_string(),
        RunnerKind::Host => ws_dir.to_string_lossy().into_owned(),
    };
    if build_root != plan.build_root.trim_end_matches('/') && opts.runner == RunnerKind::Host {
        bail!(
            "{}: compiled for build root {}, but the workspace is {build_root}",
            opts.recipe.display(),
            plan.build_root
        );
    }
    log.open_file(&log_path)
        .with_context(|| format!("{}: cannot write build log", log_path.display()))?;
    log.info(&format!(
        "building {}-{} for {} (SOURCE_DATE_EPOCH={})",
        main.name,
        main.full_version,
        opts.arch.apk(),
        opts.epoch
    ));
    // Before sources: an untrusted index or a package that does not match
    // its record stops the build before any download of sources.
    let request = guest_request(&plan.environment.contents, &opts.extra);
    let guest = if request.is_hermetic() {
        Some(prepare_guest(opts, &request, &workspace, key, log)?)
    } else {
        if let Some(lock) = &opts.apk.lockfile {
            return Err(crate::error::input_error(anyhow::anyhow!(
                "{}: the lock file pins a hermetic build environment, but no repository is named to install it from; name repositories in environment.contents.repositories or with -r, or drop --lockfile",
                lock.display()
            )));
        }
        log.info("note: this build is not hermetic (no repository named): steps see the host's /usr; name repositories in environment.contents.repositories or with -r to build from packages alone");
        if Arch::host() != Some(opts.arch) {
            log.info(&format!(
                "note: building for {} with this machine's own programs: the steps run {} tools and nothing built for {} is executed by the build",
                opts.arch.apk(),
                Arch::host().map_or("host", |a| a.apk()),
                opts.arch.apk()
            ));
        }
        None
    };
    let mut contents = plan.environment.contents.clone();
    contents.packages = request.packages.clone();
    let env = match &guest {
        Some(g) => buildenv::Prepared {
            sbom: g.pins(),
            ..Default::default()
        },
        None => buildenv::prepare(&buildenv::Inputs {
            contents: &contents,
            out_dir: &opts.out_dir,
            arch: opts.arch.apk(),
            key,
            runner: opts.runner,
            sysroot: &workspace.sysroot_dir(),
            scratch: workspace.scratch(),
        })?,
    };
    for line in &env.log {
        log.info(line);
    }

    // Sources first: a wrong checksum or commit stops the build here.
    let sources_dir = workspace.scratch().join("sources");
    fs::create_dir_all(&sources_dir)?;
    let prepared = sources::prepare(
        plan,
        &opts.cache_dir,
        &sources_dir,
        opts.runner,
        opts.epoch,
        log,
    )?;

    let src_dir = opts
        .source_dir
        .clone()
        .unwrap_or_else(|| default_source_dir(&opts.recipe, &main.name));
    if src_dir.is_dir() && !opts.empty_workspace {
        // The workspace itself may lie inside the source directory (a
        // recipe folder that holds $TMPDIR): never copy it into itself.
        let mut exclude = vec![
            opts.out_dir.clone(),
            opts.cache_dir.clone(),
            ws_dir.clone(),
            workspace.scratch().to_path_buf(),
        ];
        exclude.extend(opts.env_files.iter().cloned());
        exclude.extend(opts.key_files.iter().cloned());
        exclude.extend(
            plan.environment
                .contents
                .keyring
                .iter()
                .filter_map(|k| buildenv::local_path(k)),
        );
        workspace::copy_source(&src_dir, &ws_dir, &exclude).with_context(|| {
            format!("{}: cannot copy sources into workspace", src_dir.display())
        })?;
    }
    let out_root = ws_dir.join("melange-out");
    for p in &plan.packages {
        fs::create_dir_all(out_root.join(&p.name))?;
    }

    // melange's persistent cache (Go modules, pip, npm) survives builds;
    // it is a directory of its own, never the source download cache.
    let mut rw_binds = Vec::new();
    if guest.is_some() {
        let shared = opts.cache_dir.join("melange");
        fs::create_dir_all(&shared)
            .with_context(|| format!("{}: cannot create cache", shared.display()))?;
        rw_binds.push((shared, "/var/cache/melange".to_string()));
    }
    let identity = accounts::identity(&plan.environment, &plan.capabilities)
        .map_err(|e| crate::error::input_error(e.context(opts.recipe.display().to_string())))?;
    let mut base_env: BTreeMap<String, String> = env.base_env.clone();
    base_env.insert("SOURCE_DATE_EPOCH".into(), opts.epoch.to_string());
    base_env.extend(opts.secret_env.clone());
    let mut ro_binds = prepared.ro_binds.clone();
    ro_binds.extend(env.ro_bind.clone());
    let config = SandboxConfig {
        workspace: ws_dir.clone(),
        build_root: build_root.clone(),
        network: opts.network,
        ro_binds,
        base_env,
        timeout: None,
        deadline: opts.timeout.map(|limit| sandbox::Deadline {
            at: started + limit,
            limit,
        }),
        guest_root: guest.as_ref().map(|g| g.root.clone()),
        rw_binds,
        identity,
        limits: opts.limits,
    };
    log.debug(&format!(
        "runner {} with build root {} (host {}); network {}",
        match opts.runner {
            RunnerKind::Bwrap => "bwrap",
            RunnerKind::Host => "host",
        },
        config.build_root,
        config.workspace.display(),
        if config.network { "on" } else { "off" },
    ));
    for (host, guest) in &config.ro_binds {
        log.debug(&format!("read-only mount {} at {guest}", host.display()));
    }
    let runner = sandbox::new_runner(opts.runner, config)?;

    steps::run_all_steps(
        plan,
        &prepared,
        env.visible.as_deref(),
        runner.as_ref(),
        log,
        opts.interactive,
    )?;

    let staging = repo.staging_dir()?;
    // The embedded recipe records the environment exactly as installed,
    // so rebuilding from it installs the same versions.
    let mut recorded = plan.clone();
    recorded.environment.contents = contents;
    if let Some(g) = &guest {
        recorded.environment.contents.repositories = request.repositories.clone();
        recorded.environment.contents.keyring = request.keyring.clone();
        recorded.environment.contents.packages = g.pins();
    }
    let written = assemble::package_all(
        &recorded,
        &out_root,
        &prepared,
        &env.sbom,
        opts,
        key,
        staging.path(),
        log,
    );
    let written = written?;

    let lock =
        repo.lock(|| log.info("waiting for another build to release the repository lock"))?;
    let published = if opts.generate_index {
        let published = repo.publish(&written, Some(key), opts.description.as_deref(), &lock)?;
        for s in &published.skipped {
            log.warn(&s.to_string());
        }
        published.packages
    } else {
        repo.publish_unindexed(&written, &lock)?
    };
    drop(lock);
    for p in &published {
        log.info(&format!("wrote {}", p.display()));
    }
    if opts.generate_index {
        log.info(&format!("updated {}", repo.index_path().display()));
    } else {
        log.info("index not updated (--generate-index=false): run `pkgbuild index` to list the new packages");
    }
    drop(workspace);
    log.flush();
    Ok(BuildSummary {
        packages: published,
        index: repo.index_path(),
        log: log_path,
        skipped: None,
    })
}

/// Resolve (or read the lock), fetch and install the hermetic guest root
/// of one build.
fn prepare_guest(
    opts: &BuildOptions,
    request: &guest::Request,
    workspace: &Workspace,
    key: &SigningKey,
    log: &BuildLog,
) -> anyhow::Result<guest::GuestEnv> {
    if opts.runner != RunnerKind::Bwrap {
        anyhow::bail!(
            "{}: a hermetic build (repositories are named) runs its steps in the installed root, which needs the bwrap runner; install bubblewrap or drop the repositories",
            opts.recipe.display()
        );
    }
    if !can_execute(opts.arch) {
        anyhow::bail!(
            "{}: cannot build for {} here: a hermetic build runs the guest root's own {} programs (its /bin/sh first), and this {} machine cannot execute them; register qemu-user for {} with binfmt_misc (Debian: qemu-user-static) or build on a {} machine",
            opts.recipe.display(),
            opts.arch.apk(),
            opts.arch.apk(),
            Arch::host().map_or("unknown", |a| a.apk()),
            opts.arch.apk(),
            opts.arch.apk()
        );
    }
    let lock_path = opts
        .apk
        .lockfile
        .clone()
        .or_else(|| Some(lockfile::default_path(&opts.recipe)).filter(|p| p.is_file()));
    let lock = match &lock_path {
        Some(p) => Some(lockfile::LockFile::read(p).map_err(crate::error::input_error)?),
        None => None,
    };
    let locked = match (&lock_path, &lock) {
        (Some(path), Some(lock)) => Some(
            lock.build_env(path, &request.key(), opts.arch.apk())
                .with_context(|| opts.recipe.display().to_string())?,
        ),
        _ => None,
    };
    let client = opts.apk.client()?;
    let root = workspace.scratch().join("root");
    let env = guest::prepare(&guest::Inputs {
        request,
        client: &client,
        out_dir: Some(&opts.out_dir),
        arch: opts.arch.apk(),
        own_keys: vec![crate::upstream::TrustedKey::of(key)],
        lock: locked,
        templates: &opts.apk.cache_dir.join("roots"),
        root: &root,
        scratch: &workspace.scratch().join("scripts"),
    })
    .with_context(|| opts.recipe.display().to_string())?;
    for line in &env.log {
        log.info(line);
    }
    log.info(&format!(
        "hermetic build: {} is / for the steps ({} package downloads)",
        root.display(),
        client.downloads()
    ));
    Ok(env)
}

/// Whether programs built for `arch` run here: the host's own, or one a
/// binfmt_misc handler (qemu-user) is registered for.
fn can_execute(arch: Arch) -> bool {
    if Arch::host() == Some(arch) {
        return true;
    }
    let qemu = match arch {
        Arch::X86_64 => "x86_64",
        Arch::Aarch64 => "aarch64",
        Arch::Armv7 | Arch::Armhf => "arm",
        Arch::X86 => "i386",
        Arch::Ppc64le => "ppc64le",
        Arch::S390x => "s390x",
        Arch::Riscv64 => "riscv64",
        Arch::Loongarch64 => "loongarch64",
    };
    let Ok(entries) = fs::read_dir("/proc/sys/fs/binfmt_misc") else {
        return false;
    };
    entries.filter_map(Result::ok).any(|e| {
        e.file_name().to_string_lossy() == format!("qemu-{qemu}")
            && fs::read_to_string(e.path()).is_ok_and(|t| t.starts_with("enabled"))
    })
}

/// Why a plan is not built for `arch` (when `builds_for_arch` is false).
pub fn skip_reason(plan: &Plan, arch: Arch) -> String {
    let targets = plan
        .packages
        .first()
        .map(|m| m.target_architecture.join(", "))
        .unwrap_or_default();
    format!(
        "not built for {} (target-architecture: {targets})",
        arch.apk()
    )
}

/// What the recipe may say but a package cannot carry, refused before any
/// step runs rather than after the whole build (or, for priorities, dropped
/// without a word as before).
fn check_apk_metadata(plan: &Plan) -> Result<(), String> {
    for p in &plan.packages {
        let d = &p.dependencies;
        for (what, value) in [
            ("provider-priority", &d.provider_priority),
            ("replaces-priority", &d.replaces_priority),
        ] {
            if let Some(v) = value.as_deref().filter(|v| v.parse::<u64>().is_err()) {
                return Err(format!(
                    "package {}: dependencies.{what} is `{v}`, but apk stores priorities as non-negative integers",
                    p.name
                ));
            }
        }
        if let Some(t) = &p.scriptlets.trigger {
            let problem = match (t.script.trim().is_empty(), t.paths.is_empty()) {
                (true, false) => "has paths but no script",
                (false, true) => "has a script but no paths to fire it",
                _ => continue,
            };
            return Err(format!("package {}: scriptlets.trigger {problem}", p.name));
        }
    }
    Ok(())
}

/// melange's layout keeps a recipe's side files in `<recipe dir>/<name>/`;
/// a standalone recipe keeps them beside itself.
pub(crate) fn default_source_dir(recipe: &Path, name: &str) -> PathBuf {
    let dir = recipe
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let sub = dir.join(name);
    if sub.is_dir() {
        sub
    } else {
        dir.to_path_buf()
    }
}

/// Used by the CLI to refuse clearly instead of failing mid-build.
pub fn check_runner(kind: RunnerKind) -> anyhow::Result<()> {
    if kind == RunnerKind::Bwrap && !sandbox::bwrap_available() {
        bail!("bubblewrap (bwrap) is not installed: install it (e.g. `apt-get install bubblewrap`) or pass --runner host");
    }
    Ok(())
}
