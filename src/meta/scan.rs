//! Automatic `depend =` / `provides =` generation from a package's staged
//! tree, after melange's SCA (`pkg/sca/sca.go`) and abuild's tracedeps.
//!
//! [`scan_tree`] looks at one staged tree and reports what it needs and what
//! it offers: `so:` (ELF `DT_NEEDED`, `PT_INTERP`, `DT_SONAME`), `cmd:`
//! (executables in the bin directories, shebang interpreters), `pc:`
//! (pkg-config files and their `Requires`), and the interpreter package a
//! Python or Ruby module needs. [`resolve`] then looks at a recipe's whole
//! family of packages at once: it drops what a package satisfies itself,
//! links `-dev` style `.so` symlinks to the sibling holding the real library,
//! and merges the recipe's declared lists.
//!
//! The tree is untrusted: the walk never follows symlinks, a symlink is only
//! ever resolved inside the root (absolute targets and `..` are clamped to it,
//! as they would be once installed), and files are read with bounded reads.
//! Scanning knows nothing of recipes or of the apk format; the engine feeds it
//! paths and options and writes the result into `.PKGINFO`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::elf::{self, ElfInfo};
use super::tree::{Entry, Kind, StagedTree as Tree, TreeError};

/// Library directories searched by the dynamic loader without configuration.
/// A shared object elsewhere is "vendored": it serves its own package only.
const LIB_DIRS: [&str; 4] = ["lib", "usr/lib", "lib64", "usr/lib64"];

/// Directories whose executables become `cmd:` provides.
const BIN_DIRS: [&str; 4] = ["bin", "sbin", "usr/bin", "usr/sbin"];

/// Directories whose scripts' shebangs become `cmd:` depends. melange looks
/// at `usr/local` too; so do we, on top of the provider directories.
const SCRIPT_DIRS: [&str; 6] = [
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "usr/local/bin",
    "usr/local/sbin",
];

/// Where pkg-config looks. A `.pc` file elsewhere is vendored.
const PC_DIRS: [&str; 7] = [
    "lib/pkgconfig",
    "lib64/pkgconfig",
    "usr/lib/pkgconfig",
    "usr/lib64/pkgconfig",
    "usr/share/pkgconfig",
    "usr/local/lib/pkgconfig",
    "usr/local/share/pkgconfig",
];

/// Libraries injected into containers by the host's GPU driver: a package
/// can neither depend on them nor provide them (same list as melange).
const HOST_PROVIDED_LIBS: [&str; 27] = [
    "libEGL_nvidia.so.1",
    "libGLESv1_CM_nvidia.so.1",
    "libGLESv2_nvidia.so.1",
    "libGLX_nvidia.so.1",
    "libcuda.so.1",
    "libcudadebugger.so.1",
    "libnvcuvid.so.1",
    "libnvidia-allocator.so.1",
    "libnvidia-cfg.so.1",
    "libnvidia-eglcore.so.1",
    "libnvidia-encode.so.1",
    "libnvidia-fbc.so.1",
    "libnvidia-glcore.so.1",
    "libnvidia-glsi.so.1",
    "libnvidia-glvkspirv.so.1",
    "libnvidia-gpucomp.so.1",
    "libnvidia-ml.so.1",
    "libnvidia-ngx.so.1",
    "libnvidia-nvvm.so.1",
    "libnvidia-opencl.so.1",
    "libnvidia-opticalflow.so.1",
    "libnvidia-pkcs11-openssl3.so.1",
    "libnvidia-pkcs11.so.1",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-rtcore.so.1",
    "libnvidia-tls.so.1",
    "libnvoptix.so.1",
];

/// Separate debug files (`-dbg` packages): never loaded, and their dynamic
/// segment has no file data, so they are not read as ELF objects.
const DEBUG_DIR: &str = "usr/lib/debug";

/// Bytes read to find a shebang line (the kernel's own limit since 5.1).
const SHEBANG_READ: u64 = 256;
/// Largest `.pc` or `ld.so.conf.d` file we read.
const TEXT_READ: u64 = 1 << 20;

