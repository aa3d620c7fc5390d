//! Dependency scanning on staged trees holding real binaries: a shared
//! library and a program are compiled with the host's gcc, staged the way
//! recipes stage them, and the exact `depend`/`provides` lines are checked.

mod util;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use pkgbuild::meta::scan::{
    self, resolve, PackageDeps, ResolvedDeps, ScanError, ScanOptions, ScanResult,
};
use pkgbuild::meta::tree::StagedTree;

use util::host_loader_dep;

/// Walks `root` once and scans that listing, as the engine does.
fn scan_tree(root: &Path, version: &str, opts: &ScanOptions) -> Result<ScanResult, ScanError> {
    scan::scan_tree(&StagedTree::walk(root)?, version, opts)
}

const VERSION: &str = "1.0-r0";

/// The compiled library (`libgreet.so.1.2.3`, soname `libgreet.so.1`) and a
/// program linked against it, built once per test run.
struct Binaries {
    _dir: tempfile::TempDir,
    lib: PathBuf,
    program: PathBuf,
}

fn binaries() -> &'static Binaries {
    static BUILT: OnceLock<Binaries> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("greet.c"), "#include <stdlib.h>\nconst char *greet(void) { const char *g = getenv(\"GREETING\"); return g ? g : \"hi\"; }\n").unwrap();
        fs::write(
            d.join("main.c"),
            "#include <stdio.h>\nconst char *greet(void);\nint main(void) { puts(greet()); return 0; }\n",
        )
        .unwrap();
        gcc(
            d,
            &["-shared", "-fPIC", "-Wl,-soname,libgreet.so.1", "-o", "libgreet.so.1.2.3", "greet.c"],
        );
        symlink("libgreet.so.1.2.3", d.join("libgreet.so")).unwrap();
        gcc(d, &["-o", "greet", "main.c", "-L.", "-lgreet"]);
        Binaries {
            lib: d.join("libgreet.so.1.2.3"),
            program: d.join("greet"),
            _dir: dir,
        }
    })
}

