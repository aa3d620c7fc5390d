//! Build output: every step line goes to the terminal, prefixed with the
//! package and step, and to a full log file kept beside the packages.
//! When stderr is a terminal a status line announces each step.

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
}

impl BuildLog {
    pub fn new(verbosity: Verbosity) -> BuildLog {
        BuildLog {
            file: Mutex::new(None),
            tty: io::stderr().is_terminal(),
            verbosity,
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
            eprintln!("{prefix}: {line}");
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
            eprintln!("\x1b[1m{msg}\x1b[0m");
        } else {
            eprintln!("{msg}");
        }
    }

    pub fn info(&self, msg: &str) {
        self.to_file(msg);
        if self.verbosity != Verbosity::Quiet {
            eprintln!("{msg}");
        }
    }

    pub fn debug(&self, msg: &str) {
        self.to_file(msg);
        if self.verbosity == Verbosity::Debug {
            eprintln!("{msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        self.to_file(&format!("warning: {msg}"));
        eprintln!("warning: {msg}");
    }

    pub fn flush(&self) {
        if let Some(f) = self.file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let _ = f.flush();
        }
    }
}
