//! Step limits: how many processes a step may run and how much it may
//! write, enforced while it runs, and the words that say which limit
//! stopped it.
//!
//! Three mechanisms work together, because none is enough alone:
//!
//! - **rlimits** set in the child before `exec` (bwrap or the host shell):
//!   `RLIMIT_NPROC` makes `fork` fail with `EAGAIN` at the process limit,
//!   and `RLIMIT_FSIZE` = the disk cap means no single file can outgrow it
//!   (the writer gets `SIGXFSZ`).
//! - **a monitor thread** that, while the step runs, counts the step's
//!   tasks in `/proc`, measures the writable trees and checks the free space
//!   of their filesystems, and kills the step when a limit is crossed.
//! - **reporting**: [`LimitHit`] names the limit, its value and the flag
//!   that raises it.
//!
//! Why the monitor must also count processes: since Linux 5.14
//! `RLIMIT_NPROC` is counted per user namespace and up the chain, but the
//! kernel exempts the real root user (kuid 0) from it in every namespace
//! (`copy_process` skips the check for `INIT_USER`). Verified on 6.18: as
//! root, a fork loop under `bwrap --unshare-user` with `RLIMIT_NPROC=400`
//! forked 2000 children; as uid 65534 with `RLIMIT_NPROC=100` it stopped at
//! 97. So for root (CI) the monitor is the enforcement, and the rlimit is
//! what stops an unprivileged user's fork bomb at once. No cgroups: the
//! pids controller is not mounted everywhere we run.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// Default `--max-processes`. Counted in tasks (threads count, as the
/// kernel counts them). A `make -j64` of C++ holds ~5 tasks per job
/// (make, sh, g++, cc1plus, as), and a linker, JVM or rustc brings a few
/// dozen threads each, so even a large parallel build stays well under
/// 4096, while a fork bomb is stopped long before it exhausts the host's
/// pid space (`pid_max` is 32768 on many kernels).
pub const DEFAULT_MAX_PROCESSES: u64 = 4096;

/// The free space every step leaves on the workspace's filesystem:
/// 1 GiB, or 2 % of the filesystem when that is smaller (a 20 GiB disk
/// keeps 400 MiB). Enough for pkgbuild to assemble, sign and publish, and
/// for the rest of the machine to go on; small enough not to refuse builds
/// on small disks.
pub const RESERVE_CAP: u64 = 1 << 30;
pub const RESERVE_PERCENT: u64 = 2;

/// How long a step may sit at its process limit before it is killed: a
/// parallel build that touches the limit recovers within this, a fork bomb
/// never does (it would spin until the timeout).
pub const AT_LIMIT_GRACE: Duration = Duration::from_secs(2);

/// What steps may use; `0` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepLimits {
    /// Tasks (processes and threads) the step may run at once
    /// (`--max-processes`).
    pub max_processes: u64,
    /// Bytes the steps may add to the workspace and the guest root, and
    /// the largest file they may write (`--max-disk`).
    pub max_disk: u64,
}

impl Default for StepLimits {
    /// [`DEFAULT_MAX_PROCESSES`], no disk cap (the free-space reserve
    /// always applies).
    fn default() -> StepLimits {
        StepLimits {
            max_processes: DEFAULT_MAX_PROCESSES,
            max_disk: 0,
        }
    }
}

/// The free space to keep on a filesystem of `total` bytes.
pub fn reserve_for(total: u64) -> u64 {
    (total / 100)
        .saturating_mul(RESERVE_PERCENT)
        .min(RESERVE_CAP)
}

/// Whether a filesystem of `total` bytes with `available` free has fallen
/// below its reserve.
pub fn below_reserve(total: u64, available: u64) -> bool {
    available < reserve_for(total)
}