/// Per-package switches from the recipe's `options:` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// `no-provides`: generate no `provides`.
    pub no_provides: bool,
    /// `no-depends`: generate no `depend`.
    pub no_depends: bool,
    /// `no-commands`: generate no `cmd:` entries, in either list.
    pub no_commands: bool,
    /// `no-versioned-shlib-deps`: accepted for recipe compatibility. melange
    /// only versions `so-ver:` depends from the build environment's package
    /// index (behind a feature flag); we never generate versioned shared
    /// library depends, so there is nothing to turn off.
    pub no_versioned_shlib_deps: bool,
}

/// What one staged tree needs and offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanResult {
    /// Generated dependencies, already without the ones this tree satisfies.
    pub depends: BTreeSet<String>,
    /// Generated provides (`so:x=ver`, `cmd:x=ver`, `pc:x=ver`).
    pub provides: BTreeSet<String>,
    /// Sonames of shared objects outside the library directories.
    pub vendored: BTreeSet<String>,
    /// Every dependency name the files of this tree can satisfy, whether or
    /// not it is provided (vendored libraries, `no-provides`). A sibling
    /// needing one of these but finding no provider depends on this package
    /// by name instead.
    pub satisfies: BTreeSet<String>,
    /// File names that `.so` symlinks of this tree point to and that are not
    /// in this tree's library directories: a `-dev` package's `libfoo.so`
    /// pointing at the real library in its parent. [`resolve`] matches them
    /// against the siblings' [`ScanResult::libraries`].
    pub so_links: BTreeSet<String>,
    /// File name → soname, for every shared object (or symlink to one) in
    /// this tree's library directories.
    pub libraries: BTreeMap<String, String>,
    /// Things skipped and why (malformed ELF, unusable shebang, odd names).
    pub warnings: Vec<String>,
}

/// A package of a recipe's family, as [`resolve`] needs it.
#[derive(Debug, Clone)]
pub struct PackageDeps<'a> {
    pub name: &'a str,
    pub declared_depends: &'a [String],
    pub declared_provides: &'a [String],
    pub scan: ScanResult,
}

/// Final, sorted and deduplicated lists for one package's `.PKGINFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedDeps {
    pub depends: Vec<String>,
    pub provides: Vec<String>,
}

/// Why a tree could not be scanned.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> ScanError + 'a {
    move |source| ScanError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Scans one staged tree, walked once by the caller. `full_version` is `<version>-r<epoch>`, used for
/// `cmd:` and `pc:` provides. Library directories named by the tree's own
/// `etc/ld.so.conf.d/*.conf` count as library directories.
pub fn scan_tree(
    tree: &Tree,
    full_version: &str,
    opts: &ScanOptions,
) -> Result<ScanResult, ScanError> {
    scan_tree_with_lib_dirs(tree, full_version, opts, &[])
}

/// [`scan_tree`] with extra library directories (relative to the root, no
/// leading `/`). melange reads `etc/ld.so.conf.d` from every package of the
/// recipe; the engine gets the same by passing the union of
/// [`ld_so_conf_dirs`] over all sibling trees here.
pub fn scan_tree_with_lib_dirs(
    tree: &Tree,
    full_version: &str,
    opts: &ScanOptions,
    extra_lib_dirs: &[String],
) -> Result<ScanResult, ScanError> {
    let mut lib_dirs: BTreeSet<String> = LIB_DIRS.iter().map(|d| d.to_string()).collect();
    lib_dirs.extend(extra_lib_dirs.iter().filter_map(|d| normalize_dir(d)));
    lib_dirs.extend(ld_so_conf_dirs(tree)?);

    let mut scan = Scanner {
        tree,
        version: full_version,
        lib_dirs: &lib_dirs,
        out: ScanResult::default(),
    };
    scan.shared_objects()?;
    scan.commands();
    scan.shebangs()?;
    scan.pkg_config()?;
    scan.language_modules();
    let mut out = scan.out;

    // What the files satisfy is known before the options prune the lists: a
    // `no-provides` package still carries its libraries.
    out.satisfies
        .extend(out.provides.iter().map(|p| provide_name(p).to_string()));
    out.depends.retain(|d| !out.satisfies.contains(dep_name(d)));
    out.so_links.retain(|t| !out.libraries.contains_key(t));

    if opts.no_commands {
        out.provides.retain(|p| !p.starts_with("cmd:"));
        out.depends.retain(|d| !d.starts_with("cmd:"));
    }
    if opts.no_depends {
        out.depends.clear();
        out.so_links.clear();
    }
    if opts.no_provides {
        out.provides.clear();
    }
    Ok(out)
}

