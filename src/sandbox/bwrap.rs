//! The bubblewrap runner: each step runs in fresh user, PID, IPC, UTS and
//! (by default) network namespaces, on an empty root that holds only the
//! host's `/usr` (read-only), the few `/etc` files a toolchain reads, a
//! private `/tmp`, `/proc` and `/dev`, and the workspace (read-write).
//!
//! The command line is built by the pure [`argv`] from a [`HostLayout`]
//! snapshot, so the isolation policy is unit-tested without spawning
//! anything. Nothing from the user's `$HOME`, `/root`, `/run` or `/var` is
//! mounted, and the environment is cleared.
//!
//! Capabilities: steps run as uid 0 inside (so `make install` and `chown
//! root` work), but with *no* capabilities. This matters when pkgbuild itself
//! runs as root (CI does): bwrap then maps sandbox root to real root and by
//! default keeps every capability, and a step could simply
//! `mount -o remount,rw /usr` and write to the host's `/usr`. `--cap-drop
//! ALL` closes that; with only uid 0 mapped, chown to other users fails with
//! or without capabilities anyway.

use super::{ControlDir, KillMode, SandboxConfig, SandboxError, StepOutcome, StepSpec};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Where the runner's control directory (step scripts, passwd, group, hosts)
/// is mounted read-only inside the sandbox.
pub const GUEST_CONTROL: &str = "/.pkgbuild";

/// The step shell of a hermetic build: the guest root's own.
pub const GUEST_SHELL: &str = "/bin/sh";

/// Top-level host entries mirrored into the sandbox. On merged-/usr systems
/// these are symlinks into `/usr`; elsewhere they are real directories.
const TOP_LEVEL: [&str; 6] = ["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// `/etc` entries a compiler toolchain needs: Debian's `alternatives` (cc,
/// ld, awk, which are symlinks through it), the dynamic loader's cache and
/// config, NSS config, and the protocol/service tables some test suites read.
/// `/etc/localtime` is left out on purpose: builds see UTC, which keeps
/// timestamps in generated files independent of the build host's zone.
const ETC_ALWAYS: [&str; 7] = [
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/protocols",
    "/etc/services",
];

/// Extra `/etc` entries when the network is enabled: name resolution and CA
/// certificates (not `/etc/ssl/private`).
const ETC_NETWORK: [&str; 3] = ["/etc/resolv.conf", "/etc/ssl/certs", "/etc/ca-certificates"];

/// How a top-level host directory looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopEntry {
    /// A symlink with this target (e.g. `usr/bin`).
    Symlink(PathBuf),
    /// A real directory.
    Dir,
}

/// The parts of the host filesystem that shape the sandbox, probed once per
/// runner so that [`argv`] stays pure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// Present entries of [`TOP_LEVEL`], by name.
    pub top: Vec<(String, TopEntry)>,
    /// Present entries of [`ETC_ALWAYS`] and [`ETC_NETWORK`].
    pub etc: Vec<String>,
    /// The shell that runs step scripts.
    pub shell: String,
}

impl HostLayout {
    /// Look at the running host.
    pub fn probe() -> HostLayout {
        let top = TOP_LEVEL
            .iter()
            .filter_map(|name| {
                let path = Path::new("/").join(name);
                let meta = std::fs::symlink_metadata(&path).ok()?;
                let entry = if meta.file_type().is_symlink() {
                    TopEntry::Symlink(std::fs::read_link(&path).ok()?)
                } else if meta.is_dir() {
                    TopEntry::Dir
                } else {
                    return None;
                };
                Some((name.to_string(), entry))
            })
            .collect();
        let etc = ETC_ALWAYS
            .iter()
            .chain(ETC_NETWORK.iter())
            // `exists` follows symlinks: a dangling /etc/resolv.conf would
            // make bwrap fail, so it is skipped like a missing one.
            .filter(|p| Path::new(p).exists())
            .map(|p| p.to_string())
            .collect();
        HostLayout {
            top,
            etc,
            shell: super::script::shell().to_string(),
        }
    }
}

