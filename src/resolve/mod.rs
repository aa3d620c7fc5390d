//! Dependency resolution: a world (apk dependency strings) plus repository
//! indexes in, the packages to install (in install order) out.
//!
//! The answer must be the one apk-tools 3 gives, because the roots we build
//! are later maintained by apk itself: a different choice here would make
//! the first `apk upgrade` in the image change packages nobody asked to
//! change. apk's solver is greedy (it commits to one provider per name and
//! never backtracks), so "a valid solution" is not enough: `solver.rs`
//! follows apk's decision procedure step by step. This module only builds
//! the lookup tables it works on and owns the public API.
//!
//! Pure: no I/O. Tables are built per call, but only names and provides are
//! indexed up front; dependency lists are parsed for the packages the solver
//! actually reaches.

mod error;
mod solver;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::apk::dep::{Dep, Op};
use crate::apk::index::IndexEntry;

pub use error::{Candidate, ResolveError};

/// One repository's index, as configured in `/etc/apk/repositories`.
#[derive(Debug, Clone, Default)]
pub struct RepoIndex {
    /// `Some("edge")` for a repository written `@edge URL`: its packages are
    /// visible only to world entries carrying that tag (`name@edge`), and to
    /// the dependencies of packages chosen through such an entry, as apk does.
    pub tag: Option<String>,
    pub entries: Vec<IndexEntry>,
}

/// One chosen package: `repos[repo].entries[entry]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pick {
    pub repo: usize,
    pub entry: usize,
}

/// Resolve `world` (apk dependency strings, optionally `name@tag`) against
/// `repos` (earlier repository wins an exact tie, as in apk's repository
/// order) for `arch` (packages whose `A:` is neither `arch` nor `noarch` are
/// uninstallable, as in apk 3). Returns the chosen packages in an install
/// order where every package comes after what it depends on (apk's own
/// order: dependencies depth-first in the order each package lists them,
/// world entries sorted by name, install_if packages right after the last
/// package that triggers them).
pub fn resolve(
    repos: &[RepoIndex],
    world: &[String],
    arch: &str,
) -> Result<Vec<Pick>, ResolveError> {
    let world = parse_world(repos, world)?;
    let mut universe = Universe::new(repos, arch);
    solver::solve(&mut universe, &world)
}

/// A package name (real or virtual), by index into `Universe::names`.
type NameId = usize;
/// A package, by index into `Universe::pkgs`.
type PkgId = usize;

/// A dependency, `install_if` item or world entry with its name interned.
#[derive(Debug, Clone)]
struct Req {
    name: NameId,
    conflict: bool,
    constraint: Option<(Op, String)>,
    /// Index into the repository-tag table (0 = untagged); world only.
    tag: usize,
    /// As written, for messages.
    text: String,
}

/// `Req::name` is filled in by the solver; the world is parsed before the
/// universe exists, so it keeps the name text.
#[derive(Debug, Clone)]
struct WorldEntry {
    name: String,
    conflict: bool,
    constraint: Option<(Op, String)>,
    tag: usize,
    text: String,
}

/// One way of providing a name: the package under its own name
/// (`provide: None`, version = the package's), or its `provides[i]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prov {
    pkg: PkgId,
    provide: Option<u32>,
}

#[derive(Debug)]
struct Name {
    text: String,
    providers: Vec<Prov>,
    /// Names whose providers have an `install_if` item on this name.
    rinstall_if: Vec<NameId>,
}

#[derive(Debug)]
struct Pkg<'a> {
    entry: &'a IndexEntry,
    pick: Pick,
    name: NameId,
    /// `p:` items; `None` version = an unversioned (virtual) provide.
    provides: Vec<(NameId, Option<&'a str>)>,
    install_if: Vec<Req>,
    /// `D:` items, parsed when the solver first reaches the package.
    depends: Option<Vec<Req>>,
    /// Bit `i` set: the package is in `repos[i]` (identical packages in
    /// several repositories are one package, as in apk).
    repos: u64,
    /// Why apk could never install it (wrong arch, unreadable metadata).
    uninstallable: Option<String>,
}

