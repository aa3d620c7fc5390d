//! Build environments from the local repository, through the real binary:
//! a C library recipe (shared library, header, `.pc`, split `-dev`) is built
//! into a repository, then a program recipe that only lists
//! `environment.contents.packages: [build-base, libknot-dev]` compiles
//! against it with `pkg-config` or with a bare `-lknot`, under bubblewrap
//! and with the host runner. The program package holds only the program,
//! depends on the library through its scanned `so:` name, and carries no
//! trace of the sysroot; the log names what came from the repository and
//! what from the host; untrusted indexes are refused; rebuilds repeat.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use util::*;

/// `knot_where` names the header as the compiler found it: a program that
/// prints it carries the sysroot's path.
const KNOT_H: &str = "const char *knot_tie(void);
static inline const char *knot_where(void) { return __FILE__; }
";
const KNOT_C: &str = r#"#include <stdlib.h>
#include "knot.h"
const char *knot_tie(void) { const char *k = getenv("KNOT"); return k ? k : "tied by libknot 1.2.0"; }
"#;
const KNOT_PC: &str = "prefix=/usr
libdir=${prefix}/lib
includedir=${prefix}/include

Name: knot
Description: ties knots
Version: 1.2.0
Libs: -L${libdir} -lknot
Cflags: -I${includedir}/knot
";
/// `PLAIN` builds rely on `CPATH` alone (the header is one level down);
/// the others on the `-I` of the `.pc` file.
const KNOTTER_C: &str = r#"#include <stdio.h>
#ifdef PLAIN
#include <knot/knot.h>
#else
#include <knot.h>
#endif
int main(void) {
    puts(knot_tie());
#ifdef WHERE
    puts(knot_where());
#endif
    return 0;
}
"#;

/// The header goes to `/usr/include/knot/`, where only the `.pc` file's
/// `-I` finds it as `<knot.h>`.
const LIBKNOT: &str = r#"package:
  name: libknot
  version: 1.2.0
  epoch: 0
  description: knot tying library
  copyright:
    - license: MIT
pipeline:
  - runs: |
      cc -O2 -shared -fPIC -Wl,-soname,libknot.so.1 -o libknot.so.1.2.0 knot.c
      d="${{targets.destdir}}"
      install -Dm755 libknot.so.1.2.0 "$d/usr/lib/libknot.so.1.2.0"
      ln -s libknot.so.1.2.0 "$d/usr/lib/libknot.so.1"
      ln -s libknot.so.1 "$d/usr/lib/libknot.so"
      install -Dm644 knot.h "$d/usr/include/knot/knot.h"
      install -Dm644 knot.pc "$d/usr/lib/pkgconfig/knot.pc"
  - uses: strip
subpackages:
  - name: libknot-dev
    description: libknot headers, pkg-config file and link symlink
    pipeline:
      - uses: split/dev
"#;

/// A program recipe; `compile` is the shell line that builds `knotter`,
/// `extra` more YAML under `environment.contents`.
fn knotter(compile: &str, extra: &str) -> String {
    format!(
        r#"package:
  name: knotter
  version: "1.0"
  epoch: 0
  description: ties a knot
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - build-base
      - libknot-dev
{extra}pipeline:
  - runs: |
      {compile}
      ./knotter
      install -Dm755 knotter "${{{{targets.destdir}}}}/usr/bin/knotter"
  - uses: strip
"#
    )
}

const WITH_PKG_CONFIG: &str = "cc -O2 -o knotter knotter.c $(pkg-config --cflags --libs knot)";
const WITH_SEARCH_PATHS: &str = "cc -O2 -DPLAIN -o knotter knotter.c -lknot";

const LIB: &str = "libknot-1.2.0-r0.apk";
const PROG: &str = "knotter-1.0-r0.apk";

/// `<dir>/<name>.yaml` plus the C sources in `<dir>/<name>/`.
fn project(dir: &Path, name: &str, recipe: &str) -> PathBuf {
    let src = dir.join(name);
    fs::create_dir_all(&src).unwrap();
    for (file, text) in [
        ("knot.h", KNOT_H),
        ("knot.c", KNOT_C),
        ("knot.pc", KNOT_PC),
        ("knotter.c", KNOTTER_C),
    ] {
        fs::write(src.join(file), text).unwrap();
    }
    write_recipe(dir, name, recipe)
}

/// `pkgbuild build` like `util::build`, but signed with `key`.
fn build_with_key(recipe: &Path, out: &Path, key: &Path, extra: &[&str]) -> Output {
    let home = out.with_extension("home");
    fs::create_dir_all(&home).unwrap();
    util::cmd()
        .arg("build")
        .arg(recipe)
        .arg("--out-dir")
        .arg(out)
        .arg("--signing-key")
        .arg(key)
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env("HOME", &home)
        .args(extra)
        .output()
        .unwrap()
}

