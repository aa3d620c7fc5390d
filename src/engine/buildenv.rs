//! The build environment, as far as pkgbuild installs one today: packages
//! of `environment.contents.packages` that an earlier `pkgbuild build` put
//! into a LOCAL repository (the output repository `<out-dir>/<arch>/`, and
//! any `environment.contents.repositories` entry that is a local
//! directory) are resolved there, checked, and extracted into a private
//! sysroot outside the build directory (`Workspace::sysroot_dir`).
//! Everything else is assumed to come from the host, and the build log
//! says which is which.
//!
//! Trust: an index is used only when it is signed by the build's own
//! signing key or by a local `environment.contents.keyring` file; its `C:`
//! and `S:` then pin each package file (control member, which carries the
//! `datahash`, which pins the data), as apk chains trust. A package is
//! copied into the build's scratch directory before it is checked and
//! extracted, so what is checked is what is extracted. An index nobody
//! trusted signed stops the build only when it offers something asked for:
//! every build re-signs the output index with its own key, and a key
//! change must not break recipes that want nothing from it.
//!
//! Visibility: the sysroot is not laid over `/usr`. Steps find it through
//! the variables the GNU toolchain, pkg-config, CMake and aclocal honour
//! ([`env_vars`]), each pointing into the sysroot AFTER anything the recipe
//! set and, for `PATH`, after the host's directories. This works the same
//! for the host runner (which cannot mount anything) and under bubblewrap
//! (which mounts the sysroot read-only at [`GUEST_SYSROOT`]); an overlay on
//! `/usr` would need kernel overlayfs in user namespaces, a fallback for
//! when it is missing, and would let a local package shadow host files.
//!
//! pkg-config files are the one thing edited after extraction: their
//! absolute paths (`prefix=/usr`, `-I/usr/include/x`) are rewritten into
//! the sysroot. `PKG_CONFIG_SYSROOT_DIR` would do that for EVERY `.pc`
//! file, and turn a host library's `-I/usr/include/freetype2` into a path
//! that does not exist. Absolute symlinks are made relative, so they
//! resolve inside the sysroot too.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::apk::dep::Dep;
use crate::apk::index::IndexEntry;
use crate::apk::read::{self, ReadError};
use crate::apk::sign::SigningKey;
use crate::apk::version;
use crate::plan::Contents;
use crate::sandbox::{self, RunnerKind};
pub use crate::upstream::TrustedKey;
use crate::upstream::{self, UpstreamError};

/// Where bubblewrap mounts the sysroot (read-only).
pub const GUEST_SYSROOT: &str = "/var/lib/pkgbuild/sysroot";

/// Largest `.pc` file rewritten; pkg-config files are a few hundred bytes.
const MAX_PC_FILE: u64 = 1 << 20;

/// Why the build environment could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum BuildEnvError {
    /// A local index could not be read, or no trusted key signed it.
    #[error("{source}{}", keyring_hint(source))]
    Index { source: UpstreamError },
    #[error("environment.contents.keyring: {0}")]
    Keyring(UpstreamError),
    #[error("{}: {problem} (listed in {})", path.display(), index.display())]
    Mismatch {
        path: PathBuf,
        index: PathBuf,
        problem: String,
    },
    #[error("{}: {source}", path.display())]
    Package { path: PathBuf, source: ReadError },
    #[error("environment.contents: {wanted} (wanted by {by}) cannot be met: {chosen} is already chosen and does not satisfy it")]
    Conflict {
        wanted: String,
        by: String,
        chosen: String,
    },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

type Result<T, E = BuildEnvError> = std::result::Result<T, E>;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BuildEnvError {
    let path = path.to_path_buf();
    move |source| BuildEnvError::Io { what, path, source }
}

/// One local repository: `<root>/<arch>/` and its verified index records.
pub struct LocalRepo {
    pub dir: PathBuf,
    pub index: PathBuf,
    pub entries: Vec<IndexEntry>,
}

/// Where a `repositories`/`keyring` entry points, when it is local.
/// `@tag` prefixes (apko's `@local /path`) are dropped; relative paths are
/// taken from the current directory, as melange does.
pub(crate) fn local_path(entry: &str) -> Option<PathBuf> {
    let mut e = entry.trim();
    if e.starts_with('@') {
        e = e
            .split_once(char::is_whitespace)
            .map_or("", |(_, r)| r.trim());
    }
    if let Some(p) = e.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    (!e.is_empty() && !e.contains("://")).then(|| PathBuf::from(e))
}

