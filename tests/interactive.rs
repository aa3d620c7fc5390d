//! `-i/--interactive` on `build` and `test`: without a terminal it is
//! ignored, said once; with one (util-linux `script(1)` provides a pty) a
//! failing step opens a shell in its sandbox, where what the user types
//! runs with the step's working directory and environment, and the run
//! fails as before once the shell exits.

mod util;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use util::*;

const FAILING: &str = r#"package:
  name: failing
  version: 1.0.0
  epoch: 0
  description: a step that fails
  copyright:
    - license: MIT
environment:
  environment:
    FROM_RECIPE: recipe-value
pipeline:
  - name: breaks
    working-directory: sub/dir
    runs: |
      echo before > marker
      false
"#;

/// Builds fine; its test fails.
const TESTED: &str = r#"package:
  name: tested
  version: 1.0.0
  epoch: 0
  description: a test that fails
  copyright:
    - license: MIT
pipeline:
  - runs: mkdir -p ${{targets.destdir}}/usr/share/tested && echo hi > ${{targets.destdir}}/usr/share/tested/hi
test:
  environment:
    environment:
      FROM_TEST: test-value
  pipeline:
    - name: checks
      runs: |
        false
"#;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn without_a_terminal_interactive_is_ignored_and_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "failing", FAILING);
    let out = tmp.path().join("repo");
    let res = build_command(&recipe, &out, &["-i", "--runner", "host"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = stderr(&res);
    assert_eq!(err.matches("-i/--interactive ignored").count(), 1, "{err}");
    assert!(err.contains("stdin is not a terminal"), "{err}");
    assert!(err.contains("step \"breaks\" failed"), "{err}");
    assert!(!err.contains("opening a shell"), "{err}");

    let recipe = write_recipe(tmp.path(), "tested", TESTED);
    let out = tmp.path().join("repo2");
    assert_ok(&build(&recipe, &out, &["--runner", "host"]));
    let res = util::cmd()
        .arg("test")
        .arg(&recipe)
        .args(["--runner", "host", "--interactive", "--out-dir"])
        .arg(&out)
        .arg("--signing-key")
        .arg(test_key())
        .env("HOME", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = stderr(&res);
    assert_eq!(err.matches("-i/--interactive ignored").count(), 1, "{err}");
    assert!(!err.contains("opening a shell"), "{err}");
}

/// Runs `args` under `script(1)` (a pty as stdin/stdout/stderr), typing
/// `input`; stdin stays open until the command ends (at most two
/// minutes). None when `script` is not installed.
fn on_a_terminal(args: &[&std::ffi::OsStr], home: &Path, input: &str) -> Option<(i32, String)> {
    if !util::require("script", "it gives the command a terminal (util-linux)") {
        return None;
    }
    let line: Vec<String> = std::iter::once(bin().to_string())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &line.join(" "), "/dev/null"])
        .env("HOME", home)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("the interactive run did not end");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    let transcript = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    Some((status.code().unwrap_or(-1), transcript))
}

fn kept_workspace(transcript: &str) -> PathBuf {
    let line = transcript
        .lines()
        .find_map(|l| l.trim().strip_prefix("workspace kept at "))
        .unwrap_or_else(|| panic!("no kept workspace:\n{transcript}"));
    PathBuf::from(line.trim())
}

