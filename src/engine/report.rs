//! What a run tells the outside world goes through a [`Reporter`]: the
//! engine raises events (run start, recipe finish, step start and finish,
//! messages, test results) and never prints. The terminal reporter turns
//! them into today's lines on stderr and the package paths on stdout; the
//! JSON reporter keeps the results for one machine-readable document per
//! run (`--json`); the recorder keeps every event so tests assert what
//! happened instead of parsing stderr.
//!
//! Implementations are shared by builds running at the same time (`Sync`);
//! every terminal line is written whole in one call, so concurrent lines
//! never mix.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::multi::{Outcome, Skip};
use super::test::{Outcome as TestOutcome, PackageResult};
use super::Verbosity;
use crate::apk::index::IndexEntry;
use crate::arch::Arch;

/// Version of the `--json` document's shape (`schema/results.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A package file the run wrote, with what CI checks it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    pub path: PathBuf,
    pub name: String,
    /// Full version, `-rN` included.
    pub version: String,
    pub arch: String,
    pub size: u64,
    /// SHA-256 of the whole file, lower-case hex.
    pub sha256: String,
    /// The index's `C:` identity (`Q1` + base64 SHA-1 of the control member).
    pub checksum: String,
}

impl PackageFile {
    /// Read the identity of a published package from the file itself, so
    /// the report says what is on disk, not what the build meant to write.
    pub fn read(path: &Path) -> anyhow::Result<PackageFile> {
        let entry = IndexEntry::from_package(path)?;
        let mut file = File::open(path)
            .map_err(|e| anyhow::anyhow!("{}: cannot read package: {e}", path.display()))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| anyhow::anyhow!("{}: cannot read package: {e}", path.display()))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok(PackageFile {
            path: path.to_path_buf(),
            checksum: entry.checksum_field(),
            name: entry.info.name,
            version: entry.info.version,
            arch: entry.info.arch,
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Where a build failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// The whole error, every cause once.
    pub message: String,
    /// The package whose step failed.
    pub package: Option<String>,
    pub step: Option<String>,
    /// `exit status 3`, `killed by signal 9`.
    pub exit_status: Option<String>,
    pub exit_code: Option<i32>,
    /// The last lines the step printed.
    pub last_lines: Vec<String>,
}

/// What became of one recipe for one architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipeResult {
    pub recipe: PathBuf,
    /// `name-version-rN` of the main package.
    pub id: String,
    pub name: String,
    pub version: String,
    pub arch: String,
    pub outcome: Outcome,
    /// The summary's explanation (failure reason, why skipped); empty when built.
    pub reason: String,
    /// Every package file written, in the order published.
    pub packages: Vec<PackageFile>,
    /// Time the build took; None when it never started.
    pub duration: Option<Duration>,
    /// The full log, when the build started.
    pub log: Option<PathBuf>,
    pub failure: Option<Failure>,
}

impl RecipeResult {
    /// `built`, `failed` or `skipped`.
    pub fn status(&self) -> &'static str {
        match self.outcome {
            Outcome::Built => "built",
            Outcome::Failed(_) => "failed",
            Outcome::Skipped(_) => "skipped",
        }
    }

    /// Why it was skipped, as a stable word for machines.
    pub fn skip_kind(&self) -> Option<&'static str> {
        match &self.outcome {
            Outcome::Skipped(Skip::Arch(_)) => Some("arch"),
            Outcome::Skipped(Skip::UpToDate) => Some("up-to-date"),
            Outcome::Skipped(Skip::DependencyFailed(_)) => Some("dependency-failed"),
            Outcome::Skipped(Skip::NotReached) => Some("not-reached"),
            _ => None,
        }
    }
}

/// The start of one architecture's run: what will build, in what order.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub arch: Arch,
    /// How many architectures the whole invocation builds.
    pub arch_count: usize,
    /// Every recipe's id, in the order given.
    pub recipes: Vec<String>,
    /// The recipes that will build, in one-job order.
    pub order: Vec<usize>,
    pub jobs: usize,
    /// For each recipe that will build and waits for others: the recipes
    /// and the environment entry that needs each.
    pub waits: Vec<(usize, Vec<(usize, String)>)>,
}

/// One architecture's run, each recipe's result in the order given.
#[derive(Debug, Clone)]
pub struct BuildReport {
    pub arch: Arch,
    pub recipes: Vec<RecipeResult>,
    /// The recipes that started, in the order they started.
    pub started: Vec<usize>,
    pub duration: Duration,
}

