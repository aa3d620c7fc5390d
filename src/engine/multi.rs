//! Many recipes in one run (`pkgbuild build recipes/*.yaml`), as a
//! melange/wolfi-os `make` user expects: the build order comes from what
//! each recipe's build (and test) environment asks for and what the other
//! recipes produce; independent recipes may build at the same time; a
//! failure stops the run, or with keep-going only what depends on it.
//!
//! The graph is built from compiled plans only, before anything runs: an
//! entry of `environment.contents.packages` (or of a package's test
//! environment) that names a package, a subpackage or a declared
//! `dependencies.provides` of another recipe makes that recipe a
//! dependency. Names a build discovers by scanning (`so:`, `cmd:`, `pc:`)
//! are not known yet and create no edge. A recipe not built for the target
//! architecture offers nothing, so a recipe asking for its packages takes
//! them from wherever the build environment finds them.
//!
//! The scheduler knows nothing of how a recipe is built: [`run`] calls the
//! caller's function for each recipe on up to `jobs` threads, starting a
//! recipe once every recipe it needs has succeeded.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};

use crate::apk::dep::Dep;
use crate::plan::Plan;

/// Recipe `on` must be built first, because `entry` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub on: usize,
    pub entry: String,
}

/// The names a plan offers others: each package and subpackage name and
/// each declared `dependencies.provides` name.
pub fn offered_names(plan: &Plan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for p in &plan.packages {
        names.insert(p.name.clone());
        for provide in &p.dependencies.provides {
            if let Ok(d) = provide.parse::<Dep>() {
                names.insert(d.name);
            }
        }
    }
    names
}

/// What a plan's build environment and its packages' test environments
/// ask for: each entry as written with its dependency name, first
/// occurrence kept. Conflicts (`!name`) and entries that do not parse ask
/// for nothing (the build environment reports the latter).
pub fn wanted(plan: &Plan) -> Vec<(String, String)> {
    let tests = plan
        .packages
        .iter()
        .filter_map(|p| p.test.as_ref())
        .flat_map(|t| t.environment.contents.packages.iter());
    let mut seen = BTreeSet::new();
    plan.environment
        .contents
        .packages
        .iter()
        .chain(tests)
        .filter_map(|entry| {
            let d = entry.parse::<Dep>().ok().filter(|d| !d.conflict)?;
            seen.insert(entry.clone()).then(|| (entry.clone(), d.name))
        })
        .collect()
}

/// For each plan, the plans that must be built before it, each once with
/// the first entry that needs it. `offers[i]` false (a recipe skipped for
/// the architecture) makes plan `i` offer nothing. A plan never depends on
/// itself: a test environment names the package under test.
pub fn dependencies(plans: &[&Plan], offers: &[bool]) -> Vec<Vec<Edge>> {
    let offered: Vec<BTreeSet<String>> = plans
        .iter()
        .zip(offers)
        .map(|(p, &on)| {
            if on {
                offered_names(p)
            } else {
                BTreeSet::new()
            }
        })
        .collect();
    plans
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            let own = offered_names(plan);
            let mut edges: Vec<Edge> = Vec::new();
            for (entry, name) in wanted(plan) {
                if own.contains(&name) {
                    continue;
                }
                for (j, names) in offered.iter().enumerate() {
                    if j != i && names.contains(&name) && !edges.iter().any(|e| e.on == j) {
                        edges.push(Edge {
                            on: j,
                            entry: entry.clone(),
                        });
                    }
                }
            }
            edges
        })
        .collect()
}

/// A dependency cycle, as the recipes in it in dependency order (each
/// needs the next, the last needs the first), or None.
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    // Iterative depth-first search: a chain of thousands of recipes must
    // not exhaust the stack.
    for start in 0..deps.len() {
        if mark[start] != Mark::New {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            match deps[node].get(*next) {
                Some(&child) => {
                    *next += 1;
                    match mark.get(child) {
                        Some(Mark::New) => {
                            mark[child] = Mark::OnPath;
                            path.push((child, 0));
                        }
                        Some(Mark::OnPath) => {
                            let from = path.iter().position(|&(n, _)| n == child)?;
                            return Some(path[from..].iter().map(|&(n, _)| n).collect());
                        }
                        _ => {}
                    }
                }
                None => {
                    mark[node] = Mark::Done;
                    path.pop();
                }
            }
        }
    }
    None
}

