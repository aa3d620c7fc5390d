//! Package URLs (purl-spec) and the percent-encoding they and the SBOM's
//! document namespace use. The two escape sets are defined here once; the
//! image SBOM uses the same ones.

use std::collections::BTreeMap;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// purl-spec: everything but ASCII letters, digits and `-._~` is escaped
/// (in names, versions, namespace segments and qualifier values alike).
pub(crate) const PURL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A segment of the document namespace URI: as [`PURL`], but `+` (common
/// in versions) is a valid path character there and stays readable.
pub(crate) const URI_SEGMENT: &AsciiSet = &PURL.remove(b'+');

/// `s` escaped for a purl component.
pub(crate) fn escape(s: &str) -> String {
    utf8_percent_encode(s, PURL).to_string()
}

/// `s` escaped for one segment of the namespace URI path.
pub(crate) fn uri_segment(s: &str) -> String {
    utf8_percent_encode(s, URI_SEGMENT).to_string()
}

/// `pkg:<type>/<namespace>/<name>@<version>?<k=v&...>`; qualifiers sorted by
/// key and every component percent-encoded as purl-spec asks.
pub(crate) fn make(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: &str,
    qualifiers: &BTreeMap<&str, String>,
) -> String {
    let mut out = format!("pkg:{kind}/");
    if let Some(ns) = namespace {
        let segments: Vec<String> = ns.split('/').map(escape).collect();
        out.push_str(&segments.join("/"));
        out.push('/');
    }
    out.push_str(&escape(name));
    if !version.is_empty() {
        out.push('@');
        out.push_str(&escape(version));
    }
    let query: Vec<String> = qualifiers
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", escape(v)))
        .collect();
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purls_are_escaped_and_sorted() {
        let q = BTreeMap::from([("z", "a b".to_string()), ("a", "https://x/y".into())]);
        assert_eq!(
            make("generic", None, "g++", "1.0+git", &q),
            "pkg:generic/g%2B%2B@1.0%2Bgit?a=https%3A%2F%2Fx%2Fy&z=a%20b"
        );
        assert_eq!(
            make("apk", Some("a/b c"), "x", "", &BTreeMap::new()),
            "pkg:apk/a/b%20c/x"
        );
    }

    #[test]
    fn the_sets_escape_as_the_specs_ask() {
        assert_eq!(escape("aZ9-._~+/:@é%"), "aZ9-._~%2B%2F%3A%40%C3%A9%25");
        assert_eq!(uri_segment("1.0+git~x y"), "1.0+git~x%20y");
    }
}