impl BuildReport {
    pub fn failed(&self) -> bool {
        self.recipes
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    }
}

/// Receives everything a run has to say. Every method has a default that
/// ignores the event, so a reporter implements only what it shows.
pub trait Reporter: Sync {
    /// One architecture's run begins (after every recipe compiled).
    fn run_start(&self, _run: &RunStart) {}
    /// A recipe's build starts.
    fn recipe_start(&self, _id: &str) {}
    /// A recipe is done: built, failed, or skipped. `many`: the run has
    /// several recipes (messages then name the recipe).
    fn recipe_finish(&self, _result: &RecipeResult, _many: bool) {}
    /// One architecture's run is over.
    fn run_finish(&self, _report: &BuildReport) {}
    /// Step `n` of `total` begins; `step` is `package/step label`.
    fn step_start(&self, _step: &str, _n: usize, _total: usize) {}
    /// A line a step printed.
    fn step_output(&self, _step: &str, _line: &str) {}
    /// Step `step` ended after `elapsed`; `ok` when it exited 0.
    fn step_finish(&self, _step: &str, _elapsed: Duration, _ok: bool) {}
    /// A message; `tag` names the build when several share the terminal.
    fn message(&self, _level: Level, _tag: Option<&str>, _msg: &str) {}
    /// One package's test ended (`pkgbuild test`).
    fn test_result(&self, _recipe: &Path, _arch: Arch, _result: &PackageResult) {}
}

/// Ignores everything.
pub struct Silent;
impl Reporter for Silent {}

/// `1.2s`, `3m05s`: short enough for the end of a line.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = d.as_secs();
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
        }
    }
}

/// The terminal: progress and messages on stderr, produced files (and
/// test summaries) on stdout so scripts can pipe them.
pub struct TerminalReporter {
    verbosity: Verbosity,
    tty: bool,
    /// stdout carries a JSON document: the lines meant for stdout go to
    /// stderr instead.
    stdout_taken: bool,
}

impl TerminalReporter {
    pub fn new(verbosity: Verbosity) -> TerminalReporter {
        TerminalReporter {
            verbosity,
            tty: io::stderr().is_terminal(),
            stdout_taken: false,
        }
    }

    /// The same, writing what normally goes to stdout to stderr (for
    /// `--json -`).
    pub fn stdout_taken(mut self, taken: bool) -> TerminalReporter {
        self.stdout_taken = taken;
        self
    }

    fn quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    fn line(&self, text: &str) {
        let mut s = String::with_capacity(text.len() + 1);
        s.push_str(text);
        s.push('\n');
        crate::term::stderr(&s);
    }

    fn out(&self, text: &str) {
        let mut s = String::with_capacity(text.len() + 1);
        s.push_str(text);
        s.push('\n');
        if self.stdout_taken {
            crate::term::stderr(&s);
        } else {
            crate::term::stdout(&s);
        }
    }

    fn bold(&self, text: &str) {
        if self.tty {
            self.line(&format!("\x1b[1m{text}\x1b[0m"));
        } else {
            self.line(text);
        }
    }
}

impl Reporter for TerminalReporter {
    fn run_start(&self, run: &RunStart) {
        if self.quiet() {
            return;
        }
        if run.arch_count > 1 {
            self.line(&format!("==> building for {}", run.arch.apk()));
        }
        if run.recipes.len() <= 1 {
            return;
        }
        let order: Vec<&str> = run.order.iter().map(|&i| run.recipes[i].as_str()).collect();
        self.line(&format!(
            "==> {} recipes, {} to build, up to {} at a time, in dependency order: {}",
            run.recipes.len(),
            order.len(),
            run.jobs,
            order.join(", ")
        ));
        for (i, on) in &run.waits {
            let on: Vec<String> = on
                .iter()
                .map(|(j, entry)| format!("{} ({entry})", run.recipes[*j]))
                .collect();
            self.line(&format!(
                "==> {} waits for {}",
                run.recipes[*i],
                on.join(", ")
            ));
        }
    }

