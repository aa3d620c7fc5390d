//! apk-tools 3's decision procedure, re-expressed.
//!
//! apk does not search for *a* solution: it propagates constraints per
//! name, then repeatedly commits one name to its best provider and
//! propagates again, never undoing a choice. Two resolvers that both find
//! valid answers can still disagree with apk (a different provider, or a
//! refusal where apk refuses), so this follows apk's steps and its
//! tie-breaking order exactly, as observed against apk-tools 3.0.6 on the
//! shared oracle cases:
//!
//! 1. *discover* every name reachable from the world (through
//!    dependencies, provides and reverse `install_if` links), numbering
//!    them; world names and names some real package carries sort apart;
//! 2. *apply* each world entry: count a requirer, and mark every provider
//!    that does not fit as conflicting (it can no longer be chosen);
//! 3. loop: *reconsider* each name whose inputs changed (a dependency may
//!    have become unsatisfiable; `install_if` may have fired; a dependency
//!    every remaining candidate shares becomes required right away), then
//!    *select* the next queued name: its best provider is locked in (for
//!    all the names it provides) and its dependencies are applied;
//! 4. walk from the world, dependencies first, to get the install order;
//!    a dependency the locked-in choice does not meet is an error.
//!
//! Any error refuses the whole request, as `apk add` does.

use std::collections::VecDeque;

use super::error::{self, Failure, Link};
use super::{NameId, Pick, PkgId, Prov, Req, ResolveError, Universe, WorldEntry};

#[derive(Debug, Default, Clone)]
pub(super) struct NameState {
    pub(super) seen: bool,
    pub(super) locked: bool,
    /// The provider locked in; `None` while locked = nothing provides it.
    pub(super) chosen: Option<Prov>,
    pub(super) requirers: u32,
    reevaluate_deps: bool,
    reevaluate_iif: bool,
    no_iif: bool,
    has_iif: bool,
    iif_needed: bool,
    has_options: bool,
    has_auto_selectable: bool,
    reverse_deps_done: bool,
    resolvenow: bool,
    has_virtual_provides: bool,
    merge_depends: u32,
    merge_provides: u32,
    order_id: i32,
    queued: Option<Queue>,
    dirty: bool,
    /// Named in the world (apk marks these when `add` parses them).
    in_world: bool,
    processed: bool,
    /// Names whose providers depend on this one (only discovered ones).
    rdepends: Vec<NameId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    ResolveNow,
    Selectable,
    Unresolved,
}

/// Why a package stopped being a candidate (the first reason only).
#[derive(Debug, Clone)]
pub(super) enum RuledOut {
    /// A requirement it does not meet (`by` = who asked, `None` = world).
    Constraint { by: Option<PkgId>, req: String },
    /// Another package was chosen for a name it provides.
    NameTaken { name: NameId, by: Option<PkgId> },
    /// One of its own dependencies can no longer be met.
    Dependency { req: String },
    /// Every remaining candidate for `needed` provides it, this one not.
    NotProviding { needed: NameId },
}

#[derive(Debug, Default, Clone)]
pub(super) struct PkgState {
    seen: bool,
    pinning_allowed: u64,
    pinning_preferred: u64,
    pub(super) selectable: bool,
    iif_failed: bool,
    iif_triggered: bool,
    tag_preferred: bool,
    pub(super) tag_ok: bool,
    conflicts: u32,
    dependencies_merged: bool,
    dependencies_used: bool,
    pub(super) error: bool,
    in_changeset: bool,
    pub(super) ruled_out: Option<RuledOut>,
}

pub(super) struct Solver<'u, 'a> {
    pub(super) u: &'u mut Universe<'a>,
    pub(super) ns: Vec<NameState>,
    pub(super) ps: Vec<PkgState>,
    dirty: VecDeque<NameId>,
    resolvenow: VecDeque<NameId>,
    /// Kept sorted by descending `order_id`; the front is taken first.
    selectable: Vec<NameId>,
    unresolved: Vec<NameId>,
    next_order: u32,
    /// Pinning mask handed to packages constrained with no parent
    /// package: the world entry's tag while the world is applied, none
    /// afterwards.
    pinning_inherit: u64,
    default_repos: u64,
    errors: usize,
    pub(super) failures: Vec<Failure>,
    order: Vec<PkgId>,
    /// For each package in the install order: the chain that pulled it in.
    pub(super) pulled_in_by: Vec<Option<Vec<Link>>>,
}