/// Library directories named by `etc/ld.so.conf.d/*.conf` in `tree`
/// (relative, without the leading `/`).
pub fn ld_so_conf_dirs(tree: &Tree) -> Result<BTreeSet<String>, ScanError> {
    let mut dirs = BTreeSet::new();
    for entry in tree.in_dirs(&["etc/ld.so.conf.d"]) {
        let is_conf = entry.name.as_deref().is_some_and(|n| n.ends_with(".conf"));
        if entry.kind != Kind::File || !is_conf {
            continue;
        }
        let text = read_head(&tree.abs(&entry.rel), TEXT_READ)?;
        for line in String::from_utf8_lossy(&text).lines() {
            // Only absolute directory lines; `include` and comments are
            // not followed (melange does the same).
            let line = line.split('#').next().unwrap_or("").trim();
            if line.starts_with('/') {
                dirs.extend(normalize_dir(line));
            }
        }
    }
    Ok(dirs)
}

/// Combines a recipe's packages: drops what each package satisfies itself,
/// adds `.so` symlink dependencies on siblings, and merges the declared
/// lists (declared entries are kept exactly as written and win over a
/// generated entry of the same name). A dependency some sibling provides
/// stays in its `so:`/`cmd:`/`pc:` form for apk to resolve, as melange does;
/// one a sibling only contains (vendored, or `no-provides`) becomes a
/// dependency on that sibling's name, since nothing would provide it.
pub fn resolve(packages: &[PackageDeps]) -> Vec<ResolvedDeps> {
    let provides: Vec<Vec<String>> = packages.iter().map(merged_provides).collect();
    let provided_names: Vec<BTreeSet<&str>> = provides
        .iter()
        .map(|list| list.iter().map(|p| provide_name(p)).collect())
        .collect();

    packages
        .iter()
        .enumerate()
        .map(|(i, pkg)| {
            let siblings = || (0..packages.len()).filter(move |&j| j != i);

            let mut generated = pkg.scan.depends.clone();
            for target in &pkg.scan.so_links {
                if let Some(soname) =
                    siblings().find_map(|j| packages[j].scan.libraries.get(target))
                {
                    generated.insert(format!("so:{soname}"));
                }
            }
            drop_overridden_interpreters(&mut generated, pkg.declared_depends);

            let declared: BTreeSet<&str> = pkg
                .declared_depends
                .iter()
                .filter(|d| !d.starts_with('!'))
                .map(|d| dep_name(d))
                .collect();
            let mut depends: BTreeSet<String> = pkg.declared_depends.iter().cloned().collect();
            for dep in generated {
                let name = dep_name(&dep);
                if provided_names[i].contains(name)
                    || pkg.scan.satisfies.contains(name)
                    || declared.contains(name)
                {
                    continue;
                }
                if siblings().any(|j| provided_names[j].contains(name)) {
                    depends.insert(dep);
                } else if let Some(j) =
                    siblings().find(|&j| packages[j].scan.satisfies.contains(name))
                {
                    depends.insert(packages[j].name.to_string());
                } else {
                    depends.insert(dep);
                }
            }
            ResolvedDeps {
                depends: depends.into_iter().collect(),
                provides: provides[i].clone(),
            }
        })
        .collect()
}

/// Declared provides plus generated ones whose name was not declared.
fn merged_provides(pkg: &PackageDeps) -> Vec<String> {
    let declared: BTreeSet<&str> = pkg
        .declared_provides
        .iter()
        .map(|p| provide_name(p))
        .collect();
    let mut all: BTreeSet<String> = pkg.declared_provides.iter().cloned().collect();
    all.extend(
        pkg.scan
            .provides
            .iter()
            .filter(|p| !declared.contains(provide_name(p)))
            .cloned(),
    );
    all.into_iter().collect()
}

