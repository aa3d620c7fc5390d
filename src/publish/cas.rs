//! The index merge by compare-and-swap: read `APKINDEX.tar.gz` with its
//! ETag/generation, change it, sign it, and write it only if nobody wrote
//! it meanwhile; on a precondition failure start over from a fresh read,
//! after a randomised, growing pause, a bounded number of times.
//!
//! Concurrent publishers never lose each other's entries because each
//! write is conditional on the exact version its merge started from. A
//! directory destination has no conditional replace, so there the whole
//! read-merge-write runs under the repository lock `build` takes.

use std::time::Duration;

use object_store::path::Path as ObjPath;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use rsa::rand_core::{OsRng, RngCore};

use super::{signed_by, Dest, PublishError};
use crate::apk::index::{self, Index, IndexEntry};
use crate::apk::read::{self, Payload};
use crate::apk::sign::SigningKey;

/// Largest index we download (compressed).
pub const MAX_INDEX_BYTES: u64 = 512 << 20;

/// How hard to try before giving up on a contended index.
#[derive(Debug, Clone)]
pub struct CasPolicy {
    pub max_attempts: u32,
    /// First pause; doubles per attempt up to `max_delay`. Each pause is
    /// drawn uniformly below that bound ("full jitter"), so publishers
    /// that collided once do not collide again in lockstep.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for CasPolicy {
    fn default() -> Self {
        CasPolicy {
            max_attempts: 40,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl CasPolicy {
    fn pause(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_delay);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        // The modulo's bias is far below anything a pause can notice.
        Duration::from_nanos(OsRng.next_u64() % nanos.saturating_add(1))
    }
}

/// What a merge does to the index it reads.
pub enum Change<'a> {
    /// Add these records (replacing any with the same name and version);
    /// the index read must be signed by our key.
    Add(&'a [IndexEntry]),
    /// Replace every record (`--reconcile`); the old index is read only
    /// for its version and description, whoever signed it.
    Replace(&'a [IndexEntry]),
}

/// What one merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Precondition failures that sent the merge back to a fresh read.
    pub retries: u32,
    /// Whether the index was written (not when it already held everything).
    pub written: bool,
    /// Records in the index afterwards.
    pub entries: usize,
}

/// An index as read from the store, with the version to write against.
pub struct Current {
    pub index: Index,
    pub version: UpdateVersion,
}

/// Read and parse `loc`; `None` when it does not exist. With `key`, the
/// index must carry a signature by that key that verifies.
pub async fn read_index(
    dest: &Dest,
    loc: &ObjPath,
    key: Option<&SigningKey>,
) -> Result<Option<Current>, PublishError> {
    let url = dest.url(loc);
    let got = match dest.store().get(loc).await {
        Ok(g) => g,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(source) => {
            return Err(PublishError::Store {
                url,
                what: "cannot read the index",
                source,
            })
        }
    };
    if got.meta.size > MAX_INDEX_BYTES {
        return Err(PublishError::BadIndex {
            url,
            problem: format!("{} bytes, more than {MAX_INDEX_BYTES}", got.meta.size),
        });
    }
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got.bytes().await.map_err(|source| PublishError::Store {
        url: url.clone(),
        what: "cannot read the index",
        source,
    })?;
    let index = parse_index(&bytes, key).map_err(|problem| PublishError::BadIndex {
        url: url.clone(),
        problem,
    })?;
    Ok(Some(Current { index, version }))
}

/// Parse index bytes, checking the signature when `key` is given.
pub fn parse_index(bytes: &[u8], key: Option<&SigningKey>) -> Result<Index, String> {
    let head = read::read_head_bytes(bytes).map_err(|e| e.to_string())?;
    if head.payload != Payload::Index {
        return Err("it holds a .PKGINFO (is it a package?)".into());
    }
    if head.end != bytes.len() as u64 {
        return Err(format!(
            "{} bytes of garbage after the index",
            bytes.len() as u64 - head.end
        ));
    }
    if let Some(key) = key {
        signed_by(&head, key)?;
    }
    let tar = read::read_index_tar(&head.tar).map_err(|e| e.to_string())?;
    Index::from_tar(tar).map_err(|e| e.to_string())
}

fn same_records(a: &Index, b: &Index) -> bool {
    a.description == b.description && a.render_text() == b.render_text()
}

/// Merge `change` into `arch`'s index at `dest` until a write succeeds.
pub async fn merge_index(
    dest: &Dest,
    arch: &str,
    key: &SigningKey,
    change: Change<'_>,
    policy: &CasPolicy,
) -> Result<MergeOutcome, PublishError> {
    let loc = dest.location(arch, "APKINDEX.tar.gz");
    let url = dest.url(&loc);
    // A directory has no conditional replace: hold `build`'s lock instead.
    let _lock = match dest.local_root() {
        Some(root) => {
            let dir = root.join(arch);
            let lock = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                crate::repo::lock_dir(&dir, || {
                    crate::errln!("waiting for the lock of {}", dir.display())
                })
                .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|problem| PublishError::BadIndex {
                url: url.clone(),
                problem,
            })?;
            Some(lock)
        }
        None => None,
    };
    let mut retries = 0u32;
    for attempt in 0..policy.max_attempts {
        let check_key = matches!(change, Change::Add(_)).then_some(key);
        let current = match read_index(dest, &loc, check_key).await {
            Ok(c) => c,
            // A replacement does not care what the old index was.
            Err(PublishError::BadIndex { .. }) if check_key.is_none() => {
                read_version(dest, &loc).await?.map(|version| Current {
                    index: Index::default(),
                    version,
                })
            }
            Err(e) => return Err(e),
        };
        let old = current.as_ref().map(|c| &c.index);
        let mut next = Index {
            description: old.and_then(|o| o.description.clone()),
            entries: old.map(|o| o.entries.clone()).unwrap_or_default(),
        };
        match change {
            Change::Add(new) => next.merge(new.to_vec()),
            Change::Replace(all) => next.entries = all.to_vec(),
        }
        let entries = next.entries.len();
        let unchanged = match old {
            Some(o) => same_records(o, &next),
            None => next.entries.is_empty(),
        };
        if unchanged && matches!(change, Change::Add(_)) {
            return Ok(MergeOutcome {
                retries,
                written: false,
                entries,
            });
        }
        let bytes = next
            .to_bytes(Some(key), Some(arch))
            .map_err(|e: index::IndexError| PublishError::BadIndex {
                url: url.clone(),
                problem: e.to_string(),
            })?;
        let mode = match (&current, dest.local_root()) {
            (_, Some(_)) => PutMode::Overwrite,
            (Some(c), None) => PutMode::Update(c.version.clone()),
            (None, None) => PutMode::Create,
        };
        match dest
            .store()
            .put_opts(&loc, PutPayload::from(bytes), PutOptions::from(mode))
            .await
        {
            Ok(_) => {
                return Ok(MergeOutcome {
                    retries,
                    written: true,
                    entries,
                })
            }
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => {
                retries += 1;
                tokio::time::sleep(policy.pause(attempt)).await;
            }
            Err(source) => {
                return Err(PublishError::Store {
                    url,
                    what: "cannot write the index",
                    source,
                })
            }
        }
    }
    Err(PublishError::Contention {
        url,
        attempts: policy.max_attempts,
    })
}

async fn read_version(dest: &Dest, loc: &ObjPath) -> Result<Option<UpdateVersion>, PublishError> {
    match dest.store().head(loc).await {
        Ok(m) => Ok(Some(UpdateVersion {
            e_tag: m.e_tag,
            version: m.version,
        })),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(source) => Err(PublishError::Store {
            url: dest.url(loc),
            what: "cannot read the index",
            source,
        }),
    }
}