/// Which limit stopped a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitHit {
    /// The step ran more than, or sat at, its process limit.
    Processes { max: u64 },
    /// The workspace and guest root grew by more than the cap.
    Disk { cap: u64 },
    /// A file reached the cap (its writer got `SIGXFSZ`).
    FileSize { cap: u64 },
    /// The step failed out of space while `/tmp` and `/var/tmp` (memory,
    /// outside the walked trees) were bounded by the cap.
    TmpSpace { cap: u64 },
    /// The filesystem of `path` fell below its reserve.
    FreeSpace {
        path: PathBuf,
        reserve: u64,
        free: u64,
    },
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::Processes { max } => write!(
                f,
                "it reached the process limit of {max} (--max-processes; threads count too; 0 lifts it)"
            ),
            LimitHit::Disk { cap } => write!(
                f,
                "it wrote more than the {} disk cap (--max-disk) to its workspace and root",
                human_size(*cap)
            ),
            LimitHit::FileSize { cap } => write!(
                f,
                "a file it wrote reached the {} file-size cap (--max-disk; the writer got SIGXFSZ)",
                human_size(*cap)
            ),
            LimitHit::TmpSpace { cap } => write!(
                f,
                "it ran out of space (\"No space left on device\"); with --max-disk its /tmp and /var/tmp each hold at most {}",
                human_size(*cap)
            ),
            LimitHit::FreeSpace {
                path,
                reserve,
                free,
            } => write!(
                f,
                "the filesystem of {} had less than {} free ({} left); pkgbuild keeps that much free so a step cannot fill the disk",
                path.display(),
                human_size(*reserve),
                human_size(*free)
            ),
        }
    }
}

/// `512 bytes`, `16.0 MiB`, `2.0 GiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// One process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Proc {
    pid: u32,
    ppid: u32,
    pgrp: u32,
    threads: u64,
}

/// Parse `/proc/PID/stat`: the command name is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted after the
/// last `)`.
fn parse_stat(pid: u32, text: &str) -> Option<Proc> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state ppid pgrp session tty tpgid flags minflt
    // cminflt majflt cmajflt utime stime cutime cstime priority nice
    // num_threads.
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        threads: f.get(17)?.parse().ok()?,
    })
}

fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

fn processes() -> Vec<Proc> {
    pids()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &text)
        })
        .collect()
}

/// Tasks of the tree rooted at `root`, plus any process in group `pgrp`
/// (a host step's background job reparented to init is still its own).
fn tree_tasks(procs: &[Proc], root: u32, pgrp: Option<u32>) -> u64 {
    let mut children: HashMap<u32, Vec<&Proc>> = HashMap::new();
    for p in procs {
        children.entry(p.ppid).or_default().push(p);
    }
    let mut seen: HashSet<u32> = HashSet::new();
    let mut stack: Vec<&Proc> = procs
        .iter()
        .filter(|p| p.pid == root || Some(p.pgrp) == pgrp)
        .collect();
    let mut total = 0;
    while let Some(p) = stack.pop() {
        if !seen.insert(p.pid) {
            continue;
        }
        total += p.threads;
        if let Some(kids) = children.get(&p.pid) {
            stack.extend(kids.iter().copied());
        }
    }
    total
}

/// Tasks the real uid `uid` runs on the whole host, as the kernel counts
/// them against `RLIMIT_NPROC`.
fn uid_tasks(uid: u32) -> u64 {
    pids()
        .filter_map(|pid| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            (field("Uid:")? == u64::from(uid)).then(|| field("Threads:"))?
        })
        .sum()
}

/// The rlimits a step's first process gets, computed in the parent so the
/// forked child only makes system calls.
#[derive(Debug, Clone)]
pub(super) struct Rlimits {
    nproc: Option<u64>,
    fsize: Option<u64>,
}

impl Rlimits {
    /// For a step starting now under `limits`.
    ///
    /// `RLIMIT_NPROC` is compared with *every* task of the real uid: inside
    /// bwrap's user namespace against the namespace's own count, and at the
    /// host level against the uid's total (with the limit captured when
    /// bwrap created the namespace). A plain `N` would therefore leave the
    /// sandbox nothing when the user already runs N tasks elsewhere, so the
    /// limit is what the uid runs now plus N: the step gets N of its own.
    pub(super) fn for_step(limits: &StepLimits) -> Rlimits {
        let nproc = (limits.max_processes > 0).then(|| {
            let uid = rustix::process::getuid().as_raw();
            uid_tasks(uid).saturating_add(limits.max_processes)
        });
        let fsize = (limits.max_disk > 0).then_some(limits.max_disk);
        Rlimits { nproc, fsize }
    }

