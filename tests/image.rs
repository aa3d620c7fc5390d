//! `pkgbuild image` end to end: the base repository of `examples/base/`
//! (served on 127.0.0.1) and the hello example built hermetically against
//! it become images, which are opened with the real tools — `skopeo
//! inspect oci-archive:…`, `umoci unpack` — and run from the unpacked root
//! under bubblewrap as the user umoci's runtime config names. Plus bad
//! configurations, which need no repository.
//!
//! skopeo and umoci come from the distribution (`apt-get install skopeo
//! umoci`); without them the heavy test skips, except under CI.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use util::base::{base, public_key};
use util::http::Server;
use util::{pkgbuild, show, test_key};

/// `util::EPOCH` as RFC 3339.
const CREATED: &str = "2023-11-14T22:13:20Z";

/// Whether `tool` runs; a missing one skips the test unless `CI` is set.
fn have(tool: &str) -> bool {
    util::require(
        tool,
        "the image tests open images with it (apt-get install skopeo umoci)",
    )
}

/// `pkgbuild image CONFIG --out OUT` with the test repositories, key,
/// cache and epoch, plus `extra`.
fn image(config: &Path, out: &Path, repos: &[&str], cache: &Path, extra: &[&str]) -> Output {
    let mut cmd = util::cmd();
    cmd.arg("image")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("-k")
        .arg(public_key())
        .arg("--apk-cache-dir")
        .arg(cache)
        .env("SOURCE_DATE_EPOCH", util::EPOCH);
    for r in repos {
        cmd.args(["-r", r]);
    }
    cmd.args(extra).output().unwrap()
}

/// The `image sha256:…` line the command prints.
fn digest(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.strip_prefix("image "))
        .unwrap_or_else(|| panic!("no digest line\n{}", show(out)))
        .to_string()
}

