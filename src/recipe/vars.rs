//! `var-transforms`: derive `vars.<to>` from a substituted string by a regex
//! replacement, as melange does (e.g. `1.81.0` → `1_81_0` for a tarball name).
//!
//! Semantics, matching melange:
//! - `from` is substituted first; it may use the results of earlier transforms.
//! - Every non-overlapping match of `match` is replaced (`ReplaceAllString`); a
//!   pattern that does not match leaves `from` unchanged, and that unchanged value
//!   is still stored, overwriting an earlier transform with the same `to`.
//! - `replace` uses Go's template expansion, which the `regex` crate shares:
//!   `$1`, `${1}`, `$name`, `${name}`, `$$` for a literal `$`; a name is the longest
//!   run of `[A-Za-z0-9_]`, so `$1x` means the (absent, hence empty) group `1x`.
//!
//! Known divergence: Go's `\d`, `\w`, `\s` are ASCII-only while the `regex` crate's
//! are Unicode-aware; recipes transform ASCII versions and names, so both agree there.

use super::subst::{self, SubstError};
use regex::Regex;
use std::collections::BTreeMap;

/// One `var-transforms` entry (`match` is a Rust keyword, hence `match_`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VarTransform {
    pub from: String,
    pub match_: String,
    pub replace: String,
    pub to: String,
}

/// Why a transform failed; `index` is its position in `var-transforms`.
#[derive(Debug, thiserror::Error)]
pub enum VarsError {
    #[error("var-transforms[{index}] (to: {to}): in `from`: {source}")]
    From {
        index: usize,
        to: String,
        #[source]
        source: SubstError,
    },
    #[error("var-transforms[{index}] (to: {to}): `match` is not a valid regular expression `{pattern}`: {message}")]
    BadRegex {
        index: usize,
        to: String,
        pattern: String,
        message: String,
    },
    #[error("var-transforms[{index}]: `to` must be a variable name of letters, digits, `.`, `-`, `_`, got {to:?}")]
    BadName { index: usize, to: String },
}

