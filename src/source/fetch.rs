//! Downloading a source artifact into a content-addressed cache, verifying
//! its checksum on the way.
//!
//! Layout: `<cache_dir>/<sha256|sha512>/<hex>/<basename>`. The data is
//! streamed into a temp file in `cache_dir` while being hashed (one pass),
//! checked against the expected digest, and only then renamed into place, so
//! the cache never holds a file whose content does not match its path. A
//! cache hit is re-hashed before it is trusted.
//!
//! `http://` and `https://` go through ureq (timeouts, redirects, size cap,
//! retries on transport errors and 5xx); `file://` URLs and plain absolute
//! paths are read from the local filesystem.

use sha2::Digest;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An expected digest, as written in a recipe (`expected-sha256` /
/// `expected-sha512`), in hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checksum {
    Sha256(String),
    Sha512(String),
}

impl Checksum {
    /// `"sha256"` or `"sha512"`; also the cache subdirectory.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256(_) => "sha256",
            Checksum::Sha512(_) => "sha512",
        }
    }

    /// The expected digest as written.
    pub fn hex(&self) -> &str {
        match self {
            Checksum::Sha256(h) | Checksum::Sha512(h) => h,
        }
    }

    /// The digest lowercased, after checking it is hex of the right length.
    /// It becomes a directory name, so this also keeps the cache path safe.
    fn normalized(&self) -> Result<String, FetchError> {
        let want = match self {
            Checksum::Sha256(_) => 64,
            Checksum::Sha512(_) => 128,
        };
        let h = self.hex().trim();
        if h.len() != want || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FetchError::BadChecksum {
                algorithm: self.algorithm(),
                value: self.hex().to_string(),
                expected_len: want,
            });
        }
        Ok(h.to_ascii_lowercase())
    }

    fn hasher(&self) -> Hasher {
        match self {
            Checksum::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
            Checksum::Sha512(_) => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn hex(self) -> String {
        match self {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    #[error("expected {algorithm} {value:?} is not a {expected_len}-digit hex digest")]
    BadChecksum {
        algorithm: &'static str,
        value: String,
        expected_len: usize,
    },
    #[error(
        "unsupported source URL {url:?}: expected http://, https://, file:// or an absolute path"
    )]
    UnsupportedUrl { url: String },
    #[error("checksum mismatch for {url}: expected {algorithm} {expected}, got {actual}")]
    Mismatch {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("fetching {url}: server answered HTTP {status} {reason}")]
    HttpStatus {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("fetching {url}: {message}")]
    Transport { url: String, message: String },
    #[error("fetching {url}: larger than the {limit}-byte limit")]
    TooLarge { url: String, limit: u64 },
    #[error("fetching {url}: reading the response: {source}")]
    Read { url: String, source: io::Error },
    #[error("fetching {url}: writing into the cache: {source}")]
    Write { url: String, source: io::Error },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Knobs for [`fetch_with`]; [`Default`] gives the values [`fetch`] uses.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Largest artifact accepted (default 8 GiB).
    pub max_bytes: u64,
    /// TCP connect timeout (default 30 s).
    pub connect_timeout: Duration,
    /// Longest wait for any single read (default 60 s); not a cap on the
    /// whole download, which may legitimately take long.
    pub read_timeout: Duration,
    /// Extra attempts after a transport error or HTTP 5xx/429 (default 2).
    pub retries: u32,
    /// Pause before retry `n` is `n * retry_backoff` (default 1 s).
    pub retry_backoff: Duration,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            max_bytes: 8 << 30,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(60),
            retries: 2,
            retry_backoff: Duration::from_secs(1),
        }
    }
}

/// [`fetch_with`] using [`FetchOptions::default`].
pub fn fetch(url: &str, expected: &Checksum, cache_dir: &Path) -> Result<PathBuf, FetchError> {
    fetch_with(url, expected, cache_dir, &FetchOptions::default())
}

