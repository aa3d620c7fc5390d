//! Runs the built-in pipelines' shell scripts on the host, the way the build engine will:
//! `${{...}}` replaced first, then `sh -e` in a build root whose HOME is that root. Every
//! `runs` body is syntax-checked under each available POSIX shell, and the pipelines that
//! recipes lean on most (fetch, git-checkout, patch, autoconf, split/*, strip) and the
//! newer ones that can work offline (copy, move, git-am, git-archive, cran/fetch with the
//! tarball present, redis-valkey/subpackage-*, xcover/ensure, meson/test when meson is
//! installed) are run for real against small fixtures made here; nothing touches the
//! network. Functional runs use
//! `sh`; set `PKGBUILD_TEST_SHELL=bash` (or another shell's path) to run them under that.

mod pipelines_support;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use object::{Object, ObjectSection};
use pipelines_support::{find, load_all, Pipeline};
use tempfile::TempDir;

const PACKAGE: &str = "hello";
const VERSION: &str = "1.2.3";

/// A throwaway build root: `home/build` is the working directory, `out/NAME` each package.
struct Build {
    root: TempDir,
}

/// What one pipeline run printed, and whether every step succeeded.
struct Outcome {
    ok: bool,
    log: String,
}

impl Outcome {
    fn expect_ok(self, what: &str) -> Self {
        assert!(self.ok, "{what} failed:\n{}", self.log);
        self
    }
    fn expect_failure(self, what: &str, message: &str) {
        assert!(!self.ok, "{what} should have failed:\n{}", self.log);
        assert!(
            self.log.contains(message),
            "{what} failed without saying {message:?}:\n{}",
            self.log
        );
    }
}

fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl Build {
    fn new() -> Self {
        let build = Build {
            root: tempfile::tempdir().expect("temp dir"),
        };
        fs::create_dir_all(build.work()).expect("work dir");
        fs::create_dir_all(build.pkg(PACKAGE)).expect("destdir");
        build
    }
    fn work(&self) -> PathBuf {
        self.root.path().join("home/build")
    }
    fn outdir(&self) -> PathBuf {
        self.root.path().join("out")
    }
    fn pkg(&self, name: &str) -> PathBuf {
        self.outdir().join(name)
    }

    /// The non-input substitutions for a pipeline running for package `context`.
    fn vars(&self, context: &str) -> HashMap<String, String> {
        let arch = std::env::consts::ARCH;
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        HashMap::from([
            ("targets.outdir".into(), path(self.outdir())),
            ("targets.destdir".into(), path(self.pkg(PACKAGE))),
            ("targets.contextdir".into(), path(self.pkg(context))),
            ("targets.subpkgdir".into(), path(self.pkg(context))),
            ("context.name".into(), context.to_string()),
            ("package.name".into(), PACKAGE.to_string()),
            ("package.version".into(), VERSION.to_string()),
            ("package.epoch".into(), "0".to_string()),
            ("host.triplet.gnu".into(), format!("{arch}-pc-linux-gnu")),
            ("build.arch".into(), arch.to_string()),
            ("build.goarch".into(), goarch().to_string()),
        ])
    }

    /// Runs pipeline `name` for the main package.
    fn run(&self, name: &str, with: &[(&str, &str)], env: &[(&str, &Path)]) -> Outcome {
        self.run_for(PACKAGE, name, with, env)
    }

    /// Runs `fetch` on a file the host side "downloaded"; the URI ends in the file's name.
    fn fetch(&self, file: &Path, with: &[(&str, &str)]) -> Outcome {
        let name = file.file_name().expect("file name").to_string_lossy();
        let uri = format!("https://example.org/dl/{name}");
        let mut all = vec![("uri", uri.as_str())];
        all.extend_from_slice(with);
        self.run("fetch", &all, &[("PKGBUILD_FETCHED_FILE", file)])
    }

    /// Runs pipeline `name` as part of package `context`'s pipeline.
    fn run_for(
        &self,
        context: &str,
        name: &str,
        with: &[(&str, &str)],
        env: &[(&str, &Path)],
    ) -> Outcome {
        let with: Vec<(String, String)> = with
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut log = String::new();
        let ok = self.run_pipeline(&find(name), &with, context, env, &mut log);
        Outcome { ok, log }
    }

    fn run_pipeline(
        &self,
        p: &Pipeline,
        with: &[(String, String)],
        context: &str,
        env: &[(&str, &Path)],
        log: &mut String,
    ) -> bool {
        let mut vars = self.vars(context);
        vars.extend(resolve_inputs(p, with, &vars));
        for (n, step) in p.steps.iter().enumerate() {
            if let Some(uses) = &step.uses {
                let nested: Vec<(String, String)> = step
                    .with
                    .iter()
                    .map(|(k, v)| (k.clone(), substitute(v, &vars, &p.name)))
                    .collect();
                if !self.run_pipeline(&find(uses), &nested, context, env, log) {
                    return false;
                }
                continue;
            }
            let script = substitute(step.runs.as_deref().unwrap_or_default(), &vars, &p.name);
            let dir = match &step.working_directory {
                Some(d) => self.work().join(substitute(d, &vars, &p.name)),
                None => self.work(),
            };
            let mut cmd = Command::new(test_shell());
            cmd.arg("-e")
                .arg("-c")
                .arg(&script)
                .current_dir(&dir)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", self.work())
                .env("LC_ALL", "C")
                .env("GIT_CONFIG_NOSYSTEM", "1");
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = cmd.output().expect("spawn sh");
            log.push_str(&format!("--- {} step {n} ---\n", p.name));
            log.push_str(&String::from_utf8_lossy(&out.stdout));
            log.push_str(&String::from_utf8_lossy(&out.stderr));
            if !out.status.success() {
                return false;
            }
        }
        true
    }
}