    /// Lower the soft and hard limits (never raise a hard one: that would
    /// fail for an unprivileged user). Runs in the forked child before
    /// `exec`: only system calls, no allocation.
    pub(super) fn apply(&self) -> io::Result<()> {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let set = |resource: Resource, n: u64| -> io::Result<()> {
            let old = getrlimit(resource);
            let hard = old.maximum.map_or(n, |m| m.min(n));
            setrlimit(
                resource,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )
            .map_err(io::Error::from)
        };
        if let Some(n) = self.nproc {
            set(Resource::Nproc, n)?;
        }
        if let Some(n) = self.fsize {
            set(Resource::Fsize, n)?;
        }
        Ok(())
    }

    /// Install [`Rlimits::apply`] in `cmd`'s child.
    pub(super) fn install(&self, cmd: &mut std::process::Command) {
        if self.nproc.is_none() && self.fsize.is_none() {
            return;
        }
        let limits = self.clone();
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only
        // makes getrlimit/setrlimit system calls (async-signal-safe); the
        // captured values were computed in the parent.
        unsafe {
            cmd.pre_exec(move || limits.apply());
        }
    }
}

/// Where a runner's steps write, and what they may use; shared by the
/// steps of one runner so the disk cap counts what all of them added.
#[derive(Debug)]
pub(super) struct Limiter {
    pub limits: StepLimits,
    /// Trees whose growth counts against the disk cap.
    trees: Vec<PathBuf>,
    /// Paths whose filesystems must keep their reserve free.
    floors: Vec<PathBuf>,
    /// Size of `trees` when the first step started.
    baseline: std::sync::OnceLock<u64>,
    /// Whether the runner bounds the step's `/tmp` and `/var/tmp` by the
    /// disk cap (bwrap does; the host runner shares the host's).
    pub bounded_tmp: bool,
}

impl Limiter {
    /// `trees` and `floors` are absolute, resolved paths.
    pub(super) fn new(limits: StepLimits, trees: Vec<PathBuf>, floors: Vec<PathBuf>) -> Limiter {
        // A tree inside another would be counted twice.
        let trees = trees
            .iter()
            .filter(|t| !trees.iter().any(|o| o != *t && t.starts_with(o)))
            .cloned()
            .collect();
        Limiter {
            limits,
            trees,
            floors,
            baseline: std::sync::OnceLock::new(),
            bounded_tmp: false,
        }
    }

    /// Start watching a step whose first process is `root` (leading group
    /// `pgrp` for the host runner); `kill` stops it with everything it
    /// started.
    pub(super) fn watch(
        &self,
        root: u32,
        pgrp: Option<u32>,
        kill: Box<dyn Fn() + Send>,
    ) -> Monitor {
        let never = AtomicBool::new(false);
        let baseline = if self.limits.max_disk > 0 {
            *self
                .baseline
                .get_or_init(|| tree_usage(&self.trees, &never))
        } else {
            0
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (wake, sleep) = mpsc::channel::<()>();
        let state = Watched {
            limits: self.limits,
            trees: self.trees.clone(),
            floors: self.floors.clone(),
            baseline,
            root,
            pgrp,
            stop: stop.clone(),
        };
        let thread = std::thread::spawn(move || state.run(sleep, kill));
        Monitor {
            stop,
            wake: Some(wake),
            thread: Some(thread),
        }
    }
}

/// What the monitor saw of a step.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    /// The limit it killed the step for.
    pub hit: Option<LimitHit>,
    /// The step's tasks reached the process limit at some point: a step
    /// that then failed (a shell that gave up on `fork`) failed for it.
    pub touched_process_limit: bool,
}

/// A running monitor; [`Monitor::finish`] stops it.
pub(super) struct Monitor {
    stop: Arc<AtomicBool>,
    wake: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Verdict>>,
}

impl Monitor {
    /// Stop watching and say what was seen.
    pub(super) fn finish(mut self) -> Verdict {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake.take());
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake.take());
    }
}

struct Watched {
    limits: StepLimits,
    trees: Vec<PathBuf>,
    floors: Vec<PathBuf>,
    baseline: u64,
    root: u32,
    pgrp: Option<u32>,
    stop: Arc<AtomicBool>,
}

