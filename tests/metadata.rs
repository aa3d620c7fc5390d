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

/// The SBOM a package carries, by its melange path.
fn sbom_of(pkg: &Path, name: &str, full_version: &str) -> Vec<u8> {
    let path = format!("var/lib/db/sbom/{name}-{full_version}.spdx.json");
    let e = entries(pkg);
    let entry = e
        .get(&path)
        .unwrap_or_else(|| panic!("{} has no {path}", pkg.display()));
    assert_eq!(entry.mode & 0o7777, 0o644);
    entry.content.clone()
}

#[test]
fn example_sboms_validate_and_two_builds_give_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = repo_root().join("examples/hello/hello.yaml");
    let names = ["hello", "hello-dev", "hello-doc"];
    let sboms = |out: &Path| -> Vec<(String, Vec<u8>)> {
        assert_ok(&build(&recipe, out, &[]));
        names
            .iter()
            .map(|n| {
                let pkg = apk(out, &format!("{n}-1.2.0-r0.apk"));
                (n.to_string(), sbom_of(&pkg, n, "1.2.0-r0"))
            })
            .collect()
    };
    let first = sboms(&tmp.path().join("a"));
    let second = sboms(&tmp.path().join("elsewhere/b"));
    for ((name, a), (_, b)) in first.iter().zip(&second) {
        assert!(a == b, "{name}: SBOM differs between two builds");
        let doc: serde_json::Value = serde_json::from_slice(a).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        let pkg = &doc["packages"][0];
        assert_eq!(pkg["name"], name.as_str(), "{doc:#}");
        assert_eq!(pkg["versionInfo"], "1.2.0-r0");
        assert_eq!(pkg["licenseDeclared"], "MIT");
    }
    validate_spdx(&first);
}

#[test]
fn sbom_lists_a_fetched_archive_and_a_git_checkout_with_checksum_and_commit() {
    let tmp = tempfile::tempdir().unwrap();
    // An archive served from loopback...
    let src = tmp.path().join("tarball/extra-1.0");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("DATA"), "payload\n").unwrap();
    let tar = tarball(src.parent().unwrap(), "extra-1.0");
    let sha = sha256_hex(&tar);
    let (port, _) = serve(tar);
    let url = format!("http://127.0.0.1:{port}/extra-1.0.tar.gz");

    // ...and a local git repository.
    let upstream = tmp.path().join("upstream");
    fs::create_dir_all(&upstream).unwrap();
    fs::write(upstream.join("greet.c"), GREET_C).unwrap();
    let commit = git_repo_with_tag(&upstream, "v2.0");

    let recipe = write_recipe(
        tmp.path(),
        "sourced",
        &r#"package:
  name: sourced
  version: "2.0"
  epoch: 1
  description: built from two upstream sources
  copyright:
    - license: Apache-2.0
pipeline:
  - uses: fetch
    with:
      uri: @URL@
      expected-sha256: @SHA@
  - uses: git-checkout
    with:
      repository: @REPO@
      tag: v2.0
      expected-commit: @COMMIT@
      destination: gitsrc
  - runs: |
      install -Dm644 DATA "${{targets.destdir}}/usr/share/sourced/DATA"
      install -Dm644 gitsrc/greet.c "${{targets.destdir}}/usr/share/sourced/greet.c"
"#
        .replace("@URL@", &url)
        .replace("@SHA@", &sha)
        .replace("@REPO@", &upstream.display().to_string())
        .replace("@COMMIT@", &commit),
    );
    let out = tmp.path().join("repo");
    let res = build(&recipe, &out, &[]);
    assert_ok(&res);
    let bytes = sbom_of(&apk(&out, "sourced-2.0-r1.apk"), "sourced", "2.0-r1");
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let packages = doc["packages"].as_array().unwrap();
    let sources = packages
        .iter()
        .filter(|p| p["primaryPackagePurpose"] == "SOURCE")
        .count();
    assert_eq!(sources, 2, "one fetch and one git source:\n{doc:#}");
    let main_id = packages[0]["SPDXID"].as_str().unwrap();
    assert_eq!(doc["documentDescribes"][0], main_id);

    // A loopback URL is no download location SPDX accepts, so it may be
    // kept in sourceInfo instead (the build says so); either way it is there.
    let retrieved = format!("retrieved from {url}");
    let fetched = packages
        .iter()
        .find(|p| p["downloadLocation"] == url.as_str() || p["sourceInfo"] == retrieved.as_str())
        .unwrap_or_else(|| panic!("no package for {url}:\n{doc:#}"));
    assert_eq!(fetched["primaryPackagePurpose"], "SOURCE");
    assert_eq!(fetched["checksums"][0]["algorithm"], "SHA256", "{doc:#}");
    assert_eq!(fetched["checksums"][0]["checksumValue"], sha.as_str());
    if fetched["downloadLocation"] != url.as_str() {
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains("is not a download location"), "{err}");
    }

    let text = |v: &serde_json::Value| v.to_string();
    let cloned = packages
        .iter()
        .skip(1)
        .find(|p| text(p).contains(&commit))
        .unwrap_or_else(|| panic!("no package names commit {commit}:\n{doc:#}"));

    // The package is generated from both sources.
    let rels = doc["relationships"].as_array().unwrap();
    for source in [fetched, cloned] {
        let id = source["SPDXID"].as_str().unwrap();
        assert!(
            rels.iter().any(|r| r["spdxElementId"] == main_id
                && r["relationshipType"] == "GENERATED_FROM"
                && r["relatedSpdxElement"] == id),
            "no GENERATED_FROM {id}:\n{doc:#}"
        );
    }
    validate_spdx(&[("sourced".to_string(), bytes)]);
}

