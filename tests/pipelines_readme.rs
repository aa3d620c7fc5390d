//! Keeps `pipelines/README.md` honest: its input reference table must list exactly the
//! pipelines and inputs the YAML files declare, with the same required flag, default and
//! description, and every declared input must carry a description.

mod pipelines_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use pipelines_support::{load_all, pipelines_dir, Pipeline};

/// Header of the machine-checked table, exactly as the README writes it.
const HEADER: &str = "| pipeline | input | required | default | description |";
/// Input cell of the row that declares a pipeline without inputs.
const NO_INPUTS: &str = "(none)";

#[derive(Debug)]
struct Row {
    line: usize,
    required: String,
    default: String,
    description: String,
}

/// Splits a Markdown table row on unescaped `|`, un-escaping `\|` inside cells.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().expect("one cell").push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// A cell written as `` `x` `` stands for x; an empty cell for "no value".
fn unquote(cell: &str) -> String {
    let c = cell.trim();
    c.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .unwrap_or(c)
        .to_string()
}

fn normalize(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Rows of the reference table keyed by (pipeline, input).
fn readme_rows() -> BTreeMap<(String, String), Row> {
    let path = pipelines_dir().join("README.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == HEADER)
        .unwrap_or_else(|| panic!("README.md: no table with header `{HEADER}`"));
    let mut rows = BTreeMap::new();
    // Skip the header and the |---| separator; the table ends at the first non-table line.
    for (n, line) in lines.iter().enumerate().skip(start + 2) {
        if !line.trim_start().starts_with('|') {
            break;
        }
        let c = cells(line);
        assert_eq!(
            c.len(),
            5,
            "README.md line {}: expected 5 cells, got {}: {line}",
            n + 1,
            c.len()
        );
        let key = (unquote(&c[0]), unquote(&c[1]));
        let row = Row {
            line: n + 1,
            required: c[2].clone(),
            default: unquote(&c[3]),
            description: c[4].clone(),
        };
        if let Some(old) = rows.insert(key.clone(), row) {
            panic!(
                "README.md line {}: {} input {} is listed twice (first on line {})",
                n + 1,
                key.0,
                key.1,
                old.line
            );
        }
    }
    assert!(
        !rows.is_empty(),
        "README.md: the input reference table is empty"
    );
    rows
}

/// Everything wrong between one pipeline's YAML and its README rows.
fn compare(p: &Pipeline, rows: &BTreeMap<(String, String), Row>, problems: &mut Vec<String>) {
    let listed: BTreeSet<&str> = rows
        .keys()
        .filter(|(pipe, _)| pipe == &p.name)
        .map(|(_, input)| input.as_str())
        .collect();
    if listed.is_empty() {
        problems.push(format!("{}: pipeline is missing from README.md", p.name));
        return;
    }
    if p.inputs.is_empty() && !listed.contains(NO_INPUTS) {
        problems.push(format!(
            "{}: has no inputs; README.md must say so with an input cell `{NO_INPUTS}`",
            p.name
        ));
    }
    for input in &p.inputs {
        let what = format!("{} input {}", p.name, input.name);
        let description = input.description.as_deref().unwrap_or("");
        if description.is_empty() {
            problems.push(format!("{what}: has no description in the YAML"));
        }
        let Some(row) = rows.get(&(p.name.clone(), input.name.clone())) else {
            problems.push(format!("{what}: missing from README.md"));
            continue;
        };
        let required = if input.required { "yes" } else { "no" };
        if row.required != required {
            problems.push(format!(
                "{what}: README.md line {} says required `{}`, the YAML says `{required}`",
                row.line, row.required
            ));
        }
        let default = input.default.as_deref().unwrap_or("");
        if row.default != default {
            problems.push(format!(
                "{what}: README.md line {} gives default `{}`, the YAML gives `{default}`",
                row.line, row.default
            ));
        }
        if normalize(&row.description) != normalize(description) {
            problems.push(format!(
                "{what}: README.md line {} describes it as {:?}, the YAML as {:?}",
                row.line,
                normalize(&row.description),
                normalize(description)
            ));
        }
    }
    for input in listed {
        if input != NO_INPUTS && p.input(input).is_none() {
            problems.push(format!(
                "{}: README.md lists input {input}, which the YAML does not declare",
                p.name
            ));
        }
        if input == NO_INPUTS && !p.inputs.is_empty() {
            problems.push(format!(
                "{}: README.md says it has no inputs, the YAML declares some",
                p.name
            ));
        }
    }
}

#[test]
fn readme_table_matches_the_pipeline_files() {
    let pipelines = load_all();
    let rows = readme_rows();
    let mut problems = Vec::new();
    for p in &pipelines {
        compare(p, &rows, &mut problems);
    }
    let known: BTreeSet<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
    for ((pipe, _), row) in &rows {
        if !known.contains(pipe.as_str()) {
            problems.push(format!(
                "README.md line {}: pipeline {pipe} has no pipelines/{pipe}.yaml",
                row.line
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_input_has_a_description() {
    let missing: Vec<String> = load_all()
        .iter()
        .flat_map(|p| {
            p.inputs
                .iter()
                .filter(|i| i.description.as_deref().unwrap_or("").is_empty())
                .map(move |i| format!("{} input {}", p.name, i.name))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "inputs without a description: {missing:?}"
    );
}

/// melange's built-in pipelines (the files under its `pkg/build/pipelines/`), pinned so that
/// removing or renaming one of ours fails here: a melange recipe that names a missing one
/// does not compile. Wolfi recipes are compiled against these plus Wolfi's own directory.
const MELANGE_BUILTINS: &[&str] = &[
    "R/build",
    "autoconf/configure",
    "autoconf/make",
    "autoconf/make-install",
    "cargo/build",
    "cmake/build",
    "cmake/configure",
    "cmake/install",
    "copy",
    "cran/build",
    "cran/fetch",
    "cran/install",
    "ecosystems/maven",
    "fetch",
    "git-am",
    "git-archive",
    "git-checkout",
    "go/build",
    "go/build/v2",
    "go/bump",
    "go/covdata",
    "go/deps",
    "go/install",
    "goreleaser/build",
    "llvm/covreport",
    "maven/configure-mirror",
    "maven/pombump",
    "meson/configure",
    "meson/install",
    "meson/test",
    "move",
    "npm/install",
    "patch",
    "pecl/install",
    "pecl/phpize",
    "pecl/phpize-8.1",
    "pecl/phpize-8.2",
    "perl/cleanup",
    "perl/cpan-install",
    "perl/make",
    "php/composer-install",
    "python/build",
    "python/build-gpep517",
    "python/build-wheel",
    "python/import",
    "python/install",
    "python/pipinstall",
    "python/test",
    "redis-valkey/make",
    "redis-valkey/subpackage-benchmark",
    "redis-valkey/subpackage-cli",
    "redis-valkey/tests",
    "ruby/build",
    "ruby/clean",
    "ruby/install",
    "ruby/install_runtime_deps",
    "ruby/require",
    "ruby/test",
    "split/alldocs",
    "split/bin",
    "split/debug",
    "split/dev",
    "split/docs",
    "split/infodir",
    "split/lib",
    "split/locales",
    "split/manpages",
    "split/static",
    "strip",
    "xcover/profile",
    "xcover/status",
    "xcover/stop",
    "xcover/wait",
];

/// Built-ins melange has besides the pinned inventory above (meson/compile predates it,
/// xcover/ensure came later); they are kept for the same reason.
const MORE_MELANGE_BUILTINS: &[&str] = &["meson/compile", "xcover/ensure"];

#[test]
fn every_melange_builtin_pipeline_has_a_file() {
    assert_eq!(
        MELANGE_BUILTINS.len(),
        73,
        "the pinned inventory changed size"
    );
    let dir = pipelines_dir();
    let missing: Vec<&str> = MELANGE_BUILTINS
        .iter()
        .chain(MORE_MELANGE_BUILTINS)
        .copied()
        .filter(|n| !dir.join(format!("{n}.yaml")).is_file())
        .collect();
    assert!(
        missing.is_empty(),
        "melange built-in pipelines without a pipelines/NAME.yaml: {missing:?}"
    );
    // And every one parses as a pipeline (load_all panics on a malformed file).
    let loaded: BTreeSet<String> = load_all().into_iter().map(|p| p.name).collect();
    for n in MELANGE_BUILTINS.iter().chain(MORE_MELANGE_BUILTINS) {
        assert!(loaded.contains(*n), "{n} did not load");
    }
}

#[test]
fn table_cells_unescape_pipes() {
    assert_eq!(
        cells(r"| a | b\|c | `x` |"),
        vec!["a".to_string(), "b|c".to_string(), "`x`".to_string()]
    );
    assert_eq!(unquote("`-g`"), "-g");
    assert_eq!(unquote(""), "");
}

/// Inputs that the Wolfi recipes in the test corpus pass to built-in pipelines; a recipe
/// must port without renaming any of them.
const WOLFI_WITH_KEYS: &[(&str, &[&str])] = &[
    ("autoconf/configure", &["opts"]),
    ("autoconf/make", &["opts", "dir"]),
    ("autoconf/make-install", &["opts"]),
    ("cargo/build", &["modroot", "output", "opts", "output-dir"]),
    ("cmake/configure", &["opts"]),
    (
        "fetch",
        &[
            "uri",
            "expected-sha256",
            "expected-sha512",
            "extract",
            "strip-components",
        ],
    ),
    (
        "git-checkout",
        &[
            "repository",
            "tag",
            "branch",
            "expected-commit",
            "destination",
            "depth",
            "cherry-picks",
            "recurse-submodules",
        ],
    ),
    (
        "go/build",
        &[
            "packages",
            "output",
            "go-package",
            "ldflags",
            "modroot",
            "tags",
        ],
    ),
    ("go/build/v2", &["packages", "output", "ldflags", "modroot"]),
    ("meson/configure", &["opts"]),
    ("patch", &["patches", "series"]),
    ("python/import", &["python", "imports", "import"]),
    ("R/build", &["package", "version"]),
    ("ruby/build", &["gem", "dir"]),
    ("ruby/install", &["gem", "version", "dir", "opts"]),
];

#[test]
fn inputs_used_by_wolfi_recipes_exist() {
    let pipelines = load_all();
    let mut missing = Vec::new();
    for (name, keys) in WOLFI_WITH_KEYS {
        let Some(p) = pipelines.iter().find(|p| p.name == *name) else {
            missing.push(format!("pipeline {name}"));
            continue;
        };
        missing.extend(
            keys.iter()
                .filter(|k| p.input(k).is_none())
                .map(|k| format!("{name} input {k}")),
        );
    }
    assert!(missing.is_empty(), "not declared: {missing:?}");
}
