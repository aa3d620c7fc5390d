//! Package metadata that writes itself, proven through the real binary:
//! real C binaries are compiled by the recipes with the machine's compiler,
//! the packages are read back, and the scanned `depend`/`provides` lines,
//! SBOMs, embedded recipe, scriptlets and priorities are checked exactly.
//! The headline: a program and the library it links are built by two
//! separate recipes into one repository, and an installer resolving only by
//! the scanned names picks the library for the program, which then runs
//! from a fresh root.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use util::*;

const GREET_H: &str = "const char *greet(void);\n";
const GREET_C: &str = r#"#include <stdlib.h>
#include "greet.h"
#ifndef GREETING
#define GREETING "Hello from libgreet 1.2.3"
#endif
/* getenv keeps the library needing the C library at any optimisation. */
const char *greet(void) { const char *g = getenv("GREET_OVERRIDE"); return g ? g : GREETING; }
"#;
const GREETER_C: &str = r#"#include <stdio.h>
#include "greet.h"
int main(void) { puts(greet()); return 0; }
"#;
const GREET_PC: &str = "prefix=/usr
libdir=${prefix}/lib
includedir=${prefix}/include

Name: greet
Description: greetings
Version: 1.2.3
Requires.private: zlib
Libs: -L${libdir} -lgreet
Cflags: -I${includedir}
";

const LIBGREET: &str = r#"package:
  name: libgreet
  version: 1.2.3
  epoch: 0
  description: greeting library
  copyright:
    - license: MIT
pipeline:
  - runs: |
      cc -O2 -shared -fPIC -Wl,-soname,libgreet.so.1 -o libgreet.so.1.2.3 greet.c
      d="${{targets.destdir}}"
      install -Dm755 libgreet.so.1.2.3 "$d/usr/lib/libgreet.so.1.2.3"
      ln -s libgreet.so.1.2.3 "$d/usr/lib/libgreet.so.1"
      ln -s libgreet.so.1 "$d/usr/lib/libgreet.so"
      install -Dm644 greet.h "$d/usr/include/greet.h"
      install -Dm644 greet.pc "$d/usr/lib/pkgconfig/greet.pc"
  - uses: strip
subpackages:
  - name: libgreet-dev
    description: libgreet headers, pkg-config file and link symlink
    pipeline:
      - uses: split/dev
"#;

/// Builds its own copy of the library only to link against (with another
/// greeting, so a run shows which copy was loaded) and ships the program
/// alone. It declares no dependency at all.
const GREETER: &str = r#"package:
  name: greeter
  version: 0.9.1
  epoch: 2
  description: says hello through libgreet
  copyright:
    - license: MIT
pipeline:
  - runs: |
      cc -shared -fPIC -Wl,-soname,libgreet.so.1 -DGREETING='"link-time stub"' -o libgreet.so.1 greet.c
      ln -s libgreet.so.1 libgreet.so
      cc -O2 -o greeter greeter.c -L. -lgreet
      install -Dm755 greeter "${{targets.destdir}}/usr/bin/greeter"
  - uses: strip
"#;

/// Writes `<dir>/<name>.yaml` and its source files in `<dir>/<name>/`,
/// where the build copies them into the workspace from.
fn project(dir: &Path, name: &str, recipe: &str, files: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(name);
    fs::create_dir_all(&src).unwrap();
    for (file, text) in files {
        fs::write(src.join(file), text).unwrap();
    }
    write_recipe(dir, name, recipe)
}