const HOSTNAME: &str = "pkgbuild";

/// `/etc/hosts` so `localhost` and the sandbox hostname resolve on the
/// private loopback (test suites often bind to `localhost`).
fn hosts() -> String {
    format!("127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost\n")
}

/// The bwrap command line (without the `bwrap` program itself) that runs
/// `script_in_guest` with `layout.shell`. `control` is the host directory
/// holding the generated `passwd`, `group` and `hosts`, mounted at
/// [`GUEST_CONTROL`].
///
/// Pure: depends only on its arguments. The step env is not here; the
/// wrapper script exports it (see `script::wrapper`).
pub fn argv(
    config: &SandboxConfig,
    layout: &HostLayout,
    control: &Path,
    script_in_guest: &str,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::with_capacity(96);
    // A guest root brings its own shell; the host's may not exist there.
    let shell = match config.guest_root {
        Some(_) => GUEST_SHELL,
        None => layout.shell.as_str(),
    };
    let mut push = |items: &[&OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
    let s = |x: &'static str| OsStr::new(x);

    push(&[
        s("--unshare-user"),
        s("--unshare-pid"),
        s("--unshare-ipc"),
        s("--unshare-uts"),
        s("--unshare-cgroup-try"),
    ]);
    if !config.network {
        push(&[s("--unshare-net")]);
    }
    let id = &config.identity;
    let (uid, gid) = (id.uid.to_string(), id.gid.to_string());
    push(&[
        s("--uid"),
        OsStr::new(&uid),
        s("--gid"),
        OsStr::new(&gid),
        s("--hostname"),
        s(HOSTNAME),
        // The sandbox dies with pkgbuild, even on SIGKILL.
        s("--die-with-parent"),
        // setsid(): a step cannot reach the controlling terminal (TIOCSTI
        // input injection). Ctrl-C still works: it reaches bwrap, which
        // stays in our process group, and the sandbox dies with bwrap.
        s("--new-session"),
        s("--cap-drop"),
        s("ALL"),
    ]);
    if id.uid == 0 {
        for cap in &id.caps {
            push(&[s("--cap-add"), OsStr::new(cap)]);
        }
    }
    match &config.guest_root {
        Some(root) => {
            // Hermetic: the guest root is all there is; only name
            // resolution comes from the host, and only with the network.
            push(&[s("--bind"), root.as_os_str(), s("/")]);
            if config.network && layout.etc.iter().any(|e| e == "/etc/resolv.conf") {
                push(&[s("--ro-bind"), s("/etc/resolv.conf"), s("/etc/resolv.conf")]);
            }
        }
        None => {
            push(&[s("--ro-bind"), s("/usr"), s("/usr")]);
            for (name, entry) in &layout.top {
                let guest = format!("/{name}");
                match entry {
                    TopEntry::Symlink(target) => {
                        push(&[s("--symlink"), target.as_os_str(), OsStr::new(&guest)])
                    }
                    TopEntry::Dir => {
                        push(&[s("--ro-bind"), OsStr::new(&guest), OsStr::new(&guest)])
                    }
                }
            }
            for path in &layout.etc {
                if ETC_NETWORK.contains(&path.as_str()) && !config.network {
                    continue;
                }
                push(&[s("--ro-bind"), OsStr::new(path), OsStr::new(path)]);
            }
        }
    }
    let control_file = |name: &str| control.join(name).into_os_string();
    for (name, guest) in [
        ("passwd", "/etc/passwd"),
        ("group", "/etc/group"),
        ("hosts", "/etc/hosts"),
    ] {
        push(&[s("--ro-bind"), &control_file(name), OsStr::new(guest)]);
    }
    push(&[s("--proc"), s("/proc"), s("--dev"), s("/dev")]);
    // The private /tmp and /var/tmp live in memory, out of the disk cap's
    // sight: with a cap, each is bounded by it too (bwrap >= 0.6 `--size`).
    let tmp_size = OsString::from(config.limits.max_disk.to_string());
    for dir in ["/tmp", "/var/tmp"] {
        if config.limits.max_disk > 0 {
            push(&[s("--size"), &tmp_size]);
        }
        push(&[s("--tmpfs"), s(dir)]);
    }
    push(&[s("--ro-bind"), control.as_os_str(), s(GUEST_CONTROL)]);
    for (host, guest) in &config.ro_binds {
        push(&[s("--ro-bind"), host.as_os_str(), OsStr::new(guest)]);
    }
    for (host, guest) in &config.rw_binds {
        push(&[s("--bind"), host.as_os_str(), OsStr::new(guest)]);
    }
    // Last, so the workspace wins over anything it is nested in (a build
    // root under /tmp, for instance).
    push(&[
        s("--bind"),
        config.workspace.as_os_str(),
        OsStr::new(&config.build_root),
        s("--clearenv"),
        s("--setenv"),
        s("PATH"),
        s(super::DEFAULT_PATH),
        s("--setenv"),
        s("HOME"),
        OsStr::new(&config.build_root),
    ]);
    for (k, v) in &config.base_env {
        push(&[s("--setenv"), OsStr::new(k), OsStr::new(v)]);
    }
    push(&[
        s("--chdir"),
        OsStr::new(&config.build_root),
        s("--"),
        OsStr::new(shell),
        OsStr::new(script_in_guest),
    ]);
    a
}

/// Find `bwrap` on the host `PATH`.
pub fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("bwrap"))
        .find(|p| p.is_file())
}

