//! `pkgbuild publish`: put a local repository (as `build` writes it) into
//! object storage and merge its packages into the destination's signed
//! index, with no lock outside the store.
//!
//! Order is what keeps the store consistent. First every local package is
//! read and checked (signature by our key, file name, arch) and every
//! destination index is read and checked (signed by our key), so bad input
//! writes nothing. Then packages go up with create-only writes: a name
//! already there with the same bytes counts as published, one with other
//! bytes is refused, because apk cannot tell two builds of one
//! name-version apart. Only then is each arch's index merged by
//! compare-and-swap (`cas`), from records read off the very bytes that are
//! in the store; so the index never names a package the store lacks, and a
//! publisher killed at any point leaves a state a rerun completes.
//!
//! This module knows nothing of flags; `cli::publish` translates them.

pub mod cas;
pub mod dest;
pub mod reconcile;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::Serialize;

pub use cas::{CasPolicy, MergeOutcome};
pub use dest::Dest;

use crate::apk::index::IndexEntry;
use crate::apk::read::{self, Head};
use crate::apk::sign::{self, SigningKey};

/// Why a publish stopped. Every message starts with the URL or file it is
/// about.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{dest}: {problem}")]
    Dest { dest: String, problem: String },
    #[error("{url}: {what}: {source}")]
    Store {
        url: String,
        what: &'static str,
        source: object_store::Error,
    },
    #[error("{url}: {problem}")]
    BadIndex { url: String, problem: String },
    #[error("{}: {problem}", path.display())]
    Local { path: PathBuf, problem: String },
    #[error("{url}: still contended after {attempts} attempts; nothing of this index was lost, rerun to complete it")]
    Contention { url: String, attempts: u32 },
}

impl PublishError {
    /// Whether the user's input is at fault (exit code 2) rather than the
    /// store failing along the way.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            PublishError::Dest { .. } | PublishError::BadIndex { .. } | PublishError::Local { .. }
        )
    }
}

/// Check that `head` carries a signature by `key` that verifies.
pub fn signed_by(head: &Head, key: &SigningKey) -> Result<(), String> {
    if !head.signed {
        return Err("not signed".into());
    }
    let public = key.public_key();
    let mut others = Vec::new();
    for s in &head.signatures {
        if s.key_name == key.key_name() {
            if sign::verify(&public, s.alg, &head.member, &s.bytes) {
                return Ok(());
            }
            return Err(format!(
                "its signature by {} does not verify with our key",
                key.key_name()
            ));
        }
        others.push(s.key_name.clone());
    }
    others.extend(head.unknown_signatures.iter().cloned());
    Err(format!(
        "signed by {}, not by {} (the --signing-key)",
        if others.is_empty() {
            "no known key".to_string()
        } else {
            others.join(", ")
        },
        key.key_name()
    ))
}

/// What to publish.
pub struct PublishOptions<'a> {
    /// The local repository root (`<repo>/<arch>/*.apk`).
    pub repo: PathBuf,
    /// Architectures to publish; empty means every one in `repo`.
    pub arches: Vec<String>,
    pub key: &'a SigningKey,
    /// Check everything and report what would happen; write nothing.
    pub dry_run: bool,
    /// Packages in flight at once. Each is held whole in memory while it
    /// is uploaded (see `upload`), so this also bounds the memory used.
    pub jobs: usize,
    pub cas: CasPolicy,
    /// `(recipe name, input hash)` pairs recorded at the destination once
    /// every package is published and indexed (`pkgbuild plan`'s jobs skip
    /// a recipe whose recorded hash matches).
    pub inputs: Vec<(String, String)>,
}

/// Progress, as it happens.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Uploaded {
        url: &'a str,
        bytes: u64,
        done: usize,
        total: usize,
    },
    Present {
        url: &'a str,
        done: usize,
        total: usize,
    },
    Refused {
        url: &'a str,
        reason: &'a str,
    },
    /// About to merge an index (every upload of that arch has finished).
    Merging {
        url: &'a str,
        entries: usize,
    },
    Merged {
        url: &'a str,
        outcome: &'a MergeOutcome,
    },
}

/// A package not published, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    pub url: String,
    pub reason: String,
}

/// One arch's index after the publish.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IndexReport {
    pub arch: String,
    pub url: String,
    pub entries: usize,
    pub written: bool,
    pub retries: u32,
}

