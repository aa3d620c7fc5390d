//! Recipe licences as SPDX licence expressions for `licenseDeclared`.
//!
//! The identifiers and the expression grammar are the `spdx` crate's (the
//! SPDX License List it ships, and its parser). What this module adds is the
//! leniency recipes need: ids in any case get their canonical spelling,
//! operators in any case are upper-cased, and anything the list does not
//! know (an unlisted id, a licence with an unlisted exception) becomes a
//! `LicenseRef-` declared in `hasExtractedLicensingInfos`, so the document
//! stays valid and says what it could not name. Text that is no expression
//! at all becomes one `LicenseRef-` for the whole string.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use serde::Serialize;
use spdx::lexer::ParseMode;

use super::NOASSERTION;

/// What the crate's parser must accept of our canonical output: the SPDX
/// grammar with deprecated ids allowed (recipes still say `GPL-2.0+`, which
/// the crate reads as a postfix plus), but no `/` for OR, no guessing at
/// imprecise names and no unknown ids (those have become `LicenseRef-`s by
/// then).
const ACCEPTED: ParseMode = ParseMode {
    allow_deprecated: true,
    allow_postfix_plus_on_gpl: true,
    ..ParseMode::STRICT
};

/// Deprecated ids that SPDX replaced by a `<licence> WITH <exception>`
/// expression. Validators (pyspdxtools) read them as exceptions and refuse
/// them standing alone, so they are not offered as licence ids. The ones
/// named `*-with-*` are found by name; eCos-2.0 is the one that is not.
fn superseded_by_with(l: &spdx::License) -> bool {
    l.flags & spdx::flags::IS_DEPRECATED != 0 && (l.name.contains("-with-") || l.name == "eCos-2.0")
}

/// Parentheses allowed in one licence; recipes are untrusted.
const MAX_NESTING: usize = 64;

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExtractedLicense {
    #[serde(rename = "licenseId")]
    pub(crate) license_id: String,
    pub(crate) name: String,
    #[serde(rename = "extractedText")]
    pub(crate) extracted_text: String,
}

/// A recipe license turned into what `licenseDeclared` can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// A valid SPDX expression (canonical id case, upper-case operators),
    /// `NONE`, or `NOASSERTION`.
    pub expression: String,
    /// Why the expression differs from the input, one note each.
    pub notes: Vec<String>,
    pub(super) extracted: Vec<ExtractedLicense>,
}

/// Lower-cased id → canonical id, from the crate's list.
fn table(names: impl Iterator<Item = &'static str>) -> HashMap<String, &'static str> {
    // `NOASSERTION` is listed, but may only stand alone.
    names
        .filter(|n| *n != NOASSERTION)
        .map(|n| (n.to_ascii_lowercase(), n))
        .collect()
}

static LICENSES: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    table(
        spdx::identifiers::LICENSES
            .iter()
            .filter(|l| !superseded_by_with(l))
            .map(|l| l.name),
    )
});
static EXCEPTIONS: LazyLock<HashMap<String, &'static str>> =
    LazyLock::new(|| table(spdx::identifiers::EXCEPTIONS.iter().map(|e| e.name)));

/// The canonical spelling of a listed licence id, any case.
fn license_id(word: &str) -> Option<&'static str> {
    LICENSES.get(&word.to_ascii_lowercase()).copied()
}

/// The canonical spelling of a listed exception id, any case.
fn exception_id(word: &str) -> Option<&'static str> {
    EXCEPTIONS.get(&word.to_ascii_lowercase()).copied()
}

/// Whether `id` is on the SPDX License List (case-insensitive).
pub fn is_known_license(id: &str) -> bool {
    license_id(id).is_some()
}

/// Normalises a recipe license into a valid SPDX expression: empty becomes
/// NOASSERTION; known ids get their canonical case; a custom
/// `LicenseRef-x` or an id not on the list becomes a `LicenseRef-` declared
/// in `hasExtractedLicensingInfos`; text that is not an expression at all
/// becomes one `LicenseRef-` standing for the whole string.
pub fn normalize_license(raw: &str) -> License {
    let raw = raw.trim();
    let mut out = License {
        expression: String::new(),
        notes: Vec::new(),
        extracted: Vec::new(),
    };
    match raw {
        "" => {
            out.expression = NOASSERTION.into();
            return out;
        }
        "NONE" | "NOASSERTION" => {
            out.expression = raw.into();
            return out;
        }
        _ => {}
    }
    let mut refs = BTreeMap::new();
    out.expression = match canonical(raw, &mut refs, &mut out.notes) {
        Some(expression) => expression,
        None => {
            refs.clear();
            out.notes = vec![format!(
                "{raw:?} is not an SPDX license expression; recorded as a custom LicenseRef"
            )];
            license_ref(raw, &mut refs)
        }
    };
    out.extracted = refs
        .into_iter()
        .map(|(license_id, name)| ExtractedLicense {
            extracted_text: format!(
                "The recipe declares the license {name:?}, which is not on the SPDX License \
                 List; pkgbuild did not record its text."
            ),
            license_id,
            name,
        })
        .collect();
    out
}