fn gcc(dir: &Path, args: &[&str]) {
    let out = Command::new("gcc")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A staged tree under construction.
struct Tree(tempfile::TempDir);

impl Tree {
    fn new() -> Tree {
        Tree(tempfile::tempdir().unwrap())
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn file(&self, rel: &str, contents: &[u8], mode: u32) -> &Tree {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    fn copy(&self, rel: &str, from: &Path) -> &Tree {
        self.file(rel, &fs::read(from).unwrap(), 0o755)
    }

    fn link(&self, rel: &str, target: &str) -> &Tree {
        let path = self.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        symlink(target, path).unwrap();
        self
    }

    /// The library as a recipe installs it: real file plus soname and
    /// development symlinks.
    fn library(&self, dir: &str) -> &Tree {
        self.copy(&format!("{dir}/libgreet.so.1.2.3"), &binaries().lib)
            .link(&format!("{dir}/libgreet.so.1"), "libgreet.so.1.2.3")
            .link(&format!("{dir}/libgreet.so"), "libgreet.so.1.2.3")
    }

    fn scan(&self) -> ScanResult {
        self.scan_with(ScanOptions::default())
    }

    fn scan_with(&self, opts: ScanOptions) -> ScanResult {
        scan_tree(self.path(), VERSION, &opts).unwrap()
    }
}

fn set(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn list(items: &BTreeSet<String>) -> Vec<String> {
    items.iter().cloned().collect()
}

#[test]
fn library_provides_its_soname_with_the_file_version() {
    let tree = Tree::new();
    tree.library("usr/lib");
    let scan = tree.scan();
    assert_eq!(list(&scan.provides), set(&["so:libgreet.so.1=1.2.3"]));
    assert_eq!(list(&scan.depends), set(&["so:libc.so.6"]));
    assert!(scan.vendored.is_empty());
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
}

#[test]
fn program_depends_on_its_libraries_and_interpreter_and_provides_its_command() {
    let tree = Tree::new();
    tree.copy("usr/bin/greet", &binaries().program);
    let scan = tree.scan();
    assert_eq!(
        list(&scan.depends),
        set(&["so:libgreet.so.1", "so:libc.so.6", host_loader_dep()])
    );
    assert_eq!(list(&scan.provides), set(&["cmd:greet=1.0-r0"]));
}

#[test]
fn library_outside_the_library_directories_is_vendored() {
    let tree = Tree::new();
    tree.library("opt/app/lib")
        .copy("usr/bin/greet", &binaries().program);
    let scan = tree.scan();
    assert_eq!(list(&scan.provides), set(&["cmd:greet=1.0-r0"]));
    assert_eq!(list(&scan.vendored), set(&["libgreet.so.1"]));
    assert_eq!(
        list(&scan.depends),
        set(&["so:libc.so.6", host_loader_dep()])
    );
}

#[test]
fn ld_so_conf_d_adds_library_directories() {
    let tree = Tree::new();
    tree.library("opt/app/lib").file(
        "etc/ld.so.conf.d/app.conf",
        b"# app libraries\n/opt/app/lib/\ninclude other\n",
        0o644,
    );
    let scan = tree.scan();
    assert_eq!(list(&scan.provides), set(&["so:libgreet.so.1=1.2.3"]));
    assert!(scan.vendored.is_empty());
}

#[test]
fn a_siblings_ld_so_conf_d_applies_through_the_lib_dirs_variant() {
    let conf = Tree::new();
    conf.file("etc/ld.so.conf.d/app.conf", b"/opt/app/lib\n", 0o644);
    let lib = Tree::new();
    lib.library("opt/app/lib");
    assert!(lib.scan().provides.is_empty());

    let conf_tree = StagedTree::walk(conf.path()).unwrap();
    let dirs: Vec<String> = scan::ld_so_conf_dirs(&conf_tree)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(dirs, ["opt/app/lib"]);
    let lib_tree = StagedTree::walk(lib.path()).unwrap();
    let scan =
        scan::scan_tree_with_lib_dirs(&lib_tree, VERSION, &ScanOptions::default(), &dirs).unwrap();
    assert_eq!(list(&scan.provides), set(&["so:libgreet.so.1=1.2.3"]));
}

#[test]
fn separate_debug_files_are_not_read_as_objects() {
    let tree = Tree::new();
    tree.file(
        "usr/lib/debug/usr/lib/libgreet.so.1.2.3.debug",
        b"\x7fELF\x02\x01\x01junk",
        0o644,
    )
    .copy("usr/lib/debug/usr/bin/greet.debug", &binaries().program);
    let scan = tree.scan();
    assert!(scan.depends.is_empty(), "{:?}", scan.depends);
    assert!(scan.warnings.is_empty(), "{:?}", scan.warnings);
}

#[test]
fn shebangs_become_command_dependencies_except_sh() {
    let tree = Tree::new();
    tree.file("usr/bin/py", b"#!/usr/bin/env python3\nprint(1)\n", 0o755)
        .file("usr/bin/shell", b"#!/bin/sh\necho\n", 0o755)
        .file(
            "usr/bin/pl",
            b"#!/usr/bin/env -S perl -w\nprint 1;\n",
            0o755,
        )
        .file("usr/bin/uses-own", b"#!/usr/bin/py\n", 0o755)
        .file("usr/share/doc/not-scanned", b"#!/usr/bin/ruby\n", 0o755);
    let scan = tree.scan();
    assert_eq!(list(&scan.depends), set(&["cmd:python3", "cmd:perl"]));
    assert_eq!(
        list(&scan.provides),
        set(&[
            "cmd:py=1.0-r0",
            "cmd:shell=1.0-r0",
            "cmd:pl=1.0-r0",
            "cmd:uses-own=1.0-r0"
        ])
    );
}

#[test]
fn only_executables_and_links_to_them_in_bin_directories_are_commands() {
    let tree = Tree::new();
    tree.file("usr/bin/tool", b"data", 0o755)
        .file("usr/bin/readme", b"data", 0o644)
        .link("usr/bin/alias", "tool")
        .link("usr/bin/alias-abs", "/usr/bin/tool")
        .link("usr/bin/to-readme", "readme")
        .file("usr/libexec/helper", b"data", 0o755)
        .file("usr/bin/sub/nested", b"data", 0o755);
    let scan = tree.scan();
    assert_eq!(
        list(&scan.provides),
        set(&[
            "cmd:tool=1.0-r0",
            "cmd:alias=1.0-r0",
            "cmd:alias-abs=1.0-r0"
        ])
    );
}

#[test]
fn pkg_config_files_provide_modules_and_depend_on_their_requires() {
    let tree = Tree::new();
    tree.file(
        "usr/lib/pkgconfig/foo.pc",
        b"prefix=/usr\nextra=libffi\nName: foo\nVersion: 9.9\n\
          Requires: glib-2.0 >= 2.50, zlib, foo-core\n\
          Requires.private: ${extra}>=3\nLibs: -L${prefix}/lib -lfoo\n",
        0o644,
    )
    .file(
        "usr/share/pkgconfig/foo-core.pc",
        b"Name: foo-core\nVersion: 1\n",
        0o644,
    )
    .file(
        "opt/sdk/lib/pkgconfig/vendored.pc",
        b"Requires: not-scanned\n",
        0o644,
    )
    .link("usr/lib/pkgconfig/alias.pc", "foo.pc");
    let scan = tree.scan();
    assert_eq!(
        list(&scan.provides),
        set(&["pc:foo=1.0-r0", "pc:foo-core=1.0-r0"])
    );
    assert_eq!(
        list(&scan.depends),
        set(&["pc:glib-2.0", "pc:zlib", "pc:libffi"])
    );
}

#[test]
fn language_modules_depend_on_their_interpreter() {
    let tree = Tree::new();
    tree.file(
        "usr/lib/python3.12/site-packages/foo/__init__.py",
        b"",
        0o644,
    )
    .file(
        "usr/lib/ruby/gems/3.3.0/gems/bar-1.0/lib/bar.rb",
        b"",
        0o644,
    )
    .file("usr/lib/perl5/vendor_perl/Baz.pm", b"1;\n", 0o644);
    let scan = tree.scan();
    assert_eq!(list(&scan.depends), set(&["python-3.12-base", "ruby-3.3"]));

    let declared = vec!["python3".to_string(), "ruby".to_string()];
    let resolved = resolve(&[PackageDeps {
        name: "py-foo",
        declared_depends: &declared,
        declared_provides: &[],
        scan,
    }]);
    assert_eq!(resolved[0].depends, set(&["python3", "ruby"]));
}

#[test]
fn options_switch_off_provides_depends_and_commands() {
    let tree = Tree::new();
    tree.library("usr/lib")
        .copy("usr/bin/greet", &binaries().program)
        .file("usr/bin/script", b"#!/bin/bash\n", 0o755);

    let all = tree.scan();
    assert_eq!(
        list(&all.provides),
        set(&[
            "so:libgreet.so.1=1.2.3",
            "cmd:greet=1.0-r0",
            "cmd:script=1.0-r0"
        ])
    );
    assert_eq!(
        list(&all.depends),
        set(&["so:libc.so.6", host_loader_dep(), "cmd:bash"])
    );

    let no_provides = tree.scan_with(ScanOptions {
        no_provides: true,
        ..Default::default()
    });
    assert!(no_provides.provides.is_empty());
    // The package still carries its library: no dependency on itself.
    assert_eq!(no_provides.depends, all.depends);

    let no_depends = tree.scan_with(ScanOptions {
        no_depends: true,
        ..Default::default()
    });
    assert!(no_depends.depends.is_empty());
    assert_eq!(no_depends.provides, all.provides);

    let no_commands = tree.scan_with(ScanOptions {
        no_commands: true,
        ..Default::default()
    });
    assert_eq!(
        list(&no_commands.provides),
        set(&["so:libgreet.so.1=1.2.3"])
    );
    assert_eq!(
        list(&no_commands.depends),
        set(&["so:libc.so.6", host_loader_dep()])
    );
}

type Declared = (Vec<String>, Vec<String>);

fn family(trees: &[(&str, &Tree, ScanOptions)], declared: &[Declared]) -> Vec<ResolvedDeps> {
    let packages: Vec<PackageDeps> = trees
        .iter()
        .zip(declared)
        .map(|((name, tree, opts), (deps, provides))| PackageDeps {
            name,
            declared_depends: deps,
            declared_provides: provides,
            scan: tree.scan_with(*opts),
        })
        .collect();
    resolve(&packages)
}

#[test]
fn siblings_resolve_libraries_and_dev_symlinks() {
    let program = Tree::new();
    program.copy("usr/bin/greet", &binaries().program);
    let lib = Tree::new();
    lib.copy("usr/lib/libgreet.so.1.2.3", &binaries().lib)
        .link("usr/lib/libgreet.so.1", "libgreet.so.1.2.3");
    let dev = Tree::new();
    dev.link("usr/lib/libgreet.so", "libgreet.so.1.2.3").file(
        "usr/lib/pkgconfig/greet.pc",
        b"Name: greet\nRequires.private: zlib\n",
        0o644,
    );

    let none: Declared = (vec![], vec![]);
    let resolved = family(
        &[
            ("greet", &program, ScanOptions::default()),
            ("libgreet", &lib, ScanOptions::default()),
            ("greet-dev", &dev, ScanOptions::default()),
        ],
        &[none.clone(), none.clone(), none],
    );
    assert_eq!(
        resolved[0],
        ResolvedDeps {
            depends: set(&["so:libc.so.6", "so:libgreet.so.1", host_loader_dep()]),
            provides: set(&["cmd:greet=1.0-r0"]),
        }
    );
    assert_eq!(
        resolved[1],
        ResolvedDeps {
            depends: set(&["so:libc.so.6"]),
            provides: set(&["so:libgreet.so.1=1.2.3"]),
        }
    );
    assert_eq!(
        resolved[2],
        ResolvedDeps {
            depends: set(&["pc:zlib", "so:libgreet.so.1"]),
            provides: set(&["pc:greet=1.0-r0"]),
        }
    );
}

#[test]
fn a_sibling_that_only_contains_a_library_is_depended_on_by_name() {
    let program = Tree::new();
    program.copy("usr/bin/greet", &binaries().program);
    let lib = Tree::new();
    lib.library("usr/lib");
    let quiet = ScanOptions {
        no_provides: true,
        ..Default::default()
    };
    let none: Declared = (vec![], vec![]);
    let resolved = family(
        &[
            ("greet", &program, ScanOptions::default()),
            ("libgreet", &lib, quiet),
        ],
        &[none.clone(), none],
    );
    assert_eq!(
        resolved[0].depends,
        set(&["libgreet", "so:libc.so.6", host_loader_dep()])
    );
    assert!(resolved[1].provides.is_empty());
}

#[test]
fn declared_entries_are_kept_as_written_and_win_over_generated_ones() {
    let tree = Tree::new();
    tree.library("usr/lib")
        .copy("usr/bin/greet", &binaries().program);
    let other = Tree::new();
    other.copy("usr/bin/greet2", &binaries().program);
    let declared_main: Declared = (
        vec!["busybox".to_string(), "so:libc.so.6>=2.36".to_string()],
        vec!["so:libgreet.so.1=9".to_string(), "greeter".to_string()],
    );
    let resolved = family(
        &[
            ("greet", &tree, ScanOptions::default()),
            ("greet2", &other, ScanOptions::default()),
        ],
        &[declared_main, (vec![], vec![])],
    );
    assert_eq!(
        resolved[0],
        ResolvedDeps {
            depends: set(&["busybox", "so:libc.so.6>=2.36", host_loader_dep()]),
            provides: set(&["cmd:greet=1.0-r0", "greeter", "so:libgreet.so.1=9"]),
        }
    );
    // The sibling keeps the so: form; apk finds the provider.
    assert_eq!(
        resolved[1].depends,
        set(&["so:libc.so.6", "so:libgreet.so.1", host_loader_dep()])
    );
}

#[test]
fn symlinks_never_lead_out_of_the_root_or_loop() {
    let host_libc = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/usr/lib/libc.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .unwrap_or("/lib/libc.so.6");
    let tree = Tree::new();
    tree.link("usr/bin/loop-a", "loop-b")
        .link("usr/bin/loop-b", "loop-a")
        .link("usr/bin/self", "self")
        .link("usr/bin/escape", "../../../../../../../../bin/sh")
        .link("usr/bin/absolute", "/bin/sh")
        .link("usr/lib/libc.so.6", host_libc)
        .link("usr/lib/host", "/usr/lib")
        .link("usr/lib/pkgconfig", "/usr/lib/x86_64-linux-gnu/pkgconfig")
        .link("lib", "/lib")
        .link("etc", "/etc");
    let scan = tree.scan();
    assert!(scan.provides.is_empty(), "{:?}", scan.provides);
    assert!(scan.depends.is_empty(), "{:?}", scan.depends);
    assert!(scan.libraries.is_empty(), "{:?}", scan.libraries);
}

#[test]
fn malformed_elf_files_are_skipped_with_a_warning() {
    let lib = fs::read(&binaries().lib).unwrap();
    let tree = Tree::new();
    tree.file("usr/lib/libbad.so.1", b"\x7fELF\x02\x01\x01garbage", 0o755)
        .file("usr/lib/libtiny.so.1", b"\x7fELF", 0o755)
        .file("opt/x/libhalf.so.1", &lib[..lib.len() / 3], 0o755)
        .library("usr/lib");
    let scan = tree.scan();
    assert_eq!(list(&scan.provides), set(&["so:libgreet.so.1=1.2.3"]));
    let unwarned: Vec<&str> = ["libbad.so.1", "libtiny.so.1"]
        .into_iter()
        .filter(|name| !scan.warnings.iter().any(|w| w.contains(name)))
        .collect();
    assert!(
        unwarned.is_empty(),
        "no warning for {unwarned:?}: {:?}",
        scan.warnings
    );
}

#[test]
fn mutated_and_truncated_libraries_never_panic() {
    let lib = fs::read(&binaries().lib).unwrap();
    let tree = Tree::new();
    let path = "usr/lib/libgreet.so.1.2.3";
    let mut state = 0x9e37_79b9_u32;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    let mut scanned = 0;
    for round in 0..150 {
        let mut bytes = lib.clone();
        if round % 3 == 0 {
            bytes.truncate(next() % lib.len());
        } else {
            // Headers and the dynamic section live in the first pages.
            for _ in 0..1 + round % 8 {
                let at = next() % bytes.len().min(16 << 10);
                bytes[at] = next() as u8;
            }
        }
        tree.file(path, &bytes, 0o755);
        scan_tree(tree.path(), VERSION, &ScanOptions::default()).unwrap();
        scanned += 1;
    }
    assert_eq!(scanned, 150);
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let err = scan_tree(
        Path::new("/nonexistent/staged"),
        VERSION,
        &ScanOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("/nonexistent/staged"), "{err}");
}