/// What a publish did (`--json` writes it).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub dest: String,
    pub dry_run: bool,
    /// URLs written by this run (or, dry, that would be).
    pub uploaded: Vec<String>,
    /// URLs already in the store with the same bytes.
    pub present: Vec<String>,
    pub refused: Vec<Refusal>,
    pub bytes_uploaded: u64,
    pub index_retries: u32,
    pub indexes: Vec<IndexReport>,
}

/// A local package, read and checked.
struct LocalPackage {
    path: PathBuf,
    file: String,
    entry: IndexEntry,
}

/// Architectures of a local repository: directories holding packages.
fn local_arches(repo: &Path) -> Result<Vec<String>, PublishError> {
    let local = |problem: String| PublishError::Local {
        path: repo.to_path_buf(),
        problem,
    };
    let mut arches = Vec::new();
    for e in std::fs::read_dir(repo).map_err(|e| local(format!("cannot list: {e}")))? {
        let e = e.map_err(|e| local(format!("cannot list: {e}")))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !plain_arch(&name) || !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let has_apk = std::fs::read_dir(e.path())
            .map(|d| {
                d.flatten()
                    .any(|f| f.file_name().to_string_lossy().ends_with(".apk"))
            })
            .unwrap_or(false);
        if has_apk {
            arches.push(name);
        }
    }
    arches.sort();
    if arches.is_empty() {
        return Err(local(
            "no <arch>/*.apk here: expected a repository as `build` writes it".into(),
        ));
    }
    Ok(arches)
}