/// `own` (the build's signing key, or the keys `pkgbuild test` was told to
/// trust) plus every local keyring file.
pub fn trusted_keys(own: Vec<TrustedKey>, keyring: &[String]) -> Result<Vec<TrustedKey>> {
    let mut keys = own;
    for entry in keyring {
        let Some(path) = local_path(entry) else {
            continue;
        };
        keys.push(TrustedKey::from_file(&path).map_err(BuildEnvError::Keyring)?);
    }
    Ok(keys)
}

/// Read an index and decide whether a trusted key signed it (the one
/// implementation in `upstream`). The second value says why the index is
/// NOT trusted, if it is not.
pub fn read_index(
    path: &Path,
    trusted: &[TrustedKey],
) -> Result<(Vec<IndexEntry>, Option<BuildEnvError>)> {
    let index = |source| BuildEnvError::Index { source };
    let (entries, verdict) =
        upstream::read_index_file(path, &path.display().to_string(), trusted).map_err(index)?;
    Ok((entries, verdict.err().map(index)))
}

/// Where to add the key an index was signed with.
fn keyring_hint(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Untrusted { .. } => "; add its public key to environment.contents.keyring",
        _ => "",
    }
}

/// Local repositories, split by trust.
#[derive(Default)]
pub struct Repos {
    pub trusted: Vec<LocalRepo>,
    /// Not signed by a trusted key, with the reason: never installed from.
    pub refused: Vec<(LocalRepo, BuildEnvError)>,
}

/// The output repository first, then each local `repositories` entry (a
/// directory already listed is skipped). A directory without an index for
/// `arch` holds nothing yet and is skipped with a note.
pub fn load_repos(
    out_dir: &Path,
    repositories: &[String],
    arch: &str,
    trusted: &[TrustedKey],
    notes: &mut Vec<String>,
) -> Result<Repos> {
    let mut roots = vec![(out_dir.to_path_buf(), false)];
    let mut remote = Vec::new();
    for r in repositories {
        match local_path(r) {
            Some(p) => roots.push((p, true)),
            None => remote.push(r.as_str()),
        }
    }
    if !remote.is_empty() {
        notes.push(format!(
            "note: remote repositories are not used yet (packages not found locally come from the host): {}",
            remote.join(", ")
        ));
    }
    let mut seen = Vec::new();
    let mut repos = Repos::default();
    for (root, listed) in roots {
        let dir = root.join(arch);
        let index = dir.join("APKINDEX.tar.gz");
        if !index.is_file() {
            if listed {
                notes.push(format!(
                    "note: environment.contents.repositories: {} has no index, skipped",
                    index.display()
                ));
            }
            continue;
        }
        let canonical = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if seen.contains(&canonical) {
            continue;
        }
        seen.push(canonical);
        let (entries, refused) = read_index(&index, trusted)?;
        let repo = LocalRepo {
            dir,
            index,
            entries,
        };
        match refused {
            None => repos.trusted.push(repo),
            Some(why) => repos.refused.push((repo, why)),
        }
    }
    Ok(repos)
}

/// An untrusted repository is an error only when it offers something the
/// build would otherwise take from the host (the output repository is
/// re-signed by every build, so after a key change it is untrusted until
/// it holds what a recipe asks for); otherwise it is skipped with a note.
fn check_refused(
    refused: Vec<(LocalRepo, BuildEnvError)>,
    res: &Resolution,
    arch: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    for (repo, why) in refused {
        let offers = res.host.iter().any(|h| {
            h.parse::<Dep>()
                .is_ok_and(|d| !d.conflict && best(std::slice::from_ref(&repo), arch, &d).is_some())
        });
        if offers {
            return Err(why);
        }
        notes.push(format!(
            "note: {why} (not used: it offers none of the requested packages)"
        ));
    }
    Ok(())
}

/// A package picked from a local repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    /// Index into the `repos` given to [`resolve`].
    pub repo: usize,
    pub entry: IndexEntry,
}

impl Chosen {
    pub fn label(&self) -> String {
        format!("{}-{}", self.entry.info.name, self.entry.info.version)
    }
}

/// The closure of the requested packages within the local repositories.
#[derive(Debug, Default)]
pub struct Resolution {
    /// In resolution order: requests first, then what they pull in.
    pub local: Vec<Chosen>,
    /// Requests and dependencies nothing local provides, as written,
    /// first occurrence kept.
    pub host: Vec<String>,
    /// For each request: the index in `local` that met it, if any.
    pub requests: Vec<(String, Option<usize>)>,
}