/// The order a one-job run builds in when nothing fails: dependencies
/// first, otherwise the order given. `deps` must be acyclic.
pub fn order(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut done = vec![false; deps.len()];
    let mut out = Vec::with_capacity(deps.len());
    while out.len() < deps.len() {
        let ready = (0..deps.len()).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        let Some(i) = ready else { break };
        done[i] = true;
        out.push(i);
    }
    out
}

/// Why a recipe was not built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not built for the target architecture; the reason.
    Arch(String),
    /// Every package file is already in the repository.
    UpToDate,
    /// This recipe, which it needs directly or through others, failed.
    DependencyFailed(usize),
    /// The run stopped after a failure before this recipe could start.
    NotReached,
}

/// What became of one recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Built,
    /// The build failed; the short reason for the summary.
    Failed(String),
    Skipped(Skip),
}

impl Outcome {
    /// Whether recipes needing this one may build.
    fn satisfies(&self) -> bool {
        matches!(self, Outcome::Built | Outcome::Skipped(Skip::UpToDate))
    }
}

/// The result of [`run`].
#[derive(Debug)]
pub struct Report {
    /// One per recipe, in the order given.
    pub outcomes: Vec<Outcome>,
    /// The recipes that started, in the order they started.
    pub started: Vec<usize>,
}

enum State {
    Waiting,
    Running,
    Finished(Outcome),
}

struct Shared {
    states: Vec<State>,
    running: usize,
    stop: bool,
    started: Vec<usize>,
}

impl Shared {
    fn outcome(&self, i: usize) -> Option<&Outcome> {
        match &self.states[i] {
            State::Finished(o) => Some(o),
            _ => None,
        }
    }

    /// The first waiting recipe (in the order given) whose dependencies
    /// have all succeeded.
    fn next_ready(&self, deps: &[Vec<usize>]) -> Option<usize> {
        if self.stop {
            return None;
        }
        (0..self.states.len()).find(|&i| {
            matches!(self.states[i], State::Waiting)
                && deps[i]
                    .iter()
                    .all(|&d| self.outcome(d).is_some_and(Outcome::satisfies))
        })
    }

    /// Mark every waiting recipe that needs `failed`, directly or not.
    fn prune_dependents(&mut self, deps: &[Vec<usize>], failed: usize) {
        let mut doomed = BTreeSet::from([failed]);
        loop {
            let before = doomed.len();
            for (i, d) in deps.iter().enumerate() {
                if matches!(self.states[i], State::Waiting) && d.iter().any(|x| doomed.contains(x))
                {
                    doomed.insert(i);
                    self.states[i] =
                        State::Finished(Outcome::Skipped(Skip::DependencyFailed(failed)));
                }
            }
            if doomed.len() == before {
                return;
            }
        }
    }
}

