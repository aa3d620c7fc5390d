//! The repository client (`pkgbuild::upstream`) against a repository served
//! over HTTP on 127.0.0.1 by a small std-only server started here (files
//! from a temp dir, ETag/If-None-Match → 304, a 302 redirect prefix, 404),
//! plus plain-directory and `file://` repositories. The repository is the
//! shared apk-tools-accepted one; other indexes are written by the real
//! binary (`pkgbuild index`, `pkgbuild keygen`).

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pkgbuild::apk::index::IndexEntry;
use pkgbuild::upstream::{
    load_keyring, Client, ClientOptions, RepoSpec, TrustedKey, UpstreamError,
};
use util::http::{Hit, Server};
use util::testdata::{accepted_repo, hello_apk, keys_dir};
use util::{members, test_key};

const ARCH: &str = "x86_64";
const KEY: &str = "test-5f3a.rsa.pub";

/// `<root>/good/x86_64/` = the shared signed repository.
fn good_repo(root: &Path) -> PathBuf {
    let dir = root.join("good").join(ARCH);
    fs::create_dir_all(&dir).unwrap();
    for e in fs::read_dir(accepted_repo()).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    root.join("good")
}

fn trusted() -> Vec<TrustedKey> {
    vec![TrustedKey::from_file(&keys_dir().join(KEY)).unwrap()]
}

