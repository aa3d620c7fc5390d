//! Build output: every step line goes to the build's [`Reporter`] (the
//! terminal by default), prefixed with the package and step, and to a full
//! log file kept beside the packages.
//!
//! Several builds may share one reporter (`pkgbuild build --jobs N`): a
//! build can carry a tag that prefixes its own messages (step lines already
//! name their package).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use super::report::{Level, Reporter, TerminalReporter};

/// How much the build prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Debug,
}

/// The build's own terminal, or one shared by the whole run.
enum Sink<'r> {
    Own(TerminalReporter),
    Shared(&'r dyn Reporter),
}

pub struct BuildLog<'r> {
    file: Mutex<Option<BufWriter<File>>>,
    verbosity: Verbosity,
    /// Prefixes messages that do not name their package (`info`, `warn`,
    /// `debug`) on the terminal; the log file is one build's alone.
    tag: Option<String>,
    sink: Sink<'r>,
}

impl BuildLog<'static> {
    /// A log that reports to the terminal.
    pub fn new(verbosity: Verbosity) -> BuildLog<'static> {
        BuildLog {
            file: Mutex::new(None),
            verbosity,
            tag: None,
            sink: Sink::Own(TerminalReporter::new(verbosity)),
        }
    }

    /// The same, with `tag: ` before each message that does not already
    /// name the package (for builds that share the terminal).
    pub fn tagged(verbosity: Verbosity, tag: &str) -> BuildLog<'static> {
        BuildLog {
            tag: Some(tag.to_string()),
            ..BuildLog::new(verbosity)
        }
    }
}

impl<'r> BuildLog<'r> {
    /// A log that reports to `reporter`; `tag` as for [`BuildLog::tagged`].
    pub fn with_reporter(
        reporter: &'r dyn Reporter,
        verbosity: Verbosity,
        tag: Option<&str>,
    ) -> BuildLog<'r> {
        BuildLog {
            file: Mutex::new(None),
            verbosity,
            tag: tag.map(str::to_string),
            sink: Sink::Shared(reporter),
        }
    }

    fn reporter(&self) -> &dyn Reporter {
        match &self.sink {
            Sink::Own(t) => t,
            Sink::Shared(r) => *r,
        }
    }

    /// Start (or restart) the full log at `path`.
    pub fn open_file(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = File::create(path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(BufWriter::new(f));
        Ok(())
    }

    fn to_file(&self, line: &str) {
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = writeln!(f, "{line}");
        }
    }

    /// A line of output from a step.
    pub fn step_output(&self, prefix: &str, line: &str) {
        self.to_file(&format!("{prefix}: {line}"));
        self.reporter().step_output(prefix, line);
    }

    /// A step begins: `n` of `total` for the package.
    pub fn step_start(&self, prefix: &str, n: usize, total: usize) {
        self.to_file(&format!("==> {prefix} ({n}/{total})"));
        self.reporter().step_start(prefix, n, total);
    }

    /// A step ended after `elapsed`; `ok` when it succeeded.
    pub fn step_finish(&self, prefix: &str, elapsed: Duration, ok: bool) {
        let how = if ok { "done" } else { "failed" };
        self.to_file(&format!(
            "==> {prefix}: {how} in {}",
            super::report::human_duration(elapsed)
        ));
        self.reporter().step_finish(prefix, elapsed, ok);
    }

    pub fn info(&self, msg: &str) {
        self.to_file(msg);
        self.reporter()
            .message(Level::Info, self.tag.as_deref(), msg);
    }

    /// Whether `--debug` asked for tracing (steps then run with `set -x`).
    pub fn is_debug(&self) -> bool {
        self.verbosity == Verbosity::Debug
    }

    pub fn debug(&self, msg: &str) {
        self.to_file(msg);
        self.reporter()
            .message(Level::Debug, self.tag.as_deref(), msg);
    }

    pub fn warn(&self, msg: &str) {
        self.to_file(&format!("warning: {msg}"));
        self.reporter()
            .message(Level::Warn, self.tag.as_deref(), msg);
    }

    pub fn flush(&self) {
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.flush();
        }
    }
}