/// Guest paths we mount ourselves; the build root and extra mounts must not
/// replace or sit inside them.
const RESERVED: [&str; 6] = ["/usr", "/etc", "/proc", "/dev", GUEST_CONTROL, "/var/tmp"];

fn check_guest_path(what: &str, p: &str) -> Result<(), SandboxError> {
    let bad = |why: &str| Err(SandboxError::Config(format!("{what} {p:?} {why}")));
    if !p.starts_with('/') {
        return bad("must be an absolute path");
    }
    if p.contains('\0') || p.split('/').any(|c| c == ".." || c == ".") {
        return bad("must not contain `.`, `..` or NUL");
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return bad("must not be `/`");
    }
    let top = trimmed.split('/').nth(1).unwrap_or_default();
    let reserved = RESERVED.iter().any(|r| {
        trimmed == *r
            || trimmed.starts_with(&format!("{r}/"))
            || r.starts_with(&format!("{trimmed}/"))
    }) || TOP_LEVEL.contains(&top);
    if reserved {
        return bad("overlaps a system directory the sandbox mounts itself");
    }
    Ok(())
}

/// The bubblewrap [`super::Runner`].
pub struct BwrapRunner {
    config: SandboxConfig,
    bwrap: PathBuf,
    layout: HostLayout,
    control: ControlDir,
    limiter: super::limits::Limiter,
}