pub(super) fn solve(u: &mut Universe, world: &[WorldEntry]) -> Result<Vec<Pick>, ResolveError> {
    let mut world: Vec<Req> = world
        .iter()
        .map(|w| Req {
            name: u.intern(&w.name),
            conflict: w.conflict,
            constraint: w.constraint.clone(),
            tag: w.tag,
            text: w.text.clone(),
        })
        .collect();
    // apk sorts the world by name (case-insensitively first).
    world.sort_by(|a, b| {
        let (x, y) = (&u.names[a.name].text, &u.names[b.name].text);
        x.to_lowercase()
            .cmp(&y.to_lowercase())
            .then_with(|| x.cmp(y))
    });
    let mut s = Solver {
        ns: vec![NameState::default(); u.names.len()],
        ps: vec![PkgState::default(); u.pkgs.len()],
        default_repos: u.tag_repos[0],
        u,
        dirty: VecDeque::new(),
        resolvenow: VecDeque::new(),
        selectable: Vec::new(),
        unresolved: Vec::new(),
        next_order: 0,
        pinning_inherit: 0,
        errors: 0,
        failures: Vec::new(),
        order: Vec::new(),
        pulled_in_by: Vec::new(),
    };
    for w in &world {
        s.ns[w.name].in_world = true;
    }
    for w in &world {
        s.discover(w.name);
    }
    for w in &world {
        s.pinning_inherit = 1 << w.tag.min(63);
        s.apply_constraint(None, w);
    }
    s.pinning_inherit = 0;
    loop {
        while let Some(name) = s.dirty.pop_front() {
            s.ns[name].dirty = false;
            s.reconsider(name);
        }
        let next = s
            .resolvenow
            .pop_front()
            .or_else(|| pop_front(&mut s.selectable))
            .or_else(|| pop_front(&mut s.unresolved));
        let Some(name) = next else { break };
        s.ns[name].queued = None;
        s.select(name);
    }
    let mut path = Vec::new();
    for w in &world {
        path.push(Link::World(w.text.clone()));
        s.cset_dep(None, w, &mut path);
        path.pop();
    }
    if s.errors > 0 || !s.failures.is_empty() {
        return Err(error::explain(&s, &world));
    }
    let order = s.dependencies_first();
    Ok(order.iter().map(|&p| s.u.pkgs[p].pick).collect())
}

/// Tarjan's algorithm: the strongly connected component of each node of
/// the graph `edges` (adjacency lists), as a component number.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<usize> {
    struct Walk<'e> {
        edges: &'e [Vec<usize>],
        index: Vec<usize>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        component: Vec<usize>,
        next_index: usize,
        next_component: usize,
    }
    impl Walk<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = self.next_index;
            self.low[v] = self.next_index;
            self.next_index += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            for k in 0..self.edges[v].len() {
                let w = self.edges[v][k];
                if self.index[w] == usize::MAX {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                } else if self.on_stack[w] {
                    self.low[v] = self.low[v].min(self.index[w]);
                }
            }
            if self.low[v] == self.index[v] {
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    self.component[w] = self.next_component;
                    if w == v {
                        break;
                    }
                }
                self.next_component += 1;
            }
        }
    }
    let n = edges.len();
    let mut walk = Walk {
        edges,
        index: vec![usize::MAX; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        component: vec![0; n],
        next_index: 0,
        next_component: 0,
    };
    for v in 0..n {
        if walk.index[v] == usize::MAX {
            walk.visit(v);
        }
    }
    walk.component
}

fn pop_front(list: &mut Vec<NameId>) -> Option<NameId> {
    if list.is_empty() {
        None
    } else {
        Some(list.remove(0))
    }
}

impl Solver<'_, '_> {
    /// Does provider `p` (or nothing, `None`) meet `req`, asked by `by`?
    pub(super) fn provided(&self, by: Option<PkgId>, req: &Req, p: Option<Prov>) -> bool {
        let Some(p) = p else { return req.conflict };
        if req.conflict && by == Some(p.pkg) {
            return true;
        }
        // An unversioned provide has the empty version, which apk orders
        // below every real one: it meets `<1.0` but not `>=1.0` or `=1.0`.
        let fits = match &req.constraint {
            None => true,
            Some((op, want)) => op.matches(self.u.version_of(p).unwrap_or(""), want),
        };
        fits != req.conflict
    }