#[test]
fn compiled_recipe_is_embedded_in_the_control_member_without_env_file_values() {
    let tmp = tempfile::tempdir().unwrap();
    let env = tmp.path().join("build.env");
    fs::write(&env, "DEPLOY_TOKEN=tok-9f8e7d6c5b\n").unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "embedder",
        r#"package:
  name: embedder
  version: 1.0.0
  epoch: 0
  description: carries its own recipe
pipeline:
  - name: use the token
    runs: |
      test -n "$DEPLOY_TOKEN"
      mkdir -p "${{targets.destdir}}/usr/share/embedder"
      echo done > "${{targets.destdir}}/usr/share/embedder/stamp"
"#,
    );
    let out = tmp.path().join("repo");
    assert_ok(&build(
        &recipe,
        &out,
        &["--env-file", env.to_str().unwrap()],
    ));
    let pkg = apk(&out, "embedder-1.0.0-r0.apk");
    let control = control_entries(&pkg);
    let names: Vec<&str> = control.keys().map(String::as_str).collect();
    assert_eq!(names, [".PKGINFO", ".melange.yaml"]);
    let embedded = &control[".melange.yaml"];
    assert_eq!(embedded.kind, '0');
    let text = String::from_utf8(embedded.content.clone()).unwrap();
    assert!(text.contains("embedder"), "{text}");
    assert!(
        text.contains("use the token"),
        "steps are part of it:\n{text}"
    );
    assert!(
        !text.contains("tok-9f8e7d6c5b"),
        "env-file value embedded:\n{text}"
    );
    // The recipe travels in the control member only, not in the data.
    let data = tar_entries(&members(&fs::read(&pkg).unwrap())[2]);
    assert!(data.contains_key("usr/share/embedder/stamp"));
    assert!(
        !data.keys().any(|k| k.contains("melange")),
        "{:?}",
        data.keys()
    );
}