fn client(cache: &Path, offline: bool) -> Client {
    Client::new(ClientOptions {
        cache_dir: cache.to_path_buf(),
        offline,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn spec(s: &str) -> RepoSpec {
    RepoSpec::parse(s).unwrap()
}

fn hello(entries: &[IndexEntry]) -> &IndexEntry {
    entries
        .iter()
        .find(|e| e.info.name == "hello")
        .expect("hello in the index")
}

fn cached_packages(cache: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(cache.join("packages"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn pkgbuild(args: &[&std::ffi::OsStr]) {
    let out = util::pkgbuild(args);
    assert!(out.status.success(), "{}", util::show(&out));
}

/// `<root>/<name>/x86_64/` holding hello and an index written by the real
/// binary, signed with `key` (unsigned when None).
fn repo_indexed_by(root: &Path, name: &str, key: Option<&Path>) -> PathBuf {
    let dir = root.join(name).join(ARCH);
    fs::create_dir_all(&dir).unwrap();
    let apk = dir.join("hello-1.0-r0.apk");
    fs::copy(hello_apk(), &apk).unwrap();
    let index = dir.join("APKINDEX.tar.gz");
    let mut args: Vec<&std::ffi::OsStr> = vec!["index".as_ref(), "-o".as_ref(), index.as_ref()];
    if let Some(k) = key {
        args.extend(["--signing-key".as_ref(), k.as_os_str()]);
    }
    args.push(apk.as_ref());
    pkgbuild(&args);
    root.join(name)
}

#[test]
fn a_signed_index_is_accepted_and_a_package_is_downloaded_once_then_served_from_cache() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let cache = tmp.path().join("cache");
    let repo = spec(&server.url("good/"));
    assert_eq!(repo.url, server.url("good"), "no trailing slash");

    let c = client(&cache, false);
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    assert_eq!(idx.signer, KEY);
    assert_eq!(idx.repo, repo);
    let entry = hello(&idx.entries).clone();
    let path = c.package(&repo, ARCH, &entry).unwrap();
    assert_eq!(c.downloads(), 1);
    assert!(path.starts_with(&cache), "{}", path.display());
    assert_eq!(fs::read(&path).unwrap(), fs::read(hello_apk()).unwrap());
    let hex: String = entry
        .control_sha1
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(cached_packages(&cache), vec![format!("{hex}.apk")]);

    // A second build (a new client on the same cache) downloads nothing.
    let again = client(&cache, false);
    let idx2 = again.index(&repo, ARCH, &trusted()).unwrap();
    assert_eq!(
        again.package(&repo, ARCH, hello(&idx2.entries)).unwrap(),
        path
    );
    assert_eq!(again.downloads(), 0);
    assert_eq!(server.count(".apk"), 1, "{:?}", server.hits());
}

#[test]
fn a_cached_index_is_revalidated_with_its_etag_and_a_304_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let c = client(&tmp.path().join("cache"), false);
    let repo = spec(&server.url("good"));
    let first = c.index(&repo, ARCH, &trusted()).unwrap();
    let second = c.index(&repo, ARCH, &trusted()).unwrap();
    assert_eq!(first.entries, second.entries);
    let idx: Vec<Hit> = server
        .hits()
        .into_iter()
        .filter(|h| h.path.ends_with("APKINDEX.tar.gz"))
        .collect();
    assert_eq!(idx.len(), 2, "{idx:?}");
    assert_eq!((idx[0].status, idx[0].conditional), (200, false));
    assert_eq!((idx[1].status, idx[1].conditional), (304, true));

    // A changed index on the server is fetched again in full.
    let index = tmp.path().join("good").join(ARCH).join("APKINDEX.tar.gz");
    repo_indexed_by(
        tmp.path(),
        "tmpidx",
        Some(&keys_dir().join("test-5f3a.rsa")),
    );
    fs::copy(
        tmp.path().join("tmpidx").join(ARCH).join("APKINDEX.tar.gz"),
        &index,
    )
    .unwrap();
    c.index(&repo, ARCH, &trusted()).unwrap();
    let last = server.hits().last().cloned().unwrap();
    assert_eq!((last.status, last.conditional), (200, true), "{last:?}");
}

#[test]
fn unsigned_unknown_key_and_tampered_indexes_are_refused_naming_url_signers_and_keys_tried() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    repo_indexed_by(tmp.path(), "unsigned", None);
    repo_indexed_by(tmp.path(), "other", Some(test_key()));
    // Flip a byte of the index member's gzip MTIME: still a valid gzip
    // member, but not the bytes that were signed.
    let tampered = tmp.path().join("tampered").join(ARCH);
    fs::create_dir_all(&tampered).unwrap();
    let mut parts = members(&fs::read(accepted_repo().join("APKINDEX.tar.gz")).unwrap());
    assert_eq!(parts.len(), 2);
    parts[1][4] ^= 0x01;
    fs::write(tampered.join("APKINDEX.tar.gz"), parts.concat()).unwrap();
    // And one whose compressed data is damaged.
    let corrupt = tmp.path().join("corrupt").join(ARCH);
    fs::create_dir_all(&corrupt).unwrap();
    let mut bytes = fs::read(accepted_repo().join("APKINDEX.tar.gz")).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0xff;
    fs::write(corrupt.join("APKINDEX.tar.gz"), bytes).unwrap();

    let server = Server::start(tmp.path());
    let cache = tmp.path().join("cache");
    let c = client(&cache, false);
    let err = |name: &str| {
        let repo = spec(&server.url(name));
        let e = c.index(&repo, ARCH, &trusted()).unwrap_err();
        let url = repo.index_url(ARCH);
        let msg = e.to_string();
        assert!(msg.contains(&url), "{name}: {msg}");
        (e, msg)
    };

    let (e, msg) = err("unsigned");
    assert!(matches!(e, UpstreamError::Unsigned { .. }), "{e:?}");
    assert!(
        msg.contains("UNTRUSTED") && msg.contains("not signed") && msg.contains(KEY),
        "{msg}"
    );

    let (e, msg) = err("other");
    assert!(matches!(e, UpstreamError::Untrusted { .. }), "{e:?}");
    assert!(
        msg.contains("UNTRUSTED")
            && msg.contains("signed by test-build.rsa.pub")
            && msg.contains(&format!("tried: {KEY}")),
        "{msg}"
    );

    let (e, msg) = err("tampered");
    assert!(matches!(e, UpstreamError::BadSignature { .. }), "{e:?}");
    assert!(
        msg.contains("BAD signature") && msg.contains(&format!(".SIGN.RSA256.{KEY}")),
        "{msg}"
    );

    let (e, _) = err("corrupt");
    assert!(matches!(e, UpstreamError::Index { .. }), "{e:?}");

    let (e, msg) = err("missing");
    assert!(
        matches!(e, UpstreamError::HttpStatus { status: 404, .. }) && msg.contains("404"),
        "{msg}"
    );

    // None of them was stored: offline, each is a cold miss.
    let off = client(&cache, true);
    for name in ["unsigned", "other", "tampered", "corrupt"] {
        let e = off
            .index(&spec(&server.url(name)), ARCH, &trusted())
            .unwrap_err();
        assert!(matches!(e, UpstreamError::Offline { .. }), "{name}: {e}");
    }
    // With the signer's key, the other index is trusted.
    let mut keys = trusted();
    keys.push(
        TrustedKey::from_file(&PathBuf::from(format!("{}.pub", test_key().display()))).unwrap(),
    );
    let idx = c.index(&spec(&server.url("other")), ARCH, &keys).unwrap();
    assert_eq!(idx.signer, "test-build.rsa.pub");
}

#[test]
fn a_package_that_differs_from_its_record_is_refused_and_never_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let root = good_repo(tmp.path());
    // Same size, one byte of the data member flipped.
    let apk = root.join(ARCH).join("hello-1.0-r0.apk");
    let parts = members(&fs::read(&apk).unwrap());
    let data_at = parts[0].len() + parts[1].len();
    let mut bytes = parts.concat();
    bytes[data_at + parts[2].len() / 2] ^= 0x55;
    fs::write(&apk, &bytes).unwrap();

    let server = Server::start(tmp.path());
    let cache = tmp.path().join("cache");
    let c = client(&cache, false);
    let repo = spec(&server.url("good"));
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    let entry = hello(&idx.entries).clone();
    let e = c.package(&repo, ARCH, &entry).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, UpstreamError::BadPackage { .. }), "{e:?}");
    assert!(
        msg.contains("hello-1.0-r0") && msg.contains(&repo.url),
        "{msg}"
    );
    assert_eq!(c.downloads(), 1, "the transfer happened");
    assert!(
        cached_packages(&cache).is_empty(),
        "{:?}",
        cached_packages(&cache)
    );

    // The good bytes back on the server, but a record whose C: differs.
    fs::copy(hello_apk(), &apk).unwrap();
    let mut wrong = entry.clone();
    wrong.control_sha1[0] ^= 1;
    let msg = c.package(&repo, ARCH, &wrong).unwrap_err().to_string();
    assert!(
        msg.contains("control member hashes to C:") && msg.contains("hello-1.0-r0"),
        "{msg}"
    );
    // And a record whose size differs.
    let mut wrong = entry.clone();
    wrong.file_size += 1;
    let msg = c.package(&repo, ARCH, &wrong).unwrap_err().to_string();
    assert!(msg.contains("bytes, the record says"), "{msg}");
    assert!(cached_packages(&cache).is_empty());

    // A record for a file the server does not have.
    let mut gone = entry.clone();
    gone.info.version = "9.9-r0".into();
    let msg = c.package(&repo, ARCH, &gone).unwrap_err().to_string();
    assert!(
        msg.contains("404") && msg.contains("hello-9.9-r0.apk"),
        "{msg}"
    );

    // Finally the real one passes.
    c.package(&repo, ARCH, &entry).unwrap();
    assert_eq!(cached_packages(&cache).len(), 1);
}

