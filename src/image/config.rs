//! The image configuration file of `pkgbuild image`, in apko's schema.
//!
//! The file is read with the recipe module's position-keeping YAML tree,
//! and the keys a recipe's `environment:` shares with it (`contents`,
//! `accounts`, `environment`) are decoded by the same decoder, so both
//! give the same `file:line:column` errors with a did-you-mean. Everything
//! else an image needs (entrypoint, paths, archs, ...) is decoded here,
//! with every sub-key checked. apko keys that pkgbuild cannot honour yet
//! are refused by name rather than silently ignored.
//!
//! The result is validated: numbers are numbers, paths stay inside the
//! image root, an `include` stays inside the config's directory.

use std::path::{Component, Path, PathBuf};

use crate::arch::Arch;
use crate::recipe::model::{self, Dx, Fields, Text, ENVIRONMENT_KEYS};
use crate::recipe::yaml::{Node, Pos, Value};
use crate::recipe::{parse_yaml, read_bounded, RecipeError};

/// apko keys that are understood but not honoured yet, and why.
const NOT_YET: &[(&str, &str)] = &[
    (
        "layering",
        "pkgbuild writes one layer per architecture; layering strategies are not supported yet",
    ),
    (
        "certificates",
        "adding certificates to the image is not supported yet; install a package that ships them",
    ),
    (
        "options",
        "build options (`options:` and `--build-option`) are not supported for images yet",
    ),
    ("baseimage", "building on top of a base image is not supported yet"),
    (
        "runtime_keyring",
        "inline runtime keys are not supported yet; `keyring` keys are installed into /etc/apk/keys",
    ),
    (
        "type",
        "service-bundle entrypoints are not supported yet; use `command`",
    ),
    (
        "services",
        "service-bundle entrypoints are not supported yet; use `command`",
    ),
];

/// Root keys of apko's image schema that a recipe's `environment` does
/// not have.
const OWN_ROOT_KEYS: &[&str] = &["options", "format"];

const CONTENTS_KEYS: &[&str] = &[
    "repositories",
    "build_repositories",
    "runtime_repositories",
    "keyring",
    "packages",
    "baseimage",
    "runtime_keyring",
];
const ENTRYPOINT_KEYS: &[&str] = &["command", "shell-fragment", "type", "services"];
const PATH_KEYS: &[&str] = &[
    "path",
    "type",
    "uid",
    "gid",
    "permissions",
    "source",
    "recursive",
];
const OS_RELEASE_KEYS: &[&str] = &[
    "name",
    "id",
    "version-id",
    "pretty-name",
    "home-url",
    "bug-report-url",
];

/// Nested `include` files followed at most.
const MAX_INCLUDE_DEPTH: usize = 8;

/// The `PATH` apko gives an image whose `environment` sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A whole image configuration, `include`s merged.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// The file read (errors and lock files name it).
    pub file: PathBuf,
    /// Repositories the packages are fetched from: `build_repositories`
    /// then `repositories`.
    pub repositories: Vec<String>,
    /// Lines of the image's `/etc/apk/repositories`: `repositories` then
    /// `runtime_repositories`.
    pub runtime_repositories: Vec<String>,
    /// Keys that verify the indexes; also installed into `/etc/apk/keys`.
    pub keyring: Vec<String>,
    /// Packages to install (apk dependency strings).
    pub packages: Vec<String>,
    /// `Entrypoint` of the image config; empty when not set.
    pub entrypoint: Vec<String>,
    /// `Cmd` of the image config; empty when not set.
    pub cmd: Vec<String>,
    pub stop_signal: Option<String>,
    pub work_dir: Option<String>,
    /// `KEY=value` pairs in file order.
    pub environment: Vec<(String, String)>,
    pub accounts: Accounts,
    pub paths: Vec<PathMutation>,
    /// Architectures the config names (empty: the command line decides).
    pub archs: Vec<Arch>,
    pub annotations: Vec<(String, String)>,
    pub vcs_url: Option<String>,
    pub volumes: Vec<String>,
    /// `/etc/os-release` fields (`NAME`, `ID`, ...), used when no package
    /// ships the file.
    pub os_release: Vec<(String, String)>,
}