/// melange adds no interpreter dependency when the recipe already names one
/// (`python…` for Python modules, `ruby`/`ruby-…` for gems).
fn drop_overridden_interpreters(generated: &mut BTreeSet<String>, declared: &[String]) {
    if declared.iter().any(|d| d.starts_with("python")) {
        generated.retain(|d| !(d.starts_with("python-") && d.ends_with("-base")));
    }
    if declared
        .iter()
        .any(|d| d == "ruby" || d.starts_with("ruby-"))
    {
        generated.retain(|d| !d.starts_with("ruby-"));
    }
}

/// The name part of a dependency (`so:libz.so.1>=1.3` → `so:libz.so.1`).
fn dep_name(dep: &str) -> &str {
    let dep = dep.strip_prefix('!').unwrap_or(dep);
    dep.find(['=', '<', '>', '~']).map_or(dep, |i| &dep[..i])
}

/// The name part of a provide (`so:libz.so.1=1.3.1` → `so:libz.so.1`).
fn provide_name(provide: &str) -> &str {
    provide.split('=').next().unwrap_or(provide)
}

/// A name usable inside a dependency: printable, no blanks, no operators.
fn usable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '=' | '<' | '>' | '~' | '!'))
}

/// `/opt/app/lib/` → `opt/app/lib`; rejects relative or `..` paths.
fn normalize_dir(dir: &str) -> Option<String> {
    let dir = dir.trim();
    let rel = dir.strip_prefix('/').unwrap_or(dir);
    let parts: Vec<&str> = rel
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

/// Reads at most `limit` bytes from the start of a file.
fn read_head(path: &Path, limit: u64) -> Result<Vec<u8>, ScanError> {
    let file = fs::File::open(path).map_err(io_error(path, "cannot open"))?;
    let mut buf = Vec::new();
    file.take(limit)
        .read_to_end(&mut buf)
        .map_err(io_error(path, "cannot read"))?;
    Ok(buf)
}

struct Scanner<'t> {
    tree: &'t Tree,
    version: &'t str,
    lib_dirs: &'t BTreeSet<String>,
    out: ScanResult,
}

