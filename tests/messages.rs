//! Messages for common mistakes, read as a newcomer reads them: they name
//! the file or flag at fault and say what it is, and closing stdout early
//! (`pkgbuild ... | head`) is not an error.

mod util;

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;

use util::*;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn hello() -> std::path::PathBuf {
    repo_root().join("examples/hello/hello.yaml")
}

#[test]
fn a_public_key_as_signing_key_says_it_is_the_public_half() {
    let tmp = tempfile::tempdir().unwrap();
    let public = format!("{}.pub", test_key().display());
    let out = util::cmd()
        .args(["build", "--runner", "host", "--signing-key", &public])
        .arg(hello())
        .arg("--out-dir")
        .arg(tmp.path().join("repo"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    assert!(err.contains(&public), "{err}");
    assert!(err.contains("a public key"), "{err}");
    assert!(err.contains("private"), "{err}");
    assert!(!tmp.path().join("repo").exists(), "built anyway");
}

#[test]
fn a_missing_recipe_names_the_file_without_a_position() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.yaml");
    let out = build(&missing, &tmp.path().join("repo"), &["--runner", "host"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = stderr(&out);
    let name = missing.display().to_string();
    assert!(err.contains(&format!("{name}: cannot open")), "{err}");
    assert!(!err.contains(":1:1"), "{err}");
    // The same for the commands that only read recipes.
    for cmd in ["compile", "lint"] {
        let out = pkgbuild(&[cmd, &name]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", show(&out));
        assert!(!stderr(&out).contains(":1:1"), "{cmd}: {}", show(&out));
    }
}

/// A pipe whose reading end is already closed: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    unsafe {
        libc::close(fds[0]);
        Stdio::from(OwnedFd::from_raw_fd(fds[1]))
    }
}

#[test]
fn a_closed_stdout_exits_quietly_with_success() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = hello().display().to_string();
    let out_dir = tmp.path().join("repo").display().to_string();
    let key = test_key().display().to_string();
    let cases: Vec<Vec<&str>> = vec![
        vec!["completion", "bash"],
        vec!["version"],
        vec!["-V"],
        vec!["--help"],
        vec!["build", "--help"],
        vec!["compile", &hello],
        vec!["package-version", &hello],
        vec![
            "build",
            &hello,
            "--runner",
            "host",
            "--out-dir",
            &out_dir,
            "--signing-key",
            &key,
        ],
    ];
    for args in cases {
        let out = util::cmd()
            .args(&args)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .env("HOME", tmp.path())
            .stdout(closed_pipe())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
        let err = stderr(&out);
        assert!(
            !err.contains("error") && !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
    // The build really ran with its stdout closed.
    assert!(tmp
        .path()
        .join("repo")
        .join(arch())
        .join("hello-1.2.0-r0.apk")
        .is_file());
}

#[test]
fn an_unusable_out_dir_is_named_before_anything_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, "not a directory").unwrap();
    for out_dir in [file.clone(), file.join("repo")] {
        let out = util::cmd()
            .args(["build", "--runner", "host", "--signing-key"])
            .arg(test_key())
            .arg(hello())
            .arg("--out-dir")
            .arg(&out_dir)
            .env("HOME", tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", show(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("--out-dir {}:", out_dir.display())),
            "{err}"
        );
        assert!(err.contains("output directory"), "{err}");
        // Named once, before any step ran or any log was opened.
        assert!(!err.contains("build log"), "{err}");
        assert!(!err.contains("==>"), "{err}");
    }
}