/// `p:` entries are `name` or `name=version`.
fn provided(entry: &str) -> Option<(String, Option<String>)> {
    let dep: Dep = entry.parse().ok()?;
    match dep.constraint {
        None => Some((dep.name, None)),
        Some((crate::apk::dep::Op::Eq, v)) => Some((dep.name, Some(v))),
        Some(_) => None,
    }
}

/// Whether the package `e` meets `dep` by name or through a `p:` entry
/// (an unversioned provide meets only an unversioned dependency).
fn meets(e: &IndexEntry, dep: &Dep) -> bool {
    if dep.satisfies(&e.info.name, &e.info.version) {
        return true;
    }
    e.info
        .provides
        .iter()
        .filter_map(|p| provided(p))
        .any(|(n, v)| {
            n == dep.name
                && match (&dep.constraint, v) {
                    (None, _) => true,
                    (Some((op, want)), Some(have)) => op.matches(&have, want),
                    (Some(_), None) => false,
                }
        })
}

/// Pick the best local package for `dep`: a package of that name whose
/// version fits, else a provider; the highest version wins, then the
/// lower name (so the choice never depends on index order).
fn best(repos: &[LocalRepo], arch: &str, dep: &Dep) -> Option<Chosen> {
    let fits_arch =
        |e: &IndexEntry| matches!(e.info.arch.as_str(), "" | "noarch") || e.info.arch == arch;
    let mut exact: Vec<Chosen> = Vec::new();
    let mut providers: Vec<Chosen> = Vec::new();
    for (i, r) in repos.iter().enumerate() {
        for e in r.entries.iter().filter(|e| fits_arch(e)) {
            let c = Chosen {
                repo: i,
                entry: e.clone(),
            };
            if dep.satisfies(&e.info.name, &e.info.version) {
                exact.push(c);
            } else if meets(e, dep) {
                providers.push(c);
            }
        }
    }
    let pick = |v: Vec<Chosen>| {
        v.into_iter().reduce(|a, b| {
            let ord = version::compare(&b.entry.info.version, &a.entry.info.version)
                .then_with(|| a.entry.info.name.cmp(&b.entry.info.name));
            // Earlier repositories win ties: the output repository first.
            if ord == std::cmp::Ordering::Greater {
                b
            } else {
                a
            }
        })
    };
    pick(exact).or_else(|| pick(providers))
}

/// Resolve `requests` (apk dependency strings) and their `D:` closure in
/// `repos`. Conflicts (`!name`) are not enforced; a request that does not
/// parse is left to the host.
pub fn resolve(requests: &[String], repos: &[LocalRepo], arch: &str) -> Result<Resolution> {
    let mut res = Resolution::default();
    let host = |s: &str, res: &mut Resolution| {
        if !res.host.iter().any(|h| h == s) {
            res.host.push(s.to_string());
        }
    };
    // (dependency, wanted by, request number)
    let mut queue: std::collections::VecDeque<(Dep, String, Option<usize>)> = Default::default();
    for (n, r) in requests.iter().enumerate() {
        res.requests.push((r.clone(), None));
        match r.trim().parse::<Dep>() {
            Ok(d) if !d.conflict => queue.push_back((d, "environment.contents".into(), Some(n))),
            Ok(_) => {}
            Err(_) => host(r.trim(), &mut res),
        }
    }
    while let Some((dep, by, request)) = queue.pop_front() {
        let already = res.local.iter().position(|c| meets(&c.entry, &dep));
        let found = match already {
            Some(i) => Some(i),
            None => match best(repos, arch, &dep) {
                Some(c) => {
                    if let Some(same) = res
                        .local
                        .iter()
                        .find(|o| o.entry.info.name == c.entry.info.name)
                    {
                        return Err(BuildEnvError::Conflict {
                            wanted: dep.to_string(),
                            by,
                            chosen: same.label(),
                        });
                    }
                    for d in &c.entry.info.depends {
                        match d.parse::<Dep>() {
                            Ok(d) if !d.conflict => {
                                queue.push_back((d, c.label(), None));
                            }
                            Ok(_) => {}
                            Err(_) => host(d, &mut res),
                        }
                    }
                    res.local.push(c);
                    Some(res.local.len() - 1)
                }
                None => None,
            },
        };
        match (found, request) {
            (Some(i), Some(n)) => res.requests[n].1 = Some(i),
            (None, _) => host(&dep.to_string(), &mut res),
            _ => {}
        }
    }
    Ok(res)
}