/// `accounts:` with numbers checked.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// User name or uid the image runs as; `None` means root.
    pub run_as: Option<Placed>,
    pub users: Vec<UserAccount>,
    pub groups: Vec<GroupAccount>,
}

/// A value with the `file:line:column` it was written at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    pub value: String,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccount {
    pub name: String,
    pub uid: u32,
    /// The primary group; apko's default is the uid.
    pub gid: u32,
    pub shell: String,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAccount {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// What a `paths:` entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    Directory,
    EmptyFile,
    Hardlink,
    Symlink,
    Permissions,
}

/// One `paths:` entry, its path relative to the image root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMutation {
    /// In-root path without a leading `/` (`var/lib/app`).
    pub path: String,
    pub kind: PathKind,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits; `None` keeps the kind's default (0755 directories,
    /// 0644 files) or, for `permissions`, is an error.
    pub mode: Option<u32>,
    /// Symlink target (as written) or hardlink source (in-root path).
    pub source: String,
    pub recursive: bool,
    /// `file:line:column` of the entry, for errors found when applying it.
    pub at: String,
}

/// Read, decode and validate an image configuration.
pub fn load(path: &Path) -> Result<ImageConfig, RecipeError> {
    load_depth(path, 0)
}

fn load_depth(path: &Path, depth: usize) -> Result<ImageConfig, RecipeError> {
    let name = path.display().to_string();
    let src = read_bounded(path)?;
    let tree = parse_yaml(&name, &src)?;
    let dx = Dx { file: &name };
    let mut cfg = decode(&dx, &tree)?;
    cfg.file = path.to_path_buf();
    if let Some(inc) = tree.get("include").filter(|n| !n.is_null()) {
        let t = dx.text(inc, "include")?;
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(dx.err(
                t.pos,
                format!("more than {MAX_INCLUDE_DEPTH} nested includes (a cycle?)"),
            ));
        }
        let dir = config_dir(path);
        // apko reads `include` relative to the working directory (its
        // examples say `include: examples/base.yaml`); the config's own
        // directory is tried first. Either way the file must be inside it.
        let rel = if dir.join(&t.value).exists() || !Path::new(&t.value).exists() {
            dir.join(&t.value)
        } else {
            PathBuf::from(&t.value)
        };
        let target = inside_dir(&dir, &rel).ok_or_else(|| {
            dx.err(
                t.pos,
                format!(
                    "`include` {} is outside the config's directory {}",
                    crate::term::quote(&t.value),
                    dir.display()
                ),
            )
        })?;
        // A file that cannot be read is the including line's fault; errors
        // inside a file that was read name that file.
        let base = load_depth(&target, depth + 1).map_err(|e| {
            if e.pos.line == 0 && e.file == target.display().to_string() {
                dx.err(
                    t.pos,
                    format!("`include` {}: {}", crate::term::quote(&t.value), e.message),
                )
            } else {
                e
            }
        })?;
        cfg = merge(base, cfg);
    }
    Ok(cfg)
}