    fn recipe_finish(&self, r: &RecipeResult, many: bool) {
        for p in &r.packages {
            self.out(&p.path.display().to_string());
        }
        let Some(f) = &r.failure else { return };
        if many {
            self.line(&format!("error: {}: {}", r.id, f.message));
        } else {
            self.line(&format!("error: {}", f.message));
        }
        if let Some(log) = &r.log {
            self.line(&format!("note: full log: {}", log.display()));
        }
        if f.step.is_some() {
            self.line(
                "note: --keep-workspace keeps the workspace to look into; --debug traces every command of the steps",
            );
        }
    }

    fn run_finish(&self, report: &BuildReport) {
        let mut rows: Vec<usize> = report.started.clone();
        rows.extend((0..report.recipes.len()).filter(|i| !report.started.contains(i)));
        let count =
            |f: fn(&Outcome) -> bool| report.recipes.iter().filter(|r| f(&r.outcome)).count();
        let mut text = format!(
            "==> summary: {} built, {} failed, {} skipped in {}\n",
            count(|o| matches!(o, Outcome::Built)),
            count(|o| matches!(o, Outcome::Failed(_))),
            count(|o| matches!(o, Outcome::Skipped(_))),
            human_duration(report.duration),
        );
        let id_w = report.recipes.iter().map(|r| r.id.len()).max().unwrap_or(0);
        let recipe_w = report
            .recipes
            .iter()
            .map(|r| r.recipe.display().to_string().len())
            .max()
            .unwrap_or(0);
        for i in rows {
            let r = &report.recipes[i];
            let mut detail = r.reason.clone();
            if let (Outcome::Built, Some(d)) = (&r.outcome, r.duration) {
                detail = format!("in {}", human_duration(d));
            }
            let line = format!(
                "  {:<7}  {:<id_w$}  {:<recipe_w$}  {detail}",
                r.status(),
                r.id,
                r.recipe.display().to_string()
            );
            text.push_str(line.trim_end());
            text.push('\n');
        }
        crate::term::stderr(&text);
    }

    fn step_start(&self, step: &str, n: usize, total: usize) {
        if !self.quiet() {
            self.bold(&format!("==> {step} ({n}/{total})"));
        }
    }

    fn step_output(&self, step: &str, line: &str) {
        if !self.quiet() {
            self.line(&format!("{step}: {line}"));
        }
    }

    fn step_finish(&self, step: &str, elapsed: Duration, ok: bool) {
        if !self.quiet() {
            let how = if ok { "done" } else { "failed" };
            self.line(&format!("==> {step}: {how} in {}", human_duration(elapsed)));
        }
    }

    fn message(&self, level: Level, tag: Option<&str>, msg: &str) {
        let shown = match level {
            Level::Debug => self.verbosity == Verbosity::Debug,
            Level::Info => !self.quiet(),
            Level::Warn | Level::Error => true,
        };
        if !shown {
            return;
        }
        let prefix = match level {
            Level::Warn => "warning: ",
            Level::Error => "error: ",
            _ => "",
        };
        match tag {
            Some(t) => self.line(&format!("{prefix}{t}: {msg}")),
            None => self.line(&format!("{prefix}{msg}")),
        }
    }

    fn test_result(&self, _recipe: &Path, _arch: Arch, r: &PackageResult) {
        self.out(&r.summary());
    }
}

/// One event, as the [`Recorder`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    RunStart {
        arch: String,
        recipes: Vec<String>,
        order: Vec<usize>,
        jobs: usize,
    },
    RecipeStart(String),
    RecipeFinish(Box<RecipeResult>),
    RunFinish {
        arch: String,
        built: usize,
        failed: usize,
        skipped: usize,
    },
    StepStart {
        step: String,
        n: usize,
        total: usize,
    },
    StepOutput {
        step: String,
        line: String,
    },
    StepFinish {
        step: String,
        elapsed: Duration,
        ok: bool,
    },
    Message {
        level: Level,
        tag: Option<String>,
        text: String,
    },
    TestResult(PackageResult),
}

/// Keeps every event, in order, for tests.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::default()
    }

    /// Everything recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn push(&self, e: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(e);
    }
}