/// Build every recipe that `preset` leaves open (`Some` outcomes are
/// decided already: skipped for the architecture, up to date), in
/// dependency order, on up to `jobs` threads (at least one). `deps` must
/// be acyclic ([`find_cycle`]). `build(i)` builds recipe `i` and returns
/// the short reason of a failure. After a failure no new recipe starts
/// unless `keep_going`, in which case only the recipes that need the
/// failed one are skipped. Running builds always finish.
pub fn run<F>(
    deps: &[Vec<usize>],
    preset: Vec<Option<Outcome>>,
    jobs: usize,
    keep_going: bool,
    build: F,
) -> Report
where
    F: Fn(usize) -> Result<(), String> + Sync,
{
    let n = deps.len();
    let states = preset
        .into_iter()
        .map(|o| o.map_or(State::Waiting, State::Finished))
        .collect();
    let shared = Mutex::new(Shared {
        states,
        running: 0,
        stop: false,
        started: Vec::new(),
    });
    let wake = Condvar::new();
    let lock = || shared.lock().unwrap_or_else(|e| e.into_inner());
    let worker = || loop {
        let mut s = lock();
        let next = loop {
            if let Some(i) = s.next_ready(deps) {
                break Some(i);
            }
            if s.running == 0 {
                break None;
            }
            s = wake.wait(s).unwrap_or_else(|e| e.into_inner());
        };
        let Some(i) = next else {
            wake.notify_all();
            return;
        };
        s.states[i] = State::Running;
        s.running += 1;
        s.started.push(i);
        drop(s);
        // A panicking build must still count as finished, or the other
        // workers would wait for it forever.
        let result = catch_unwind(AssertUnwindSafe(|| build(i)))
            .unwrap_or_else(|_| Err("the build panicked".to_string()));
        let mut s = lock();
        s.running -= 1;
        match result {
            Ok(()) => s.states[i] = State::Finished(Outcome::Built),
            Err(why) => {
                s.states[i] = State::Finished(Outcome::Failed(why));
                s.prune_dependents(deps, i);
                s.stop |= !keep_going;
            }
        }
        drop(s);
        wake.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, n.max(1)) {
            scope.spawn(worker);
        }
    });
    let s = shared.into_inner().unwrap_or_else(|e| e.into_inner());
    let outcomes = s
        .states
        .into_iter()
        .map(|st| match st {
            State::Finished(o) => o,
            State::Waiting | State::Running => Outcome::Skipped(Skip::NotReached),
        })
        .collect();
    Report {
        outcomes,
        started: s.started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn open(n: usize) -> Vec<Option<Outcome>> {
        vec![None; n]
    }

    #[test]
    fn dependencies_come_first_whatever_the_given_order() {
        // 0 needs 2, 2 needs 1.
        let deps = vec![vec![2], vec![], vec![1]];
        let seen = Mutex::new(Vec::new());
        let r = run(&deps, open(3), 1, false, |i| {
            seen.lock().unwrap().push(i);
            Ok(())
        });
        assert_eq!(*seen.lock().unwrap(), vec![1, 2, 0]);
        assert_eq!(order(&deps), vec![1, 2, 0]);
        assert_eq!(r.started, vec![1, 2, 0]);
        assert!(r.outcomes.iter().all(|o| *o == Outcome::Built));
    }

    #[test]
    fn a_recipe_starts_only_after_its_dependencies_finished() {
        let deps = vec![vec![], vec![0], vec![], vec![1, 2]];
        let events = Mutex::new(Vec::new());
        run(&deps, open(4), 3, false, |i| {
            events.lock().unwrap().push(("start", i));
            events.lock().unwrap().push(("end", i));
            Ok(())
        });
        let events = events.into_inner().unwrap();
        let at = |e: (&str, usize)| events.iter().position(|x| *x == e).unwrap();
        for (i, d) in deps.iter().enumerate() {
            for &d in d {
                assert!(at(("end", d)) < at(("start", i)), "{events:?}");
            }
        }
    }

    #[test]
    fn independent_recipes_run_at_the_same_time() {
        // Each build waits (up to a generous bound) for the other to be
        // running; with one job at a time neither would see the other.
        let running = Mutex::new(0usize);
        let cv = Condvar::new();
        let met = Mutex::new(Vec::new());
        run(&[vec![], vec![]], open(2), 2, false, |i| {
            let mut r = running.lock().unwrap();
            *r += 1;
            cv.notify_all();
            let (r, _) = cv
                .wait_timeout_while(r, Duration::from_secs(20), |r| *r < 2)
                .unwrap();
            met.lock().unwrap().push((i, *r));
            Ok(())
        });
        let mut met = met.into_inner().unwrap();
        met.sort();
        assert_eq!(met, vec![(0, 2), (1, 2)]);
    }

    #[test]
    fn a_failure_stops_new_builds_unless_keep_going() {
        // 0 fails; 1 needs 0; 2 needs 1; 3 is independent and comes later.
        let deps = vec![vec![], vec![0], vec![1], vec![]];
        let fail0 = |i: usize| {
            if i == 0 {
                Err("boom".to_string())
            } else {
                Ok(())
            }
        };
        let r = run(&deps, open(4), 1, false, fail0);
        assert_eq!(
            r.outcomes,
            vec![
                Outcome::Failed("boom".into()),
                Outcome::Skipped(Skip::DependencyFailed(0)),
                Outcome::Skipped(Skip::DependencyFailed(0)),
                Outcome::Skipped(Skip::NotReached),
            ]
        );
        let r = run(&deps, open(4), 1, true, fail0);
        assert_eq!(r.outcomes[3], Outcome::Built);
        assert_eq!(r.outcomes[2], Outcome::Skipped(Skip::DependencyFailed(0)));
        assert_eq!(r.started, vec![0, 3]);
    }

    #[test]
    fn a_panicking_build_is_a_failure_not_a_hang() {
        let r = run(&[vec![], vec![0]], open(2), 2, true, |i| {
            if i == 0 {
                panic!("bad");
            }
            Ok(())
        });
        assert!(matches!(r.outcomes[0], Outcome::Failed(_)));
        assert_eq!(r.outcomes[1], Outcome::Skipped(Skip::DependencyFailed(0)));
    }

    #[test]
    fn up_to_date_recipes_satisfy_dependents_and_arch_skips_are_kept() {
        let deps = vec![vec![1], vec![], vec![]];
        let preset = vec![
            None,
            Some(Outcome::Skipped(Skip::UpToDate)),
            Some(Outcome::Skipped(Skip::Arch("no".into()))),
        ];
        let r = run(&deps, preset, 1, false, |_| Ok(()));
        assert_eq!(r.started, vec![0]);
        assert_eq!(r.outcomes[2], Outcome::Skipped(Skip::Arch("no".into())));
    }

    #[test]
    fn cycles_are_found_with_their_members() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        let c = find_cycle(&[vec![], vec![2], vec![3], vec![1]]).unwrap();
        assert_eq!(c, vec![1, 2, 3]);
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0]));
        // A long chain does not overflow the stack.
        let chain: Vec<Vec<usize>> = (0..100_000)
            .map(|i| vec![i + 1])
            .take(99_999)
            .chain([vec![]])
            .collect();
        assert_eq!(find_cycle(&chain), None);
    }

    fn plan_from(yaml: &str) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.yaml");
        std::fs::write(&path, yaml).unwrap();
        crate::plan::compile(&path, &crate::plan::CompileOptions::default()).unwrap()
    }

    #[test]
    fn edges_come_from_package_subpackage_and_provides_names() {
        let lib = plan_from(
            "package:\n  name: libz\n  version: 1.0.0\n  epoch: 0\n  dependencies:\n    provides: [zlib=1.0.0]\npipeline:\n  - runs: 'true'\nsubpackages:\n  - name: libz-dev\n    pipeline:\n      - runs: 'true'\n",
        );
        let by_sub = plan_from(
            "package:\n  name: a\n  version: 1.0.0\n  epoch: 0\nenvironment:\n  contents:\n    packages: [build-base, 'libz-dev>=1']\npipeline:\n  - runs: 'true'\n",
        );
        let by_provide = plan_from(
            "package:\n  name: b\n  version: 1.0.0\n  epoch: 0\nenvironment:\n  contents:\n    packages: [zlib, '!libz']\npipeline:\n  - runs: 'true'\n",
        );
        let by_test = plan_from(
            "package:\n  name: c\n  version: 1.0.0\n  epoch: 0\npipeline:\n  - runs: 'true'\ntest:\n  environment:\n    contents:\n      packages: [libz]\n  pipeline:\n    - runs: 'true'\n",
        );
        let plans = [&lib, &by_sub, &by_provide, &by_test];
        let deps = dependencies(&plans, &[true; 4]);
        assert_eq!(deps[0], vec![]);
        assert_eq!(
            deps[1],
            vec![Edge {
                on: 0,
                entry: "libz-dev>=1".into()
            }]
        );
        assert_eq!(deps[2].iter().map(|e| e.on).collect::<Vec<_>>(), vec![0]);
        assert_eq!(deps[3].iter().map(|e| e.on).collect::<Vec<_>>(), vec![0]);
        // Skipped for the architecture: offers nothing.
        let deps = dependencies(&plans, &[false, true, true, true]);
        assert!(deps.iter().all(Vec::is_empty), "{deps:?}");
    }
}
