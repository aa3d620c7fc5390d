//! A small mutation fuzzer that runs on the stable toolchain: no coverage
//! feedback, so it leans on good seeds, a per-target dictionary, splicing
//! between seeds, and growing its pool with mutants the target accepted
//! (an accepted mutant got past the parser and is the best base for the
//! next mutation to go deeper).
//!
//! Each target runs its seeds once, then mutants until its time budget is
//! spent. The budget and the seed come from the environment so CI stays
//! short and deterministic while a developer can run for an hour:
//! `PKGBUILD_FUZZ_SECS` (per target, default 6), `PKGBUILD_FUZZ_SEED`
//! (default fixed), `PKGBUILD_FUZZ_ITERS` (optional cap on mutants).
//! A failing input is written to `target/fuzz-failures/<target>/` so it
//! can be added to the committed corpus and turned into a regression test.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a target made of one input.
pub enum Verdict {
    /// Parsed (compiled, resolved...) and every invariant held: worth
    /// mutating further.
    Accepted,
    /// Refused with a clean error.
    Rejected,
}

/// An invariant that did not hold, described for the failure report.
pub type Violation = String;

pub struct Target<'a> {
    pub name: &'a str,
    pub seeds: Vec<Vec<u8>>,
    /// Tokens the mutator inserts or overwrites with.
    pub dict: &'a [&'a [u8]],
    /// Inputs are cut to this length after mutating.
    pub max_len: usize,
    /// A structure-aware mutator in place of [`mutate`].
    pub mutator: Option<Mutator>,
}

pub type Mutator = fn(&mut StdRng, &mut Vec<u8>, &[Vec<u8>], &[&[u8]]);

/// Counts printed at the end of every run (`--nocapture` shows them).
#[derive(Debug, Default)]
pub struct Stats {
    pub execs: u64,
    pub seeds: usize,
    pub pool: usize,
    pub accepted: u64,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

pub fn budget() -> Duration {
    Duration::from_secs(env_u64("PKGBUILD_FUZZ_SECS").unwrap_or(6))
}

pub fn rng_for(target: &str) -> StdRng {
    let seed = env_u64("PKGBUILD_FUZZ_SEED").unwrap_or(0x5eed_2026);
    // Each target gets its own stream, so adding one does not shift the others.
    let salt = target.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    StdRng::seed_from_u64(seed ^ salt)
}

/// Most mutants the pool keeps beside the seeds.
const POOL_CAP: usize = 512;

/// Run `exec` on every seed, then on mutants until the budget is spent.
/// Panics (with every failing input saved) if any input panicked or broke
/// an invariant.
pub fn run(target: Target<'_>, mut exec: impl FnMut(&[u8]) -> Result<Verdict, Violation>) -> Stats {
    assert!(!target.seeds.is_empty(), "{}: no seeds", target.name);
    let mut rng = rng_for(target.name);
    let max_iters = env_u64("PKGBUILD_FUZZ_ITERS").unwrap_or(u64::MAX);
    let mut stats = Stats {
        seeds: target.seeds.len(),
        ..Stats::default()
    };
    let mut failures: Vec<(String, PathBuf)> = Vec::new();
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut one = |input: &[u8], stats: &mut Stats, failures: &mut Vec<(String, PathBuf)>| {
        stats.execs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| exec(input)));
        let problem = match outcome {
            Ok(Ok(Verdict::Accepted)) => {
                stats.accepted += 1;
                return true;
            }
            Ok(Ok(Verdict::Rejected)) => return false,
            Ok(Err(v)) => v,
            Err(panic) => format!("panic: {}", panic_text(&panic)),
        };
        if failures.len() < 20 {
            let saved = save_failure(target.name, input);
            failures.push((problem, saved));
        }
        false
    };
    for seed in &target.seeds {
        one(seed, &mut stats, &mut failures);
    }
    // The seeds always run whole (they hold the regression inputs); the
    // budget is for mutants.
    let deadline = Instant::now() + budget();
    let mut mutants = 0u64;
    while Instant::now() < deadline && mutants < max_iters && failures.len() < 20 {
        mutants += 1;
        let from_pool = !pool.is_empty() && rng.gen_bool(0.3);
        let base = if from_pool {
            &pool[rng.gen_range(0..pool.len())]
        } else {
            &target.seeds[rng.gen_range(0..target.seeds.len())]
        };
        let mut input = base.clone();
        match target.mutator {
            Some(m) => m(&mut rng, &mut input, &target.seeds, target.dict),
            None => mutate(
                &mut rng,
                &mut input,
                &target.seeds,
                target.dict,
                target.max_len,
            ),
        }
        if one(&input, &mut stats, &mut failures) {
            if pool.len() < POOL_CAP {
                pool.push(input);
            } else {
                let i = rng.gen_range(0..POOL_CAP);
                pool[i] = input;
            }
        }
    }
    stats.pool = pool.len();
    println!(
        "fuzz {}: {} execs ({} accepted), {} seeds, pool {}",
        target.name, stats.execs, stats.accepted, stats.seeds, stats.pool
    );
    if !failures.is_empty() {
        let list: Vec<String> = failures
            .iter()
            .map(|(p, f)| format!("- {} (input saved as {})", p, f.display()))
            .collect();
        panic!(
            "fuzz {}: {} failing input(s):\n{}",
            target.name,
            failures.len(),
            list.join("\n")
        );
    }
    stats
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic)".into()
    }
}