fn config_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `candidate` when it names something inside `dir` (symlinks resolved;
/// a missing file judged by its lexical place), else `None`.
fn inside_dir(dir: &Path, candidate: &Path) -> Option<PathBuf> {
    let real_dir = dir.canonicalize().ok()?;
    let real = candidate.canonicalize().unwrap_or_else(|_| {
        let mut p = std::env::current_dir().unwrap_or_default();
        for c in candidate.components() {
            match c {
                Component::Normal(n) => p.push(n),
                Component::ParentDir => {
                    p.pop();
                }
                Component::RootDir => p = PathBuf::from("/"),
                _ => {}
            }
        }
        p
    });
    real.starts_with(&real_dir).then(|| candidate.to_path_buf())
}

/// apko's deep merge of an included file: the including file's scalars
/// win, lists are the included file's followed by its own, maps are merged
/// key by key.
fn merge(base: ImageConfig, top: ImageConfig) -> ImageConfig {
    fn cat<T: PartialEq>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
        for x in b {
            if !a.contains(&x) {
                a.push(x);
            }
        }
        a
    }
    fn map(mut a: Vec<(String, String)>, b: Vec<(String, String)>) -> Vec<(String, String)> {
        for (k, v) in b {
            match a.iter_mut().find(|(x, _)| *x == k) {
                Some(slot) => slot.1 = v,
                None => a.push((k, v)),
            }
        }
        a
    }
    let pick = |a: Vec<String>, b: Vec<String>| if b.is_empty() { a } else { b };
    ImageConfig {
        file: top.file,
        repositories: cat(base.repositories, top.repositories),
        runtime_repositories: cat(base.runtime_repositories, top.runtime_repositories),
        keyring: cat(base.keyring, top.keyring),
        packages: cat(base.packages, top.packages),
        entrypoint: pick(base.entrypoint, top.entrypoint),
        cmd: pick(base.cmd, top.cmd),
        stop_signal: top.stop_signal.or(base.stop_signal),
        work_dir: top.work_dir.or(base.work_dir),
        environment: map(base.environment, top.environment),
        accounts: Accounts {
            run_as: top.accounts.run_as.or(base.accounts.run_as),
            users: cat(base.accounts.users, top.accounts.users),
            groups: cat(base.accounts.groups, top.accounts.groups),
        },
        paths: cat(base.paths, top.paths),
        archs: if top.archs.is_empty() {
            base.archs
        } else {
            top.archs
        },
        annotations: map(base.annotations, top.annotations),
        vcs_url: top.vcs_url.or(base.vcs_url),
        volumes: cat(base.volumes, top.volumes),
        os_release: map(base.os_release, top.os_release),
    }
}

/// Whether a YAML file looks like an image configuration rather than a
/// recipe: a mapping with `contents` and no `package`.
pub fn is_image_config(path: &Path) -> bool {
    let Ok(src) = read_bounded(path) else {
        return false;
    };
    let Ok(tree) = parse_yaml(&path.display().to_string(), &src) else {
        return false;
    };
    tree.get("package").is_none() && tree.get("contents").is_some()
}

fn refuse_not_yet(dx: &Dx, node: &Node, scope: &str) -> Result<(), RecipeError> {
    let Some(entries) = node.as_map() else {
        return Ok(());
    };
    for e in entries {
        if let Some((_, why)) = NOT_YET.iter().find(|(k, _)| *k == e.key) {
            // An empty `type:` asks for nothing.
            if e.value.is_null() {
                continue;
            }
            return Err(dx.err(
                e.key_pos,
                format!("`{scope}{}` is not supported yet: {why}", e.key),
            ));
        }
    }
    Ok(())
}

