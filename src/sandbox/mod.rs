//! Runs recipe steps: shell text in a workspace, either inside a bubblewrap
//! sandbox ([`bwrap`]) or directly on the host ([`host`], no isolation).
//!
//! This module knows nothing about apk, recipes or plans: the engine hands it
//! a [`StepSpec`] (label, script, workdir, env) and gets back a
//! [`StepOutcome`] (exit status and the last lines of output). Output is
//! streamed line by line to a caller-supplied callback as it arrives; the
//! runner does not prefix lines, so the caller decides how to label them.
//!
//! Both runners share the wrapper script ([`script`]), the environment policy
//! (cleared, then a fixed `PATH` and `HOME`, then the base env, then the step
//! env) and the streaming/timeout loop in this file, so a recipe behaves the
//! same under either apart from isolation.

pub mod bwrap;
pub mod host;
pub mod identity;
pub mod interactive;
pub mod limits;
pub mod script;

pub use identity::Identity;
pub use limits::{LimitHit, StepLimits};

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `PATH` every step starts with; the recipe may override it through the
/// base or step env.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many trailing output lines a [`StepOutcome`] keeps.
pub const TAIL_LINES: usize = 30;

/// Longest output line passed on; longer lines are cut and marked, so a
/// step printing a binary blob without newlines cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// One shell step to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSpec {
    /// Human label such as `hello/autoconf/make`, used in errors.
    pub label: String,
    /// Shell text, run after the wrapper's `set -e` and `cd`.
    pub script: String,
    /// Absolute directory, as seen by the step, to create and enter first.
    pub workdir: String,
    /// Step environment, exported over the base env.
    pub env: BTreeMap<String, String>,
}

/// Everything a runner needs that stays the same for every step of a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Host directory holding the build tree; read-write for steps.
    pub workspace: PathBuf,
    /// Where the workspace appears inside bwrap (default `/home/build`).
    /// Ignored by the host runner, whose build root is the workspace itself.
    pub build_root: String,
    /// Give steps the host network (default false: only a private loopback).
    pub network: bool,
    /// Extra read-only mounts for bwrap: (host path, guest path).
    pub ro_binds: Vec<(PathBuf, String)>,
    /// Environment for every step, e.g. `SOURCE_DATE_EPOCH` and the recipe's
    /// `environment.environment`; applied after `PATH`/`HOME`, so it may
    /// override them.
    pub base_env: BTreeMap<String, String>,
    /// Kill a step that runs longer than this.
    pub timeout: Option<Duration>,
    /// The whole build must be over by then (`--timeout`): a step still
    /// running at that instant is killed with everything it started.
    pub deadline: Option<Deadline>,
    /// Hermetic builds: this host directory (a private, fully installed
    /// guest root) is `/` for the steps, and nothing of the host's file
    /// system is mounted. None: the host's `/usr` (bwrap, read-only).
    pub guest_root: Option<PathBuf>,
    /// Extra read-write mounts for bwrap: (host path, guest path), e.g.
    /// the persistent cache at `/var/cache/melange`.
    pub rw_binds: Vec<(PathBuf, String)>,
    /// Accounts, uid/gid and capabilities of the steps (bwrap only: the
    /// host runner runs as whoever runs pkgbuild).
    pub identity: Identity,
    /// Processes and disk the steps may use (`--max-processes`,
    /// `--max-disk`); the free-space reserve applies whatever they say.
    pub limits: StepLimits,
}

impl SandboxConfig {
    /// A config with the defaults: build root `/home/build`, no network, no
    /// extra mounts, empty base env, no timeout.
    pub fn new(workspace: impl Into<PathBuf>) -> SandboxConfig {
        SandboxConfig {
            workspace: workspace.into(),
            build_root: "/home/build".into(),
            network: false,
            ro_binds: Vec::new(),
            base_env: BTreeMap::new(),
            timeout: None,
            deadline: None,
            guest_root: None,
            rw_binds: Vec::new(),
            identity: Identity::root("/home/build"),
            limits: StepLimits::default(),
        }
    }
}

/// A time limit for a whole build: when it ends, and how long it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    pub limit: Duration,
}