impl Reporter for Recorder {
    fn run_start(&self, run: &RunStart) {
        self.push(Event::RunStart {
            arch: run.arch.apk().to_string(),
            recipes: run.recipes.clone(),
            order: run.order.clone(),
            jobs: run.jobs,
        });
    }
    fn recipe_start(&self, id: &str) {
        self.push(Event::RecipeStart(id.to_string()));
    }
    fn recipe_finish(&self, result: &RecipeResult, _many: bool) {
        self.push(Event::RecipeFinish(Box::new(result.clone())));
    }
    fn run_finish(&self, report: &BuildReport) {
        let n = |s: &str| report.recipes.iter().filter(|r| r.status() == s).count();
        self.push(Event::RunFinish {
            arch: report.arch.apk().to_string(),
            built: n("built"),
            failed: n("failed"),
            skipped: n("skipped"),
        });
    }
    fn step_start(&self, step: &str, n: usize, total: usize) {
        self.push(Event::StepStart {
            step: step.to_string(),
            n,
            total,
        });
    }
    fn step_output(&self, step: &str, line: &str) {
        self.push(Event::StepOutput {
            step: step.to_string(),
            line: line.to_string(),
        });
    }
    fn step_finish(&self, step: &str, elapsed: Duration, ok: bool) {
        self.push(Event::StepFinish {
            step: step.to_string(),
            elapsed,
            ok,
        });
    }
    fn message(&self, level: Level, tag: Option<&str>, msg: &str) {
        self.push(Event::Message {
            level,
            tag: tag.map(str::to_string),
            text: msg.to_string(),
        });
    }
    fn test_result(&self, _recipe: &Path, _arch: Arch, result: &PackageResult) {
        self.push(Event::TestResult(result.clone()));
    }
}

/// One test result as the JSON document keeps it.
#[derive(Debug, Clone)]
struct TestEntry {
    recipe: PathBuf,
    arch: String,
    result: PackageResult,
}

/// Collects a run's results for the `--json` document and passes every
/// event on to `inner` (the terminal), so people still see the run.
pub struct JsonReporter<'a> {
    inner: &'a dyn Reporter,
    builds: Mutex<Vec<BuildReport>>,
    tests: Mutex<Vec<TestEntry>>,
}

impl<'a> JsonReporter<'a> {
    pub fn new(inner: &'a dyn Reporter) -> JsonReporter<'a> {
        JsonReporter {
            inner,
            builds: Mutex::new(Vec::new()),
            tests: Mutex::new(Vec::new()),
        }
    }

    /// The document of a `build` or `test` run.
    pub fn document(&self, command: &str, archs: &[Arch], duration: Duration) -> serde_json::Value {
        let builds = self.builds.lock().unwrap_or_else(|e| e.into_inner());
        let tests = self.tests.lock().unwrap_or_else(|e| e.into_inner());
        let recipes: Vec<serde_json::Value> = builds
            .iter()
            .flat_map(|b| b.recipes.iter().map(json::recipe))
            .collect();
        let test_entries: Vec<serde_json::Value> = tests.iter().map(json::test).collect();
        let ok = !builds.iter().any(BuildReport::failed)
            && !tests
                .iter()
                .any(|t| matches!(t.result.outcome, TestOutcome::Fail(_)));
        let mut doc = json::header(command, archs, ok, duration);
        if command == "test" {
            doc["tests"] = test_entries.into();
        } else {
            doc["recipes"] = recipes.into();
        }
        doc
    }
}

impl Reporter for JsonReporter<'_> {
    fn run_start(&self, run: &RunStart) {
        self.inner.run_start(run)
    }
    fn recipe_start(&self, id: &str) {
        self.inner.recipe_start(id)
    }
    fn recipe_finish(&self, result: &RecipeResult, many: bool) {
        self.inner.recipe_finish(result, many)
    }
    fn run_finish(&self, report: &BuildReport) {
        self.builds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(report.clone());
        self.inner.run_finish(report)
    }
    fn step_start(&self, step: &str, n: usize, total: usize) {
        self.inner.step_start(step, n, total)
    }
    fn step_output(&self, step: &str, line: &str) {
        self.inner.step_output(step, line)
    }
    fn step_finish(&self, step: &str, elapsed: Duration, ok: bool) {
        self.inner.step_finish(step, elapsed, ok)
    }
    fn message(&self, level: Level, tag: Option<&str>, msg: &str) {
        self.inner.message(level, tag, msg)
    }
    fn test_result(&self, recipe: &Path, arch: Arch, result: &PackageResult) {
        self.tests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TestEntry {
                recipe: recipe.to_path_buf(),
                arch: arch.apk().to_string(),
                result: result.clone(),
            });
        self.inner.test_result(recipe, arch, result)
    }
}

/// The `--json` document's parts (see `schema/results.schema.json`).
pub mod json {
    use std::path::Path;
    use std::time::Duration;

