//! Drives the step runners through the library API: what a step can and
//! cannot see or touch under bubblewrap, how output, status, env and
//! timeouts are reported, and the host runner's basic behaviour.
//!
//! bwrap tests run whenever bubblewrap works. Without it they are skipped
//! locally but FAIL under `CI=true`, so CI cannot silently stop testing the
//! isolation.

mod util;

use pkgbuild::sandbox::{
    new_runner, Runner, RunnerKind, SandboxConfig, SandboxError, StepOutcome, StepSpec,
};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;
use util::bwrap_or_skip;

fn step(script: &str) -> StepSpec {
    StepSpec {
        label: "test/step".into(),
        script: script.into(),
        workdir: "/home/build".into(),
        env: BTreeMap::new(),
    }
}

fn runner(kind: RunnerKind, ws: &Path, tweak: impl FnOnce(&mut SandboxConfig)) -> Box<dyn Runner> {
    let mut config = SandboxConfig::new(ws);
    tweak(&mut config);
    new_runner(kind, config).expect("create runner")
}

/// Run `step`, returning the outcome and every streamed line.
fn run(r: &dyn Runner, step: &StepSpec) -> (StepOutcome, Vec<String>) {
    let mut lines = Vec::new();
    let outcome = r
        .run(step, &mut |l| lines.push(l.to_string()))
        .unwrap_or_else(|e| panic!("step {} could not run: {e}", step.label));
    (outcome, lines)
}

#[test]
fn bwrap_workspace_writes_reach_the_host_and_step_runs_as_root_in_build_root() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    assert_eq!(r.name(), "bwrap");
    assert_eq!(r.build_root(), "/home/build");
    let (out, lines) = run(
        &*r,
        &step("id -u; pwd; echo \"$HOME\"; mkdir -p sub && echo made > sub/file"),
    );
    assert!(out.success(), "{out:?}");
    assert_eq!(lines, ["0", "/home/build", "/home/build"]);
    let written = std::fs::read_to_string(ws.path().join("sub/file")).expect("file on host");
    assert_eq!(written, "made\n");
    // The wrapper script lives outside the workspace.
    let entries: Vec<_> = std::fs::read_dir(ws.path())
        .expect("read ws")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(entries, ["sub"]);
}

#[test]
fn bwrap_writes_outside_the_workspace_fail_or_stay_inside() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let host_file = outside.path().join("victim");
    std::fs::write(&host_file, "original").expect("write victim");
    let tag = format!("pkgbuild-escape-{}", std::process::id());
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});

    let (usr, _) = run(&*r, &step(&format!("touch /usr/{tag}")));
    assert!(!usr.success(), "writing /usr succeeded: {usr:?}");
    assert!(usr.tail.iter().any(|l| l.contains("Read-only")), "{usr:?}");
    // Even root without capabilities cannot make /usr writable again.
    let (remount, _) = run(&*r, &step("mount -o remount,rw,bind /usr /usr"));
    assert!(!remount.success(), "remount succeeded: {remount:?}");

    let script = format!(
        "touch /etc/{tag} || true\nprintf changed > {} || true\nmkdir -p /opt/{tag} || true",
        host_file.display()
    );
    let (_, _) = run(&*r, &step(&script));
    assert!(!Path::new("/usr").join(&tag).exists());
    assert!(!Path::new("/etc").join(&tag).exists());
    assert!(!Path::new("/opt").join(&tag).exists());
    assert_eq!(
        std::fs::read_to_string(&host_file).expect("victim"),
        "original"
    );
}

#[test]
fn bwrap_cannot_read_home_or_root_or_host_tmp() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let fake_home = tempfile::tempdir().expect("tempdir");
    let secret = "s3cr3t-not-for-builds";
    let home_secret = fake_home.path().join(".netrc");
    std::fs::write(&home_secret, secret).expect("write secret");
    let mut paths = vec![home_secret.display().to_string()];
    // /root is the home of the user CI runs as; plant a secret there when we
    // may write it, and always try the real $HOME.
    let root_secret = Path::new("/root").join(format!(".pkgbuild-secret-{}", std::process::id()));
    let planted = std::fs::write(&root_secret, secret).is_ok();
    if planted {
        paths.push(root_secret.display().to_string());
    }
    if let Some(home) = std::env::var_os("HOME") {
        paths.push(Path::new(&home).display().to_string());
    }
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    for p in &paths {
        let (out, lines) = run(&*r, &step(&format!("cat '{p}' || ls -A '{p}'")));
        assert!(!out.success(), "{p} is readable: {lines:?}");
        assert!(!lines.iter().any(|l| l.contains(secret)), "{p}: {lines:?}");
    }
    // Host account names do not leak either: passwd is generated.
    let (_, passwd) = run(&*r, &step("cut -d: -f1 /etc/passwd"));
    assert_eq!(passwd, ["root", "build", "nobody"]);
    if planted {
        let _ = std::fs::remove_file(&root_secret);
    }
}

