//! apk version strings: ordering and validation (apk-format.md §5.1, §5.2).
//!
//! Ordering follows apk-tools 3 token by token, so that `pkgbuild index`
//! sorts and `Dep::satisfies` decides exactly as apk does, even for
//! versions pkgbuild itself would refuse to write (third-party packages in
//! an index). Validation is deliberately stricter: it accepts only the
//! intersection of what apk2, apk3 and go-apk understand, because a version
//! one of them rejects makes the package uninstallable there.

use std::cmp::Ordering;

/// A version that pkgbuild refuses to write, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version `{version}`: {reason}")]
pub struct VersionError {
    pub version: String,
    pub reason: String,
}

/// Token kinds in the order apk ranks them: when two versions agree up to
/// a point, the one whose next token has the *higher* kind is the smaller
/// (a version that ends is smaller than one that goes on), except that a
/// pre-release suffix is smaller than anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    InitialDigit,
    Digit,
    Letter,
    Suffix,
    SuffixNo,
    CommitHash,
    RevisionNo,
    End,
    Invalid,
}

/// Suffix ranks; `NONE` is the pivot between pre- and post-release.
const SUFFIXES: [(&str, u8); 9] = [
    ("alpha", 1),
    ("beta", 2),
    ("pre", 3),
    ("rc", 4),
    ("cvs", 6),
    ("svn", 7),
    ("git", 8),
    ("hg", 9),
    ("p", 10),
];
const SUFFIX_NONE: u8 = 5;

fn suffix_rank(word: &[u8]) -> Option<u8> {
    SUFFIXES
        .iter()
        .find(|(name, _)| name.as_bytes() == word)
        .map(|&(_, rank)| rank)
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    kind: Kind,
    /// The token's text (digits, letter, suffix word or hash).
    text: &'a [u8],
    suffix: u8,
}

/// Walks a version string one token at a time, enforcing which token may
/// follow which, the way apk3 does.
struct Tokens<'a> {
    rest: &'a [u8],
    current: Token<'a>,
}

fn take_while(s: &[u8], f: impl Fn(u8) -> bool) -> (&[u8], &[u8]) {
    let n = s.iter().position(|&c| !f(c)).unwrap_or(s.len());
    s.split_at(n)
}

impl<'a> Tokens<'a> {
    fn new(v: &'a str) -> Self {
        let (digits, rest) = take_while(v.as_bytes(), |c| c.is_ascii_digit());
        let kind = if digits.is_empty() {
            Kind::Invalid
        } else {
            Kind::InitialDigit
        };
        Tokens {
            rest,
            current: Token {
                kind,
                text: digits,
                suffix: 0,
            },
        }
    }

    fn advance(&mut self) {
        let prev = self.current.kind;
        let invalid = Token {
            kind: Kind::Invalid,
            text: &[],
            suffix: 0,
        };
        let Some(&c) = self.rest.first() else {
            self.current.kind = Kind::End;
            return;
        };
        self.current = match c {
            b'a'..=b'z' if prev <= Kind::Digit => {
                let (text, rest) = self.rest.split_at(1);
                self.rest = rest;
                Token {
                    kind: Kind::Letter,
                    text,
                    suffix: 0,
                }
            }
            b'.' if prev <= Kind::Digit => {
                let (digits, rest) = take_while(&self.rest[1..], |c| c.is_ascii_digit());
                self.rest = rest;
                if digits.is_empty() {
                    invalid
                } else {
                    Token {
                        kind: Kind::Digit,
                        text: digits,
                        suffix: 0,
                    }
                }
            }
            b'0'..=b'9' if prev == Kind::Suffix => {
                let (digits, rest) = take_while(self.rest, |c| c.is_ascii_digit());
                self.rest = rest;
                Token {
                    kind: Kind::SuffixNo,
                    text: digits,
                    suffix: 0,
                }
            }
            b'_' if prev <= Kind::SuffixNo => {
                let (word, rest) = take_while(&self.rest[1..], |c| c.is_ascii_lowercase());
                self.rest = rest;
                match suffix_rank(word) {
                    Some(suffix) => Token {
                        kind: Kind::Suffix,
                        text: word,
                        suffix,
                    },
                    None => invalid,
                }
            }
            b'~' if prev < Kind::CommitHash => {
                let (hash, rest) = take_while(&self.rest[1..], |c| c.is_ascii_hexdigit());
                self.rest = rest;
                if hash.is_empty() {
                    invalid
                } else {
                    Token {
                        kind: Kind::CommitHash,
                        text: hash,
                        suffix: 0,
                    }
                }
            }
            b'-' if prev < Kind::RevisionNo && self.rest.get(1) == Some(&b'r') => {
                let (digits, rest) = take_while(&self.rest[2..], |c| c.is_ascii_digit());
                self.rest = rest;
                if digits.is_empty() {
                    invalid
                } else {
                    Token {
                        kind: Kind::RevisionNo,
                        text: digits,
                        suffix: 0,
                    }
                }
            }
            _ => invalid,
        };
    }
}