/// Everything the solver looks up, indexed once per call.
struct Universe<'a> {
    names: Vec<Name>,
    name_ids: HashMap<String, NameId>,
    pkgs: Vec<Pkg<'a>>,
    /// Repository bits per tag index; tag 0 is the untagged repositories.
    tag_repos: Vec<u64>,
    arch: String,
}

impl<'a> Universe<'a> {
    fn new(repos: &'a [RepoIndex], arch: &str) -> Self {
        let mut u = Universe {
            names: Vec::new(),
            name_ids: HashMap::new(),
            pkgs: Vec::new(),
            tag_repos: tag_table(repos).1,
            arch: arch.to_string(),
        };
        let mut by_checksum: HashMap<[u8; 20], PkgId> = HashMap::new();
        for (ri, repo) in repos.iter().enumerate() {
            // apk keeps repository bits in a machine word; past 64 the
            // order between later repositories no longer matters to us.
            let bit = 1u64 << ri.min(63);
            for (ei, entry) in repo.entries.iter().enumerate() {
                if entry.control_sha1 != [0; 20] {
                    if let Some(&id) = by_checksum.get(&entry.control_sha1) {
                        u.pkgs[id].repos |= bit;
                        continue;
                    }
                }
                let id = u.add_pkg(
                    entry,
                    Pick {
                        repo: ri,
                        entry: ei,
                    },
                    bit,
                );
                if entry.control_sha1 != [0; 20] {
                    by_checksum.insert(entry.control_sha1, id);
                }
            }
        }
        u
    }

    fn intern(&mut self, name: &str) -> NameId {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.names.push(Name {
            text: name.to_string(),
            providers: Vec::new(),
            rinstall_if: Vec::new(),
        });
        self.name_ids.insert(name.to_string(), id);
        id
    }

