//! Build output: every step line goes to the terminal, prefixed with the
//! package and step, and to a full log file kept beside the packages.
//! When stderr is a terminal a status line announces each step.
//!
//! Several builds may share the terminal (`pkgbuild build --jobs N`): each
//! terminal line is written whole, in one call under the stderr lock, so
//! lines of concurrent builds never mix, and a build can carry a tag that
//! prefixes its own messages (step lines already name their package).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;

/// How much the build prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    Quiet,
    #[default]
    Normal,
    Debug,
}

pub struct BuildLog {
    file: Mutex<Option<BufWriter<File>>>,
    tty: bool,
    verbosity: Verbosity,
    /// Prefixes messages that do not name their package (`info`, `warn`,
    /// `debug`) on the terminal; the log file is one build's alone.
    tag: Option<String>,
}

/// One whole line to stderr with a single write under the lock.
fn to_terminal(line: &str) {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

impl BuildLog {
    pub fn new(verbosity: Verbosity) -> BuildLog {
        BuildLog {
            file: Mutex::new(None),
            tty: io::stderr().is_terminal(),
            verbosity,
            tag: None,
        }
    }

    /// The same, with `tag: ` before each message that does not already
    /// name the package (for builds that share the terminal).
    pub fn tagged(verbosity: Verbosity, tag: &str) -> BuildLog {
        BuildLog {
            tag: Some(tag.to_string()),
            ..BuildLog::new(verbosity)
        }
    }

    fn tagged_line(&self, msg: &str) -> String {
        match &self.tag {
            Some(t) => format!("{t}: {msg}"),
            None => msg.to_string(),
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
        if self.verbosity != Verbosity::Quiet {
            to_terminal(&format!("{prefix}: {line}"));
        }
    }

    /// A step begins: `n` of `total` for the package.
    pub fn step_start(&self, prefix: &str, n: usize, total: usize) {
        let msg = format!("==> {prefix} ({n}/{total})");
        self.to_file(&msg);
        if self.verbosity == Verbosity::Quiet {
            return;
        }
        if self.tty {
            to_terminal(&format!("\x1b[1m{msg}\x1b[0m"));
        } else {
            to_terminal(&msg);
        }
    }

    pub fn info(&self, msg: &str) {
        self.to_file(msg);
        if self.verbosity != Verbosity::Quiet {
            to_terminal(&self.tagged_line(msg));
        }
    }

    /// Whether `--debug` asked for tracing (steps then run with `set -x`).
    pub fn is_debug(&self) -> bool {
        self.verbosity == Verbosity::Debug
    }

    pub fn debug(&self, msg: &str) {
        self.to_file(msg);
        if self.verbosity == Verbosity::Debug {
            to_terminal(&self.tagged_line(msg));
        }
    }

    pub fn warn(&self, msg: &str) {
        self.to_file(&format!("warning: {msg}"));
        to_terminal(&format!("warning: {}", self.tagged_line(msg)));
    }

    pub fn flush(&self) {
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.flush();
        }
    }
}