#[derive(PartialEq)]
enum Token<'a> {
    Open,
    Close,
    Word(&'a str),
}

/// Splits at blanks and parentheses; any other character is part of a word.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        match c {
            '(' => {
                tokens.push(Token::Open);
                rest = &rest[1..];
            }
            ')' => {
                tokens.push(Token::Close);
                rest = &rest[1..];
            }
            _ => {
                let end = rest
                    .find(|c: char| c.is_whitespace() || c == '(' || c == ')')
                    .unwrap_or(rest.len());
                tokens.push(Token::Word(&rest[..end]));
                rest = &rest[end..];
            }
        }
    }
    tokens
}

/// `AND`, `OR` or `WITH` in any case, upper-cased.
fn operator(word: &str) -> Option<&'static str> {
    ["AND", "OR", "WITH"]
        .into_iter()
        .find(|op| word.eq_ignore_ascii_case(op))
}

/// Rewrites each word of `raw` into a listed id or a `LicenseRef-`, then
/// lets the crate's parser judge the result; `None` when it is no
/// expression. Spacing comes out canonical: one blank around operators,
/// none inside parentheses.
fn canonical(
    raw: &str,
    refs: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> Option<String> {
    let tokens = tokenize(raw);
    if tokens.iter().filter(|t| **t == Token::Open).count() > MAX_NESTING {
        return None;
    }
    let mut out = String::new();
    let mut after_open = true;
    let mut i = 0;
    while i < tokens.len() {
        let gap = if after_open { "" } else { " " };
        match tokens[i] {
            Token::Open => {
                out.push_str(gap);
                out.push('(');
                after_open = true;
                i += 1;
                continue;
            }
            Token::Close => out.push(')'),
            Token::Word(w) => {
                out.push_str(gap);
                let with = match (tokens.get(i + 1), tokens.get(i + 2)) {
                    (Some(Token::Word(op)), Some(Token::Word(exc)))
                        if operator(op) == Some("WITH") && operator(exc).is_none() =>
                    {
                        Some(*exc)
                    }
                    _ => None,
                };
                match (operator(w), with) {
                    (Some(op), _) => out.push_str(op),
                    (None, Some(exc)) => {
                        out.push_str(&with_exception(w, exc, refs, notes));
                        i += 2;
                    }
                    (None, None) => out.push_str(&license_term(w, refs, notes)),
                }
            }
        }
        after_open = false;
        i += 1;
    }
    spdx::Expression::parse_mode(&out, ACCEPTED).ok()?;
    Some(out)
}

/// `<licence> WITH <exception>` when both are listed; SPDX 2.3 has no
/// custom exceptions, so otherwise the pair becomes one custom licence.
fn with_exception(
    id: &str,
    exc: &str,
    refs: &mut BTreeMap<String, String>,
    notes: &mut Vec<String>,
) -> String {
    if let (Some(lic), Some(ex)) = (license_id(id), exception_id(exc)) {
        return format!("{lic} WITH {ex}");
    }
    let whole = format!("{id} WITH {exc}");
    notes.push(format!(
        "{whole:?} is not a listed license with a listed exception; \
         recorded as a custom LicenseRef"
    ));
    license_ref(&whole, refs)
}

/// A listed id in canonical case, a well-formed `LicenseRef-` as written,
/// or a new `LicenseRef-` for anything else.
fn license_term(id: &str, refs: &mut BTreeMap<String, String>, notes: &mut Vec<String>) -> String {
    if let Some(canonical) = license_id(id) {
        return canonical.to_string();
    }
    let is_ref = id.strip_prefix("LicenseRef-").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    });
    if is_ref {
        refs.entry(id.to_string()).or_insert_with(|| id.to_string());
        return id.to_string();
    }
    notes.push(format!(
        "{id:?} is not on the SPDX License List; recorded as a custom LicenseRef"
    ));
    license_ref(id, refs)
}