#[test]
fn offline_a_cold_cache_names_the_url_and_a_warm_cache_works_without_requests() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let cache = tmp.path().join("cache");
    let repo = spec(&server.url("good"));

    let cold = client(&cache, true);
    let msg = cold.index(&repo, ARCH, &trusted()).unwrap_err().to_string();
    assert!(
        msg.contains(&repo.index_url(ARCH)) && msg.contains("--offline prevented the download"),
        "{msg}"
    );
    assert!(server.hits().is_empty(), "no network offline");

    let online = client(&cache, false);
    let idx = online.index(&repo, ARCH, &trusted()).unwrap();
    let entry = hello(&idx.entries).clone();
    // Index cached, package not yet: the package is the missing piece.
    let msg = cold.package(&repo, ARCH, &entry).unwrap_err().to_string();
    assert!(
        msg.contains(&server.url("good/x86_64/hello-1.0-r0.apk")) && msg.contains("--offline"),
        "{msg}"
    );
    let path = online.package(&repo, ARCH, &entry).unwrap();

    let before = server.hits().len();
    let warm = client(&cache, true);
    let idx = warm.index(&repo, ARCH, &trusted()).unwrap();
    assert_eq!(
        warm.package(&repo, ARCH, hello(&idx.entries)).unwrap(),
        path
    );
    assert_eq!(warm.downloads(), 0);
    assert_eq!(server.hits().len(), before, "offline made requests");
    // Offline still checks trust on the cached copy.
    assert!(warm.index(&repo, ARCH, &[]).is_err());
}

#[test]
fn redirects_are_followed_and_tags_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let c = client(&tmp.path().join("cache"), false);
    let repo = spec(&format!("@main {}", server.url("redirect/good")));
    assert_eq!(repo.tag.as_deref(), Some("main"));
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    assert_eq!(idx.repo.tag.as_deref(), Some("main"));
    c.package(&repo, ARCH, hello(&idx.entries)).unwrap();
    let statuses: Vec<u16> = server.hits().iter().map(|h| h.status).collect();
    assert_eq!(statuses, vec![302, 200, 302, 200]);
}