/// Return the cached path of `url`'s content, downloading and verifying it
/// first unless a verified copy is already cached.
pub fn fetch_with(
    url: &str,
    expected: &Checksum,
    cache_dir: &Path,
    opts: &FetchOptions,
) -> Result<PathBuf, FetchError> {
    let want = expected.normalized()?;
    let source = Source::parse(url)?;
    let dir = cache_dir.join(expected.algorithm()).join(&want);
    let target = dir.join(basename(url));

    if target.is_file() {
        let actual = hash_file(&target, expected)?;
        if actual == want {
            return Ok(target);
        }
        // Corrupted or tampered cache entry: drop it and fetch again.
        fs::remove_file(&target).map_err(|source| FetchError::Io {
            what: "removing corrupt cache entry",
            path: target.clone(),
            source,
        })?;
    }

    fs::create_dir_all(cache_dir).map_err(|source| FetchError::Io {
        what: "creating cache directory",
        path: cache_dir.to_path_buf(),
        source,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".fetch-")
        .suffix(".part")
        .tempfile_in(cache_dir)
        .map_err(|source| FetchError::Io {
            what: "creating temp file in",
            path: cache_dir.to_path_buf(),
            source,
        })?;
    let actual = match source {
        Source::Local(path) => copy_local(url, &path, tmp.as_file_mut(), expected, opts)?,
        Source::Http => download(url, tmp.as_file_mut(), expected, opts)?,
    };
    if actual != want {
        // `tmp` is deleted on drop: a mismatch leaves nothing behind.
        return Err(FetchError::Mismatch {
            url: url.to_string(),
            algorithm: expected.algorithm(),
            expected: want,
            actual,
        });
    }
    fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
        what: "creating cache directory",
        path: dir.clone(),
        source,
    })?;
    tmp.as_file().sync_all().map_err(|source| FetchError::Io {
        what: "syncing",
        path: tmp.path().to_path_buf(),
        source,
    })?;
    tmp.persist(&target).map_err(|e| FetchError::Io {
        what: "moving download into the cache at",
        path: target.clone(),
        source: e.error,
    })?;
    Ok(target)
}

enum Source {
    Http,
    Local(PathBuf),
}

impl Source {
    fn parse(url: &str) -> Result<Source, FetchError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Source::Http);
        }
        let unsupported = || FetchError::UnsupportedUrl {
            url: url.to_string(),
        };
        let path = if let Some(rest) = url.strip_prefix("file://") {
            // file:///abs and file://localhost/abs; other hosts are remote.
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            percent_decode(rest).ok_or_else(unsupported)?
        } else {
            url.to_string()
        };
        if !path.starts_with('/') {
            return Err(unsupported());
        }
        Ok(Source::Local(PathBuf::from(path)))
    }
}

/// The file name to cache `url` under: its last path segment without query
/// or fragment, percent-decoded, with anything unsafe in a file name
/// replaced; `source` when nothing usable is left.
pub fn basename(url: &str) -> String {
    let no_frag = url.split('#').next().unwrap_or_default();
    let no_query = no_frag.split('?').next().unwrap_or_default();
    let after_scheme = match no_query.find("://") {
        Some(i) => &no_query[i + 3..],
        None => no_query,
    };
    // For URLs with a host, a bare host ("http://example.com") has no name.
    let path = if no_query.contains("://") && !no_query.starts_with("file://") {
        after_scheme
            .split_once('/')
            .map(|x| x.1)
            .unwrap_or_default()
    } else {
        after_scheme
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    let decoded = percent_decode(last).unwrap_or_else(|| last.to_string());
    let clean: String = decoded
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    match clean.as_str() {
        "" | "." | ".." => "source".to_string(),
        _ => clean,
    }
}

/// Decode `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    // The crate passes a malformed escape through as text; a URL holding one
    // is refused here instead, so `%zz` never becomes part of a path.
    let well_formed = s.split('%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn hash_file(path: &Path, expected: &Checksum) -> Result<String, FetchError> {
    let mut f = fs::File::open(path).map_err(|source| FetchError::Io {
        what: "opening",
        path: path.to_path_buf(),
        source,
    })?;
    let mut h = expected.hasher();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|source| FetchError::Io {
            what: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.hex())
}

/// Why a copy loop stopped.
enum CopyError {
    Read(io::Error),
    Write(io::Error),
    TooLarge,
}

/// Copy `from` into `to`, hashing on the way, refusing more than `limit`
/// bytes. Returns the hex digest.
fn copy_hashing(
    from: &mut dyn Read,
    to: &mut fs::File,
    expected: &Checksum,
    limit: u64,
) -> Result<String, CopyError> {
    let mut h = expected.hasher();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        total += n as u64;
        if total > limit {
            return Err(CopyError::TooLarge);
        }
        h.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    Ok(h.hex())
}

fn copy_local(
    url: &str,
    path: &Path,
    to: &mut fs::File,
    expected: &Checksum,
    opts: &FetchOptions,
) -> Result<String, FetchError> {
    let io_err = |what, source| FetchError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::File::open(path).map_err(|e| io_err("opening source", e))?;
    copy_hashing(&mut f, to, expected, opts.max_bytes).map_err(|e| match e {
        CopyError::Read(e) => io_err("reading source", e),
        CopyError::Write(e) => io_err("writing cache copy of", e),
        CopyError::TooLarge => FetchError::TooLarge {
            url: url.to_string(),
            limit: opts.max_bytes,
        },
    })
}

fn download(
    url: &str,
    to: &mut fs::File,
    expected: &Checksum,
    opts: &FetchOptions,
) -> Result<String, FetchError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(opts.connect_timeout)
        .timeout_read(opts.read_timeout)
        .redirects(10)
        .user_agent(concat!("pkgbuild/", env!("CARGO_PKG_VERSION")))
        .build();
    let mut attempt = 0;
    loop {
        match download_once(&agent, url, to, expected, opts) {
            Err(e) if attempt < opts.retries && retryable(&e) => {
                attempt += 1;
                std::thread::sleep(opts.retry_backoff * attempt);
            }
            other => return other,
        }
    }
}

