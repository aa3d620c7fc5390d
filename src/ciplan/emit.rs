//! Writing a [`Graph`] for an engine: JSON, a GitHub Actions workflow (one
//! job per wave, a matrix over its recipes, `needs` on the previous wave),
//! or an Argo Workflows `Workflow` (a DAG, one task per recipe).
//!
//! Every job runs the same two commands: build the recipe (with its lock
//! file, which `build` picks up beside the recipe) and publish the result.
//! Secrets are referenced by name from the engine's secret store, never
//! written into the file.

use yaml_rust2::yaml::{Hash, Yaml};
use yaml_rust2::YamlEmitter;

use super::{Graph, Node};

/// GitHub rejects a matrix of more than 256 entries.
pub const MAX_MATRIX: usize = 256;

/// What the emitted jobs need beyond the graph.
#[derive(Debug, Clone)]
pub struct EmitOptions {
    /// File name the signing key is written to on the runner; apk users
    /// trust `<name>.pub`.
    pub key_name: String,
    /// Repository the builds also install from (the published one, over
    /// HTTP), so later waves find earlier waves' packages.
    pub repository: Option<String>,
    /// Container image with pkgbuild installed (Argo).
    pub image: String,
    /// Extra arguments for every `pkgbuild build` (such as `--runner host`).
    pub build_args: Vec<String>,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            key_name: "pkgbuild.rsa".into(),
            repository: None,
            image: "pkgbuild:latest".into(),
            build_args: Vec::new(),
        }
    }
}

/// The graph as pretty JSON with a final newline; each recipe carries
/// the `command` a job runs for it (`sh -c`, with the signing key's path
/// in `$PKGBUILD_SIGNING_KEY_FILE`).
pub fn json(g: &Graph, o: &EmitOptions) -> String {
    let mut value = serde_json::to_value(g).unwrap_or_default();
    if let Some(recipes) = value.get_mut("recipes").and_then(|r| r.as_array_mut()) {
        for (r, n) in recipes.iter_mut().zip(&g.recipes) {
            let cmd = commands(
                &V::Lit(n.recipe.clone()),
                &V::Lit(n.name.clone()),
                &V::Lit(n.input_hash.clone()),
                &V::Var("$PKGBUILD_SIGNING_KEY_FILE".into()),
                g,
                o,
            );
            if let Some(obj) = r.as_object_mut() {
                obj.insert("command".into(), serde_json::Value::String(cmd));
            }
        }
    }
    let mut s = serde_json::to_string_pretty(&value).unwrap_or_default();
    s.push('\n');
    s
}

fn s(v: &str) -> Yaml {
    Yaml::String(v.to_string())
}

fn map<const N: usize>(pairs: [(&str, Yaml); N]) -> Yaml {
    let mut h = Hash::new();
    for (k, v) in pairs {
        h.insert(s(k), v);
    }
    Yaml::Hash(h)
}

fn list(items: impl IntoIterator<Item = Yaml>) -> Yaml {
    Yaml::Array(items.into_iter().collect())
}

fn dump(doc: &Yaml) -> String {
    let mut out = String::new();
    let mut e = YamlEmitter::new(&mut out);
    e.multiline_strings(true);
    // Emitting into a String cannot fail.
    let _ = e.dump(doc);
    out.push('\n');
    out
}

/// A value in a job's shell script: a literal, single-quoted, or an
/// engine placeholder or shell variable, double-quoted so the engine's
/// substitution (or the shell's expansion) lands inside one word.
#[derive(Clone)]
enum V {
    Lit(String),
    Var(String),
}

impl V {
    fn sh(&self) -> String {
        match self {
            V::Lit(v) => format!("'{}'", v.replace('\'', r"'\''")),
            V::Var(v) => format!("\"{v}\""),
        }
    }

    fn raw(&self) -> &str {
        match self {
            V::Lit(v) | V::Var(v) => v,
        }
    }

    fn suffixed(&self, tail: &str) -> V {
        match self {
            V::Lit(v) => V::Lit(format!("{v}{tail}")),
            V::Var(v) => V::Var(format!("{v}{tail}")),
        }
    }

