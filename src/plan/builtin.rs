//! Built-in pipelines: the YAML files under `pipelines/` at the repository
//! root, compiled into the binary by `build.rs`. `uses: NAME` falls back to
//! these after every `--pipeline-dir`.

include!(concat!(env!("OUT_DIR"), "/builtin_pipelines.rs"));

/// The text of built-in pipeline `name` (`autoconf/make`), if there is one.
pub fn get(name: &str) -> Option<&'static str> {
    BUILTINS
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| BUILTINS[i].1)
}

/// Names of all built-in pipelines, sorted.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(n, _)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(BUILTINS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn every_name_resolves_to_its_text() {
        for (n, text) in BUILTINS {
            assert_eq!(get(n), Some(*text));
        }
        assert_eq!(get("no/such/pipeline"), None);
    }
}