impl BwrapRunner {
    /// Validate `config`, check bwrap works, and write the account files.
    pub fn new(mut config: SandboxConfig) -> Result<BwrapRunner, SandboxError> {
        check_guest_path("build_root", &config.build_root)?;
        // bwrap resolves relative sources against its own cwd; make every
        // host path absolute so the mounts mean what the caller meant.
        let absolute = |p: &Path, what: &'static str| {
            p.canonicalize().map_err(|source| SandboxError::Io {
                what,
                path: p.to_path_buf(),
                source,
            })
        };
        config.workspace = absolute(&config.workspace, "resolving workspace")?;
        for (host, guest) in &mut config.ro_binds {
            check_guest_path("read-only mount target", guest)?;
            *host = absolute(host, "resolving read-only mount source")?;
        }
        for (host, guest) in &mut config.rw_binds {
            check_guest_path("mount target", guest)?;
            *host = absolute(host, "resolving mount source")?;
        }
        if let Some(root) = &mut config.guest_root {
            *root = absolute(root, "resolving guest root")?;
            if !root.join("bin/sh").exists() {
                return Err(SandboxError::Config(format!(
                    "guest root {} has no /bin/sh: add a shell (e.g. busybox) to environment.contents.packages",
                    root.display()
                )));
            }
        }
        config.identity.check().map_err(SandboxError::Config)?;
        // With the host's /usr mounted, CAP_SYS_ADMIN would let a step
        // remount it read-write (and when pkgbuild runs as root, that is
        // the real /usr).
        if config.guest_root.is_none()
            && config.identity.uid == 0
            && config.identity.caps.iter().any(|c| c == "CAP_SYS_ADMIN")
        {
            return Err(SandboxError::Config(
                "capability CAP_SYS_ADMIN is only granted in hermetic builds (name a repository), never with the host's /usr mounted".into(),
            ));
        }
        let bwrap = find_bwrap().ok_or(SandboxError::BwrapUnavailable)?;
        if !super::bwrap_available() {
            return Err(SandboxError::BwrapUnavailable);
        }
        let control = ControlDir::new()?;
        control.write("passwd", &config.identity.passwd())?;
        control.write("group", &config.identity.group())?;
        control.write("hosts", &hosts())?;
        // Steps write to the workspace and the guest root (the disk cap
        // covers both) and to read-write mounts such as the persistent
        // cache (the free-space reserve covers those too).
        let trees: Vec<PathBuf> = std::iter::once(config.workspace.clone())
            .chain(config.guest_root.clone())
            .collect();
        let mut floors = trees.clone();
        floors.extend(config.rw_binds.iter().map(|(host, _)| host.clone()));
        let mut limiter = super::limits::Limiter::new(config.limits, trees, floors);
        // `argv` gives /tmp and /var/tmp `--size` of the cap.
        limiter.bounded_tmp = true;
        Ok(BwrapRunner {
            config,
            bwrap,
            layout: HostLayout::probe(),
            control,
            limiter,
        })
    }
}