    /// `a=b` as one word.
    fn pair(a: &V, b: &V) -> V {
        match (a, b) {
            (V::Lit(a), V::Lit(b)) => V::Lit(format!("{a}={b}")),
            _ => V::Var(format!("{}={}", a.raw(), b.raw())),
        }
    }
}

/// The shell script of one job: unless `DEST` already records the
/// recipe's input hash, build it (its lock file is picked up beside it)
/// and publish, recording the hash.
fn commands(recipe: &V, name: &V, hash: &V, key: &V, g: &Graph, o: &EmitOptions) -> String {
    let arch = &g.arch;
    let mut build = format!(
        "pkgbuild build {} --arch {arch} --signing-key {} --out-dir packages",
        recipe.sh(),
        key.sh()
    );
    for a in &o.build_args {
        build.push(' ');
        build.push_str(&V::Lit(a.clone()).sh());
    }
    if let Some(r) = &o.repository {
        build.push_str(&format!(
            " --repository-append {} --keyring-append {}",
            V::Lit(r.clone()).sh(),
            key.suffixed(".pub").sh()
        ));
    }
    let Some(dest) = &g.publish else {
        return build + "\n";
    };
    let dest = V::Lit(dest.clone()).sh();
    let input = V::pair(name, hash).sh();
    format!(
        "if pkgbuild publish --check-input {input} {dest} --arch {arch}; then\n  echo \"up to date: skipped\"\nelse\n  {build}\n  pkgbuild publish packages {dest} --signing-key {} --arch {arch} --input-hash {input}\nfi\n",
        key.sh()
    )
}

/// The credentials a publish to `g.publish` reads, by secret name.
fn secret_names(g: &Graph) -> &'static [&'static str] {
    match g.publish.as_deref() {
        Some(d) if d.starts_with("s3://") => &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
        ],
        Some(d) if d.starts_with("gs://") => &["GOOGLE_SERVICE_ACCOUNT_KEY"],
        _ => &[],
    }
}

fn job_id(wave: usize, part: usize, parts: usize) -> String {
    if parts == 1 {
        format!("wave-{wave}")
    } else {
        format!("wave-{wave}-part-{}", part + 1)
    }
}

/// A GitHub Actions workflow.
pub fn github_actions(g: &Graph, o: &EmitOptions) -> String {
    let key_path = format!("${{{{ runner.temp }}}}/{}", o.key_name);
    let mut jobs = Hash::new();
    let mut previous: Vec<String> = Vec::new();
    for (w, wave) in g.waves.iter().enumerate() {
        let nodes: Vec<&Node> = wave
            .iter()
            .filter_map(|r| g.recipes.iter().find(|n| &n.recipe == r))
            .collect();
        let parts: Vec<&[&Node]> = nodes.chunks(MAX_MATRIX).collect();
        let mut ids = Vec::new();
        for (p, chunk) in parts.iter().enumerate() {
            let id = job_id(w, p, parts.len());
            let include = list(chunk.iter().map(|n| {
                map([
                    ("recipe", s(&n.recipe)),
                    ("name", s(&n.name)),
                    ("input_hash", s(&n.input_hash)),
                ])
            }));
            let mut publish_env = Hash::new();
            for var in secret_names(g) {
                publish_env.insert(s(var), s(&format!("${{{{ secrets.{var} }}}}")));
            }
            let steps = list([
                map([("uses", s("actions/checkout@v4"))]),
                map([
                    ("name", s("signing key")),
                    (
                        "env",
                        map([(
                            "PKGBUILD_SIGNING_KEY",
                            s("${{ secrets.PKGBUILD_SIGNING_KEY }}"),
                        )]),
                    ),
                    (
                        "run",
                        s(&format!(
                            "umask 077\nprintf '%s\\n' \"$PKGBUILD_SIGNING_KEY\" > \"{key_path}\"\nopenssl rsa -in \"{key_path}\" -pubout -out \"{key_path}.pub\"\n"
                        )),
                    ),
                ]),
                map([
                    ("name", s("build and publish ${{ matrix.name }}")),
                    ("env", Yaml::Hash(publish_env)),
                    (
                        "run",
                        s(&commands(
                            &V::Var("${{ matrix.recipe }}".into()),
                            &V::Var("${{ matrix.name }}".into()),
                            &V::Var("${{ matrix.input_hash }}".into()),
                            &V::Var(key_path.clone()),
                            g,
                            o,
                        )),
                    ),
                ]),
            ]);
            let mut job = Hash::new();
            job.insert(s("name"), s(&format!("wave {w}")));
            job.insert(s("runs-on"), s("ubuntu-latest"));
            if !previous.is_empty() {
                job.insert(s("needs"), list(previous.iter().map(|n| s(n))));
            }
            job.insert(
                s("strategy"),
                map([
                    ("fail-fast", Yaml::Boolean(false)),
                    ("matrix", map([("include", include)])),
                ]),
            );
            job.insert(s("steps"), steps);
            jobs.insert(s(&id), Yaml::Hash(job));
            ids.push(id);
        }
        previous = ids;
    }
    let doc = map([
        ("name", s("pkgbuild")),
        ("on", map([("workflow_dispatch", Yaml::Hash(Hash::new()))])),
        ("permissions", map([("contents", s("read"))])),
        ("jobs", Yaml::Hash(jobs)),
    ]);
    format!(
        "# Generated by `pkgbuild plan --format github-actions` for {}; regenerate rather than edit.\n{}",
        g.arch,
        dump(&doc).trim_start_matches("---\n")
    )
}