impl Scanner<'_> {
    fn warn(&mut self, rel: &Path, what: impl std::fmt::Display) {
        self.out.warnings.push(format!("{}: {what}", rel.display()));
    }

    fn in_lib_dir(&self, entry: &Entry) -> bool {
        self.lib_dirs.contains(&entry.dir)
    }

    fn depend(&mut self, rel: &Path, prefix: &str, name: &str) {
        if usable_name(name) {
            self.out.depends.insert(format!("{prefix}{name}"));
        } else {
            self.warn(rel, format_args!("unusable dependency name {name:?}"));
        }
    }

    fn provide(&mut self, rel: &Path, prefix: &str, name: &str, version: &str) {
        if usable_name(name) {
            self.out
                .provides
                .insert(format!("{prefix}{name}={version}"));
        } else {
            self.warn(rel, format_args!("unusable provided name {name:?}"));
        }
    }

    /// `so:` depends and provides, and the facts [`resolve`] needs about
    /// library symlinks.
    fn shared_objects(&mut self) -> Result<(), ScanError> {
        let tree = self.tree;
        // Opening every file dominates on big trees; read them in parallel,
        // then apply the results in tree order so output stays deterministic.
        let read: Vec<(&Entry, Result<Option<ElfInfo>, String>)> = tree
            .entries()
            .par_iter()
            .filter(|e| e.kind == Kind::File && !e.rel.starts_with(DEBUG_DIR))
            .map(|entry| {
                let abs = tree.abs(&entry.rel);
                let info = elf::read(&abs).map_err(io_error(&abs, "cannot read"))?;
                Ok((entry, info))
            })
            .collect::<Result<_, ScanError>>()?;
        let mut objects: BTreeMap<&Path, ElfInfo> = BTreeMap::new();
        for (entry, info) in read {
            let info = match info {
                Ok(Some(info)) => info,
                Ok(None) => continue,
                Err(reason) => {
                    self.warn(
                        &entry.rel,
                        format_args!("skipped malformed ELF file: {reason}"),
                    );
                    continue;
                }
            };
            self.elf_object(entry, &info);
            objects.insert(&entry.rel, info);
        }

        for entry in tree.entries().iter().filter(|e| e.kind == Kind::Symlink) {
            let Some(name) = entry.name.as_deref() else {
                continue;
            };
            if !name.contains(".so") {
                continue;
            }
            if self.in_lib_dir(entry) {
                let soname = tree
                    .resolve(&entry.rel)
                    .and_then(|real| objects.get(real.as_path()))
                    .and_then(|info| info.soname.clone());
                if let Some(soname) = soname {
                    self.out.libraries.insert(name.to_string(), soname);
                }
            }
            // Like melange, only the target's file name matters: it is looked
            // up in the library directories of every package of the recipe.
            let file = entry.target.as_deref().and_then(Path::file_name);
            if let Some(file) = file.and_then(|f| f.to_str()) {
                self.out.so_links.insert(file.to_string());
            }
        }
        Ok(())
    }

    fn elf_object(&mut self, entry: &Entry, info: &ElfInfo) {
        let rel = entry.rel.as_path();
        if let Some(interp) = &info.interpreter {
            let base = interp.rsplit('/').next().unwrap_or(interp);
            // musl's loader is installed as a symlink to libc itself, which
            // is what the musl package provides.
            match base.strip_prefix("ld-musl") {
                Some(rest) => self.depend(rel, "so:libc.musl", rest),
                None => self.depend(rel, "so:", base),
            }
        }
        for lib in &info.needed {
            // An unversioned DT_NEEDED (`libfoo.so`) names no soname anyone
            // provides; melange skips those too. One with a `/` is loaded by
            // path (`$ORIGIN/../lib/...`), not by soname.
            let by_path = lib.contains('/');
            if lib.contains(".so.") && !by_path && !HOST_PROVIDED_LIBS.contains(&lib.as_str()) {
                self.depend(rel, "so:", lib);
            }
        }

        let Some(name) = entry.name.as_deref() else {
            return;
        };
        // Programs have no business providing a soname, but some shared
        // objects are runnable (libc, libcap): a `.so` file name decides.
        let library = info.interpreter.is_none() || name.contains(".so.") || name.ends_with(".so");
        let Some(soname) = info.soname.as_deref().filter(|_| library) else {
            return;
        };
        if HOST_PROVIDED_LIBS.contains(&soname) {
            return;
        }
        if self.in_lib_dir(entry) {
            let version = library_version(name, soname);
            self.provide(rel, "so:", soname, &version);
            self.out
                .libraries
                .insert(name.to_string(), soname.to_string());
        } else if usable_name(soname) {
            self.out.vendored.insert(soname.to_string());
            self.out.satisfies.insert(format!("so:{soname}"));
        }
    }

    /// `cmd:` provides for executables (and symlinks to executables inside
    /// the tree) directly in the bin directories.
    fn commands(&mut self) {
        let tree = self.tree;
        for entry in tree.in_dirs(&BIN_DIRS) {
            let Some(name) = entry.name.as_deref() else {
                continue;
            };
            let executable = match entry.kind {
                Kind::File => entry.mode & 0o111 != 0,
                Kind::Symlink => tree
                    .resolve(&entry.rel)
                    .and_then(|real| tree.get(&real))
                    .is_some_and(|e| e.kind == Kind::File && e.mode & 0o111 != 0),
                Kind::Dir | Kind::Special => false,
            };
            if executable {
                let version = self.version;
                self.provide(&entry.rel, "cmd:", name, version);
            }
        }
    }

    /// `cmd:` depends on the interpreters of scripts in the bin directories.
    fn shebangs(&mut self) -> Result<(), ScanError> {
        let tree = self.tree;
        for entry in tree.in_dirs(&SCRIPT_DIRS) {
            if entry.kind != Kind::File {
                continue;
            }
            let head = read_head(&tree.abs(&entry.rel), SHEBANG_READ)?;
            match shebang_command(&head) {
                Ok(Some(cmd)) => self.depend(&entry.rel, "cmd:", &cmd),
                Ok(None) => {}
                Err(reason) => self.warn(&entry.rel, format_args!("shebang ignored: {reason}")),
            }
        }
        Ok(())
    }

    /// `pc:` provides for pkg-config files, `pc:` depends on their
    /// `Requires` lists.
    fn pkg_config(&mut self) -> Result<(), ScanError> {
        let tree = self.tree;
        for entry in tree.entries() {
            // Symlinked `.pc` aliases (ncurses) are skipped, as melange does.
            let Some(module) = entry.name.as_deref().and_then(|n| n.strip_suffix(".pc")) else {
                continue;
            };
            if entry.kind != Kind::File {
                continue;
            }
            if !PC_DIRS.contains(&entry.dir.as_str()) {
                if usable_name(module) {
                    self.out.satisfies.insert(format!("pc:{module}"));
                }
                continue;
            }
            let text = read_head(&tree.abs(&entry.rel), TEXT_READ)?;
            let version = self.version;
            self.provide(&entry.rel, "pc:", module, version);
            for required in pc_requires(&String::from_utf8_lossy(&text)) {
                self.depend(&entry.rel, "pc:", &required);
            }
        }
        Ok(())
    }

    /// The interpreter a Python module or Ruby gem was installed for.
    fn language_modules(&mut self) {
        let tree = self.tree;
        // melange keeps the last `pythonX.Y/site-packages` directory it walks
        // past; in our byte order that is the same one.
        let python = tree
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Dir && e.name.as_deref() == Some("site-packages"))
            .filter_map(|e| e.dir.rsplit('/').next()?.strip_prefix("python"))
            .rfind(|v| !v.is_empty());
        if let Some(version) = python {
            self.depend(
                Path::new("site-packages"),
                "python-",
                &format!("{version}-base"),
            );
        }

        let ruby = tree
            .entries()
            .iter()
            .filter(|e| e.kind == Kind::Dir && e.name.as_deref() == Some("gems"))
            .filter_map(|e| e.dir.strip_prefix("usr/lib/ruby/gems/"))
            .find_map(ruby_abi);
        if let Some(version) = ruby {
            self.depend(Path::new("usr/lib/ruby/gems"), "ruby-", &version);
        }
    }
}

