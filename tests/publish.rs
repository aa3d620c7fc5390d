//! `pkgbuild publish` against a real S3-compatible server on 127.0.0.1:
//! PyPI's `moto`, served one request at a time by `tests/tools/moto_serial.py`
//! (see there why), from a virtual environment under `target/moto-venv`
//! (or `$PKGBUILD_MOTO_VENV`) that the test creates when missing. Without
//! moto the tests skip, saying so, unless `CI` is set, where they fail.
//!
//! Everything is read back through our own reader and verified with the
//! test key, as apk would.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use object_store::path::Path as ObjPath;
use object_store::ObjectStoreExt;
use pkgbuild::apk::index::Index;
use pkgbuild::publish::Dest;
use util::{assert_ok, show, test_key};

struct Moto {
    endpoint: String,
    // Kept open for the life of the test binary: the server exits on EOF.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

fn venv() -> PathBuf {
    std::env::var_os("PKGBUILD_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/moto-venv"))
}

fn has_moto(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server, werkzeug"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            if status.success() {
                return Ok(());
            }
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut s, &mut err);
            }
            return Err(format!("{cmd:?}: {status}: {err}"));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?}: still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A python with moto, installing it into the venv when missing.
fn moto_python() -> Result<PathBuf, String> {
    let venv = venv();
    let python = venv.join("bin/python");
    if python.exists() && has_moto(&python) {
        return Ok(python);
    }
    run_bounded(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        Duration::from_secs(120),
    )?;
    run_bounded(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "moto[server]"]),
        Duration::from_secs(600),
    )?;
    if has_moto(&python) {
        Ok(python)
    } else {
        Err("moto installed but does not import".into())
    }
}

fn start_moto() -> Result<Moto, String> {
    let python = moto_python()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/moto_serial.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg("1200")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let port: u16 = line
        .trim()
        .parse()
        .map_err(|_| format!("moto_serial.py printed {line:?}, not a port"))?;
    let stdin = child.stdin.take().unwrap();
    Ok(Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        _stdin: Mutex::new(stdin),
        _child: Mutex::new(child),
    })
}

/// The shared server, or `None` (after saying why) when moto cannot be had
/// outside CI.
fn moto() -> Option<&'static Moto> {
    static MOTO: OnceLock<Result<Moto, String>> = OnceLock::new();
    match MOTO.get_or_init(start_moto) {
        Ok(m) => Some(m),
        Err(e) => {
            util::require_that(
                false,
                "moto (PyPI), the S3-compatible test server",
                &format!("pip install 'moto[server]' into {}: {e}", venv().display()),
            );
            None
        }
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh bucket named after the test, and its destination URL.
fn bucket(m: &Moto, name: &str) -> String {
    // object_store cannot create buckets; moto takes an unsigned PUT.
    let resp = ureq::put(&format!("{}/{name}", m.endpoint)).call();
    assert!(resp.is_ok(), "creating bucket {name}: {resp:?}");
    format!("s3://{name}/repo")
}

fn aws_env(cmd: &mut Command) -> &mut Command {
    for k in [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT",
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
    ] {
        cmd.env_remove(k);
    }
    cmd.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
}

fn publish_cmd(m: &Moto, repo: &Path, dest: &str, key: &Path) -> Command {
    let mut cmd = util::cmd();
    aws_env(&mut cmd)
        .arg("publish")
        .arg(repo)
        .arg(dest)
        .arg("--signing-key")
        .arg(key)
        .args(["--endpoint", &m.endpoint]);
    cmd
}

fn publish(m: &Moto, repo: &Path, dest: &str) -> Output {
    publish_cmd(m, repo, dest, test_key()).output().unwrap()
}

/// The destination as the test reads it back.
fn dest(m: &Moto, url: &str) -> Dest {
    let vars: Vec<(String, String)> = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Dest::parse(url, Some(&m.endpoint), &vars).unwrap()
}

/// `<repo>/x86_64/<name>-<version>.apk` with `content`, signed by `key`.
fn pack(repo: &Path, name: &str, version: &str, content: &str, key: &Path) {
    let root = repo.with_extension(format!("stage-{name}"));
    std::fs::create_dir_all(root.join("usr/share")).unwrap();
    std::fs::write(root.join("usr/share").join(name), content).unwrap();
    std::fs::create_dir_all(repo.join("x86_64")).unwrap();
    let out = util::cmd()
        .args([
            "pack",
            "--name",
            name,
            "--version",
            version,
            "--arch",
            "x86_64",
        ])
        .arg("--root")
        .arg(&root)
        .arg("--out")
        .arg(repo.join("x86_64"))
        .arg("--key")
        .arg(key)
        .env("SOURCE_DATE_EPOCH", util::EPOCH)
        .output()
        .unwrap();
    assert_ok(&out);
}

fn keys_dir() -> &'static Path {
    test_key().parent().unwrap()
}