/// A TCP listener on the host loopback, and a step that connects to it.
fn connect_step(listener: &TcpListener) -> StepSpec {
    let port = listener.local_addr().expect("addr").port();
    step(&format!(
        "exec 3<>/dev/tcp/127.0.0.1/{port}\necho hello-from-step >&3\necho connected"
    ))
}

#[test]
fn bwrap_has_no_network_by_default() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    let (out, lines) = run(&*r, &connect_step(&listener));
    assert!(!out.success(), "connected without network: {lines:?}");
    assert!(!lines.iter().any(|l| l == "connected"));
    // The step did try (bash's /dev/tcp), and the kernel refused it.
    assert!(lines.iter().any(|l| l.contains("connect")), "{lines:?}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host listener saw a connection: {other:?}"),
    }
}

#[test]
fn bwrap_with_network_enabled_reaches_the_host() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let step = connect_step(&listener);
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut got = String::new();
        conn.read_to_string(&mut got).expect("read");
        got
    });
    let r = runner(RunnerKind::Bwrap, ws.path(), |c| c.network = true);
    let (out, lines) = run(&*r, &step);
    assert!(out.success(), "{lines:?}");
    assert_eq!(lines, ["connected"]);
    assert_eq!(server.join().expect("server"), "hello-from-step\n");
}

#[test]
fn bwrap_env_is_cleared_and_base_and_step_env_apply_in_order() {
    if !bwrap_or_skip() {
        return;
    }
    // cargo sets this for the test process; it must not reach the step.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |c| {
        c.base_env
            .insert("SOURCE_DATE_EPOCH".into(), "1700000000".into());
        c.base_env.insert("CFLAGS".into(), "-O2".into());
    });
    let mut s = step("env | sort");
    s.env
        .insert("CFLAGS".into(), "-O2 -g 'quoted' $(not run)".into());
    let (out, lines) = run(&*r, &s);
    assert!(out.success(), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("CARGO")), "{lines:?}");
    assert!(lines.contains(&"SOURCE_DATE_EPOCH=1700000000".to_string()));
    assert!(lines.contains(&"CFLAGS=-O2 -g 'quoted' $(not run)".to_string()));
    assert!(lines.contains(&format!("PATH={}", pkgbuild::sandbox::DEFAULT_PATH)));
    assert!(lines.contains(&"HOME=/home/build".to_string()));
}

#[test]
fn bwrap_failing_step_reports_status_and_tail() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    let (out, lines) = run(
        &*r,
        &step(
            "for i in $(seq 1 40); do echo line $i; done\necho oops >&2\nfalse\necho not reached",
        ),
    );
    assert_eq!(out.status, Some(1));
    assert_eq!(out.signal, None);
    assert_eq!(out.tail.len(), pkgbuild::sandbox::TAIL_LINES);
    assert_eq!(out.tail.first().map(String::as_str), Some("line 12"));
    assert_eq!(out.tail.last().map(String::as_str), Some("oops"));
    assert_eq!(lines.len(), 41, "every line streamed");

    let (exit, _) = run(&*r, &step("exit 42"));
    assert_eq!(exit.status, Some(42));
}

#[test]
fn bwrap_hostile_workdir_is_created_verbatim_and_not_executed() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    let rel = "a b/$(touch /home/build/pwned)/`touch /home/build/pwned2`/it's";
    let mut s = step("pwd");
    s.workdir = format!("/home/build/{rel}");
    let (out, lines) = run(&*r, &s);
    assert!(out.success(), "{lines:?}");
    assert_eq!(lines, [s.workdir.clone()]);
    assert!(ws.path().join(rel).is_dir());
    assert!(!ws.path().join("pwned").exists());
    assert!(!ws.path().join("pwned2").exists());
}