    fn add_pkg(&mut self, entry: &'a IndexEntry, pick: Pick, bit: u64) -> PkgId {
        let info = &entry.info;
        let id = self.pkgs.len();
        let name = self.intern(&info.name);
        let mut uninstallable = None;
        if !info.arch.is_empty() && info.arch != "noarch" && info.arch != self.arch {
            uninstallable = Some(format!("built for {}, not {}", info.arch, self.arch));
        }
        let mut provides = Vec::new();
        for p in &info.provides {
            // A provide is `name` or `name=version`; apk ignores other forms.
            let (pname, pver) = match p.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (p.as_str(), None),
            };
            if pname.is_empty() {
                continue;
            }
            provides.push((self.intern(pname), pver));
        }
        let mut install_if = Vec::new();
        for text in &info.install_if {
            match self.parse_req(text) {
                Ok(r) => install_if.push(r),
                Err(reason) => {
                    uninstallable.get_or_insert(format!("bad install_if `{text}`: {reason}"));
                }
            }
        }
        self.names[name].providers.push(Prov {
            pkg: id,
            provide: None,
        });
        for (i, (pname, _)) in provides.iter().enumerate() {
            self.names[*pname].providers.push(Prov {
                pkg: id,
                provide: Some(i as u32),
            });
        }
        // Reverse install_if links, deduplicated, as apk builds them when
        // it opens its database: the solver discovers install_if packages
        // through them.
        for r in &install_if {
            for n in std::iter::once(name).chain(provides.iter().map(|p| p.0)) {
                let list = &mut self.names[r.name].rinstall_if;
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        self.pkgs.push(Pkg {
            entry,
            pick,
            name,
            provides,
            install_if,
            depends: None,
            repos: bit,
            uninstallable,
        });
        id
    }

    fn parse_req(&mut self, text: &str) -> Result<Req, String> {
        let dep: Dep = text
            .parse()
            .map_err(|e: crate::apk::dep::DepError| e.reason)?;
        let name = self.intern(&dep.name);
        Ok(Req {
            name,
            conflict: dep.conflict,
            constraint: dep.constraint,
            tag: 0,
            text: text.to_string(),
        })
    }

    /// Parse the package's `D:` items on first use.
    fn load_depends(&mut self, pkg: PkgId) {
        if self.pkgs[pkg].depends.is_some() {
            return;
        }
        let entry = self.pkgs[pkg].entry;
        let mut deps = Vec::with_capacity(entry.info.depends.len());
        for text in &entry.info.depends {
            match self.parse_req(text) {
                Ok(r) => deps.push(r),
                Err(reason) => {
                    self.pkgs[pkg]
                        .uninstallable
                        .get_or_insert(format!("bad dependency `{text}`: {reason}"));
                }
            }
        }
        self.pkgs[pkg].depends = Some(deps);
    }

    fn depends(&self, pkg: PkgId) -> &[Req] {
        self.pkgs[pkg].depends.as_deref().unwrap_or(&[])
    }

    fn version_of(&self, p: Prov) -> Option<&str> {
        let pkg = &self.pkgs[p.pkg];
        match p.provide {
            None => Some(&pkg.entry.info.version),
            Some(i) => pkg.provides[i as usize].1,
        }
    }

    /// `name-version-rN`, as apk names a package in messages.
    fn label(&self, pkg: PkgId) -> String {
        let info = &self.pkgs[pkg].entry.info;
        format!("{}-{}", info.name, info.version)
    }
}

/// Repository tags: the distinct `@tag`s in repository order (index 0 is
/// the untagged set) and, per tag, the repositories carrying it.
fn tag_table(repos: &[RepoIndex]) -> (Vec<Option<&str>>, Vec<u64>) {
    let mut tags: Vec<Option<&str>> = vec![None];
    let mut bits = vec![0u64];
    for (ri, repo) in repos.iter().enumerate() {
        let tag = repo.tag.as_deref().filter(|t| !t.is_empty());
        let i = match tags.iter().position(|t| *t == tag) {
            Some(i) => i,
            None => {
                tags.push(tag);
                bits.push(0);
                tags.len() - 1
            }
        };
        bits[i] |= 1u64 << ri.min(63);
    }
    (tags, bits)
}

/// Parse world entries; `apk add` replaces an earlier entry for the same
/// name with a later one, so `p6 p6~2.1` asks only for `p6~2.1`.
fn parse_world(repos: &[RepoIndex], world: &[String]) -> Result<Vec<WorldEntry>, ResolveError> {
    let (tags, _) = tag_table(repos);
    let mut out: Vec<WorldEntry> = Vec::new();
    for text in world {
        let invalid = |reason: String| ResolveError::invalid_world(text, reason);
        // `name@tag[op version]`: the tag sits between the name and the
        // operator, and `Dep` (package metadata syntax) has no tags.
        let (plain, tag) = match text.find('@') {
            Some(at) => {
                let rest = &text[at + 1..];
                let end = rest.find(['<', '>', '=', '~']).unwrap_or(rest.len());
                let tag = &rest[..end];
                if tag.is_empty() {
                    return Err(invalid("`@` must be followed by a repository tag".into()));
                }
                let Some(i) = tags.iter().position(|t| *t == Some(tag)) else {
                    return Err(invalid(format!(
                        "no repository is tagged @{tag} (tags: {})",
                        tag_list(&tags)
                    )));
                };
                (format!("{}{}", &text[..at], &rest[end..]), i)
            }
            None => (text.clone(), 0),
        };
        let dep: Dep = plain
            .parse()
            .map_err(|e: crate::apk::dep::DepError| invalid(e.reason))?;
        let entry = WorldEntry {
            name: dep.name,
            conflict: dep.conflict,
            constraint: dep.constraint,
            tag,
            text: text.clone(),
        };
        match out.iter_mut().find(|e| e.name == entry.name) {
            Some(old) => *old = entry,
            None => out.push(entry),
        }
    }
    Ok(out)
}

fn tag_list(tags: &[Option<&str>]) -> String {
    let named: Vec<String> = tags.iter().flatten().map(|t| format!("@{t}")).collect();
    if named.is_empty() {
        "none".into()
    } else {
        named.join(", ")
    }
}
