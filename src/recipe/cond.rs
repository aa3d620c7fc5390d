//! `if:` conditions: string comparisons joined by `&&` / `||`.
//!
//! Grammar (blanks — space, tab, CR, LF — may appear between tokens):
//!
//! ```text
//! condition  := or EOF
//! or         := and ( "||" and )*
//! and        := atom ( "&&" atom )*
//! atom       := "(" or ")" | comparison
//! comparison := operand ( "==" | "!=" ) operand
//! operand    := '...' | "..." | ${{ name }}
//! ```
//!
//! Decisions, each tested below:
//! - Like melange, a condition must compare: a bare `${{x}}` or `'true'` is an
//!   error, not a truthiness test, so a typo cannot silently become "always run".
//! - `&&` binds tighter than `||` (`a || b && c` is `a || (b && c)`). melange
//!   instead folds `&&`/`||` left to right with equal precedence; the two agree
//!   whenever mixed operators are parenthesised, and no Wolfi recipe mixes them bare.
//! - String literals take the escapes melange takes (`\\`, `\'`, `\"`, `\n`, `\t`);
//!   any other backslash pair is kept as written. Text inside quotes is literal:
//!   `${{` there is not substituted.
//! - Every operand is resolved while parsing, so an undefined variable is an error
//!   even on the side that `&&`/`||` would not need.
//! - Errors give a 1-based column counted in characters of the expression.

use super::subst::{self, SubstErrorKind};
use std::fmt;

/// A condition that could not be parsed or resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondError {
    /// 1-based column (in characters) in the expression.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for CondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for CondError {}

/// Parentheses deeper than this are refused rather than risking the stack.
const MAX_DEPTH: usize = 64;