struct Snapshot {
    /// (object key, size, etag), sorted.
    objects: Vec<(String, u64, Option<String>)>,
}

fn snapshot(d: &Dest) -> Snapshot {
    use futures::TryStreamExt;
    let mut objects: Vec<_> = rt().block_on(async {
        d.store()
            .list(Some(d.prefix()))
            .map_ok(|m| (m.location.to_string(), m.size, m.e_tag))
            .try_collect()
            .await
            .unwrap()
    });
    objects.sort();
    Snapshot { objects }
}

fn fetch(d: &Dest, loc: &ObjPath) -> Option<Vec<u8>> {
    rt().block_on(async {
        match d.store().get(loc).await {
            Ok(g) => Some(g.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("{loc}: {e}"),
        }
    })
}

/// The arch's index, verified with the test key, and every package it
/// names fetched and verified too: the index never names a package the
/// store does not hold. Returns the names.
fn verified_index(d: &Dest) -> Vec<String> {
    let Some(bytes) = fetch(d, &d.location("x86_64", "APKINDEX.tar.gz")) else {
        return Vec::new();
    };
    let dir = tempfile::tempdir().unwrap();
    let index_path = dir.path().join("APKINDEX.tar.gz");
    std::fs::write(&index_path, &bytes).unwrap();
    pkgbuild::apk::verify::verify_file(&index_path, keys_dir()).unwrap();
    let index = Index::read(&index_path).unwrap();
    let mut names = Vec::new();
    for e in &index.entries {
        let file = format!("{}-{}.apk", e.info.name, e.info.version);
        let pkg = fetch(d, &d.location("x86_64", &file))
            .unwrap_or_else(|| panic!("the index names {file}, which is not in the store"));
        assert_eq!(pkg.len() as u64, e.file_size, "{file}: S: does not match");
        let path = dir.path().join(&file);
        std::fs::write(&path, &pkg).unwrap();
        pkgbuild::apk::verify::verify_file(&path, keys_dir())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        let local = pkgbuild::apk::index::IndexEntry::from_package(&path).unwrap();
        assert_eq!(
            local.control_sha1, e.control_sha1,
            "{file}: C: does not match"
        );
        names.push(e.info.name.clone());
    }
    names.sort();
    names
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_fresh_build_publishes_reads_back_and_a_republish_changes_nothing() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("tiny.yaml");
    std::fs::write(
        &recipe,
        r#"package:
  name: tiny
  version: 1.0.0
  epoch: 0
  description: a tiny package to publish
  copyright:
    - license: MIT
pipeline:
  - runs: |
      mkdir -p "${{targets.destdir}}/usr/share/tiny"
      echo hello > "${{targets.destdir}}/usr/share/tiny/hello.txt"
"#,
    )
    .unwrap();
    let repo = tmp.path().join("repo");
    assert_ok(&util::build(
        &recipe,
        &repo,
        &["--runner", "host", "--arch", "x86_64"],
    ));
    let url = bucket(m, "fresh-build");
    let out = publish(m, &repo, &url);
    assert_ok(&out);
    assert!(stderr(&out).contains("uploaded 1 ("), "{}", show(&out));
    let d = dest(m, &url);
    assert_eq!(verified_index(&d), ["tiny"]);

    let before = snapshot(&d);
    let json = tmp.path().join("summary.json");
    let mut again = publish_cmd(m, &repo, &url, test_key());
    let out = again.arg("--json").arg(&json).output().unwrap();
    assert_ok(&out);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        summary["uploaded"].as_array().unwrap().len(),
        0,
        "{summary}"
    );
    assert_eq!(summary["present"].as_array().unwrap().len(), 1, "{summary}");
    assert_eq!(summary["indexes"][0]["written"], false, "{summary}");
    assert_eq!(snapshot(&d).objects, before.objects);
}