/// `3.3.0` → `3.3`: the Ruby ABI directory's major.minor.
fn ruby_abi(dir: &str) -> Option<String> {
    let parts: Vec<&str> = dir.split('.').collect();
    let numeric = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (parts.len() == 3 && parts.iter().all(numeric)).then(|| format!("{}.{}", parts[0], parts[1]))
}

/// The version in `so:<soname>=<version>`: the digits after `.so.` in the
/// real file name (`libfoo.so.1.2.3` → `1.2.3`), as Alpine's abuild does;
/// failing that the soname's (`libfoo.so.1` → `1`, melange's only source);
/// failing both, `0`.
fn library_version(file_name: &str, soname: &str) -> String {
    let numeric = |name: &str| {
        let (_, ver) = name.split_once(".so.")?;
        let ok = ver
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| ver.to_string())
    };
    numeric(file_name)
        .or_else(|| numeric(soname))
        .unwrap_or_else(|| "0".to_string())
}

/// The command a script's shebang runs, if it is something to depend on.
///
/// `#!/usr/bin/env X` and `#!/usr/bin/env -S X args` name `X`. Only `sh` is
/// left out: every base image has it. (melange also leaves out `python`,
/// `python3`, `awk` and `luajit` because its `cmd:` provides ignore
/// symlinks; ours count symlinks, so those can be provided.)
fn shebang_command(head: &[u8]) -> Result<Option<String>, String> {
    let Some(rest) = head.strip_prefix(b"#!") else {
        return Ok(None);
    };
    let line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
    let line = std::str::from_utf8(line).map_err(|_| "shebang line is not UTF-8".to_string())?;
    let mut words = line.split_whitespace();
    let Some(interpreter) = words.next() else {
        return Ok(None);
    };
    let base = |path: &str| path.rsplit('/').next().unwrap_or(path).to_string();
    let mut command = base(interpreter);
    if command == "env" {
        let args: Vec<&str> = words.collect();
        command = match args.as_slice() {
            [] => return Err("`env` without a command".to_string()),
            ["-S", rest @ ..] | ["--split-string", rest @ ..] => {
                // Skip `NAME=value` assignments; an option here would need a
                // real `env` argument parser, so it is refused.
                match rest.iter().find(|w| !w.contains('=')) {
                    Some(w) if !w.starts_with('-') => base(w),
                    _ => return Err(format!("cannot tell the command in {line:?}")),
                }
            }
            [single] if !single.starts_with('-') => base(single),
            // The kernel passes everything after the interpreter as one
            // argument, so `env python3 -u` looks for a file "python3 -u".
            _ => {
                return Err(format!(
                    "`env` with several arguments but no -S in {line:?}"
                ))
            }
        };
    }
    if command == "sh" {
        return Ok(None);
    }
    if !usable_name(&command) {
        return Err(format!("unusable interpreter name {command:?}"));
    }
    Ok(Some(command))
}

