//! The one error a refused resolution gives: which requirement could not be
//! met, the chain of packages that asked for it, and why each candidate
//! was ruled out. apk lists every broken package it touched; a user needs
//! the first cause, so we pick the deepest unmet requirement.

use std::fmt;

use super::solver::{RuledOut, Solver};
use super::{NameId, PkgId, Req};

/// A resolution apk would refuse, or a world entry it cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError {
    /// The requirement that could not be met (`libgreet=1.3`), or the
    /// world entry that could not be read.
    pub requirement: String,
    /// Who asked for it, nearest first; the last item names the world
    /// entry (`world: hello-dev`). Empty for an unreadable world entry.
    pub required_by: Vec<String>,
    /// Every package that could have met it, and why it did not.
    pub candidates: Vec<Candidate>,
    /// A hint on what to do, or what else went wrong.
    pub note: Option<String>,
}

/// One package considered for a requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// `name-version` as apk prints it.
    pub package: String,
    /// Why it was ruled out.
    pub reason: String,
}

impl std::error::Error for ResolveError {}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot satisfy {}", self.requirement)?;
        if let Some((first, rest)) = self.required_by.split_first() {
            write!(f, "\n  required by: {first}")?;
            if !rest.is_empty() {
                write!(f, " (required by {})", rest.join(", required by "))?;
            }
        }
        match self.candidates.as_slice() {
            [] => {
                if self.required_by.iter().any(|r| r.starts_with("world")) {
                    write!(
                        f,
                        "\n  candidates: none (no package has or provides this name)"
                    )?;
                }
            }
            [one] => write!(f, "\n  candidates: {} ({})", one.package, one.reason)?,
            many => {
                write!(f, "\n  candidates:")?;
                for c in many {
                    write!(f, "\n    {} ({})", c.package, c.reason)?;
                }
            }
        }
        if let Some(note) = &self.note {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}

impl ResolveError {
    pub(super) fn invalid_world(entry: &str, reason: String) -> Self {
        ResolveError {
            requirement: entry.to_string(),
            required_by: Vec::new(),
            candidates: Vec::new(),
            note: Some(format!("`{entry}` is not a valid world entry: {reason}")),
        }
    }
}

/// A step in the chain that pulled a package in.
#[derive(Debug, Clone)]
pub(super) enum Link {
    World(String),
    Pkg(PkgId),
    /// Installed because this package triggered its `install_if`.
    InstallIf(PkgId),
}

/// Something the solver found wrong, in the order it found it.
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// `req` (from package `by`, or the world) is not met by the package
    /// chosen for its name; `chain` leads from `by` back to the world.
    Unmet {
        by: Option<PkgId>,
        req: Req,
        chain: Vec<Link>,
    },
    /// A required name that nothing could be chosen for.
    NoProvider { name: NameId },
    /// Two chosen packages both provide `name` with a version.
    SameName {
        name: NameId,
        a: Option<PkgId>,
        b: Option<PkgId>,
    },
}

pub(super) fn explain(s: &Solver, world: &[Req]) -> ResolveError {
    // Deepest unmet requirement first: the install-order walk reports a
    // package's dependencies before the package itself.
    let unmet = s.failures.iter().find_map(|f| match f {
        Failure::Unmet { by, req, chain } => Some((*by, req, chain)),
        _ => None,
    });
    if let Some((by, req, chain)) = unmet {
        return unmet_error(s, by, req, chain, world);
    }
    for f in &s.failures {
        match f {
            Failure::SameName { name, a, b } => {
                let label = |p: &Option<PkgId>| p.map_or("nothing".into(), |p| s.u.label(p));
                return ResolveError {
                    requirement: format!("{} and {} together", label(a), label(b)),
                    required_by: Vec::new(),
                    candidates: Vec::new(),
                    note: Some(format!(
                        "both provide `{}` with a version, and only one package may",
                        s.u.names[*name].text
                    )),
                };
            }
            Failure::NoProvider { name } => {
                let req = world.iter().find(|w| w.name == *name);
                return ResolveError {
                    requirement: req.map_or(s.u.names[*name].text.clone(), |r| r.text.clone()),
                    required_by: Vec::new(),
                    candidates: candidates(s, None, *name, req),
                    note: None,
                };
            }
            Failure::Unmet { .. } => {}
        }
    }
    // An error with no recorded cause: a chosen package that was already
    // ruled out. Name the first one.
    let broken = (0..s.ps.len()).find(|&p| s.ps[p].error);
    ResolveError {
        requirement: broken.map_or("the world".into(), |p| s.u.label(p)),
        required_by: Vec::new(),
        candidates: Vec::new(),
        note: broken.and_then(|p| s.ps[p].ruled_out.as_ref().map(|r| ruled_out_text(s, r))),
    }
}

/// Who asked for `pkg` (nearest first): a world entry naming it, else a
/// package that depends on it, else the walk that reached it.
fn who_wants(s: &Solver, pkg: PkgId, world: &[Req]) -> Vec<String> {
    let chosen_is = |name: NameId| s.ns[name].chosen.is_some_and(|c| c.pkg == pkg);
    if let Some(w) = world.iter().find(|w| !w.conflict && chosen_is(w.name)) {
        return vec![format!("world: {}", w.text)];
    }
    for (q, chain) in s.pulled_in_by.iter().enumerate() {
        let Some(chain) = chain else { continue };
        if q != pkg
            && s.u
                .depends(q)
                .iter()
                .any(|d| !d.conflict && chosen_is(d.name))
        {
            let mut out = vec![s.u.label(q)];
            out.extend(chain_text(s, chain));
            return out;
        }
    }
    s.pulled_in_by
        .get(pkg)
        .and_then(|c| c.as_deref())
        .map(|c| chain_text(s, c))
        .unwrap_or_default()
}