/// Checks at most this often; counting processes costs a read of `/proc`.
const TICK: Duration = Duration::from_millis(100);
/// Near the process limit, look more often: a fork bomb grows fast.
const FAST_TICK: Duration = Duration::from_millis(25);
/// A walk of the trees costs time `t`; the next one waits at least
/// `t * WALK_SPACING`, so walking takes at most 1/20 (5 %) of a CPU.
const WALK_SPACING: u32 = 19;
const WALK_MIN: Duration = Duration::from_millis(250);
const WALK_MAX: Duration = Duration::from_secs(30);

impl Watched {
    fn run(self, sleep: mpsc::Receiver<()>, kill: Box<dyn Fn() + Send>) -> Verdict {
        let mut verdict = Verdict::default();
        let max = self.limits.max_processes;
        // "At the limit": the kernel stops forks at the limit, but other
        // processes of the same user shift where exactly; a few tasks of
        // slack still catch a step spinning on EAGAIN.
        let at_limit = max.saturating_sub((max / 32).max(2)).max(1);
        let mut tick = TICK;
        let mut at_limit_since: Option<Instant> = None;
        let mut next_walk = Instant::now();
        let mut walk_cost = Duration::ZERO;
        let mut last_walk_end = Instant::now();
        // Free bytes seen at the last walk and the growth it measured: a
        // drop in free space since then is growth the next walk will see,
        // so a fast writer brings the walk forward.
        let mut free_at_walk: Option<u64> = None;
        let mut grown = 0u64;
        loop {
            match sleep.recv_timeout(tick) {
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                _ => return verdict,
            }
            if self.stop.load(Ordering::Relaxed) {
                return verdict;
            }
            let now = Instant::now();
            if max > 0 {
                let began = Instant::now();
                let tasks = tree_tasks(&processes(), self.root, self.pgrp);
                let scan = began.elapsed();
                if tasks >= at_limit {
                    verdict.touched_process_limit = true;
                }
                let stuck = tasks >= at_limit
                    && now.duration_since(*at_limit_since.get_or_insert(now)) >= AT_LIMIT_GRACE;
                if tasks < at_limit {
                    at_limit_since = None;
                }
                // Past the limit means the kernel did not stop it (root is
                // exempt from RLIMIT_NPROC): stop it now.
                if tasks > max || stuck {
                    verdict.hit = Some(LimitHit::Processes { max });
                }
                let base = if tasks >= max / 2 { FAST_TICK } else { TICK };
                tick = base.max(scan * WALK_SPACING);
            }
            let mut free_now = None;
            if verdict.hit.is_none() {
                for path in &self.floors {
                    if let Some((total, avail)) = fs_space(path) {
                        if free_now.is_none() {
                            free_now = Some(avail);
                        }
                        if below_reserve(total, avail) {
                            verdict.hit = Some(LimitHit::FreeSpace {
                                path: path.clone(),
                                reserve: reserve_for(total),
                                free: avail,
                            });
                            break;
                        }
                    }
                }
            }
            let cap = self.limits.max_disk;
            if verdict.hit.is_none() && cap > 0 {
                let estimate = match (free_at_walk, free_now) {
                    (Some(then), Some(now)) => grown.saturating_add(then.saturating_sub(now)),
                    _ => grown,
                };
                let budget_ready = now >= last_walk_end + walk_cost * WALK_SPACING;
                if now >= next_walk || (estimate > cap && budget_ready) {
                    let began = Instant::now();
                    let used = tree_usage(&self.trees, &self.stop);
                    if self.stop.load(Ordering::Relaxed) {
                        return verdict;
                    }
                    last_walk_end = Instant::now();
                    walk_cost = last_walk_end - began;
                    next_walk =
                        last_walk_end + (walk_cost * WALK_SPACING).clamp(WALK_MIN, WALK_MAX);
                    grown = used.saturating_sub(self.baseline);
                    free_at_walk = free_now;
                    if grown > cap {
                        verdict.hit = Some(LimitHit::Disk { cap });
                    }
                }
            }
            if verdict.hit.is_some() {
                kill();
                return verdict;
            }
        }
    }
}

/// (size, bytes available to unprivileged users) of the filesystem of
/// `path`.
fn fs_space(path: &Path) -> Option<(u64, u64)> {
    let s = rustix::fs::statvfs(path).ok()?;
    let unit = s.f_frsize.max(1);
    Some((
        s.f_blocks.saturating_mul(unit),
        s.f_bavail.saturating_mul(unit),
    ))
}

