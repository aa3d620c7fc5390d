//! Dependency strings: `depend`, `provides`, `install_if` items and the
//! `D:`/`p:`/`i:` index fields (apk-format.md §5.3).
//!
//! The form is `[!]name[op version]`. We parse only what all three clients
//! understand (apk2, apk3 and go-apk), so a dependency pkgbuild accepts is
//! one every client can resolve; apk-only operators (`<~`, `>~`, `><`) and
//! repository tags (`@tag`) are rejected with the reason.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use super::version;

/// A version constraint operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
    /// `~` (also written `=~` or `~=`): token-prefix match, `foo~1.0`
    /// accepts 1.0, 1.0.3, 1.0-r5 and 1.0_rc1.
    Fuzzy,
}

impl Op {
    /// The canonical spelling (apk's).
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Fuzzy => "~",
        }
    }

    fn parse(op: &str) -> Result<Op, String> {
        Ok(match op {
            "=" => Op::Eq,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "~" | "=~" | "~=" => Op::Fuzzy,
            "><" => {
                return Err(
                    "`><` checksum pins belong in apk's world file, not in package metadata".into(),
                )
            }
            "<~" | ">~" => {
                return Err(format!(
                    "operator `{op}` is not understood by go-apk (use <, <=, >, >=, = or ~)"
                ))
            }
            _ => {
                return Err(format!(
                    "unknown operator `{op}` (expected =, <, <=, >, >= or ~)"
                ))
            }
        })
    }

    /// Does a package at `version` meet `self pattern`?
    pub fn matches(self, version: &str, pattern: &str) -> bool {
        let ord = version::compare(version, pattern);
        match self {
            Op::Eq => ord == Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::Le => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            Op::Ge => ord != Ordering::Less,
            Op::Fuzzy => version::fuzzy_match(version, pattern),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dependency string that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid dependency `{dep}`: {reason}")]
pub struct DepError {
    pub dep: String,
    pub reason: String,
}

/// One parsed dependency item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dep {
    /// `!name`: the named package must not be installed.
    pub conflict: bool,
    pub name: String,
    pub constraint: Option<(Op, String)>,
}

/// Package-name characters, plus those of namespaced virtuals
/// (`so:`, `cmd:`, `pc:`, `/bin/sh`, `[...]`).
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._+-:,/[]".contains(c)
}

fn is_op_char(c: char) -> bool {
    "<>=~".contains(c)
}

impl FromStr for Dep {
    type Err = DepError;

    fn from_str(s: &str) -> Result<Self, DepError> {
        let err = |reason: String| DepError {
            dep: s.to_string(),
            reason,
        };
        let (conflict, rest) = match s.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let name_end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let (name, rest) = rest.split_at(name_end);
        if name.is_empty() {
            return Err(err("the package name is empty".into()));
        }
        if rest.is_empty() {
            return Ok(Dep {
                conflict,
                name: name.to_string(),
                constraint: None,
            });
        }
        let bad = rest.chars().next().unwrap_or(' ');
        if bad == '@' {
            return Err(err(
                "repository tags (`name@tag`) are only allowed in apk's world file".into(),
            ));
        }
        if !is_op_char(bad) {
            return Err(err(format!(
                "`{}` is not allowed in a package name",
                bad.escape_default()
            )));
        }
        let op_end = rest.find(|c: char| !is_op_char(c)).unwrap_or(rest.len());
        let (op, ver) = rest.split_at(op_end);
        let op = Op::parse(op).map_err(err)?;
        if ver.is_empty() {
            return Err(err(format!("operator `{op}` needs a version after it")));
        }
        version::validate(ver).map_err(|e| err(e.reason))?;
        Ok(Dep {
            conflict,
            name: name.to_string(),
            constraint: Some((op, ver.to_string())),
        })
    }
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("!")?;
        }
        f.write_str(&self.name)?;
        if let Some((op, v)) = &self.constraint {
            write!(f, "{op}{v}")?;
        }
        Ok(())
    }
}

