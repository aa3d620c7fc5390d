//! Reading an `APKINDEX.tar.gz` with its trust decided, and fetching one
//! (or any small revalidated file) through the cache.

use std::path::Path;

use crate::apk::index::{Index, IndexEntry};
use crate::apk::read::{self, Head};

use super::http::Got;
use super::keys::{check_trust, TrustedKey};
use super::spec::safe_component;
use super::{persist, temp_in, Client, FetchedIndex, RepoSpec, UpstreamError};

/// Largest compressed index downloaded (Wolfi's is a few tens of MiB;
/// inflated size has its own cap in `apk::read`).
pub const MAX_INDEX_DOWNLOAD: u64 = 128 << 20;

fn read_head(path: &Path, url: &str) -> Result<Head, UpstreamError> {
    crate::apk::index::read_head(path).map_err(|source| UpstreamError::Index {
        url: url.to_string(),
        source,
    })
}

fn entries(head: Head, url: &str) -> Result<Vec<IndexEntry>, UpstreamError> {
    let tar = read::read_index_tar(&head.tar).map_err(|source| UpstreamError::Index {
        url: url.to_string(),
        source,
    })?;
    Index::from_tar(tar)
        .map(|i| i.entries)
        .map_err(|e| UpstreamError::IndexText {
            url: url.to_string(),
            problem: e.to_string(),
        })
}

/// Read the index at `path` (named `url` in messages) once, returning its
/// records together with the trust verdict: the signer's key name, or why
/// no trusted key vouches for it. For callers that must know what an
/// untrusted index offers (to say so) without ever installing from it;
/// [`Client::index`] refuses untrusted indexes outright.
#[allow(clippy::type_complexity)]
pub fn read_index_file(
    path: &Path,
    url: &str,
    keys: &[TrustedKey],
) -> Result<(Vec<IndexEntry>, Result<String, UpstreamError>), UpstreamError> {
    let head = read_head(path, url)?;
    let verdict = check_trust(url, &head, keys);
    Ok((entries(head, url)?, verdict))
}

/// The records of a trusted index; the signature is checked first, and the
/// bytes checked are the bytes parsed (one read).
fn verified(
    path: &Path,
    url: &str,
    keys: &[TrustedKey],
) -> Result<(Vec<IndexEntry>, String), UpstreamError> {
    let head = read_head(path, url)?;
    let signer = check_trust(url, &head, keys)?;
    Ok((entries(head, url)?, signer))
}

pub(super) fn fetch(
    client: &Client,
    repo: &RepoSpec,
    arch: &str,
    keys: &[TrustedKey],
) -> Result<FetchedIndex, UpstreamError> {
    if !safe_component(arch) {
        return Err(UpstreamError::BadSpec {
            entry: repo.to_string(),
            problem: format!("`{arch}` is not an architecture name"),
        });
    }
    let url = repo.index_url(arch);
    let (entries, signer) = match repo.local_root() {
        Some(root) => {
            let path = root.join(arch).join("APKINDEX.tar.gz");
            if !path.is_file() {
                return Err(UpstreamError::NotFound { url });
            }
            verified(&path, &url, keys)?
        }
        None => revalidated(
            client,
            &url,
            "indexes",
            "APKINDEX.tar.gz",
            MAX_INDEX_DOWNLOAD,
            |p| verified(p, &url, keys),
        )?,
    };
    Ok(FetchedIndex {
        repo: repo.clone(),
        entries,
        signer,
    })
}

/// `url` through the cache: offline, the cached copy or an error naming
/// the URL; online, a conditional GET when a copy is cached (304 → the
/// copy). `check` accepts a file or refuses it; a new download is only
/// stored after it passed.
pub(super) fn revalidated<T>(
    client: &Client,
    url: &str,
    kind: &str,
    file: &str,
    limit: u64,
    mut check: impl FnMut(&Path) -> Result<T, UpstreamError>,
) -> Result<T, UpstreamError> {
    let dir = client.cache.url_dir(kind, url);
    let cached = dir.join(file);
    let have = cached.is_file();
    if client.offline {
        return match have {
            true => check(&cached),
            false => Err(UpstreamError::Offline {
                url: url.to_string(),
                cache: cached,
            }),
        };
    }
    let validators = if have {
        client.cache.validators(&dir, &cached, url)
    } else {
        None
    };
    let mut tmp = temp_in(&dir)?;
    match client
        .http
        .get(url, validators.as_ref(), limit, tmp.as_file_mut())?
    {
        Got::NotModified => check(&cached),
        Got::Body(v) => {
            let out = check(tmp.path())?;
            persist(tmp, &cached)?;
            client
                .cache
                .write_meta(&dir, &cached, url, v)
                .map_err(|source| UpstreamError::Io {
                    what: "writing cache metadata in",
                    path: dir.clone(),
                    source,
                })?;
            Ok(out)
        }
    }
}
