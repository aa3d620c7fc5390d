//! Hermetic builds: the base repository of `examples/base/` (built once per
//! run with the host runner) is served over HTTP on 127.0.0.1, and recipes
//! that name it build in a guest root made only of its packages. What they
//! write is then installed from the base plus the output repository into a
//! fresh root with pkgbuild's resolver and installer and run there.

mod util;

use std::path::{Path, PathBuf};

use util::base::{base, install_fresh, public_key, run_in_root, ARCH};
use util::http::Server;
use util::{pkgbuild, show, test_key};

/// A one-file C program recipe that names the served base repository.
fn write_recipe(
    dir: &Path,
    name: &str,
    repo: &str,
    extra_step: &str,
    packages: &[&str],
) -> PathBuf {
    write_recipe_with(dir, name, repo, extra_step, packages, "", "")
}

/// [`write_recipe`] with `env_block` (lines under the top-level
/// `environment:`, indented by two) and `tail` (top-level YAML appended,
/// e.g. a `test:` block).
fn write_recipe_with(
    dir: &Path,
    name: &str,
    repo: &str,
    extra_step: &str,
    packages: &[&str],
    env_block: &str,
    tail: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("prog.c"),
        "#include <stdio.h>\nint main(void) { puts(\"hermetic hello\"); return 0; }\n",
    )
    .unwrap();
    let pkgs: String = packages.iter().map(|p| format!("      - {p}\n")).collect();
    let body = format!(
        "package:\n  name: {name}\n  version: 1.0.0\n  epoch: 0\n  description: hermetic test program\n  copyright:\n    - license: MIT\nenvironment:\n  contents:\n    repositories:\n      - {repo}\n    keyring:\n      - {key}\n    packages:\n{pkgs}{env_block}pipeline:\n  - name: isolation\n    runs: |\n{extra_step}  - name: compile\n    runs: |\n      cc -O2 -o {name} prog.c\n      install -Dm755 {name} ${{{{targets.destdir}}}}/usr/bin/{name}\n{tail}",
        key = public_key().display(),
    );
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, body).unwrap();
    path
}