const HOOKS: &str = r#"package:
  name: hooks
  version: "1.0"
  epoch: 0
  description: install scripts, triggers and priorities
  dependencies:
    provides:
      - hooks-api=1.0
    replaces:
      - oldhooks
    provider-priority: 10
    replaces-priority: 5
  scriptlets:
    post-install: |
      echo installed
    pre-deinstall: |
      #!/bin/busybox sh
      echo leaving
    trigger:
      paths:
        - /usr/share/hooks/*
        - /usr/lib/hooks
      script: |
        #!/bin/sh
        echo triggered
pipeline:
  - runs: |
      mkdir -p "${{targets.destdir}}/usr/share/hooks"
      echo x > "${{targets.destdir}}/usr/share/hooks/h"
"#;

#[test]
fn scriptlets_triggers_and_priorities_reach_the_control_member_and_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "hooks", HOOKS);
    let out = tmp.path().join("repo");
    assert_ok(&build(&recipe, &out, &[]));
    let pkg = apk(&out, "hooks-1.0-r0.apk");
    let index = apk(&out, "APKINDEX.tar.gz");
    assert_ok(&verify(&[pkg.clone(), index.clone()]));

    let control = control_entries(&pkg);
    let scripts = [
        (".post-install", "#!/bin/sh\necho installed\n"),
        (".pre-deinstall", "#!/bin/busybox sh\necho leaving\n"),
        (".trigger", "#!/bin/sh\necho triggered\n"),
    ];
    for (name, text) in scripts {
        let e = control
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {:?}", control.keys()));
        assert_eq!(e.mode & 0o7777, 0o755, "{name}");
        assert_eq!(e.kind, '0', "{name}");
        assert_eq!(String::from_utf8_lossy(&e.content), text, "{name}");
    }
    assert!(!control.contains_key(".pre-install"));

    let text = String::from_utf8(control[".PKGINFO"].content.clone()).unwrap();
    let lines = |key: &str| -> Vec<&str> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix(" = "))
            .collect()
    };
    assert_eq!(lines("triggers"), ["/usr/share/hooks/* /usr/lib/hooks"]);
    assert_eq!(lines("replaces"), ["oldhooks"]);
    assert_eq!(lines("provider_priority"), ["10"]);
    assert_eq!(lines("replaces_priority"), ["5"]);
    assert_eq!(lines("provides"), ["hooks-api=1.0"]);
    // Scripts run by /bin/sh need it installed first.
    assert_eq!(lines("depend"), ["/bin/sh"]);

    let records = index_records(&index_text(&index));
    let rec = records.iter().find(|r| r.name == "hooks").unwrap();
    assert_eq!(rec.fields.get(&'k').map(String::as_str), Some("10"));
    assert_eq!(rec.provides, ["hooks-api=1.0"]);
    assert_eq!(rec.depends, ["/bin/sh"]);
}

/// Regression: a negative priority passed the recipe checks and was then
/// silently left out of `.PKGINFO`; a trigger without a script (or without
/// paths) failed only after every step had run. Both are recipe errors now,
/// reported before anything runs.
#[test]
fn metadata_a_package_cannot_carry_is_refused_before_any_step() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "negprio",
            "  dependencies:\n    replaces-priority: -3\n",
            "dependencies.replaces-priority is `-3`",
        ),
        (
            "pathsonly",
            "  scriptlets:\n    trigger:\n      paths:\n        - /usr/lib/x\n",
            "scriptlets.trigger has paths but no script",
        ),
        (
            "scriptonly",
            "  scriptlets:\n    trigger:\n      script: |\n        #!/bin/sh\n        true\n",
            "scriptlets.trigger has a script but no paths",
        ),
    ];
    for (name, extra, message) in cases {
        let recipe = write_recipe(
            tmp.path(),
            name,
            &format!(
                "package:\n  name: {name}\n  version: 1.0.0\n  epoch: 0\n  description: d\n{extra}pipeline:\n  - name: marker\n    runs: echo ran\n"
            ),
        );
        let out = tmp.path().join(format!("repo-{name}"));
        let res = build(&recipe, &out, &[]);
        assert_eq!(res.status.code(), Some(2), "{name}: {}", show(&res));
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains(&format!("{name}.yaml")), "{name}: {err}");
        assert!(err.contains(message), "{name}: {err}");
        assert!(!err.contains("marker"), "{name}: a step ran: {err}");
        assert!(!apk(&out, "APKINDEX.tar.gz").exists());
    }
}