/// Applies `transforms` in order, storing each result in `out` under
/// `vars.<to>`. Names are looked up in `out` first (earlier results), then `lookup`.
pub fn apply_transforms(
    transforms: &[VarTransform],
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut BTreeMap<String, String>,
) -> Result<(), VarsError> {
    for (index, t) in transforms.iter().enumerate() {
        let valid_name = !t.to.is_empty()
            && t.to
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !valid_name {
            return Err(VarsError::BadName {
                index,
                to: t.to.clone(),
            });
        }
        let from = subst::substitute(&t.from, &|name: &str| {
            out.get(name).cloned().or_else(|| lookup(name))
        })
        .map_err(|source| VarsError::From {
            index,
            to: t.to.clone(),
            source,
        })?;
        let re = Regex::new(&t.match_).map_err(|e| VarsError::BadRegex {
            index,
            to: t.to.clone(),
            pattern: t.match_.clone(),
            message: e.to_string(),
        })?;
        let value = re.replace_all(&from, t.replace.as_str()).into_owned();
        out.insert(format!("vars.{}", t.to), value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(from: &str, match_: &str, replace: &str, to: &str) -> VarTransform {
        VarTransform {
            from: from.into(),
            match_: match_.into(),
            replace: replace.into(),
            to: to.into(),
        }
    }

    /// Runs `transforms` for a package `name`/`version` and returns `vars.<to>`.
    fn run(name: &str, version: &str, transforms: &[VarTransform], to: &str) -> String {
        let lookup = |n: &str| match n {
            "package.name" => Some(name.to_string()),
            "package.version" => Some(version.to_string()),
            _ => None,
        };
        let mut out = BTreeMap::new();
        apply_transforms(transforms, &lookup, &mut out).unwrap();
        out.remove(&format!("vars.{to}")).unwrap()
    }

    const V: &str = "${{package.version}}";

    #[test]
    fn wolfi_boost_dots_to_underscores() {
        // boost.yaml, version 1.92.0
        let t = [tf(V, r"\.", "_", "mangled-package-version")];
        assert_eq!(
            run("boost", "1.92.0", &t, "mangled-package-version"),
            "1_92_0"
        );
    }

    #[test]
    fn wolfi_r_package_last_component() {
        // R-e1071.yaml, version 1.7.17
        let t = [tf(V, r"^(.+)\.(\d+)$", "$1-$2", "mangled-package-version")];
        assert_eq!(
            run("R-e1071", "1.7.17", &t, "mangled-package-version"),
            "1.7-17"
        );
    }

    #[test]
    fn wolfi_abseil_braced_group() {
        // abseil-cpp.yaml, version 20260817.0
        let t = [tf(V, r"^\d{2}(\d{4}).*$", "${1}.0.0", "soversion")];
        assert_eq!(run("abseil-cpp", "20260817.0", &t, "soversion"), "2608.0.0");
    }

    #[test]
    fn wolfi_lua_luv_trailing_component() {
        // lua-luv.yaml, version 1.52.1.0
        let t = [tf(V, r"\.(\d+)$", "-$1", "mangled-package-version")];
        assert_eq!(
            run("lua-luv", "1.52.1.0", &t, "mangled-package-version"),
            "1.52.1-0"
        );
    }

    #[test]
    fn wolfi_avahi_rc_suffix() {
        // avahi.yaml, version 0.9_rc5
        let t = [tf(V, "_rc", "-rc", "mangled-package-version")];
        assert_eq!(
            run("avahi", "0.9_rc5", &t, "mangled-package-version"),
            "0.9-rc5"
        );
    }

    #[test]
    fn wolfi_php_from_package_name() {
        // php-8.2-pecl-mcrypt.yaml and php-8.2.yaml derive phpMM from the name.
        let n = "${{package.name}}";
        let t = [tf(n, r"^php-(\d+\.\d+)-.*$", "$1", "phpMM")];
        assert_eq!(run("php-8.2-pecl-mcrypt", "1.0.9", &t, "phpMM"), "8.2");
        let t = [tf(n, r"^php-(\d\.\d+)", "$1", "phpMM")];
        assert_eq!(run("php-8.2", "8.2.33", &t, "phpMM"), "8.2");
    }

    #[test]
    fn wolfi_apache2_and_jeepney_and_at_spi() {
        let t = [tf(V, r"^(\d+\.\d+)\.\d+$", "$1", "build-version")];
        assert_eq!(run("apache2", "2.4.68", &t, "build-version"), "2.4");
        let t = [tf(V, r"^(\d+.\d+).0$", "${1}", "major-minor-version")];
        assert_eq!(
            run("py3.14-jeepney", "0.9.0", &t, "major-minor-version"),
            "0.9"
        );
        let t = [tf(V, r"(\d+\.\d+)\.\d+", "$1", "mangled-package-version")];
        assert_eq!(
            run("at-spi2-core", "2.61.1", &t, "mangled-package-version"),
            "2.61"
        );
    }

    #[test]
    fn wolfi_opa_envoy_later_transform_overwrites_even_without_match() {
        // opa-envoy.yaml: three transforms, two writing the same variable.
        let t = [
            tf(
                V,
                r"^([0-9]+.[0-9]+.[0-9]+)_p(\d+)$",
                "$1-envoy-$2",
                "mangled-package-version",
            ),
            tf(
                V,
                r"^(\d+\.\d+\.\d+)$",
                "$1-envoy",
                "mangled-package-version",
            ),
            tf(V, r"^(\d+\.\d+\.\d+).*$", "$1", "base-semver"),
        ];
        // The second transform does not match 1.1.0_p1 and stores it unchanged.
        assert_eq!(
            run("opa-envoy", "1.1.0_p1", &t, "mangled-package-version"),
            "1.1.0_p1"
        );
        assert_eq!(
            run("opa-envoy", "1.1.0", &t, "mangled-package-version"),
            "1.1.0-envoy"
        );
        assert_eq!(run("opa-envoy", "1.1.0_p1", &t, "base-semver"), "1.1.0");
    }

    #[test]
    fn later_transforms_see_earlier_results() {
        let t = [
            tf(V, r"\.", "_", "under"),
            tf("${{ vars.under }}-x", "_", "", "squashed"),
        ];
        assert_eq!(run("p", "1.2.3", &t, "squashed"), "123-x");
    }

    #[test]
    fn go_template_edge_cases() {
        // `$1x` names group "1x", which does not exist: empty, as in Go.
        assert_eq!(run("p", "1.2", &[tf(V, r"(\d)\.", "$1x", "a")], "a"), "2");
        assert_eq!(
            run("p", "1.2", &[tf(V, r"(\d)\.", "${1}x", "a")], "a"),
            "1x2"
        );
        assert_eq!(run("p", "1.2", &[tf(V, r"\.", "$$", "a")], "a"), "1$2");
        assert_eq!(
            run("p", "1.2", &[tf(V, r"(?P<maj>\d)\.", "${maj}-", "a")], "a"),
            "1-2"
        );
        assert_eq!(run("p", "1.2", &[tf(V, r"(\d)\.", "$9", "a")], "a"), "2");
    }

    #[test]
    fn bad_regex_names_the_transform() {
        let mut out = BTreeMap::new();
        let t = [tf(V, "^(", "$1", "broken")];
        let e = apply_transforms(&t, &|_: &str| Some("1".into()), &mut out).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("var-transforms[0]") && msg.contains("broken"),
            "{msg}"
        );
        assert!(matches!(e, VarsError::BadRegex { index: 0, .. }));
    }

    #[test]
    fn undefined_in_from_is_an_error() {
        let mut out = BTreeMap::new();
        let t = [tf("${{vars.nope}}", ".", "", "x")];
        let e = apply_transforms(&t, &|_: &str| None, &mut out).unwrap_err();
        assert!(
            e.to_string()
                .contains("undefined variable `${{vars.nope}}`"),
            "{e}"
        );
    }

    #[test]
    fn bad_target_name() {
        let mut out = BTreeMap::new();
        let t = [tf(V, ".", "", "a b")];
        let e = apply_transforms(&t, &|_: &str| Some("1".into()), &mut out).unwrap_err();
        assert!(matches!(e, VarsError::BadName { index: 0, .. }));
    }
}
