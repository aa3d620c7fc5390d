//! End-to-end recipes in the shape of melange's `e2e-tests/` (accounts and
//! run-as, capabilities, environment variables, subpackage pipelines,
//! library splitting), written for pkgbuild in `tests/e2e/`. Each is built
//! as melange's harness builds its recipes: `--pipeline-dir` plus `-r`/`-k`
//! naming a repository, here the base of `examples/base/` served on
//! 127.0.0.1, so every build is hermetic. The packages are then opened and
//! what the steps recorded in them is checked; libraries and programs are
//! installed into a fresh root and run there.
//!
//! Then `pkgbuild test` runs as melange's harness runs `melange test`
//! (`--pipeline-dirs`, `-r` naming the base and the output repository,
//! `-k` its key): hermetically, with the package under test at `/`.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use util::base::{base, install_fresh, public_key, run_in_root, ARCH};
use util::http::Server;
use util::{pkgbuild, show, test_key};

/// The served base and a package cache shared by every test of this
/// binary (concurrent builds sharing one cache are supported).
struct Served {
    server: Server,
    cache: tempfile::TempDir,
}

fn served() -> Option<&'static Served> {
    static SERVED: OnceLock<Option<Served>> = OnceLock::new();
    SERVED
        .get_or_init(|| {
            let base = base()?;
            Some(Served {
                server: Server::start(base),
                cache: tempfile::tempdir().unwrap(),
            })
        })
        .as_ref()
}

impl Served {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }
}

fn e2e_dir() -> PathBuf {
    util::repo_root().join("tests/e2e")
}