fn c_sources() -> Vec<(&'static str, &'static str)> {
    vec![
        ("greet.h", GREET_H),
        ("greet.c", GREET_C),
        ("greeter.c", GREETER_C),
        ("greet.pc", GREET_PC),
    ]
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// `.PKGINFO` values of `key`, in file order (empty when absent).
fn field(info: &std::collections::BTreeMap<String, Vec<String>>, key: &str) -> Vec<String> {
    info.get(key).cloned().unwrap_or_default()
}

/// Provided by the base system the packages are installed onto: the host C
/// library and its loader, nothing else.
fn host_c_library(name: &str) -> bool {
    name == "so:libc.so.6" || name.starts_with("so:ld-linux")
}

#[test]
fn program_and_library_from_separate_recipes_resolve_install_and_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let lib_recipe = project(tmp.path(), "libgreet", LIBGREET, &c_sources());
    let prog_recipe = project(tmp.path(), "greeter", GREETER, &c_sources());
    assert_ok(&build(&lib_recipe, &out, &[]));
    assert_ok(&build(&prog_recipe, &out, &[]));

    let lib = apk(&out, "libgreet-1.2.3-r0.apk");
    let dev = apk(&out, "libgreet-dev-1.2.3-r0.apk");
    let prog = apk(&out, "greeter-0.9.1-r2.apk");
    let index = apk(&out, "APKINDEX.tar.gz");
    assert_ok(&verify(&[
        lib.clone(),
        dev.clone(),
        prog.clone(),
        index.clone(),
    ]));

    let info = pkginfo(&lib);
    assert_eq!(field(&info, "provides"), ["so:libgreet.so.1=1.2.3"]);
    assert_eq!(field(&info, "depend"), ["so:libc.so.6"]);
    let e = entries(&lib);
    assert_eq!(
        e["usr/lib/libgreet.so.1"].link.as_deref(),
        Some("libgreet.so.1.2.3")
    );
    assert!(
        !e.contains_key("usr/lib/libgreet.so"),
        "the link symlink is -dev's"
    );

    // The -dev package: its pkg-config module, the module it requires, and
    // the library its `libgreet.so` symlink leads to in the sibling.
    let info = pkginfo(&dev);
    assert_eq!(field(&info, "provides"), ["pc:greet=1.2.3-r0"]);
    assert_eq!(field(&info, "depend"), ["pc:zlib", "so:libgreet.so.1"]);

    let info = pkginfo(&prog);
    assert_eq!(field(&info, "provides"), ["cmd:greeter=0.9.1-r2"]);
    assert_eq!(
        field(&info, "depend"),
        sorted(&[host_loader_dep(), "so:libc.so.6", "so:libgreet.so.1"])
    );

    // Resolve greeter's closure the way an installer does, by name only.
    let records = index_records(&index_text(&index));
    let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["greeter", "libgreet", "libgreet-dev"]);
    let closure = resolve_closure(&records, "greeter", host_c_library).unwrap();
    assert_eq!(closure, ["greeter", "libgreet"]);

    // Install the closure into a fresh root and run the program from it.
    let root = tmp.path().join("root");
    fs::create_dir_all(&root).unwrap();
    for name in &closure {
        let rec = records.iter().find(|r| &r.name == name).unwrap();
        let file = apk(&out, &format!("{}-{}.apk", rec.name, rec.version));
        pkgbuild::apk::read::extract(&file, &root).unwrap();
    }
    let program = root.join("usr/bin/greeter");
    let run = Command::new(&program)
        .env("LD_LIBRARY_PATH", root.join("usr/lib"))
        .env_remove("GREET_OVERRIDE")
        .output()
        .unwrap();
    assert_ok(&run);
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "Hello from libgreet 1.2.3\n"
    );
    // Without the root's library directory the loader finds no libgreet:
    // the greeting above came from the installed package.
    let bare = Command::new(&program)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(!bare.status.success(), "{}", show(&bare));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("libgreet.so.1"));
}

const TOOLBOX: &str = r#"package:
  name: toolbox
  version: "3.1"
  epoch: 0
  description: vendored library, python script, pkg-config module
  copyright:
    - license: MIT
  dependencies:
    runtime:
      - ca-certificates-bundle
pipeline:
  - runs: |
      d="${{targets.destdir}}"
      cc -shared -fPIC -Wl,-soname,libgreet.so.1 -o libgreet.so.1 greet.c
      ln -s libgreet.so.1 libgreet.so
      cc -o app greeter.c -L. -lgreet -Wl,-rpath,'$ORIGIN/../lib'
      install -Dm755 libgreet.so.1 "$d/opt/toolbox/lib/libgreet.so.1"
      install -Dm755 app "$d/opt/toolbox/bin/app"
      mkdir -p "$d/usr/bin" "$d/usr/lib/python3.12/site-packages/toolbox"
      printf '#!/usr/bin/env python3\nprint("hi")\n' > "$d/usr/bin/tool"
      chmod 755 "$d/usr/bin/tool"
      echo > "$d/usr/lib/python3.12/site-packages/toolbox/__init__.py"
      install -Dm644 toolbox.pc "$d/usr/lib/pkgconfig/toolbox.pc"
