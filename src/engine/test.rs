//! `pkgbuild test`: run a recipe's `test:` pipelines against the packages
//! an earlier `pkgbuild build` put into the output repository, as
//! `melange test` does.
//!
//! Each package with a `test:` block (the main package and every
//! subpackage) is tested on its own, in a fresh workspace seeded with the
//! source directory (fixtures), with a fresh private sysroot holding
//! exactly the package under test (`name=full-version`, from
//! `<out-dir>/<arch>/` and nowhere else), its runtime closure from the
//! local repositories, and the test's `environment.contents.packages`.
//! melange builds a fresh image per subpackage for the same reason: a
//! package must not pass because a sibling happened to be installed.
//!
//! When the test environment names a repository (its own, or `-r`), the
//! test is hermetic: all of that is installed into a fresh guest root
//! ([`guest`], or exactly what the lock file's `tests` entry says) and the
//! steps run with that root as `/`, as a hermetic build's do. Otherwise:
//!
//! The sysroot is found the way builds find theirs ([`buildenv`]), with
//! one difference: the package's programs come FIRST on `PATH` and its
//! libraries first on `LD_LIBRARY_PATH`, also when a step sets them. A
//! build wants the host's compiler before anything a package ships; a test
//! wants the thing under test to be what runs, even when the host has a
//! program of the same name.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::accounts;
use super::buildenv::{self, TrustedKey};
use super::guest;
use super::lockfile;
use super::steps::{self, FlatStep};
use super::workspace::{self, Workspace};
use super::BuildLog;
use super::{ApkOptions, ExtraContents};
use crate::apk::index::IndexEntry;
use crate::apk::pkginfo::PkgInfo;
use crate::arch::Arch;
use crate::plan::{self, PackagePlan, Plan, TestPlan};
use crate::sandbox::{self, RunnerKind, SandboxConfig, StepSpec};

/// Everything a test run needs, resolved from flags by the CLI.
pub struct TestOptions {
    pub recipe: PathBuf,
    pub out_dir: PathBuf,
    pub arch: Arch,
    pub runner: RunnerKind,
    /// None: the recipe's folder (or its `<package-name>/` subfolder).
    pub source_dir: Option<PathBuf>,
    pub pipeline_dirs: Vec<PathBuf>,
    pub build_options: Vec<String>,
    /// Values from `--env-file`: reach the steps.
    pub secret_env: BTreeMap<String, String>,
    /// The env files themselves, kept out of the workspace copy.
    pub env_files: Vec<PathBuf>,
    pub network: bool,
    /// Trace every command of every step (`set -x`), as `melange test --debug`.
    pub trace: bool,
    /// Keys whose signature makes a local index trusted (a test
    /// environment's own `keyring` entries are added to these).
    pub trusted: Vec<TrustedKey>,
    /// Source cache; its `melange/` subdirectory is the persistent
    /// `/var/cache/melange` of hermetic tests, shared with builds.
    pub cache_dir: PathBuf,
    /// `-r`, `-k`, `--package-append`: added to every test environment.
    pub extra: ExtraContents,
    /// Fetching packages (cache, offline, lock file) for hermetic tests.
    pub apk: ApkOptions,
    /// melange's `test RECIPE PACKAGE`: the main package's test runs
    /// against this package (an apk dependency string) from the
    /// repositories, instead of the version this recipe builds.
    pub package: Option<String>,
    /// Each package's test must end within this (`--timeout`).
    pub timeout: Option<std::time::Duration>,
    /// `-i`: a failing step opens a shell in its sandbox (only set when
    /// stdin is a terminal).
    pub interactive: bool,
    /// `--max-processes`, `--max-disk`: what each step may use.
    pub limits: sandbox::StepLimits,
}

/// How one package's test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step exited 0; the number of steps run.
    Pass(usize),
    /// The message names the package, the step, its status and the tail
    /// of its output, or why the environment could not be set up.
    Fail(String),
    /// Why nothing ran (no `test:` block, not built for this arch).
    Skip(String),
}

/// One package's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageResult {
    /// `name-full_version`.
    pub package: String,
    pub outcome: Outcome,
}

