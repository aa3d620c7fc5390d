//! `${{ name }}` substitution, the one template syntax of melange recipes.
//!
//! Rules (each has a test below):
//! - A reference is `${{`, optional blanks, a name of `[A-Za-z0-9._-]`, optional
//!   blanks, `}}`. Blanks are space, tab, CR and LF, as melange's `if:` parser allows.
//! - Substitution is a single pass: a substituted value is never re-scanned, so a
//!   value that itself contains `${{` stays literal text.
//! - Anything that is not `${{` is copied verbatim. Shell expansions such as
//!   `${foo}`, `$foo` or `${{` split by a blank (`${ {`) are left for the shell,
//!   exactly like melange.
//! - There is no escape. `$${{x}}` is a literal `$` followed by the reference
//!   (melange behaves the same; in a shell `$$` would be the PID, so a recipe that
//!   writes `$${{x}}` gets `$` + value).
//! - An undefined name, an empty `${{ }}`, a name with other characters, or a `${{`
//!   with no closing `}}` is an error carrying the byte offset of its `$`.

use std::fmt;

/// What went wrong with one `${{...}}` reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubstErrorKind {
    /// The lookup knows no such name.
    Undefined,
    /// `${{` without a closing `}}`.
    Unterminated,
    /// `${{ }}`: nothing between the braces.
    Empty,
    /// The braces hold characters outside `[A-Za-z0-9._-]` (e.g. `${{a b}}`).
    InvalidName,
}

/// A substitution failure; `offset` is the byte offset of the `$` in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstError {
    /// The name as written (trimmed); for `InvalidName`/`Unterminated`, the text read.
    pub var: String,
    pub offset: usize,
    pub kind: SubstErrorKind,
}

impl fmt::Display for SubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SubstErrorKind::Undefined => write!(f, "undefined variable `${{{{{}}}}}`", self.var),
            SubstErrorKind::Unterminated => {
                write!(f, "unterminated `${{{{{}` (no closing `}}}}`)", self.var)
            }
            SubstErrorKind::Empty => write!(f, "empty variable reference `${{{{}}}}`"),
            SubstErrorKind::InvalidName => write!(
                f,
                "invalid variable name in `${{{{{}}}}}` (names use letters, digits, `.`, `-`, `_`)",
                self.var
            ),
        }
    }
}

impl std::error::Error for SubstError {}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A well-formed reference found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference<'a> {
    pub name: &'a str,
    /// Byte offset of the `$`.
    pub start: usize,
    /// Byte offset just past the closing `}}`.
    pub end: usize,
}

/// Parses the reference whose `${{` starts at byte `start` of `text`.
/// The caller guarantees `text[start..]` begins with `${{`.
pub(crate) fn parse_reference(text: &str, start: usize) -> Result<Reference<'_>, SubstError> {
    let bytes = text.as_bytes();
    let mut i = start + OPEN.len();
    while i < bytes.len() && is_blank(bytes[i]) {
        i += 1;
    }
    let name_start = i;
    while i < bytes.len() && is_name_byte(bytes[i]) {
        i += 1;
    }
    let name = &text[name_start..i];
    while i < bytes.len() && is_blank(bytes[i]) {
        i += 1;
    }
    if text[i..].starts_with(CLOSE) {
        if name.is_empty() {
            return Err(SubstError {
                var: String::new(),
                offset: start,
                kind: SubstErrorKind::Empty,
            });
        }
        return Ok(Reference {
            name,
            start,
            end: i + CLOSE.len(),
        });
    }
    // Name bytes are ASCII, so `name_start..` is on a char boundary; so is any `}}`.
    match text[name_start..].find(CLOSE) {
        Some(rel) => Err(SubstError {
            var: text[name_start..name_start + rel].trim().to_string(),
            offset: start,
            kind: SubstErrorKind::InvalidName,
        }),
        None => Err(SubstError {
            var: name.to_string(),
            offset: start,
            kind: SubstErrorKind::Unterminated,
        }),
    }
}