fn log_of(out: &Path, name: &str) -> String {
    fs::read_to_string(out.join("logs").join(format!("{name}.log"))).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What every successful program build must show.
#[track_caller]
fn check_program(out: &Path, label: &str) {
    let log = log_of(out, "knotter-1.0-r0");
    assert!(
        log.contains("installing from local repository: libknot-dev-1.2.0-r0, libknot-1.2.0-r0"),
        "{label}: closure not logged:\n{log}"
    );
    let host = log
        .lines()
        .find(|l| l.starts_with("note: from the host: "))
        .unwrap_or_else(|| panic!("{label}: no host note:\n{log}"));
    assert!(host.contains("build-base"), "{label}: {host}");
    assert!(!host.contains("libknot"), "{label}: {host}");
    // The program ran inside the build, against the sysroot's library.
    assert!(log.contains("tied by libknot 1.2.0"), "{label}:\n{log}");

    let prog = apk(out, PROG);
    let info = pkginfo(&prog);
    assert!(
        info["depend"].iter().any(|d| d == "so:libknot.so.1"),
        "{label}: {:?}",
        info["depend"]
    );
    assert!(!info["depend"].iter().any(|d| d.starts_with("libknot")));
    let files: Vec<String> = entries(&prog)
        .into_iter()
        .filter(|(p, e)| !p.starts_with('.') && e.kind != '5')
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        files,
        [
            "usr/bin/knotter",
            "var/lib/db/sbom/knotter-1.0-r0.spdx.json"
        ],
        "{label}: only the program is packaged"
    );
    let binary = &entries(&prog)["usr/bin/knotter"].content;
    for trace in [&b"sysroot"[..], b"pkgbuild-ws-", b"/var/lib/pkgbuild"] {
        assert!(
            !contains(binary, trace),
            "{label}: {} in the binary",
            String::from_utf8_lossy(trace)
        );
    }
    let sbom = &entries(&prog)["var/lib/db/sbom/knotter-1.0-r0.spdx.json"].content;
    let doc: serde_json::Value = serde_json::from_slice(sbom).unwrap();
    let version_of = |name: &str| {
        doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["versionInfo"].clone())
    };
    assert_eq!(
        version_of("libknot-dev"),
        Some(serde_json::json!("1.2.0-r0")),
        "{label}: SBOM pins the local package"
    );
    assert_eq!(version_of("libknot"), Some(serde_json::json!("1.2.0-r0")));
    assert_ok(&verify(&[prog, apk(out, "APKINDEX.tar.gz")]));
}

fn runners() -> Vec<&'static str> {
    let mut r = vec!["host"];
    if bwrap_or_skip() {
        r.insert(0, "bwrap");
    }
    r
}

#[test]
fn program_builds_against_a_library_from_the_local_repository() {
    let tmp = tempfile::tempdir().unwrap();
    for runner in runners() {
        let out = tmp.path().join(format!("repo-{runner}"));
        let lib = project(tmp.path(), "libknot", LIBKNOT);
        assert_ok(&build(&lib, &out, &["--runner", runner]));
        assert!(apk(&out, LIB).is_file());
        for (variant, compile) in [
            ("pkg-config", WITH_PKG_CONFIG),
            ("search paths", WITH_SEARCH_PATHS),
        ] {
            let recipe = project(tmp.path(), "knotter", &knotter(compile, ""));
            let res = build(&recipe, &out, &["--runner", runner]);
            assert_ok(&res);
            check_program(&out, &format!("{runner}, {variant}"));
        }
    }
}

/// Asks only for what no local repository has.
const PLAIN: &str = r#"package:
  name: plain
  version: "1"
  epoch: 0
  description: needs nothing local
  copyright:
    - license: MIT
environment:
  contents:
    packages:
      - build-base
      - no-such-package>=3
      - so:libnowhere.so.7
pipeline:
  - runs: |
      # Nothing was installed, so nothing points at a sysroot.
      test -z "${CPATH:-}${PKGBUILD_SYSROOT:-}"
      mkdir -p "${{targets.destdir}}/usr/share/plain"
      echo plain > "${{targets.destdir}}/usr/share/plain/README"
"#;

#[test]
fn requests_found_nowhere_are_left_to_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    // A local repository is there; it just has none of what is asked for.
    let lib = project(tmp.path(), "libknot", LIBKNOT);
    assert_ok(&build(&lib, &out, &["--runner", "host"]));
    let recipe = write_recipe(tmp.path(), "plain", PLAIN);
    let res = build(&recipe, &out, &["--runner", "host"]);
    assert_ok(&res);
    let log = log_of(&out, "plain-1-r0");
    assert!(
        log.contains("note: from the host: build-base, no-such-package>=3, so:libnowhere.so.7"),
        "{log}"
    );
    assert!(!log.contains("installing from local repository"), "{log}");
}