/// Compare decimal digit strings by value without overflowing.
fn cmp_numeric(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |s: &'_ [u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compare two tokens of the same kind.
fn cmp_token(a: &Token, b: &Token) -> Ordering {
    match a.kind {
        // A later number component with a leading zero is compared as a
        // string (`1.01 < 1.1`); go-apk compares it numerically, which is
        // why `has_leading_zero_component` exists.
        Kind::Digit if a.text.first() == Some(&b'0') || b.text.first() == Some(&b'0') => {
            a.text.cmp(b.text)
        }
        Kind::Digit | Kind::InitialDigit | Kind::SuffixNo | Kind::RevisionNo => {
            cmp_numeric(a.text, b.text)
        }
        Kind::Suffix => a.suffix.cmp(&b.suffix),
        _ => a.text.cmp(b.text),
    }
}

/// Compare two versions; `fuzzy` makes `b` match any version it is a token
/// prefix of (the `~` dependency operator).
fn compare_impl(a: &str, b: &str, fuzzy: bool) -> Ordering {
    let (mut ta, mut tb) = (Tokens::new(a), Tokens::new(b));
    while ta.current.kind == tb.current.kind && ta.current.kind < Kind::End {
        let r = cmp_token(&ta.current, &tb.current);
        if r != Ordering::Equal {
            return r;
        }
        ta.advance();
        tb.advance();
    }
    let (ka, kb) = (ta.current.kind, tb.current.kind);
    if ka == kb || (fuzzy && kb == Kind::End) {
        return Ordering::Equal;
    }
    let pre_release = |t: &Token| t.kind == Kind::Suffix && t.suffix < SUFFIX_NONE;
    if pre_release(&ta.current) {
        return Ordering::Less;
    }
    if pre_release(&tb.current) {
        return Ordering::Greater;
    }
    // The version that continues with a lower-ranked token is greater.
    kb.cmp(&ka)
}

/// apk's version ordering (apk-tools 3 semantics). Total on valid versions;
/// strings that are not versions compare by their valid prefix.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_impl(a, b, false)
}

/// `true` when `version` matches `pattern` as apk's `~` operator does:
/// every token of `pattern` is present and equal in `version`.
pub fn fuzzy_match(version: &str, pattern: &str) -> bool {
    compare_impl(version, pattern, true) == Ordering::Equal
}

/// `true` when apk itself (apk-tools 3) can parse `v`, including forms
/// pkgbuild refuses to write (`~hash`, repeated suffixes).
pub fn is_apk_valid(v: &str) -> bool {
    let mut t = Tokens::new(v);
    while t.current.kind < Kind::End {
        t.advance();
    }
    t.current.kind == Kind::End
}

/// Validate a package version (`pkgver`): the intersection grammar of
/// apk2, apk3 and go-apk, with the `-rN` revision required.
pub fn validate_package_version(v: &str) -> Result<(), VersionError> {
    check(v, true)
}

/// Like [`validate_package_version`] but `-rN` is optional: recipe
/// `version:` fields and versions inside dependencies.
pub fn validate(v: &str) -> Result<(), VersionError> {
    check(v, false)
}

/// `true` when a number component after the first has a leading zero
/// (`1.01`): apk compares it as a string and go-apk as an integer, so the
/// two order such versions differently.
pub fn has_leading_zero_component(v: &str) -> bool {
    let core = v.split(['_', '-', '~']).next().unwrap_or("");
    core.split('.')
        .skip(1)
        .any(|c| c.len() > 1 && c.starts_with('0'))
}

struct Reason(String);

/// The grammar, written out by hand so each rejection can say why:
/// `[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc)[0-9]*)?(_(cvs|svn|git|hg|p)[0-9]*)?(-r[0-9]+)?`
fn check(v: &str, need_revision: bool) -> Result<(), VersionError> {
    parse_grammar(v.as_bytes(), need_revision).map_err(|Reason(reason)| VersionError {
        version: v.to_string(),
        reason,
    })
}