impl SandboxConfig {
    /// How long the next step may run: its own timeout or what is left of
    /// the build's, whichever is shorter, and whether the build's is the
    /// one that binds.
    fn step_limit(&self) -> (Option<Duration>, bool) {
        let left = self
            .deadline
            .map(|d| d.at.saturating_duration_since(Instant::now()));
        match (self.timeout, left) {
            (Some(t), Some(l)) if l < t => (Some(l), true),
            (Some(t), _) => (Some(t), false),
            (None, Some(l)) => (Some(l), true),
            (None, None) => (None, false),
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// Exit code; `None` when the shell was killed by a signal. Under bwrap
    /// a signal death inside the sandbox arrives as exit code 128+N (bwrap
    /// reports it that way), indistinguishable from `exit 128+N`.
    pub status: Option<i32>,
    /// The signal that killed the shell, if any.
    pub signal: Option<i32>,
    /// The last [`TAIL_LINES`] lines of merged stdout+stderr.
    pub tail: Vec<String>,
}

impl StepOutcome {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Why a step could not be run to completion (a non-zero exit is not an
/// error here; it is reported in [`StepOutcome`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    #[error("bubblewrap (`bwrap`) is not installed or cannot create namespaces on this host\nnote: install bubblewrap, or use the host runner (no isolation)")]
    BwrapUnavailable,
    #[error("invalid sandbox configuration: {0}")]
    Config(String),
    #[error("step {label}: {problem}")]
    InvalidStep { label: String, problem: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("step {label}: cannot start {program}: {source}")]
    Spawn {
        label: String,
        program: String,
        source: io::Error,
    },
    #[error("step {label}: waiting for {program}: {source}")]
    Wait {
        label: String,
        program: String,
        source: io::Error,
    },
    #[error("step {label} ran longer than its timeout of {}s and was killed", timeout.as_secs_f64())]
    TimedOut {
        label: String,
        timeout: Duration,
        tail: Vec<String>,
    },
    #[error("step {label} was killed with everything it started: the build ran past its --timeout of {}s", limit.as_secs_f64())]
    BuildTimedOut {
        label: String,
        limit: Duration,
        tail: Vec<String>,
    },
    #[error("step {label} stopped: {hit}")]
    LimitReached {
        label: String,
        hit: LimitHit,
        tail: Vec<String>,
    },
}

/// Something that runs steps. Implementations are shareable across threads;
/// concurrent `run` calls are allowed and do not interfere.
pub trait Runner: Send + Sync {
    /// `"bwrap"` or `"host"`.
    fn name(&self) -> &'static str;
    /// The workspace path as steps see it (substitute this for the build
    /// root in recipe text).
    fn build_root(&self) -> &str;
    /// Run one step, calling `out` for each output line as it arrives.
    fn run(&self, step: &StepSpec, out: &mut dyn FnMut(&str)) -> Result<StepOutcome, SandboxError>;
    /// An interactive shell on the terminal, in the same sandbox (mounts,
    /// identity, base env) with `env` over it and `workdir` as its working
    /// directory, as a step would have; waits until the user leaves it and
    /// returns its exit code. No timeout applies.
    fn interactive(
        &self,
        label: &str,
        workdir: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<i32>, SandboxError>;
}

/// Which runner [`new_runner`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerKind {
    /// bubblewrap: no network, no host writes outside the workspace.
    Bwrap,
    /// The host shell: no isolation at all.
    Host,
}

/// Whether bubblewrap is installed *and* can create the namespaces we use
/// (user namespaces can be disabled by sysctl or by container runtimes, in
/// which case `bwrap --version` works but every build would fail). Probed
/// once per process.
pub fn bwrap_available() -> bool {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        let Some(bin) = bwrap::find_bwrap() else {
            return false;
        };
        duct::cmd(
            bin,
            [
                "--ro-bind",
                "/",
                "/",
                "--unshare-user",
                "--unshare-pid",
                "--unshare-net",
                "--die-with-parent",
                "--",
                "/bin/sh",
                "-c",
                "exit 0",
            ],
        )
        .stdin_null()
        .stdout_null()
        .stderr_null()
        .full_env(BTreeMap::<String, String>::new())
        .unchecked()
        .run()
        .map(|o| o.status.success())
        .unwrap_or(false)
    })
}

/// Build a runner after validating `config` (paths exist, build root and
/// guest paths are absolute and sane, env names are shell identifiers).
pub fn new_runner(
    kind: RunnerKind,
    config: SandboxConfig,
) -> Result<Box<dyn Runner>, SandboxError> {
    if !config.workspace.is_dir() {
        return Err(SandboxError::Config(format!(
            "workspace {} is not a directory",
            config.workspace.display()
        )));
    }
    check_env("base env", &config.base_env).map_err(SandboxError::Config)?;
    Ok(match kind {
        RunnerKind::Bwrap => Box::new(bwrap::BwrapRunner::new(config)?),
        RunnerKind::Host => Box::new(host::HostRunner::new(config)?),
    })
}

/// Reject env entries that the wrapper or `--setenv` could not carry intact.
fn check_env(what: &str, env: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in env {
        if !script::valid_env_name(k) {
            return Err(format!(
                "{what}: variable name {k:?} is not a shell identifier ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        if v.contains('\0') {
            return Err(format!("{what}: value of {k} contains a NUL byte"));
        }
    }
    Ok(())
}

/// Checks shared by both runners before anything is spawned.
fn check_step(step: &StepSpec) -> Result<(), SandboxError> {
    let bad = |problem: String| SandboxError::InvalidStep {
        label: step.label.clone(),
        problem,
    };
    if !step.workdir.starts_with('/') {
        return Err(bad(format!(
            "workdir {:?} must be an absolute path",
            step.workdir
        )));
    }
    if step.workdir.contains('\0') || step.script.contains('\0') {
        return Err(bad("workdir or script contains a NUL byte".into()));
    }
    check_env("step env", &step.env).map_err(bad)
}

/// Prefix of the control directories in `$TMPDIR`.
pub const CONTROL_PREFIX: &str = "pkgbuild-control-";

/// A per-runner private directory on the host for generated files (step
/// scripts, passwd/group). Kept out of the workspace so the recipe's source
/// tree never contains our files.
struct ControlDir {
    /// Locked like a workspace, so the next run removes it when this one
    /// is killed outright.
    dir: crate::lockdir::LockedDir,
    counter: std::sync::atomic::AtomicU64,
}

impl ControlDir {
    fn new() -> Result<ControlDir, SandboxError> {
        let dir = crate::lockdir::LockedDir::create(&std::env::temp_dir(), CONTROL_PREFIX)
            .map_err(|source| SandboxError::Io {
                what: "creating control directory in",
                path: std::env::temp_dir(),
                source,
            })?;
        Ok(ControlDir {
            dir,
            counter: Default::default(),
        })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file readable by the sandbox.
    fn write(&self, name: &str, text: &str) -> Result<PathBuf, SandboxError> {
        let path = self.dir.path().join(name);
        crate::atomic::write(&path, 0o644, text.as_bytes()).map_err(|source| SandboxError::Io {
            what: "writing",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Write the wrapper for `step` under a name unique within this runner
    /// (steps may run concurrently); returns the file name. The file is
    /// removed when the returned guard drops.
    fn write_step(&self, step: &StepSpec) -> Result<(String, RemoveOnDrop), SandboxError> {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("step-{n}.sh");
        let path = self.write(&name, &script::wrapper(step))?;
        Ok((name, RemoveOnDrop(path)))
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// How to stop a running step on timeout, and whether to sweep the process
/// group once the shell has exited.
#[derive(Clone, Copy)]
enum KillMode {
    /// Kill only the direct child (bwrap: its `--die-with-parent` and PID
    /// namespace take everything inside down with it).
    Child,
    /// The child leads its own process group; kill the whole group (host
    /// runner: background jobs a step left behind are killed too, which is
    /// what the PID namespace does for bwrap).
    Group,
}

enum Event {
    Line(String),
    Eof,
    Exited(io::Result<std::process::ExitStatus>),
}

/// After the shell exits or is killed, wait at most this long for the pipe
/// to close; a process that escaped the process group may hold it open
/// forever, and we must not hang on it.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// A step killed because the build's deadline passed says so, not that
/// its own timeout did.
fn deadline_error(
    result: Result<StepOutcome, SandboxError>,
    build_wide: bool,
    config: &SandboxConfig,
) -> Result<StepOutcome, SandboxError> {
    match (result, config.deadline) {
        (Err(SandboxError::TimedOut { label, tail, .. }), Some(d)) if build_wide => {
            Err(SandboxError::BuildTimedOut {
                label,
                limit: d.limit,
                tail,
            })
        }
        (r, _) => r,
    }
}

/// Spawn `expr` (stdin, stdout and stderr are set here; the caller has
/// installed the step's rlimits), stream its merged output to `out`, and
/// wait for it, enforcing `timeout` and, through a monitor, `limiter`'s
/// limits.
fn run_streaming(
    label: &str,
    program: &str,
    expr: duct::Expression,
    kill: KillMode,
    timeout: Option<Duration>,
    limiter: &limits::Limiter,
    out: &mut dyn FnMut(&str),
) -> Result<StepOutcome, SandboxError> {
    let io_err = |source| SandboxError::Spawn {
        label: label.to_string(),
        program: program.to_string(),
        source,
    };
    let (reader, writer) = io::pipe().map_err(io_err)?;
    let writer2 = writer.try_clone().map_err(io_err)?;
    // The expression owns our copies of the write end; it is dropped at the
    // end of this statement so only the child holds the pipe open.
    let handle = expr
        .stdin_null()
        .stdout_file(writer)
        .stderr_file(writer2)
        .unchecked()
        .start()
        .map_err(io_err)?;
    let handle = Arc::new(handle);
    let guard = KillOnDrop {
        handle: handle.clone(),
        kill,
    };
    let pid = handle.pids().first().copied();
    let monitor = pid.map(|pid| {
        let killer = handle.clone();
        let group = matches!(kill, KillMode::Group).then_some(pid);
        limiter.watch(
            pid,
            group,
            Box::new(move || kill_now(&killer, Some(pid), kill)),
        )
    });

    // Bounded, so a fast producer is slowed down by a slow `out` instead of
    // filling memory.
    let (tx, rx) = mpsc::sync_channel::<Event>(1024);
    let line_tx = tx.clone();
    std::thread::spawn(move || read_lines(reader, line_tx));
    let wait_handle = handle.clone();
    std::thread::spawn(move || {
        let status = wait_handle.wait().map(|o| o.status);
        let _ = tx.send(Event::Exited(status));
    });

    let deadline = timeout.map(|t| Instant::now() + t);
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut status: Option<io::Result<std::process::ExitStatus>> = None;
    let mut eof = false;
    let mut timed_out = false;
    let mut drain_until: Option<Instant> = None;
    while !(eof && status.is_some()) {
        let limit = match (drain_until, deadline) {
            (Some(d), _) => Some(d),
            (None, Some(d)) if !timed_out => Some(d),
            _ => None,
        };
        let event = match limit {
            Some(limit) => match rx.recv_timeout(limit.saturating_duration_since(Instant::now())) {
                Ok(e) => e,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if drain_until.is_some() {
                        // Output still open after the grace period: give up
                        // on it; the reader thread ends when the pipe closes.
                        if status.is_some() {
                            break;
                        }
                        // Killed but not yet reaped: just wait for it.
                        drain_until = None;
                    } else {
                        timed_out = true;
                        kill_now(&handle, pid, kill);
                        drain_until = Some(Instant::now() + DRAIN_GRACE);
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(e) => e,
                Err(_) => break,
            },
        };
        match event {
            Event::Line(line) => {
                out(&line);
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            Event::Eof => eof = true,
            Event::Exited(s) => {
                if let KillMode::Group = kill {
                    // The shell is gone; anything left in its group is a
                    // leftover background job. The group id cannot have
                    // been reused while members remain.
                    if let Some(pid) = pid {
                        kill_group(pid);
                    }
                }
                status = Some(s);
                if drain_until.is_none() {
                    drain_until = Some(Instant::now() + DRAIN_GRACE);
                }
            }
        }
    }
    let tail: Vec<String> = tail.into();
    let verdict = monitor.map(limits::Monitor::finish).unwrap_or_default();
    let stopped = |hit: LimitHit, tail: Vec<String>| SandboxError::LimitReached {
        label: label.to_string(),
        hit,
        tail,
    };
    if let Some(hit) = verdict.hit {
        return Err(stopped(hit, tail));
    }
    if timed_out {
        return Err(SandboxError::TimedOut {
            label: label.to_string(),
            timeout: timeout.unwrap_or_default(),
            tail,
        });
    }
    let status = match status {
        Some(s) => s,
        None => handle.wait().map(|o| o.status),
    }
    .map_err(|source| SandboxError::Wait {
        label: label.to_string(),
        program: program.to_string(),
        source,
    })?;
    drop(guard);
    use std::os::unix::process::ExitStatusExt;
    let outcome = StepOutcome {
        status: status.code(),
        signal: status.signal(),
        tail,
    };
    // A writer killed by SIGXFSZ hit the file-size cap: the shell reports
    // 128+SIGXFSZ for it (and bwrap does for a shell killed inside), or
    // the shell itself died of it (host runner).
    let cap = limiter.limits.max_disk;
    let xfsz = outcome.signal == Some(libc::SIGXFSZ) || outcome.status == Some(128 + libc::SIGXFSZ);
    if cap > 0 && xfsz {
        return Err(stopped(LimitHit::FileSize { cap }, outcome.tail));
    }
    // A shell that gave up on fork (EAGAIN) failed for the process limit.
    if !outcome.success() && verdict.touched_process_limit {
        let max = limiter.limits.max_processes;
        return Err(stopped(LimitHit::Processes { max }, outcome.tail));
    }
    // The walked trees and the free-space floor were within bounds (or the
    // monitor would have stopped the step), so ENOSPC came from the bounded
    // /tmp or /var/tmp.
    let enospc = || {
        outcome
            .tail
            .iter()
            .any(|l| l.contains("No space left on device"))
    };
    if cap > 0 && limiter.bounded_tmp && !outcome.success() && enospc() {
        return Err(stopped(LimitHit::TmpSpace { cap }, outcome.tail));
    }
    Ok(outcome)
}

/// Kills the step if `run_streaming` unwinds (e.g. the `out` callback
/// panics) so no build keeps running unobserved.
struct KillOnDrop {
    handle: Arc<duct::Handle>,
    kill: KillMode,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.handle.try_wait(), Ok(None)) {
            let pid = self.handle.pids().first().copied();
            kill_now(&self.handle, pid, self.kill);
        }
    }
}

fn kill_now(handle: &duct::Handle, pid: Option<u32>, mode: KillMode) {
    if let (KillMode::Group, Some(pid)) = (mode, pid) {
        kill_group(pid);
    }
    // duct's kill is safe against pid reuse (it knows whether it has reaped
    // the child) and also reaps it.
    let _ = handle.kill();
}

fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // The process group this step's runner created for it; 0 and 1
        // would address our own group or init.
        if let Some(pgid) = rustix::process::Pid::from_raw(pgid).filter(|_| pgid > 1) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
    }
}

/// Split the pipe into lossy UTF-8 lines of bounded length.
fn read_lines(reader: io::PipeReader, tx: mpsc::SyncSender<Event>) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    let emit = |line: &mut Vec<u8>, truncated: &mut bool| {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let mut s = String::from_utf8_lossy(line).into_owned();
        if *truncated {
            s.push_str(" [line truncated by pkgbuild]");
        }
        line.clear();
        *truncated = false;
        tx.send(Event::Line(s)).is_ok()
    };
    loop {
        let buf = match reader.fill_buf() {
            Ok([]) => break,
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], true),
            None => (buf, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        if chunk.len() > room {
            truncated = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len() + usize::from(newline);
        reader.consume(used);
        if newline && !emit(&mut line, &mut truncated) {
            return;
        }
    }
    if (!line.is_empty() || truncated) && !emit(&mut line, &mut truncated) {
        return;
    }
    let _ = tx.send(Event::Eof);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_checks_reject_relative_workdir_and_bad_env_names() {
        let mut step = StepSpec {
            label: "p/s".into(),
            script: "true".into(),
            workdir: "rel".into(),
            env: BTreeMap::new(),
        };
        let err = check_step(&step).unwrap_err().to_string();
        assert!(err.contains("p/s") && err.contains("absolute"), "{err}");
        step.workdir = "/ok".into();
        step.env.insert("BAD-NAME".into(), "x".into());
        let err = check_step(&step).unwrap_err().to_string();
        assert!(err.contains("BAD-NAME"), "{err}");
    }

    #[test]
    fn long_lines_are_cut_and_marked_and_crlf_is_trimmed() {
        let (r, mut w) = io::pipe().expect("pipe");
        let (tx, rx) = mpsc::sync_channel(16);
        let t = std::thread::spawn(move || read_lines(r, tx));
        use std::io::Write;
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        w.write_all(b"one\r\n").expect("write");
        w.write_all(&long).expect("write");
        w.write_all(b"\nlast\xff").expect("write");
        drop(w);
        t.join().expect("reader thread");
        let lines: Vec<String> = rx
            .iter()
            .filter_map(|e| match e {
                Event::Line(l) => Some(l),
                _ => None,
            })
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "one");
        assert!(lines[1].starts_with(&"x".repeat(MAX_LINE_BYTES)));
        assert!(lines[1].ends_with("[line truncated by pkgbuild]"));
        assert_eq!(lines[2], "last\u{fffd}");
    }
}