fn decode(dx: &Dx, root: &Node) -> Result<ImageConfig, RecipeError> {
    let mut known: Vec<&str> = ENVIRONMENT_KEYS.to_vec();
    known.extend(OWN_ROOT_KEYS);
    let f = dx.fields(root, "image configuration", &known)?;
    refuse_not_yet(dx, root, "")?;
    if let Some(t) = opt_root_text(dx, &f, "format")? {
        if t.value != "tar" {
            return Err(dx.err(
                t.pos,
                format!(
                    "`format: {}` is not supported yet: pkgbuild writes gzipped tar layers (`format: tar`)",
                    t.value
                ),
            ));
        }
    }
    let mut runtime_extra = Vec::new();
    let mut plain_repos = Vec::new();
    if let Some(c) = f.get("contents") {
        let cf = dx.fields(c, "contents", CONTENTS_KEYS)?;
        refuse_not_yet(dx, c, "contents.")?;
        plain_repos = texts(dx.list(cf.get("repositories"), "repositories")?);
        runtime_extra = texts(dx.list(cf.get("runtime_repositories"), "runtime_repositories")?);
    }
    // The recipe decoder reads contents, accounts and environment; the
    // root's other keys are ours (it accepts them unchecked).
    let shared = Node {
        pos: root.pos,
        value: Value::Map(
            root.as_map()
                .unwrap_or_default()
                .iter()
                .filter(|e| !OWN_ROOT_KEYS.contains(&e.key.as_str()))
                .cloned()
                .collect(),
        ),
    };
    let env = model::decode_environment(dx, Some(&shared), "image configuration")?;
    let mut cfg = ImageConfig {
        repositories: texts(env.repositories),
        runtime_repositories: plain_repos,
        keyring: texts(env.keyring),
        packages: texts(env.packages),
        environment: pairs(env.environment),
        ..ImageConfig::default()
    };
    for r in runtime_extra {
        if !cfg.runtime_repositories.contains(&r) {
            cfg.runtime_repositories.push(r);
        }
    }
    cfg.accounts = accounts(dx, &env.accounts)?;
    if let Some(e) = f.get("entrypoint") {
        let ef = dx.fields(e, "entrypoint", ENTRYPOINT_KEYS)?;
        refuse_not_yet(dx, e, "entrypoint.")?;
        let command = dx.opt_text(&ef, "command")?;
        let fragment = dx.opt_text(&ef, "shell-fragment")?;
        cfg.entrypoint = match (command, fragment) {
            (Some(c), None) => words(dx, &c)?,
            (None, Some(s)) => vec!["/bin/sh".into(), "-c".into(), s.value],
            (Some(c), Some(_)) => {
                return Err(dx.err(
                    c.pos,
                    "`entrypoint` takes `command` or `shell-fragment`, not both",
                ))
            }
            (None, None) => Vec::new(),
        };
    }
    if let Some(t) = opt_root_text(dx, &f, "cmd")? {
        cfg.cmd = words(dx, &t)?;
    }
    cfg.stop_signal = opt_root_text(dx, &f, "stop-signal")?.map(|t| t.value);
    if let Some(t) = opt_root_text(dx, &f, "work-dir")? {
        if !t.value.starts_with('/') {
            return Err(dx.err(t.pos, "`work-dir` must be an absolute path"));
        }
        cfg.work_dir = Some(t.value);
    }
    cfg.vcs_url = opt_root_text(dx, &f, "vcs-url")?.map(|t| t.value);
    cfg.annotations = pairs(dx.text_map(f.get("annotations"), "annotations")?);
    cfg.volumes = texts(dx.list(f.get("volumes"), "volumes")?);
    for v in dx.list(f.get("volumes"), "volumes")? {
        if !v.value.starts_with('/') {
            return Err(dx.err(v.pos, "a volume must be an absolute path"));
        }
    }
    for a in dx.list(f.get("archs"), "archs")? {
        let arch = match a.value.as_str() {
            "host" => Arch::host(),
            other => Arch::parse(other),
        }
        .ok_or_else(|| dx.err(a.pos, format!("unknown architecture `{}`", a.value)))?;
        if !cfg.archs.contains(&arch) {
            cfg.archs.push(arch);
        }
    }
    if let Some(o) = f.get("os-release") {
        let of = dx.fields(o, "os-release", OS_RELEASE_KEYS)?;
        for key in OS_RELEASE_KEYS {
            if let Some(t) = dx.opt_text(&of, key)? {
                cfg.os_release
                    .push((key.to_ascii_uppercase().replace('-', "_"), t.value));
            }
        }
    }
    cfg.paths = dx.list_of(f.get("paths"), "paths", |n| path_mutation(dx, n))?;
    Ok(cfg)
}

