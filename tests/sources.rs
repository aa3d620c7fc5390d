//! Host-side sources against local fixtures only: a tiny HTTP server on
//! 127.0.0.1 for `fetch`, and throwaway git repositories for `git_checkout`.

use pkgbuild::source::{
    fetch, fetch_with, git_checkout, Checksum, FetchError, FetchOptions, GitCheckout, GitError,
};
use sha2::Digest;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// ---------------------------------------------------------------- fetch

/// A gzipped tarball with one file, built in memory.
fn tarball() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let body = b"int main(void){return 0;}\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello-1.0/hello.c", &body[..])
        .expect("append");
    tar.into_inner().expect("tar").finish().expect("gzip")
}

fn sha256(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha512(data: &[u8]) -> String {
    sha2::Sha512::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A one-connection-at-a-time HTTP/1.1 server serving `body` at
/// `/dl/hello-1.0.tar.gz`, a redirect at `/moved`, and 404 elsewhere. It
/// counts requests so tests can prove the cache avoided the network.
struct Server {
    base: String,
    requests: Arc<AtomicUsize>,
}

impl Server {
    fn start(body: Vec<u8>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                // Drain headers.
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                count.fetch_add(1, Ordering::SeqCst);
                let path = request_line.split_whitespace().nth(1).unwrap_or("");
                let (status, extra, payload): (&str, String, &[u8]) = match path {
                    "/dl/hello-1.0.tar.gz" => ("200 OK", String::new(), &body),
                    "/moved" => (
                        "302 Found",
                        "Location: /dl/hello-1.0.tar.gz\r\n".into(),
                        b"",
                    ),
                    _ => ("404 Not Found", String::new(), b"not here"),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
                    payload.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(payload);
            }
        });
        Server { base, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Every regular file under `dir`, relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("prefix").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn http_fetch_verifies_caches_and_second_fetch_makes_no_request() {
    let body = tarball();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().expect("tempdir");
    let sum = Checksum::Sha256(sha256(&body));
    let url = server.url("/dl/hello-1.0.tar.gz");

    let path = fetch(&url, &sum, cache.path()).expect("fetch");
    assert_eq!(
        path,
        cache
            .path()
            .join("sha256")
            .join(sha256(&body))
            .join("hello-1.0.tar.gz")
    );
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert_eq!(server.count(), 1);

    let again = fetch(&url, &sum, cache.path()).expect("cached fetch");
    assert_eq!(again, path);
    assert_eq!(server.count(), 1, "cache hit must not touch the network");
    assert_eq!(files_under(cache.path()).len(), 1, "no temp files left");
}

#[test]
fn corrupted_cache_entry_is_refetched() {
    let body = tarball();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().expect("tempdir");
    let sum = Checksum::Sha512(sha512(&body));
    let url = server.url("/dl/hello-1.0.tar.gz");
    let path = fetch(&url, &sum, cache.path()).expect("fetch");
    assert!(path.starts_with(cache.path().join("sha512")));
    std::fs::write(&path, b"tampered").expect("tamper");
    let path = fetch(&url, &sum, cache.path()).expect("refetch");
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert_eq!(server.count(), 2);
}

#[test]
fn checksum_mismatch_names_both_digests_and_caches_nothing() {
    let body = tarball();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().expect("tempdir");
    let wrong = "0".repeat(64);
    let url = server.url("/dl/hello-1.0.tar.gz");
    let err = fetch(&url, &Checksum::Sha256(wrong.clone()), cache.path()).expect_err("mismatch");
    assert!(matches!(err, FetchError::Mismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "checksum mismatch for {url}: expected sha256 {wrong}, got {}",
            sha256(&body)
        )
    );
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn http_404_is_a_clear_error_and_not_retried() {
    let server = Server::start(tarball());
    let cache = tempfile::tempdir().expect("tempdir");
    let url = server.url("/dl/missing.tar.gz");
    let err = fetch(&url, &Checksum::Sha256("a".repeat(64)), cache.path()).expect_err("404");
    assert_eq!(
        err.to_string(),
        format!("fetching {url}: server answered HTTP 404 Not Found")
    );
    assert_eq!(server.count(), 1);
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn redirects_are_followed_and_the_name_comes_from_the_requested_url() {
    let body = tarball();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().expect("tempdir");
    let path = fetch(
        &server.url("/moved"),
        &Checksum::Sha256(sha256(&body)),
        cache.path(),
    )
    .expect("fetch");
    assert_eq!(std::fs::read(&path).expect("read"), body);
    assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("moved"));
}

#[test]
fn size_cap_stops_an_oversized_download() {
    let body = tarball();
    let server = Server::start(body.clone());
    let cache = tempfile::tempdir().expect("tempdir");
    let opts = FetchOptions {
        max_bytes: 10,
        ..FetchOptions::default()
    };
    let err = fetch_with(
        &server.url("/dl/hello-1.0.tar.gz"),
        &Checksum::Sha256(sha256(&body)),
        cache.path(),
        &opts,
    )
    .expect_err("too large");
    assert!(
        matches!(err, FetchError::TooLarge { limit: 10, .. }),
        "{err}"
    );
    assert_eq!(files_under(cache.path()), Vec::<PathBuf>::new());
}

#[test]
fn file_urls_and_absolute_paths_are_fetched_locally() {
    let body = tarball();
    let src = tempfile::tempdir().expect("tempdir");
    let file = src.path().join("my src.tar.gz");
    std::fs::write(&file, &body).expect("write");
    let cache = tempfile::tempdir().expect("tempdir");
    let sum = Checksum::Sha256(sha256(&body));
    let url = format!("file://{}", file.display().to_string().replace(' ', "%20"));
    let path = fetch(&url, &sum, cache.path()).expect("file://");
    assert_eq!(
        path.file_name().and_then(|n| n.to_str()),
        Some("my src.tar.gz")
    );
    assert_eq!(std::fs::read(&path).expect("read"), body);

    let plain = fetch(&file.display().to_string(), &sum, cache.path()).expect("plain path");
    assert_eq!(plain, path);

    let missing = fetch("/nonexistent/x.tar.gz", &sum, cache.path()).expect_err("missing");
    assert!(
        missing.to_string().contains("/nonexistent/x.tar.gz"),
        "{missing}"
    );
}

// ---------------------------------------------------------------- git

/// Run git in `dir` for test setup, with a fixed identity and dates.
fn sh_git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_AUTHOR_DATE", "@1600000000 +0000")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_DATE", "@1600000000 +0000")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
    /// main: c1 (tagged v1.0, annotated) → c2 (tip)
    c1: String,
    c2: String,
    /// branch `fix`, forked from c1: c3 adds fix.txt
    c3: String,
    tag_object: String,
}

fn repo() -> Repo {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("upstream");
    std::fs::create_dir(&path).expect("mkdir");
    let g = |args: &[&str]| sh_git(&path, args);
    g(&["init", "--quiet", "-b", "main"]);
    std::fs::write(path.join("README"), "v1\n").expect("write");
    g(&["add", "README"]);
    g(&["commit", "--quiet", "-m", "one"]);
    let c1 = g(&["rev-parse", "HEAD"]);
    g(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
    let tag_object = g(&["rev-parse", "refs/tags/v1.0"]);
    g(&["checkout", "--quiet", "-b", "fix"]);
    std::fs::write(path.join("fix.txt"), "fixed\n").expect("write");
    g(&["add", "fix.txt"]);
    g(&["commit", "--quiet", "-m", "the fix"]);
    let c3 = g(&["rev-parse", "HEAD"]);
    g(&["checkout", "--quiet", "main"]);
    std::fs::write(path.join("README"), "v2\n").expect("write");
    g(&["commit", "--quiet", "-am", "two"]);
    let c2 = g(&["rev-parse", "HEAD"]);
    assert_ne!(tag_object, c1, "annotated tag has its own object");
    Repo {
        _dir: dir,
        path,
        c1,
        c2,
        c3,
        tag_object,
    }
}

fn spec(repo: &Repo) -> GitCheckout {
    GitCheckout {
        repository: repo.path.display().to_string(),
        destination_name: ".".into(),
        ..Default::default()
    }
}

/// Check out `s` into a fresh directory.
fn checkout(s: GitCheckout) -> (tempfile::TempDir, Result<String, GitError>) {
    let dest = tempfile::tempdir().expect("tempdir");
    let result = git_checkout(&s, dest.path());
    (dest, result)
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn commits_in(dest: &Path) -> usize {
    sh_git(dest, &["rev-list", "--count", "HEAD"])
        .parse()
        .expect("count")
}

#[test]
fn git_branch_checkout_is_shallow_by_default_and_lands_in_dest() {
    let r = repo();
    let dest = tempfile::tempdir().expect("tempdir");
    std::fs::write(dest.path().join("already-here"), "x").expect("write");
    let head = git_checkout(
        &GitCheckout {
            branch: Some("main".into()),
            ..spec(&r)
        },
        dest.path(),
    )
    .expect("checkout");
    assert_eq!(head, r.c2);
    assert_eq!(
        std::fs::read_to_string(dest.path().join("README")).expect("README"),
        "v2\n"
    );
    assert!(
        dest.path().join("already-here").is_file(),
        "existing file kept"
    );
    assert_eq!(commits_in(dest.path()), 1, "depth defaults to 1");
    // Nothing of ours left behind.
    let mut names: Vec<_> = std::fs::read_dir(dest.path())
        .expect("read")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    names.sort();
    assert_eq!(names, [".git", "README", "already-here"]);

    // A second checkout into the same place would overwrite: refused.
    let err = git_checkout(&spec(&r), dest.path()).expect_err("conflict");
    assert!(matches!(err, GitError::DestinationConflict { .. }), "{err}");
}

#[test]
fn git_tag_checkout_verifies_expected_commit_including_annotated_tag_object() {
    let r = repo();
    let at_tag = |expected: &str| GitCheckout {
        tag: Some("v1.0".into()),
        expected_commit: Some(expected.to_string()),
        ..spec(&r)
    };
    for expected in [&r.c1, &r.tag_object] {
        let (dest, head) = checkout(at_tag(expected));
        assert_eq!(head.expect("checkout"), r.c1, "HEAD is the peeled commit");
        assert_eq!(read(dest.path(), "README"), "v1\n");
    }

    let (dest, result) = checkout(at_tag(&r.c2));
    let err = result.expect_err("mismatch");
    let msg = err.to_string();
    assert!(matches!(err, GitError::CommitMismatch { .. }), "{msg}");
    assert!(msg.contains(&r.c1) && msg.contains(&r.c2), "{msg}");
    assert_eq!(
        std::fs::read_dir(dest.path()).expect("read").count(),
        0,
        "failed checkout leaves dest empty"
    );
}

#[test]
fn git_branch_with_older_expected_commit_resets_with_full_history_only() {
    let r = repo();
    let on_main = |expected: &str, depth| GitCheckout {
        branch: Some("main".into()),
        expected_commit: Some(expected.to_string()),
        depth,
        ..spec(&r)
    };
    let (dest, head) = checkout(on_main(&r.c1, None));
    assert_eq!(head.expect("checkout"), r.c1);
    assert_eq!(read(dest.path(), "README"), "v1\n");

    let (_, result) = checkout(on_main(&r.c1, Some(1)));
    let err = result.expect_err("shallow mismatch");
    assert!(err.to_string().contains("depth"), "{err}");

    // A commit from another branch is not an ancestor of main's tip.
    let (_, result) = checkout(on_main(&r.c3, None));
    let err = result.expect_err("diverged");
    assert!(err.to_string().contains(&r.c3), "{err}");
}

#[test]
fn git_full_depth_fetches_whole_history() {
    let r = repo();
    let dest = tempfile::tempdir().expect("tempdir");
    git_checkout(
        &GitCheckout {
            branch: Some("main".into()),
            depth: Some(-1),
            ..spec(&r)
        },
        dest.path(),
    )
    .expect("checkout");
    assert_eq!(commits_in(dest.path()), 2);
}

#[test]
fn git_cherry_pick_from_branch_is_applied_deterministically() {
    let r = repo();
    let pick = |dest: &Path| {
        git_checkout(
            &GitCheckout {
                tag: Some("v1.0".into()),
                expected_commit: Some(r.c1.clone()),
                cherry_picks: vec![format!("# backports\nfix/{}: apply the fix\n", r.c3)],
                source_date_epoch: Some(1_700_000_000),
                ..spec(&r)
            },
            dest,
        )
        .expect("checkout with cherry-pick")
    };
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    let head_a = pick(a.path());
    let head_b = pick(b.path());
    assert_ne!(head_a, r.c1);
    assert_eq!(head_a, head_b, "same inputs, same cherry-picked commit");
    assert_eq!(
        std::fs::read_to_string(a.path().join("fix.txt")).expect("fix.txt"),
        "fixed\n"
    );
    assert_eq!(sh_git(a.path(), &["rev-parse", "HEAD^"]), r.c1);
    let msg = sh_git(a.path(), &["log", "-1", "--format=%B%n%cn %ct"]);
    assert!(
        msg.contains(&format!("cherry picked from commit {}", r.c3)),
        "{msg}"
    );
    assert!(msg.ends_with("pkgbuild 1700000000"), "{msg}");
}

#[test]
fn git_unknown_branch_reports_gits_own_message() {
    let r = repo();
    let dest = tempfile::tempdir().expect("tempdir");
    let err = git_checkout(
        &GitCheckout {
            branch: Some("nope".into()),
            ..spec(&r)
        },
        dest.path(),
    )
    .expect_err("no such branch");
    let msg = err.to_string();
    assert!(matches!(err, GitError::Command { .. }), "{msg}");
    assert!(msg.contains("nope"), "{msg}");
}

#[test]
fn git_submodules_are_checked_out_when_asked() {
    let r = repo();
    let sub = tempfile::tempdir().expect("tempdir");
    sh_git(sub.path(), &["init", "--quiet", "-b", "main"]);
    std::fs::write(sub.path().join("inner.txt"), "inner\n").expect("write");
    sh_git(sub.path(), &["add", "inner.txt"]);
    sh_git(sub.path(), &["commit", "--quiet", "-m", "inner"]);
    let sub_url = sub.path().display().to_string();
    sh_git(
        &r.path,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "--quiet",
            &sub_url,
            "vendor/inner",
        ],
    );
    sh_git(&r.path, &["commit", "--quiet", "-m", "add submodule"]);

    let with = |recurse| GitCheckout {
        branch: Some("main".into()),
        recurse_submodules: recurse,
        ..spec(&r)
    };
    let (dest, head) = checkout(with(true));
    head.expect("checkout with submodules");
    assert_eq!(read(dest.path(), "vendor/inner/inner.txt"), "inner\n");

    let (dest, head) = checkout(with(false));
    head.expect("checkout without submodules");
    assert!(!dest.path().join("vendor/inner/inner.txt").exists());
}