/// What the SBOM records as the build environment: each request, pinned
/// (`name=version`) when a local package met it, then the other local
/// packages the requests pulled in.
pub fn sbom_packages(res: &Resolution) -> Vec<String> {
    let pin = |c: &Chosen| format!("{}={}", c.entry.info.name, c.entry.info.version);
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for (text, hit) in &res.requests {
        match hit {
            Some(i) => push(pin(&res.local[*i])),
            None => push(text.trim().to_string()),
        }
    }
    for c in &res.local {
        push(pin(c));
    }
    out
}

/// Copy `src` into `dst`, refusing a file whose size is not `size`.
fn copy_exact(src: &Path, dst: &Path, size: u64) -> Result<()> {
    let f = fs::File::open(src).map_err(io_err("opening", src))?;
    let len = f.metadata().map_err(io_err("reading", src))?.len();
    let mismatch = |got: u64| BuildEnvError::Mismatch {
        path: src.to_path_buf(),
        index: PathBuf::new(),
        problem: format!("file is {got} bytes, the index says {size}"),
    };
    if len != size {
        return Err(mismatch(len));
    }
    let mut out = fs::File::create(dst).map_err(io_err("writing", dst))?;
    let copied = io::copy(&mut f.take(size + 1), &mut out).map_err(io_err("copying", src))?;
    if copied != size {
        return Err(mismatch(copied));
    }
    Ok(())
}

/// Check each chosen package against its index record and extract it into
/// `sysroot` (emptied first: a killed build may have left one behind);
/// `scratch` holds the private copies.
/// `visible` is the sysroot's path as steps see it, written into `.pc`
/// files.
pub fn install(
    res: &Resolution,
    repos: &[LocalRepo],
    sysroot: &Path,
    scratch: &Path,
    visible: &str,
) -> Result<()> {
    if fs::symlink_metadata(sysroot).is_ok() {
        fs::remove_dir_all(sysroot).map_err(io_err("clearing", sysroot))?;
    }
    fs::create_dir_all(sysroot).map_err(io_err("creating", sysroot))?;
    fs::create_dir_all(scratch).map_err(io_err("creating", scratch))?;
    for c in &res.local {
        let repo = &repos[c.repo];
        let info = &c.entry.info;
        let file = format!("{}.apk", c.label());
        let path = repo.dir.join(&file);
        let mismatch = |problem: String| BuildEnvError::Mismatch {
            path: path.clone(),
            index: repo.index.clone(),
            problem,
        };
        if file.contains('/') || file.starts_with('.') {
            return Err(mismatch("not a plain file name".into()));
        }
        let copy = scratch.join(&file);
        copy_exact(&path, &copy, c.entry.file_size).map_err(|e| match e {
            BuildEnvError::Mismatch { problem, .. } => mismatch(problem),
            other => other,
        })?;
        let got = IndexEntry::from_package(&copy).map_err(|e| mismatch(e.to_string()))?;
        if got.control_sha1 != c.entry.control_sha1 {
            return Err(mismatch(format!(
                "control member hashes to C:{}, the index says C:{}",
                got.checksum_field(),
                c.entry.checksum_field()
            )));
        }
        if got.info.name != info.name || got.info.version != info.version {
            return Err(mismatch(format!(
                "holds {}-{}",
                got.info.name, got.info.version
            )));
        }
        // extract() checks datahash and every file checksum; a failure
        // stops the build before any step has seen the sysroot.
        read::extract(&copy, sysroot).map_err(|source| BuildEnvError::Package {
            path: path.clone(),
            source,
        })?;
        fs::remove_file(&copy).map_err(io_err("removing", &copy))?;
    }
    relativize_symlinks(sysroot, 0)?;
    for dir in ["usr/lib/pkgconfig", "usr/share/pkgconfig", "lib/pkgconfig"] {
        rewrite_pc_dir(sysroot, dir, visible)?;
    }
    Ok(())
}

/// Turn every absolute symlink under `dir` into a relative one, so it
/// resolves inside the sysroot wherever the sysroot is. Never follows a
/// symlink.
fn relativize_symlinks(dir: &Path, depth: usize) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(io_err("reading", dir))?;
    for e in rd {
        let e = e.map_err(io_err("reading", dir))?;
        let path = e.path();
        let ft = e.file_type().map_err(io_err("reading", &path))?;
        if ft.is_dir() {
            relativize_symlinks(&path, depth + 1)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading", &path))?;
            if let Some(rel) = relative_target(&target.to_string_lossy(), depth) {
                fs::remove_file(&path).map_err(io_err("replacing", &path))?;
                std::os::unix::fs::symlink(&rel, &path).map_err(io_err("creating", &path))?;
            }
        }
    }
    Ok(())
}

