//! `publish --reconcile`: rebuild each arch's index from a listing of the
//! store, for repair after someone edited the bucket by hand.
//!
//! Only the leading bytes of each package are fetched (its signature and
//! control members are all an index record needs, and they sit at the
//! start of the file). A package that is not signed by our key, cannot be
//! read, or is stored under a name apk would not fetch it by is left out
//! and reported; the rewrite is still a compare-and-swap, so a publish
//! running meanwhile either lands before it (and is listed) or retries.

use futures::StreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Serialize;

use super::cas::{self, CasPolicy, Change};
use super::{check_identity, plain_arch, signed_by, Dest, PublishError, Refusal};
use crate::apk::index::IndexEntry;
use crate::apk::read::{self, ReadError};
use crate::apk::sign::SigningKey;

/// Bytes fetched first from each package; almost every package's
/// signature and control members fit.
const PROBE: u64 = 64 << 10;
/// The most fetched when they do not (the control member's own cap plus
/// room for its compressed form and the signature).
const MAX_HEAD: u64 = read::MAX_CONTROL_MEMBER + (2 << 20);

/// One arch rebuilt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArchReport {
    pub arch: String,
    pub url: String,
    pub entries: usize,
    pub retries: u32,
    pub written: bool,
}

/// What `--reconcile` did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub dest: String,
    pub dry_run: bool,
    pub arches: Vec<ArchReport>,
    /// Packages left out of the index, and why.
    pub failed: Vec<Refusal>,
}

/// Rebuild the indexes of `arches` (every arch directory at `dest` when
/// empty).
pub async fn reconcile(
    dest: &Dest,
    arches: &[String],
    key: &SigningKey,
    dry_run: bool,
    jobs: usize,
    policy: &CasPolicy,
) -> Result<ReconcileSummary, PublishError> {
    let dest_err = |problem: String| PublishError::Dest {
        dest: dest.display().to_string(),
        problem,
    };
    let listed = dest
        .store()
        .list_with_delimiter(Some(dest.prefix()))
        .await
        .map_err(|e| dest_err(format!("cannot list (does the bucket exist?): {e}")))?;
    let arches: Vec<String> = if arches.is_empty() {
        let mut found: Vec<String> = listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|a| plain_arch(a))
            .collect();
        found.sort();
        found
    } else {
        arches.to_vec()
    };
    if arches.is_empty() {
        return Err(dest_err("no <arch>/ directories to reconcile".into()));
    }
    let mut summary = ReconcileSummary {
        dest: dest.display().to_string(),
        dry_run,
        ..Default::default()
    };
    for arch in &arches {
        let dir = dest.arch_dir(arch);
        let objects: Vec<ObjectMeta> = dest
            .store()
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|source| PublishError::Store {
                url: dest.url(&dir),
                what: "cannot list",
                source,
            })?
            .objects
            .into_iter()
            .filter(|m| {
                m.location
                    .filename()
                    .is_some_and(|f| f.ends_with(".apk") && !f.starts_with('.'))
            })
            .collect();
        let results: Vec<(String, Result<IndexEntry, String>)> = futures::stream::iter(objects)
            .map(|m| async move {
                let url = dest.url(&m.location);
                (url, record(dest, arch, &m, key).await)
            })
            .buffer_unordered(jobs.max(1))
            .collect()
            .await;
        let mut entries = Vec::new();
        for (url, r) in results {
            match r {
                Ok(e) => entries.push(e),
                Err(reason) => summary.failed.push(Refusal { url, reason }),
            }
        }
        let loc = dest.location(arch, "APKINDEX.tar.gz");
        let url = dest.url(&loc);
        if dry_run {
            summary.arches.push(ArchReport {
                arch: arch.clone(),
                url,
                entries: entries.len(),
                retries: 0,
                written: false,
            });
            continue;
        }
        let outcome = cas::merge_index(dest, arch, key, Change::Replace(&entries), policy).await?;
        summary.arches.push(ArchReport {
            arch: arch.clone(),
            url,
            entries: outcome.entries,
            retries: outcome.retries,
            written: outcome.written,
        });
    }
    summary.failed.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(summary)
}

/// The index record of one stored package, from its leading bytes.
async fn record(
    dest: &Dest,
    arch: &str,
    meta: &ObjectMeta,
    key: &SigningKey,
) -> Result<IndexEntry, String> {
    let file = meta.location.filename().unwrap_or_default().to_string();
    let mut want = PROBE.min(meta.size);
    let head = loop {
        let bytes = fetch(dest, &meta.location, want).await?;
        match read::read_head_bytes(&bytes) {
            Ok(h) => break h,
            Err(ReadError::Truncated(_)) if want < meta.size.min(MAX_HEAD) => {
                want = meta.size.min(MAX_HEAD);
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    signed_by(&head, key)?;
    let ctl = read::control_from_head(head, meta.size).map_err(|e| e.to_string())?;
    let entry =
        IndexEntry::from_control(std::path::Path::new(&file), ctl).map_err(|e| e.to_string())?;
    check_identity(&entry, &file, arch)?;
    Ok(entry)
}

async fn fetch(dest: &Dest, loc: &ObjPath, len: u64) -> Result<Vec<u8>, String> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let got = dest
        .store()
        .get_range(loc, 0..len)
        .await
        .map_err(|e| format!("cannot read: {e}"))?;
    Ok(got.to_vec())
}
