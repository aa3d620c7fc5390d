//! Printing that never panics. `println!`/`eprintln!` panic when the write
//! fails, which is what a closed pipe does (`pkgbuild ... | head`; Rust
//! ignores SIGPIPE, so the write returns EPIPE). These macros write the
//! whole line in one call and drop the error: output nobody reads is not a
//! reason to stop a build half-way through publishing.

use std::io::Write;

/// Write `text` to stdout, ignoring failures.
pub fn stdout(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Write `text` to stderr, ignoring failures.
pub fn stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::term::stdout("\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::term::stdout(&line);
    }};
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    () => { $crate::term::stderr("\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::term::stderr(&line);
    }};
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! err {
    ($($arg:tt)*) => { $crate::term::stderr(&format!($($arg)*)) };
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::term::stdout(&format!($($arg)*)) };
}