/// Module names in a `.pc` file's `Requires`, `Requires.private` and
/// `Requires.internal` fields, with `${variables}` expanded.
fn pc_requires(text: &str) -> Vec<String> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut modules = Vec::new();
    let joined = text.replace("\\\n", " ");
    for raw in joined.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        let field = line.find(':');
        let assign = line.find('=');
        match (field, assign) {
            (Some(c), a) if a.is_none_or(|a| c < a) => {
                let key = line[..c].trim();
                let is_requires = ["Requires", "Requires.private", "Requires.internal"]
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key));
                if is_requires {
                    let value = expand_pc_vars(line[c + 1..].trim(), &vars);
                    modules.extend(pc_module_list(&value));
                }
            }
            (_, Some(a)) => {
                let name = line[..a].trim();
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
                if valid {
                    let value = expand_pc_vars(line[a + 1..].trim(), &vars);
                    vars.insert(name.to_string(), value);
                }
            }
            _ => {}
        }
    }
    modules
}

/// Expands `${name}` (and `$$`) from earlier definitions, which are stored
/// already expanded; the result is capped so a hostile file cannot make a
/// doubling chain of variables blow up.
fn expand_pc_vars(value: &str, vars: &BTreeMap<String, String>) -> String {
    const MAX_LEN: usize = 64 << 10;
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after) = after.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some((name, tail)) = after.strip_prefix('{').and_then(|a| a.split_once('}')) {
            if let Some(v) = vars.get(name) {
                out.push_str(v);
            }
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
        if out.len() > MAX_LEN {
            out.truncate(MAX_LEN);
            return out;
        }
    }
    out.push_str(rest);
    out
}