fn opt_root_text(dx: &Dx, f: &Fields, key: &str) -> Result<Option<Text>, RecipeError> {
    Ok(dx.opt_text(f, key)?.filter(|t| !t.value.is_empty()))
}

fn texts(v: Vec<Text>) -> Vec<String> {
    v.into_iter().map(|t| t.value).collect()
}

fn pairs(v: model::TextMap) -> Vec<(String, String)> {
    v.into_iter().map(|(k, v)| (k.value, v.value)).collect()
}

fn place(dx: &Dx, pos: Pos) -> String {
    format!("{}:{}:{}", dx.file, pos.line, pos.col)
}

/// A decimal id (uid, gid) that fits 32 bits.
fn id(dx: &Dx, t: &Text, what: &str) -> Result<u32, RecipeError> {
    let v = t.value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(dx.err(
            t.pos,
            format!("`{what}` must be a number, found `{}`", t.value),
        ));
    }
    v.parse::<u32>()
        .map_err(|_| dx.err(t.pos, format!("`{what}` {v} does not fit in 32 bits")))
}

/// Permission bits as YAML writes numbers: `0o755`, `0755` (octal, as
/// yaml.v3 reads them), `0x1ed` or decimal `493`.
fn mode(dx: &Dx, t: &Text) -> Result<u32, RecipeError> {
    let v = t.value.trim();
    let parsed = if let Some(o) = v.strip_prefix("0o") {
        u32::from_str_radix(o, 8).ok()
    } else if let Some(x) = v.strip_prefix("0x") {
        u32::from_str_radix(x, 16).ok()
    } else if v.len() > 1 && v.starts_with('0') {
        u32::from_str_radix(&v[1..], 8).ok()
    } else {
        v.parse::<u32>().ok()
    };
    match parsed {
        Some(m) if m <= 0o7777 => Ok(m),
        Some(_) => Err(dx.err(t.pos, format!("`permissions` {v} has bits beyond 0o7777"))),
        None => Err(dx.err(
            t.pos,
            format!("`permissions` must be a number such as 0o755, found `{v}`"),
        )),
    }
}

fn accounts(dx: &Dx, a: &model::Accounts) -> Result<Accounts, RecipeError> {
    let mut out = Accounts::default();
    if !a.run_as.value.is_empty() {
        out.run_as = Some(Placed {
            value: a.run_as.value.clone(),
            at: place(dx, a.run_as.pos),
        });
    }
    for u in &a.users {
        if u.username.value.is_empty() || u.username.value.contains([':', '\n', '/']) {
            return Err(dx.err(
                u.username.pos,
                format!(
                    "`username` must be a non-empty name without `:` or `/`, found {:?}",
                    u.username.value
                ),
            ));
        }
        let uid = id(dx, &u.uid, "uid")?;
        let gid = if u.gid.value.is_empty() {
            uid
        } else {
            id(dx, &u.gid, "gid")?
        };
        let field = |t: &Text, default: String, what: &str| -> Result<String, RecipeError> {
            if t.value.contains([':', '\n']) {
                return Err(dx.err(t.pos, format!("`{what}` must not contain `:`")));
            }
            Ok(if t.value.is_empty() {
                default
            } else {
                t.value.clone()
            })
        };
        let home = field(&u.homedir, format!("/home/{}", u.username.value), "homedir")?;
        if !home.starts_with('/') || home.split('/').any(|c| c == "..") {
            return Err(dx.err(
                u.homedir.pos,
                format!("`homedir` {home:?} must be an absolute path inside the image"),
            ));
        }
        out.users.push(UserAccount {
            name: u.username.value.clone(),
            uid,
            gid,
            shell: field(&u.shell, "/bin/sh".into(), "shell")?,
            home,
        });
    }
    for g in &a.groups {
        if g.groupname.value.is_empty() || g.groupname.value.contains([':', '\n', ',']) {
            return Err(dx.err(
                g.groupname.pos,
                format!(
                    "`groupname` must be a non-empty name, found {:?}",
                    g.groupname.value
                ),
            ));
        }
        out.groups.push(GroupAccount {
            name: g.groupname.value.clone(),
            gid: id(dx, &g.gid, "gid")?,
            members: g.members.iter().map(|m| m.value.clone()).collect(),
        });
    }
    Ok(out)
}