fn retryable(e: &FetchError) -> bool {
    match e {
        FetchError::Transport { .. } | FetchError::Read { .. } => true,
        FetchError::HttpStatus { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

fn download_once(
    agent: &ureq::Agent,
    url: &str,
    to: &mut fs::File,
    expected: &Checksum,
    opts: &FetchOptions,
) -> Result<String, FetchError> {
    let resp = match agent.get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(status, r)) => {
            return Err(FetchError::HttpStatus {
                url: url.to_string(),
                status,
                reason: r.status_text().to_string(),
            })
        }
        Err(ureq::Error::Transport(t)) => {
            return Err(FetchError::Transport {
                url: url.to_string(),
                message: t.to_string(),
            })
        }
    };
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: opts.max_bytes,
    };
    if let Some(len) = resp
        .header("Content-Length")
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if len > opts.max_bytes {
            return Err(too_large());
        }
    }
    // A retry starts the file over.
    let reset = |f: &mut fs::File| -> io::Result<()> {
        use std::io::Seek;
        f.set_len(0)?;
        f.rewind()
    };
    reset(to).map_err(|source| FetchError::Write {
        url: url.to_string(),
        source,
    })?;
    let mut body = resp.into_reader();
    copy_hashing(&mut body, to, expected, opts.max_bytes).map_err(|e| match e {
        CopyError::Read(source) => FetchError::Read {
            url: url.to_string(),
            source,
        },
        CopyError::Write(source) => FetchError::Write {
            url: url.to_string(),
            source,
        },
        CopyError::TooLarge => too_large(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basename_takes_last_segment_without_query_and_sanitizes() {
        for (url, want) in [
            ("https://x.org/a/hello-1.0.tar.gz", "hello-1.0.tar.gz"),
            ("https://x.org/a/b.tgz?raw=1#frag", "b.tgz"),
            ("https://x.org/dl/my%20file.tar.xz", "my file.tar.xz"),
            (
                "https://x.org/dl/..%2F..%2Fetc%2Fpasswd",
                ".._.._etc_passwd",
            ),
            ("https://x.org/", "source"),
            ("https://x.org", "source"),
            ("https://x.org/a/..", "source"),
            ("https://x.org/a/%2e%2e", "source"),
            ("file:///srv/src/pkg.tar", "pkg.tar"),
            ("/srv/src/pkg.tar", "pkg.tar"),
            ("https://x.org/bad%zz", "bad%zz"),
            ("https://x.org/%C3%A9t%C3%A9.tar", "été.tar"),
            ("https://x.org/bad%ff.tar", "bad%ff.tar"),
        ] {
            assert_eq!(basename(url), want, "{url}");
        }
    }

    #[test]
    fn checksums_must_be_hex_of_the_right_length() {
        assert!(Checksum::Sha256("AB".repeat(32)).normalized().is_ok());
        assert_eq!(
            Checksum::Sha256("AB".repeat(32)).normalized().ok(),
            Some("ab".repeat(32))
        );
        assert!(Checksum::Sha256("ab".repeat(31)).normalized().is_err());
        assert!(Checksum::Sha512("ab".repeat(32)).normalized().is_err());
        let err = Checksum::Sha256(format!("../{}", "a".repeat(61)))
            .normalized()
            .unwrap_err();
        assert!(err.to_string().contains("64-digit"), "{err}");
    }

    #[test]
    fn urls_are_classified_and_relative_paths_rejected() {
        assert!(matches!(Source::parse("HTTPS://x/y"), Ok(Source::Http)));
        assert!(
            matches!(Source::parse("file:///a%20b/c"), Ok(Source::Local(p)) if p == Path::new("/a b/c"))
        );
        assert!(
            matches!(Source::parse("file://localhost/a"), Ok(Source::Local(p)) if p == Path::new("/a"))
        );
        for bad in [
            "ftp://x/y",
            "relative/path",
            "file://host/x",
            "git://x/y",
            "file:///a%zz",
            "file:///a%2",
            "file:///a%+1",
            "file:///a%ff",
        ] {
            assert!(Source::parse(bad).is_err(), "{bad}");
        }
    }
}