/// A recipe name as a DNS-1123 label fragment.
fn label(name: &str) -> String {
    let l: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    l.trim_matches('-').to_string()
}

/// A DNS-1123 task name for a recipe, unique within the graph: two
/// names that map to one label are told apart by their input hashes.
fn task_name(n: &Node, all: &[Node]) -> String {
    let base = label(&n.name);
    let clash = all.iter().filter(|m| label(&m.name) == base).count() > 1;
    let name = if clash {
        let hex = n.input_hash.trim_start_matches("sha256:");
        format!(
            "{}-{}",
            &base[..base.len().min(50)],
            &hex[..hex.len().min(8)]
        )
    } else {
        base
    };
    format!("r-{}", &name[..name.len().min(60)])
}

/// An Argo Workflows `Workflow`.
pub fn argo(g: &Graph, o: &EmitOptions) -> String {
    let key_path = format!("/var/run/pkgbuild/{}", o.key_name);
    let names: Vec<String> = g.recipes.iter().map(|n| task_name(n, &g.recipes)).collect();
    let tasks = list(g.recipes.iter().zip(&names).map(|(n, name)| {
        let mut t = Hash::new();
        t.insert(s("name"), s(name));
        t.insert(s("template"), s("build-recipe"));
        if !n.needs.is_empty() {
            let deps = n.needs.iter().filter_map(|r| {
                g.recipes
                    .iter()
                    .position(|m| &m.recipe == r)
                    .map(|i| s(&names[i]))
            });
            t.insert(s("dependencies"), list(deps));
        }
        t.insert(
            s("arguments"),
            map([(
                "parameters",
                list([
                    map([("name", s("recipe")), ("value", s(&n.recipe))]),
                    map([("name", s("name")), ("value", s(&n.name))]),
                    map([("name", s("input-hash")), ("value", s(&n.input_hash))]),
                ]),
            )]),
        );
        Yaml::Hash(t)
    }));
    let secret_env = list(secret_names(g).iter().map(|var| {
        map([
            ("name", s(var)),
            (
                "valueFrom",
                map([(
                    "secretKeyRef",
                    map([
                        ("name", s("pkgbuild-publish")),
                        ("key", s(var)),
                        ("optional", Yaml::Boolean(true)),
                    ]),
                )]),
            ),
        ])
    }));
    let script = format!(
        "set -eu\ncd /work\n{}",
        commands(
            &V::Var("{{inputs.parameters.recipe}}".into()),
            &V::Var("{{inputs.parameters.name}}".into()),
            &V::Var("{{inputs.parameters.input-hash}}".into()),
            &V::Lit(key_path.clone()),
            g,
            o,
        )
    );
    let build = map([
        ("name", s("build-recipe")),
        (
            "inputs",
            map([(
                "parameters",
                list([
                    map([("name", s("recipe"))]),
                    map([("name", s("input-hash"))]),
                ]),
            )]),
        ),
        (
            "container",
            map([
                ("image", s(&o.image)),
                ("command", list([s("sh"), s("-c")])),
                ("args", list([s(&script)])),
                ("env", secret_env),
                (
                    "volumeMounts",
                    list([map([
                        ("name", s("signing-key")),
                        ("mountPath", s("/var/run/pkgbuild")),
                        ("readOnly", Yaml::Boolean(true)),
                    ])]),
                ),
            ]),
        ),
    ]);
    let dag = map([("name", s("build-all")), ("dag", map([("tasks", tasks)]))]);
    let doc = map([
        ("apiVersion", s("argoproj.io/v1alpha1")),
        ("kind", s("Workflow")),
        ("metadata", map([("generateName", s("pkgbuild-"))])),
        (
            "spec",
            map([
                ("entrypoint", s("build-all")),
                (
                    "volumes",
                    list([map([
                        ("name", s("signing-key")),
                        ("secret", map([("secretName", s("pkgbuild-signing-key"))])),
                    ])]),
                ),
                ("templates", list([dag, build])),
            ]),
        ),
    ]);
    format!(
        "# Generated by `pkgbuild plan --format argo` for {}; regenerate rather than edit.\n{}",
        g.arch,
        dump(&doc).trim_start_matches("---\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: usize, wave: usize, needs: Vec<String>) -> Node {
        Node {
            recipe: format!("r/{i}.yaml"),
            name: format!("p{i}"),
            version: "1-r0".into(),
            packages: vec![format!("p{i}")],
            needs,
            wave,
            input_hash: format!("sha256:{:064x}", i),
        }
    }

    fn graph(width: usize) -> Graph {
        let mut recipes = vec![node(0, 0, vec![])];
        for i in 1..=width {
            recipes.push(node(i, 1, vec!["r/0.yaml".into()]));
        }
        let waves = vec![
            vec!["r/0.yaml".to_string()],
            recipes[1..].iter().map(|n| n.recipe.clone()).collect(),
        ];
        Graph {
            version: 1,
            arch: "x86_64".into(),
            publish: Some("s3://bucket/repo".into()),
            recipes,
            waves,
            skipped: vec![],
        }
    }

    #[test]
    fn a_wide_wave_is_split_into_jobs_of_at_most_256_entries() {
        let text = github_actions(&graph(600), &EmitOptions::default());
        let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
        let jobs = doc["jobs"].as_hash().unwrap();
        let ids: Vec<&str> = jobs.keys().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["wave-0", "wave-1-part-1", "wave-1-part-2", "wave-1-part-3"]
        );
        let sizes: Vec<usize> = ids[1..]
            .iter()
            .map(|id| {
                doc["jobs"][*id]["strategy"]["matrix"]["include"]
                    .as_vec()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [256, 256, 88]);
        for id in &ids[1..] {
            let needs = doc["jobs"][*id]["needs"].as_vec().unwrap();
            assert_eq!(needs, &[Yaml::String("wave-0".into())]);
        }
        assert!(!text.contains("BEGIN RSA"), "no secret is inlined");
        assert!(text.contains("${{ secrets.PKGBUILD_SIGNING_KEY }}"));
    }

    #[test]
    fn argo_tasks_depend_on_the_recipes_they_need() {
        let text = argo(&graph(2), &EmitOptions::default());
        let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
        assert_eq!(doc["kind"].as_str(), Some("Workflow"));
        let tasks = doc["spec"]["templates"][0]["dag"]["tasks"]
            .as_vec()
            .unwrap();
        assert_eq!(tasks.len(), 3);
        assert_eq!(tasks[1]["name"].as_str(), Some("r-p1"));
        assert_eq!(
            tasks[1]["dependencies"].as_vec().unwrap(),
            &[Yaml::String("r-p0".into())]
        );
        assert!(tasks[0]["dependencies"].is_badvalue());
    }

    #[test]
    fn output_is_deterministic() {
        let g = graph(5);
        let o = EmitOptions::default();
        assert_eq!(github_actions(&g, &o), github_actions(&g, &o));
        assert_eq!(argo(&g, &o), argo(&g, &o));
        assert_eq!(json(&g, &o), json(&g, &o));
    }
}
