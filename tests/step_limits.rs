//! `--max-processes` and `--max-disk` on the real binary: a fork bomb and
//! an oversized write are stopped, the failure names the limit and the flag
//! that raises it (on the terminal and in `--json`), nothing of the step
//! survives, and nothing is published.

mod util;

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use util::*;

/// A recipe whose one step runs `script`.
fn recipe(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    let body: String = script.lines().map(|l| format!("      {l}\n")).collect();
    write_recipe(
        dir,
        name,
        &format!(
            "package:\n  name: {name}\n  version: 1.0.0\n  epoch: 0\n  description: limits\npipeline:\n  - name: runs\n    runs: |\n{body}"
        ),
    )
}

/// A fork loop: sleepers in the background until 1000 (bounded, so a
/// broken limit cannot take the machine down), each recognisable by its
/// `sleep SECONDS` command line.
fn fork_loop(seconds: u32) -> String {
    format!("i=0\nwhile [ $i -lt 1000 ]; do\n  sleep {seconds} &\n  i=$((i+1))\ndone\nwait\n")
}

/// Processes on this host whose command line is `sleep SECONDS`.
fn sleepers(seconds: u32) -> usize {
    let wanted = format!("sleep\0{seconds}\0");
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.file_name().to_str()?.parse::<u32>().ok()?;
            fs::read(e.path().join("cmdline")).ok()
        })
        .filter(|c| c.ends_with(wanted.as_bytes()))
        .count()
}

/// Build with `TMPDIR` inside `tmp`, so the workspace's cleanup can be
/// checked.
fn build_in(tmp: &Path, recipe: &Path, out: &Path, extra: &[&str]) -> Output {
    let tmpdir = tmp.join("tmpdir");
    fs::create_dir_all(&tmpdir).unwrap();
    build_command(recipe, out, extra)
        .env("TMPDIR", &tmpdir)
        .output()
        .unwrap()
}

/// What builds left in `TMPDIR`: workspaces, scratch and control
/// directories (the host runner's `pkgbuild-host-UID` parent stays, with
/// only the lock files of its fixed workspaces).
fn leftover_workspaces(tmp: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect()
    };
    let top = tmp.join("tmpdir");
    let mut left = Vec::new();
    for name in names(&top) {
        if name.starts_with("pkgbuild-host-") {
            left.extend(
                names(&top.join(&name))
                    .into_iter()
                    .filter(|n| !n.ends_with(".lock")),
            );
        } else if name.starts_with("pkgbuild-") {
            left.push(name);
        }
    }
    left
}

fn json_message(path: &Path) -> String {
    let doc: Value = serde_json::from_slice(&fs::read(path).unwrap()).unwrap();
    let text = fs::read_to_string(repo_root().join("schema/results.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc}");
    doc["recipes"][0]["failure"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn fork_bomb_is_stopped(runner: &str, seconds: u32) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let json = tmp.path().join("results.json");
    let r = recipe(tmp.path(), "bomb", &fork_loop(seconds));
    let res = build_in(
        tmp.path(),
        &r,
        &out,
        &[
            "--runner",
            runner,
            "--max-processes",
            "64",
            "--json",
            json.to_str().unwrap(),
        ],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("step bomb/runs stopped: it reached the process limit of 64 (--max-processes"),
        "{err}"
    );
    let message = json_message(&json);
    assert!(
        message.contains("process limit of 64 (--max-processes"),
        "{message}"
    );
    // Every sleeper died with the step.
    let mut left = sleepers(seconds);
    for _ in 0..20 {
        if left == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = sleepers(seconds);
    }
    assert_eq!(left, 0, "processes of the step survived it");
    assert_eq!(leftover_workspaces(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_fork_bomb_in_bwrap_is_stopped_at_the_process_limit_and_nothing_survives() {
    if !bwrap_or_skip() {
        return;
    }
    fork_bomb_is_stopped("bwrap", 3017);
}

#[test]
fn a_fork_bomb_on_the_host_runner_is_stopped_and_its_group_killed() {
    fork_bomb_is_stopped("host", 3018);
}

#[test]
fn writing_past_the_disk_cap_stops_the_step_and_publishes_nothing() {
    if !bwrap_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let ok = recipe(
        tmp.path(),
        "small",
        "mkdir -p ${{targets.destdir}}/usr/share\necho hi > ${{targets.destdir}}/usr/share/small\n",
    );
    assert_ok(&build_in(tmp.path(), &ok, &out, &[]));
    let before = snapshot(&out.join(arch()));

    // One 64 MiB file: its writer gets SIGXFSZ at 16 MiB.
    let one = recipe(
        tmp.path(),
        "onefile",
        "mkdir -p ${{targets.destdir}}/usr/share\nhead -c 67108864 /dev/zero > ${{targets.destdir}}/usr/share/blob\n",
    );
    let res = build_in(tmp.path(), &one, &out, &["--max-disk", "16M"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("reached the 16.0 MiB file-size cap (--max-disk"),
        "{err}"
    );

    // Sixteen 4 MiB files: no file reaches the cap, their sum does.
    let many = recipe(
        tmp.path(),
        "manyfiles",
        "mkdir -p ${{targets.destdir}}/usr/share\nfor i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do\n  head -c 4194304 /dev/urandom > ${{targets.destdir}}/usr/share/blob$i\ndone\nsleep 30\n",
    );
    let json = tmp.path().join("results.json");
    let res = build_in(
        tmp.path(),
        &many,
        &out,
        &["--max-disk", "16M", "--json", json.to_str().unwrap()],
    );
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(
            "step manyfiles/runs stopped: it wrote more than the 16.0 MiB disk cap (--max-disk)"
        ),
        "{err}"
    );
    assert!(json_message(&json).contains("16.0 MiB disk cap (--max-disk)"));

    // The private /tmp is memory, not the workspace: the cap bounds it too.
    let tmpfill = recipe(
        tmp.path(),
        "tmpfill",
        "mkdir -p ${{targets.destdir}}/usr/share
for i in 1 2 3 4 5 6; do
  head -c 4194304 /dev/zero > /tmp/blob$i || exit 3
done
touch ${{targets.destdir}}/usr/share/done
",
    );
    let res = build_in(tmp.path(), &tmpfill, &out, &["--max-disk", "16M"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("step tmpfill/runs stopped: it ran out of space")
            && err.contains("/tmp and /var/tmp each hold at most 16.0 MiB"),
        "{err}"
    );

    assert_eq!(
        snapshot(&out.join(arch())),
        before,
        "a stopped build changed the repository"
    );
    assert_eq!(leftover_workspaces(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_normal_build_under_generous_limits_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let r = recipe(
        tmp.path(),
        "fine",
        "mkdir -p ${{targets.destdir}}/usr/share/fine\nfor i in 1 2 3 4; do (echo $i > ${{targets.destdir}}/usr/share/fine/$i) & done\nwait\nhead -c 1048576 /dev/zero > ${{targets.destdir}}/usr/share/fine/blob\n",
    );
    let runner = if bwrap_or_skip() { "bwrap" } else { "host" };
    let res = build_in(
        tmp.path(),
        &r,
        &out,
        &[
            "--runner",
            runner,
            "--max-processes",
            "256",
            "--max-disk",
            "64M",
        ],
    );
    assert_ok(&res);
    assert!(apk(&out, "fine-1.0.0-r0.apk").is_file());
}
