//! Fuzz targets for the smaller inputs an attacker controls: lock files,
//! image configurations, env files, `.melangeignore`, PEM keys, an
//! upstream `APKINDEX.tar.gz`, and the installer writing a package's data
//! into a root. Same harness and knobs as the targets in `fuzz.rs`.

use std::path::Path;

use crate::harness::{self, committed, files_in, Target, Verdict, Violation};
use crate::util::testdata::{accepted_repo, keys_dir, testdata};
use pkgbuild::apk::index::IndexEntry;
use pkgbuild::apk::sign::{self, Algorithm, SigningKey};
use pkgbuild::engine::lockfile::LockFile;
use pkgbuild::engine::workspace::IgnoreRules;
use pkgbuild::install::{self, Package, RootSetup, ScriptRun};
use pkgbuild::upstream::{read_index_file, TrustedKey};

/// An error must say something and name the file (or URL) it is about.
fn names(what: &str, msg: &str, name: &str) -> Result<(), Violation> {
    if msg.trim().is_empty() {
        return Err(format!("{what}: empty error message"));
    }
    if !msg.contains(name) {
        return Err(format!("{what}: error names no file ({name}): {msg}"));
    }
    crate::check_length(msg)
}

// ---------------------------------------------------------------------------
// Lock files

const JSON_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"-1",
    b"18446744073709551616",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\"v1\"",
    b"\"Q1\"",
    b"\"x86_64\"",
    b"\"../\"",
    b"\"packages\"",
    b"\"tests\"",
    b"\"rebuilt\"",
];

fn lock_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("hostile.lock.json");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    let lock = match LockFile::read(&path) {
        Ok(l) => l,
        Err(e) => {
            names("lock", &format!("{e:#}"), "hostile.lock.json")?;
            return Ok(Verdict::Rejected);
        }
    };
    for arch in ["x86_64", "aarch64", ""] {
        if let Err(e) = lock.packages_for(&path, arch) {
            names("lock packages_for", &format!("{e:#}"), "hostile.lock.json")?;
        }
    }
    // What was read can be written and reads back the same.
    let again = dir.join("again.lock.json");
    lock.write(&again)
        .map_err(|e| format!("a lock that reads cannot be written: {e:#}"))?;
    let back =
        LockFile::read(&again).map_err(|e| format!("a written lock does not read: {e:#}"))?;
    if back != lock {
        return Err("the rewritten lock reads back different".into());
    }
    Ok(Verdict::Accepted)
}

#[test]
fn fuzz_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "lock",
            seeds: committed("lock"),
            dict: JSON_DICT,
            max_len: 64 << 10,
            mutator: None,
        },
        |input| lock_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// Image configurations (apko's schema)

const IMAGE_DICT: &[&[u8]] = &[
    b"contents:\n",
    b"  packages:\n",
    b"    - ",
    b"paths:\n",
    b"  - path: ",
    b"    type: ",
    b"symlink",
    b"hardlink",
    b"directory",
    b"empty-file",
    b"permissions",
    b"    source: ",
    b"    permissions: 0o7777",
    b"    uid: 4294967296",
    b"recursive: true",
    b"include: ",
    b"hostile.yaml",
    b"accounts:\n",
    b"  users:\n",
    b"  run-as: ",
    b"entrypoint:\n",
    b"  command: ",
    b"archs: ",
    b"environment:\n",
    b"annotations:\n",
    b"volumes: ",
    b"&a ",
    b"*a",
    b"<<: ",
    b"[",
    b"]",
    b"{}",
    b"~",
    b"../",
    b"/",
    b"\n",
    b": ",
    b"- ",
];

fn image_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("hostile.yaml");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    match pkgbuild::image::config::load(&path) {
        Ok(cfg) => {
            let _ = pkgbuild::image::archs(&cfg, &[]);
            let _ = pkgbuild::image::request(&cfg, &Default::default());
            Ok(Verdict::Accepted)
        }
        Err(e) => {
            names("image config", &e.to_string(), "hostile.yaml")?;
            Ok(Verdict::Rejected)
        }
    }
}