/// `LicenseRef-<sanitised>` for `original`, registered for extraction.
fn license_ref(original: &str, refs: &mut BTreeMap<String, String>) -> String {
    let body = original.strip_prefix("LicenseRef-").unwrap_or(original);
    let mut clean = String::new();
    for c in body.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' {
            c
        } else if c == '+' {
            clean.push_str("-plus");
            continue;
        } else {
            '-'
        };
        if !(c == '-' && (clean.is_empty() || clean.ends_with('-'))) {
            clean.push(c);
        }
    }
    let clean = clean.trim_end_matches('-');
    let id = format!(
        "LicenseRef-{}",
        if clean.is_empty() { "custom" } else { clean }
    );
    refs.entry(id.clone())
        .or_insert_with(|| original.to_string());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licenses_are_normalised() {
        let n = |s| normalize_license(s).expression;
        assert_eq!(n(""), "NOASSERTION");
        assert_eq!(n("  "), "NOASSERTION");
        assert_eq!(n("mit"), "MIT");
        assert_eq!(n("apache-2.0 and MIT"), "Apache-2.0 AND MIT");
        assert_eq!(
            n("GPL-2.0-or-later WITH Classpath-exception-2.0"),
            "GPL-2.0-or-later WITH Classpath-exception-2.0"
        );
        assert_eq!(
            n("BSD-3-Clause OR (MIT AND Zlib)"),
            "BSD-3-Clause OR (MIT AND Zlib)"
        );
        assert_eq!(n("GPL-2.0+"), "GPL-2.0+");
        assert_eq!(n("LicenseRef-foo"), "LicenseRef-foo");
        assert_eq!(n("MIT AND Foo_Bar"), "MIT AND LicenseRef-Foo-Bar");
        assert_eq!(n("MIT+"), "LicenseRef-MIT-plus");
        assert_eq!(n("GPL v2"), "LicenseRef-GPL-v2");
        assert_eq!(n("MIT AND"), "LicenseRef-MIT-AND");
        assert_eq!(n("(MIT"), "LicenseRef-MIT");
        assert_eq!(
            n("GPL-2.0-only WITH MIT"),
            "LicenseRef-GPL-2.0-only-WITH-MIT"
        );
        assert_eq!(n("???"), "LicenseRef-custom");
    }

    #[test]
    fn custom_licenses_are_declared_once() {
        let l = normalize_license("LicenseRef-foo OR (LicenseRef-foo AND Bar)");
        let ids: Vec<_> = l.extracted.iter().map(|e| e.license_id.as_str()).collect();
        assert_eq!(ids, ["LicenseRef-Bar", "LicenseRef-foo"]);
        assert_eq!(l.notes.len(), 1, "{:?}", l.notes); // only Bar was unexpected
    }

    #[test]
    fn any_token_soup_normalises_to_a_valid_expression() {
        const WORDS: [&str; 14] = [
            "MIT",
            "(",
            ")",
            "AND",
            "or",
            "WITH",
            "Classpath-exception-2.0",
            "Foo",
            "GPL-2.0+",
            "LicenseRef-x",
            "+",
            "a/b",
            "NONE",
            "é",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..3000 {
            let mut raw = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            for i in 0..(seed % 9) {
                raw.push_str(WORDS[((seed >> (i * 4)) % WORDS.len() as u64) as usize]);
                raw.push(if (seed >> i) & 1 == 0 { ' ' } else { '(' });
            }
            let l = normalize_license(&raw);
            let declared: Vec<&str> = l.extracted.iter().map(|e| &*e.license_id).collect();
            let spaced = l.expression.replace('(', " ( ").replace(')', " ) ");
            let mut after_with = false;
            for word in spaced.split_whitespace() {
                let ok = match word {
                    "(" | ")" | "AND" | "OR" | "WITH" => true,
                    "NOASSERTION" | "NONE" => l.expression == word,
                    w if after_with => exception_id(w) == Some(w),
                    w if w.starts_with("LicenseRef-") => declared.contains(&w),
                    w => license_id(w) == Some(w),
                };
                assert!(ok, "{raw:?} -> {:?}: bad word {word:?}", l.expression);
                after_with = word == "WITH";
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        let deep = format!("{}MIT{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(normalize_license(&deep)
            .expression
            .starts_with("LicenseRef-"));
    }

    #[test]
    fn list_corners_follow_what_validators_accept() {
        let n = |s| normalize_license(s).expression;
        assert_eq!(n("gpl-2.0+ OR lgpl-2.1+"), "GPL-2.0+ OR LGPL-2.1+");
        assert_eq!(
            n("GPL-2.0-with-classpath-exception"),
            "LicenseRef-GPL-2.0-with-classpath-exception"
        );
        assert_eq!(n("eCos-2.0"), "LicenseRef-eCos-2.0");
        assert_eq!(n("MIT AND NOASSERTION"), "MIT AND LicenseRef-NOASSERTION");
        assert_eq!(n("MIT/Apache-2.0"), "LicenseRef-MIT-Apache-2.0");
        assert_eq!(n("Apache 2.0"), "LicenseRef-Apache-2.0");
        // Ids newer than the embedded lists were are known now.
        assert_eq!(n("unrar"), "UnRAR");
        assert!(is_known_license("GPL-2.0") && !is_known_license("GPL"));
    }
}
