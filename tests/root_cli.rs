//! `pkgbuild root`: a fresh root filled from signed repositories served on
//! 127.0.0.1, as `apk add --root DIR --initdb` fills one. The repositories
//! are the shared, apk-tools-accepted `hello` (its index signed by the
//! shared test key) and a one-package repository made here holding the
//! host's static busybox as `/bin/sh` (package `busybox`, signed by this
//! run's test key), so that `hello`'s post-install script has a shell to
//! run in.

mod util;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use util::http::Server;
use util::testdata::{accepted_repo, keys_dir};
use util::{pkgbuild, show, test_key};

const ARCH: &str = "x86_64";
const BUSYBOX: &str = "/usr/bin/busybox";

struct Repos {
    _dir: tempfile::TempDir,
    served: PathBuf,
    keys: [PathBuf; 2],
}

/// `served/accepted/x86_64/` (the shared repository, copied) and
/// `served/shell/x86_64/` (`busybox-1.0-r0`: busybox at `/bin/sh`), built
/// once; named so that apk's order (the world sorted by name) installs it
/// before `hello`, whose post-install needs it;
/// `None` (skip) where bubblewrap or a static busybox is missing.
fn repos() -> Option<&'static Repos> {
    static REPOS: OnceLock<Option<Repos>> = OnceLock::new();
    REPOS
        .get_or_init(|| {
            if !util::bwrap_or_skip() {
                return None;
            }
            if !util::require_that(
                Path::new(BUSYBOX).is_file(),
                BUSYBOX,
                "apt-get install busybox-static",
            ) {
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let served = dir.path().join("served");
            let accepted = served.join("accepted").join(ARCH);
            fs::create_dir_all(&accepted).unwrap();
            for f in ["APKINDEX.tar.gz", "hello-1.0-r0.apk"] {
                fs::copy(accepted_repo().join(f), accepted.join(f)).unwrap();
            }
            let stage = dir.path().join("stage");
            fs::create_dir_all(stage.join("bin")).unwrap();
            fs::copy(BUSYBOX, stage.join("bin/sh")).unwrap();
            let shell = served.join("shell").join(ARCH);
            fs::create_dir_all(&shell).unwrap();
            let packed = pkgbuild(&[
                "pack".as_ref(),
                "--root".as_ref(),
                stage.as_os_str(),
                "--name".as_ref(),
                "busybox".as_ref(),
                "--version".as_ref(),
                "1.0-r0".as_ref(),
                "--arch".as_ref(),
                ARCH.as_ref(),
                "--out".as_ref(),
                shell.as_os_str(),
                "--key".as_ref(),
                test_key().as_os_str(),
            ]);
            assert!(packed.status.success(), "{}", show(&packed));
            let indexed = pkgbuild(&[
                "index".as_ref(),
                "--signing-key".as_ref(),
                test_key().as_os_str(),
                "-o".as_ref(),
                shell.join("APKINDEX.tar.gz").as_os_str(),
                shell.join("busybox-1.0-r0.apk").as_os_str(),
            ]);
            assert!(indexed.status.success(), "{}", show(&indexed));
            let mut own = test_key().as_os_str().to_owned();
            own.push(".pub");
            Some(Repos {
                _dir: dir,
                served,
                keys: [keys_dir().join("test-5f3a.rsa.pub"), PathBuf::from(own)],
            })
        })
        .as_ref()
}

/// `pkgbuild root DIR -r <server>/shell -r <server>/accepted -k ... EXTRA... busybox hello`.
fn root(
    server: &Server,
    keys: &[PathBuf],
    dir: &Path,
    cache: &Path,
    extra: &[&str],
) -> std::process::Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "root".into(),
        dir.into(),
        "-r".into(),
        server.url("shell").into(),
        "-r".into(),
        server.url("accepted").into(),
        "--apk-cache-dir".into(),
        cache.into(),
        "--arch".into(),
        ARCH.into(),
    ];
    for k in keys {
        args.push("-k".into());
        args.push(k.into());
    }
    args.extend(extra.iter().map(Into::into));
    args.extend(["busybox".into(), "hello".into()]);
    pkgbuild(&args)
}

fn text(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every path under `dir` with its kind, mode and (for files and links)
/// content, for comparing two roots.
fn tree(dir: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let body = if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                stack.push(p);
                Vec::new()
            };
            out.push((rel, m.mode(), body));
        }
    }
    out.sort();
    out
}