impl PackageResult {
    /// The summary line: `PASS name-1.0-r0 (2 steps)`, `FAIL ...: why`,
    /// `SKIP ...: why`.
    pub fn summary(&self) -> String {
        match &self.outcome {
            Outcome::Pass(n) => {
                let s = if *n == 1 { "" } else { "s" };
                format!("PASS {} ({n} step{s})", self.package)
            }
            Outcome::Fail(why) => format!(
                "FAIL {}: {}",
                self.package,
                why.lines().next().unwrap_or_default()
            ),
            Outcome::Skip(why) => format!("SKIP {}: {why}", self.package),
        }
    }
}

/// A recipe compiled for testing, with the workspace its plan was compiled
/// for (the host runner's steps see the workspace's host path, and
/// `working-directory` is resolved against it at compile time).
pub struct Prepared {
    plan: Plan,
    workspace: Workspace,
}

/// Compile `opts.recipe` for testing. Every error here is the recipe's
/// (exit code 2), found before any test runs.
pub fn compile(opts: &TestOptions) -> anyhow::Result<Prepared> {
    let workspace = Workspace::temporary()?;
    let build_root = match opts.runner {
        RunnerKind::Bwrap => "/home/build".to_string(),
        RunnerKind::Host => workspace.build_dir().to_string_lossy().into_owned(),
    };
    let compile_opts = plan::CompileOptions {
        arch: opts.arch,
        pipeline_dirs: opts.pipeline_dirs.clone(),
        build_options: opts.build_options.clone(),
        vars_file: None,
        build_root,
    };
    let plan = plan::compile(&opts.recipe, &compile_opts).map_err(crate::error::input_error)?;
    if plan.packages.is_empty() {
        return Err(crate::error::input_error(anyhow::anyhow!(
            "{}: recipe defines no package",
            opts.recipe.display()
        )));
    }
    Ok(Prepared { plan, workspace })
}

/// Test every package of a compiled recipe, main package first, calling
/// `report` with each result as it is known. An `Err` is a failure of the
/// machinery (the sandbox could not start), not of a test.
pub fn run(
    opts: &TestOptions,
    prepared: Prepared,
    log: &BuildLog,
    report: &mut dyn FnMut(&PackageResult),
) -> anyhow::Result<Vec<PackageResult>> {
    let Prepared { plan, workspace } = prepared;
    let main = &plan.packages[0];
    let log_path = opts
        .out_dir
        .join("logs")
        .join(format!("{}-{}.test.log", main.name, main.full_version));
    let src_dir = opts
        .source_dir
        .clone()
        .unwrap_or_else(|| super::default_source_dir(&opts.recipe, &main.name));
    let mut results = Vec::new();
    let mut done = |r: PackageResult, results: &mut Vec<PackageResult>| {
        log.debug(&r.summary());
        report(&r);
        results.push(r);
    };
    if !plan.builds_for_arch {
        let why = format!(
            "not built for {} (target-architecture: {})",
            opts.arch.apk(),
            main.target_architecture.join(", ")
        );
        for p in &plan.packages {
            done(result(p, Outcome::Skip(why.clone())), &mut results);
        }
        return Ok(results);
    }
    if plan.packages.iter().any(|p| p.test.is_some()) {
        log.open_file(&log_path)
            .with_context(|| format!("{}: cannot write test log", log_path.display()))?;
    }
    let host_tests = plan
        .packages
        .iter()
        .filter_map(|p| Some((p, p.test.as_ref()?)))
        .filter(|(p, t)| !test_request(p, t, &opts.extra).is_hermetic())
        .count();
    if host_tests > 0 {
        log.info("note: this test is not hermetic (no repository named): the package is installed in a side sysroot over the host's /usr; name repositories in the test's environment.contents.repositories or with -r to test in a root made of packages alone");
    }
    for pkg in &plan.packages {
        let outcome = match &pkg.test {
            None => Outcome::Skip("no test".into()),
            Some(t) => {
                log.info(&format!(
                    "testing {}-{} for {}",
                    pkg.name,
                    pkg.full_version,
                    opts.arch.apk()
                ));
                test_package(opts, &workspace, &src_dir, &plan, pkg, t, log)?
            }
        };
        done(result(pkg, outcome), &mut results);
    }
    log.flush();
    Ok(results)
}