#[test]
fn a_failing_build_step_opens_a_shell_in_its_sandbox() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "failing", FAILING);
    let out = tmp.path().join("repo");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let args: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        recipe.as_os_str(),
        "-i".as_ref(),
        "--keep-workspace".as_ref(),
        "--runner".as_ref(),
        "bwrap".as_ref(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
    ];
    // Typed at the shell: where it is, who, and the recipe's environment,
    // into a file of the workspace.
    let input =
        "echo \"pwd=$(pwd) uid=$(id -u) v=$FROM_RECIPE host=$(hostname)\" > from-shell\nexit 3\n";
    let Some((code, transcript)) = on_a_terminal(&args, &home, input) else {
        return;
    };
    assert_eq!(code, 1, "{transcript}");
    assert!(
        transcript.contains("opening a shell in its sandbox at /home/build/sub/dir"),
        "{transcript}"
    );
    assert!(transcript.contains("the step stays failed"), "{transcript}");
    assert!(
        transcript.contains("step \"breaks\" failed (exit status 1)"),
        "{transcript}"
    );
    let ws = kept_workspace(&transcript);
    let written = fs::read_to_string(ws.join("sub/dir/from-shell"))
        .unwrap_or_else(|e| panic!("{e}: the shell wrote nothing\n{transcript}"));
    // /home/build is the sandbox's view of the workspace: the host has no
    // such directory.
    let host = fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(
        written.starts_with("pwd=/home/build/sub/dir uid=0 v=recipe-value host="),
        "{written}"
    );
    assert!(
        host.trim().is_empty()
            || !written
                .trim_end()
                .ends_with(&format!("host={}", host.trim())),
        "the shell ran on the host: {written}"
    );
    assert!(ws.join("sub/dir/marker").is_file());
    // Nothing was published.
    assert!(!out.join(arch()).join("failing-1.0.0-r0.apk").exists());
    let _ = fs::remove_dir_all(ws.parent().unwrap());
}

#[test]
fn the_host_runner_opens_its_shell_in_the_workspace() {
    let tmp = tempfile::tempdir().unwrap();
    // Its own name: the host runner's build root is fixed per package,
    // and another test builds `failing` with it.
    let recipe = write_recipe(
        tmp.path(),
        "failing-host",
        &FAILING.replace("name: failing", "name: failing-host"),
    );
    let out = tmp.path().join("repo");
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let args: Vec<&std::ffi::OsStr> = vec![
        "build".as_ref(),
        recipe.as_os_str(),
        "-i".as_ref(),
        "--keep-workspace".as_ref(),
        "--runner".as_ref(),
        "host".as_ref(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
    ];
    let input = "echo \"pwd=$(pwd) v=$FROM_RECIPE\" > from-shell\nexit\n";
    let Some((code, transcript)) = on_a_terminal(&args, &home, input) else {
        return;
    };
    assert_eq!(code, 1, "{transcript}");
    let ws = kept_workspace(&transcript);
    let written = fs::read_to_string(ws.join("sub/dir/from-shell"))
        .unwrap_or_else(|e| panic!("{e}: the shell wrote nothing\n{transcript}"));
    let dir = ws.join("sub/dir").canonicalize().unwrap();
    assert_eq!(
        written.trim_end(),
        format!("pwd={} v=recipe-value", dir.display())
    );
    let _ = fs::remove_dir_all(&ws);
}

#[test]
fn a_failing_test_step_opens_a_shell_in_its_sandbox() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "tested", TESTED);
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe, &out, &["--runner", "bwrap"]));
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let args: Vec<&std::ffi::OsStr> = vec![
        "test".as_ref(),
        recipe.as_os_str(),
        "-i".as_ref(),
        "--runner".as_ref(),
        "bwrap".as_ref(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
    ];
    // The shell has the test's environment.
    let input = "echo \"INSIDE:$(pwd):$FROM_TEST\"\nexit\n";
    let Some((code, transcript)) = on_a_terminal(&args, &home, input) else {
        return;
    };
    assert_eq!(code, 1, "{transcript}");
    assert!(
        transcript.contains("opening a shell in its sandbox"),
        "{transcript}"
    );
    assert!(transcript.contains("the step stays failed"), "{transcript}");
    assert!(transcript.contains("FAIL"), "{transcript}");
    let inside = transcript
        .lines()
        .find(|l| l.starts_with("INSIDE:/"))
        .unwrap_or_else(|| panic!("the typed command did not run:\n{transcript}"));
    assert_eq!(inside.trim_end(), "INSIDE:/home/build:test-value");
}