/// `glib-2.0 >= 2.50, zlib,libffi>3` → `glib-2.0`, `zlib`, `libffi`.
fn pc_module_list(value: &str) -> Vec<String> {
    const OPS: [char; 4] = ['<', '>', '=', '!'];
    let mut words = Vec::new();
    for word in value.split(|c: char| c == ',' || c.is_whitespace()) {
        // Split glued comparisons: `a>=1` → `a`, `>=`, `1`.
        let mut rest = word;
        while !rest.is_empty() {
            match rest.find(OPS) {
                Some(0) => {
                    let end = rest.find(|c: char| !OPS.contains(&c)).unwrap_or(rest.len());
                    words.push(&rest[..end]);
                    rest = &rest[end..];
                }
                Some(i) => {
                    words.push(&rest[..i]);
                    rest = &rest[i..];
                }
                None => {
                    words.push(rest);
                    rest = "";
                }
            }
        }
    }
    let mut modules = Vec::new();
    let mut version_next = false;
    for word in words {
        if word.starts_with(OPS) {
            version_next = true;
        } else if version_next {
            version_next = false;
        } else {
            modules.push(word.to_string());
        }
    }
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_version_prefers_the_file_name_then_the_soname() {
        assert_eq!(library_version("libfoo.so.1.2.3", "libfoo.so.1"), "1.2.3");
        assert_eq!(library_version("libfoo.so", "libfoo.so.1"), "1");
        assert_eq!(library_version("libfoo-2.so", "libfoo-2.so"), "0");
        assert_eq!(library_version("libfoo.so.1.x", "libfoo.so.1"), "1");
        assert_eq!(library_version("libfoo.so.1..2", "libfoo.so"), "0");
    }

    #[test]
    fn shebangs_name_their_interpreter() {
        type Want = Result<Option<&'static str>, ()>;
        let cases: [(&[u8], Want); 12] = [
            (b"#!/bin/sh\necho", Ok(None)),
            (b"#!/bin/sh -e\n", Ok(None)),
            (b"#!/usr/bin/env sh\n", Ok(None)),
            (b"#! /bin/bash\n", Ok(Some("bash"))),
            (b"#!/usr/bin/env python3\n", Ok(Some("python3"))),
            (b"#!/usr/bin/env -S perl -w\n", Ok(Some("perl"))),
            (
                b"#!/usr/bin/env -S LANG=C ruby --disable-gems\n",
                Ok(Some("ruby")),
            ),
            (b"#!/usr/bin/python3.12 -u\r\n", Ok(Some("python3.12"))),
            (b"ELF\x7f", Ok(None)),
            (b"#!/usr/bin/env\n", Err(())),
            (b"#!/usr/bin/env python3 -u\n", Err(())),
            (b"#!/usr/bin/env -S -i perl\n", Err(())),
        ];
        for (head, want) in cases {
            let got = shebang_command(head);
            let got = got.as_ref().map(|o| o.as_deref()).map_err(|_| ());
            assert_eq!(got, want, "{:?}", String::from_utf8_lossy(head));
        }
        assert_eq!(shebang_command(b"#!\n"), Ok(None));
    }

    #[test]
    fn pc_requires_handles_operators_commas_and_variables() {
        let pc = "\
prefix=/usr
gio=gio-2.0 # comment
name.with.dots=${gio}
Name: foo
Version: 1.0
Requires: glib-2.0 >= 2.50, zlib,libffi>3 ${name.with.dots}
Requires.private: \\
   libpcre2-8 = 10.42 ${undefined}
description: not a requires field
";
        assert_eq!(
            pc_requires(pc),
            ["glib-2.0", "zlib", "libffi", "gio-2.0", "libpcre2-8"]
        );
    }

    #[test]
    fn pc_variables_cannot_blow_up() {
        let mut pc = String::from("a=xxxxxxxxxxxxxxxx\n");
        for i in 1..40 {
            pc.push_str(&format!("v{i}=${{v{}}}${{v{}}}\n", i - 1, i - 1).replace("v0", "a"));
        }
        pc.push_str("Requires: ${v39}\n");
        let modules = pc_requires(&pc);
        assert!(modules.iter().map(String::len).sum::<usize>() <= 64 << 10);
    }

    #[test]
    fn names_are_split_from_versions() {
        assert_eq!(dep_name("so:libz.so.1>=1.3"), "so:libz.so.1");
        assert_eq!(dep_name("!foo"), "foo");
        assert_eq!(dep_name("python3~3.12"), "python3");
        assert_eq!(provide_name("so:libz.so.1=1.3.1"), "so:libz.so.1");
        assert!(!usable_name("bad name"));
        assert!(!usable_name("a=b"));
        assert!(usable_name("libstdc++.so.6"));
    }

    #[test]
    fn ld_so_conf_lines_become_relative_dirs() {
        assert_eq!(normalize_dir("/opt/app/lib/"), Some("opt/app/lib".into()));
        assert_eq!(normalize_dir("/usr//lib64"), Some("usr/lib64".into()));
        assert_eq!(normalize_dir("/../etc"), None);
        assert_eq!(normalize_dir("/"), None);
    }

    #[test]
    fn ruby_abi_directories() {
        assert_eq!(ruby_abi("3.3.0"), Some("3.3".into()));
        assert_eq!(ruby_abi("3.3"), None);
        assert_eq!(ruby_abi("x.3.0"), None);
    }
}