"#;

#[test]
fn vendored_libraries_shebangs_python_modules_and_pkg_config_through_a_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let mut files = c_sources();
    files.push((
        "toolbox.pc",
        "Name: toolbox\nVersion: 3.1\nRequires: zlib >= 1.2, libffi\nLibs: -ltoolbox\n",
    ));
    let recipe = project(tmp.path(), "toolbox", TOOLBOX, &files);
    assert_ok(&build(&recipe, &out, &[]));
    let info = pkginfo(&apk(&out, "toolbox-3.1-r0.apk"));
    // The vendored libgreet is neither provided nor depended on; the
    // declared dependency is kept as written.
    assert_eq!(
        field(&info, "provides"),
        ["cmd:tool=3.1-r0", "pc:toolbox=3.1-r0"]
    );
    assert_eq!(
        field(&info, "depend"),
        sorted(&[
            "ca-certificates-bundle",
            "cmd:python3",
            "pc:libffi",
            "pc:zlib",
            "python-3.12-base",
            host_loader_dep(),
            "so:libc.so.6",
        ])
    );
}

const KNOBS: &str = r#"package:
  name: knobs
  version: "1.0"
  epoch: 0
  description: every scanning option
  options:
    no-commands: true
pipeline:
  - runs: |
      cc -shared -fPIC -Wl,-soname,libgreet.so.1 -o libgreet.so.1.2.3 greet.c
      ln -s libgreet.so.1.2.3 libgreet.so
      cc -o greeter greeter.c -L. -lgreet
      printf '#!/usr/bin/env python3\nprint(1)\n' > knob
      chmod 755 knob
      install -Dm755 knob "${{targets.destdir}}/usr/bin/knob"
      install -Dm755 greeter "${{targets.destdir}}/usr/bin/greeter"
subpackages:
  - name: knobs-noprov
    description: library without provides
    options:
      no-provides: true
    pipeline:
      - runs: |
          install -Dm755 libgreet.so.1.2.3 "${{targets.contextdir}}/usr/lib/libgreet.so.1.2.3"
          ln -s libgreet.so.1.2.3 "${{targets.contextdir}}/usr/lib/libgreet.so.1"
  - name: knobs-nodeps
    description: program and script without depends
    options:
      no-depends: true
    pipeline:
      - runs: |
          install -Dm755 knob "${{targets.contextdir}}/usr/bin/knob2"
          install -Dm755 greeter "${{targets.contextdir}}/usr/bin/greeter2"
  - name: knobs-app
    description: program using the sibling's unprovided library
    pipeline:
      - runs: |
          install -Dm755 greeter "${{targets.contextdir}}/usr/bin/greeter3"
"#;

#[test]
fn no_provides_no_depends_and_no_commands_through_a_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repo");
    let recipe = project(tmp.path(), "knobs", KNOBS, &c_sources());
    assert_ok(&build(&recipe, &out, &[]));
    let info = |name: &str| pkginfo(&apk(&out, &format!("{name}-1.0-r0.apk")));

    // no-provides: the library is not offered by name...
    let noprov = info("knobs-noprov");
    assert_eq!(field(&noprov, "provides"), Vec::<String>::new());
    assert_eq!(field(&noprov, "depend"), ["so:libc.so.6"]);

    // ...so a sibling needing it depends on the package itself.
    // no-commands: no cmd: either way (not `cmd:python3` for the script).
    let main = info("knobs");
    assert_eq!(field(&main, "provides"), Vec::<String>::new());
    assert_eq!(
        field(&main, "depend"),
        sorted(&[host_loader_dep(), "knobs-noprov", "so:libc.so.6"])
    );
    let app = info("knobs-app");
    assert_eq!(field(&app, "provides"), ["cmd:greeter3=1.0-r0"]);
    assert_eq!(
        field(&app, "depend"),
        sorted(&[host_loader_dep(), "knobs-noprov", "so:libc.so.6"])
    );

    // no-depends: nothing needed, commands still provided.
    let nodeps = info("knobs-nodeps");
    assert_eq!(field(&nodeps, "depend"), Vec::<String>::new());
    assert_eq!(
        field(&nodeps, "provides"),
        ["cmd:greeter2=1.0-r0", "cmd:knob2=1.0-r0"]
    );
}