fn save_failure(target: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// Bytes a parser is likely to treat specially.
const INTERESTING: &[u8] = b"\0\xff\x7f\x80 \t\n\r:-${}'\"()=<>~!.0912_/\\";

/// Numbers at the edges of the integer types and fields we parse.
const NUMBERS: &[&str] = &[
    "0",
    "-1",
    "99999999999",
    "077777777777",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "1e99",
    "00",
];

/// Apply one to four random edits to `data`.
pub fn mutate(rng: &mut StdRng, data: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]], max: usize) {
    for _ in 0..rng.gen_range(1..=4) {
        mutate_once(rng, data, seeds, dict);
    }
    data.truncate(max);
}

fn span(rng: &mut StdRng, len: usize) -> (usize, usize) {
    if len == 0 {
        return (0, 0);
    }
    let start = rng.gen_range(0..len);
    let most = (len - start).min(if rng.gen_bool(0.8) { 16 } else { 4096 });
    let n = rng.gen_range(1..=most);
    (start, start + n)
}

fn line_spans(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, b) in data.iter().enumerate() {
        if *b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < data.len() {
        out.push((start, data.len()));
    }
    out
}

fn mutate_once(rng: &mut StdRng, data: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let len = data.len();
    let at = if len == 0 { 0 } else { rng.gen_range(0..=len) };
    match rng.gen_range(0..11) {
        0 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] ^= 1 << rng.gen_range(0..8);
        }
        1 if len > 0 => {
            let i = rng.gen_range(0..len);
            data[i] = INTERESTING[rng.gen_range(0..INTERESTING.len())];
        }
        2 => {
            let (s, e) = span(rng, len);
            data.drain(s..e);
        }
        3 => {
            let (s, e) = span(rng, len);
            let copy = data[s..e].to_vec();
            data.splice(at..at, copy);
        }
        4 => {
            let n = rng.gen_range(1..=8);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            data.splice(at..at, bytes);
        }
        5 | 6 if !dict.is_empty() => {
            let token = dict[rng.gen_range(0..dict.len())];
            if rng.gen_bool(0.5) || len == 0 {
                data.splice(at..at, token.iter().copied());
            } else {
                let s = rng.gen_range(0..len);
                let e = (s + token.len()).min(len);
                data.splice(s..e, token.iter().copied());
            }
        }
        7 => {
            // Splice: a piece of another seed replaces a piece of this one.
            let other = &seeds[rng.gen_range(0..seeds.len())];
            let (os, oe) = span(rng, other.len());
            let (s, e) = span(rng, len);
            data.splice(s..e, other[os..oe].iter().copied());
        }
        8 => {
            // Line edits suit YAML and the line-based index format.
            let lines = line_spans(data);
            if lines.is_empty() {
                return;
            }
            let (s, e) = lines[rng.gen_range(0..lines.len())];
            match rng.gen_range(0..4) {
                0 => {
                    data.drain(s..e);
                }
                1 => {
                    let copy = data[s..e].to_vec();
                    let (t, _) = lines[rng.gen_range(0..lines.len())];
                    data.splice(t..t, copy);
                }
                2 => {
                    let other = &seeds[rng.gen_range(0..seeds.len())];
                    let theirs = line_spans(other);
                    if let Some(&(os, oe)) = theirs.get(rng.gen_range(0..theirs.len().max(1))) {
                        data.splice(s..s, other[os..oe].iter().copied());
                    }
                }
                _ => {
                    // Re-indent: YAML structure lives in leading blanks.
                    let add = rng.gen_range(0..4);
                    if rng.gen_bool(0.5) {
                        data.splice(s..s, std::iter::repeat_n(b' ', add));
                    } else {
                        let blanks = data[s..e].iter().take_while(|b| **b == b' ').count();
                        data.drain(s..s + blanks.min(add));
                    }
                }
            }
        }
        9 => {
            // Replace a run of digits with an edge number.
            let digits: Vec<usize> = (0..len).filter(|i| data[*i].is_ascii_digit()).collect();
            if digits.is_empty() {
                return;
            }
            let s = digits[rng.gen_range(0..digits.len())];
            let e = (s..len).find(|i| !data[*i].is_ascii_digit()).unwrap_or(len);
            let n = NUMBERS[rng.gen_range(0..NUMBERS.len())];
            data.splice(s..e, n.bytes());
        }
        _ => {
            // Repeat a piece many times: deep nesting, long names, big counts.
            let (s, e) = span(rng, len.min(8));
            let piece = data[s..e].to_vec();
            let times = rng.gen_range(2..200);
            let rep: Vec<u8> = piece
                .iter()
                .copied()
                .cycle()
                .take(piece.len() * times)
                .collect();
            data.splice(at.min(data.len())..at.min(data.len()), rep);
        }
    }
}

/// Read every regular file of `dir` (sorted by name) as a seed; a missing
/// directory gives none.
pub fn files_in(dir: &Path, ext: Option<&str>) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// The committed corpus of one target (`tests/fuzz/corpus/<target>/`):
/// hand-made seeds and every failing input found so far.
pub fn committed(target: &str) -> Vec<Vec<u8>> {
    files_in(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/corpus")
            .join(target),
        None,
    )
}

/// The names in `dir`, sorted: what a target that must write only inside
/// one directory compares before and after.
pub fn names_in(dir: &Path) -> Result<Vec<std::ffi::OsString>, String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    Ok(names)
}