/// An arch name apk can put in a URL path segment.
pub fn plain_arch(a: &str) -> bool {
    !a.is_empty() && a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// Read and check every package of `arch` (signature and control members
/// only: that is all an index record needs).
fn local_packages(
    repo: &Path,
    arch: &str,
    key: &SigningKey,
) -> Result<Vec<LocalPackage>, PublishError> {
    let dir = repo.join(arch);
    let local = |path: &Path, problem: String| PublishError::Local {
        path: path.to_path_buf(),
        problem,
    };
    let mut out = Vec::new();
    let listing = std::fs::read_dir(&dir).map_err(|e| local(&dir, format!("cannot list: {e}")))?;
    for e in listing {
        let e = e.map_err(|e| local(&dir, format!("cannot list: {e}")))?;
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.ends_with(".apk") || file.starts_with('.') {
            continue;
        }
        let path = e.path();
        // Never follow a symlink out of the repository.
        if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
            return Err(local(&path, "not a regular file".into()));
        }
        let (head, size) = read::read_head_file(&path).map_err(|e| local(&path, e.to_string()))?;
        signed_by(&head, key).map_err(|p| local(&path, p))?;
        let ctl = read::control_from_head(head, size).map_err(|e| local(&path, e.to_string()))?;
        let entry =
            IndexEntry::from_control(&path, ctl).map_err(|e| local(&path, e.to_string()))?;
        check_identity(&entry, &file, arch).map_err(|p| local(&path, p))?;
        out.push(LocalPackage { path, file, entry });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// apk fetches `<arch>/<name>-<version>.apk`: a record must match the
/// object it points at.
pub fn check_identity(entry: &IndexEntry, file: &str, arch: &str) -> Result<(), String> {
    let want = format!("{}-{}.apk", entry.info.name, entry.info.version);
    if file != want {
        return Err(format!(
            "holds {}-{}, so apk would fetch it as {want}",
            entry.info.name, entry.info.version
        ));
    }
    if entry.info.arch != arch && entry.info.arch != "noarch" {
        return Err(format!(
            "built for {}, not for {arch}",
            crate::term::quote(&entry.info.arch)
        ));
    }
    Ok(())
}

enum Outcome {
    Uploaded(u64),
    Present,
    Refused(String),
}

/// Create-only upload of one package; an object already there is compared
/// byte for byte.
///
/// The file is read whole: object_store's create-only put takes a
/// materialised payload (it signs and retries the body), and its
/// streaming multipart upload has no create-only mode. Memory stays
/// bounded because at most `PublishOptions::jobs` uploads run at once.
async fn upload(
    dest: &Dest,
    arch: &str,
    pkg: &LocalPackage,
    dry_run: bool,
) -> Result<Outcome, PublishError> {
    let loc = dest.location(arch, &pkg.file);
    let url = dest.url(&loc);
    let bytes = tokio::fs::read(&pkg.path)
        .await
        .map_err(|e| PublishError::Local {
            path: pkg.path.clone(),
            problem: format!("cannot read: {e}"),
        })?;
    // The record was read from the file earlier; a file changed since
    // would make the record lie about the object.
    if bytes.len() as u64 != pkg.entry.file_size {
        return Err(PublishError::Local {
            path: pkg.path.clone(),
            problem: "changed while publishing".into(),
        });
    }
    let size = bytes.len() as u64;
    let bytes = bytes::Bytes::from(bytes);
    if !dry_run {
        let put = dest
            .store()
            .put_opts(
                &loc,
                PutPayload::from(bytes.clone()),
                PutOptions::from(PutMode::Create),
            )
            .await;
        match put {
            Ok(_) => return Ok(Outcome::Uploaded(size)),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(source) => {
                return Err(PublishError::Store {
                    url,
                    what: "cannot upload",
                    source,
                })
            }
        }
    }
    let store_err = |source| PublishError::Store {
        url: url.clone(),
        what: "cannot read back",
        source,
    };
    let meta = match dest.store().head(&loc).await {
        Ok(m) => m,
        Err(object_store::Error::NotFound { .. }) if dry_run => return Ok(Outcome::Uploaded(size)),
        Err(e) => return Err(store_err(e)),
    };
    let same = meta.size == size && same_bytes(dest, &loc, &bytes).await.map_err(store_err)?;
    Ok(if same {
        Outcome::Present
    } else {
        Outcome::Refused(format!(
            "a different file is already published as {}-{}: a published name-version never changes (apk cannot tell the two apart); bump the epoch",
            pkg.entry.info.name, pkg.entry.info.version
        ))
    })
}

/// Whether the object at `loc` holds exactly `want`, compared as it
/// streams in, so a retried publish holds one copy of a package, not two.
async fn same_bytes(
    dest: &Dest,
    loc: &object_store::path::Path,
    want: &[u8],
) -> Result<bool, object_store::Error> {
    let mut stream = dest.store().get(loc).await?.into_stream();
    let mut at = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        let end = at + chunk.len();
        if end > want.len() || want[at..end] != chunk[..] {
            return Ok(false);
        }
        at = end;
    }
    Ok(at == want.len())
}

/// Publish `opts.repo` to `dest`. `progress` sees every step.
pub async fn publish(
    dest: &Dest,
    opts: &PublishOptions<'_>,
    progress: &(dyn Fn(Event<'_>) + Sync),
) -> Result<Summary, PublishError> {
    let arches = if opts.arches.is_empty() {
        local_arches(&opts.repo)?
    } else {
        for a in &opts.arches {
            if !plain_arch(a) {
                return Err(PublishError::Dest {
                    dest: dest.display().to_string(),
                    problem: format!(
                        "--arch {}: expected an architecture name such as x86_64",
                        crate::term::quote(a)
                    ),
                });
            }
        }
        opts.arches.clone()
    };
    // Everything that can be wrong with the input is found before a write.
    let mut plan = Vec::new();
    for arch in &arches {
        plan.push((arch.clone(), local_packages(&opts.repo, arch, opts.key)?));
    }
    preflight(dest, &arches, opts.key).await?;

    let mut summary = Summary {
        dest: dest.display().to_string(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let total: usize = plan.iter().map(|(_, p)| p.len()).sum();
    let done = &AtomicUsize::new(0);
    for (arch, packages) in &plan {
        let results: Vec<_> = futures::stream::iter(packages.iter())
            .map(|pkg| async move {
                let r = upload(dest, arch, pkg, opts.dry_run).await;
                let url = dest.url(&dest.location(arch, &pkg.file));
                if let Ok(o) = &r {
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    match o {
                        Outcome::Uploaded(bytes) => progress(Event::Uploaded {
                            url: &url,
                            bytes: *bytes,
                            done: n,
                            total,
                        }),
                        Outcome::Present => progress(Event::Present {
                            url: &url,
                            done: n,
                            total,
                        }),
                        Outcome::Refused(reason) => progress(Event::Refused { url: &url, reason }),
                    }
                }
                (pkg, url, r)
            })
            .buffer_unordered(opts.jobs.max(1))
            .collect()
            .await;
        let mut first_error = None;
        let mut publishable = Vec::new();
        for (pkg, url, r) in results {
            match r {
                Ok(Outcome::Uploaded(bytes)) => {
                    summary.uploaded.push(url);
                    summary.bytes_uploaded += bytes;
                    publishable.push(pkg.entry.clone());
                }
                Ok(Outcome::Present) => {
                    summary.present.push(url);
                    publishable.push(pkg.entry.clone());
                }
                Ok(Outcome::Refused(reason)) => summary.refused.push(Refusal { url, reason }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Packages that did reach the store are still indexed below only
        // when every upload of this arch went through; a rerun indexes
        // them otherwise, finding them present.
        if let Some(e) = first_error {
            return Err(e);
        }
        let loc = dest.location(arch, "APKINDEX.tar.gz");
        let url = dest.url(&loc);
        if opts.dry_run {
            let current = cas::read_index(dest, &loc, Some(opts.key)).await?;
            let entries = current.map(|c| c.index.entries.len()).unwrap_or(0);
            summary.indexes.push(IndexReport {
                arch: arch.clone(),
                url,
                entries,
                written: false,
                retries: 0,
            });
            continue;
        }
        progress(Event::Merging {
            url: &url,
            entries: publishable.len(),
        });
        let outcome = cas::merge_index(
            dest,
            arch,
            opts.key,
            cas::Change::Add(&publishable),
            &opts.cas,
        )
        .await?;
        progress(Event::Merged {
            url: &url,
            outcome: &outcome,
        });
        summary.index_retries += outcome.retries;
        summary.indexes.push(IndexReport {
            arch: arch.clone(),
            url,
            entries: outcome.entries,
            written: outcome.written,
            retries: outcome.retries,
        });
    }
    summary.uploaded.sort();
    summary.present.sort();
    summary.refused.sort_by(|a, b| a.url.cmp(&b.url));
    // A recipe with a refused package is not published as built.
    if !opts.dry_run && summary.refused.is_empty() {
        for (arch, packages) in &plan {
            for (name, hash) in &opts.inputs {
                record_input(dest, arch, name, hash).await?;
            }
            // What `build` recorded beside the packages it wrote travels
            // with them, so `build --skip-published` works after a plain
            // `build` + `publish`; a hash given on the command line wins.
            for (name, hash) in carried_inputs(&opts.repo, arch, packages, &opts.inputs) {
                record_input(dest, arch, &name, &hash).await?;
            }
        }
    }
    Ok(summary)
}

/// The directory, beside an arch's packages, that records the input hash
/// of each recipe built or published there (one file per recipe, named
/// after its main package, holding `sha256:<hex>` and a newline). apk
/// never reads it; `build` writes it locally, `publish --input-hash` at
/// the destination.
pub const INPUTS_DIR: &str = ".pkgbuild-inputs";

/// Largest input record read back; a real one is 72 bytes.
const MAX_INPUT_RECORD: u64 = 1024;

/// Where the input hash of recipe `name` is recorded for `arch`: beside
/// the packages, in a directory apk never reads.
fn input_location(dest: &Dest, arch: &str, name: &str) -> object_store::path::Path {
    dest.arch_dir(arch).join(INPUTS_DIR).join(name)
}

/// A local repository's input record of recipe `name` for `arch`.
pub fn local_input_path(repo: &Path, arch: &str, name: &str) -> PathBuf {
    repo.join(arch).join(INPUTS_DIR).join(name)
}

/// The hash recorded in a local repository, if any. A record that is not
/// a regular file, too large, or not `sha256:<hex>` counts as none.
pub fn read_local_input(repo: &Path, arch: &str, name: &str) -> Option<String> {
    let path = local_input_path(repo, arch, name);
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_INPUT_RECORD {
        return None;
    }
    parse_record(&std::fs::read(&path).ok()?)
}

/// The local input records of the recipes whose packages are among
/// `packages` (a record is named after its recipe's main package), less
/// those named in `given`.
fn carried_inputs(
    repo: &Path,
    arch: &str,
    packages: &[LocalPackage],
    given: &[(String, String)],
) -> Vec<(String, String)> {
    let mut names: Vec<&str> = packages
        .iter()
        .map(|p| p.entry.info.name.as_str())
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|n| !given.iter().any(|(g, _)| g == n))
        .filter_map(|n| Some((n.to_string(), read_local_input(repo, arch, n)?)))
        .collect()
}

/// Record `hash` for recipe `name` in a local repository (atomically).
pub fn write_local_input(repo: &Path, arch: &str, name: &str, hash: &str) -> std::io::Result<()> {
    let path = local_input_path(repo, arch, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write(&path, 0o644, format!("{hash}\n").as_bytes())
}

fn parse_record(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let hex = text.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit())).then(|| text.to_string())
}

/// Check an input record's parts: a recipe name and `sha256:<hex>`.
pub fn parse_input(value: &str) -> Result<(String, String), String> {
    let (name, hash) = value
        .split_once('=')
        .ok_or_else(|| format!("{}: expected NAME=sha256:HEX", crate::term::quote(value)))?;
    let name_ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'));
    let hex = hash.strip_prefix("sha256:").unwrap_or("");
    let hash_ok = hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit());
    if !name_ok || !hash_ok {
        return Err(format!(
            "{}: expected NAME=sha256:HEX (a package name and 64 hex digits)",
            crate::term::quote(value)
        ));
    }
    Ok((name.to_string(), hash.to_string()))
}

async fn record_input(dest: &Dest, arch: &str, name: &str, hash: &str) -> Result<(), PublishError> {
    let loc = input_location(dest, arch, name);
    dest.store()
        .put_opts(
            &loc,
            PutPayload::from(format!("{hash}\n").into_bytes()),
            PutOptions::from(PutMode::Overwrite),
        )
        .await
        .map_err(|source| PublishError::Store {
            url: dest.url(&loc),
            what: "cannot record the input hash",
            source,
        })?;
    Ok(())
}

/// Whether recipe `name` was published for `arch` from inputs hashing to
/// `hash`.
pub async fn check_input(
    dest: &Dest,
    arch: &str,
    name: &str,
    hash: &str,
) -> Result<bool, PublishError> {
    Ok(recorded_input(dest, arch, name).await?.as_deref() == Some(hash))
}

/// The input hash recorded at `dest` for recipe `name` and `arch`; `None`
/// when there is no record (or none that parses).
pub async fn recorded_input(
    dest: &Dest,
    arch: &str,
    name: &str,
) -> Result<Option<String>, PublishError> {
    let loc = input_location(dest, arch, name);
    let store_err = |source| PublishError::Store {
        url: dest.url(&loc),
        what: "cannot read the input hash",
        source,
    };
    match dest.store().get(&loc).await {
        Ok(g) => {
            if g.meta.size > MAX_INPUT_RECORD {
                return Ok(None);
            }
            let bytes = g.bytes().await.map_err(store_err)?;
            Ok(parse_record(&bytes))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(e)),
    }
}

/// Whether every one of `files` is in `arch`'s directory at `dest`.
pub async fn all_present(dest: &Dest, arch: &str, files: &[String]) -> Result<bool, PublishError> {
    for f in files {
        let loc = dest.location(arch, f);
        match dest.store().head(&loc).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(source) => {
                return Err(PublishError::Store {
                    url: dest.url(&loc),
                    what: "cannot look up",
                    source,
                })
            }
        }
    }
    Ok(true)
}

/// The destination answers, and every index there is ours to extend.
async fn preflight(dest: &Dest, arches: &[String], key: &SigningKey) -> Result<(), PublishError> {
    let listed = dest.store().list_with_delimiter(Some(dest.prefix())).await;
    if let Err(source) = listed {
        return Err(PublishError::Dest {
            dest: dest.display().to_string(),
            problem: format!("cannot list (is the endpoint reachable, does the bucket exist, do the credentials reach it?): {source}"),
        });
    }
    for arch in arches {
        let loc = dest.location(arch, "APKINDEX.tar.gz");
        cas::read_index(dest, &loc, Some(key))
            .await
            .map_err(|e| match e {
                PublishError::BadIndex { url, problem } => PublishError::BadIndex {
                    url,
                    problem: format!("{problem}; refusing to extend it (publish with the key that signed it, or `publish --reconcile` to re-sign it with this one)"),
                },
                other => other,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