#[test]
fn fuzz_image_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = committed("image-config");
    seeds.extend(files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/image"),
        Some("yaml"),
    ));
    seeds.extend(files_in(
        &testdata().join("wolfi-sample/recipes/nginx-mainline"),
        Some("yaml"),
    ));
    harness::run(
        Target {
            name: "image-config",
            seeds,
            dict: IMAGE_DICT,
            max_len: 64 << 10,
            mutator: None,
        },
        |input| image_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// Env files (`--env-file`)

const ENV_DICT: &[&[u8]] = &[
    b"=", b"\"", b"'", b"#", b"export ", b"\n", b"\r\n", b" ", b"\t", b"\0", b"\xff", b"\\",
    b"PATH", b"$HOME", b"${X}",
];

fn env_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("hostile.env");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    match pkgbuild::cli::build::parse_env_file(&path) {
        Ok(vars) => {
            for (k, v) in &vars {
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("accepted variable name {k:?}"));
                }
                // A lone `\r` is a legal value byte; a NUL cannot be in
                // a process's environment and a `\n` ends the line.
                if v.contains(['\n', '\0']) {
                    return Err(format!("{k}: value holds a line feed or NUL: {v:?}"));
                }
            }
            Ok(Verdict::Accepted)
        }
        Err(e) => {
            names("env file", &format!("{e:#}"), "hostile.env")?;
            Ok(Verdict::Rejected)
        }
    }
}

#[test]
fn fuzz_env_file() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "env-file",
            seeds: committed("env-file"),
            dict: ENV_DICT,
            max_len: 16 << 10,
            mutator: None,
        },
        |input| env_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// `.melangeignore`

const IGNORE_DICT: &[&[u8]] = &[
    b"*", b"**", b"**/", b"/**", b"?", b"[", b"]", b"[!", b"[^", b"a-z", b"!", b"\\", b"#", b"/",
    b"\n", b" ", b"{", b"}", b",", b".", b"..",
];

/// Paths to ask about: every line with the pattern syntax taken out, and
/// each of its parent directories.
fn probe_paths(text: &str) -> Vec<String> {
    let mut out = vec!["a".to_string(), "a/b.o".into(), "build/x".into()];
    for line in text.lines().take(64) {
        let p: String = line
            .chars()
            .filter(|c| !matches!(c, '*' | '?' | '[' | ']' | '!' | '\\' | '#'))
            .take(200)
            .collect();
        let p = p.trim().trim_matches('/').to_string();
        if !p.is_empty() {
            out.push(p);
        }
    }
    out
}

fn ignore_exec(input: &[u8]) -> Result<Verdict, Violation> {
    let text = String::from_utf8_lossy(input);
    let rules = IgnoreRules::parse(&text);
    for p in probe_paths(&text) {
        let dir_ignored = rules.is_ignored(&p, true);
        let _ = rules.is_ignored(&p, false);
        // Git never looks inside an ignored directory.
        if dir_ignored && !rules.is_ignored(&format!("{p}/inside"), false) {
            return Err(format!("{p}/ is ignored but {p}/inside is not"));
        }
    }
    Ok(Verdict::Accepted)
}

#[test]
fn fuzz_melangeignore() {
    harness::run(
        Target {
            name: "melangeignore",
            seeds: committed("melangeignore"),
            dict: IGNORE_DICT,
            max_len: 8 << 10,
            mutator: None,
        },
        ignore_exec,
    );
}

// ---------------------------------------------------------------------------
// PEM keys: private (signing) and public (verifying, keyrings)

const PEM_DICT: &[&[u8]] = &[
    b"-----BEGIN RSA PRIVATE KEY-----\n",
    b"-----END RSA PRIVATE KEY-----\n",
    b"-----BEGIN PRIVATE KEY-----\n",
    b"-----END PRIVATE KEY-----\n",
    b"-----BEGIN PUBLIC KEY-----\n",
    b"-----END PUBLIC KEY-----\n",
    b"-----BEGIN RSA PUBLIC KEY-----\n",
    b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n",
    b"-----BEGIN CERTIFICATE-----\n",
    b"MII",
    b"AAAA",
    b"////",
    b"=",
    b"==",
    b"\n",
    b"\r\n",
];

fn key_seeds() -> Vec<Vec<u8>> {
    let mut seeds = files_in(&keys_dir(), None);
    seeds.extend(committed("key"));
    seeds
}

fn key_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let private = dir.join("hostile.rsa");
    let public = dir.join("hostile.rsa.pub");
    std::fs::write(&private, input).map_err(|e| e.to_string())?;
    std::fs::write(&public, input).map_err(|e| e.to_string())?;
    let mut accepted = false;
    match SigningKey::load(&private) {
        Ok(key) => {
            accepted = true;
            key.sign(Algorithm::Rsa256, b"data")
                .map_err(|e| format!("a key that loads cannot sign: {e}"))?;
        }
        Err(e) => names("private key", &e.to_string(), "hostile.rsa")?,
    }
    match sign::load_public_key(&public) {
        Ok(_) => accepted = true,
        Err(e) => names("public key", &e.to_string(), "hostile.rsa.pub")?,
    }
    if let Err(e) = TrustedKey::from_file(&public) {
        names("trusted key", &e.to_string(), "hostile.rsa.pub")?;
    }
    Ok(if accepted {
        Verdict::Accepted
    } else {
        Verdict::Rejected
    })
}