    fn chosen(&self, name: NameId) -> Option<Prov> {
        self.ns[name].chosen
    }

    fn providers(&self, name: NameId) -> Vec<Prov> {
        self.u.names[name].providers.clone()
    }

    fn provide_names(&self, pkg: PkgId) -> Vec<NameId> {
        self.u.pkgs[pkg].provides.iter().map(|p| p.0).collect()
    }

    /// Parsing dependency lists interns new names; give them state.
    fn grow_names(&mut self) {
        if self.ns.len() < self.u.names.len() {
            self.ns.resize(self.u.names.len(), NameState::default());
        }
    }

    fn mark_error(&mut self, pkg: Option<PkgId>) {
        if let Some(p) = pkg {
            if !self.ps[p].error {
                self.ps[p].error = true;
                self.errors += 1;
            }
        }
    }

    fn queue_dirty(&mut self, name: NameId) {
        let n = &self.ns[name];
        if n.dirty || n.locked || (n.requirers == 0 && !n.reevaluate_iif) {
            return;
        }
        self.ns[name].dirty = true;
        self.dirty.push_back(name);
    }

    fn resolve_now(&self, name: NameId) -> bool {
        let n = &self.ns[name];
        n.reverse_deps_done && n.requirers > 0 && n.has_auto_selectable && !n.has_options
    }

    fn unqueue(&mut self, name: NameId) {
        let list = match self.ns[name].queued.take() {
            None => return,
            Some(Queue::ResolveNow) => {
                self.resolvenow.retain(|&n| n != name);
                return;
            }
            Some(Queue::Selectable) => &mut self.selectable,
            Some(Queue::Unresolved) => &mut self.unresolved,
        };
        list.retain(|&n| n != name);
    }

    fn queue_unresolved(&mut self, name: NameId, reevaluate: bool) {
        if self.ns[name].locked {
            return;
        }
        if self.ns[name].queued.is_some() {
            if self.ns[name].resolvenow {
                return;
            }
            if self.resolve_now(name) {
                self.ns[name].resolvenow = true;
            } else if !reevaluate {
                return;
            }
            self.unqueue(name);
        } else {
            let n = &self.ns[name];
            if n.requirers == 0 && !n.has_iif && !n.iif_needed {
                return;
            }
            self.ns[name].resolvenow = self.resolve_now(name);
        }
        if self.ns[name].resolvenow {
            self.ns[name].queued = Some(Queue::ResolveNow);
            self.resolvenow.push_back(name);
            return;
        }
        let (queue, list) = if self.ns[name].has_auto_selectable {
            (Queue::Selectable, &mut self.selectable)
        } else {
            (Queue::Unresolved, &mut self.unresolved)
        };
        // Highest order first; a newcomer goes before equal ones.
        let id = self.ns[name].order_id;
        let at = list
            .iter()
            .position(|&n| id >= self.ns[n].order_id)
            .unwrap_or(list.len());
        list.insert(at, name);
        self.ns[name].queued = Some(queue);
    }

    fn reevaluate_reverse_deps(&mut self, name: NameId) {
        for n0 in self.ns[name].rdepends.clone() {
            if !self.ns[n0].seen {
                continue;
            }
            self.ns[n0].reevaluate_deps = true;
            self.queue_dirty(n0);
        }
    }

    fn reevaluate_reverse_installif(&mut self, name: NameId) {
        for n0 in self.u.names[name].rinstall_if.clone() {
            if !self.ns[n0].seen || self.ns[n0].no_iif {
                continue;
            }
            self.ns[n0].reevaluate_iif = true;
            self.queue_dirty(n0);
        }
    }

    fn reevaluate_reverse_installif_pkg(&mut self, pkg: PkgId) {
        self.reevaluate_reverse_installif(self.u.pkgs[pkg].name);
        for n in self.provide_names(pkg) {
            self.reevaluate_reverse_installif(n);
        }
    }

    fn disqualify(&mut self, pkg: PkgId, why: RuledOut) {
        self.ps[pkg].selectable = false;
        self.ps[pkg].ruled_out.get_or_insert(why);
        self.reevaluate_reverse_deps(self.u.pkgs[pkg].name);
        for n in self.provide_names(pkg) {
            self.reevaluate_reverse_deps(n);
        }
        self.reevaluate_reverse_installif_pkg(pkg);
    }