fn result(p: &PackagePlan, outcome: Outcome) -> PackageResult {
    PackageResult {
        package: format!("{}-{}", p.name, p.full_version),
        outcome,
    }
}

/// The request that installs exactly the package under test.
fn pinned(p: &PackagePlan) -> String {
    format!("{}={}", p.name, p.full_version)
}

/// The test environment's contents with the package under test pinned to
/// the version this recipe builds, first (the compiled plan lists it by
/// name only, which any version in any local repository would meet).
fn test_contents(name: &str, pinned: String, t: &TestPlan) -> plan::Contents {
    let mut c = t.environment.contents.clone();
    c.packages.retain(|x| x.trim() != name);
    c.packages.insert(0, pinned);
    c
}

/// What the test environment of `pkg` installs: the test's contents with
/// the package under test pinned first, plus the command line's `-r`,
/// `-k` and `--package-append`. Hermetic when it names a repository.
pub fn test_request(pkg: &PackagePlan, t: &TestPlan, extra: &ExtraContents) -> guest::Request {
    super::guest_request(&test_contents(&pkg.name, pinned(pkg), t), extra)
}

/// [`test_request`] with the package under test replaced by `under_test`
/// (melange's `test RECIPE PACKAGE`): taken from the repositories as any
/// other request, not pinned to what this recipe builds.
fn request_for(pkg: &PackagePlan, t: &TestPlan, opts: &TestOptions, main: bool) -> guest::Request {
    match (&opts.package, main) {
        (Some(p), true) => {
            let name = p
                .parse::<crate::apk::dep::Dep>()
                .map_or_else(|_| p.clone(), |d| d.name);
            let mut c = t.environment.contents.clone();
            c.packages
                .retain(|x| x.trim() != pkg.name && x.trim() != name);
            c.packages.insert(0, p.clone());
            super::guest_request(&c, &opts.extra)
        }
        _ => test_request(pkg, t, &opts.extra),
    }
}

/// Index records of the packages `plan` builds, from what the recipe
/// declares (a built package adds its scanned `so:`/`cmd:` names): what
/// `pkgbuild lock` resolves a test environment with before (or without)
/// the output repository holding them.
pub fn planned_entries(plan: &Plan) -> Vec<IndexEntry> {
    plan.packages
        .iter()
        .map(|p| IndexEntry {
            info: PkgInfo {
                name: p.name.clone(),
                version: p.full_version.clone(),
                arch: plan.arch.clone(),
                depends: p.dependencies.runtime.clone(),
                provides: p.dependencies.provides.clone(),
                provider_priority: p
                    .dependencies
                    .provider_priority
                    .as_deref()
                    .and_then(|v| v.parse().ok()),
                ..PkgInfo::default()
            },
            control_sha1: [0; 20],
            file_size: 0,
        })
        .collect()
}

/// Whether `e` is one of the packages `plan` builds, at the version it
/// builds (rebuilt by every build, so never pinned by checksum).
pub fn is_rebuilt(plan: &Plan, e: &IndexEntry) -> bool {
    plan.packages
        .iter()
        .any(|p| p.name == e.info.name && p.full_version == e.info.version)
}

/// Where a test's steps run: a side sysroot over the host, or a guest
/// root installed from repositories that is `/` for the steps.
enum TestEnv {
    /// The sysroot as the steps see it (its host or guest path).
    Sysroot(buildenv::Prepared, String),
    Guest(guest::GuestEnv),
}