impl super::Runner for BwrapRunner {
    fn name(&self) -> &'static str {
        "bwrap"
    }

    fn build_root(&self) -> &str {
        &self.config.build_root
    }

    fn run(&self, step: &StepSpec, out: &mut dyn FnMut(&str)) -> Result<StepOutcome, SandboxError> {
        super::check_step(step)?;
        let (name, _remove) = self.control.write_step(step)?;
        let guest_script = format!("{GUEST_CONTROL}/{name}");
        let args = argv(
            &self.config,
            &self.layout,
            self.control.path(),
            &guest_script,
        );
        // bwrap itself gets an empty environment; --clearenv/--setenv define
        // the sandbox's.
        let rlimits = super::limits::Rlimits::for_step(&self.limiter.limits);
        let expr = duct::cmd(&self.bwrap, args)
            .full_env(std::collections::BTreeMap::<String, String>::new())
            .dir(&self.config.workspace)
            .before_spawn(move |cmd| {
                rlimits.install(cmd);
                Ok(())
            });
        let (limit, build_wide) = self.config.step_limit();
        let result = super::run_streaming(
            &step.label,
            "bwrap",
            expr,
            KillMode::Child,
            limit,
            &self.limiter,
            out,
        );
        super::deadline_error(result, build_wide, &self.config)
    }

    fn interactive(
        &self,
        label: &str,
        workdir: &str,
        env: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<i32>, SandboxError> {
        let spec = super::interactive::spec(label, workdir, env);
        super::check_step(&spec)?;
        let (name, _remove) = self.control.write_step(&spec)?;
        let guest_script = format!("{GUEST_CONTROL}/{name}");
        // Without --new-session the shell keeps the terminal as its
        // controlling one: job control, and Ctrl-C reaches the shell's
        // foreground job rather than pkgbuild. Only the user types there.
        let args: Vec<OsString> = argv(
            &self.config,
            &self.layout,
            self.control.path(),
            &guest_script,
        )
        .into_iter()
        .filter(|a| a != "--new-session")
        .collect();
        let mut cmd = std::process::Command::new(&self.bwrap);
        cmd.args(args)
            .env_clear()
            .current_dir(&self.config.workspace);
        super::interactive::run_on_terminal(&spec.label, "bwrap", cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> HostLayout {
        HostLayout {
            top: vec![
                ("bin".into(), TopEntry::Symlink("usr/bin".into())),
                ("lib64".into(), TopEntry::Dir),
            ],
            etc: vec![
                "/etc/alternatives".into(),
                "/etc/ld.so.cache".into(),
                "/etc/resolv.conf".into(),
                "/etc/ssl/certs".into(),
            ],
            shell: "/bin/bash".into(),
        }
    }

    fn config() -> SandboxConfig {
        let mut c = SandboxConfig::new("/srv/ws");
        c.base_env
            .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
        c.ro_binds
            .push(("/var/cache/pkgbuild/src".into(), "/sources".into()));
        c
    }

    fn strings(config: &SandboxConfig) -> Vec<String> {
        argv(config, &layout(), Path::new("/ctl"), "/.pkgbuild/step-0.sh")
            .into_iter()
            .map(|s| s.into_string().expect("utf-8"))
            .collect()
    }

    /// Whether `window` appears as consecutive arguments.
    fn has(args: &[String], window: &[&str]) -> bool {
        args.windows(window.len()).any(|w| w == window)
    }

    #[test]
    fn private_tmp_is_bounded_by_the_disk_cap_when_there_is_one() {
        let mut c = config();
        assert!(has(&strings(&c), &["--dev", "/dev", "--tmpfs", "/tmp"]));
        assert!(!strings(&c).iter().any(|a| a == "--size"));
        c.limits.max_disk = 16 << 20;
        let args = strings(&c);
        assert!(has(&args, &["--size", "16777216", "--tmpfs", "/tmp"]));
        assert!(has(&args, &["--size", "16777216", "--tmpfs", "/var/tmp"]));
    }

    #[test]
    fn network_is_unshared_unless_enabled_and_then_resolv_conf_appears() {
        let mut c = config();
        let args = strings(&c);
        assert!(args.iter().any(|a| a == "--unshare-net"));
        assert!(!args
            .iter()
            .any(|a| a.contains("resolv.conf") || a.contains("/etc/ssl")));
        c.network = true;
        let args = strings(&c);
        assert!(!args.iter().any(|a| a == "--unshare-net"));
        assert!(has(
            &args,
            &["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        ));
        assert!(has(
            &args,
            &["--ro-bind", "/etc/ssl/certs", "/etc/ssl/certs"]
        ));
        for ns in [
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
        ] {
            assert!(args.iter().any(|a| a == ns), "{ns} kept with network");
        }
    }

    #[test]
    fn workspace_is_bound_read_write_at_build_root_and_is_the_cwd() {
        let args = strings(&config());
        assert!(has(&args, &["--bind", "/srv/ws", "/home/build"]));
        assert!(has(&args, &["--chdir", "/home/build"]));
        assert!(has(&args, &["--setenv", "HOME", "/home/build"]));
        assert!(has(
            &args,
            &["--ro-bind", "/var/cache/pkgbuild/src", "/sources"]
        ));
        // The only writable bind is the workspace.
        assert_eq!(args.iter().filter(|a| *a == "--bind").count(), 1);
    }

    #[test]
    fn environment_is_cleared_then_fixed_path_and_base_env_set() {
        let args = strings(&config());
        let clear = args
            .iter()
            .position(|a| a == "--clearenv")
            .expect("--clearenv");
        let first_setenv = args.iter().position(|a| a == "--setenv").expect("--setenv");
        assert!(clear < first_setenv, "env cleared before anything is set");
        assert!(has(
            &args,
            &["--setenv", "PATH", super::super::DEFAULT_PATH]
        ));
        assert!(has(&args, &["--setenv", "SOURCE_DATE_EPOCH", "1700000000"]));
    }

    #[test]
    fn nothing_from_home_root_or_run_is_mounted() {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let args = strings(&config());
        for (i, a) in args.iter().enumerate() {
            let is_source = i > 0 && matches!(args[i - 1].as_str(), "--bind" | "--ro-bind");
            if is_source {
                for bad in [home.as_str(), "/root", "/home", "/run", "/var/run"] {
                    assert!(
                        !(a == bad || a.starts_with(&format!("{bad}/"))),
                        "host path {a} is mounted"
                    );
                }
            }
        }
    }

    #[test]
    fn host_layout_is_mirrored_and_hardening_flags_are_present() {
        let args = strings(&config());
        assert!(has(&args, &["--symlink", "usr/bin", "/bin"]));
        assert!(has(&args, &["--ro-bind", "/lib64", "/lib64"]));
        assert!(has(&args, &["--ro-bind", "/usr", "/usr"]));
        assert!(has(&args, &["--ro-bind", "/ctl/passwd", "/etc/passwd"]));
        assert!(has(&args, &["--ro-bind", "/ctl", GUEST_CONTROL]));
        assert!(has(&args, &["--cap-drop", "ALL"]));
        assert!(has(&args, &["--uid", "0", "--gid", "0"]));
        for flag in ["--die-with-parent", "--new-session"] {
            assert!(args.iter().any(|a| a == flag), "{flag}");
        }
        assert!(has(&args, &["--", "/bin/bash", "/.pkgbuild/step-0.sh"]));
        assert_eq!(
            args.last().map(String::as_str),
            Some("/.pkgbuild/step-0.sh")
        );
    }

    #[test]
    fn hermetic_root_replaces_every_host_mount() {
        let mut c = config();
        c.guest_root = Some("/srv/root".into());
        c.rw_binds
            .push(("/srv/cache".into(), "/var/cache/melange".into()));
        let args = strings(&c);
        assert!(has(&args, &["--bind", "/srv/root", "/"]));
        assert!(has(&args, &["--bind", "/srv/cache", "/var/cache/melange"]));
        assert!(has(&args, &["--", GUEST_SHELL, "/.pkgbuild/step-0.sh"]));
        let root_at = args.iter().position(|a| a == "/srv/root").unwrap();
        let ws_at = args.iter().position(|a| a == "/srv/ws").unwrap();
        assert!(root_at < ws_at, "the workspace is mounted over the root");
        for (i, a) in args.iter().enumerate() {
            if i > 0 && matches!(args[i - 1].as_str(), "--bind" | "--ro-bind") {
                assert!(
                    [
                        "/srv/root",
                        "/srv/ws",
                        "/srv/cache",
                        "/var/cache/pkgbuild/src"
                    ]
                    .contains(&a.as_str())
                        || a.starts_with("/ctl"),
                    "host path {a} is visible in a hermetic build"
                );
            }
        }
        c.network = true;
        assert!(has(
            &strings(&c),
            &["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]
        ));
    }

    #[test]
    fn identity_sets_uid_gid_and_capabilities_only_for_root() {
        let mut c = config();
        let args = strings(&c);
        assert!(has(&args, &["--cap-drop", "ALL", "--cap-add"]));
        assert!(has(&args, &["--cap-add", "CAP_CHOWN"]));
        c.identity.uid = 1000;
        c.identity.gid = 1000;
        let args = strings(&c);
        assert!(has(&args, &["--uid", "1000", "--gid", "1000"]));
        assert!(!args.iter().any(|a| a == "--cap-add"));
    }

    #[test]
    fn build_root_and_mount_targets_are_validated() {
        for ok in ["/home/build", "/build", "/tmp/b", "/opt/x/"] {
            assert!(check_guest_path("build_root", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "rel",
            "/usr",
            "/usr/src",
            "/etc",
            "/proc/x",
            "/bin",
            "/lib/x",
            "/a/../usr",
            "/.pkgbuild",
            "/var",
        ] {
            assert!(
                check_guest_path("build_root", bad).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
