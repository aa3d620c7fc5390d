//! `pkgbuild build` end to end: real recipes, the real binary, then the
//! packages and index it wrote are opened and checked.

mod util;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use util::*;

fn example_recipe() -> PathBuf {
    repo_root().join("examples/hello/hello.yaml")
}

#[test]
fn example_builds_into_a_signed_repository_with_split_subpackages() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let res = build(&example_recipe(), &out, &[]);
    assert_ok(&res);

    let main = apk(&out, "hello-1.2.0-r0.apk");
    let dev = apk(&out, "hello-dev-1.2.0-r0.apk");
    let doc = apk(&out, "hello-doc-1.2.0-r0.apk");
    let index = apk(&out, "APKINDEX.tar.gz");
    for p in [&main, &dev, &doc, &index] {
        assert!(p.exists(), "missing {}\n{}", p.display(), show(&res));
    }
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(stdout.contains("hello-1.2.0-r0.apk"), "{stdout}");

    let v = verify(&[main.clone(), dev.clone(), doc.clone(), index.clone()]);
    assert_ok(&v);
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).matches(": OK").count(),
        4,
        "{}",
        show(&v)
    );

    // The program and the versioned library stay in the main package.
    let e = entries(&main);
    assert_eq!(e["usr/bin/hello"].mode & 0o7777, 0o755);
    assert_eq!(e["usr/bin/hello"].kind, '0');
    assert!(e.contains_key("usr/lib/libgreet.so.1.2.0"));
    assert_eq!(e["usr/lib/libgreet.so.1"].kind, '2');
    assert!(
        !e.contains_key("usr/include/greet.h"),
        "headers must move to -dev"
    );
    assert!(
        !e.contains_key("usr/share/man/man1/hello.1"),
        "man page must move to -doc"
    );
    assert!(e.contains_key(".melange.yaml"));
    assert!(
        e.keys()
            .any(|k| k.starts_with("var/lib/db/sbom/hello-1.2.0-r0.spdx.json")),
        "no SBOM"
    );
    for (path, entry) in &e {
        if entry.kind == '0' && !path.starts_with('.') {
            assert!(
                entry.pax.contains_key("APK-TOOLS.checksum.SHA1"),
                "{path} has no checksum"
            );
        }
    }

    let dev_e = entries(&dev);
    assert!(dev_e.contains_key("usr/include/greet.h"));
    assert!(dev_e.contains_key("usr/lib/pkgconfig/greet.pc"));
    let doc_e = entries(&doc);
    assert!(
        doc_e
            .keys()
            .any(|k| k.starts_with("usr/share/man/man1/hello.1")),
        "{:?}",
        doc_e.keys().collect::<Vec<_>>()
    );

    // Scanned metadata: the library and command are provided, the -dev
    // package depends on its declared runtime dependency.
    let info = pkginfo(&main);
    let provides = &info["provides"];
    assert!(
        provides.contains(&"so:libgreet.so.1=1.2.0".to_string()),
        "{provides:?}"
    );
    assert!(
        provides.contains(&"cmd:hello=1.2.0-r0".to_string()),
        "{provides:?}"
    );
    assert_eq!(info["builddate"], vec![EPOCH.to_string()]);
    assert_eq!(info["license"], vec!["MIT".to_string()]);
    let dev_info = pkginfo(&dev);
    assert!(
        dev_info["depend"].contains(&"hello".to_string()),
        "{dev_info:?}"
    );
    assert!(
        dev_info["provides"]
            .iter()
            .any(|p| p.starts_with("pc:greet=")),
        "{dev_info:?}"
    );

    let text = index_text(&index);
    for name in ["hello", "hello-dev", "hello-doc"] {
        assert!(
            text.contains(&format!("\nP:{name}\n")),
            "{name} not indexed:\n{text}"
        );
    }
    assert!(text.ends_with("\n\n"));

    assert_conformant(&out.join(arch()));

    let log = out.join("logs/hello-1.2.0-r0.log");
    assert!(
        fs::read_to_string(&log).unwrap().contains("hello/Build"),
        "log lacks step output"
    );
}

#[test]
fn building_twice_gives_byte_identical_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert_ok(&build(&example_recipe(), &a, &[]));
    assert_ok(&build(&example_recipe(), &b, &[]));
    for f in [
        "hello-1.2.0-r0.apk",
        "hello-dev-1.2.0-r0.apk",
        "hello-doc-1.2.0-r0.apk",
        "APKINDEX.tar.gz",
    ] {
        assert!(
            fs::read(apk(&a, f)).unwrap() == fs::read(apk(&b, f)).unwrap(),
            "{f} differs between two builds"
        );
    }
}