impl Dep {
    /// Is a package `name` at `version` acceptable under this item? For a
    /// plain dependency: it is the named package and the version fits. For
    /// a conflict (`!foo<2`): it is *not* a package the conflict names.
    pub fn satisfies(&self, name: &str, version: &str) -> bool {
        let hit = self.name == name
            && self
                .constraint
                .as_ref()
                .is_none_or(|(op, v)| op.matches(version, v));
        hit != self.conflict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(s: &str) -> Dep {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_every_form_the_spec_lists() {
        let d = dep("so:libc.musl-x86_64.so.1");
        assert_eq!(d.name, "so:libc.musl-x86_64.so.1");
        assert_eq!(d.constraint, None);
        assert!(!d.conflict);
        assert_eq!(
            dep("cmd:hello=1.0-r0").constraint,
            Some((Op::Eq, "1.0-r0".into()))
        );
        assert_eq!(
            dep("pc:hello>=0.9").constraint,
            Some((Op::Ge, "0.9".into()))
        );
        assert_eq!(dep("hello~1.0").constraint, Some((Op::Fuzzy, "1.0".into())));
        assert_eq!(dep("hello<2").constraint, Some((Op::Lt, "2".into())));
        assert_eq!(dep("hello>0.1").constraint, Some((Op::Gt, "0.1".into())));
        assert_eq!(
            dep("hello<=1.0-r0").constraint,
            Some((Op::Le, "1.0-r0".into()))
        );
        assert_eq!(
            dep("hello=~1.0").constraint,
            Some((Op::Fuzzy, "1.0".into()))
        );
        assert_eq!(
            dep("hello~=1.0").constraint,
            Some((Op::Fuzzy, "1.0".into()))
        );
        let c = dep("!nonexistent");
        assert!(c.conflict && c.name == "nonexistent");
        assert_eq!(dep("/bin/sh").name, "/bin/sh");
    }

    #[test]
    fn display_is_canonical() {
        for (input, canon) in [
            ("foo", "foo"),
            ("!foo", "!foo"),
            ("foo>=1.2", "foo>=1.2"),
            ("foo=~1.2", "foo~1.2"),
            ("!foo<2-r1", "!foo<2-r1"),
            ("so:libz.so.1=1.3.1", "so:libz.so.1=1.3.1"),
        ] {
            assert_eq!(dep(input).to_string(), canon);
            assert_eq!(dep(canon).to_string(), canon);
        }
    }

    #[test]
    fn rejects_what_some_client_does_not_understand() {
        for (s, needle) in [
            ("", "name is empty"),
            ("!", "name is empty"),
            (">=1.0", "name is empty"),
            ("foo@edge", "repository tags"),
            ("foo><Q1abc=", "world file"),
            ("foo<~1.0", "go-apk"),
            ("foo>~1.0", "go-apk"),
            ("foo=>1.0", "unknown operator"),
            ("foo==1.0", "unknown operator"),
            ("foo>=", "needs a version"),
            ("foo>=v1", "start with a digit"),
            ("foo=1.0~abc", "~hash"),
            ("foo bar", "not allowed in a package name"),
        ] {
            let e = s.parse::<Dep>().expect_err(s).to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn satisfies_follows_apk_semantics() {
        assert!(dep("hello").satisfies("hello", "1.0-r0"));
        assert!(!dep("hello").satisfies("other", "1.0-r0"));
        assert!(dep("hello>=0.9").satisfies("hello", "1.0-r0"));
        assert!(!dep("hello>=3").satisfies("hello", "1.0-r0"));
        assert!(dep("hello<2").satisfies("hello", "1.0-r0"));
        assert!(dep("hello<=1.0-r0").satisfies("hello", "1.0-r0"));
        assert!(!dep("hello<1.0-r0").satisfies("hello", "1.0-r0"));
        assert!(dep("hello=1.0-r0").satisfies("hello", "1.0-r0"));
        assert!(!dep("hello=1.0").satisfies("hello", "1.0-r0"));
        for v in ["1.0", "1.0.3", "1.0-r5", "1.0_rc1"] {
            assert!(dep("hello~1.0").satisfies("hello", v), "{v}");
        }
        assert!(!dep("hello~1.0").satisfies("hello", "1.1"));
        // Conflicts: allowed unless the named package matches.
        assert!(!dep("!hello").satisfies("hello", "1.0-r0"));
        assert!(dep("!hello").satisfies("other", "1.0-r0"));
        assert!(dep("!hello<1").satisfies("hello", "1.0-r0"));
        assert!(!dep("!hello<2").satisfies("hello", "1.0-r0"));
    }
}