    fn dependency_satisfiable(&self, pkg: PkgId, dep: &Req) -> bool {
        let n = &self.ns[dep.name];
        if n.locked {
            return self.provided(Some(pkg), dep, n.chosen);
        }
        if n.requirers == 0 && self.provided(Some(pkg), dep, None) {
            return true;
        }
        self.u.names[dep.name]
            .providers
            .iter()
            .any(|&p| self.ps[p.pkg].selectable && self.provided(Some(pkg), dep, Some(p)))
    }

    fn discover(&mut self, name: NameId) {
        self.grow_names();
        if self.ns[name].seen {
            return;
        }
        self.ns[name].seen = true;
        self.ns[name].no_iif = true;
        let mut num_virtual = 0;
        let providers = self.providers(name);
        for p in &providers {
            let pkg = p.pkg;
            if !self.ps[pkg].seen {
                self.u.load_depends(pkg);
                self.grow_names();
                let deps: Vec<NameId> = self.u.depends(pkg).iter().map(|d| d.name).collect();
                let own = self.u.pkgs[pkg].name;
                let provides = self.provide_names(pkg);
                for &d in &deps {
                    for n in std::iter::once(own).chain(provides.iter().copied()) {
                        if !self.ns[d].rdepends.contains(&n) {
                            self.ns[d].rdepends.push(n);
                        }
                    }
                }
                let info = &self.u.pkgs[pkg];
                let tag_preferred =
                    info.entry.info.size == 0 || info.repos & self.default_repos != 0;
                self.ps[pkg] = PkgState {
                    seen: true,
                    pinning_allowed: 1,
                    pinning_preferred: 1,
                    selectable: info.uninstallable.is_none(),
                    iif_failed: info.install_if.is_empty(),
                    tag_preferred,
                    tag_ok: tag_preferred,
                    ..PkgState::default()
                };
                for d in deps {
                    self.discover(d);
                }
            }
            self.ns[name].no_iif &= self.ps[pkg].iif_failed;
            if self.u.pkgs[pkg].name != name {
                num_virtual += 1;
            }
        }
        for n0 in self.u.names[name].rinstall_if.clone() {
            self.discover(n0);
        }
        for p in &providers {
            let own = self.u.pkgs[p.pkg].name;
            for n0 in self.u.names[own].rinstall_if.clone() {
                self.discover(n0);
            }
            for n in self.provide_names(p.pkg) {
                self.discover(n);
            }
        }
        // apk keeps this number in a signed int with two flag bits on top,
        // so names outside the world (sign bit) are taken *last*, and
        // within each group names some real package carries come first;
        // otherwise the later discovered, the earlier taken.
        let mut flags = 0u32;
        if !self.ns[name].in_world {
            flags |= 1 << 31;
        }
        if providers.len() != num_virtual {
            flags |= 1 << 30;
        }
        self.next_order += 1;
        self.ns[name].order_id = (flags | (self.next_order & 0x3fff_ffff)) as i32;
        for p in &providers {
            let iif: Vec<NameId> = self.u.pkgs[p.pkg]
                .install_if
                .iter()
                .map(|d| d.name)
                .collect();
            for n in iif {
                self.discover(n);
            }
        }
    }

    fn name_requirers_changed(&mut self, name: NameId) {
        self.queue_unresolved(name, false);
        self.reevaluate_reverse_installif(name);
        self.queue_dirty(name);
    }

