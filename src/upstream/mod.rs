//! Getting indexes and packages from apk repositories, verified, through a
//! cache: the host-side half of hermetic build environments. Nothing here
//! runs inside a sandbox.
//!
//! Trust (apk-format.md §0): an index is used only when a given key
//! verifies its signature; a package is returned only after its size, the
//! SHA-1 of its control member (`C:`) and the SHA-256 of its data member
//! (`datahash` in that control member) match the record that named it.
//! A file that fails never reaches the cache.
//!
//! Local repositories (directories, `file://`) are read in place; their
//! packages are copied into the cache and checked there, so the returned
//! path is always a checked cache file that nobody else rewrites (cache
//! files are only ever replaced, atomically, by identical checked bytes).

mod cache;
mod http;
mod index;
mod keys;
mod package;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::apk::index::IndexEntry;
use crate::apk::read::ReadError;

pub use cache::Cache;
pub use http::proxy_for;
pub use index::read_index_file;
pub use keys::{check_trust, load_keyring, TrustedKey};
pub use spec::RepoSpec;

/// Why an index, package or key could not be had. Each names the
/// repository, URL or package it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("repository `{entry}`: {problem}")]
    BadSpec { entry: String, problem: String },
    #[error("{url}: UNTRUSTED index: it is not signed (trusted keys: {tried})")]
    Unsigned { url: String, tried: String },
    #[error("{url}: UNTRUSTED index: signed by {signers}, which is not a trusted key (trusted keys tried: {tried})")]
    Untrusted {
        url: String,
        signers: String,
        tried: String,
    },
    #[error("{url}: BAD signature: {entry} does not verify with the trusted key of that name; the index changed after it was signed (signed by {signers}; trusted keys tried: {tried})")]
    BadSignature {
        url: String,
        entry: String,
        signers: String,
        tried: String,
    },
    #[error("{url}: cannot read index: {source}")]
    Index { url: String, source: ReadError },
    #[error("{url}: {problem}")]
    IndexText { url: String, problem: String },
    #[error("keyring entry {entry}: {problem}")]
    Key { entry: String, problem: String },
    #[error("{url}: HTTP {status} {reason}")]
    HttpStatus {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: reading the response: {source}")]
    Read { url: String, source: std::io::Error },
    #[error("{url}: the response is larger than {limit} bytes; refused")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: not in the cache ({}), and --offline prevented the download", cache.display())]
    Offline { url: String, cache: PathBuf },
    #[error("{url}: no such file")]
    NotFound { url: String },
    #[error("package {package} from {repo}: {problem}")]
    BadPackage {
        package: String,
        repo: String,
        problem: String,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a [`Client`] fetches.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Shared between builds; see the `cache` module for the layout.
    pub cache_dir: PathBuf,
    /// No network at all: only the cache and local repositories.
    pub offline: bool,
    /// Connect, read and write timeout of each HTTP request.
    pub timeout: Duration,
}

/// Fetches indexes and packages; cheap to share by reference.
pub struct Client {
    cache: Cache,
    offline: bool,
    http: http::Http,
    downloads: AtomicUsize,
}

/// An index whose signature a trusted key verified.
#[derive(Debug, Clone)]
pub struct FetchedIndex {
    pub repo: RepoSpec,
    pub entries: Vec<IndexEntry>,
    /// Name of the trusted key that verified it.
    pub signer: String,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Result<Client, UpstreamError> {
        Ok(Client {
            cache: Cache::open(&opts.cache_dir)?,
            offline: opts.offline,
            http: http::Http::new(opts.timeout),
            downloads: AtomicUsize::new(0),
        })
    }

    /// `<root>/<arch>/APKINDEX.tar.gz`, signature checked against `keys`
    /// before its records are parsed.
    pub fn index(
        &self,
        repo: &RepoSpec,
        arch: &str,
        keys: &[TrustedKey],
    ) -> Result<FetchedIndex, UpstreamError> {
        index::fetch(self, repo, arch, keys)
    }

    /// `<root>/<A:>/<P>-<V>.apk` (`noarch` or no `A:`: `arch`), from the
    /// cache when present, checked against `entry` before it is returned.
    pub fn package(
        &self,
        repo: &RepoSpec,
        arch: &str,
        entry: &IndexEntry,
    ) -> Result<PathBuf, UpstreamError> {
        package::fetch(self, repo, arch, entry)
    }

    /// Same, for a lock file's record: `url` is the package file's own
    /// URL or path, `checksum` its `C:` value (`Q1…`, or 40 hex digits).
    pub fn package_pinned(
        &self,
        url: &str,
        name: &str,
        version: &str,
        checksum: &str,
        size: u64,
    ) -> Result<PathBuf, UpstreamError> {
        package::fetch_pinned(self, url, name, version, checksum, size)
    }

    /// How many `.apk` bodies this client transferred over the network.
    pub fn downloads(&self) -> usize {
        self.downloads.load(Ordering::SeqCst)
    }

    /// The cache this client reads and fills.
    pub fn cache_dir(&self) -> &Path {
        self.cache.root()
    }

    /// A small file (a key) at `url`, cached and revalidated like an index.
    pub(crate) fn small_file(
        &self,
        url: &str,
        kind: &str,
        limit: u64,
    ) -> Result<Vec<u8>, UpstreamError> {
        index::revalidated(self, url, kind, "file", limit, |path| {
            std::fs::read(path).map_err(|source| UpstreamError::Io {
                what: "reading cached",
                path: path.to_path_buf(),
                source,
            })
        })
    }
}

/// A fresh temp file in `dir` (same filesystem as the final name).
fn temp_in(dir: &Path) -> Result<tempfile::NamedTempFile, UpstreamError> {
    std::fs::create_dir_all(dir).map_err(|source| UpstreamError::Io {
        what: "creating cache directory",
        path: dir.to_path_buf(),
        source,
    })?;
    tempfile::Builder::new()
        .prefix(".part-")
        .tempfile_in(dir)
        .map_err(|source| UpstreamError::Io {
            what: "creating a temp file in",
            path: dir.to_path_buf(),
            source,
        })
}

/// Make a checked temp file readable and rename it over `dest`.
fn persist(tmp: tempfile::NamedTempFile, dest: &Path) -> Result<(), UpstreamError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| UpstreamError::Io {
        what: "storing",
        path: dest.to_path_buf(),
        source,
    };
    tmp.as_file().sync_all().map_err(io)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io)?;
    tmp.persist(dest).map_err(|e| io(e.error))?;
    Ok(())
}