/// `pkgbuild build tests/e2e/<name>.yaml` hermetically into `out`; fails
/// the test with the log unless it succeeded.
#[track_caller]
fn build(s: &Served, name: &str, out: &Path) {
    let recipe = e2e_dir().join(format!("{name}.yaml"));
    let res = pkgbuild(&[
        "build".as_ref(),
        recipe.as_os_str(),
        "--pipeline-dir".as_ref(),
        e2e_dir().join("pipelines").as_os_str(),
        "-r".as_ref(),
        s.url().as_ref(),
        "-k".as_ref(),
        public_key().as_os_str(),
        "--signing-key".as_ref(),
        test_key().as_os_str(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--apk-cache-dir".as_ref(),
        s.cache.path().as_os_str(),
        "--build-date".as_ref(),
        util::EPOCH.as_ref(),
    ]);
    let log = show(&res);
    assert!(res.status.success(), "{name}.yaml did not build:\n{log}");
    assert!(log.contains("is / for the steps"), "not hermetic:\n{log}");
}

/// `pkgbuild test tests/e2e/<name>.yaml` against `out`, with melange's
/// flags: the summary lines.
#[track_caller]
fn test_recipe(s: &Served, name: &str, out: &Path) -> Vec<String> {
    test_recipe_with(s, name, out, &[])
}

/// [`test_recipe`] with more arguments after the recipe (melange's
/// `test RECIPE PACKAGE`).
#[track_caller]
fn test_recipe_with(s: &Served, name: &str, out: &Path, more: &[&str]) -> Vec<String> {
    let recipe = e2e_dir().join(format!("{name}.yaml"));
    let out_url = out.to_string_lossy().into_owned();
    let pipelines = e2e_dir().join("pipelines");
    let url = s.url();
    let key = public_key();
    let mut args: Vec<&std::ffi::OsStr> = vec!["test".as_ref(), recipe.as_os_str()];
    args.extend(more.iter().map(std::ffi::OsStr::new));
    args.extend([
        "--pipeline-dirs".as_ref(),
        pipelines.as_os_str(),
        "-r".as_ref(),
        url.as_ref(),
        "-r".as_ref(),
        out_url.as_ref(),
        "-k".as_ref(),
        key.as_os_str(),
        "--out-dir".as_ref(),
        out.as_os_str(),
        "--apk-cache-dir".as_ref(),
        s.cache.path().as_os_str(),
    ]);
    let res = pkgbuild(&args);
    let log = show(&res);
    assert!(res.status.success(), "{name}.yaml tests:\n{log}");
    assert!(log.contains("hermetic test:"), "not hermetic:\n{log}");
    let mut lines: Vec<String> = String::from_utf8_lossy(&res.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

fn apk(out: &Path, file: &str) -> PathBuf {
    out.join(ARCH).join(file)
}

/// The text of `path` inside the package.
#[track_caller]
fn file(apk: &Path, path: &str) -> String {
    let e = util::entries(apk);
    let Some(entry) = e.get(path) else {
        panic!("{} has no {path}: {:?}", apk.display(), e.keys());
    };
    String::from_utf8(entry.content.clone()).unwrap()
}

/// The package's own files and links (no directories, no metadata).
fn payload(apk: &Path) -> Vec<String> {
    util::entries(apk)
        .into_iter()
        .filter(|(p, e)| !p.starts_with('.') && !p.starts_with("var/lib/db/sbom") && e.kind != '5')
        .map(|(p, _)| p)
        .collect()
}

fn field(info: &BTreeMap<String, Vec<String>>, key: &str) -> Vec<String> {
    info.get(key).cloned().unwrap_or_default()
}

#[test]
fn accounts_steps_and_tests_run_as_their_run_as_user() {
    let Some(s) = served() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(s, "accounts", &out);
    // Both the main and the subpackage's steps ran as run-as (by name),
    // with the recipe's group; HOME stays the workspace.
    assert_eq!(
        file(
            &apk(&out, "e2e-accounts-1.0.0-r0.apk"),
            "usr/share/e2e-accounts/main"
        ),
        "23456:23457 sailor:crew HOME=/home/build\n"
    );
    assert_eq!(
        file(
            &apk(&out, "e2e-accounts-sub-1.0.0-r0.apk"),
            "usr/share/e2e-accounts/sub"
        ),
        "23456:23457 sailor:crew\n"
    );
    // root by default, the build account by name, a declared user by
    // number with its uid as group id: each test checks its own.
    assert_eq!(
        test_recipe(s, "accounts", &out),
        [
            "PASS e2e-accounts-1.0.0-r0 (2 steps)",
            "PASS e2e-accounts-numeric-1.0.0-r0 (2 steps)",
            "PASS e2e-accounts-sub-1.0.0-r0 (2 steps)",
        ]
    );
}

#[test]
fn capabilities_are_the_defaults_plus_add_minus_drop() {
    let Some(s) = served() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(s, "capabilities", &out);
    let pkg = apk(&out, "e2e-capabilities-1.0.0-r0.apk");
    // Capability numbers from linux/capability.h.
    let defaults: [u32; 14] = [
        29, // AUDIT_WRITE
        0,  // CHOWN
        1,  // DAC_OVERRIDE
        3,  // FOWNER
        4,  // FSETID
        5,  // KILL
        27, // MKNOD
        10, // NET_BIND_SERVICE
        13, // NET_RAW
        31, // SETFCAP
        6,  // SETGID
        8,  // SETPCAP
        7,  // SETUID
        18, // SYS_CHROOT
    ];
    let mut want: u64 = defaults.iter().map(|b| 1u64 << b).sum();
    want |= 1 << 12; // add NET_ADMIN
    want &= !(1 << 0 | 1 << 18); // drop CHOWN, SYS_CHROOT
    let got = file(&pkg, "usr/share/e2e-capabilities/CapEff");
    assert_eq!(
        u64::from_str_radix(got.trim(), 16).unwrap(),
        want,
        "CapEff {got}"
    );
    let names = file(&pkg, "usr/share/e2e-capabilities/names");
    let names: Vec<&str> = names.lines().collect();
    assert!(names.contains(&"cap_net_admin"), "{names:?}");
    assert!(!names.contains(&"cap_chown"), "{names:?}");
    assert!(!names.contains(&"cap_sys_admin"), "{names:?}");
    // capsh came from the base's libcap-utils through cmd:capsh.
    let recipe = file(&pkg, ".melange.yaml");
    assert!(recipe.contains("libcap-utils="), "{recipe}");
}

#[test]
fn environment_variables_reach_steps_uses_subpackages_and_tests() {
    let Some(s) = served() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(s, "env-vars", &out);
    let main = apk(&out, "e2e-env-1.0.0-r0.apk");
    assert_eq!(file(&main, "usr/share/e2e-env/main"), "ahoy\n");
    assert_eq!(file(&main, "usr/share/e2e-env/step"), "hello\n");
    // Recipe, uses-level and the used pipeline's own step variables.
    assert_eq!(
        file(&main, "usr/share/e2e-env/uses"),
        "ahoy relayed inner\n"
    );
    assert_eq!(
        file(
            &apk(&out, "e2e-env-sub-1.0.0-r0.apk"),
            "usr/share/e2e-env/sub"
        ),
        "ahoy\n"
    );
    // Tests see the recipe's variables; a test's own win.
    assert_eq!(
        test_recipe(s, "env-vars", &out),
        [
            "PASS e2e-env-1.0.0-r0 (1 step)",
            "PASS e2e-env-sub-1.0.0-r0 (1 step)",
        ]
    );
}

#[test]
fn subpackage_pipelines_fill_their_packages_without_a_main_pipeline() {
    let Some(s) = served() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(s, "subpackages", &out);
    assert_eq!(
        payload(&apk(&out, "e2e-parts-2.0.0-r0.apk")),
        Vec::<String>::new()
    );
    let data = apk(&out, "e2e-parts-data-2.0.0-r0.apk");
    assert_eq!(payload(&data), ["usr/share/e2e-parts/data"]);
    assert_eq!(
        file(&data, "usr/share/e2e-parts/data"),
        "made by /home/build/melange-out/e2e-parts-data\n"
    );
    for (key, word) in [("north", "nord"), ("south", "sud")] {
        let p = apk(&out, &format!("e2e-parts-{key}-2.0.0-r0.apk"));
        assert_eq!(
            file(&p, &format!("usr/share/e2e-parts/words/{key}")),
            format!("{word}\n")
        );
    }
    let tool = apk(&out, "e2e-parts-tool-2.0.0-r0.apk");
    assert_eq!(payload(&tool), ["usr/bin/e2e-parts-tool"]);
    assert!(field(&util::pkginfo(&tool), "depend").contains(&"e2e-parts-data".to_string()));
    // Each subpackage's test finds its files at `/`.
    let results = test_recipe(s, "subpackages", &out);
    for want in [
        "PASS e2e-parts-data-2.0.0-r0",
        "PASS e2e-parts-tool-2.0.0-r0",
    ] {
        assert!(
            results.iter().any(|l| l.starts_with(want)),
            "{want} missing: {results:?}"
        );
    }

    // Installed into a fresh root, the tool brings the data package along.
    let root = tmp.path().join("root");
    install_fresh(
        &[s.url(), out.to_string_lossy().into_owned()],
        &["e2e-parts-tool".to_string(), "busybox".to_string()],
        s.cache.path(),
        &root,
    );
    let ran = run_in_root(&root, &["/usr/bin/e2e-parts-tool"]);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "made by /home/build/melange-out/e2e-parts-data\n"
    );
}

#[test]
fn split_libraries_provide_the_so_names_the_program_depends_on() {
    let Some(s) = served() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    build(s, "split-lib", &out);
    let main = apk(&out, "e2e-shapes-1.2.0-r0.apk");
    let colors = apk(&out, "e2e-shapes-colors-1.2.0-r0.apk");
    let libs = apk(&out, "e2e-shapes-libs-1.2.0-r0.apk");
    let dev = apk(&out, "e2e-shapes-dev-1.2.0-r0.apk");
    assert_eq!(payload(&main), ["usr/bin/shapes"]);
    assert_eq!(
        payload(&colors),
        ["usr/lib/libcolors.so.0", "usr/lib/libcolors.so.0.3"]
    );
    assert_eq!(
        payload(&libs),
        ["usr/lib/libshapes.so.1", "usr/lib/libshapes.so.1.2.0"]
    );
    assert_eq!(
        payload(&dev),
        [
            "usr/include/shapes.h",
            "usr/lib/libcolors.so",
            "usr/lib/libshapes.a",
            "usr/lib/libshapes.so"
        ]
    );
    let depends = field(&util::pkginfo(&main), "depend");
    for so in ["so:libshapes.so.1", "so:libcolors.so.0", "so:libc.so.6"] {
        assert!(depends.contains(&so.to_string()), "{depends:?}");
    }
    assert_eq!(
        field(&util::pkginfo(&libs), "provides"),
        ["so:libshapes.so.1=1.2.0"]
    );
    assert_eq!(
        field(&util::pkginfo(&colors), "provides"),
        ["so:libcolors.so.0=0.3"]
    );
    // The -dev links lead to the libraries through their so: names.
    let dev_depends = field(&util::pkginfo(&dev), "depend");
    assert!(
        dev_depends.contains(&"so:libshapes.so.1".to_string()),
        "{dev_depends:?}"
    );

    // The tests find the libraries and the program at `/`.
    let results = test_recipe(s, "split-lib", &out);
    for want in [
        "PASS e2e-shapes-1.2.0-r0",
        "PASS e2e-shapes-colors-1.2.0-r0",
        "PASS e2e-shapes-libs-1.2.0-r0",
    ] {
        assert!(
            results.iter().any(|l| l.starts_with(want)),
            "{want} missing: {results:?}"
        );
    }

    // melange's `test RECIPE PACKAGE`: a test-only recipe checks the
    // program taken from the repositories.
    let results = test_recipe_with(s, "shapes-check", &out, &["e2e-shapes"]);
    assert!(
        results.iter().any(|l| l.starts_with("PASS shapes-check")),
        "{results:?}"
    );

    // The program alone, installed from base + output repository, pulls
    // both library packages (and no -dev) in through so: and runs.
    let root = tmp.path().join("root");
    install_fresh(
        &[s.url(), out.to_string_lossy().into_owned()],
        &["e2e-shapes".to_string()],
        s.cache.path(),
        &root,
    );
    let installed = std::fs::read_to_string(root.join("lib/apk/db/installed")).unwrap();
    let names: Vec<&str> = installed
        .lines()
        .filter_map(|l| l.strip_prefix("P:"))
        .collect();
    for want in [
        "e2e-shapes",
        "e2e-shapes-libs",
        "e2e-shapes-colors",
        "glibc",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert!(!names.contains(&"e2e-shapes-dev"), "{names:?}");
    let ran = run_in_root(&root, &["/usr/bin/shapes"]);
    assert!(ran.status.success(), "{}", show(&ran));
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "triangle: 3 sides, red\n"
    );
}
