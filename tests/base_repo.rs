//! The base repository of `examples/base/`: the host's own glibc, busybox,
//! C toolchain and autotools packaged with `--runner host` into one signed repository,
//! which must be closed under its dependencies and, extracted alone into an
//! empty root, must compile, link and run a C program with a shared library
//! under make, with nothing of the host visible.

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pkgbuild::apk::dep::Dep;
use pkgbuild::apk::index::Index;
use pkgbuild::apk::read::{self, EntryKind};

/// Debian packages the recipes copy files from.
const HOST_PACKAGES: &[&str] = &[
    "libc6",
    "libc6-dev",
    "linux-libc-dev",
    "busybox-static",
    "gcc-12",
    "cpp-12",
    "libgcc-12-dev",
    "libgcc-s1",
    "binutils",
    "make",
    "m4",
    "perl-base",
    "perl-modules-5.36",
    "libperl5.36",
    "libcrypt1",
    "autoconf",
    "automake",
    "libtool",
    "libltdl7",
    "pkgconf",
    "pkgconf-bin",
    "libpkgconf3",
];

/// Whether this host can feed the recipes; under CI it must.
fn host_can_build() -> bool {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            Command::new("dpkg-query")
                .args(["-W", "-f", "${db:Status-Status}", p])
                .output()
                .map(|o| o.stdout != b"installed")
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let hint = format!(
        "examples/base needs a Debian host with: apt-get install {}",
        missing.join(" ")
    );
    util::require_that(false, "the Debian packages examples/base copies", &hint)
}

fn recipes() -> Vec<PathBuf> {
    let dir = util::repo_root().join("examples/base");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    out.sort();
    out
}

/// Every `D:` of the index is provided by some package of it.
#[track_caller]
fn assert_closed(index: &Index) {
    let mut offered: BTreeSet<String> = BTreeSet::new();
    for e in &index.entries {
        offered.insert(e.info.name.clone());
        for p in &e.info.provides {
            let name = p.split_once('=').map_or(p.as_str(), |(n, _)| n);
            offered.insert(name.to_string());
        }
    }
    let mut unmet = Vec::new();
    for e in &index.entries {
        for d in &e.info.depends {
            let dep: Dep = d
                .parse()
                .unwrap_or_else(|err| panic!("{}: bad depend {d}: {err}", e.info.name));
            if !dep.conflict && !offered.contains(&dep.name) {
                unmet.push(format!("{} needs {d}", e.info.name));
            }
        }
    }
    assert!(unmet.is_empty(), "unmet dependencies: {unmet:#?}");
}

const LIB_C: &str = "#include \"greet.h\"\n#include <stdio.h>\n\
int greet(const char *who) { return printf(\"Hello, %s!\\n\", who) < 0; }\n";
const MAIN_C: &str =
    "#include \"greet.h\"\nint main(void) { return greet(\"base repository\"); }\n";
const MAKEFILE: &str = "all: hello\n\
libgreet.so: greet.c greet.h\n\
\t$(CC) -shared -fPIC -O2 -o $@ greet.c\n\
hello: main.c libgreet.so\n\
\t$(CC) -O2 -o $@ main.c -L. -lgreet\n";

fn bwrap(root: &Path, script: &str) -> std::process::Output {
    Command::new("bwrap")
        .arg("--bind")
        .arg(root)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .args([
            "--unshare-all",
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/bin:/bin",
        ])
        .args(["--chdir", "/home/build", "/bin/sh", "-c", script])
        .output()
        .unwrap()
}

#[test]
fn host_base_repository_is_closed_and_compiles_a_program_in_an_empty_root() {
    if !host_can_build() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    let started = Instant::now();
    let built = util::cmd()
        .args(["build", "--runner", "host"])
        .args(recipes())
        .arg("--out-dir")
        .arg(&out)
        .arg("--signing-key")
        .arg(util::test_key())
        .arg("--cache-dir")
        .arg(home.join("cache"))
        .env("SOURCE_DATE_EPOCH", util::EPOCH)
        .env("HOME", &home)
        .output()
        .unwrap();
    let build_time = started.elapsed();
    util::assert_ok(&built);

    let arch_dir = out.join(util::arch());
    let index = Index::read(&arch_dir.join("APKINDEX.tar.gz")).unwrap();
    let names: BTreeSet<&str> = index.entries.iter().map(|e| e.info.name.as_str()).collect();
    for wanted in [
        "build-base",
        "busybox",
        "gcc",
        "glibc",
        "glibc-dev",
        "ld-linux",
        "binutils",
        "make",
        "merged-usr",
        "m4",
        "perl",
        "autoconf",
        "automake",
        "libtool",
        "libltdl",
        "pkgconf",
    ] {
        assert!(names.contains(wanted), "{wanted} missing from {names:?}");
    }
    let provides: BTreeSet<String> = index
        .entries
        .iter()
        .flat_map(|e| e.info.provides.iter())
        .map(|p| p.split_once('=').map_or(p.clone(), |(n, _)| n.to_string()))
        .collect();
    for wanted in [
        "so:libc.so.6",
        util::host_loader_dep(),
        "cmd:sh",
        "/bin/sh",
        "cmd:perl",
        "cmd:autoreconf",
        "cmd:pkg-config",
        "pkgconfig",
    ] {
        assert!(provides.contains(wanted), "nothing provides {wanted}");
    }
    assert_closed(&index);

    // Every package into one empty root, as an installer would.
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let (mut packaged, mut files, mut installed) = (0u64, 0usize, 0u64);
    for e in &index.entries {
        let file = arch_dir.join(format!("{}-{}.apk", e.info.name, e.info.version));
        packaged += std::fs::metadata(&file).unwrap().len();
        for entry in read::extract(&file, &root).unwrap() {
            if entry.kind != EntryKind::Directory {
                files += 1;
                installed += entry.size;
            }
        }
    }
    eprintln!(
        "base repository: {} packages, {:.1} MiB packaged, {files} files ({:.1} MiB installed), built in {:.1}s",
        index.entries.len(),
        packaged as f64 / 1048576.0,
        installed as f64 / 1048576.0,
        build_time.as_secs_f64()
    );

    if !util::bwrap_or_skip() {
        return;
    }
    let work = root.join("home/build");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("greet.h"), "int greet(const char *who);\n").unwrap();
    std::fs::write(work.join("greet.c"), LIB_C).unwrap();
    std::fs::write(work.join("main.c"), MAIN_C).unwrap();
    std::fs::write(work.join("Makefile"), MAKEFILE).unwrap();

    let ok = bwrap(&root, "echo ok");
    util::assert_ok(&ok);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok\n");

    // The autotools run on the packaged perl and m4 alone.
    let tools = bwrap(
        &root,
        "automake --version && autoreconf --version && libtoolize --version \
         && pkg-config --version && perl -MData::Dumper -Mthreads -e 'print qq(perl ok\\n)'",
    );
    util::assert_ok(&tools);
    let text = String::from_utf8_lossy(&tools.stdout);
    for line in [
        "automake (GNU automake) 1.",
        "autoreconf (GNU Autoconf) 2.",
        "libtoolize (GNU libtool) 2.",
        "perl ok",
    ] {
        assert!(text.contains(line), "{line} not printed:\n{text}");
    }

    let run = bwrap(&root, "make && LD_LIBRARY_PATH=. ./hello");
    util::assert_ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.ends_with("Hello, base repository!\n"),
        "unexpected output\n{}",
        util::show(&run)
    );
    assert!(work.join("libgreet.so").is_file() && work.join("hello").is_file());
}