/// Bytes allocated on disk under `trees`: hard links and directories are
/// counted once, symlinks are not followed, and other filesystems mounted
/// inside are not entered. Stops early (with a partial sum) once `stop` is
/// set. Unreadable entries (a step may `chmod 000` a directory) count as
/// empty.
fn tree_usage(trees: &[PathBuf], stop: &AtomicBool) -> u64 {
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    for root in trees {
        let Ok(meta) = std::fs::symlink_metadata(root) else {
            continue;
        };
        let dev = meta.dev();
        let mut dirs = vec![root.clone()];
        let mut visited = 0u32;
        let mut account = |m: &std::fs::Metadata| {
            let counted = if m.is_dir() || m.nlink() > 1 {
                seen.insert((m.dev(), m.ino()))
            } else {
                true
            };
            if counted {
                total = total.saturating_add(m.blocks().saturating_mul(512));
            }
            counted
        };
        if !account(&meta) {
            continue;
        }
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                visited += 1;
                if visited.is_multiple_of(1024) && stop.load(Ordering::Relaxed) {
                    return total;
                }
                let Ok(m) = entry.metadata() else { continue };
                if account(&m) && m.is_dir() && m.dev() == dev {
                    dirs.push(entry.path());
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_two_percent_capped_at_one_gib() {
        assert_eq!(reserve_for(10 << 30), (10u64 << 30) / 100 * 2);
        assert_eq!(reserve_for(50 << 30), 1 << 30);
        assert_eq!(reserve_for(252 << 30), 1 << 30);
        assert_eq!(reserve_for(0), 0);
        assert!(below_reserve(100 << 30, (1 << 30) - 1));
        assert!(!below_reserve(100 << 30, 1 << 30));
        // 20 GiB keeps 2 %: 409.6 MiB.
        assert!(below_reserve(20 << 30, 400 << 20));
        assert!(!below_reserve(20 << 30, 410 << 20));
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(16 << 20), "16.0 MiB");
        assert_eq!(human_size(2 << 30), "2.0 GiB");
        assert_eq!(human_size(1536), "1.5 KiB");
    }

    #[test]
    fn stat_lines_with_odd_command_names_parse() {
        let text = "42 (a) b (c)) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 3 0 1 2 3";
        assert_eq!(
            parse_stat(42, text),
            Some(Proc {
                pid: 42,
                ppid: 7,
                pgrp: 42,
                threads: 3
            })
        );
        assert_eq!(parse_stat(1, "1 (x) S 0"), None);
    }

    #[test]
    fn a_tree_counts_descendants_and_group_members_once() {
        let p = |pid, ppid, pgrp, threads| Proc {
            pid,
            ppid,
            pgrp,
            threads,
        };
        let procs = [
            p(1, 0, 1, 1),
            p(10, 1, 10, 1),  // the step
            p(11, 10, 10, 4), // a threaded child
            p(12, 11, 12, 1), // a grandchild in its own session
            p(13, 1, 10, 1),  // a background job reparented to init
            p(20, 1, 20, 1),  // unrelated
        ];
        assert_eq!(tree_tasks(&procs, 10, Some(10)), 7);
        assert_eq!(tree_tasks(&procs, 10, None), 6);
        assert_eq!(tree_tasks(&procs, 99, None), 0);
    }

    #[test]
    fn this_process_is_counted_for_its_uid() {
        let uid = rustix::process::getuid().as_raw();
        assert!(uid_tasks(uid) >= 1);
    }

    #[test]
    fn tree_usage_counts_hard_links_once_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let data = vec![7u8; 256 * 1024];
        std::fs::write(dir.path().join("a"), &data).unwrap();
        let never = AtomicBool::new(false);
        let one = tree_usage(&[dir.path().to_path_buf()], &never);
        assert!(one >= 256 * 1024, "{one}");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("usr")).unwrap();
        let linked = tree_usage(&[dir.path().to_path_buf()], &never);
        assert!(linked < one + 64 * 1024, "{one} then {linked}");
        // The same tree named twice is counted once.
        let twice = tree_usage(
            &[dir.path().to_path_buf(), dir.path().to_path_buf()],
            &never,
        );
        assert_eq!(twice, linked);
    }
}