/// Evaluates `expr`, resolving `${{name}}` operands through `lookup`.
pub fn evaluate(expr: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<bool, CondError> {
    let mut p = Parser {
        src: expr,
        pos: 0,
        depth: 0,
        lookup,
    };
    p.skip_blanks();
    if p.at_end() {
        return Err(p.error_here("empty condition".to_string()));
    }
    let value = p.or()?;
    p.skip_blanks();
    if !p.at_end() {
        return Err(p.error_here(format!(
            "expected `&&`, `||` or the end of the condition, found {}",
            p.describe_next()
        )));
    }
    Ok(value)
}

struct Parser<'a, 'l> {
    src: &'a str,
    pos: usize,
    depth: usize,
    lookup: &'l dyn Fn(&str) -> Option<String>,
}

impl Parser<'_, '_> {
    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_blanks(&mut self) {
        let trimmed = self.rest().trim_start_matches([' ', '\t', '\r', '\n']);
        self.pos = self.src.len() - trimmed.len();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blanks();
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }

    fn column_of(&self, byte: usize) -> usize {
        self.src[..byte].chars().count() + 1
    }

    fn error_at(&self, byte: usize, message: String) -> CondError {
        CondError {
            column: self.column_of(byte),
            message,
        }
    }

    fn error_here(&self, message: String) -> CondError {
        self.error_at(self.pos, message)
    }

    fn describe_next(&self) -> String {
        match self.rest().chars().next() {
            None => "the end of the condition".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }

    fn or(&mut self) -> Result<bool, CondError> {
        let mut value = self.and()?;
        while self.eat("||") {
            let rhs = self.and()?;
            value = value || rhs;
        }
        Ok(value)
    }

    fn and(&mut self) -> Result<bool, CondError> {
        let mut value = self.atom()?;
        while self.eat("&&") {
            let rhs = self.atom()?;
            value = value && rhs;
        }
        Ok(value)
    }

    fn atom(&mut self) -> Result<bool, CondError> {
        self.skip_blanks();
        let open = self.pos;
        if !self.eat("(") {
            return self.comparison();
        }
        if self.depth >= MAX_DEPTH {
            return Err(self.error_at(open, format!("parentheses nested deeper than {MAX_DEPTH}")));
        }
        self.depth += 1;
        let value = self.or()?;
        self.depth -= 1;
        if !self.eat(")") {
            return Err(self.error_here(format!(
                "expected `)` to close the `(` at column {}, found {}",
                self.column_of(open),
                self.describe_next()
            )));
        }
        Ok(value)
    }

    fn comparison(&mut self) -> Result<bool, CondError> {
        let lhs = self.operand()?;
        let equal = if self.eat("==") {
            true
        } else if self.eat("!=") {
            false
        } else {
            let hint = if self.at_end() || self.rest().starts_with([')', '&', '|']) {
                " (a condition compares two operands, e.g. `${{inputs.x}} == 'true'`)"
            } else {
                ""
            };
            return Err(self.error_here(format!(
                "expected `==` or `!=`, found {}{hint}",
                self.describe_next()
            )));
        };
        let rhs = self.operand()?;
        Ok((lhs == rhs) == equal)
    }

    fn operand(&mut self) -> Result<String, CondError> {
        self.skip_blanks();
        let start = self.pos;
        match self.rest().chars().next() {
            Some(q @ ('\'' | '"')) => self.literal(q),
            Some('$') if self.rest().starts_with("${{") => {
                let r = subst::parse_reference(self.src, start)
                    .map_err(|e| self.error_at(start, e.to_string()))?;
                self.pos = r.end;
                (self.lookup)(r.name).ok_or_else(|| {
                    let e = subst::SubstError {
                        var: r.name.to_string(),
                        offset: start,
                        kind: SubstErrorKind::Undefined,
                    };
                    self.error_at(start, e.to_string())
                })
            }
            _ => Err(self.error_here(format!(
                "expected a quoted string or `${{{{...}}}}`, found {}",
                self.describe_next()
            ))),
        }
    }

    /// Reads a literal opened by `quote` at `self.pos`.
    fn literal(&mut self, quote: char) -> Result<String, CondError> {
        let open = self.pos;
        let mut value = String::new();
        let mut chars = self.src[open + 1..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos = open + 1 + i + c.len_utf8();
                return Ok(value);
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, e @ ('\\' | '\'' | '"'))) => value.push(e),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => value.push('\\'),
            }
        }
        Err(self.error_at(
            open,
            format!("unterminated string literal (no closing {quote})"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn vars(name: &str) -> Option<String> {
        match name {
            "build.arch" => Some("x86_64".into()),
            "inputs.flag" => Some("true".into()),
            "inputs.empty" => Some(String::new()),
            "inputs.quote" => Some("it's".into()),
            _ => None,
        }
    }

    fn eval(expr: &str) -> Result<bool, CondError> {
        evaluate(expr, &vars)
    }

    fn err(expr: &str) -> CondError {
        eval(expr).expect_err(expr)
    }

    #[test]
    fn comparisons() {
        assert!(eval("'foo' == 'foo'").unwrap());
        assert!(!eval("'foo' != 'foo'").unwrap());
        assert!(eval("\"foo\" == 'foo'").unwrap());
        assert!(eval("'' == \"\"").unwrap());
        assert!(!eval("'a' == 'A'").unwrap());
    }

    #[test]
    fn variables_are_substituted() {
        assert!(eval("${{build.arch}} == 'x86_64'").unwrap());
        assert!(eval("'x86_64' == ${{ build.arch }}").unwrap());
        assert!(eval("${{inputs.empty}} == ''").unwrap());
        assert!(eval("${{inputs.quote}} == \"it's\"").unwrap());
        assert!(eval("${{\n inputs.flag\t}}=='true'").unwrap());
    }

    #[test]
    fn quotes_inside_literals_are_literal_text() {
        assert!(eval("'${{build.arch}}' != 'x86_64'").unwrap());
        assert!(eval("'${{build.arch}}' == \"${{build.arch}}\"").unwrap());
    }

    #[test]
    fn escapes_follow_melange() {
        assert!(eval(r#""hello \"world\"" == 'hello "world"'"#).unwrap());
        assert!(eval(r"'it\'s' == ${{inputs.quote}}").unwrap());
        assert!(eval(r"'a\\b' == 'a\\b'").unwrap());
        assert!(!eval(r"'a\\b' == 'ab'").unwrap());
        assert!(eval("'line1\\nline2' == \"line1\nline2\"").unwrap());
        assert!(eval("'a\\tb' == 'a\tb'").unwrap());
        // Unknown escapes are kept as written.
        assert!(eval(r"'\d' == '\d'").unwrap());
        assert!(!eval(r"'\d' == 'd'").unwrap());
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // a || (b && c): true || (false && false) = true; left-to-right would be false.
        assert!(eval("'a' == 'a' || 'b' == 'x' && 'c' == 'x'").unwrap());
        // (a && b) || c
        assert!(eval("'a' == 'x' && 'b' == 'b' || 'c' == 'c'").unwrap());
        assert!(!eval("'a' == 'x' || 'b' == 'b' && 'c' == 'x'").unwrap());
    }

    #[test]
    fn parentheses_group() {
        assert!(!eval("('a' == 'a' || 'b' == 'x') && 'c' == 'x'").unwrap());
        assert!(eval("(('a' == 'a'))").unwrap());
        assert!(eval("('rabbit' == 'rabbit' && 'hare' != 'hare') || 'l' == 'l'").unwrap());
        assert!(eval(" ( ${{build.arch}} == 'aarch64' || ${{build.arch}} == 'x86_64' ) ").unwrap());
    }

    #[test]
    fn chains() {
        assert!(eval("'r' == 'r' && 'h' == 'h' && 'r' != 'h'").unwrap());
        assert!(eval("'r' == 'h' || 'h' == 'r' || 'l' == 'l'").unwrap());
    }

    #[test]
    fn bare_operand_is_an_error() {
        let e = err("${{inputs.flag}}");
        assert_eq!(e.column, 17);
        assert!(e.message.contains("compares two operands"), "{}", e.message);
        assert_eq!(err("'true'").column, 7);
        assert_eq!(err("'a' == 'a' && ${{inputs.flag}}").column, 31);
    }

    #[test]
    fn missing_right_operand() {
        let e = err("'a' == ");
        assert_eq!(e.column, 8);
        assert!(e.message.contains("end of the condition"), "{}", e.message);
        assert_eq!(err("'a' == 'a' &&").column, 14);
    }

    #[test]
    fn unclosed_parenthesis() {
        let e = err("('a' == 'b'");
        assert_eq!(e.column, 12);
        assert!(
            e.message.contains("`)`") && e.message.contains("column 1"),
            "{}",
            e.message
        );
        assert_eq!(err("'a' == 'a')").column, 11);
    }

    #[test]
    fn single_equals() {
        let e = err("'a' = 'b'");
        assert_eq!(e.column, 5);
        assert!(e.message.contains("`==` or `!=`"), "{}", e.message);
    }

    #[test]
    fn trailing_garbage() {
        let e = err("'a' == 'b' x");
        assert_eq!(e.column, 12);
        assert!(e.message.contains("found `x`"), "{}", e.message);
        assert_eq!(err("'a' == 'b' & 'c' == 'c'").column, 12);
        assert_eq!(err("'a' == 'b' 'c'").column, 12);
    }

    #[test]
    fn unquoted_word() {
        let e = err("x86_64 == ${{build.arch}}");
        assert_eq!(e.column, 1);
        assert!(e.message.contains("quoted string"), "{}", e.message);
    }

    #[test]
    fn unterminated_literal() {
        let e = err("'a' == 'abc");
        assert_eq!(e.column, 8);
        assert!(e.message.contains("unterminated"));
        assert_eq!(err(r"'a\'").column, 1);
    }

    #[test]
    fn variable_errors() {
        let e = err("'x' == ${{nope}}");
        assert_eq!(e.column, 8);
        assert_eq!(e.message, "undefined variable `${{nope}}`");
        // Undefined is an error even where `||` would not need the value.
        assert!(eval("'a' == 'a' || ${{nope}} == 'b'").is_err());
        assert!(err("${{build.arch} == 'b'")
            .message
            .contains("unterminated"));
        assert_eq!(err("${{ }} == 'b'").column, 1);
    }

    #[test]
    fn columns_count_characters() {
        assert_eq!(err("'é✓' == ").column, 9);
    }

    #[test]
    fn empty_condition() {
        assert_eq!(err("").column, 1);
        assert_eq!(err("   ").column, 4);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = "(".repeat(10_000);
        assert!(err(&deep).message.contains("nested"));
        let ok = format!("{}'a' == 'a'{}", "(".repeat(60), ")".repeat(60));
        assert!(eval(&ok).unwrap());
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(0xc0_0d);
        let pieces = [
            "'a'",
            "\"b\"",
            "==",
            "!=",
            "&&",
            "||",
            "(",
            ")",
            "${{",
            "}}",
            "build.arch",
            " ",
            "'",
            "\"",
            "\\",
            "=",
            "&",
            "|",
            "é",
            "${{inputs.flag}}",
            "x",
        ];
        for _ in 0..20_000 {
            let n = rng.gen_range(0..12);
            let s: String = (0..n)
                .map(|_| pieces[rng.gen_range(0..pieces.len())])
                .collect();
            if let Err(e) = eval(&s) {
                assert!(
                    e.column >= 1 && e.column <= s.chars().count() + 1,
                    "{s:?} {e:?}"
                );
            }
        }
    }
}