/// A chain (as walked, world first) as `required_by` items, nearest first.
fn chain_text(s: &Solver, chain: &[Link]) -> Vec<String> {
    let mut merged: Vec<String> = Vec::new();
    for link in chain.iter().rev() {
        match link {
            Link::World(text) => merged.push(format!("world: {text}")),
            Link::Pkg(p) => merged.push(s.u.label(*p)),
            // Explains the package before it in this list.
            Link::InstallIf(p) => {
                let why = format!("pulled in by the install_if of {}", s.u.label(*p));
                match merged.last_mut() {
                    Some(last) => *last = format!("{last}, {why}"),
                    None => merged.push(why),
                }
            }
        }
    }
    merged
}

fn unmet_error(
    s: &Solver,
    by: Option<PkgId>,
    req: &Req,
    chain: &[Link],
    world: &[Req],
) -> ResolveError {
    let merged = chain_text(s, chain);
    if req.conflict {
        // The candidates of `!foo` are beside the point: say which foo
        // was installed anyway, and who wanted it.
        let chosen = s.ns[req.name].chosen;
        let candidates = chosen
            .map(|c| {
                let who = who_wants(s, c.pkg, world);
                Candidate {
                    package: s.u.label(c.pkg),
                    reason: if who.is_empty() {
                        "installed anyway".into()
                    } else {
                        format!(
                            "installed anyway: required by {}",
                            who.join(", required by ")
                        )
                    },
                }
            })
            .into_iter()
            .collect();
        return ResolveError {
            requirement: req.text.clone(),
            required_by: merged,
            candidates,
            note: None,
        };
    }
    let cands = candidates(s, by, req.name, Some(req));
    let name = req.name;
    let providers = &s.u.names[name].providers;
    let virtual_only = !providers.is_empty()
        && providers.iter().all(|p| {
            s.u.version_of(*p).is_none()
                && s.u.pkgs[p.pkg].entry.info.provider_priority.unwrap_or(0) == 0
        });
    let note = virtual_only.then(|| {
        format!(
            "`{}` is a virtual name and none of its providers has a provider_priority; \
             ask for one of them explicitly",
            s.u.names[name].text
        )
    });
    ResolveError {
        requirement: req.text.clone(),
        required_by: merged,
        candidates: cands,
        note,
    }
}

fn candidates(s: &Solver, by: Option<PkgId>, name: NameId, req: Option<&Req>) -> Vec<Candidate> {
    s.u.names[name]
        .providers
        .iter()
        .map(|&p| Candidate {
            package: s.u.label(p.pkg),
            reason: why_not(s, by, name, req, p),
        })
        .collect()
}

fn why_not(
    s: &Solver,
    by: Option<PkgId>,
    name: NameId,
    req: Option<&Req>,
    p: super::Prov,
) -> String {
    let pkg = &s.u.pkgs[p.pkg];
    if let Some(why) = &pkg.uninstallable {
        return why.clone();
    }
    if let Some(req) = req {
        if !s.provided(by, req, Some(p)) {
            if req.conflict {
                return format!("excluded by !{}", s.u.names[name].text);
            }
            let (op, want) = req
                .constraint
                .as_ref()
                .map_or(("", ""), |(o, v)| (o.as_str(), v));
            return match p.provide {
                None => format!("version does not match {op}{want}"),
                Some(_) => format!(
                    "provides {}={}, which does not match {op}{want}",
                    s.u.names[name].text,
                    s.u.version_of(p).unwrap_or("")
                ),
            };
        }
    }
    let st = &s.ps[p.pkg];
    if !st.tag_ok {
        return "its repository is tagged, and this request does not carry that tag".into();
    }
    if let Some(r) = &st.ruled_out {
        return ruled_out_text(s, r);
    }
    if s.ns.get(name).and_then(|n| n.chosen) == Some(p) {
        return "chosen, but one of its own requirements failed".into();
    }
    if s.u.version_of(p).is_none() && pkg.entry.info.provider_priority.unwrap_or(0) == 0 {
        return format!(
            "provides `{}` without a version and has no provider_priority",
            s.u.names[name].text
        );
    }
    match s.ns.get(name).and_then(|n| n.chosen) {
        Some(c) => format!("{} was chosen instead", s.u.label(c.pkg)),
        None => "not chosen".into(),
    }
}

fn ruled_out_text(s: &Solver, r: &RuledOut) -> String {
    match r {
        RuledOut::Constraint { by: None, req } => format!("conflicts with world: {req}"),
        RuledOut::Constraint { by: Some(p), req } => {
            format!("conflicts with {} (which needs {req})", s.u.label(*p))
        }
        RuledOut::NameTaken { name, by: Some(p) } => format!(
            "`{}` is already provided by {}",
            s.u.names[*name].text,
            s.u.label(*p)
        ),
        RuledOut::NameTaken { name, by: None } => {
            format!("`{}` was resolved to nothing", s.u.names[*name].text)
        }
        RuledOut::Dependency { req } => format!("its dependency {req} cannot be met"),
        RuledOut::NotProviding { needed } => format!(
            "every other candidate provides `{}` and this one does not",
            s.u.names[*needed].text
        ),
    }
}