/// Set up one package's environment and run its steps.
fn test_package(
    opts: &TestOptions,
    workspace: &Workspace,
    src_dir: &Path,
    plan: &Plan,
    pkg: &PackagePlan,
    t: &TestPlan,
    log: &BuildLog,
) -> anyhow::Result<Outcome> {
    let ws_dir = workspace.build_dir();
    // Fresh for every package: a test must not see what the previous
    // package's test left behind.
    if fs::symlink_metadata(ws_dir).is_ok() {
        fs::remove_dir_all(ws_dir)
            .with_context(|| format!("{}: cannot clear workspace", ws_dir.display()))?;
    }
    fs::create_dir_all(ws_dir)?;
    let main = std::ptr::eq(pkg, &plan.packages[0]);
    let request = request_for(pkg, t, opts, main);
    let given = opts.package.is_some() && main;
    if given && !request.is_hermetic() {
        return Ok(Outcome::Fail(format!(
            "{}: testing {} needs a repository to install it from (-r or the test's environment.contents.repositories)",
            pkg.name,
            opts.package.as_deref().unwrap_or_default()
        )));
    }
    let env = if request.is_hermetic() {
        guest_environment(opts, workspace, pkg, &request, given).map(TestEnv::Guest)
    } else {
        environment(opts, workspace, pkg, t).and_then(|env| {
            let visible = env
                .visible
                .clone()
                .context("the package under test was not installed")?;
            Ok(TestEnv::Sysroot(env, visible))
        })
    };
    let env = match env {
        Ok(env) => env,
        Err(e) => {
            return Ok(Outcome::Fail(format!(
                "{}: {}",
                pkg.name,
                crate::error::chain(&e)
            )))
        }
    };
    let lines = match &env {
        TestEnv::Sysroot(e, _) => &e.log,
        TestEnv::Guest(g) => &g.log,
    };
    for line in lines {
        log.info(line);
    }
    if let TestEnv::Guest(g) = &env {
        log.info(&format!(
            "hermetic test: {} is / for the steps",
            g.root.display()
        ));
    }
    if src_dir.is_dir() {
        let mut exclude = vec![opts.out_dir.clone(), opts.cache_dir.clone()];
        exclude.extend(opts.env_files.iter().cloned());
        workspace::copy_source(src_dir, ws_dir, &exclude).with_context(|| {
            format!("{}: cannot copy sources into workspace", src_dir.display())
        })?;
    }
    let identity = accounts::identity(&t.environment, &plan.capabilities)
        .map_err(crate::error::input_error)?;
    let mut config = SandboxConfig {
        workspace: ws_dir.to_path_buf(),
        build_root: match opts.runner {
            RunnerKind::Bwrap => "/home/build".into(),
            RunnerKind::Host => ws_dir.to_string_lossy().into_owned(),
        },
        network: opts.network,
        ro_binds: Vec::new(),
        base_env: BTreeMap::new(),
        timeout: None,
        deadline: opts.timeout.map(|limit| sandbox::Deadline {
            at: std::time::Instant::now() + limit,
            limit,
        }),
        guest_root: None,
        rw_binds: Vec::new(),
        identity,
        limits: opts.limits,
    };
    match &env {
        TestEnv::Sysroot(e, visible) => {
            config.ro_binds = e.ro_bind.clone().into_iter().collect();
            config.base_env = e.base_env.clone();
            config.base_env.insert(
                "PATH".into(),
                format!("{}:{}", programs_path(visible), sandbox::DEFAULT_PATH),
            );
        }
        TestEnv::Guest(g) => {
            // melange's persistent cache, shared with builds.
            let shared = opts.cache_dir.join("melange");
            fs::create_dir_all(&shared)
                .with_context(|| format!("{}: cannot create cache", shared.display()))?;
            config
                .rw_binds
                .push((shared, "/var/cache/melange".to_string()));
            config.guest_root = Some(g.root.clone());
        }
    }
    config.base_env.extend(opts.secret_env.clone());
    // A root the steps cannot run in (no shell) fails this package's
    // test, not the whole run.
    let runner = match sandbox::new_runner(opts.runner, config) {
        Ok(r) => r,
        Err(e) => return Ok(Outcome::Fail(format!("{}: {e}", pkg.name))),
    };
    let flat = steps::flatten(&t.steps, "test", &|_| BTreeMap::new());
    let total = flat.len();
    for (i, FlatStep { label, step, .. }) in flat.iter().enumerate() {
        let prefix = format!("{}/{label}", pkg.name);
        log.step_start(&prefix, i + 1, total);
        let mut env_vars = step.environment.clone();
        if let TestEnv::Sysroot(_, visible) = &env {
            merge_test_env(&mut env_vars, visible);
        }
        let spec = StepSpec {
            label: prefix.clone(),
            script: steps::script(step, opts.trace),
            workdir: step.working_directory.clone(),
            env: env_vars,
        };
        let began = std::time::Instant::now();
        let outcome = runner.run(&spec, &mut |line| log.step_output(&prefix, line))?;
        log.step_finish(&prefix, began.elapsed(), outcome.success());
        if let Some(failed) = steps::failure(&pkg.name, label, &outcome) {
            if opts.interactive {
                steps::debug_shell(runner.as_ref(), &spec, &outcome, log);
            }
            return Ok(Outcome::Fail(failed.to_string()));
        }
    }
    Ok(Outcome::Pass(total))
}