/// The relative form of an absolute link `target` for a link `depth`
/// directories below the root, or None when it is already relative.
fn relative_target(target: &str, depth: usize) -> Option<String> {
    let rest = target.strip_prefix('/')?.trim_start_matches('/');
    let up = if depth == 0 {
        ".".to_string()
    } else {
        vec![".."; depth].join("/")
    };
    Some(if rest.is_empty() {
        up
    } else {
        format!("{up}/{rest}")
    })
}

/// Rewrite the `.pc` files of `<sysroot>/<rel>` (a real directory, not
/// reached through a symlink) in place.
fn rewrite_pc_dir(sysroot: &Path, rel: &str, visible: &str) -> Result<()> {
    let mut dir = sysroot.to_path_buf();
    for part in rel.split('/') {
        dir.push(part);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            _ => return Ok(()),
        }
    }
    let rd = fs::read_dir(&dir).map_err(io_err("reading", &dir))?;
    for e in rd {
        let e = e.map_err(io_err("reading", &dir))?;
        let path = e.path();
        let is_file = e.file_type().map_err(io_err("reading", &path))?.is_file();
        if !is_file || path.extension().is_none_or(|x| x != "pc") {
            continue;
        }
        let f = fs::File::open(&path).map_err(io_err("reading", &path))?;
        let mut bytes = Vec::new();
        f.take(MAX_PC_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", &path))?;
        // Too large or not text: not a pkg-config file we can read either.
        let Ok(text) = String::from_utf8(bytes) else {
            continue;
        };
        if text.len() as u64 > MAX_PC_FILE {
            continue;
        }
        let new = rewrite_pc(&text, visible);
        if new != text {
            crate::atomic::write(&path, 0o644, new.as_bytes())
                .map_err(io_err("rewriting", &path))?;
        }
    }
    Ok(())
}

fn under(path: &str, dir: &str) -> bool {
    path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Point a pkg-config file's absolute paths into `sysroot`: variable
/// definitions whose value is an absolute path (`prefix=/usr`), and `-I/`,
/// `-L/` and `-isystem /` flags written out literally in the fields.
pub fn rewrite_pc(text: &str, sysroot: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let var = body.find(['=', ':']).filter(|&i| {
            body.as_bytes()[i] == b'='
                && body[..i]
                    .trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        });
        if let Some(i) = var {
            let value = body[i + 1..].trim_start();
            if value.starts_with('/') && !under(value, sysroot) {
                out.push_str(&body[..i + 1]);
                out.push_str(sysroot);
                out.push_str(value);
            } else {
                out.push_str(body);
            }
        } else if body.contains(':') && !body.trim_start().starts_with('#') {
            let abs = |p: &str| p.starts_with('/') && !under(p, sysroot);
            let mut prev_isystem = false;
            for (n, token) in body.split(' ').enumerate() {
                if n > 0 {
                    out.push(' ');
                }
                let flag = token
                    .strip_prefix("-I")
                    .or_else(|| token.strip_prefix("-L"))
                    .filter(|p| abs(p));
                match flag {
                    Some(p) => {
                        out.push_str(&token[..2]);
                        out.push_str(sysroot);
                        out.push_str(p);
                    }
                    None if prev_isystem && abs(token) => {
                        out.push_str(sysroot);
                        out.push_str(token);
                    }
                    None => out.push_str(token),
                }
                prev_isystem = token == "-isystem";
            }
        } else {
            out.push_str(body);
        }
        out.push_str(eol);
    }
    out
}

/// The variables that expose a sysroot `s` (as the steps see it): search
/// paths for the compiler, linker, loader, pkg-config, CMake and aclocal,
/// and `PATH` with the sysroot's programs AFTER the host's.
pub fn env_vars(s: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (k, v) in list_vars(s) {
        env.insert(k.to_string(), v);
    }
    env.insert(
        "PATH".into(),
        format!("{}:{}", sandbox::DEFAULT_PATH, sysroot_path(s)),
    );
    env.insert("PKGBUILD_SYSROOT".into(), s.to_string());
    env
}

fn sysroot_path(s: &str) -> String {
    format!("{s}/usr/bin:{s}/bin")
}