#[test]
fn sixteen_concurrent_publishers_lose_nothing() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = bucket(m, "sixteen");
    let repos: Vec<PathBuf> = (0..16)
        .map(|i| {
            let repo = tmp.path().join(format!("repo{i}"));
            pack(
                &repo,
                &format!("pkg{i:02}"),
                "1.0-r0",
                &format!("{i}"),
                test_key(),
            );
            repo
        })
        .collect();
    let children: Vec<_> = repos
        .iter()
        .map(|r| {
            publish_cmd(m, r, &url, test_key())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut retries = 0u64;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_ok(&out);
        let err = stderr(&out);
        let n = err
            .rsplit_once(" refused, ")
            .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no summary line:\n{err}"));
        retries += n;
    }
    eprintln!("16 publishers: {retries} index retries in all");
    let d = dest(m, &url);
    let want: Vec<String> = (0..16).map(|i| format!("pkg{i:02}")).collect();
    assert_eq!(verified_index(&d), want);
}

#[test]
fn a_different_file_under_a_published_name_is_refused_and_the_store_is_unchanged() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = bucket(m, "refused");
    let first = tmp.path().join("first");
    pack(&first, "same", "1.0-r0", "one", test_key());
    assert_ok(&publish(m, &first, &url));
    let d = dest(m, &url);
    let before = snapshot(&d);

    let second = tmp.path().join("second");
    pack(&second, "same", "1.0-r0", "two", test_key());
    let out = publish(m, &second, &url);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let err = stderr(&out);
    assert!(
        err.contains("refused: s3://refused/repo/x86_64/same-1.0-r0.apk")
            && err.contains("bump the epoch"),
        "{err}"
    );
    assert_eq!(snapshot(&d).objects, before.objects);
    assert_eq!(verified_index(&d), ["same"]);
    let stored = fetch(&d, &d.location("x86_64", "same-1.0-r0.apk")).unwrap();
    assert_eq!(
        stored,
        std::fs::read(first.join("x86_64/same-1.0-r0.apk")).unwrap()
    );
}

#[test]
fn a_publisher_killed_mid_upload_leaves_a_consistent_index_and_a_rerun_completes_it() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = bucket(m, "killed");
    let base = tmp.path().join("base");
    pack(&base, "base", "1.0-r0", "b", test_key());
    assert_ok(&publish(m, &base, &url));

    let repo = tmp.path().join("repo");
    for i in 0..8 {
        pack(
            &repo,
            &format!("late{i}"),
            "1.0-r0",
            &format!("{i}"),
            test_key(),
        );
    }
    // One upload at a time, killed after the first.
    let mut cmd = publish_cmd(m, &repo, &url, test_key());
    cmd.args(["--jobs", "1"]);
    util::kill_when_printed(cmd, "uploaded s3://");
    let d = dest(m, &url);
    let names = verified_index(&d);
    assert!(names.contains(&"base".to_string()), "{names:?}");
    assert!(
        names.len() < 9,
        "the kill came too late to test anything: {names:?}"
    );

    assert_ok(&publish(m, &repo, &url));
    let mut want = vec!["base".to_string()];
    want.extend((0..8).map(|i| format!("late{i}")));
    assert_eq!(verified_index(&d), want);
}