#[test]
fn bwrap_toolchain_compiles_and_runs_a_program() {
    if !bwrap_or_skip() {
        return;
    }
    if !util::require_that(
        Path::new("/usr/bin/cc").exists(),
        "/usr/bin/cc",
        "the toolchain test compiles a program (apt-get install gcc libc6-dev)",
    ) {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    let script = "printf '#include <stdio.h>\\nint main(void){puts(\"hi from cc\");return 0;}\\n' > h.c\ncc -o h h.c\n./h";
    let (out, lines) = run(&*r, &step(script));
    assert!(out.success(), "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("hi from cc"));
}

#[test]
fn bwrap_step_exceeding_timeout_is_killed() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Bwrap, ws.path(), |c| {
        c.timeout = Some(Duration::from_millis(500))
    });
    match r.run(&step("echo started\nsleep 60\ntouch finished"), &mut |_| {}) {
        Err(SandboxError::TimedOut { label, tail, .. }) => {
            assert_eq!(label, "test/step");
            assert_eq!(tail, ["started"]);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(!ws.path().join("finished").exists());
}

#[test]
fn bwrap_rejects_bad_config_and_bad_steps() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let mut c = SandboxConfig::new(ws.path());
    c.build_root = "/usr/build".into();
    let err = new_runner(RunnerKind::Bwrap, c).err().expect("rejected");
    assert!(err.to_string().contains("/usr/build"), "{err}");

    let r = runner(RunnerKind::Bwrap, ws.path(), |_| {});
    let mut s = step("true");
    s.env.insert("NOT-A-NAME".into(), "x".into());
    let err = r.run(&s, &mut |_| {}).expect_err("bad env name");
    assert!(err.to_string().contains("NOT-A-NAME"), "{err}");
}

#[test]
fn host_runner_runs_in_workspace_with_clean_env_and_reports_failure() {
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Host, ws.path(), |c| {
        c.base_env.insert("SOURCE_DATE_EPOCH".into(), "1".into());
    });
    assert_eq!(r.name(), "host");
    let root = ws.path().canonicalize().expect("canonical");
    assert_eq!(r.build_root(), root.to_str().expect("utf-8"));

    let mut s = step("pwd; echo \"$HOME\"; echo \"$SOURCE_DATE_EPOCH\"; echo \"${CARGO_MANIFEST_DIR:-unset}\"; echo x > f");
    s.workdir = r.build_root().to_string();
    let (out, lines) = run(&*r, &s);
    assert!(out.success(), "{lines:?}");
    assert_eq!(lines, [r.build_root(), r.build_root(), "1", "unset"]);
    assert!(root.join("f").is_file());

    let mut fail = step("echo before\nexit 7");
    fail.workdir = r.build_root().to_string();
    let (out, _) = run(&*r, &fail);
    assert_eq!(out.status, Some(7));
    assert_eq!(out.tail, ["before"]);

    let mut killed = step("kill -9 $$");
    killed.workdir = r.build_root().to_string();
    let (out, _) = run(&*r, &killed);
    assert_eq!((out.status, out.signal), (None, Some(9)));
    assert!(!out.success());
}

#[test]
fn host_runner_timeout_kills_the_whole_step() {
    let ws = tempfile::tempdir().expect("tempdir");
    let r = runner(RunnerKind::Host, ws.path(), |c| {
        c.timeout = Some(Duration::from_millis(500))
    });
    let mut s = step("(sleep 60; touch late) &\necho started\nsleep 60");
    s.workdir = r.build_root().to_string();
    let err = r.run(&s, &mut |_| {}).expect_err("timeout");
    assert!(matches!(err, SandboxError::TimedOut { .. }), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[test]
fn bwrap_read_only_mounts_are_readable_but_not_writable() {
    if !bwrap_or_skip() {
        return;
    }
    let ws = tempfile::tempdir().expect("tempdir");
    let sources = tempfile::tempdir().expect("tempdir");
    std::fs::write(sources.path().join("hello.tar.gz"), "tarball").expect("write");
    let r = runner(RunnerKind::Bwrap, ws.path(), |c| {
        c.ro_binds
            .push((sources.path().to_path_buf(), "/sources".into()))
    });
    let (out, lines) = run(&*r, &step("cat /sources/hello.tar.gz; echo"));
    assert!(out.success(), "{lines:?}");
    assert_eq!(lines, ["tarball"]);
    let (out, _) = run(&*r, &step("echo x > /sources/new"));
    assert!(!out.success());
    assert!(!sources.path().join("new").exists());
}