    fn repos_of(&self, mask: u64) -> u64 {
        self.u
            .tag_repos
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << (*i).min(63)) != 0)
            .fold(0, |acc, (_, r)| acc | r)
    }

    fn inherit_pinning(&mut self, pkg: PkgId, parent: Option<PkgId>) {
        let repos = self.u.pkgs[pkg].repos;
        match parent {
            Some(pp) => {
                let allowed = self.ps[pp].pinning_allowed;
                self.ps[pkg].pinning_allowed |= allowed;
            }
            None => {
                let inherit = self.pinning_inherit;
                self.ps[pkg].pinning_allowed |= inherit;
                self.ps[pkg].pinning_preferred = inherit;
                self.ps[pkg].tag_preferred = repos & self.repos_of(inherit) != 0;
            }
        }
        let allowed = self.repos_of(self.ps[pkg].pinning_allowed);
        self.ps[pkg].tag_ok |= repos & allowed != 0;
    }

    fn apply_constraint(&mut self, by: Option<PkgId>, dep: &Req) {
        let name = dep.name;
        if !dep.conflict {
            self.ns[name].requirers += 1;
            if self.ns[name].requirers == 1 {
                self.name_requirers_changed(name);
            }
        }
        for p in self.providers(name) {
            let ok = self.provided(by, dep, Some(p));
            if !ok {
                self.ps[p.pkg].conflicts += 1;
            }
            if self.ps[p.pkg].selectable && self.ps[p.pkg].conflicts > 0 {
                let why = RuledOut::Constraint {
                    by,
                    req: dep.text.clone(),
                };
                self.disqualify(p.pkg, why);
            }
            if ok {
                self.inherit_pinning(p.pkg, by);
            }
        }
    }

    fn exclude_non_providers(&mut self, name: NameId, must: NameId, skip_virtuals: bool) {
        if name == must {
            return;
        }
        for p in self.providers(name) {
            let pkg = &self.u.pkgs[p.pkg];
            if pkg.name == must
                || !self.ps[p.pkg].selectable
                || (skip_virtuals && self.u.version_of(p).is_none())
            {
                continue;
            }
            if pkg
                .provides
                .iter()
                .any(|(n, v)| *n == must || (skip_virtuals && v.is_none()))
            {
                continue;
            }
            self.disqualify(p.pkg, RuledOut::NotProviding { needed: must });
        }
    }

    /// A step of apk's "merge index": counts in how many of the candidates
    /// considered so far a name appeared, in all of them or not at all.
    fn merge(counter: &mut u32, num_options: u32) -> bool {
        if *counter != num_options {
            return false;
        }
        *counter = num_options + 1;
        true
    }

    fn merge_complete(counter: &mut u32, num_options: u32) -> bool {
        let all = *counter == num_options;
        *counter = 0;
        all
    }

    fn auto_selectable(&self, p: Prov) -> bool {
        // A provider of a bare virtual name needs a priority, unless its
        // own name is required anyway.
        self.u.version_of(p).is_some()
            || self.u.pkgs[p.pkg].entry.info.provider_priority.unwrap_or(0) != 0
            || self.ns[self.u.pkgs[p.pkg].name].requirers > 0
    }

    fn reconsider(&mut self, name: NameId) {
        let reevaluate_deps = std::mem::take(&mut self.ns[name].reevaluate_deps);
        let reevaluate_iif = std::mem::take(&mut self.ns[name].reevaluate_iif);
        let mut first: Option<PkgId> = None;
        let (mut num_options, mut num_tag_not_ok) = (0u32, 0u32);
        let (mut has_iif, mut no_iif, mut has_auto) = (false, true, false);
        let mut reevaluate = false;
        for p in self.providers(name) {
            let pkg = p.pkg;
            self.ps[pkg].dependencies_merged = false;
            if reevaluate_deps {
                if !self.ps[pkg].selectable {
                    continue;
                }
                let broken = self
                    .u
                    .depends(pkg)
                    .iter()
                    .find(|d| !self.dependency_satisfiable(pkg, d))
                    .map(|d| d.text.clone());
                if let Some(req) = broken {
                    self.disqualify(pkg, RuledOut::Dependency { req });
                }
            }
            if !self.ps[pkg].selectable {
                continue;
            }
            if reevaluate_iif && !self.ps[pkg].iif_triggered && !self.ps[pkg].iif_failed {
                let (mut triggered, mut failed) = (true, false);
                for dep in self.u.pkgs[pkg].install_if.clone() {
                    if !self.ns[dep.name].locked {
                        if dep.conflict {
                            self.ns[dep.name].iif_needed = true;
                            self.queue_unresolved(dep.name, false);
                        }
                        triggered = false;
                        break;
                    }
                    if !self.provided(Some(pkg), &dep, self.chosen(dep.name)) {
                        (triggered, failed) = (false, true);
                        break;
                    }
                }
                self.ps[pkg].iif_triggered = triggered;
                self.ps[pkg].iif_failed = failed;
            }
            if reevaluate_iif && self.ps[pkg].iif_triggered {
                let parents: Vec<Option<PkgId>> = self.u.pkgs[pkg]
                    .install_if
                    .iter()
                    .map(|d| self.chosen(d.name).map(|c| c.pkg))
                    .collect();
                for parent in parents {
                    self.inherit_pinning(pkg, parent);
                }
            }
            has_iif |= self.ps[pkg].iif_triggered;
            no_iif &= self.ps[pkg].iif_failed;
            has_auto |= self.ps[pkg].iif_triggered;
            if self.ns[name].requirers == 0 {
                continue;
            }
            self.ps[pkg].dependencies_merged = true;
            first.get_or_insert(pkg);
            for d in self.u.pkgs[pkg].depends.as_deref().unwrap_or(&[]) {
                if !d.conflict {
                    Self::merge(&mut self.ns[d.name].merge_depends, num_options);
                }
            }
            let own = self.u.pkgs[pkg].name;
            if Self::merge(&mut self.ns[own].merge_provides, num_options) {
                self.ns[own].has_virtual_provides |= self.u.version_of(p).is_none();
            }
            for &(n, v) in &self.u.pkgs[pkg].provides {
                if Self::merge(&mut self.ns[n].merge_provides, num_options) {
                    self.ns[n].has_virtual_provides |= v.is_none();
                }
            }
            if !self.ps[pkg].tag_ok {
                num_tag_not_ok += 1;
            }
            num_options += 1;
            if !has_auto && self.auto_selectable(p) {
                has_auto = true;
            }
        }
        let n = &mut self.ns[name];
        n.has_options = num_options > 1 || num_tag_not_ok > 0;
        n.has_iif = has_iif;
        n.no_iif = no_iif;
        if has_auto != n.has_auto_selectable {
            n.has_auto_selectable = has_auto;
            reevaluate = true;
        }
        if let Some(pkg) = first {
            for p in self.providers(name) {
                self.ps[p.pkg].dependencies_used = self.ps[p.pkg].dependencies_merged;
            }
            let deps = self.u.depends(pkg).to_vec();
            if num_options == 1 {
                // One candidate left: its dependencies are requirements now.
                for d in &deps {
                    if Self::merge_complete(&mut self.ns[d.name].merge_depends, num_options) {
                        self.apply_constraint(Some(pkg), d);
                    }
                }
            } else {
                // Several: a name every candidate depends on is required,
                // whichever wins (versions are not merged).
                for d in &deps {
                    if Self::merge_complete(&mut self.ns[d.name].merge_depends, num_options)
                        && self.ns[d.name].requirers == 0
                    {
                        self.ns[d.name].requirers += 1;
                        self.name_requirers_changed(d.name);
                        for p in self.providers(d.name) {
                            self.inherit_pinning(p.pkg, Some(pkg));
                        }
                    }
                }
            }
            // A name every candidate provides: its other providers would
            // clash with whichever candidate wins.
            let own = self.u.pkgs[pkg].name;
            let provides: Vec<NameId> = self.provide_names(pkg);
            for n in std::iter::once(own).chain(provides.iter().copied()) {
                if Self::merge_complete(&mut self.ns[n].merge_provides, num_options) {
                    let skip = self.ns[n].has_virtual_provides;
                    self.exclude_non_providers(n, name, skip);
                }
            }
            for n in std::iter::once(own).chain(provides) {
                self.ns[n].has_virtual_provides = false;
            }
        }
        let done = !self.ns[name]
            .rdepends
            .iter()
            .any(|&n0| self.ns[n0].seen && !self.ns[n0].locked);
        self.ns[name].reverse_deps_done = done;
        self.queue_unresolved(name, reevaluate);
    }

    /// apk's provider preference; positive when `a` is better than `b`.
    fn compare_providers(&self, a: Option<Prov>, b: Option<Prov>) -> i64 {
        let (a, b) = match (a, b) {
            (Some(a), Some(b)) => (a, b),
            _ => return i64::from(a.is_some()) - i64::from(b.is_some()),
        };
        let (sa, sb) = (&self.ps[a.pkg], &self.ps[b.pkg]);
        let flag = |x: bool, y: bool| i64::from(x) - i64::from(y);
        let steps = [
            flag(sa.selectable, sb.selectable),
            flag(sa.dependencies_used, sb.dependencies_used),
            i64::from(sb.conflicts) - i64::from(sa.conflicts),
            flag(sa.tag_ok, sb.tag_ok),
            flag(sa.tag_preferred, sb.tag_preferred),
        ];
        if let Some(&r) = steps.iter().find(|&&r| r != 0) {
            return r;
        }
        use std::cmp::Ordering::*;
        // A missing version is the empty one, older than any other.
        let by_version = |x: Option<&str>, y: Option<&str>| match crate::apk::version::compare(
            x.unwrap_or(""),
            y.unwrap_or(""),
        ) {
            Less => -1,
            Greater => 1,
            Equal => 0,
        };
        let r = by_version(self.u.version_of(a), self.u.version_of(b));
        if r != 0 {
            return r;
        }
        let (pa, pb) = (&self.u.pkgs[a.pkg], &self.u.pkgs[b.pkg]);
        if pa.name == pb.name {
            let r = by_version(Some(&pa.entry.info.version), Some(&pb.entry.info.version));
            if r != 0 {
                return r;
            }
        }
        let prio = |p: &super::Pkg| p.entry.info.provider_priority.unwrap_or(0) as i64;
        let r = prio(pa) - prio(pb);
        if r != 0 {
            return r;
        }
        let r = flag(sa.selectable, sb.selectable);
        if r != 0 {
            return r;
        }
        let ffs = |bits: u64| {
            if bits == 0 {
                0
            } else {
                i64::from(bits.trailing_zeros()) + 1
            }
        };
        ffs(pb.repos) - ffs(pa.repos)
    }

    fn assign(&mut self, name: NameId, p: Option<Prov>) {
        if self.ns[name].locked {
            let chosen = self.ns[name].chosen;
            let unversioned =
                |s: &Self, x: Option<Prov>| x.is_none_or(|x| s.u.version_of(x).is_none());
            // Two packages may both provide a bare virtual name.
            if unversioned(self, p) && unversioned(self, chosen) {
                return;
            }
            let (a, b) = (p.map(|x| x.pkg), chosen.map(|x| x.pkg));
            self.mark_error(a);
            self.mark_error(b);
            self.failures.push(Failure::SameName { name, a, b });
            return;
        }
        self.ns[name].locked = true;
        self.ns[name].chosen = p;
        self.unqueue(name);
        if self.ns[name].dirty {
            self.ns[name].dirty = false;
            self.dirty.retain(|&n| n != name);
        }
        let pkg = p.map(|x| x.pkg);
        if let Some(pkg) = pkg {
            if self.ns[name].requirers == 0 && self.ps[pkg].iif_triggered {
                for dep in self.u.pkgs[pkg].install_if.clone() {
                    if !self.ns[dep.name].locked {
                        self.apply_constraint(Some(pkg), &dep);
                    }
                }
            }
        }
        let p_unversioned = p.is_none_or(|x| self.u.version_of(x).is_none());
        for p0 in self.providers(name) {
            if Some(p0.pkg) == pkg {
                continue;
            }
            if p_unversioned && self.u.version_of(p0).is_none() {
                continue;
            }
            self.disqualify(p0.pkg, RuledOut::NameTaken { name, by: pkg });
        }
        self.reevaluate_reverse_deps(name);
        match pkg {
            Some(pkg) => self.reevaluate_reverse_installif_pkg(pkg),
            None => self.reevaluate_reverse_installif(name),
        }
    }

    fn select(&mut self, name: NameId) {
        let mut chosen: Option<Prov> = None;
        let requirers = self.ns[name].requirers;
        if requirers > 0 || self.ns[name].has_iif {
            for p in self.providers(name) {
                let st = &self.ps[p.pkg];
                if requirers == 0 && (!st.iif_triggered || !st.tag_ok || !st.selectable) {
                    continue;
                }
                if !self.auto_selectable(p) {
                    continue;
                }
                if self.compare_providers(Some(p), chosen) > 0 {
                    chosen = Some(p);
                }
            }
        }
        match chosen {
            Some(p) => {
                let pkg = p.pkg;
                if !self.ps[pkg].selectable || !self.ps[pkg].tag_ok {
                    self.mark_error(Some(pkg));
                }
                let own = self.u.pkgs[pkg].name;
                self.assign(own, Some(Prov { pkg, provide: None }));
                for i in 0..self.u.pkgs[pkg].provides.len() {
                    let n = self.u.pkgs[pkg].provides[i].0;
                    self.assign(
                        n,
                        Some(Prov {
                            pkg,
                            provide: Some(i as u32),
                        }),
                    );
                }
                for d in self.u.depends(pkg).to_vec() {
                    self.apply_constraint(Some(pkg), &d);
                }
            }
            None => {
                self.assign(name, None);
                if requirers > 0 {
                    self.errors += 1;
                    self.failures.push(Failure::NoProvider { name });
                }
            }
        }
    }

    /// apk's order, repaired where it installs a package before one of
    /// its dependencies (apk can: a package pulled in by `install_if`
    /// while its trigger's dependencies are still being walked). Takes
    /// the earliest package whose dependencies outside its own dependency
    /// cycle are all placed, so an order that is already valid comes out
    /// unchanged.
    fn dependencies_first(&self) -> Vec<PkgId> {
        let n = self.order.len();
        let mut slot = vec![usize::MAX; self.u.pkgs.len()];
        for (i, &p) in self.order.iter().enumerate() {
            slot[p] = i;
        }
        let deps: Vec<Vec<usize>> = self
            .order
            .iter()
            .map(|&p| {
                self.u
                    .depends(p)
                    .iter()
                    .filter(|d| !d.conflict)
                    .filter_map(|d| self.chosen(d.name).map(|c| slot[c.pkg]))
                    .filter(|&j| j != usize::MAX && j != slot[p])
                    .collect()
            })
            .collect();
        let component = strongly_connected(&deps);
        let mut placed = vec![false; n];
        let mut left: Vec<usize> = (0..n).collect();
        let mut out = Vec::with_capacity(n);
        while !left.is_empty() {
            let ready = |&i: &usize| {
                deps[i]
                    .iter()
                    .all(|&j| placed[j] || component[j] == component[i])
            };
            let at = left.iter().position(ready).unwrap_or(0);
            let i = left.remove(at);
            placed[i] = true;
            out.push(self.order[i]);
        }
        out
    }

    // --- install order (apk's "changeset") ---

    fn cset_dep(&mut self, by: Option<PkgId>, dep: &Req, path: &mut Vec<Link>) {
        let chosen = self.chosen(dep.name);
        let met = self.provided(by, dep, chosen);
        if !met {
            self.mark_error(by);
        }
        self.cset_name(dep.name, path);
        // Recorded after the walk below it, so the deepest cause comes
        // first. A package chosen although ruled out (apk takes the best
        // of the bad ones and then refuses) counts as not meeting it.
        let broken = chosen.is_some_and(|c| !self.ps[c.pkg].selectable || !self.ps[c.pkg].tag_ok);
        if !met || (broken && !dep.conflict) {
            self.failures.push(Failure::Unmet {
                by,
                req: dep.clone(),
                chain: path.clone(),
            });
        }
        if let Some(c) = chosen {
            if self.ps[c.pkg].error {
                self.mark_error(by);
            }
        }
    }

    fn cset_name(&mut self, name: NameId, path: &mut Vec<Link>) {
        if self.ns[name].processed {
            return;
        }
        self.ns[name].processed = true;
        let Some(c) = self.chosen(name) else { return };
        let pkg = c.pkg;
        if self.ps[pkg].in_changeset {
            return;
        }
        self.ps[pkg].in_changeset = true;
        if self.pulled_in_by.len() < self.ps.len() {
            self.pulled_in_by.resize(self.ps.len(), None);
        }
        self.pulled_in_by[pkg] = Some(path.clone());
        let own = self.u.pkgs[pkg].name;
        self.ns[own].processed = true;
        for n in self.provide_names(pkg) {
            self.ns[n].processed = true;
        }
        path.push(Link::Pkg(pkg));
        for d in self.u.depends(pkg).to_vec() {
            self.cset_dep(Some(pkg), &d, path);
        }
        path.pop();
        self.order.push(pkg);
        let mut triggered = self.u.names[own].rinstall_if.clone();
        for n in self.provide_names(pkg) {
            triggered.extend(self.u.names[n].rinstall_if.iter().copied());
        }
        for n in triggered {
            self.cset_install_if(n, pkg, path);
        }
    }

    fn cset_install_if(&mut self, name: NameId, trigger: PkgId, path: &mut Vec<Link>) {
        let Some(c) = self.chosen(name) else { return };
        if !self.ns[name].seen || self.ns[name].processed {
            return;
        }
        let pkg = c.pkg;
        for d in &self.u.pkgs[pkg].install_if {
            if !d.conflict && !self.ns[d.name].processed {
                return;
            }
            if !self.provided(Some(pkg), d, self.chosen(d.name)) {
                return;
            }
        }
        path.push(Link::InstallIf(trigger));
        self.cset_name(name, path);
        path.pop();
    }
}