#[test]
fn directory_and_file_url_repositories_are_read_in_place_and_packages_copied_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = good_repo(tmp.path());
    let cache = tmp.path().join("cache");
    // Offline on purpose: local repositories never need the network.
    let c = client(&cache, true);
    for s in [
        root.display().to_string(),
        format!("file://{}/", root.display()),
    ] {
        let repo = spec(&s);
        assert!(repo.is_local());
        let idx = c.index(&repo, ARCH, &trusted()).unwrap();
        let path = c.package(&repo, ARCH, hello(&idx.entries)).unwrap();
        assert!(path.starts_with(&cache), "{}", path.display());
        assert_eq!(fs::read(&path).unwrap(), fs::read(hello_apk()).unwrap());
    }
    assert_eq!(c.downloads(), 0);
    assert!(
        !cache.join("indexes").read_dir().unwrap().any(|_| true),
        "local index copied"
    );

    // A tampered local package is refused and not cached.
    let cache2 = tmp.path().join("cache2");
    let c = client(&cache2, true);
    let repo = spec(&root.display().to_string());
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    let apk = root.join(ARCH).join("hello-1.0-r0.apk");
    let mut bytes = fs::read(&apk).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x55;
    fs::write(&apk, &bytes).unwrap();
    let msg = c
        .package(&repo, ARCH, hello(&idx.entries))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("hello-1.0-r0") && msg.contains(&repo.url),
        "{msg}"
    );
    assert!(cached_packages(&cache2).is_empty());

    let e = c
        .index(&spec("/nonexistent/repo"), ARCH, &trusted())
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("/nonexistent/repo/x86_64/APKINDEX.tar.gz"),
        "{e}"
    );
}

#[test]
fn pinned_packages_are_fetched_by_url_and_checked_against_the_lock_record() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let c = client(&tmp.path().join("cache"), false);
    let repo = spec(&server.url("good"));
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    let e = hello(&idx.entries);
    let url = server.url("good/x86_64/hello-1.0-r0.apk");
    let sum = e.checksum_field();
    c.package_pinned(&url, "hello", "1.0-r0", &sum, e.file_size)
        .unwrap();
    assert_eq!(c.downloads(), 1);
    // Cached by C:, so the index route now downloads nothing either.
    c.package(&repo, ARCH, e).unwrap();
    assert_eq!(c.downloads(), 1);

    let fresh = client(&tmp.path().join("cache-b"), false);
    let msg = fresh
        .package_pinned(&url, "hello", "1.0-r0", &"0".repeat(40), e.file_size)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("control member hashes to") && msg.contains(&url),
        "{msg}"
    );
    let msg = fresh
        .package_pinned(&url, "other", "1.0-r0", &sum, e.file_size)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("holds hello-1.0-r0"), "{msg}");
}

#[test]
fn keyring_entries_load_from_files_and_urls_through_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    fs::copy(keys_dir().join(KEY), tmp.path().join(KEY)).unwrap();
    let server = Server::start(tmp.path());
    let cache = tmp.path().join("cache");
    let own = vec![
        TrustedKey::from_file(&PathBuf::from(format!("{}.pub", test_key().display()))).unwrap(),
    ];
    let url = server.url(KEY);
    let keys = load_keyring(std::slice::from_ref(&url), own, &client(&cache, false)).unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, vec!["test-build.rsa.pub", KEY]);
    client(&cache, false)
        .index(&spec(&server.url("good")), ARCH, &keys)
        .unwrap();

    // Offline, from the cache; a key never fetched is a named miss.
    let off = client(&cache, true);
    assert_eq!(load_keyring(&[url], vec![], &off).unwrap().len(), 1);
    let missing = server.url("nope.rsa.pub");
    let msg = load_keyring(std::slice::from_ref(&missing), vec![], &off)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&missing) && msg.contains("--offline"), "{msg}");
    let file = keys_dir().join(KEY).display().to_string();
    assert_eq!(load_keyring(&[file], vec![], &off).unwrap()[0].name, KEY);
    let msg = load_keyring(&["/no/such.rsa.pub".into()], vec![], &off)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/no/such.rsa.pub"), "{msg}");
}

#[test]
fn a_body_longer_than_the_record_and_a_silent_server_are_errors_naming_the_url() {
    let tmp = tempfile::tempdir().unwrap();
    good_repo(tmp.path());
    let server = Server::start(tmp.path());
    let c = client(&tmp.path().join("cache"), false);
    let repo = spec(&server.url("good"));
    let idx = c.index(&repo, ARCH, &trusted()).unwrap();
    let mut short = hello(&idx.entries).clone();
    short.file_size -= 1;
    let msg = c.package(&repo, ARCH, &short).unwrap_err().to_string();
    assert!(
        msg.contains(&server.url("good/x86_64/hello-1.0-r0.apk")) && msg.contains("larger than"),
        "{msg}"
    );

    // Accepts connections (the kernel backlog) but never answers.
    let (_listener, port) = util::quiet_listener();
    let quick = Client::new(ClientOptions {
        cache_dir: tmp.path().join("cache"),
        offline: false,
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let silent = spec(&format!("http://127.0.0.1:{port}/r"));
    let started = std::time::Instant::now();
    let e = quick.index(&silent, ARCH, &trusted()).unwrap_err();
    assert!(matches!(e, UpstreamError::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains(&silent.index_url(ARCH)), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "timeout not applied"
    );
}