fn json(out: &Output) -> Value {
    util::assert_ok(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Unpack `tar` with umoci (`--image DIR:TAG`); the bundle directory.
fn umoci_unpack(tar: &Path, tag: &str, dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let x = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(&layout)
        .output()
        .unwrap();
    util::assert_ok(&x);
    let bundle = dir.join("bundle");
    let mut image = layout.into_os_string();
    image.push(format!(":{tag}"));
    let u = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(&image)
        .arg(&bundle)
        .output()
        .unwrap();
    util::assert_ok(&u);
    bundle
}

/// Run the bundle's process (args, uid, gid, cwd and env from umoci's
/// runtime config) with the unpacked root as `/`.
fn run_bundle(bundle: &Path) -> (Output, u64) {
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let process = &cfg["process"];
    let uid = process["user"]["uid"].as_u64().unwrap();
    let gid = process["user"]["gid"].as_u64().unwrap();
    let mut cmd = Command::new("bwrap");
    cmd.arg("--bind")
        .arg(bundle.join("rootfs"))
        .args(["/", "--proc", "/proc", "--dev", "/dev", "--unshare-all"])
        .args(["--uid", &uid.to_string(), "--gid", &gid.to_string()])
        .args(["--chdir", process["cwd"].as_str().unwrap_or("/")])
        .arg("--clearenv");
    for e in process["env"].as_array().unwrap() {
        let (k, v) = e.as_str().unwrap().split_once('=').unwrap();
        cmd.args(["--setenv", k, v]);
    }
    cmd.arg("--");
    for a in process["args"].as_array().unwrap() {
        cmd.arg(a.as_str().unwrap());
    }
    (cmd.output().unwrap(), uid)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn hello_becomes_a_reproducible_non_root_image_that_skopeo_and_umoci_open_and_that_runs() {
    let Some(base) = base() else { return };
    if !have("skopeo") || !have("umoci") {
        return;
    }
    let server = Server::start(base);
    let repo = format!("http://127.0.0.1:{}", server.port);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");

    // The quick start's hello, built hermetically against the served base.
    let packages = tmp.path().join("packages");
    let built = pkgbuild(&[
        "build".as_ref(),
        util::repo_root()
            .join("examples/hello/hello.yaml")
            .as_os_str(),
        "-r".as_ref(),
        repo.as_ref(),
        "--out-dir".as_ref(),
        packages.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
        "--build-date".as_ref(),
        util::EPOCH.as_ref(),
        "-q".as_ref(),
    ]);
    util::assert_ok(&built);
    let pkgs = packages.to_string_lossy().into_owned();
    let repos = [repo.as_str(), pkgs.as_str()];

    // The example config, copied so its lock file lands in the temp dir.
    let example =
        std::fs::read_to_string(util::repo_root().join("examples/image/hello.yaml")).unwrap();
    let config = write(&tmp.path().join("cfg"), "hello.yaml", &example);
    let sboms = tmp.path().join("sbom");
    let tag = ["--tag", "hello:1.2.0"];
    let a_tar = tmp.path().join("a.tar");
    let a = image(
        &config,
        &a_tar,
        &repos,
        &cache,
        &[&tag[..], &["--sbom-dir", sboms.to_str().unwrap()]].concat(),
    );
    util::assert_ok(&a);
    let err = String::from_utf8_lossy(&a.stderr);
    assert!(!err.contains("warning:"), "non-root, no shell: {err}");
    assert_eq!(
        String::from_utf8_lossy(&a.stdout).trim(),
        a_tar.to_str().unwrap()
    );

    // Twice, from a cold cache: the same bytes, so the same digest.
    let b_tar = tmp.path().join("b.tar");
    let b = image(&config, &b_tar, &repos, &tmp.path().join("cold"), &tag);
    util::assert_ok(&b);
    assert_eq!(digest(&a), digest(&b));
    assert!(
        std::fs::read(&a_tar).unwrap() == std::fs::read(&b_tar).unwrap(),
        "two builds differ"
    );

    // A lock file made from the config pins the same packages.
    let lock = pkgbuild(&[
        "lock".as_ref(),
        config.as_os_str(),
        "-r".as_ref(),
        repo.as_ref(),
        "-r".as_ref(),
        pkgs.as_ref(),
        "-k".as_ref(),
        public_key().as_os_str(),
        "--apk-cache-dir".as_ref(),
        cache.as_os_str(),
    ]);
    util::assert_ok(&lock);
    let lock_text = std::fs::read_to_string(config.with_file_name("hello.lock.json")).unwrap();
    assert!(lock_text.contains("\"hello\"") && lock_text.contains("\"glibc\""));
    let c_tar = tmp.path().join("c.tar");
    let c = image(&config, &c_tar, &repos, &cache, &tag);
    util::assert_ok(&c);
    assert!(show(&c).contains("locked in"), "{}", show(&c));
    assert_eq!(digest(&a), digest(&c));

    // skopeo reads it as an oci-archive, with the configured runtime.
    let archive = format!("oci-archive:{}", a_tar.display());
    let inspect = json(
        &Command::new("skopeo")
            .args(["inspect", &archive])
            .output()
            .unwrap(),
    );
    assert_eq!(inspect["Digest"], digest(&a));
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Created"], CREATED);
    assert_eq!(inspect["Labels"]["org.opencontainers.image.title"], "hello");
    let conf = json(
        &Command::new("skopeo")
            .args(["inspect", "--config", &archive])
            .output()
            .unwrap(),
    );
    let rc = &conf["config"];
    assert_eq!(rc["User"], "nonroot");
    assert_eq!(rc["Entrypoint"], serde_json::json!(["/usr/bin/hello"]));
    assert_eq!(rc["Cmd"], serde_json::json!(["container"]));
    assert_eq!(rc["WorkingDir"], "/home/nonroot");
    assert!(rc["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "LANG=C.UTF-8"));

    // umoci unpacks it; its runtime config runs the entrypoint as 65532.
    let bundle = umoci_unpack(&a_tar, "hello:1.2.0", &tmp.path().join("unpacked"));
    let (ran, uid) = run_bundle(&bundle);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "Hello, container!\n");
    assert_eq!(uid, 65532);
    let rootfs = bundle.join("rootfs");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(rootfs.join("home/nonroot"))
            .unwrap()
            .uid(),
        65532
    );
    for shell in ["usr/bin/sh", "usr/bin/busybox", "usr/bin/bash"] {
        assert!(
            !rootfs.join(shell).exists(),
            "{shell} in a shell-less image"
        );
    }
    let db = std::fs::read_to_string(rootfs.join("usr/lib/apk/db/installed")).unwrap();
    assert!(db.contains("P:hello\n") && db.contains("P:glibc\n"), "{db}");
    assert!(std::fs::read_to_string(rootfs.join("etc/os-release"))
        .unwrap()
        .contains("PRETTY_NAME=\"hello on pkgbuild\""));
    // The packages carry SBOMs, so the image carries its own.
    assert!(rootfs
        .join("var/lib/db/sbom/image-x86_64.spdx.json")
        .is_file());

    // The SBOM: every installed package, valid SPDX 2.3.
    let sbom_bytes = std::fs::read(sboms.join("sbom-x86_64.spdx.json")).unwrap();
    let sbom: Value = serde_json::from_slice(&sbom_bytes).unwrap();
    let names: Vec<&str> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in ["hello:1.2.0", "hello", "glibc", "ld-linux", "merged-usr"] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let hello = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "hello")
        .unwrap();
    assert_eq!(hello["versionInfo"], "1.2.0-r0");
    assert_eq!(hello["licenseDeclared"], "MIT");
    assert_eq!(hello["checksums"][0]["algorithm"], "SHA1");
    assert!(hello["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap()
        .starts_with("pkg:apk/pkgbuild/hello@1.2.0-r0?arch=x86_64"));
    util::validate_spdx(&[("image-sbom".into(), sbom_bytes)]);

    // A second image with busybox: `id -u` run the same way is the uid.
    let id_cfg = write(
        &tmp.path().join("cfg"),
        "id.yaml",
        "contents:\n  packages: [hello, busybox]\nentrypoint:\n  command: /usr/bin/busybox id -u\naccounts:\n  users:\n    - username: app\n      uid: 4242\n  run-as: app\n",
    );
    let id_tar = tmp.path().join("id.tar");
    let id = image(&id_cfg, &id_tar, &repos, &cache, &["--tag", "id"]);
    util::assert_ok(&id);
    assert!(
        !show(&id).contains("warning:"),
        "busybox was asked for: {}",
        show(&id)
    );
    let bundle = umoci_unpack(&id_tar, "id", &tmp.path().join("id-unpacked"));
    let (ran, uid) = run_bundle(&bundle);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(uid, 4242);
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "4242\n");

    // A shell nobody asked for, and root: warnings naming who brought it;
    // --strict makes them errors and writes nothing.
    let extra = tmp.path().join("extra");
    std::fs::create_dir_all(tmp.path().join("needs")).unwrap();
    let needs = util::write_recipe(
        &tmp.path().join("needs"),
        "needs-sh",
        "package:\n  name: needs-sh\n  version: 1.0.0\n  epoch: 0\n  description: a script that needs a shell\n  copyright:\n    - license: MIT\n  dependencies:\n    runtime:\n      - busybox\npipeline:\n  - runs: |\n      mkdir -p ${{targets.destdir}}/usr/share/needs-sh\n      echo hi > ${{targets.destdir}}/usr/share/needs-sh/hi\n",
    );
    util::assert_ok(&pkgbuild(&[
        "build".as_ref(),
        needs.as_os_str(),
        "--runner".as_ref(),
        "host".as_ref(),
        "--out-dir".as_ref(),
        extra.as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "-q".as_ref(),
    ]));
    let extra_s = extra.to_string_lossy().into_owned();
    let sh_cfg = write(
        &tmp.path().join("cfg"),
        "sh.yaml",
        "contents:\n  packages: [needs-sh]\n",
    );
    let sh_repos = [repo.as_str(), extra_s.as_str()];
    let warned = image(&sh_cfg, &tmp.path().join("sh.tar"), &sh_repos, &cache, &[]);
    util::assert_ok(&warned);
    let text = show(&warned);
    assert!(text.contains("warning: the image runs as root"), "{text}");
    assert!(
        text.contains("contains a shell (")
            && text.contains("/usr/bin/busybox")
            && text.contains("from package busybox-")
            && text.contains("pulled in by needs-sh → busybox"),
        "{text}"
    );
    let strict_out = tmp.path().join("strict.tar");
    let strict = image(&sh_cfg, &strict_out, &sh_repos, &cache, &["--strict"]);
    assert!(!strict.status.success());
    assert!(
        show(&strict).contains("--strict: the image runs as root"),
        "{}",
        show(&strict)
    );
    assert!(!strict_out.exists(), "--strict wrote an image");

    // A package nobody has: the resolver's chain, and nothing written.
    let missing_cfg = write(
        &tmp.path().join("cfg"),
        "missing.yaml",
        "contents:\n  packages: [hello, no-such-package]\n",
    );
    let missing_out = tmp.path().join("missing.tar");
    let missing = image(&missing_cfg, &missing_out, &repos, &cache, &[]);
    assert_eq!(missing.status.code(), Some(1), "{}", show(&missing));
    let text = show(&missing);
    assert!(
        text.contains("cannot satisfy no-such-package")
            && text.contains("required by: world: no-such-package"),
        "{text}"
    );
    assert!(!missing_out.exists());
}

#[test]
fn bad_configurations_are_refused_with_their_place_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cfg");
    write(tmp.path(), "outside.yaml", "cmd: x\n");
    let head = "contents:\n  repositories: [http://127.0.0.1:9]\n  packages: [hello]\n";
    let cases: &[(&str, &str)] = &[
        (
            "entrypiont:\n  command: /x\n",
            "4:1: unknown key `entrypiont` in `image configuration` (did you mean `entrypoint`?)",
        ),
        (
            "paths:\n  - path: ../../etc/shadow\n    type: empty-file\n",
            "5:11: `path` \"../../etc/shadow\" leaves the image root",
        ),
        (
            "paths:\n  - path: /x\n    type: hardlink\n    source: ../../etc/shadow\n",
            "7:13: `source` \"../../etc/shadow\" leaves the image root",
        ),
        (
            "include: ../outside.yaml\n",
            "4:10: `include` \"../outside.yaml\" is outside the config's directory",
        ),
        (
            "accounts:\n  users:\n    - username: app\n      uid: app\n",
            "7:12: `uid` must be a number, found `app`",
        ),
        (
            "layering:\n  strategy: origin\n",
            "4:1: `layering` is not supported yet",
        ),
    ];
    for (i, (body, want)) in cases.iter().enumerate() {
        let cfg = write(&dir, &format!("c{i}.yaml"), &format!("{head}{body}"));
        let out = tmp.path().join(format!("c{i}.tar"));
        let res = util::cmd()
            .arg("image")
            .arg(&cfg)
            .arg("--out")
            .arg(&out)
            .arg("--offline")
            .arg("--apk-cache-dir")
            .arg(tmp.path().join("cache"))
            .output()
            .unwrap();
        assert_eq!(res.status.code(), Some(2), "{}", show(&res));
        let err = String::from_utf8_lossy(&res.stderr);
        let place = format!("{}:{want}", cfg.display());
        assert!(err.contains(&place), "expected {place:?}\n{err}");
        assert!(!out.exists());
    }
}