fn build(recipe: &Path, out: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<std::ffi::OsString> = vec![
        "build".into(),
        recipe.into(),
        "--out-dir".into(),
        out.into(),
        "--signing-key".into(),
        test_key().into(),
        "--apk-cache-dir".into(),
        cache.into(),
        "--build-date".into(),
        util::EPOCH.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    pkgbuild(&args)
}

#[test]
fn a_c_program_builds_hermetically_from_a_served_base_then_installs_and_runs_in_a_fresh_root() {
    let Some(base) = base() else { return };
    let server = Server::start(base);
    let repo = format!("http://127.0.0.1:{}", server.port);
    let tmp = tempfile::tempdir().unwrap();
    // A file the host has and no package ships (not under /tmp, which
    // is private in any sandbox).
    let marker_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let marker = marker_dir.path().join("host-only-file");
    std::fs::write(&marker, "host").unwrap();
    let check = format!(
        "      test -e {m0} && exit 1\n      test -e /etc/debian_version && exit 1\n      test -e /usr/bin/cargo && exit 1\n      grep -q '^P:glibc$' /lib/apk/db/installed\n      test \"$(cat /etc/apk/arch)\" = {ARCH}\n      grep -q '^build:x:1000:1000:' /etc/passwd\n      test -d /var/cache/melange -a -w /var/cache/melange\n",
        m0 = marker.display()
    );
    assert!(marker.exists());
    let recipe = write_recipe(
        &tmp.path().join("src"),
        "hermetic-hello",
        &repo,
        &check,
        &["build-base"],
    );
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");

    let first = build(&recipe, &out, &cache, &[]);
    util::assert_ok(&first);
    let apks = server.count(".apk");
    assert!(
        apks >= 15,
        "the first build downloads the toolchain ({apks} .apk requests)"
    );
    let log = show(&first);
    assert!(log.contains("is / for the steps"), "{log}");
    let apk = out.join(ARCH).join("hermetic-hello-1.0.0-r0.apk");
    let info = util::pkginfo(&apk);
    assert!(
        info["depend"].iter().any(|d| d == "so:libc.so.6"),
        "{info:?}"
    );
    let embedded = util::entries(&apk);
    let recipe_text = String::from_utf8(embedded[".melange.yaml"].content.clone()).unwrap();
    assert!(recipe_text.contains("- glibc=2."), "{recipe_text}");
    assert!(recipe_text.contains(&repo), "{recipe_text}");

    // Second build, same cache: no package is downloaded again; the result
    // is byte-identical.
    let before = std::fs::read(&apk).unwrap();
    util::assert_ok(&build(&recipe, &out, &cache, &[]));
    assert_eq!(
        server.count(".apk"),
        apks,
        "the second build downloaded packages"
    );
    assert_eq!(
        std::fs::read(&apk).unwrap(),
        before,
        "rebuild is not reproducible"
    );

    // Offline: a warm cache works without a single request; a cold one
    // fails naming what is missing and writes nothing.
    let requests = server.hits().len();
    util::assert_ok(&build(&recipe, &out, &cache, &["--offline"]));
    assert_eq!(server.hits().len(), requests, "--offline made requests");
    let cold_out = tmp.path().join("cold-out");
    let cold = build(&recipe, &cold_out, &tmp.path().join("cold"), &["--offline"]);
    assert!(!cold.status.success());
    let err = show(&cold);
    assert!(err.contains("--offline") && err.contains(&repo), "{err}");
    assert!(!cold_out.join(ARCH).join("APKINDEX.tar.gz").exists());

    // The result installs into a fresh root from base + output repository
    // (so:libc.so.6 comes from the base) and runs there.
    let root = tmp.path().join("root");
    install_fresh(
        &[repo.clone(), out.to_string_lossy().into_owned()],
        &["hermetic-hello".to_string()],
        &cache,
        &root,
    );
    assert!(root.join("usr/lib/x86_64-linux-gnu/libc.so.6").exists());
    // No shell was asked for: the program runs on its own.
    let ran = run_in_root(&root, &["/usr/bin/hermetic-hello"]);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hermetic hello\n");
}

/// Build `pinned-data` at `version` (one file, /usr/share/pinned/version,
/// holding the version) into the repository `repo`, with the host runner.
fn publish_data(work: &Path, repo: &Path, version: &str) {
    let dir = work.join(format!("pin-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let r = dir.join("pinned-data.yaml");
    std::fs::write(
        &r,
        format!("package:\n  name: pinned-data\n  version: {version}\n  epoch: 0\n  description: data\n  copyright:\n    - license: MIT\npipeline:\n  - runs: |\n      mkdir -p ${{{{targets.destdir}}}}/usr/share/pinned\n      echo {version} > ${{{{targets.destdir}}}}/usr/share/pinned/version\n"),
    )
    .unwrap();
    let res = pkgbuild(&[
        "build".as_ref(),
        r.as_os_str(),
        "--runner".as_ref(),
        "host".as_ref(),
        "--out-dir".as_ref(),
        repo.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "-q".as_ref(),
    ]);
    util::assert_ok(&res);
}

#[test]
fn locks_pin_versions_and_untrusted_or_tampered_repositories_are_refused() {
    let Some(base) = base() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // A second repository beside the base: a data package at 1.0, later 1.1.
    let extra = tmp.path().join("extra");
    let data = |version: &str| publish_data(tmp.path(), &extra, version);
    data("1.0");
    let server = Server::start(base);
    let repo = format!("http://127.0.0.1:{}", server.port);
    let check = "      cat /usr/share/pinned/version > /home/build/seen-version\n      mkdir -p ${{targets.destdir}}/usr/share/seen\n      cp /usr/share/pinned/version ${{targets.destdir}}/usr/share/seen/\n";
    let recipe = write_recipe(
        &tmp.path().join("src"),
        "pin-user",
        &repo,
        check,
        &["build-base", "pinned-data"],
    );
    let extra_url = format!("file://{}", extra.display());
    let cache = tmp.path().join("cache");
    let lock = pkgbuild(&[
        "lock".as_ref(),
        recipe.as_os_str(),
        "-r".as_ref(),
        extra_url.as_ref(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
    ]);
    util::assert_ok(&lock);
    let lock_path = recipe.with_file_name("pin-user.lock.json");
    let lock_text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(
        lock_text.contains("\"pinned-data\"") && lock_text.contains("\"1.0-r0\""),
        "{lock_text}"
    );
    assert_eq!(server.count(".apk"), 0, "lock downloaded packages");

    data("1.1");
    let seen = |out: &Path| {
        let apk = out.join(ARCH).join("pin-user-1.0.0-r0.apk");
        let e = util::entries(&apk);
        String::from_utf8(e["usr/share/seen/version"].content.clone()).unwrap()
    };
    let out = tmp.path().join("out");
    util::assert_ok(&build(&recipe, &out, &cache, &["-r", &extra_url]));
    assert_eq!(seen(&out), "1.0\n", "the lock did not pin pinned-data");
    std::fs::remove_file(&lock_path).unwrap();
    let out2 = tmp.path().join("out2");
    util::assert_ok(&build(&recipe, &out2, &cache, &["-r", &extra_url]));
    assert_eq!(
        seen(&out2),
        "1.1\n",
        "without the lock the newest version wins"
    );

    // An index signed by a key nobody trusts: refused, nothing written.
    let other_key = tmp.path().join("other.rsa");
    util::assert_ok(&pkgbuild(&[
        "keygen".as_ref(),
        "--key-size".as_ref(),
        "2048".as_ref(),
        other_key.as_os_str(),
    ]));
    let index = extra.join(ARCH).join("APKINDEX.tar.gz");
    let good_index = std::fs::read(&index).unwrap();
    util::assert_ok(&pkgbuild(&[
        "sign-index".as_ref(),
        "--force".as_ref(),
        "--signing-key".as_ref(),
        other_key.as_os_str(),
        index.as_os_str(),
    ]));
    let refused_out = tmp.path().join("refused");
    let res = build(&recipe, &refused_out, &cache, &["-r", &extra_url]);
    assert!(!res.status.success());
    let err = show(&res);
    assert!(
        err.contains("other.rsa") || err.contains("UNTRUSTED") || err.contains("not signed by"),
        "{err}"
    );
    assert!(
        !refused_out.join(ARCH).exists()
            || !refused_out
                .join(ARCH)
                .join("pin-user-1.0.0-r0.apk")
                .exists()
    );

    // A package whose bytes differ from its index record: refused, nothing
    // written.
    std::fs::write(&index, good_index).unwrap();
    let pkg = extra.join(ARCH).join("pinned-data-1.1-r0.apk");
    let mut bytes = std::fs::read(&pkg).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x55;
    std::fs::write(&pkg, bytes).unwrap();
    let res = build(
        &recipe,
        &refused_out,
        &tmp.path().join("cache2"),
        &["-r", &extra_url],
    );
    assert!(!res.status.success());
    let err = show(&res);
    assert!(err.contains("pinned-data"), "{err}");
    assert!(!refused_out
        .join(ARCH)
        .join("pin-user-1.0.0-r0.apk")
        .exists());
}

#[test]
fn tests_run_hermetically_with_the_package_at_root_and_their_locks_pin_test_only_packages() {
    let Some(base) = base() else { return };
    let server = Server::start(base);
    let repo = format!("http://127.0.0.1:{}", server.port);
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("extra");
    publish_data(tmp.path(), &extra, "1.0");
    let extra_url = format!("file://{}", extra.display());
    // A file the host has and no package ships (not under /tmp).
    let marker_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let marker = marker_dir.path().join("host-only-file");
    std::fs::write(&marker, "host").unwrap();
    let name = "tested-hello";
    // The test environment names its own repositories (the base and the
    // one with the test-only pinned-data) and runs as a user of its own.
    let test_block = format!(
        "test:\n  environment:\n    contents:\n      repositories:\n        - {repo}\n        - {extra_url}\n      keyring:\n        - {key}\n      packages:\n        - busybox\n        - pinned-data\n    environment:\n      OVERRIDDEN: by-the-test\n    accounts:\n      users:\n        - username: tester\n          uid: 4242\n      run-as: tester\n  pipeline:\n    - name: at-root\n      runs: |\n        test \"$(command -v {name})\" = /usr/bin/{name}\n        test \"$({name})\" = \"hermetic hello\"\n        if test -e {marker}; then echo host file visible; exit 1; fi\n        test -e /etc/debian_version && exit 1\n        grep -q '^P:{name}$' /lib/apk/db/installed\n        test \"$FROM_TOP\" = top-level\n        test \"$OVERRIDDEN\" = by-the-test\n        test \"$(id -u)\" = 4242\n        test -w /var/cache/melange\n        echo \"pinned-version=$(cat /usr/share/pinned/version)\"\n",
        key = public_key().display(),
        marker = marker.display(),
    );
    let recipe = write_recipe_with(
        &tmp.path().join("src"),
        name,
        &repo,
        "      true\n",
        &["build-base"],
        "  environment:\n    FROM_TOP: top-level\n    OVERRIDDEN: top-level\n",
        &test_block,
    );
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let test = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "test".into(),
            recipe.clone().into(),
            "--out-dir".into(),
            out.clone().into(),
            "--signing-key".into(),
            test_key().into(),
            "--apk-cache-dir".into(),
            cache.clone().into(),
            "--cache-dir".into(),
            tmp.path().join("cache-dir").into(),
        ];
        args.extend(extra.iter().map(Into::into));
        pkgbuild(&args)
    };

    // Not built yet: the clear error of today.
    let early = test(&[]);
    assert_eq!(early.status.code(), Some(1), "{}", show(&early));
    let text = show(&early);
    assert!(
        text.contains("tested-hello=1.0.0-r0 is not in") && text.contains("build it first"),
        "{text}"
    );

    util::assert_ok(&build(&recipe, &out, &cache, &[]));
    let first = test(&[]);
    let text = show(&first);
    assert!(first.status.success(), "{text}");
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("PASS tested-hello-1.0.0-r0 (1 step)"),
        "{text}"
    );
    assert!(text.contains("is / for the steps"), "{text}");
    assert!(!text.contains("not hermetic"), "{text}");
    assert!(text.contains("pinned-version=1.0"), "{text}");

    // Lock (the output repository is read for the package under test and
    // its scanned dependencies), then publish a newer pinned-data.
    let lock = pkgbuild(&[
        "lock".as_ref(),
        recipe.as_os_str(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
    ]);
    util::assert_ok(&lock);
    let lock_path = recipe.with_file_name(format!("{name}.lock.json"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&lock_path).unwrap()).unwrap();
    let t = &json["tests"][name];
    assert!(
        t["config"]["checksum"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{json}"
    );
    let locked: Vec<(&str, &str)> = t["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["version"].as_str().unwrap()))
        .collect();
    assert!(locked.contains(&("pinned-data", "1.0-r0")), "{locked:?}");
    assert!(locked.iter().any(|(n, _)| *n == "glibc"), "{locked:?}");
    assert!(
        !locked.iter().any(|(n, _)| *n == name),
        "the package under test is pinned by checksum: {locked:?}"
    );
    assert_eq!(t["rebuilt"][0]["name"], name, "{json}");
    assert_eq!(t["rebuilt"][0]["version"], "1.0.0-r0", "{json}");
    // The build environment keeps the apko shape.
    assert!(json["contents"]["packages"].as_array().unwrap().len() > 10);

    publish_data(tmp.path(), &extra, "1.1");
    let locked_run = test(&[]);
    let text = show(&locked_run);
    assert!(locked_run.status.success(), "{text}");
    assert!(
        text.contains("pinned-version=1.0"),
        "the lock did not pin pinned-data:\n{text}"
    );
    assert!(text.contains("locked in"), "{text}");

    // A rebuilt package under test is still taken by version (its checksum
    // changes with every build): a rebuild with a new build date passes.
    let apk = out.join(ARCH).join(format!("{name}-1.0.0-r0.apk"));
    let before = std::fs::read(&apk).unwrap();
    util::assert_ok(&pkgbuild(&[
        "build".as_ref(),
        recipe.as_os_str(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
        "--build-date".as_ref(),
        "1600000000".as_ref(),
    ]));
    assert!(
        std::fs::read(&apk).unwrap() != before,
        "the rebuild is the same file"
    );
    let rebuilt_run = test(&[]);
    assert!(rebuilt_run.status.success(), "{}", show(&rebuilt_run));

    // A changed test environment makes the lock stale.
    let stale = test(&["--package-append", "make"]);
    assert_eq!(stale.status.code(), Some(1), "{}", show(&stale));
    assert!(show(&stale).contains("pkgbuild lock"), "{}", show(&stale));

    // Without the lock the newest version wins.
    std::fs::remove_file(&lock_path).unwrap();
    let unlocked = test(&[]);
    let text = show(&unlocked);
    assert!(unlocked.status.success(), "{text}");
    assert!(text.contains("pinned-version=1.1"), "{text}");
}