#[test]
fn fills_a_fresh_root_with_an_apk_database_and_runs_install_scripts() {
    let Some(r) = repos() else { return };
    let server = Server::start(&r.served);
    let work = tempfile::tempdir().unwrap();
    let (dir, cache) = (work.path().join("root"), work.path().join("cache"));
    let out = root(&server, &r.keys, &dir, &cache, &[]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one summary line:\n{stdout}");
    assert!(
        stdout.contains("2 packages installed for x86_64 (2 downloaded)"),
        "{stdout}"
    );

    // The packages' files, links and modes.
    let hello = accepted_repo().join("hello-1.0-r0.apk");
    let expected = util::entries(&hello)["usr/bin/hello"].content.clone();
    assert_eq!(fs::read(dir.join("usr/bin/hello")).unwrap(), expected);
    assert_eq!(
        fs::read_link(dir.join("usr/bin/hello-link")).unwrap(),
        Path::new("hello")
    );
    let ino = |p: &str| fs::metadata(dir.join(p)).unwrap().ino();
    assert_eq!(ino("usr/bin/hello-hard"), ino("usr/bin/hello"));
    let share = fs::metadata(dir.join("usr/share/hello")).unwrap();
    assert_eq!(share.mode() & 0o7777, 0o750);
    assert_eq!(
        fs::read(dir.join("bin/sh")).unwrap(),
        fs::read(BUSYBOX).unwrap()
    );
    // hello's post-install ran with the root as `/` and the version as $1.
    assert_eq!(
        text(&dir.join("post-install-ran")),
        "post-install ran: 1.0-r0\n"
    );

    // The apk database, as `apk add --initdb` leaves it.
    let installed = text(&dir.join("lib/apk/db/installed"));
    assert!(installed.contains("P:busybox\nV:1.0-r0\n"), "{installed}");
    assert!(installed.contains("P:hello\nV:1.0-r0\n"), "{installed}");
    assert_eq!(text(&dir.join("etc/apk/arch")).trim(), "x86_64");
    let world: Vec<String> = text(&dir.join("etc/apk/world"))
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(world, ["busybox", "hello"]);
    let repos = text(&dir.join("etc/apk/repositories"));
    assert!(repos.contains(&server.url("shell")), "{repos}");
    assert!(repos.contains(&server.url("accepted")), "{repos}");
    let keys: Vec<String> = fs::read_dir(dir.join("etc/apk/keys"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().any(|k| k == "test-5f3a.rsa.pub"), "{keys:?}");

    // Warm cache: a second root downloads no package, and is the same tree.
    let before = server.count(".apk");
    let again = work.path().join("again");
    let out = root(&server, &r.keys, &again, &cache, &[]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 downloaded)"),
        "{}",
        show(&out)
    );
    assert_eq!(server.count(".apk"), before);
    assert_eq!(tree(&again), tree(&dir));

    // Offline, warm: no request at all.
    let hits = server.hits().len();
    let offline = work.path().join("offline");
    let out = root(&server, &r.keys, &offline, &cache, &["--offline"]);
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(server.hits().len(), hits);
    assert_eq!(tree(&offline), tree(&dir));
}

#[test]
fn offline_with_a_cold_cache_fails_and_leaves_no_root() {
    let Some(r) = repos() else { return };
    let server = Server::start(&r.served);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("root");
    let out = root(
        &server,
        &r.keys,
        &dir,
        &work.path().join("cold"),
        &["--offline"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("offline"), "{stderr}");
    assert!(stderr.contains(&server.url("shell")), "{stderr}");
    assert!(server.hits().is_empty(), "{:?}", server.hits());
    assert!(!dir.exists());
}

#[test]
fn refuses_a_non_empty_root_before_reading_anything() {
    let Some(r) = repos() else { return };
    let server = Server::start(&r.served);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("root");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("precious"), "keep me").unwrap();
    let out = root(&server, &r.keys, &dir, &work.path().join("cache"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
    assert!(server.hits().is_empty());
    assert_eq!(text(&dir.join("precious")), "keep me");
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
}

#[test]
fn refuses_an_index_signed_by_a_key_not_given() {
    let Some(r) = repos() else { return };
    let server = Server::start(&r.served);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("root");
    // Only the shell repository's key: the accepted index is untrusted.
    let out = root(&server, &r.keys[1..], &dir, &work.path().join("cache"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("UNTRUSTED"), "{stderr}");
    assert!(stderr.contains("test-5f3a.rsa.pub"), "{stderr}");
    assert!(stderr.contains(&server.url("accepted")), "{stderr}");
    assert_eq!(server.count(".apk"), 0, "no package fetched");
    assert!(!dir.exists());
}

#[test]
fn a_name_no_repository_provides_is_an_error_naming_it() {
    let Some(r) = repos() else { return };
    let server = Server::start(&r.served);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("root");
    let out = root(
        &server,
        &r.keys,
        &dir,
        &work.path().join("cache"),
        &["no-such-package"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-package"), "{stderr}");
    assert_eq!(server.count(".apk"), 0, "no package fetched");
    assert!(!dir.exists());
}
