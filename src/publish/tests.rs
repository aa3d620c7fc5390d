//! Publishing against the in-memory store (and a directory), with a
//! wrapper store that lets another "publisher" write the index between
//! our read and our conditional write.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::cas::{self, CasPolicy, Change};
use super::*;
use crate::apk::index::{Index, IndexEntry};
use crate::apk::package::{write_package, PackageSpec, SignOptions};
use crate::apk::pkginfo::PkgInfo;
use crate::apk::sign::SigningKey;

fn key(name: &str) -> SigningKey {
    let k = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
    SigningKey::from_key(k, format!("{name}.rsa.pub"))
}

fn quick() -> CasPolicy {
    CasPolicy {
        max_attempts: 40,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn record(name: &str) -> IndexEntry {
    IndexEntry {
        info: PkgInfo {
            name: name.into(),
            version: "1.0-r0".into(),
            arch: "x86_64".into(),
            size: 1,
            ..Default::default()
        },
        control_sha1: [3; 20],
        file_size: 10,
    }
}

/// Writes `<repo>/x86_64/<name>-<version>.apk`, signed by `key`.
fn package(repo: &Path, name: &str, version: &str, payload: &str, key: &SigningKey) -> PathBuf {
    let staged = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(staged.path().join("usr/share")).unwrap();
    std::fs::write(staged.path().join("usr/share").join(name), payload).unwrap();
    let spec = PackageSpec {
        root: staged.path().to_path_buf(),
        info: PkgInfo {
            name: name.into(),
            version: version.into(),
            arch: "x86_64".into(),
            description: "test".into(),
            license: "MIT".into(),
            ..Default::default()
        },
        mtime: 1_700_000_000,
        ..Default::default()
    };
    let dir = repo.join("x86_64");
    std::fs::create_dir_all(&dir).unwrap();
    let sign = SignOptions {
        key: Some(key),
        legacy_sha1: false,
    };
    write_package(&spec, &sign, &dir).unwrap().path
}

/// A store whose conditional index writes lose, `conflicts` times, to a
/// competing publisher adding `competitor-N`.
#[derive(Debug)]
struct Contended {
    inner: Arc<InMemory>,
    key: Arc<SigningKey>,
    conflicts: u32,
    injected: AtomicU32,
}

impl fmt::Display for Contended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Contended({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Contended {
    async fn put_opts(
        &self,
        location: &ObjPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let conditional_index = location.as_ref().ends_with("APKINDEX.tar.gz")
            && matches!(opts.mode, PutMode::Update(_) | PutMode::Create);
        if conditional_index {
            let n = self.injected.load(Ordering::SeqCst);
            if n < self.conflicts {
                self.injected.store(n + 1, Ordering::SeqCst);
                // The competitor goes straight to the real store.
                let other = Dest::from_store(self.inner.clone(), "repo", "mem://repo").unwrap();
                let theirs = [record(&format!("competitor-{n}"))];
                cas::merge_index(&other, "x86_64", &self.key, Change::Add(&theirs), &quick())
                    .await
                    .unwrap();
            }
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjPath,
        to: &ObjPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn contended(conflicts: u32, key: &Arc<SigningKey>) -> (Arc<InMemory>, Dest, Arc<Contended>) {
    let inner = Arc::new(InMemory::new());
    let store = Arc::new(Contended {
        inner: inner.clone(),
        key: key.clone(),
        conflicts,
        injected: AtomicU32::new(0),
    });
    let dest = Dest::from_store(store.clone(), "repo", "mem://repo").unwrap();
    (inner, dest, store)
}

async fn names_in(dest: &Dest, key: &SigningKey) -> Vec<String> {
    let loc = dest.location("x86_64", "APKINDEX.tar.gz");
    let cur = cas::read_index(dest, &loc, Some(key))
        .await
        .unwrap()
        .unwrap();
    let mut names: Vec<String> = cur
        .index
        .entries
        .iter()
        .map(|e| e.info.name.clone())
        .collect();
    names.sort();
    names
}

#[test]
fn cas_retries_after_each_conflict_and_keeps_the_competitors_entries() {
    let key = Arc::new(key("test"));
    let (inner, dest, store) = contended(3, &key);
    rt().block_on(async {
        let ours = [record("ours-a"), record("ours-b")];
        let out = cas::merge_index(&dest, "x86_64", &key, Change::Add(&ours), &quick())
            .await
            .unwrap();
        assert_eq!(out.retries, 3);
        assert!(out.written);
        assert_eq!(out.entries, 5);
        assert_eq!(store.injected.load(Ordering::SeqCst), 3);
        let plain = Dest::from_store(inner, "repo", "mem://repo").unwrap();
        assert_eq!(
            names_in(&plain, &key).await,
            [
                "competitor-0",
                "competitor-1",
                "competitor-2",
                "ours-a",
                "ours-b"
            ]
        );
    });
}

#[test]
fn cas_gives_up_after_its_bounded_attempts_naming_the_index() {
    let key = Arc::new(key("test"));
    let (inner, dest, _) = contended(u32::MAX, &key);
    let policy = CasPolicy {
        max_attempts: 4,
        ..quick()
    };
    rt().block_on(async {
        let ours = [record("ours")];
        let err = cas::merge_index(&dest, "x86_64", &key, Change::Add(&ours), &policy)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("mem://repo/x86_64/APKINDEX.tar.gz: still contended after 4 attempts"),
            "{msg}"
        );
        // Every competitor's entry is there; ours never landed.
        let plain = Dest::from_store(inner, "repo", "mem://repo").unwrap();
        let names = names_in(&plain, &key).await;
        assert_eq!(names.len(), 4);
        assert!(!names.contains(&"ours".to_string()));
    });
}

#[test]
fn cas_does_not_rewrite_an_index_that_already_holds_everything() {
    let key = key("test");
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "p", "mem://p").unwrap();
    rt().block_on(async {
        let ours = [record("a")];
        let first = cas::merge_index(&dest, "x86_64", &key, Change::Add(&ours), &quick())
            .await
            .unwrap();
        assert!(first.written);
        let loc = dest.location("x86_64", "APKINDEX.tar.gz");
        let before = store.head(&loc).await.unwrap().e_tag;
        let again = cas::merge_index(&dest, "x86_64", &key, Change::Add(&ours), &quick())
            .await
            .unwrap();
        assert!(!again.written);
        assert_eq!(store.head(&loc).await.unwrap().e_tag, before);
    });
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    key: SigningKey,
}

fn fixture(names: &[&str]) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let key = key("test");
    for n in names {
        package(&repo, n, "1.0-r0", n, &key);
    }
    Fixture {
        _tmp: tmp,
        repo,
        key,
    }
}

fn opts(f: &Fixture) -> PublishOptions<'_> {
    PublishOptions {
        repo: f.repo.clone(),
        arches: Vec::new(),
        key: &f.key,
        dry_run: false,
        jobs: 4,
        cas: quick(),
        inputs: Vec::new(),
    }
}

async fn objects(store: &InMemory) -> Vec<(String, Option<String>)> {
    use futures::TryStreamExt;
    let mut all: Vec<_> = store
        .list(None)
        .map_ok(|m| (m.location.to_string(), m.e_tag))
        .try_collect()
        .await
        .unwrap();
    all.sort();
    all
}

#[test]
fn publish_uploads_indexes_and_a_rerun_changes_nothing() {
    let f = fixture(&["alpha", "beta", "gamma"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    rt().block_on(async {
        let s = publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        assert_eq!(s.uploaded.len(), 3, "{s:?}");
        assert!(s.uploaded[0].starts_with("mem://main/x86_64/alpha-1.0-r0.apk"));
        assert!(s.bytes_uploaded > 0);
        assert_eq!(s.indexes[0].entries, 3);
        assert!(s.indexes[0].written);
        assert_eq!(names_in(&dest, &f.key).await, ["alpha", "beta", "gamma"]);
        // Each record matches the stored object's size and control checksum.
        let loc = dest.location("x86_64", "APKINDEX.tar.gz");
        let idx = cas::read_index(&dest, &loc, Some(&f.key))
            .await
            .unwrap()
            .unwrap();
        for e in &idx.index.entries {
            let local = IndexEntry::from_package(
                &f.repo
                    .join("x86_64")
                    .join(format!("{}-1.0-r0.apk", e.info.name)),
            )
            .unwrap();
            assert_eq!(e.control_sha1, local.control_sha1);
            let obj = dest.location("x86_64", &format!("{}-1.0-r0.apk", e.info.name));
            assert_eq!(store.head(&obj).await.unwrap().size, e.file_size);
        }

        let before = objects(&store).await;
        let again = publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        assert!(again.uploaded.is_empty());
        assert_eq!(again.present.len(), 3);
        assert_eq!(again.bytes_uploaded, 0);
        assert!(!again.indexes[0].written);
        assert_eq!(objects(&store).await, before);
    });
}

#[test]
fn a_different_file_under_a_published_name_is_refused_and_the_store_is_unchanged() {
    let f = fixture(&["alpha"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    rt().block_on(async {
        publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        let before = objects(&store).await;
        // Rebuild alpha-1.0-r0 with other content, add a new package.
        package(&f.repo, "alpha", "1.0-r0", "changed", &f.key);
        package(&f.repo, "delta", "1.0-r0", "delta", &f.key);
        let s = publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        assert_eq!(s.refused.len(), 1, "{s:?}");
        assert_eq!(s.refused[0].url, "mem://main/x86_64/alpha-1.0-r0.apk");
        assert!(s.refused[0].reason.contains("bump the epoch"));
        assert_eq!(s.uploaded, ["mem://main/x86_64/delta-1.0-r0.apk"]);
        let after = objects(&store).await;
        let alpha = |v: &Vec<(String, Option<String>)>| {
            v.iter()
                .find(|(p, _)| p.ends_with("alpha-1.0-r0.apk"))
                .cloned()
        };
        assert_eq!(alpha(&after), alpha(&before));
        assert_eq!(names_in(&dest, &f.key).await, ["alpha", "delta"]);
    });
}

#[test]
fn an_index_signed_by_another_key_is_refused_before_anything_is_written() {
    let f = fixture(&["alpha"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    let stranger = key("stranger");
    rt().block_on(async {
        let theirs = [record("theirs")];
        cas::merge_index(&dest, "x86_64", &stranger, Change::Add(&theirs), &quick())
            .await
            .unwrap();
        let before = objects(&store).await;
        let err = publish(&dest, &opts(&f), &|_| {}).await.unwrap_err();
        let msg = err.to_string();
        assert!(err.is_input());
        assert!(msg.starts_with("mem://main/x86_64/APKINDEX.tar.gz: signed by stranger.rsa.pub, not by test.rsa.pub"), "{msg}");
        assert_eq!(objects(&store).await, before);
    });
}

#[test]
fn a_package_not_signed_by_the_key_is_refused_before_anything_is_written() {
    let f = fixture(&["alpha"]);
    package(&f.repo, "beta", "1.0-r0", "b", &key("other"));
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    rt().block_on(async {
        let msg = publish(&dest, &opts(&f), &|_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("beta-1.0-r0.apk: signed by other.rsa.pub"),
            "{msg}"
        );
        assert!(objects(&store).await.is_empty());
    });
}

#[test]
fn dry_run_reports_and_writes_nothing() {
    let f = fixture(&["alpha", "beta"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    rt().block_on(async {
        let mut o = opts(&f);
        o.dry_run = true;
        let s = publish(&dest, &o, &|_| {}).await.unwrap();
        assert_eq!(s.uploaded.len(), 2);
        assert!(objects(&store).await.is_empty());
    });
}

#[test]
fn reconcile_rebuilds_a_deleted_index_and_reports_strangers() {
    let f = fixture(&["alpha", "beta"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    rt().block_on(async {
        publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        let index = dest.location("x86_64", "APKINDEX.tar.gz");
        store.delete(&index).await.unwrap();
        // Someone drops in a package signed by another key, and a copy of
        // a good package under a name apk would not fetch it by.
        let other = tempfile::tempdir().unwrap();
        let stray = package(other.path(), "stray", "1.0-r0", "s", &key("other"));
        let bytes = std::fs::read(&stray).unwrap();
        store
            .put(&dest.location("x86_64", "stray-1.0-r0.apk"), bytes.into())
            .await
            .unwrap();
        let alpha = store
            .get(&dest.location("x86_64", "alpha-1.0-r0.apk"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store
            .put(&dest.location("x86_64", "renamed-1.0-r0.apk"), alpha.into())
            .await
            .unwrap();

        let s = reconcile::reconcile(&dest, &[], &f.key, false, 4, &quick())
            .await
            .unwrap();
        assert_eq!(s.arches.len(), 1);
        assert_eq!(s.arches[0].entries, 2);
        let failed: Vec<&str> = s.failed.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            failed,
            [
                "mem://main/x86_64/renamed-1.0-r0.apk",
                "mem://main/x86_64/stray-1.0-r0.apk"
            ]
        );
        assert!(s.failed[1].reason.contains("signed by other.rsa.pub"));
        assert_eq!(names_in(&dest, &f.key).await, ["alpha", "beta"]);
    });
}

#[test]
fn reconcile_re_signs_an_index_signed_by_another_key() {
    let f = fixture(&["alpha"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    let stranger = key("stranger");
    rt().block_on(async {
        publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        let theirs = [record("ghost")];
        cas::merge_index(
            &dest,
            "x86_64",
            &stranger,
            Change::Replace(&theirs),
            &quick(),
        )
        .await
        .unwrap();
        reconcile::reconcile(&dest, &[], &f.key, false, 2, &quick())
            .await
            .unwrap();
        assert_eq!(names_in(&dest, &f.key).await, ["alpha"]);
    });
}

#[test]
fn a_directory_destination_publishes_under_the_repository_lock() {
    let f = fixture(&["alpha", "beta"]);
    let out = tempfile::tempdir().unwrap();
    let dest = Dest::local(out.path(), &out.path().display().to_string()).unwrap();
    rt().block_on(async {
        let s = publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        assert_eq!(s.uploaded.len(), 2);
        package(&f.repo, "gamma", "1.0-r0", "g", &f.key);
        let s = publish(&dest, &opts(&f), &|_| {}).await.unwrap();
        assert_eq!((s.uploaded.len(), s.present.len()), (1, 2));
    });
    let index = Index::read(&out.path().join("x86_64/APKINDEX.tar.gz")).unwrap();
    assert_eq!(index.entries.len(), 3);
    let keys = tempfile::tempdir().unwrap();
    let pem = rsa::pkcs8::EncodePublicKey::to_public_key_pem(
        &f.key.public_key(),
        rsa::pkcs8::LineEnding::LF,
    )
    .unwrap();
    std::fs::write(keys.path().join("test.rsa.pub"), pem).unwrap();
    for file in ["APKINDEX.tar.gz", "alpha-1.0-r0.apk", "gamma-1.0-r0.apk"] {
        crate::apk::verify::verify_file(&out.path().join("x86_64").join(file), keys.path())
            .unwrap();
    }
}

#[test]
fn input_hashes_are_recorded_only_after_a_complete_publish() {
    let f = fixture(&["alpha"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    let h1 = format!("sha256:{}", "1".repeat(64));
    let h2 = format!("sha256:{}", "2".repeat(64));
    rt().block_on(async {
        assert!(!check_input(&dest, "x86_64", "alpha", &h1).await.unwrap());
        let mut o = opts(&f);
        o.inputs = vec![("alpha".into(), h1.clone())];
        publish(&dest, &o, &|_| {}).await.unwrap();
        assert!(check_input(&dest, "x86_64", "alpha", &h1).await.unwrap());
        assert!(!check_input(&dest, "x86_64", "alpha", &h2).await.unwrap());
        // A refused package leaves the old record alone.
        package(&f.repo, "alpha", "1.0-r0", "changed", &f.key);
        o.inputs = vec![("alpha".into(), h2.clone())];
        let s = publish(&dest, &o, &|_| {}).await.unwrap();
        assert_eq!(s.refused.len(), 1);
        assert!(check_input(&dest, "x86_64", "alpha", &h1).await.unwrap());
        // apk never sees the record: the index is unchanged by it.
        assert_eq!(names_in(&dest, &f.key).await, ["alpha"]);
    });
    assert!(parse_input(&format!("alpha={h1}")).is_ok());
    for bad in [
        "alpha",
        "=sha256:00",
        ".x=sha256:00",
        "a/b=x",
        "a=sha256:zz",
    ] {
        assert!(parse_input(bad).is_err(), "{bad}");
    }
}

#[test]
fn input_records_written_by_build_travel_with_their_packages() {
    let f = fixture(&["alpha", "beta"]);
    let store = Arc::new(InMemory::new());
    let dest = Dest::from_store(store.clone(), "main", "mem://main").unwrap();
    let recorded = format!("sha256:{}", "a".repeat(64));
    let given = format!("sha256:{}", "b".repeat(64));
    write_local_input(&f.repo, "x86_64", "alpha", &recorded).unwrap();
    write_local_input(&f.repo, "x86_64", "beta", &recorded).unwrap();
    // A record of a recipe whose packages are not in the repository.
    write_local_input(&f.repo, "x86_64", "gone", &recorded).unwrap();
    rt().block_on(async {
        let mut o = opts(&f);
        o.inputs = vec![("beta".into(), given.clone())];
        publish(&dest, &o, &|_| {}).await.unwrap();
        assert!(check_input(&dest, "x86_64", "alpha", &recorded)
            .await
            .unwrap());
        assert!(check_input(&dest, "x86_64", "beta", &given).await.unwrap());
        assert_eq!(recorded_input(&dest, "x86_64", "gone").await.unwrap(), None);
    });
}