/// The example project's source files (not its recipe) copied to `dst`.
fn copy_example_sources(dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for f in [
        "Makefile",
        "greet.c",
        "greet.h",
        "hello.c",
        "hello.1",
        "greet.pc.in",
    ] {
        fs::copy(repo_root().join("examples/hello").join(f), dst.join(f)).unwrap();
    }
}

/// A release tarball of the example project, as upstreams publish them.
fn example_tarball() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    copy_example_sources(&dir.path().join("hello-1.2.0"));
    tarball(dir.path(), "hello-1.2.0")
}

fn fetch_recipe(dir: &Path, url: &str, sha: &str) -> PathBuf {
    let recipe = dir.join("greet.yaml");
    fs::write(
        &recipe,
        format!(
            r#"package:
  name: greet
  version: 1.2.0
  epoch: 1
  description: libgreet from a release tarball
  copyright:
    - license: MIT
pipeline:
  - uses: fetch
    with:
      uri: {url}
      expected-sha256: {sha}
  - runs: make PREFIX=/usr
  - runs: make install DESTDIR="${{{{targets.destdir}}}}" PREFIX=/usr
  - uses: strip
"#
        ),
    )
    .unwrap();
    recipe
}

#[test]
fn fetches_a_tarball_from_a_local_http_server_and_checks_its_digest() {
    let body = example_tarball();
    let sha = sha256_hex(&body);
    let (port, hits) = serve(body);
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/hello-1.2.0.tar.gz");
    let recipe = fetch_recipe(tmp.path(), &url, &sha);
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe, &out, &[]));
    let pkg = apk(&out, "greet-1.2.0-r1.apk");
    assert_ok(&verify(std::slice::from_ref(&pkg)));
    assert!(entries(&pkg).contains_key("usr/bin/hello"));
    assert!(hits.load(std::sync::atomic::Ordering::SeqCst) >= 1);
}

#[test]
fn wrong_checksum_fails_before_any_step_and_leaves_the_repository_unchanged() {
    let body = example_tarball();
    let good = sha256_hex(&body);
    let (port, _) = serve(body);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // A repository with a package in it already.
    assert_ok(&build(&example_recipe(), &out, &[]));
    let before = snapshot(&out.join(arch()));

    let wrong = "0".repeat(64);
    let url = format!("http://127.0.0.1:{port}/hello-1.2.0.tar.gz");
    let recipe = fetch_recipe(tmp.path(), &url, &wrong);
    let res = build(&recipe, &out, &[]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(&wrong) && err.contains(&good),
        "both digests must be shown:\n{err}"
    );
    assert!(
        !err.contains("==> greet/"),
        "a step ran before the checksum check:\n{err}"
    );
    assert_eq!(snapshot(&out.join(arch())), before, "repository changed");
}

#[test]
fn git_checkout_source_is_cloned_on_the_host_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("upstream");
    copy_example_sources(&src);
    let commit = git_repo_with_tag(&src, "v1.2.0");

    let recipe_for = |commit: &str| {
        let dir = tmp.path().join(format!("r-{}", &commit[..8]));
        fs::create_dir_all(&dir).unwrap();
        let recipe = dir.join("greet-git.yaml");
        fs::write(
            &recipe,
            format!(
                r#"package:
  name: greet-git
  version: 1.2.0
  epoch: 0
  description: libgreet from git
  copyright:
    - license: MIT
pipeline:
  - uses: git-checkout
    with:
      repository: {}
      tag: v1.2.0
      expected-commit: {commit}
  - runs: make PREFIX=/usr && make install DESTDIR="${{{{targets.destdir}}}}" PREFIX=/usr
"#,
                src.display()
            ),
        )
        .unwrap();
        recipe
    };
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe_for(&commit), &out, &[]));
    assert!(entries(&apk(&out, "greet-git-1.2.0-r0.apk")).contains_key("usr/bin/hello"));

    let wrong = "1".repeat(40);
    let res = build(&recipe_for(&wrong), &tmp.path().join("repo2"), &[]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains(&wrong) && err.contains(&commit), "{err}");
}

#[test]
fn failing_step_names_the_step_and_status_and_keeps_the_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    assert_ok(&build(&example_recipe(), &out, &[]));
    let before = snapshot(&out.join(arch()));
    let recipe = write_recipe(
        tmp.path(),
        "broken",
        r#"package:
  name: broken
  version: 1.0.0
  epoch: 0
  description: fails on purpose
pipeline:
  - name: compile things
    runs: |
      echo "line before failure"
      exit 7
"#,
    );
    let res = build(&recipe, &out, &["--keep-workspace"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("compile things"), "{err}");
    assert!(err.contains("exit status 7"), "{err}");
    assert!(err.contains("line before failure"), "{err}");
    assert!(err.contains("workspace kept at"), "{err}");
    assert_eq!(snapshot(&out.join(arch())), before);
}