/// Colon-separated search paths and the sysroot's part of each.
fn list_vars(s: &str) -> [(&'static str, String); 6] {
    [
        ("CPATH", format!("{s}/usr/include")),
        ("LIBRARY_PATH", format!("{s}/usr/lib:{s}/lib")),
        ("LD_LIBRARY_PATH", format!("{s}/usr/lib:{s}/lib")),
        (
            "PKG_CONFIG_PATH",
            format!("{s}/usr/lib/pkgconfig:{s}/usr/share/pkgconfig"),
        ),
        ("CMAKE_PREFIX_PATH", format!("{s}/usr")),
        ("ACLOCAL_PATH", format!("{s}/usr/share/aclocal")),
    ]
}

/// A step environment with the sysroot merged in: where the recipe (or a
/// pipeline) sets one of the search paths itself, its value comes first
/// and the sysroot's part is appended, so the recipe still wins without
/// losing the sysroot. `PKGBUILD_SYSROOT` set by the recipe is kept.
pub fn merge_step_env(env: &mut BTreeMap<String, String>, s: &str) {
    let mut parts: Vec<(&str, String)> = list_vars(s).into_iter().collect();
    parts.push(("PATH", sysroot_path(s)));
    for (k, ours) in parts {
        if let Some(v) = env.get_mut(k) {
            if v.is_empty() {
                *v = ours;
            } else if !v.split(':').any(|p| ours.split(':').any(|o| o == p)) {
                v.push(':');
                v.push_str(&ours);
            }
        }
    }
}

/// Everything the engine needs from this module for one build.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Variables for the sandbox base env (empty when nothing is local).
    pub base_env: BTreeMap<String, String>,
    /// How the steps see the sysroot, when there is one.
    pub visible: Option<String>,
    /// (host path, guest path) for bubblewrap.
    pub ro_bind: Option<(PathBuf, String)>,
    /// For `SbomInput::build_environment`.
    pub sbom: Vec<String>,
    /// Lines for the build log.
    pub log: Vec<String>,
}

/// What [`prepare`] needs.
pub struct Inputs<'a> {
    pub contents: &'a Contents,
    pub out_dir: &'a Path,
    pub arch: &'a str,
    pub key: &'a SigningKey,
    pub runner: RunnerKind,
    /// Where to extract (outside the build directory; emptied first).
    pub sysroot: &'a Path,
    /// Private directory for the checked copies of the packages.
    pub scratch: &'a Path,
}

/// Resolve, check and extract the local part of the build environment.
pub fn prepare(inp: &Inputs) -> Result<Prepared> {
    if inp.contents.packages.is_empty() {
        return Ok(Prepared {
            sbom: inp.contents.packages.clone(),
            ..Default::default()
        });
    }
    let found = resolve_env(
        inp.contents,
        inp.out_dir,
        inp.arch,
        vec![TrustedKey::of(inp.key)],
    )?;
    install_env(found, inp.runner, inp.sysroot, inp.scratch)
}

/// An environment resolved in the trusted local repositories, not yet
/// installed: the first half of [`prepare`], for callers that check the
/// choice before anything is extracted (`pkgbuild test` insists that the
/// package under test comes from the output repository).
pub struct Resolved {
    /// The trusted repositories; [`Chosen::repo`] indexes this.
    pub repos: Vec<LocalRepo>,
    pub res: Resolution,
    /// Notes for the log so far.
    pub log: Vec<String>,
}

/// Load the local repositories (`own` and the contents' keyring decide
/// trust), resolve the contents' packages in them, and refuse an untrusted
/// index that offers one of them.
pub fn resolve_env(
    contents: &Contents,
    out_dir: &Path,
    arch: &str,
    own: Vec<TrustedKey>,
) -> Result<Resolved> {
    let mut log = Vec::new();
    let trusted = trusted_keys(own, &contents.keyring)?;
    let Repos {
        trusted: repos,
        refused,
    } = load_repos(out_dir, &contents.repositories, arch, &trusted, &mut log)?;
    let res = resolve(&contents.packages, &repos, arch)?;
    check_refused(refused, &res, arch, &mut log)?;
    Ok(Resolved { repos, res, log })
}