/// A second key (4096-bit generation is slow; 2048 proves the same).
fn other_key(dir: &Path) -> PathBuf {
    let key = dir.join("other.rsa");
    let out = pkgbuild(&[
        "keygen".as_ref(),
        "--key-size".as_ref(),
        "2048".as_ref(),
        key.as_os_str(),
    ]);
    assert_ok(&out);
    key
}

#[test]
fn an_index_signed_by_an_unknown_key_is_refused_until_the_keyring_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let lib = project(tmp.path(), "libknot", LIBKNOT);
    assert_ok(&build(&lib, &out, &["--runner", "host"]));
    let key2 = other_key(tmp.path());
    let before = snapshot(&out.join(arch()));

    let recipe = project(tmp.path(), "knotter", &knotter(WITH_PKG_CONFIG, ""));
    let res = build_with_key(&recipe, &out, &key2, &["--runner", "host"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    let index = apk(&out, "APKINDEX.tar.gz");
    assert!(
        err.contains(&index.display().to_string()) && err.contains("UNTRUSTED"),
        "{err}"
    );
    assert!(
        err.contains("test-build.rsa.pub"),
        "names the signer: {err}"
    );
    assert!(err.contains("environment.contents.keyring"), "{err}");
    assert_eq!(snapshot(&out.join(arch())), before, "repository untouched");

    let public = format!("{}.pub", test_key().display());
    let keyring = format!("    keyring:\n      - {public}\n");
    let recipe = project(tmp.path(), "knotter", &knotter(WITH_PKG_CONFIG, &keyring));
    assert_ok(&build_with_key(&recipe, &out, &key2, &["--runner", "host"]));
    let log = log_of(&out, "knotter-1.0-r0");
    assert!(
        log.contains("installing from local repository: libknot-dev-1.2.0-r0, libknot-1.2.0-r0"),
        "{log}"
    );

    // The index is now signed by the second key. A build with the first
    // that wants nothing from it is not stopped by it: every build re-signs
    // the output index, so a key change must not break unrelated recipes.
    let plain = write_recipe(tmp.path(), "plain", PLAIN);
    assert_ok(&build(&plain, &out, &["--runner", "host"]));
    let log = log_of(&out, "plain-1-r0");
    assert!(
        log.contains("UNTRUSTED")
            && log.contains("not used: it offers none of the requested packages"),
        "{log}"
    );
}

#[test]
fn a_package_that_does_not_match_its_index_record_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let lib = project(tmp.path(), "libknot", LIBKNOT);
    assert_ok(&build(&lib, &out, &["--runner", "host"]));
    // Same size, one byte changed in the control member's compressed data.
    let path = apk(&out, LIB);
    let mut bytes = fs::read(&path).unwrap();
    let control_start = members(&bytes)[0].len();
    bytes[control_start + 20] ^= 0x55;
    fs::write(&path, &bytes).unwrap();
    let recipe = project(tmp.path(), "knotter", &knotter(WITH_PKG_CONFIG, ""));
    let res = build(&recipe, &out, &["--runner", "host"]);
    assert_eq!(res.status.code(), Some(1), "{}", show(&res));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains(LIB) && err.contains("APKINDEX.tar.gz"),
        "{err}"
    );
}

/// The program carries the header's path (`-DWHERE`): the host runner's
/// sysroot has a fixed path like its build directory, so that repeats too.
#[test]
fn program_rebuilt_against_the_local_library_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    for runner in runners() {
        let out = tmp.path().join(format!("repo-{runner}"));
        let lib = project(tmp.path(), "libknot", LIBKNOT);
        assert_ok(&build(&lib, &out, &["--runner", runner]));
        let compile = WITH_PKG_CONFIG.replace("cc ", "cc -DWHERE ");
        let recipe = project(tmp.path(), "knotter", &knotter(&compile, ""));
        assert_ok(&build(&recipe, &out, &["--runner", runner]));
        let first = fs::read(apk(&out, PROG)).unwrap();
        let binary = &entries(&apk(&out, PROG))["usr/bin/knotter"].content;
        assert!(
            contains(binary, b"sysroot/usr/include/knot/knot.h"),
            "{runner}: the header's path is in the program"
        );
        assert_ok(&build(&recipe, &out, &["--runner", runner]));
        let second = fs::read(apk(&out, PROG)).unwrap();
        assert!(first == second, "{runner}: rebuild differs");
    }
}