#[test]
fn recipe_errors_exit_2_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "typo",
        "package:\n  name: typo\n  version: 1.0.0\n  epoch: 0\npipline:\n  - runs: touch /tmp/should-not-run\n",
    );
    let out = tmp.path().join("repo");
    let res = build(&recipe, &out, &[]);
    assert_eq!(res.status.code(), Some(2), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("typo.yaml:5:1"), "{err}");
    assert!(!out.join(arch()).join("APKINDEX.tar.gz").exists());
}

#[test]
fn env_file_values_reach_steps_but_never_a_package() {
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("secrets.env");
    fs::write(&env, "API_TOKEN=s3cr3t-value-123\n").unwrap();
    // The recipe checks a digest of the token, so the token itself appears
    // nowhere but in the env file.
    let digest = sha256_hex(b"s3cr3t-value-123");
    let recipe = write_recipe(
        tmp.path(),
        "secretive",
        &format!(
            r#"package:
  name: secretive
  version: 1.0.0
  epoch: 0
  description: uses a token at build time
pipeline:
  - runs: |
      test "$(printf %s "$API_TOKEN" | sha256sum | cut -d' ' -f1)" = "{digest}"
      mkdir -p "${{{{targets.destdir}}}}/usr/share/secretive"
      echo ok > "${{{{targets.destdir}}}}/usr/share/secretive/result"
"#
        ),
    );
    let out = tmp.path().join("repo");
    let res = build(&recipe, &out, &["--env-file", env.to_str().unwrap()]);
    assert_ok(&res);
    let bytes = fs::read(apk(&out, "secretive-1.0.0-r0.apk")).unwrap();
    let mut raw = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert!(
        !raw.windows(b"s3cr3t".len()).any(|w| w == b"s3cr3t"),
        "env-file value leaked into the package"
    );
}

#[test]
fn sandbox_blocks_loopback_network_and_writes_outside_the_workspace() {
    if !bwrap_or_skip() {
        return;
    }
    let (listener, port) = quiet_listener();
    let tmp = tempfile::tempdir().unwrap();
    let net = write_recipe(
        tmp.path(),
        "net",
        &format!(
            "package:\n  name: net\n  version: 1.0.0\n  epoch: 0\n  description: n\npipeline:\n  - runs: exec 3<>/dev/tcp/127.0.0.1/{port}\n"
        ),
    );
    let res = build(&net, &tmp.path().join("repo"), &["--runner", "bwrap"]);
    assert_eq!(
        res.status.code(),
        Some(1),
        "connection must fail\n{}",
        show(&res)
    );
    assert!(
        listener.accept().is_err(),
        "the sandbox reached a loopback server"
    );

    // The user's home is not visible: a secret there cannot be read.
    let home = tmp.path().join("home-with-secret");
    fs::create_dir_all(&home).unwrap();
    let secret = home.join("secret.txt");
    fs::write(&secret, "top secret\n").unwrap();
    let read = write_recipe(
        tmp.path(),
        "peek",
        &format!(
            "package:\n  name: peek\n  version: 1.0.0\n  epoch: 0\n  description: p\npipeline:\n  - runs: cat {}\n",
            secret.display()
        ),
    );
    let res = build(&read, &tmp.path().join("repo-peek"), &["--runner", "bwrap"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(!String::from_utf8_lossy(&res.stderr).contains("top secret"));

    let marker = tmp.path().join("escaped");
    let write = write_recipe(
        tmp.path(),
        "escape",
        &format!(
            "package:\n  name: escape\n  version: 1.0.0\n  epoch: 0\n  description: e\npipeline:\n  - runs: touch {} || touch /usr/escaped\n",
            marker.display()
        ),
    );
    let res = build(&write, &tmp.path().join("repo2"), &["--runner", "bwrap"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    assert!(!marker.exists() && !Path::new("/usr/escaped").exists());
}

#[test]
fn first_build_without_a_key_creates_one_and_says_how_to_trust_it() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs::create_dir_all(&home).unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "tiny",
        "package:\n  name: tiny\n  version: 1.0.0\n  epoch: 0\n  description: t\npipeline:\n  - runs: mkdir -p ${{targets.destdir}}/etc && echo x > ${{targets.destdir}}/etc/tiny.conf\n",
    );
    let out = tmp.path().join("repo");
    let res = util::cmd()
        .arg("build")
        .arg(&recipe)
        .arg("--out-dir")
        .arg(&out)
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert_ok(&res);
    let keys = home.join(".config/pkgbuild/keys");
    let pubs: Vec<_> = fs::read_dir(&keys)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".rsa.pub"))
        .collect();
    assert_eq!(pubs.len(), 1);
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("/etc/apk/keys"), "{err}");
    let v = util::cmd()
        .arg("verify")
        .arg("--keys-dir")
        .arg(&keys)
        .arg(apk(&out, "tiny-1.0.0-r0.apk"))
        .arg(apk(&out, "APKINDEX.tar.gz"))
        .output()
        .unwrap();
    assert_ok(&v);
}