/// The second half of [`prepare`]: extract what [`resolve_env`] chose into
/// `sysroot` and say how the steps see it.
pub fn install_env(
    found: Resolved,
    runner: RunnerKind,
    sysroot: &Path,
    scratch: &Path,
) -> Result<Prepared> {
    let Resolved { repos, res, log } = found;
    let mut out = Prepared {
        sbom: sbom_packages(&res),
        log,
        ..Default::default()
    };
    if !res.local.is_empty() {
        let sysroot = sysroot.to_path_buf();
        let visible = match runner {
            RunnerKind::Bwrap => GUEST_SYSROOT.to_string(),
            RunnerKind::Host => sysroot.to_string_lossy().into_owned(),
        };
        install(
            &res,
            &repos,
            &sysroot,
            &scratch.join("sysroot-apks"),
            &visible,
        )?;
        let names: Vec<String> = res.local.iter().map(Chosen::label).collect();
        out.log.push(format!(
            "installing from local repository: {}",
            names.join(", ")
        ));
        let mount = match runner {
            RunnerKind::Bwrap => "mounted read-only; ",
            RunnerKind::Host => "",
        };
        out.log.push(format!(
            "build environment: {visible} ({mount}PKGBUILD_SYSROOT, CPATH, LIBRARY_PATH, LD_LIBRARY_PATH, PKG_CONFIG_PATH, CMAKE_PREFIX_PATH, ACLOCAL_PATH and the end of PATH point into it)"
        ));
        out.base_env = env_vars(&visible);
        if runner == RunnerKind::Bwrap {
            out.ro_bind = Some((sysroot, GUEST_SYSROOT.to_string()));
        }
        out.visible = Some(visible);
    }
    if !res.host.is_empty() {
        out.log
            .push(format!("note: from the host: {}", res.host.join(", ")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apk::pkginfo::PkgInfo;

    fn entry(name: &str, version: &str, depends: &[&str], provides: &[&str]) -> IndexEntry {
        IndexEntry {
            info: PkgInfo {
                name: name.into(),
                version: version.into(),
                arch: "x86_64".into(),
                depends: depends.iter().map(|s| s.to_string()).collect(),
                provides: provides.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            control_sha1: [0; 20],
            file_size: 1,
        }
    }

    fn repo(entries: Vec<IndexEntry>) -> LocalRepo {
        LocalRepo {
            dir: PathBuf::from("/r/x86_64"),
            index: PathBuf::from("/r/x86_64/APKINDEX.tar.gz"),
            entries,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn labels(res: &Resolution) -> Vec<String> {
        res.local.iter().map(Chosen::label).collect()
    }

    fn twine() -> LocalRepo {
        repo(vec![
            entry(
                "libtwine",
                "1.0.0-r0",
                &["so:libc.so.6"],
                &["so:libtwine.so.1=1"],
            ),
            entry(
                "libtwine-dev",
                "1.0.0-r0",
                &["libtwine", "pkgconf"],
                &["pc:twine=1.0.0"],
            ),
            entry(
                "libtwine",
                "0.9-r3",
                &["so:libc.so.6"],
                &["so:libtwine.so.1=1"],
            ),
        ])
    }

    #[test]
    fn closure_takes_local_packages_and_leaves_the_rest_to_the_host() {
        let repos = [twine()];
        let res = resolve(&strings(&["build-base", "libtwine-dev"]), &repos, "x86_64").unwrap();
        assert_eq!(labels(&res), ["libtwine-dev-1.0.0-r0", "libtwine-1.0.0-r0"]);
        assert_eq!(res.host, ["build-base", "pkgconf", "so:libc.so.6"]);
        assert_eq!(
            sbom_packages(&res),
            ["build-base", "libtwine-dev=1.0.0-r0", "libtwine=1.0.0-r0"]
        );
    }

    #[test]
    fn constraints_pick_versions_and_provides_are_second_choice() {
        let repos = [twine()];
        let res = resolve(&strings(&["libtwine<1"]), &repos, "x86_64").unwrap();
        assert_eq!(labels(&res), ["libtwine-0.9-r3"]);
        let res = resolve(&strings(&["libtwine>=2"]), &repos, "x86_64").unwrap();
        assert!(res.local.is_empty());
        assert_eq!(res.host, ["libtwine>=2"]);
        // A provided name: the highest version of its providers.
        let res = resolve(&strings(&["so:libtwine.so.1"]), &repos, "x86_64").unwrap();
        assert_eq!(labels(&res), ["libtwine-1.0.0-r0"]);
        let res = resolve(&strings(&["pc:twine>=1"]), &repos, "x86_64").unwrap();
        assert_eq!(labels(&res), ["libtwine-dev-1.0.0-r0", "libtwine-1.0.0-r0"]);
        // An exact name beats a provider of that name.
        let repos = [repo(vec![
            entry("foo", "1-r0", &[], &[]),
            entry("foo-ng", "9-r0", &[], &["foo=9"]),
        ])];
        let res = resolve(&strings(&["foo"]), &repos, "x86_64").unwrap();
        assert_eq!(labels(&res), ["foo-1-r0"]);
        // Unversioned provides do not meet a versioned dependency.
        let repos = [repo(vec![entry("bar", "1-r0", &[], &["virt"])])];
        let res = resolve(&strings(&["virt>1"]), &repos, "x86_64").unwrap();
        assert_eq!(res.host, ["virt>1"]);
    }

    #[test]
    fn other_architectures_conflicts_and_garbage_are_not_installed() {
        let mut other = entry("armonly", "1-r0", &[], &[]);
        other.info.arch = "aarch64".into();
        let repos = [repo(vec![other, entry("any", "1-r0", &["!bad"], &[])])];
        let res = resolve(
            &strings(&["armonly", "!any", "any", "not a dep"]),
            &repos,
            "x86_64",
        )
        .unwrap();
        assert_eq!(labels(&res), ["any-1-r0"]);
        assert_eq!(res.host, ["not a dep", "armonly"]);
    }

    #[test]
    fn two_versions_of_one_package_are_a_clear_error() {
        let repos = [repo(vec![
            entry("a", "1-r0", &["lib=1-r0"], &[]),
            entry("lib", "1-r0", &[], &[]),
            entry("lib", "2-r0", &[], &[]),
        ])];
        let err = resolve(&strings(&["lib", "a"]), &repos, "x86_64")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("lib=1-r0") && err.contains("lib-2-r0") && err.contains("a-1-r0"),
            "{err}"
        );
    }

    #[test]
    fn pc_files_point_into_the_sysroot() {
        let pc = "prefix=/usr\nexec_prefix=${prefix}\nlibdir=${exec_prefix}/lib\nincludedir=/usr/include\n\nName: twine\nDescription: a: b\nVersion: 1.0\nLibs: -L/opt/lib -ltwine\nCflags: -I${includedir} -I/usr/include/twine -isystem /usr/x\n";
        let out = rewrite_pc(pc, "/s");
        assert_eq!(
            out,
            "prefix=/s/usr\nexec_prefix=${prefix}\nlibdir=${exec_prefix}/lib\nincludedir=/s/usr/include\n\nName: twine\nDescription: a: b\nVersion: 1.0\nLibs: -L/s/opt/lib -ltwine\nCflags: -I${includedir} -I/s/usr/include/twine -isystem /s/usr/x\n"
        );
        assert_eq!(
            rewrite_pc(&out, "/s"),
            out,
            "rewriting twice changes nothing"
        );
    }

    #[test]
    fn absolute_links_become_relative() {
        assert_eq!(
            relative_target("/usr/lib/libx.so.1", 2).as_deref(),
            Some("../../usr/lib/libx.so.1")
        );
        assert_eq!(relative_target("/etc/x", 0).as_deref(), Some("./etc/x"));
        assert_eq!(relative_target("/", 1).as_deref(), Some(".."));
        assert_eq!(relative_target("libx.so.1", 2), None);
    }

    #[test]
    fn recipe_search_paths_come_first_and_keep_the_sysroot() {
        let mut env = BTreeMap::new();
        env.insert("CPATH".to_string(), "/opt/inc".to_string());
        env.insert("PATH".to_string(), "/opt/bin:/usr/bin".to_string());
        env.insert("PKG_CONFIG_PATH".to_string(), String::new());
        env.insert("PKGBUILD_SYSROOT".to_string(), "/mine".to_string());
        merge_step_env(&mut env, "/s");
        assert_eq!(env["CPATH"], "/opt/inc:/s/usr/include");
        assert_eq!(env["PATH"], "/opt/bin:/usr/bin:/s/usr/bin:/s/bin");
        assert_eq!(
            env["PKG_CONFIG_PATH"],
            "/s/usr/lib/pkgconfig:/s/usr/share/pkgconfig"
        );
        assert_eq!(env["PKGBUILD_SYSROOT"], "/mine");
        assert!(!env.contains_key("LIBRARY_PATH"), "only what the step set");
        let again = env.clone();
        merge_step_env(&mut env, "/s");
        assert_eq!(env, again);
        let base = env_vars("/s");
        assert!(base["PATH"].starts_with(sandbox::DEFAULT_PATH));
        assert!(base["PATH"].ends_with(":/s/usr/bin:/s/bin"));
        assert_eq!(base["LIBRARY_PATH"], "/s/usr/lib:/s/lib");
    }

    #[test]
    fn local_entries_are_paths_and_file_urls() {
        assert_eq!(local_path("/srv/repo"), Some(PathBuf::from("/srv/repo")));
        assert_eq!(local_path("file:///srv/r"), Some(PathBuf::from("/srv/r")));
        assert_eq!(local_path("@local /srv/r"), Some(PathBuf::from("/srv/r")));
        assert_eq!(local_path("./packages"), Some(PathBuf::from("./packages")));
        assert_eq!(local_path("https://packages.wolfi.dev/os"), None);
        assert_eq!(local_path(""), None);
    }
}