/// Input values as the compiler would bind them: `with:` first, then the substituted
/// default, then the empty string. Unknown or missing required inputs are test errors.
fn resolve_inputs(
    p: &Pipeline,
    with: &[(String, String)],
    base: &HashMap<String, String>,
) -> HashMap<String, String> {
    for (k, _) in with {
        assert!(p.input(k).is_some(), "{} has no input {k}", p.name);
    }
    p.inputs
        .iter()
        .map(|i| {
            let given = with.iter().find(|(k, _)| k == &i.name).map(|(_, v)| v);
            assert!(
                given.is_some() || !i.required,
                "{}: required input {} not given",
                p.name,
                i.name
            );
            let value = match (given, &i.default) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => substitute(d, base, &p.name),
                (None, None) => String::new(),
            };
            (format!("inputs.{}", i.name), value)
        })
        .collect()
}

/// Replaces every `${{ key }}`; a key with no value is a bug in the pipeline (a typo in an
/// input name, say), so it fails the test naming the pipeline.
fn substitute(text: &str, vars: &HashMap<String, String>, pipeline: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = after
            .find("}}")
            .unwrap_or_else(|| panic!("{pipeline}: unterminated ${{{{ in {text:?}"));
        let key = after[..end].trim();
        let value = vars
            .get(key)
            .unwrap_or_else(|| panic!("{pipeline}: ${{{{{key}}}}} is not a known substitution"));
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The shell functional runs use: `sh` unless `PKGBUILD_TEST_SHELL` names another one.
fn test_shell() -> String {
    std::env::var("PKGBUILD_TEST_SHELL").unwrap_or_else(|_| "sh".to_string())
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a fixture-building command and insists it works.
fn run_ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write fixture");
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

// ---------------------------------------------------------------------------------------
// Syntax of every script.

#[test]
fn every_script_parses_under_each_posix_shell() {
    let shells: Vec<(&str, &[&str])> = [
        ("sh", &["-n"][..]),
        ("dash", &["-n"][..]),
        ("bash", &["--posix", "-n"][..]),
    ]
    .into_iter()
    .filter(|(s, _)| have(s))
    .collect();
    assert!(!shells.is_empty(), "no shell to check with");
    let build = Build::new();
    let mut checked = 0;
    for p in load_all() {
        // Defaults as shipped, then every input set to a multi-line value, which stresses the
        // places where a value lands in a heredoc or at the end of a continued command.
        let defaults: Vec<(String, String)> = p
            .inputs
            .iter()
            .filter(|i| i.required)
            .map(|i| (i.name.clone(), "value".to_string()))
            .collect();
        let busy: Vec<(String, String)> = p
            .inputs
            .iter()
            .map(|i| (i.name.clone(), "one two\nthree".to_string()))
            .collect();
        for with in [defaults, busy] {
            let mut vars = build.vars("hello-sub");
            vars.extend(resolve_inputs(&p, &with, &vars));
            for (n, step) in p.steps.iter().enumerate() {
                let Some(runs) = &step.runs else {
                    let uses = step.uses.as_deref().unwrap_or_default();
                    assert!(
                        pipelines_support::pipelines_dir()
                            .join(format!("{uses}.yaml"))
                            .is_file(),
                        "{} step {n} uses unknown pipeline {uses}",
                        p.name
                    );
                    continue;
                };
                let script = substitute(runs, &vars, &p.name);
                for (shell, args) in &shells {
                    let out = Command::new(shell)
                        .args(*args)
                        .arg("-c")
                        .arg(&script)
                        .output()
                        .expect("spawn shell");
                    assert!(
                        out.status.success(),
                        "{} step {n} does not parse under {shell}: {}\n{script}",
                        p.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} scripts were checked");
}

// ---------------------------------------------------------------------------------------
// fetch

/// Makes `NAME-1.0/{README,src/a.txt}` and packs it with `tar` and `compress` flags.
fn source_tree(dir: &Path, archive: &str, flag: &str) -> PathBuf {
    let top = dir.join("hello-1.0");
    write(&top.join("README"), "read me\n");
    write(&top.join("src/a.txt"), "alpha\n");
    run_ok(dir, "tar", &[flag, archive, "hello-1.0"]);
    dir.join(archive)
}

#[test]
fn fetch_unpacks_a_tar_gz_stripping_the_top_directory() {
    let build = Build::new();
    let dl = TempDir::new().expect("temp dir");
    let file = source_tree(dl.path(), "hello-1.0.tar.gz", "-czf");
    build
        .fetch(&file, &[("expected-sha256", "00")])
        .expect_ok("fetch");
    let work = build.work();
    assert_eq!(read(&work.join("README")), "read me\n");
    assert_eq!(read(&work.join("src/a.txt")), "alpha\n");
    assert!(
        !work.join("hello-1.0").exists(),
        "top directory not stripped"
    );
    // melange leaves the artifact next to the sources; recipes rely on that.
    assert_eq!(
        fs::read(work.join("hello-1.0.tar.gz")).expect("copy"),
        fs::read(&file).expect("original")
    );
}

#[test]
fn fetch_honours_directory_and_strip_components_zero() {
    let build = Build::new();
    let dl = TempDir::new().expect("temp dir");
    let file = source_tree(dl.path(), "hello-1.0.tgz", "-czf");
    build
        .fetch(
            &file,
            &[
                ("expected-sha512", "00"),
                ("directory", "vendor/hello"),
                ("strip-components", "0"),
                ("delete", "true"),
            ],
        )
        .expect_ok("fetch");
    let work = build.work();
    assert_eq!(
        read(&work.join("vendor/hello/hello-1.0/src/a.txt")),
        "alpha\n"
    );
    assert!(
        !work.join("hello-1.0.tgz").exists(),
        "delete: true left the artifact behind"
    );
}

#[test]
fn fetch_unpacks_a_tar_xz() {
    let build = Build::new();
    let dl = TempDir::new().expect("temp dir");
    let file = source_tree(dl.path(), "hello-1.0.tar.xz", "-cJf");
    build
        .fetch(&file, &[("expected-sha256", "00"), ("directory", "src-xz")])
        .expect_ok("fetch .tar.xz");
    assert_eq!(read(&build.work().join("src-xz/README")), "read me\n");
}

#[test]
fn fetch_keeps_the_file_when_extract_is_false_and_unpacks_single_gz() {
    let build = Build::new();
    let dl = TempDir::new().expect("temp dir");
    let script = dl.path().join("entrypoint.sh");
    write(&script, "#!/bin/sh\necho hi\n");
    build
        .fetch(&script, &[("expected-sha256", "00"), ("extract", "false")])
        .expect_ok("fetch extract: false");
    assert_eq!(
        read(&build.work().join("entrypoint.sh")),
        "#!/bin/sh\necho hi\n"
    );

    let data = dl.path().join("words.txt");
    write(&data, "one\ntwo\n");
    run_ok(dl.path(), "gzip", &["-9", "words.txt"]);
    let gz = dl.path().join("words.txt.gz");
    build
        .fetch(&gz, &[("expected-none", "yes"), ("directory", "data")])
        .expect_ok("fetch single .gz");
    assert_eq!(read(&build.work().join("data/words.txt")), "one\ntwo\n");
}

#[test]
fn fetch_without_the_host_download_fails_clearly() {
    let build = Build::new();
    build
        .run(
            "fetch",
            &[
                ("uri", "https://example.org/hello-1.0.tar.gz"),
                ("expected-sha256", "00"),
            ],
            &[],
        )
        .expect_failure("fetch without a download", "PKGBUILD_FETCHED_FILE");
    let dl = TempDir::new().expect("temp dir");
    let file = source_tree(dl.path(), "hello-1.0.tar.gz", "-czf");
    build
        .fetch(&file, &[])
        .expect_failure("fetch without a checksum", "expected-sha256");
}

// ---------------------------------------------------------------------------------------
// git-checkout

/// A repository with one commit, cloned the way the host side would; returns (clone, commit).
fn checkout_fixture(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("upstream");
    write(&repo.join("main.c"), "int main(void) { return 0; }\n");
    write(&repo.join(".hidden"), "dot file\n");
    run_ok(&repo, "git", &["init", "-q"]);
    run_ok(&repo, "git", &["add", "."]);
    run_ok(
        &repo,
        "git",
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-qm",
            "first",
        ],
    );
    let commit = run_ok(&repo, "git", &["rev-parse", "HEAD"])
        .trim()
        .to_string();
    run_ok(dir, "git", &["clone", "-q", "upstream", "checkout"]);
    (dir.join("checkout"), commit)
}

#[test]
fn git_checkout_copies_the_host_checkout_with_its_git_dir() {
    let build = Build::new();
    let fixtures = TempDir::new().expect("temp dir");
    let (checkout, commit) = checkout_fixture(fixtures.path());
    build
        .run(
            "git-checkout",
            &[
                ("repository", "https://example.org/hello.git"),
                ("tag", "v1.0"),
                ("expected-commit", &commit),
                ("destination", "src"),
            ],
            &[("PKGBUILD_CHECKOUT_DIR", &checkout)],
        )
        .expect_ok("git-checkout");
    let dest = build.work().join("src");
    assert_eq!(read(&dest.join("main.c")), "int main(void) { return 0; }\n");
    assert_eq!(read(&dest.join(".hidden")), "dot file\n");
    assert!(
        dest.join(".git").is_dir(),
        "the .git directory was not kept"
    );
    let head = run_ok(&dest, "git", &["rev-parse", "HEAD"]);
    assert_eq!(head.trim(), commit);
}

#[test]
fn git_checkout_rejects_a_wrong_commit_and_a_missing_checkout() {
    let build = Build::new();
    let fixtures = TempDir::new().expect("temp dir");
    let (checkout, _) = checkout_fixture(fixtures.path());
    build
        .run(
            "git-checkout",
            &[
                ("repository", "https://example.org/hello.git"),
                (
                    "expected-commit",
                    "0123456789012345678901234567890123456789",
                ),
            ],
            &[("PKGBUILD_CHECKOUT_DIR", &checkout)],
        )
        .expect_failure("git-checkout at the wrong commit", "expected commit");
    build
        .run(
            "git-checkout",
            &[("repository", "https://example.org/hello.git")],
            &[],
        )
        .expect_failure("git-checkout without a checkout", "PKGBUILD_CHECKOUT_DIR");
}

// ---------------------------------------------------------------------------------------
// patch

const GREETING_PATCH: &str = "\
--- a/greeting.txt
+++ b/greeting.txt
@@ -1,2 +1,2 @@
 hello
-world
+pkgbuild
";

#[test]
fn patch_applies_listed_patches_and_series_files() {
    let build = Build::new();
    let work = build.work();
    write(&work.join("greeting.txt"), "hello\nworld\n");
    write(&work.join("fix-greeting.patch"), GREETING_PATCH);
    build
        .run("patch", &[("patches", "fix-greeting.patch\n")], &[])
        .expect_ok("patch");
    assert_eq!(read(&work.join("greeting.txt")), "hello\npkgbuild\n");
    assert!(!work.join("greeting.txt.orig").exists());

    // The same patch again no longer applies, and that must fail the step.
    build
        .run("patch", &[("patches", "fix-greeting.patch")], &[])
        .expect_failure("re-applying a patch", "fix-greeting.patch");

    write(&work.join("greeting.txt"), "hello\nworld\n");
    write(
        &work.join("debian/patches/01-greeting.patch"),
        GREETING_PATCH,
    );
    write(
        &work.join("debian/patches/series"),
        "# applied in order\n\n01-greeting.patch\n",
    );
    build
        .run("patch", &[("series", "debian/patches/series")], &[])
        .expect_ok("patch from a series file");
    assert_eq!(read(&work.join("greeting.txt")), "hello\npkgbuild\n");

    build
        .run("patch", &[("patches", "missing.patch")], &[])
        .expect_failure("a missing patch", "missing.patch");
}

// ---------------------------------------------------------------------------------------
// autoconf

const CONFIGURE: &str = r#"#!/bin/sh
# Minimal stand-in for an autoconf script: records its arguments and writes config.mk.
prefix=/usr/local
for arg do
  case "$arg" in
    --prefix=*) prefix=${arg#--prefix=} ;;
  esac
done
printf '%s\n' "$@" > configure.args
printf 'PREFIX = %s\n' "$prefix" > config.mk
"#;

const MAKEFILE: &str = "\
include config.mk

all: hello

hello:
\tprintf '#!/bin/sh\\necho hello from make\\n' > hello
\tchmod +x hello

install: hello
\tmkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib
\tcp hello $(DESTDIR)$(PREFIX)/bin/hello
\techo 'libtool archive' > $(DESTDIR)$(PREFIX)/lib/libhello.la
\techo 'real library' > $(DESTDIR)$(PREFIX)/lib/libhello.so.1
";

#[test]
fn autoconf_configure_make_and_make_install_build_into_the_package() {
    let build = Build::new();
    let work = build.work();
    write(&work.join("configure"), CONFIGURE);
    fs::set_permissions(work.join("configure"), fs::Permissions::from_mode(0o755)).expect("chmod");
    write(&work.join("Makefile"), MAKEFILE);

    build
        .run(
            "autoconf/configure",
            &[("opts", "--enable-shiny \\\n--disable-static\n")],
            &[],
        )
        .expect_ok("autoconf/configure");
    let args = read(&work.join("configure.args"));
    let triplet = format!("--host={}-pc-linux-gnu", std::env::consts::ARCH);
    for expected in [
        triplet.as_str(),
        "--prefix=/usr",
        "--sysconfdir=/etc",
        "--libdir=/usr/lib",
        "--enable-shiny",
        "--disable-static",
    ] {
        assert!(
            args.lines().any(|l| l == expected),
            "configure did not get {expected}: {args}"
        );
    }

    build
        .run("autoconf/make", &[], &[])
        .expect_ok("autoconf/make");
    assert!(work.join("hello").is_file());

    build
        .run("autoconf/make-install", &[], &[])
        .expect_ok("autoconf/make-install");
    let dest = build.pkg(PACKAGE);
    let installed = dest.join("usr/bin/hello");
    assert!(installed.is_file(), "make install did not use DESTDIR");
    let out = Command::new(&installed).output().expect("run installed");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from make\n");
    assert!(
        !dest.join("usr/lib/libhello.la").exists(),
        "libtool archive kept"
    );
    assert!(dest.join("usr/lib/libhello.so.1").is_file());
}

#[test]
fn autoconf_configure_fails_clearly_without_a_script() {
    let build = Build::new();
    build
        .run("autoconf/configure", &[], &[])
        .expect_failure("configure with nothing to run", "configure.ac");
}

// ---------------------------------------------------------------------------------------
// split/*

/// A main package tree with a bit of everything the split pipelines look for.
fn populated_destdir(build: &Build) -> PathBuf {
    let d = build.pkg(PACKAGE);
    for (path, text) in [
        ("usr/bin/hello", "binary"),
        ("usr/bin/hello-config", "config script"),
        ("usr/include/hello.h", "header"),
        ("usr/include/hello/extra.h", "nested header"),
        ("usr/lib/libhello.so.1.0", "library"),
        ("usr/lib/libhello.a", "archive"),
        ("usr/lib/pkgconfig/hello.pc", "pc"),
        ("usr/lib/cmake/Hello/HelloConfig.cmake", "cmake"),
        ("usr/share/aclocal/hello.m4", "m4"),
        ("usr/share/man/man1/hello.1", "man1"),
        ("usr/local/share/man/man3/hello.3", "man3"),
        ("usr/man/man5/hello.conf.5", "man5"),
        ("usr/share/info/hello.info", "info"),
        ("usr/share/info/dir", "info index"),
        ("usr/share/doc/hello/README", "doc"),
        ("usr/share/locale/de/LC_MESSAGES/hello.mo", "mo"),
        ("usr/share/hello/data.txt", "data"),
        ("opt/hello/include/opt.h", "opt header"),
    ] {
        write(&d.join(path), text);
    }
    symlink("libhello.so.1.0", d.join("usr/lib/libhello.so.1")).expect("symlink");
    symlink("libhello.so.1", d.join("usr/lib/libhello.so")).expect("symlink");
    d
}

#[test]
fn split_dev_moves_development_files_only() {
    let build = Build::new();
    let main = populated_destdir(&build);
    build
        .run_for("hello-dev", "split/dev", &[], &[])
        .expect_ok("split/dev");
    let dev = build.pkg("hello-dev");
    for moved in [
        "usr/include/hello.h",
        "usr/include/hello/extra.h",
        "usr/bin/hello-config",
        "usr/lib/libhello.a",
        "usr/lib/pkgconfig/hello.pc",
        "usr/lib/cmake/Hello/HelloConfig.cmake",
        "usr/share/aclocal/hello.m4",
        "opt/hello/include/opt.h",
    ] {
        assert!(dev.join(moved).is_file(), "{moved} not moved to -dev");
        assert!(
            !exists(&main.join(moved)),
            "{moved} still in the main package"
        );
    }
    let link = dev.join("usr/lib/libhello.so");
    assert_eq!(
        fs::read_link(&link).expect("dev .so symlink"),
        Path::new("libhello.so.1")
    );
    for kept in [
        "usr/bin/hello",
        "usr/lib/libhello.so.1.0",
        "usr/lib/libhello.so.1",
        "usr/share/hello/data.txt",
    ] {
        assert!(
            exists(&main.join(kept)),
            "{kept} wrongly left the main package"
        );
    }
    assert!(
        !main.join("usr/include").exists(),
        "empty usr/include left behind"
    );
    assert!(!main.join("opt").exists(), "empty opt/ left behind");
}

#[test]
fn split_dev_takes_files_from_the_named_package_and_refuses_itself() {
    let build = Build::new();
    write(&build.pkg("libother").join("usr/include/other.h"), "h");
    build
        .run_for("other-dev", "split/dev", &[("package", "libother")], &[])
        .expect_ok("split/dev from another package");
    assert!(build.pkg("other-dev").join("usr/include/other.h").is_file());
    build
        .run_for(PACKAGE, "split/dev", &[], &[])
        .expect_failure("splitting into itself", "cannot split");
}

#[test]
fn split_manpages_gathers_every_man_directory() {
    let build = Build::new();
    let main = populated_destdir(&build);
    // A second man1 page already in the subpackage must survive the merge.
    write(
        &build.pkg("hello-doc").join("usr/share/man/man1/other.1"),
        "other",
    );
    build
        .run_for("hello-doc", "split/manpages", &[], &[])
        .expect_ok("split/manpages");
    let man = build.pkg("hello-doc").join("usr/share/man");
    assert_eq!(read(&man.join("man1/hello.1")), "man1");
    assert_eq!(read(&man.join("man1/other.1")), "other");
    assert_eq!(read(&man.join("man3/hello.3")), "man3");
    assert_eq!(read(&man.join("man5/hello.conf.5")), "man5");
    for gone in ["usr/share/man", "usr/local", "usr/man"] {
        assert!(
            !main.join(gone).exists(),
            "{gone} still in the main package"
        );
    }
    assert!(main.join("usr/share/info/hello.info").is_file());
}

#[test]
fn split_alldocs_infodir_and_locales_move_their_trees() {
    let build = Build::new();
    let main = populated_destdir(&build);
    build
        .run_for("hello-lang", "split/locales", &[], &[])
        .expect_ok("split/locales");
    assert!(build
        .pkg("hello-lang")
        .join("usr/share/locale/de/LC_MESSAGES/hello.mo")
        .is_file());
    assert!(!main.join("usr/share/locale").exists());

    build
        .run_for("hello-doc", "split/alldocs", &[], &[])
        .expect_ok("split/alldocs");
    let doc = build.pkg("hello-doc");
    assert!(doc.join("usr/share/info/hello.info").is_file());
    assert!(
        !doc.join("usr/share/info/dir").exists(),
        "the info dir index must not be shipped"
    );
    assert!(doc.join("usr/share/man/man3/hello.3").is_file());
    assert!(doc.join("usr/share/doc/hello/README").is_file());
    assert!(main.join("usr/share/hello/data.txt").is_file());

    // Nothing left to move is not an error.
    build
        .run_for("hello-info", "split/infodir", &[], &[])
        .expect_ok("split/infodir with no info pages");
}

#[test]
fn split_static_lib_and_bin_pick_their_files() {
    let build = Build::new();
    let main = populated_destdir(&build);
    build
        .run_for("hello-static", "split/static", &[], &[])
        .expect_ok("split/static");
    assert!(build
        .pkg("hello-static")
        .join("usr/lib/libhello.a")
        .is_file());

    build
        .run_for("libhello", "split/lib", &[("patterns", "hello\n")], &[])
        .expect_ok("split/lib");
    let lib = build.pkg("libhello");
    assert!(lib.join("usr/lib/libhello.so.1.0").is_file());
    assert!(lib.join("usr/lib/libhello.so.1").is_symlink());
    assert!(
        main.join("usr/lib/libhello.so").is_symlink(),
        "the unversioned link is for -dev, not the library package"
    );

    build
        .run_for("hello-bin", "split/bin", &[], &[])
        .expect_ok("split/bin");
    assert!(build.pkg("hello-bin").join("usr/bin/hello").is_file());
    assert!(!main.join("usr/bin").exists());
    build
        .run_for("hello-bin2", "split/bin", &[], &[])
        .expect_failure("split/bin with no usr/bin", "usr/bin");
}

// ---------------------------------------------------------------------------------------
// strip and split/debug

const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(\"hello\"); return 0; }\n";

/// Compiles hello.c with debug information into `dest`.
fn compile_hello(scratch: &Path, dest: &Path) {
    write(&scratch.join("hello.c"), HELLO_C);
    run_ok(scratch, "cc", &["-g", "-O0", "-o", "hello", "hello.c"]);
    fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    fs::copy(scratch.join("hello"), dest).expect("copy binary");
}

fn sections(path: &Path) -> Vec<String> {
    let data = fs::read(path).expect("read ELF");
    let file = object::File::parse(&*data).expect("parse ELF");
    file.sections()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect()
}

fn runs_and_greets(path: &Path) {
    let out = Command::new(path).output().expect("run binary");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
}

#[test]
fn strip_removes_debug_data_from_elf_files_only() {
    let build = Build::new();
    let scratch = TempDir::new().expect("temp dir");
    let pkg = build.pkg(PACKAGE);
    let bin = pkg.join("usr/bin/hello");
    compile_hello(scratch.path(), &bin);
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o555)).expect("chmod");
    run_ok(
        scratch.path(),
        "cc",
        &["-g", "-c", "-o", "hello.o", "hello.c"],
    );
    let object_file = pkg.join("usr/lib/hello.o");
    fs::create_dir_all(pkg.join("usr/lib")).expect("mkdir");
    fs::copy(scratch.path().join("hello.o"), &object_file).expect("copy object");
    write(
        &pkg.join("usr/share/hello/notes.txt"),
        &"not an ELF file\n".repeat(8),
    );
    let before = fs::metadata(&bin).expect("binary").len();
    assert!(sections(&bin).iter().any(|s| s == ".debug_info"));

    build.run("strip", &[], &[]).expect_ok("strip");
    let names = sections(&bin);
    assert!(!names.iter().any(|s| s.starts_with(".debug")), "{names:?}");
    assert!(
        names.iter().any(|s| s == ".symtab"),
        "-g must keep the symbol table"
    );
    assert!(fs::metadata(&bin).expect("binary").len() < before);
    assert_eq!(
        fs::metadata(&bin).expect("binary").permissions().mode() & 0o777,
        0o555,
        "strip changed the file mode"
    );
    runs_and_greets(&bin);
    assert_eq!(
        fs::read(&object_file).expect("object"),
        fs::read(scratch.path().join("hello.o")).expect("original object"),
        "relocatable objects must be left alone"
    );
    assert_eq!(
        read(&pkg.join("usr/share/hello/notes.txt")),
        "not an ELF file\n".repeat(8)
    );

    build
        .run("strip", &[("opts", "--strip-all")], &[])
        .expect_ok("strip --strip-all");
    assert!(!sections(&bin).iter().any(|s| s == ".symtab"));
    runs_and_greets(&bin);
}

#[test]
fn split_debug_detaches_debug_information() {
    let build = Build::new();
    let scratch = TempDir::new().expect("temp dir");
    let bin = build.pkg(PACKAGE).join("usr/bin/hello");
    compile_hello(scratch.path(), &bin);
    build
        .run_for("hello-dbg", "split/debug", &[], &[])
        .expect_ok("split/debug");
    let debug = build
        .pkg("hello-dbg")
        .join("usr/lib/debug/usr/bin/hello.debug");
    assert!(sections(&debug).iter().any(|s| s == ".debug_info"));
    let names = sections(&bin);
    assert!(names.iter().any(|s| s == ".gnu_debuglink"), "{names:?}");
    assert!(!names.iter().any(|s| s == ".debug_info"), "{names:?}");
    runs_and_greets(&bin);
}

// ---------------------------------------------------------------------------------------
// smaller contracts

#[test]
fn python_test_runs_its_command() {
    let build = Build::new();
    build
        .run("python/test", &[("command", "echo ran > marker\n")], &[])
        .expect_ok("python/test");
    assert_eq!(read(&build.work().join("marker")), "ran\n");
}

#[test]
fn substitution_rejects_unknown_keys() {
    let vars = HashMap::from([("inputs.a".to_string(), "1".to_string())]);
    assert_eq!(substitute("x${{ inputs.a }}y", &vars, "t"), "x1y");
    let err = std::panic::catch_unwind(|| substitute("${{inputs.b}}", &vars, "t"));
    assert!(err.is_err());
}

// ---------------------------------------------------------------------------------------
// copy and move

#[test]
fn copy_and_move_place_files_in_the_package() {
    let build = Build::new();
    let work = build.work();
    write(&work.join("build/hello"), "binary");
    write(&work.join("build/share/data.txt"), "data");
    write(&work.join("build/hello.1"), "man page");
    let pkg = build.pkg(PACKAGE);

    // Without dest a relative source keeps its path inside the package; directories
    // are copied recursively by default and the source stays.
    build
        .run("copy", &[("src", "build/hello\nbuild/share")], &[])
        .expect_ok("copy");
    assert_eq!(read(&pkg.join("build/hello")), "binary");
    assert_eq!(read(&pkg.join("build/share/data.txt")), "data");
    assert!(
        work.join("build/hello").is_file(),
        "copy removed its source"
    );

    // An explicit dest directory for several sources, globs expanded, from modroot.
    let dest = format!("{}/usr/share/hello/", pkg.display());
    build
        .run(
            "copy",
            &[("src", "hello *.1"), ("dest", &dest), ("modroot", "build")],
            &[],
        )
        .expect_ok("copy with dest");
    assert_eq!(read(&pkg.join("usr/share/hello/hello")), "binary");
    assert_eq!(read(&pkg.join("usr/share/hello/hello.1")), "man page");

    // An absolute source under the build root lands at its base name.
    let abs = work.join("build/hello").display().to_string();
    build
        .run("move", &[("src", &abs)], &[])
        .expect_ok("move an absolute path");
    assert_eq!(read(&pkg.join("hello")), "binary");
    assert!(!exists(&work.join("build/hello")), "move kept its source");

    // A single source with dest names the target itself; its parent is created.
    let target = format!("{}/usr/bin/hello-data", pkg.display());
    build
        .run(
            "move",
            &[("src", "build/share/data.txt"), ("dest", &target)],
            &[],
        )
        .expect_ok("move with dest");
    assert_eq!(read(&pkg.join("usr/bin/hello-data")), "data");

    build
        .run("copy", &[("src", "build/missing")], &[])
        .expect_failure("copying a missing file", "build/missing");
}

// ---------------------------------------------------------------------------------------
// git-am and git-archive

/// Runs git in `dir` with a fixed identity and no user or system configuration.
fn git(dir: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "-c",
        "user.name=Test Author",
        "-c",
        "user.email=author@example.org",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "commit.gpgsign=false",
    ];
    all.extend_from_slice(args);
    run_ok(dir, "git", &all).trim().to_string()
}

#[test]
fn git_am_applies_a_mailbox_patch_as_a_commit() {
    if !have("git") {
        eprintln!("git is not installed; git-am is only syntax-checked");
        return;
    }
    let build = Build::new();
    let work = build.work();
    git(&work, &["init", "-q"]);
    write(&work.join("greeting.txt"), "hello\nworld\n");
    git(&work, &["add", "greeting.txt"]);
    git(&work, &["commit", "-q", "-m", "initial"]);
    // Make the change, turn it into a mailbox patch, and go back to before it.
    write(&work.join("greeting.txt"), "hello\npkgbuild\n");
    git(&work, &["commit", "-q", "-am", "Greet pkgbuild"]);
    let patch = git(&work, &["format-patch", "-1", "-o", "patches"]);
    let patch = Path::new(&patch)
        .strip_prefix(&work)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(&patch));
    let patch = patch.to_string_lossy().into_owned();
    git(&work, &["reset", "-q", "--hard", "HEAD~1"]);
    assert_eq!(read(&work.join("greeting.txt")), "hello\nworld\n");

    build
        .run("git-am", &[("patches", &patch)], &[])
        .expect_ok("git-am");
    assert_eq!(read(&work.join("greeting.txt")), "hello\npkgbuild\n");
    assert_eq!(
        git(&work, &["log", "-1", "--format=%s|%an"]),
        "Greet pkgbuild|Test Author"
    );
    assert_eq!(git(&work, &["rev-list", "--count", "HEAD"]), "2");

    // Applying it again fails, and leaves no half-finished am behind.
    build
        .run("git-am", &[("patches", &patch)], &[])
        .expect_failure("re-applying the patch", "does not apply");
    assert!(
        !work.join(".git/rebase-apply").exists(),
        "git am was not aborted"
    );
    build
        .run("git-am", &[("patches", "nope.patch")], &[])
        .expect_failure("a missing patch", "nope.patch");
}

#[test]
fn git_archive_extracts_a_subtree_at_a_ref() {
    if !have("git") {
        eprintln!("git is not installed; git-archive is only syntax-checked");
        return;
    }
    let repo = TempDir::new().expect("temp dir");
    let r = repo.path();
    git(r, &["init", "-q"]);
    write(&r.join("pkg/hello/main.c"), "v1\n");
    write(&r.join("other/readme"), "elsewhere\n");
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "v1"]);
    git(r, &["tag", "v1"]);
    let v1 = git(r, &["rev-parse", "HEAD"]);
    write(&r.join("pkg/hello/main.c"), "v2\n");
    git(r, &["commit", "-q", "-am", "v2"]);
    let env = [("PKGBUILD_GIT_ARCHIVE_REPO", r)];

    let build = Build::new();
    build
        .run(
            "git-archive",
            &[
                ("path", "pkg/hello"),
                ("tag", "v1"),
                ("expected-commit", &v1),
            ],
            &env,
        )
        .expect_ok("git-archive at a tag");
    let work = build.work();
    assert_eq!(read(&work.join("pkg/hello/main.c")), "v1\n");
    assert!(!work.join("other").exists(), "extracted more than path");
    assert!(!work.join(".git").exists());

    let build = Build::new();
    build
        .run("git-archive", &[("path", "pkg")], &env)
        .expect_ok("git-archive at HEAD");
    assert_eq!(read(&build.work().join("pkg/hello/main.c")), "v2\n");

    build
        .run(
            "git-archive",
            &[("path", "pkg"), ("expected-commit", &v1)],
            &env,
        )
        .expect_failure("a commit mismatch", "expected-commit");
    build
        .run("git-archive", &[("path", "missing")], &env)
        .expect_failure("a path not in the repository", "missing");
}

