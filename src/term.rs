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

/// Longest value [`quote`] shows whole.
pub const QUOTE_LIMIT: usize = 80;

/// `value` quoted for an error message (as `{:?}` does), cut to its first
/// [`QUOTE_LIMIT`] characters when longer, with its full length: a 1 MiB
/// value from a hostile file must not be echoed whole.
pub fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_LIMIT) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_and_measured() {
        assert_eq!(quote("short"), "\"short\"");
        let exact = "é".repeat(QUOTE_LIMIT);
        assert_eq!(quote(&exact), format!("{exact:?}"));
        let long = format!("{}tail", "x".repeat(1 << 20));
        let q = quote(&long);
        assert_eq!(
            q,
            format!("\"{}\"… ({} bytes)", "x".repeat(QUOTE_LIMIT), long.len())
        );
    }
}