#[test]
fn concurrent_builds_into_one_repository_keep_every_package() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipes: Vec<PathBuf> = (0..4)
        .map(|i| {
            write_recipe(
                tmp.path(),
                &format!("c{i}"),
                &format!(
                    "package:\n  name: c{i}\n  version: 1.0.0\n  epoch: 0\n  description: c\npipeline:\n  - runs: mkdir -p ${{{{targets.destdir}}}}/usr/share/c{i} && echo {i} > ${{{{targets.destdir}}}}/usr/share/c{i}/f\n"
                ),
            )
        })
        .collect();
    let handles: Vec<_> = recipes
        .into_iter()
        .map(|r| {
            let out = out.clone();
            std::thread::spawn(move || build(&r, &out, &[]))
        })
        .collect();
    for h in handles {
        assert_ok(&h.join().unwrap());
    }
    let text = index_text(&apk(&out, "APKINDEX.tar.gz"));
    for i in 0..4 {
        assert!(text.contains(&format!("\nP:c{i}\n")), "c{i} lost:\n{text}");
    }
}

#[test]
fn a_killed_build_leaves_the_repository_exactly_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    assert_ok(&build(&example_recipe(), &out, &[]));
    let before = snapshot(&out.join(arch()));
    let recipe = write_recipe(
        tmp.path(),
        "slow",
        "package:\n  name: slow\n  version: 1.0.0\n  epoch: 0\n  description: s\npipeline:\n  - name: wait\n    runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/slow\n      echo started\n      sleep 60\n",
    );
    kill_when_printed(build_command(&recipe, &out, &[]), "started");
    assert_eq!(
        snapshot(&out.join(arch())),
        before,
        "a killed build changed the repository"
    );
    // The next build still publishes into it cleanly.
    assert_ok(&build(&example_recipe(), &out, &[]));
    assert_ok(&verify(&[apk(&out, "APKINDEX.tar.gz")]));
}

#[test]
fn host_runner_builds_are_reproducible_too() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    assert_ok(&build(&example_recipe(), &a, &["--runner", "host"]));
    assert_ok(&build(&example_recipe(), &b, &["--runner", "host"]));
    for f in [
        "hello-1.2.0-r0.apk",
        "hello-dev-1.2.0-r0.apk",
        "hello-doc-1.2.0-r0.apk",
    ] {
        assert!(
            fs::read(apk(&a, f)).unwrap() == fs::read(apk(&b, f)).unwrap(),
            "{f} differs between two host-runner builds"
        );
    }
}

#[test]
fn debug_traces_every_command_of_every_step() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "traced",
        "package:\n  name: traced\n  version: 1.0.0\n  epoch: 0\n  description: t\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/traced\n      echo traced-marker > ${{targets.destdir}}/usr/share/traced/f\n",
    );
    let quiet = build(&recipe, &tmp.path().join("a"), &[]);
    assert_ok(&quiet);
    assert!(!String::from_utf8_lossy(&quiet.stderr).contains("+ echo traced-marker"));
    let traced = build(&recipe, &tmp.path().join("b"), &["--debug"]);
    assert_ok(&traced);
    let err = String::from_utf8_lossy(&traced.stderr);
    assert!(err.contains("+ echo traced-marker"), "{err}");
    assert!(err.contains("build root"), "{err}");
}

#[test]
fn a_source_directory_that_holds_the_temp_directory_is_not_copied_into_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "nested",
        "package:\n  name: nested\n  version: 1.0.0\n  epoch: 0\n  description: n\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/nested\n      test -f nested.yaml && echo ok > ${{targets.destdir}}/usr/share/nested/f\n",
    );
    // TMPDIR inside the recipe's folder (the default source directory).
    let inner_tmp = tmp.path().join("tmp");
    fs::create_dir_all(&inner_tmp).unwrap();
    let mut cmd = build_command(&recipe, &tmp.path().join("repo"), &["--runner", "host"]);
    let res = cmd.env("TMPDIR", &inner_tmp).output().unwrap();
    assert_ok(&res);
}
