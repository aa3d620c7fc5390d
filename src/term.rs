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

/// Longest message [`shorten_quoted`] leaves whole, whatever it quotes.
pub const MESSAGE_LIMIT: usize = 2000;

/// `message` with every quoted span (between backticks, or a `"` string as
/// `{:?}` writes it) longer than [`QUOTE_LIMIT`] characters cut, giving its
/// length instead; a message still longer than [`MESSAGE_LIMIT`] is cut
/// too. Errors quote what they found, and what they found may be a 1 MiB
/// line of a hostile recipe.
pub fn shorten_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_LIMIT + 64));
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        let body = &rest[open + 1..];
        let close = if quote == '"' {
            closing_double_quote(body)
        } else {
            body.find('`')
        };
        let Some(close) = close else {
            rest = body;
            break;
        };
        let inner = &body[..close];
        match inner.char_indices().nth(QUOTE_LIMIT) {
            None => out.push_str(inner),
            Some((cut, _)) => {
                out.push_str(&inner[..cut]);
                out.push(quote);
                out.push_str(&format!("… ({} bytes)", inner.len()));
                rest = &body[close + 1..];
                continue;
            }
        }
        out.push(quote);
        rest = &body[close + 1..];
    }
    out.push_str(rest);
    match out.char_indices().nth(MESSAGE_LIMIT) {
        None => out,
        Some((cut, _)) => format!("{}… ({} bytes in all)", &out[..cut], out.len()),
    }
}

/// Index of the `"` ending a Debug-quoted string body (skipping `\"`).
fn closing_double_quote(body: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_spans_are_shortened_in_place() {
        let long = "v".repeat(1 << 20);
        let msg = format!("invalid version `{long}`: expected 1.2.3 (see `a`)");
        let short = shorten_quoted(&msg);
        assert_eq!(
            short,
            format!(
                "invalid version `{}`… ({} bytes): expected 1.2.3 (see `a`)",
                "v".repeat(QUOTE_LIMIT),
                1 << 20
            )
        );
        let debug = format!("got {:?} here", format!("a\"b{long}"));
        let short = shorten_quoted(&debug);
        assert!(short.starts_with("got \"a\\\"b"), "{short}");
        assert!(short.ends_with(" bytes) here"), "{short}");
        assert!(short.len() < 200, "{short}");
        // Unclosed quotes and unquoted floods are capped as a whole.
        let open = format!("unterminated `{long}");
        assert!(shorten_quoted(&open).len() < MESSAGE_LIMIT + 100);
        assert_eq!(shorten_quoted("plain `x` and \"y\""), "plain `x` and \"y\"");
    }

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
