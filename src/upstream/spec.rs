//! `repositories` entries: `[@tag ]URL-or-path`, as apko and melange write
//! them, and the URLs derived from one (apk-format.md §4.4).

use std::path::PathBuf;

use super::UpstreamError;

/// One `repositories` entry: `[@tag ]URL-or-path`. Local dirs, `file://`,
/// `http://`, `https://`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoSpec {
    /// The `@tag` without its `@` (apk's pinned repository tag), if any.
    pub tag: Option<String>,
    /// As written, without trailing `/`.
    pub url: String,
}

impl RepoSpec {
    /// Parse one entry. A tag is `@` plus non-blank characters, then blank
    /// space, then the location; schemes other than `http`, `https` and
    /// `file` are refused rather than mistaken for relative paths.
    pub fn parse(entry: &str) -> Result<RepoSpec, UpstreamError> {
        let bad = |problem: &str| UpstreamError::BadSpec {
            entry: entry.to_string(),
            problem: problem.to_string(),
        };
        let mut rest = entry.trim();
        let mut tag = None;
        if let Some(t) = rest.strip_prefix('@') {
            let (name, loc) = t
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("a `@tag` must be followed by a URL or path"))?;
            if name.is_empty() {
                return Err(bad("empty `@tag`"));
            }
            tag = Some(name.to_string());
            rest = loc.trim();
        }
        if rest.is_empty() {
            return Err(bad("no URL or path"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("blank or control characters inside the URL or path"));
        }
        if let Some((scheme, after)) = rest.split_once("://") {
            match scheme.to_ascii_lowercase().as_str() {
                "http" | "https" => {
                    let host = after.split('/').next().unwrap_or("");
                    if host.is_empty() {
                        return Err(bad("no host in the URL"));
                    }
                }
                "file" => {
                    if !after.starts_with('/') {
                        return Err(bad("a file:// URL needs an absolute path (file:///dir)"));
                    }
                }
                _ => {
                    return Err(bad(
                        "unsupported scheme (use http://, https://, file:// or a path)",
                    ))
                }
            }
        }
        let url = rest.trim_end_matches('/');
        // "/" alone is a (strange but valid) root directory.
        let url = if url.is_empty() { "/" } else { url };
        Ok(RepoSpec {
            tag,
            url: url.to_string(),
        })
    }

    /// A directory or `file://` URL: read in place, never over the network.
    pub fn is_local(&self) -> bool {
        self.local_root().is_some()
    }

    /// The directory of a local repository.
    pub fn local_root(&self) -> Option<PathBuf> {
        if let Some(p) = self.url.strip_prefix("file://") {
            return Some(PathBuf::from(p));
        }
        (!self.url.contains("://")).then(|| PathBuf::from(&self.url))
    }

    /// `<root>/<rel>`, as a URL or as a path when local.
    pub fn join(&self, rel: &str) -> String {
        if self.url == "/" {
            format!("/{rel}")
        } else {
            format!("{}/{rel}", self.url)
        }
    }

    /// Where `<arch>/APKINDEX.tar.gz` lives.
    pub fn index_url(&self, arch: &str) -> String {
        self.join(&format!("{arch}/APKINDEX.tar.gz"))
    }
}

impl std::fmt::Display for RepoSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tag {
            Some(t) => write!(f, "@{t} {}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

/// A path component taken from an index record (`A:`, `P:`, `V:`) must not
/// climb out of the repository or hide as a dotfile.
pub(crate) fn safe_component(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && !s.contains('/')
        && !s.contains('\\')
        && !s
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'?' || b == b'#' || b == b'%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(e: &str) -> RepoSpec {
        RepoSpec::parse(e).unwrap()
    }

    #[test]
    fn tags_urls_and_paths_parse_and_lose_trailing_slashes() {
        let s = spec("@local /srv/repo/");
        assert_eq!(s.tag.as_deref(), Some("local"));
        assert_eq!(s.url, "/srv/repo");
        assert!(s.is_local());
        let s = spec("  https://packages.wolfi.dev/os/  ");
        assert_eq!(
            (s.tag, s.url.as_str()),
            (None, "https://packages.wolfi.dev/os")
        );
        let s = spec("@edge\thttp://127.0.0.1:8080/alpine");
        assert_eq!(s.tag.as_deref(), Some("edge"));
        assert!(!s.is_local());
        let s = spec("file:///srv/r");
        assert_eq!(s.local_root(), Some(PathBuf::from("/srv/r")));
        let s = spec("./packages");
        assert_eq!(s.local_root(), Some(PathBuf::from("./packages")));
        assert_eq!(s.index_url("x86_64"), "./packages/x86_64/APKINDEX.tar.gz");
        assert_eq!(spec("/").index_url("aarch64"), "/aarch64/APKINDEX.tar.gz");
    }

    #[test]
    fn malformed_entries_are_refused_with_the_entry_named() {
        for (e, why) in [
            ("", "no URL"),
            ("@tag", "must be followed"),
            ("@ /srv", "empty `@tag`"),
            ("ftp://x.org/r", "unsupported scheme"),
            ("https:///r", "no host"),
            ("file://relative/r", "absolute path"),
            ("https://x.org/a b", "blank"),
        ] {
            let err = RepoSpec::parse(e).unwrap_err().to_string();
            assert!(err.contains(why) && err.contains(e.trim()), "{e}: {err}");
        }
    }

    #[test]
    fn record_fields_that_would_escape_the_repository_are_unsafe() {
        for ok in ["x86_64", "hello", "1.0-r0", "py3-foo_bar+x"] {
            assert!(safe_component(ok), "{ok}");
        }
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "a\nb", "a?b", "a%2f"] {
            assert!(!safe_component(bad), "{bad:?}");
        }
    }
}