// ---------------------------------------------------------------------------------------
// the rest of the newer built-ins that work offline

#[test]
fn split_docs_moves_only_the_doc_directories() {
    let build = Build::new();
    let main = populated_destdir(&build);
    write(&main.join("usr/local/share/doc/hello/NEWS"), "news");
    build
        .run_for("hello-doc", "split/docs", &[], &[])
        .expect_ok("split/docs");
    let doc = build.pkg("hello-doc");
    assert_eq!(read(&doc.join("usr/share/doc/hello/README")), "doc");
    assert_eq!(read(&doc.join("usr/share/doc/hello/NEWS")), "news");
    assert!(!main.join("usr/share/doc").exists());
    assert!(!main.join("usr/local/share/doc").exists());
    assert!(
        main.join("usr/share/man/man1/hello.1").is_file(),
        "split/docs must leave manual pages alone"
    );
    build
        .run_for(PACKAGE, "split/docs", &[], &[])
        .expect_failure("splitting into itself", "cannot split");
}

#[test]
fn redis_valkey_subpackage_cli_moves_the_client() {
    let build = Build::new();
    let bin = build.pkg(PACKAGE).join("usr/bin");
    write(&bin.join("valkey-cli"), "client");
    write(&bin.join("valkey-server"), "server");
    build
        .run_for(
            "valkey-cli",
            "redis-valkey/subpackage-cli",
            &[("project", "valkey")],
            &[],
        )
        .expect_ok("redis-valkey/subpackage-cli");
    assert_eq!(
        read(&build.pkg("valkey-cli").join("usr/bin/valkey-cli")),
        "client"
    );
    assert!(!bin.join("valkey-cli").exists());
    assert!(bin.join("valkey-server").is_file());
    build
        .run_for(
            "valkey-benchmark",
            "redis-valkey/subpackage-benchmark",
            &[("project", "valkey")],
            &[],
        )
        .expect_failure("no benchmark binary", "valkey-benchmark");
}