#[test]
fn a_publisher_killed_between_upload_and_index_write_leaves_a_consistent_index() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = bucket(m, "killed-at-merge");
    let base = tmp.path().join("base");
    pack(&base, "base", "1.0-r0", "b", test_key());
    assert_ok(&publish(m, &base, &url));

    let repo = tmp.path().join("repo");
    for i in 0..4 {
        pack(
            &repo,
            &format!("next{i}"),
            "1.0-r0",
            &format!("{i}"),
            test_key(),
        );
    }
    // "merging" is printed once every upload of the arch is done, just
    // before the index is read for the compare-and-swap.
    util::kill_when_printed(publish_cmd(m, &repo, &url, test_key()), "merging ");
    let d = dest(m, &url);
    for i in 0..4 {
        let file = format!("next{i}-1.0-r0.apk");
        assert!(
            fetch(&d, &d.location("x86_64", &file)).is_some(),
            "{file} was uploaded before the merge"
        );
    }
    // Whether or not the write got out before the kill, the index names
    // only present, verifying packages.
    let names = verified_index(&d);
    assert!(names.contains(&"base".to_string()), "{names:?}");
    eprintln!("after the kill the index names {names:?}");

    let out = publish(m, &repo, &url);
    assert_ok(&out);
    assert!(stderr(&out).contains("4 already present"), "{}", show(&out));
    assert_eq!(
        verified_index(&d),
        ["base", "next0", "next1", "next2", "next3"]
    );
}

#[test]
fn reconcile_restores_a_deleted_index() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let url = bucket(m, "reconcile");
    let repo = tmp.path().join("repo");
    for n in ["one", "two", "three"] {
        pack(&repo, n, "2.0-r1", n, test_key());
    }
    assert_ok(&publish(m, &repo, &url));
    let d = dest(m, &url);
    let names = verified_index(&d);
    rt().block_on(async {
        d.store()
            .delete(&d.location("x86_64", "APKINDEX.tar.gz"))
            .await
            .unwrap()
    });
    assert!(verified_index(&d).is_empty());
    let mut cmd = util::cmd();
    let out = aws_env(&mut cmd)
        .args(["publish", "--reconcile", &url, "--endpoint", &m.endpoint])
        .arg("--signing-key")
        .arg(test_key())
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(
        stderr(&out).contains("indexed 3 package(s)"),
        "{}",
        show(&out)
    );
    assert_eq!(verified_index(&d), names);
}

#[test]
fn bad_destinations_fail_clearly_naming_the_destination_and_write_nothing() {
    let Some(m) = moto() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    pack(&repo, "lonely", "1.0-r0", "x", test_key());

    let check = |out: Output, needles: &[&str]| {
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = stderr(&out);
        for n in needles {
            assert!(err.contains(n), "missing {n:?} in:\n{err}");
        }
    };
    check(
        publish(m, &repo, "ftp://host/x"),
        &["ftp://host/x", "unknown scheme `ftp`"],
    );
    check(
        publish(m, &repo, "s3://no-such-bucket/repo"),
        &["s3://no-such-bucket/repo", "does the bucket exist"],
    );
    // A port nobody listens on: bind one, then let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let start = Instant::now();
    let out = aws_env(&mut util::cmd())
        .arg("publish")
        .arg(&repo)
        .arg("s3://anywhere/repo")
        .arg("--signing-key")
        .arg(test_key())
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
    check(out, &["s3://anywhere/repo"]);
    let out = util::cmd()
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("publish")
        .arg(&repo)
        .arg("s3://anywhere/repo")
        .arg("--signing-key")
        .arg(test_key())
        .output()
        .unwrap();
    check(out, &["s3://anywhere/repo", "no AWS credentials"]);

    // An index signed by another key: nothing is added beside it.
    let url = bucket(m, "stranger");
    let other_dir = tmp.path().join("other-key");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = other_dir.join("stranger.rsa");
    assert_ok(
        &util::cmd()
            .args(["keygen", "--key-size", "2048"])
            .arg(&other)
            .output()
            .unwrap(),
    );
    let theirs = tmp.path().join("theirs");
    pack(&theirs, "theirs", "1.0-r0", "t", &other);
    assert_ok(&publish_cmd(m, &theirs, &url, &other).output().unwrap());
    let d = dest(m, &url);
    let before = snapshot(&d);
    check(
        publish(m, &repo, &url),
        &[
            "s3://stranger/repo/x86_64/APKINDEX.tar.gz",
            "signed by stranger.rsa.pub",
        ],
    );
    assert_eq!(snapshot(&d).objects, before.objects);
    let _ = std::io::stderr().flush();
}