#[test]
fn fuzz_pem_keys() {
    let dir = tempfile::tempdir().unwrap();
    harness::run(
        Target {
            name: "key",
            seeds: key_seeds(),
            dict: PEM_DICT,
            max_len: 16 << 10,
            mutator: None,
        },
        |input| key_exec(dir.path(), input),
    );
}

// ---------------------------------------------------------------------------
// An upstream repository's index, as fetched (bytes -> trusted records)

const UPSTREAM_URL: &str = "https://hostile.example/x86_64/APKINDEX.tar.gz";

fn upstream_exec(dir: &Path, keys: &[TrustedKey], input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("fetched");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    match read_index_file(&path, UPSTREAM_URL, keys) {
        // Parsed but untrusted: still the best base for deeper mutants.
        Ok((_, Err(e))) => {
            names("upstream trust", &e.to_string(), UPSTREAM_URL)?;
            Ok(Verdict::Accepted)
        }
        Ok((entries, Ok(_))) => {
            for e in &entries {
                if e.info.name.is_empty() || e.info.version.is_empty() {
                    return Err(format!("trusted record without name or version: {e:?}"));
                }
            }
            Ok(Verdict::Accepted)
        }
        Err(e) => {
            names("upstream index", &e.to_string(), UPSTREAM_URL)?;
            Ok(Verdict::Rejected)
        }
    }
}

#[test]
fn fuzz_upstream_index() {
    let dir = tempfile::tempdir().unwrap();
    let keys = vec![TrustedKey::from_file(&keys_dir().join("test-5f3a.rsa.pub")).unwrap()];
    let mut seeds = crate::index_file_seeds();
    seeds.extend(committed("upstream-index"));
    harness::run(
        Target {
            name: "upstream-index",
            seeds,
            dict: crate::ARCHIVE_DICT,
            max_len: 1 << 20,
            mutator: Some(crate::archive::mutate),
        },
        |input| upstream_exec(dir.path(), &keys, input),
    );
}

// ---------------------------------------------------------------------------
// The installer: a package's data tar written into a fresh root

fn install_exec(dir: &Path, input: &[u8]) -> Result<Verdict, Violation> {
    let path = dir.join("pkg.apk");
    std::fs::write(&path, input).map_err(|e| e.to_string())?;
    let Ok(entry) = IndexEntry::from_package(&path) else {
        return Ok(Verdict::Rejected);
    };
    let outer = dir.join("outer");
    let root = outer.join("root");
    if outer.exists() {
        crate::make_writable(&outer);
        std::fs::remove_dir_all(&outer).map_err(|e| e.to_string())?;
    }
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let pkgs = [Package {
        path: &path,
        entry: &entry,
        repository: "hostile-repo",
    }];
    let setup = RootSetup {
        arch: "x86_64",
        world: std::slice::from_ref(&entry.info.name),
        repositories: &[],
        keys: &[],
    };
    let mut no_scripts = |_: &ScriptRun| Ok(());
    let result = install::install(&root, &pkgs, &setup, &mut no_scripts);
    let beside = harness::names_in(&outer)?;
    let above = harness::names_in(dir)?;
    if beside != ["root"] || above != ["outer", "pkg.apk"] {
        return Err(format!(
            "the install wrote outside its root: {beside:?} {above:?}"
        ));
    }
    match result {
        Ok(_) => Ok(Verdict::Accepted),
        Err(e) => {
            let msg = e.to_string();
            if !msg.contains("pkg.apk") && !msg.contains(&entry.info.name) && !msg.contains('/') {
                return Err(format!("install error names no package or path: {msg}"));
            }
            Ok(Verdict::Rejected)
        }
    }
}

#[test]
fn fuzz_installer() {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = files_in(&accepted_repo(), Some("apk"));
    seeds.extend(committed("apk"));
    seeds.extend(committed("install"));
    harness::run(
        Target {
            name: "install",
            seeds,
            dict: crate::ARCHIVE_DICT,
            max_len: 1 << 20,
            mutator: Some(crate::archive::mutate),
        },
        |input| install_exec(dir.path(), input),
    );
}