#[test]
fn cran_fetch_uses_a_tarball_that_is_already_there() {
    let build = Build::new();
    let work = build.work();
    write(
        &work.join("hello/DESCRIPTION"),
        "Package: hello\nVersion: 1.0\n",
    );
    run_ok(&work, "tar", &["-czf", "hello_1.0.tar.gz", "hello"]);
    fs::remove_dir_all(work.join("hello")).expect("remove tree");
    build
        .run(
            "cran/fetch",
            &[("package", "hello"), ("version", "1.0"), ("delete", "true")],
            &[],
        )
        .expect_ok("cran/fetch offline");
    assert_eq!(
        read(&work.join("DESCRIPTION")),
        "Package: hello\nVersion: 1.0\n"
    );
    assert!(
        !work.join("hello_1.0.tar.gz").exists(),
        "delete: true kept it"
    );
}

#[test]
fn xcover_ensure_gates_on_the_reported_coverage() {
    let build = Build::new();
    write(
        &build.work().join("xcover-report.json"),
        "{\"cov_by_func\": 42.5, \"functions\": 10}\n",
    );
    build
        .run("xcover/ensure", &[("min-coverage", "40")], &[])
        .expect_ok("coverage above the minimum");
    build
        .run("xcover/ensure", &[("min-coverage", "50")], &[])
        .expect_failure("coverage below the minimum", "below the minimum");
    let empty = Build::new();
    empty
        .run("xcover/ensure", &[], &[])
        .expect_failure("no report", "xcover-report.json");
}

#[test]
fn meson_test_runs_the_suite_when_meson_is_installed() {
    if !have("meson") || !have("ninja") {
        // CI has no meson; the script is still syntax-checked above.
        eprintln!("meson or ninja is not installed; meson/test is only syntax-checked");
        let build = Build::new();
        if !have("meson") {
            build
                .run("meson/test", &[], &[])
                .expect_failure("meson/test without meson", "meson is not installed");
        }
        return;
    }
    let build = Build::new();
    let work = build.work();
    write(
        &work.join("meson.build"),
        "project('t')\ntest('passes', find_program('true'))\n",
    );
    run_ok(&work, "meson", &["setup", "output"]);
    build.run("meson/test", &[], &[]).expect_ok("meson/test");
    write(
        &work.join("meson.build"),
        "project('t')\ntest('fails', find_program('false'))\n",
    );
    build
        .run("meson/test", &[], &[])
        .expect_failure("a failing test suite", "fails");
}