/// Install the hermetic test environment of `pkg` into a fresh guest root:
/// from the lock file when there is one (which must lock this test), else
/// resolved in the output repository and the request's repositories. The
/// package under test must be the output repository's.
fn guest_environment(
    opts: &TestOptions,
    workspace: &Workspace,
    pkg: &PackagePlan,
    request: &guest::Request,
    given: bool,
) -> anyhow::Result<guest::GuestEnv> {
    if opts.runner != RunnerKind::Bwrap {
        anyhow::bail!(
            "a hermetic test (repositories are named) runs its steps in the installed root, which needs the bwrap runner; install bubblewrap or drop the repositories"
        );
    }
    let arch = opts.arch.apk();
    let out_repo = opts.out_dir.join(arch);
    let not_built = || {
        anyhow::anyhow!(
            "{} is not in {}/: build it first with pkgbuild build",
            pinned(pkg),
            out_repo.display()
        )
    };
    let file = out_repo.join(format!("{}-{}.apk", pkg.name, pkg.full_version));
    if !given && (!file.is_file() || !out_repo.join("APKINDEX.tar.gz").is_file()) {
        return Err(not_built());
    }
    let lock_path = opts
        .apk
        .lockfile
        .clone()
        .or_else(|| Some(lockfile::default_path(&opts.recipe)).filter(|p| p.is_file()));
    let lock = match &lock_path {
        Some(p) => Some(lockfile::LockFile::read(p)?),
        None => None,
    };
    let locked = match (&lock_path, &lock) {
        (Some(p), Some(l)) => Some(l.test_env(p, &pkg.name, &request.key(), arch)?),
        _ => None,
    };
    let client = opts.apk.client()?;
    // Package names are checked by the recipe compiler (no `/`).
    let root = workspace.scratch().join(format!("root-{}", pkg.name));
    let env = guest::prepare(&guest::Inputs {
        request,
        client: &client,
        out_dir: Some(&opts.out_dir),
        arch,
        own_keys: opts.trusted.clone(),
        lock: locked,
        templates: &opts.apk.cache_dir.join("roots"),
        root: &root,
        scratch: &workspace.scratch().join(format!("scripts-{}", pkg.name)),
    })?;
    // Another repository may carry the same name and version; only the
    // output repository's is the package under test.
    let out_url = crate::upstream::RepoSpec::parse(&opts.out_dir.to_string_lossy())?.url;
    let from_out = env
        .installed
        .iter()
        .any(|i| i.name == pkg.name && i.version == pkg.full_version && i.repository == out_url);
    if !from_out && !given {
        return Err(not_built());
    }
    Ok(env)
}

