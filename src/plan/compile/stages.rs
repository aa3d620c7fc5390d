//! Deciding host stages: a compiled `fetch` or `git-checkout` step of the
//! build becomes a typed [`HostStage`] here, its inputs checked now (with
//! the recipe position) rather than when the engine gets to it.

use super::scope::{absolute_under, Source};
use crate::plan::stage::{Digest, HostStage, HostStageKind, CHECKOUT_DIR_VAR, FETCHED_FILE_VAR};
use crate::plan::Step;
use crate::recipe::model::{lookup, Pipeline};
use crate::recipe::RecipeError;

/// The host stage `step` (compiled from `p`, written in `src`) stands for,
/// if any; `id` is its place in the pipeline tree.
pub(super) fn host_stage(
    step: &Step,
    p: &Pipeline,
    src: &Source,
    id: &str,
) -> Result<Option<HostStage>, RecipeError> {
    let Some(uses) = step.uses.as_deref() else {
        return Ok(None);
    };
    let input = |name: &str| {
        step.with
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    // Point at the value the author wrote when there is one, else the step.
    let err = |name: &str, message: String| {
        let pos = lookup(&p.with, name).map_or(p.pos, |t| t.pos);
        src.err(pos, message)
    };
    let (kind, fetches, writes, hands_over) = match uses {
        "fetch" => {
            let uri = input("uri").ok_or_else(|| {
                err(
                    "uri",
                    "fetch: no `uri` (the URL to download on the host)".into(),
                )
            })?;
            let expected = match (input("expected-sha256"), input("expected-sha512")) {
                (Some(h), _) => Digest::Sha256(h.to_ascii_lowercase()),
                (None, Some(h)) => Digest::Sha512(h.to_ascii_lowercase()),
                (None, None) => {
                    return Err(src.err(
                        p.pos,
                        format!("fetch {uri}: expected-sha256 or expected-sha512 is required (pkgbuild never uses an unchecked download)"),
                    ))
                }
            };
            let strip = input("strip-components").unwrap_or("1");
            let strip_components = strip.parse::<u32>().map_err(|_| {
                err(
                    "strip-components",
                    format!(
                        "fetch {uri}: strip-components must be a whole number, found `{strip}`"
                    ),
                )
            })?;
            let writes = format!(
                "<download cache>/{}/{}/{}",
                expected.algorithm(),
                expected.hex(),
                crate::source::fetch::basename(uri)
            );
            let kind = HostStageKind::Fetch {
                uri: uri.to_string(),
                expected,
                // The same words the sandboxed step's shell accepts.
                extract: input("extract")
                    .is_none_or(|v| matches!(v, "true" | "True" | "TRUE" | "yes" | "1")),
                strip_components,
                directory: absolute_under(
                    &step.working_directory,
                    input("directory").unwrap_or("."),
                ),
            };
            (kind, uri.to_string(), writes, FETCHED_FILE_VAR)
        }
        "git-checkout" => {
            let repository = input("repository").ok_or_else(|| {
                err(
                    "repository",
                    "git-checkout: no `repository` (the repository to clone on the host)".into(),
                )
            })?;
            let branch = input("branch").map(str::to_string);
            let tag = input("tag").map(str::to_string);
            if let (Some(b), Some(t)) = (&branch, &tag) {
                return Err(err(
                    "tag",
                    format!("git-checkout {repository}: branch ({b}) and tag ({t}) are mutually exclusive"),
                ));
            }
            let depth = match input("depth") {
                None | Some("unset") => None,
                Some(d) => match d.parse::<i64>() {
                    Ok(n) if n == -1 || n >= 1 => Some(n),
                    _ => {
                        return Err(err(
                            "depth",
                            format!("git-checkout {repository}: depth must be -1 (full history) or a positive number, found `{d}`"),
                        ))
                    }
                },
            };
            let kind = HostStageKind::GitCheckout {
                repository: repository.to_string(),
                branch,
                tag,
                expected_commit: input("expected-commit").map(str::to_ascii_lowercase),
                depth,
                recurse_submodules: input("recurse-submodules") == Some("true"),
                cherry_picks: input("cherry-picks")
                    .map(|c| c.lines().map(str::to_string).collect())
                    .unwrap_or_default(),
                destination: absolute_under(
                    &step.working_directory,
                    input("destination").unwrap_or("."),
                ),
            };
            let writes = format!(
                "<build scratch>/sources/git-{}",
                crate::plan::stage::slug(id)
            );
            (kind, repository.to_string(), writes, CHECKOUT_DIR_VAR)
        }
        _ => return Ok(None),
    };
    Ok(Some(HostStage {
        id: id.to_string(),
        runs_on: "host",
        fetches,
        writes,
        hands_over,
        kind,
    }))
}

/// Every host stage of `steps`, depth first (the order the engine runs
/// them in).
pub(super) fn collect<'a>(steps: &'a [Step], out: &mut Vec<&'a HostStage>) {
    for s in steps {
        out.extend(s.host.as_ref());
        collect(&s.pipeline, out);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::rc::Rc;

    use super::super::compile_recipe;
    use super::*;
    use crate::plan::{CompileOptions, Plan};
    use crate::recipe::{model, parse_yaml};

    const SHA: &str = "5ab2b0b2a1f2bd9c1b5ee9b48ae4bc3f4b5cbd0b2f0c9dd6e5d0a0e9e8f0c1d2";

    fn plan_of(yaml: &str, dirs: Vec<PathBuf>) -> Result<Plan, RecipeError> {
        let tree = parse_yaml("r.yaml", yaml)?;
        let recipe = model::decode_recipe("r.yaml", &tree)?;
        let opts = CompileOptions {
            pipeline_dirs: dirs,
            ..CompileOptions::default()
        };
        let src = Rc::new(Source {
            name: "r.yaml".into(),
            recipe: true,
        });
        compile_recipe(src, recipe, &opts)
    }

    fn fetch(indent: &str, uri: &str) -> String {
        format!("{indent}- uses: fetch\n{indent}  with:\n{indent}    uri: {uri}\n{indent}    expected-sha256: {SHA}\n")
    }

    /// A recipe with host stages at the top, after a dropped step, inside
    /// a `uses:` pipeline, in subpackages (one range-expanded) and in a test.
    fn tree_recipe() -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("wrap.yaml"),
            format!(
                "inputs:\n  uri:\n    required: true\npipeline:\n  - runs: echo before\n{}",
                fetch("  ", "${{inputs.uri}}")
            ),
        )
        .unwrap();
        let yaml = format!(
            "package:\n  name: foo\n  version: 1.0\n\
             data:\n  - name: flavours\n    items:\n      a: A\n      b: B\n\
             pipeline:\n{}  - if: ${{{{build.arch}}}} == 'nowhere'\n    runs: echo skipped\n\
             {}  - uses: git-checkout\n    with:\n      repository: https://example.org/foo.git\n      tag: v1.0\n      destination: src\n\
             subpackages:\n  - name: foo-doc\n    pipeline:\n      - runs: echo doc\n{}\
             \x20 - range: flavours\n    name: foo-${{{{range.key}}}}\n    pipeline:\n      - uses: wrap\n        with:\n          uri: https://example.org/${{{{range.key}}}}.tar.gz\n\
             test:\n  pipeline:\n{}",
            fetch("  ", "https://example.org/foo-1.0.tar.gz"),
            fetch("  ", "https://example.org/extra.tar.gz"),
            fetch("      ", "https://example.org/doc.tar.gz"),
            fetch("    ", "https://example.org/test-data.tar.gz"),
        );
        (yaml, dir)
    }

    #[test]
    fn stage_ids_are_paths_in_the_pipeline_tree_distinct_for_nesting_and_subpackages() {
        let (yaml, dir) = tree_recipe();
        let plan = plan_of(&yaml, vec![dir.path().to_path_buf()]).unwrap();
        let ids: Vec<(&str, &str)> = plan
            .host_stages
            .iter()
            .map(|s| (s.id.as_str(), s.fetches.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("pipeline[0]", "https://example.org/foo-1.0.tar.gz"),
                // Numbered as written: the dropped `if:` step keeps its place.
                ("pipeline[2]", "https://example.org/extra.tar.gz"),
                ("pipeline[3]", "https://example.org/foo.git"),
                (
                    "subpackages[0].pipeline[1]",
                    "https://example.org/doc.tar.gz"
                ),
                (
                    "subpackages[1].pipeline[0].pipeline[1]",
                    "https://example.org/a.tar.gz"
                ),
                (
                    "subpackages[2].pipeline[0].pipeline[1]",
                    "https://example.org/b.tar.gz"
                ),
            ]
        );
        // Test pipelines make none: `pkgbuild test` runs no host stages.
        let test = plan.packages[0].test.as_ref().unwrap();
        assert!(test.steps[0].host.is_none());
        // Each stage is also on the step it belongs to.
        let main = &plan.packages[0].steps;
        assert_eq!(main.len(), 3, "the false `if:` step is dropped");
        assert_eq!(main[1].host.as_ref(), Some(&plan.host_stages[1]));
        let nested = &plan.packages[2].steps[0].pipeline[1];
        assert_eq!(nested.host.as_ref(), Some(&plan.host_stages[4]));
        assert!(
            plan.packages[2].steps[0].host.is_none(),
            "wrap itself is sandboxed"
        );
    }

    #[test]
    fn stage_ids_and_json_are_the_same_in_every_run() {
        let (yaml, dir) = tree_recipe();
        let a = plan_of(&yaml, vec![dir.path().to_path_buf()]).unwrap();
        let b = plan_of(&yaml, vec![dir.path().to_path_buf()]).unwrap();
        assert_eq!(a.host_stages, b.host_stages);
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }

    #[test]
    fn stages_carry_typed_inputs_resolved_against_the_working_directory() {
        let yaml = "package:\n  name: foo\n  version: 1.0\npipeline:\n  - uses: fetch\n    working-directory: build\n    with:\n      uri: https://example.org/foo.tar.xz\n      expected-sha512: ABCDEF\n      strip-components: 0\n      extract: no\n      directory: src\n  - uses: git-checkout\n    with:\n      repository: /srv/foo.git\n      branch: main\n      depth: -1\n      cherry-picks: |\n        main/0123456789abcdef0123456789abcdef01234567: fix\n";
        let yaml = yaml.replace("ABCDEF", &"AB".repeat(64));
        let plan = plan_of(&yaml, Vec::new()).unwrap();
        let fetch = &plan.host_stages[0];
        assert_eq!(
            fetch.kind,
            HostStageKind::Fetch {
                uri: "https://example.org/foo.tar.xz".into(),
                expected: Digest::Sha512("ab".repeat(64)),
                extract: false,
                strip_components: 0,
                directory: "/home/build/build/src".into(),
            }
        );
        assert_eq!(
            fetch.writes,
            format!("<download cache>/sha512/{}/foo.tar.xz", "ab".repeat(64))
        );
        assert_eq!(
            (fetch.runs_on, fetch.hands_over),
            ("host", FETCHED_FILE_VAR)
        );
        let git = &plan.host_stages[1];
        assert_eq!(
            git.kind,
            HostStageKind::GitCheckout {
                repository: "/srv/foo.git".into(),
                branch: Some("main".into()),
                tag: None,
                expected_commit: None,
                depth: Some(-1),
                recurse_submodules: false,
                cherry_picks: vec!["main/0123456789abcdef0123456789abcdef01234567: fix".into()],
                destination: "/home/build".into(),
            }
        );
        assert_eq!(git.writes, "<build scratch>/sources/git-pipeline-1");
        assert_eq!(git.hands_over, CHECKOUT_DIR_VAR);
    }

    fn error_of(with: &str) -> String {
        let yaml =
            format!("package:\n  name: foo\n  version: 1.0\npipeline:\n  - name: get\n{with}");
        plan_of(&yaml, Vec::new()).unwrap_err().to_string()
    }

    #[test]
    fn bad_host_stage_inputs_fail_at_compile_time_with_the_recipe_position() {
        assert_eq!(
            error_of("    uses: fetch\n    with:\n      uri: https://example.org/x.tgz\n"),
            "r.yaml:5:5: fetch https://example.org/x.tgz: expected-sha256 or expected-sha512 is required (pkgbuild never uses an unchecked download)"
        );
        assert_eq!(
            error_of("    uses: fetch\n    with:\n      uri: https://example.org/x.tgz\n      expected-sha256: abc\n"),
            "r.yaml:9:24: `expected-sha256` must be 64 hex digits, found 3"
        );
        let e = error_of(&format!("    uses: fetch\n    with:\n      uri: https://example.org/x.tgz\n      expected-sha256: {SHA}\n      strip-components: one\n"));
        assert!(e.starts_with("r.yaml:10:25: fetch https://example.org/x.tgz: strip-components must be a whole number"), "{e}");
        let e = error_of("    uses: git-checkout\n    with:\n      repository: https://example.org/x.git\n      branch: main\n      tag: v1\n");
        assert!(e.starts_with("r.yaml:10:12: git-checkout https://example.org/x.git: branch (main) and tag (v1) are mutually exclusive"), "{e}");
        let e = error_of("    uses: git-checkout\n    with:\n      repository: https://example.org/x.git\n      depth: 0\n");
        assert!(
            e.starts_with("r.yaml:9:14: git-checkout https://example.org/x.git: depth must be -1"),
            "{e}"
        );
    }
}