/// An in-root path: components only, no `..`.
fn root_path(dx: &Dx, t: &Text, what: &str) -> Result<String, RecipeError> {
    let mut parts = Vec::new();
    for c in t.value.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(dx.err(
                    t.pos,
                    format!("`{what}` {:?} leaves the image root (`..`)", t.value),
                ))
            }
            c if c.contains('\0') => return Err(dx.err(t.pos, format!("`{what}` contains NUL"))),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(dx.err(t.pos, format!("`{what}` names the image root itself")));
    }
    Ok(parts.join("/"))
}

fn path_mutation(dx: &Dx, node: &Node) -> Result<PathMutation, RecipeError> {
    let f = dx.fields(node, "paths", PATH_KEYS)?;
    let p = dx.text_or_empty(&f, "path")?;
    let path = root_path(dx, &p, "path")?;
    let ty = dx.text_or_empty(&f, "type")?;
    let kind = match ty.value.as_str() {
        "directory" => PathKind::Directory,
        "empty-file" => PathKind::EmptyFile,
        "hardlink" => PathKind::Hardlink,
        "symlink" => PathKind::Symlink,
        "permissions" => PathKind::Permissions,
        other => {
            let known = [
                "directory",
                "empty-file",
                "hardlink",
                "symlink",
                "permissions",
            ];
            return Err(dx.err(
                ty.pos,
                format!(
                    "unknown path type `{other}`{}",
                    model::hint(other, &known, "")
                ),
            ));
        }
    };
    let num = |key: &str| -> Result<u32, RecipeError> {
        match dx.opt_text(&f, key)? {
            Some(t) => id(dx, &t, key),
            None => Ok(0),
        }
    };
    let uid = num("uid")?;
    let gid = num("gid")?;
    let mode = match dx.opt_text(&f, "permissions")? {
        Some(t) => Some(mode(dx, &t)?),
        None => None,
    };
    let src = dx.text_or_empty(&f, "source")?;
    let source = match kind {
        PathKind::Hardlink => root_path(dx, &src, "source")?,
        PathKind::Symlink => {
            if src.value.is_empty() || src.value.contains('\0') {
                return Err(dx.err(src.pos, "a symlink needs a `source` (its target)"));
            }
            src.value.clone()
        }
        _ if !src.value.is_empty() => {
            return Err(dx.err(
                src.pos,
                format!("`source` means nothing for type `{}`", ty.value),
            ))
        }
        _ => String::new(),
    };
    if kind == PathKind::Permissions && mode.is_none() {
        return Err(dx.err(f.pos, "a `permissions` entry needs `permissions`"));
    }
    Ok(PathMutation {
        path,
        kind,
        uid,
        gid,
        mode,
        source,
        recursive: dx.bool(f.get("recursive"), "recursive")?,
        at: place(dx, f.pos),
    })
}