/// Replaces every `${{ name }}` in `text` with `lookup(name)`, in one pass.
pub fn substitute(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, SubstError> {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(rel) = text[pos..].find(OPEN) {
        let start = pos + rel;
        out.push_str(&text[pos..start]);
        let r = parse_reference(text, start)?;
        match lookup(r.name) {
            Some(value) => out.push_str(&value),
            None => {
                return Err(SubstError {
                    var: r.name.to_string(),
                    offset: start,
                    kind: SubstErrorKind::Undefined,
                })
            }
        }
        pos = r.end;
    }
    out.push_str(&text[pos..]);
    Ok(out)
}

/// Names referenced by well-formed `${{...}}` in `text`, in order, with the byte
/// offset of each `$`. Malformed references are skipped (`substitute` reports them).
pub fn references(text: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    let mut pos = 0;
    while let Some(rel) = text[pos..].find(OPEN) {
        let start = pos + rel;
        match parse_reference(text, start) {
            Ok(r) => {
                found.push((r.name.to_string(), start));
                pos = r.end;
            }
            Err(_) => pos = start + OPEN.len(),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn vars(name: &str) -> Option<String> {
        match name {
            "package.name" => Some("hello".into()),
            "package.version" => Some("2.12.1".into()),
            "vars.tricky" => Some("${{package.name}}".into()),
            "vars.empty" => Some(String::new()),
            _ => None,
        }
    }

    fn sub(text: &str) -> Result<String, SubstError> {
        substitute(text, &vars)
    }

    #[test]
    fn plain_text_is_unchanged() {
        assert_eq!(
            sub("make -j4 && echo done").unwrap(),
            "make -j4 && echo done"
        );
        assert_eq!(sub("").unwrap(), "");
        assert_eq!(sub("ünïcode ✓").unwrap(), "ünïcode ✓");
    }

    #[test]
    fn substitutes_with_and_without_blanks() {
        assert_eq!(sub("${{package.name}}").unwrap(), "hello");
        assert_eq!(sub("${{ package.name }}").unwrap(), "hello");
        assert_eq!(sub("${{\tpackage.name\n}}").unwrap(), "hello");
        assert_eq!(
            sub("v${{package.version}}.tar.gz").unwrap(),
            "v2.12.1.tar.gz"
        );
    }

    #[test]
    fn adjacent_and_repeated_references() {
        assert_eq!(
            sub("${{package.name}}${{package.version}}-${{package.name}}").unwrap(),
            "hello2.12.1-hello"
        );
        assert_eq!(sub("${{vars.empty}}${{vars.empty}}x").unwrap(), "x");
    }

    #[test]
    fn values_are_not_rescanned() {
        assert_eq!(
            sub("a ${{vars.tricky}} b").unwrap(),
            "a ${{package.name}} b"
        );
    }

    #[test]
    fn nested_braces_are_not_a_nested_reference() {
        // `${{ ${{x}} }}` is not nesting: the outer braces hold `$`, an invalid name.
        let e = sub("${{ ${{package.name}} }}").unwrap_err();
        assert_eq!(e.kind, SubstErrorKind::InvalidName);
        assert_eq!(e.offset, 0);
    }

    #[test]
    fn undefined_variable_reports_name_and_offset() {
        let e = sub("echo ${{ vars.foo }} here").unwrap_err();
        assert_eq!(e.kind, SubstErrorKind::Undefined);
        assert_eq!(e.var, "vars.foo");
        assert_eq!(e.offset, 5);
        assert_eq!(e.to_string(), "undefined variable `${{vars.foo}}`");
    }

    #[test]
    fn offset_is_in_bytes_after_multibyte_text() {
        let e = sub("é${{nope}}").unwrap_err();
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn unterminated_reference() {
        let e = sub("x ${{package.name").unwrap_err();
        assert_eq!(e.kind, SubstErrorKind::Unterminated);
        assert_eq!(e.offset, 2);
        assert_eq!(e.var, "package.name");
        assert_eq!(sub("${{").unwrap_err().kind, SubstErrorKind::Unterminated);
        assert_eq!(
            sub("${{package.name}").unwrap_err().kind,
            SubstErrorKind::Unterminated
        );
        assert!(sub("${{a")
            .unwrap_err()
            .to_string()
            .contains("unterminated"));
    }

    #[test]
    fn empty_reference() {
        let e = sub("a${{  }}").unwrap_err();
        assert_eq!(e.kind, SubstErrorKind::Empty);
        assert_eq!(e.offset, 1);
        assert_eq!(sub("${{}}").unwrap_err().kind, SubstErrorKind::Empty);
    }

    #[test]
    fn invalid_name() {
        let e = sub("${{ package name }}").unwrap_err();
        assert_eq!(e.kind, SubstErrorKind::InvalidName);
        assert_eq!(e.var, "package name");
        assert_eq!(
            sub("${{a/b}}").unwrap_err().kind,
            SubstErrorKind::InvalidName
        );
    }

    #[test]
    fn shell_syntax_is_left_alone() {
        assert_eq!(
            sub("${foo} $foo ${ {x}} $ {{x}}").unwrap(),
            "${foo} $foo ${ {x}} $ {{x}}"
        );
        assert_eq!(sub("${{package.name}}}").unwrap(), "hello}");
        assert_eq!(sub("{{package.name}}").unwrap(), "{{package.name}}");
    }

    #[test]
    fn double_dollar_is_not_an_escape() {
        assert_eq!(sub("$${{package.name}}").unwrap(), "$hello");
        assert_eq!(sub("$$").unwrap(), "$$");
    }

    #[test]
    fn references_lists_names_with_offsets() {
        assert_eq!(
            references("a ${{ vars.x }} ${foo} ${{bad name}} ${{vars.y}}${{"),
            vec![("vars.x".to_string(), 2), ("vars.y".to_string(), 37)]
        );
        assert!(references("no refs ${x}").is_empty());
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x5b57);
        let alphabet: Vec<char> = "${} \t\n.-_aZ9é✓/".chars().collect();
        for _ in 0..20_000 {
            let len = rng.gen_range(0..24);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let result = substitute(&s, &|n: &str| {
                n.len().is_multiple_of(2).then(|| "${{x}}".into())
            });
            if let Err(e) = result {
                assert!(s.is_char_boundary(e.offset));
                assert!(s[e.offset..].starts_with("${{"));
            }
            for (_, off) in references(&s) {
                assert!(s[off..].starts_with("${{"));
            }
        }
    }
}