/// Resolve and install the test environment of `pkg` into the workspace's
/// sysroot; the package under test must come from the output repository.
fn environment(
    opts: &TestOptions,
    workspace: &Workspace,
    pkg: &PackagePlan,
    t: &TestPlan,
) -> anyhow::Result<buildenv::Prepared> {
    let contents = test_contents(&pkg.name, pinned(pkg), t);
    let arch = opts.arch.apk();
    let found = buildenv::resolve_env(&contents, &opts.out_dir, arch, opts.trusted.clone())?;
    let out_repo = opts.out_dir.join(arch);
    let from_out = found
        .res
        .requests
        .first()
        .and_then(|(_, hit)| *hit)
        .is_some_and(|i| {
            found
                .repos
                .get(found.res.local[i].repo)
                .is_some_and(|r| r.dir == out_repo)
        });
    if !from_out {
        anyhow::bail!(
            "{} is not in {}/: build it first with pkgbuild build",
            pinned(pkg),
            out_repo.display()
        );
    }
    let mut env = buildenv::install_env(
        found,
        opts.runner,
        &workspace.sysroot_dir(),
        workspace.scratch(),
    )?;
    // install_env describes a build environment; a test's differs in order.
    for line in env.log.iter_mut() {
        if line.starts_with("build environment:") {
            *line = format!(
                "test environment: {} (its programs first on PATH, its libraries first on LD_LIBRARY_PATH)",
                env.visible.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(env)
}

/// The sysroot's program directories, in the order of the default `PATH`.
fn programs_path(s: &str) -> String {
    format!("{s}/usr/sbin:{s}/usr/bin:{s}/sbin:{s}/bin")
}

/// A test step's environment with the sysroot merged in: where the step
/// sets `PATH` or `LD_LIBRARY_PATH` itself, the sysroot's directories go
/// in FRONT of its value (the package under test must be what runs); the
/// other search paths behave as in a build.
fn merge_test_env(env: &mut BTreeMap<String, String>, s: &str) {
    let libs = format!("{s}/usr/lib:{s}/lib");
    for (k, ours) in [("PATH", programs_path(s)), ("LD_LIBRARY_PATH", libs)] {
        if let Some(v) = env.get_mut(k) {
            if v.is_empty() {
                *v = ours;
            } else if !v.split(':').any(|p| ours.split(':').any(|o| o == p)) {
                *v = format!("{ours}:{v}");
            }
        }
    }
    buildenv::merge_step_env(env, s);
}

/// Every public key (`*.pub`) in `dir`, for `--keys-dir` and the default
/// key directory.
pub fn keys_in_dir(dir: &Path) -> anyhow::Result<Vec<TrustedKey>> {
    let rd = fs::read_dir(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    let mut paths: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub") && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let key = crate::apk::sign::load_public_key(&p)?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(TrustedKey { name, key })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_under_test_comes_first_on_path_and_ld_library_path() {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), "/opt/bin:/usr/bin".to_string());
        env.insert("LD_LIBRARY_PATH".to_string(), "/opt/lib".to_string());
        env.insert("CPATH".to_string(), "/opt/inc".to_string());
        merge_test_env(&mut env, "/s");
        assert_eq!(
            env["PATH"],
            "/s/usr/sbin:/s/usr/bin:/s/sbin:/s/bin:/opt/bin:/usr/bin"
        );
        assert_eq!(env["LD_LIBRARY_PATH"], "/s/usr/lib:/s/lib:/opt/lib");
        assert_eq!(env["CPATH"], "/opt/inc:/s/usr/include", "as in a build");
        let again = env.clone();
        merge_test_env(&mut env, "/s");
        assert_eq!(env, again, "merging twice changes nothing");
        let mut unset = BTreeMap::new();
        merge_test_env(&mut unset, "/s");
        assert!(unset.is_empty(), "the base env covers what a step leaves");
    }

    #[test]
    fn the_package_under_test_is_pinned_first() {
        let mut t = TestPlan::default();
        t.environment.contents.packages = vec!["busybox".into(), "hello".into(), "hello>=1".into()];
        assert_eq!(
            test_contents("hello", "hello=1.2.0-r3".into(), &t).packages,
            ["hello=1.2.0-r3", "busybox", "hello>=1"]
        );
    }

    #[test]
    fn summary_lines_say_pass_fail_skip() {
        let r = |outcome| PackageResult {
            package: "x-1-r0".into(),
            outcome,
        };
        assert_eq!(r(Outcome::Pass(1)).summary(), "PASS x-1-r0 (1 step)");
        assert_eq!(r(Outcome::Pass(3)).summary(), "PASS x-1-r0 (3 steps)");
        assert_eq!(
            r(Outcome::Fail("x: step \"a\" failed\n  | tail".into())).summary(),
            "FAIL x-1-r0: x: step \"a\" failed"
        );
        assert_eq!(
            r(Outcome::Skip("no test".into())).summary(),
            "SKIP x-1-r0: no test"
        );
    }
}