/// Split a command line into words as a POSIX shell would without
/// expansions: blanks separate, quotes group, `\` escapes.
fn words(dx: &Dx, t: &Text) -> Result<Vec<String>, RecipeError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = t.value.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(dx.err(t.pos, "unterminated `'` quote")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err(dx.err(t.pos, "unterminated `\"` quote")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(dx.err(t.pos, "unterminated `\"` quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<ImageConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.yaml");
        std::fs::write(&p, src).unwrap();
        load(&p).map_err(|e| {
            e.to_string()
                .replace(&dir.path().display().to_string(), "DIR")
        })
    }

    #[test]
    fn decodes_every_honoured_key() {
        let c = parse(
            "contents:\n  build_repositories: [https://b.example.org]\n  repositories: [https://r.example.org]\n  runtime_repositories: [https://rt.example.org]\n  keyring: [k.rsa.pub]\n  packages: [hello, glibc]\nentrypoint:\n  command: /usr/bin/hello \"a b\" c\ncmd: --name 'x y'\nstop-signal: SIGTERM\nwork-dir: /srv\nenvironment:\n  FOO: bar\naccounts:\n  groups:\n    - groupname: app\n      gid: 65532\n  users:\n    - username: app\n      uid: 65532\n  run-as: app\npaths:\n  - path: /srv/data\n    type: directory\n    uid: 65532\n    gid: 65532\n    permissions: 0o750\n  - path: /srv/link\n    type: symlink\n    source: /srv/data\narchs: [x86_64, arm64]\nannotations:\n  org.opencontainers.image.title: hello\nvcs-url: https://github.com/x/y@abc\nvolumes: [/srv/data]\nos-release:\n  id: hello\n  pretty-name: Hello\n",
        )
        .unwrap();
        assert_eq!(
            c.repositories,
            ["https://b.example.org", "https://r.example.org"]
        );
        assert_eq!(
            c.runtime_repositories,
            ["https://r.example.org", "https://rt.example.org"]
        );
        assert_eq!(c.packages, ["hello", "glibc"]);
        assert_eq!(c.entrypoint, ["/usr/bin/hello", "a b", "c"]);
        assert_eq!(c.cmd, ["--name", "x y"]);
        assert_eq!(c.work_dir.as_deref(), Some("/srv"));
        assert_eq!(c.accounts.users[0].gid, 65532);
        assert_eq!(c.accounts.users[0].home, "/home/app");
        assert_eq!(c.accounts.run_as.as_ref().unwrap().value, "app");
        assert_eq!(c.paths[0].path, "srv/data");
        assert_eq!(c.paths[0].mode, Some(0o750));
        assert_eq!(c.paths[1].kind, PathKind::Symlink);
        assert_eq!(c.archs, [Arch::X86_64, Arch::Aarch64]);
        assert_eq!(c.os_release[1], ("PRETTY_NAME".into(), "Hello".into()));
    }

    #[test]
    fn apko_shaped_examples_parse() {
        // The shapes of apko's examples: service-free configs with
        // keyrings, rootless accounts, shell-fragment entrypoints.
        parse("contents:\n  keyring:\n    - https://packages.wolfi.dev/os/wolfi-signing.rsa.pub\n  repositories:\n    - https://packages.wolfi.dev/os\n  packages:\n    - wolfi-base\n\nentrypoint:\n  command: /bin/sh -l\n\narchs:\n- x86_64\n- aarch64\n").unwrap();
        let c = parse("contents:\n  repositories:\n    - https://dl-cdn.alpinelinux.org/alpine/edge/main\n  packages:\n    - alpine-baselayout\n    - nginx\nentrypoint:\n  shell-fragment: nginx -g 'daemon off;'\naccounts:\n  groups:\n    - groupname: nginx\n      gid: 10000\n  users:\n    - username: nginx\n      uid: 10000\n  run-as: nginx\nenvironment:\n  PATH: /usr/sbin:/sbin:/usr/bin:/bin\n").unwrap();
        assert_eq!(c.entrypoint[..2], ["/bin/sh", "-c"]);
        parse("format: tar\ncontents:\n  packages: [a]\n").unwrap();
    }

    #[test]
    fn unknown_keys_name_the_place_and_the_nearest_key() {
        let e = parse("contents:\n  packages: [a]\nentrypiont:\n  command: x\n").unwrap_err();
        assert!(
            e.starts_with("DIR/img.yaml:3:1: unknown key `entrypiont`")
                && e.contains("did you mean `entrypoint`"),
            "{e}"
        );
        let e = parse("contents:\n  pakages: [a]\n").unwrap_err();
        assert!(e.contains(":2:3:") && e.contains("`packages`"), "{e}");
        let e = parse("paths:\n  - path: /x\n    type: directory\n    premissions: 0o755\n")
            .unwrap_err();
        assert!(e.contains(":4:5:") && e.contains("`permissions`"), "{e}");
    }

    #[test]
    fn apko_keys_not_honoured_yet_are_refused_by_name() {
        for (src, key) in [
            ("layering:\n  strategy: origin\n", "`layering`"),
            ("certificates:\n  additional: []\n", "`certificates`"),
            (
                "contents:\n  baseimage:\n    image: x\n",
                "`contents.baseimage`",
            ),
            ("entrypoint:\n  type: service-bundle\n", "`entrypoint.type`"),
            ("options:\n  debug: {}\n", "`options`"),
            ("format: erofs\n", "`format: erofs`"),
        ] {
            let e = parse(src).unwrap_err();
            assert!(e.contains(key) && e.contains("not supported yet"), "{e}");
        }
    }

    #[test]
    fn bad_values_are_placed() {
        let e = parse("accounts:\n  users:\n    - username: app\n      uid: abc\n").unwrap_err();
        assert!(
            e.contains(":4:12:") && e.contains("`uid` must be a number"),
            "{e}"
        );
        let e = parse("paths:\n  - path: ../../etc/shadow\n    type: empty-file\n").unwrap_err();
        assert!(
            e.contains(":2:11:") && e.contains("leaves the image root"),
            "{e}"
        );
        let e = parse("paths:\n  - path: /a\n    type: hardlink\n    source: /x/../../b\n")
            .unwrap_err();
        assert!(e.contains(":4:13:") && e.contains("`source`"), "{e}");
        let e = parse("paths:\n  - path: /a\n    type: fifo\n").unwrap_err();
        assert!(
            e.contains(":3:11:") && e.contains("unknown path type"),
            "{e}"
        );
        let e = parse("paths:\n  - path: /a\n    type: permissions\n    permissions: 0o99\n")
            .unwrap_err();
        assert!(e.contains(":4:18:"), "{e}");
        let e = parse("entrypoint:\n  command: \"/bin/x 'unterminated\"\n").unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
    }

    #[test]
    fn includes_merge_and_must_stay_in_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("cfg");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(
            sub.join("base.yaml"),
            "contents:\n  packages: [glibc]\nenvironment:\n  A: base\n  B: base\ncmd: base\n",
        )
        .unwrap();
        let top = sub.join("top.yaml");
        std::fs::write(
            &top,
            "include: base.yaml\ncontents:\n  packages: [hello]\nenvironment:\n  B: top\n",
        )
        .unwrap();
        let c = load(&top).unwrap();
        assert_eq!(c.packages, ["glibc", "hello"]);
        assert_eq!(
            c.environment,
            [("A".into(), "base".into()), ("B".into(), "top".into())]
        );
        assert_eq!(c.cmd, ["base"]);
        std::fs::write(dir.path().join("outside.yaml"), "cmd: x\n").unwrap();
        std::fs::write(&top, "include: ../outside.yaml\n").unwrap();
        let e = load(&top).unwrap_err().to_string();
        assert!(
            e.contains("top.yaml:1:10:") && e.contains("outside the config's directory"),
            "{e}"
        );
        std::fs::write(&top, "include: top.yaml\n").unwrap();
        let e = load(&top).unwrap_err().to_string();
        assert!(e.contains("nested includes"), "{e}");
        // An include that cannot be read is reported at the including line.
        std::fs::write(&top, "include: missing.yaml\n").unwrap();
        let e = load(&top).unwrap_err().to_string();
        assert!(
            e.contains("top.yaml:1:10:") && e.contains("missing.yaml") && e.contains("cannot open"),
            "{e}"
        );
    }
}