fn parse_grammar(s: &[u8], need_revision: bool) -> Result<(), Reason> {
    let fail = |msg: String| Err(Reason(msg));
    if s.is_empty() {
        return fail("the version is empty".into());
    }
    let (digits, mut rest) = take_while(s, |c| c.is_ascii_digit());
    if digits.is_empty() {
        return fail(format!(
            "it must start with a digit, not `{}`",
            char::from(s[0]).escape_default()
        ));
    }
    while let Some(after_dot) = rest.strip_prefix(b".") {
        let (digits, r) = take_while(after_dot, |c| c.is_ascii_digit());
        if digits.is_empty() {
            return fail(
                "every `.` must be followed by a number (no `1.`, `1..2` or `1.a`)".into(),
            );
        }
        rest = r;
    }
    if let Some((&c, r)) = rest.split_first() {
        if c.is_ascii_lowercase() {
            rest = r;
            if rest.first().is_some_and(|c| c.is_ascii_digit()) {
                return fail(
                    "a letter cannot be followed by digits (`1.0a1` is apk2-only; write `1.0a_p1`)"
                        .into(),
                );
            }
            if rest.first().is_some_and(|c| c.is_ascii_lowercase()) {
                return fail("only a single letter may follow the numbers".into());
            }
        }
    }
    // Pre-release suffix, then post-release suffix, each at most once.
    let mut last_rank = 0u8;
    while let Some(after) = rest.strip_prefix(b"_") {
        let (word, r) = take_while(after, |c| c.is_ascii_lowercase());
        let Some(rank) = suffix_rank(word) else {
            return fail(format!(
                "unknown suffix `_{}` (expected alpha, beta, pre, rc, cvs, svn, git, hg or p)",
                String::from_utf8_lossy(word)
            ));
        };
        let pre = rank < SUFFIX_NONE;
        if last_rank != 0 && (pre || last_rank > SUFFIX_NONE) {
            return fail(
                "at most one pre-release suffix (alpha, beta, pre, rc) followed by at most one \
                 post-release suffix (cvs, svn, git, hg, p) is allowed (go-apk)"
                    .into(),
            );
        }
        last_rank = rank;
        let (_, r) = take_while(r, |c| c.is_ascii_digit());
        rest = r;
    }
    if rest.first() == Some(&b'~') {
        return fail("`~hash` is not understood by apk2 or go-apk".into());
    }
    if let Some(after) = rest.strip_prefix(b"-r") {
        let (digits, r) = take_while(after, |c| c.is_ascii_digit());
        if digits.is_empty() {
            return fail("`-r` must be followed by the revision number".into());
        }
        rest = r;
    } else if rest.is_empty() && need_revision {
        return fail("a package version must end in the revision `-rN` (e.g. `1.0-r0`)".into());
    }
    match rest.first() {
        None => Ok(()),
        Some(b'-') => fail("`-` is only allowed in the revision `-rN` at the end".into()),
        Some(&c) if c.is_ascii_uppercase() => fail("letters must be lowercase".into()),
        Some(&c) => fail(format!(
            "unexpected `{}` after `{}`",
            char::from(c).escape_default(),
            String::from_utf8_lossy(&s[..s.len() - rest.len()])
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    fn cmp_str(o: Ordering) -> &'static str {
        match o {
            Less => "<",
            Equal => "=",
            Greater => ">",
        }
    }

    /// Every row of the table in apk-format.md §5.2 (apk3 column).
    #[test]
    fn ordering_matches_the_spec_table() {
        let rows = [
            ("1.0", "1.0-r1", "<"),
            ("1.0-r0", "1.0", ">"),
            ("1.0-r1", "1.0-r2", "<"),
            ("1.0_rc1", "1.0", "<"),
            ("1.0_alpha", "1.0_beta", "<"),
            ("1.0_beta", "1.0_pre", "<"),
            ("1.0_pre", "1.0_rc", "<"),
            ("1.0_p1", "1.0", ">"),
            ("1.0_git20240101", "1.0", ">"),
            ("1.0_cvs", "1.0_svn", "<"),
            ("1.0_hg", "1.0_p", "<"),
            ("1.0a", "1.0", ">"),
            ("1.0a", "1.0.1", "<"),
            ("1.0", "1.0.0", "<"),
            ("1.01", "1.1", "<"),
            ("1.1", "1.01", ">"),
            ("1.0.10", "1.0.9", ">"),
            ("2", "10", "<"),
            ("1.0_rc1_p2", "1.0_rc1", ">"),
            ("1.2.3_rc1-r3", "1.2.3-r0", "<"),
            ("1.0_rc", "1.0_rc0", "<"),
            ("1.0~abc123", "1.0", ">"),
            ("1.0~abc", "1.0~abd", "<"),
        ];
        for (a, b, want) in rows {
            assert_eq!(cmp_str(compare(a, b)), want, "{a} vs {b}");
            // The relation must be antisymmetric.
            assert_eq!(compare(b, a), compare(a, b).reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn more_ordering_cases() {
        assert_eq!(compare("1.0", "1.0"), Equal);
        assert_eq!(compare("1.0b", "1.0a"), Greater);
        assert_eq!(compare("1.0_svn", "1.0_git"), Less);
        assert_eq!(compare("1.0_git", "1.0_hg"), Less);
        assert_eq!(compare("1.001", "1.01"), Less);
        assert_eq!(compare("1.0-r10", "1.0-r9"), Greater);
        assert_eq!(compare("1.0_alpha", "1.0_alpha1"), Less);
        assert_eq!(compare("99999999999999999999999", "2"), Greater);
        assert_eq!(compare("1.0_rc1-r0", "1.0_rc1"), Greater);
    }

    #[test]
    fn fuzzy_matches_token_prefixes() {
        for v in ["1.0", "1.0.3", "1.0-r5", "1.0_rc1"] {
            assert!(fuzzy_match(v, "1.0"), "{v}");
        }
        for v in ["1.01", "1.1", "1", "2.0"] {
            assert!(!fuzzy_match(v, "1.0"), "{v}");
        }
    }

    #[test]
    fn ordering_is_consistent_on_random_versions() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let parts = [
            "0", "1", "01", "10", "2", ".", "a", "b", "_rc", "_p", "_alpha", "-r", "~", "c", "z",
        ];
        let mut vs: Vec<String> = (0..400)
            .map(|_| {
                let n = rng.gen_range(1..7);
                let mut s = String::from("1");
                for _ in 0..n {
                    s.push_str(parts[rng.gen_range(0..parts.len())]);
                }
                s
            })
            .collect();
        // Sorting panics on inconsistent orderings in recent std.
        vs.sort_by(|a, b| compare(a, b).then_with(|| a.cmp(b)));
        for w in vs.windows(2) {
            assert_ne!(compare(&w[0], &w[1]), Greater, "{} {}", w[0], w[1]);
        }
    }

    #[test]
    fn grammar_accepts_the_intersection() {
        for v in [
            "1.0-r0",
            "0-r0",
            "1.2.3-r10",
            "1.0a-r0",
            "1.0_rc1-r0",
            "1.0_alpha-r0",
            "1.0_p2-r1",
            "1.0_git20240101-r0",
            "1.0_rc1_p2-r0",
            "1.0b_beta3_hg-r7",
            "20240101-r0",
        ] {
            assert_eq!(validate_package_version(v), Ok(()), "{v}");
            assert!(is_apk_valid(v), "{v}");
        }
        assert_eq!(validate("1.2.3"), Ok(()));
        assert_eq!(validate("1.0_rc1"), Ok(()));
    }

    #[test]
    fn grammar_rejects_with_a_reason() {
        let cases = [
            ("", "empty"),
            ("1.0", "-rN"),
            ("v1.0-r0", "start with a digit"),
            ("1.-r0", "followed by a number"),
            (".1-r0", "start with a digit"),
            ("1..2-r0", "followed by a number"),
            ("1.0a1-r0", "letter cannot be followed by digits"),
            ("1.0.a-r0", "followed by a number"),
            ("1.0-r", "revision number"),
            ("1.0~abc123-r0", "~hash"),
            ("1.0_foo-r0", "unknown suffix"),
            ("1.0_rc1_rc2-r0", "at most one pre-release"),
            ("1.0_p1_p2-r0", "at most one pre-release"),
            ("1.0_p1_rc1-r0", "at most one pre-release"),
            ("1.0-1", "revision"),
            ("1.0-r0-r1", "only allowed in the revision"),
            ("1.0ab-r0", "single letter"),
            ("1.0A-r0", "lowercase"),
            ("1.0 -r0", "unexpected"),
            ("1.0-r0x", "unexpected"),
        ];
        for (v, needle) in cases {
            let err = validate_package_version(v).expect_err(v).to_string();
            assert!(err.contains(needle), "{v}: {err}");
            assert!(err.contains(&format!("`{v}`")), "{err}");
        }
        // apk2-only oddities are also invalid for apk3 itself.
        for v in ["v1.0", "1.", ".1", "1..2", "1.0a1", "1.0.a", "1.0-r"] {
            assert!(!is_apk_valid(v), "{v}");
            assert!(validate(v).is_err(), "{v}");
        }
        assert!(validate("1.0-r").is_err());
    }

    #[test]
    fn leading_zero_components_are_flagged() {
        assert!(has_leading_zero_component("1.01-r0"));
        assert!(has_leading_zero_component("2024.01.05"));
        assert!(!has_leading_zero_component("1.0.0-r0"));
        assert!(!has_leading_zero_component("01.2"));
        assert!(!has_leading_zero_component("1.10_p01-r0"));
    }
}