    use serde_json::{json, Value};

    use super::{PackageFile, RecipeResult, TestEntry, SCHEMA_VERSION};
    use crate::arch::Arch;
    use crate::engine::test::Outcome;

    fn path(p: &Path) -> String {
        p.to_string_lossy().into_owned()
    }

    /// The fields every document starts with.
    pub fn header(command: &str, archs: &[Arch], ok: bool, duration: Duration) -> Value {
        json!({
            "schema_version": SCHEMA_VERSION,
            "command": command,
            "pkgbuild_version": env!("CARGO_PKG_VERSION"),
            "archs": archs.iter().map(|a| a.apk()).collect::<Vec<_>>(),
            "ok": ok,
            "duration_seconds": duration.as_secs_f64(),
        })
    }

    pub fn package(p: &PackageFile) -> Value {
        json!({
            "path": path(&p.path),
            "name": p.name,
            "version": p.version,
            "arch": p.arch,
            "size": p.size,
            "sha256": p.sha256,
            "checksum": p.checksum,
        })
    }

    pub fn recipe(r: &RecipeResult) -> Value {
        json!({
            "recipe": path(&r.recipe),
            "id": r.id,
            "name": r.name,
            "version": r.version,
            "arch": r.arch,
            "status": r.status(),
            "reason": if r.reason.is_empty() { None } else { Some(&r.reason) },
            "skip": r.skip_kind(),
            "duration_seconds": r.duration.map(|d| d.as_secs_f64()),
            "log": r.log.as_deref().map(path),
            "packages": r.packages.iter().map(package).collect::<Vec<_>>(),
            "failure": r.failure.as_ref().map(|f| json!({
                "message": f.message,
                "package": f.package,
                "step": f.step,
                "exit_status": f.exit_status,
                "exit_code": f.exit_code,
                "last_lines": f.last_lines,
            })),
        })
    }

    pub(super) fn test(t: &TestEntry) -> Value {
        let (status, reason, steps) = match &t.result.outcome {
            Outcome::Pass(n) => ("passed", None, Some(*n)),
            Outcome::Fail(why) => ("failed", Some(why.as_str()), None),
            Outcome::Skip(why) => ("skipped", Some(why.as_str()), None),
        };
        json!({
            "recipe": path(&t.recipe),
            "package": t.result.package,
            "arch": t.arch,
            "status": status,
            "reason": reason,
            "steps": steps,
        })
    }

    /// Write `doc` to `dest` (`-`: stdout), the file atomically.
    pub fn write(dest: &Path, doc: &Value) -> anyhow::Result<()> {
        let mut text = serde_json::to_string_pretty(doc)?;
        text.push('\n');
        if dest == Path::new("-") {
            crate::term::stdout(&text);
            return Ok(());
        }
        crate::atomic::write(dest, 0o644, text.as_bytes()).map_err(|e| {
            anyhow::anyhow!("{}: cannot write the --json results: {e}", dest.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well_at_every_scale() {
        assert_eq!(human_duration(Duration::from_millis(250)), "0.2s");
        assert_eq!(human_duration(Duration::from_secs(65)), "1m05s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h02m03s");
    }

    #[test]
    fn the_json_reporter_passes_events_on_and_keeps_results() {
        let rec = Recorder::new();
        let json = JsonReporter::new(&rec);
        json.step_start("a/make", 1, 1);
        json.step_finish("a/make", Duration::from_millis(5), true);
        let result = RecipeResult {
            recipe: "a.yaml".into(),
            id: "a-1-r0".into(),
            name: "a".into(),
            version: "1-r0".into(),
            arch: "x86_64".into(),
            outcome: Outcome::Skipped(Skip::UpToDate),
            reason: "up to date".into(),
            packages: vec![],
            duration: None,
            log: None,
            failure: None,
        };
        json.run_finish(&BuildReport {
            arch: Arch::X86_64,
            recipes: vec![result],
            started: vec![],
            duration: Duration::from_secs(1),
        });
        assert_eq!(rec.events().len(), 3);
        let doc = json.document("build", &[Arch::X86_64], Duration::from_secs(1));
        assert_eq!(doc["ok"], true);
        assert_eq!(doc["recipes"][0]["status"], "skipped");
        assert_eq!(doc["recipes"][0]["skip"], "up-to-date");
        assert_eq!(doc["archs"][0], "x86_64");
    }
}
