//! "Did you mean" hints for unknown keys and names, shared by the decoder
//! and the compiler. Pure string work.

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key`, if it is close enough to be a typo.
pub fn nearest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    // A truncated key (`working-dir`) is a typo too, even if far in edits.
    if key.len() >= 3 {
        if let Some(k) = known
            .iter()
            .find(|k| k.starts_with(key) || key.starts_with(**k))
        {
            return Some(k);
        }
    }
    let (best, d) = known
        .iter()
        .map(|k| (*k, distance(key, k)))
        .min_by_key(|(_, d)| *d)?;
    (d <= (key.len().max(best.len()) / 3).max(2)).then_some(best)
}

/// A " (did you mean `x`?)" hint, else the list of `known` names (or
/// `none` when there are none), for "unknown name" errors.
pub fn hint(name: &str, known: &[&str], none: &str) -> String {
    match nearest(name, known) {
        Some(k) => format!(" (did you mean `{k}`?)"),
        None if known.is_empty() => format!(" ({none})"),
        None => format!(" (defined: {})", known.join(", ")),
    }
}
