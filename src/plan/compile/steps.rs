//! Step compilation: find `uses:` pipelines, bind their inputs, decide
//! `if:`, substitute the step's text and inherit working directory,
//! environment and inputs into nested steps.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;

use super::checks::check_uses_name;
use super::scope::{
    absolute_under, eval_if, lenient, scope_lookup, strict, Scope, Source, MAX_REFERENCE_DEPTH,
};
use super::stages;
use crate::plan::{builtin, CompileOptions, Contents, EnvironmentPlan, Step, TestPlan};
use crate::recipe::model::{self, decode_pipeline, lookup, Dx, Environment, Pipeline, Test, Text};
use crate::recipe::{parse_yaml, read_bounded, subst, validate, Pos, RecipeError};

/// `uses:` nesting deeper than this is treated as a loop.
pub(super) const MAX_USES_DEPTH: usize = 32;
/// A loaded `uses:` pipeline file.
pub(super) struct Loaded {
    src: Rc<Source>,
    pipeline: Pipeline,
}

/// What an enclosing step hands to the steps inside it.
#[derive(Clone)]
pub(super) struct Frame {
    pub(super) inputs: HashMap<String, String>,
    pub(super) workdir: String,
    pub(super) env: BTreeMap<String, String>,
    pub(super) src: Rc<Source>,
    /// Recipe-only rules (`with` needs `uses`, not both `uses` and `runs`).
    pub(super) recipe_rules: bool,
    /// `uses` name and recipe step position, for errors inside pipeline files.
    pub(super) origin: Option<(String, Pos)>,
    /// Host stage id prefix of the steps in this frame (`pipeline`,
    /// `subpackages[1].pipeline`); `None` where no host stages are made
    /// (tests, which `pkgbuild test` runs without host-side sources).
    pub(super) path: Option<String>,
    pub(super) depth: usize,
}

pub(super) struct Compiler<'o> {
    opts: &'o CompileOptions,
    recipe_src: Rc<Source>,
    loaded: HashMap<String, Rc<Loaded>>,
}

impl<'o> Compiler<'o> {
    pub(super) fn new(opts: &'o CompileOptions, recipe_src: Rc<Source>) -> Self {
        Compiler {
            opts,
            recipe_src,
            loaded: HashMap::new(),
        }
    }

    /// Find and parse a `uses:` pipeline: each `--pipeline-dir` in order, then built-ins.
    fn load(&mut self, src: &Source, uses: &Text) -> Result<Rc<Loaded>, RecipeError> {
        check_uses_name(src, uses)?;
        if let Some(l) = self.loaded.get(&uses.value) {
            return Ok(l.clone());
        }
        let mut found = None;
        for dir in &self.opts.pipeline_dirs {
            let path = dir.join(format!("{}.yaml", uses.value));
            if path.is_file() {
                found = Some((path.display().to_string(), read_bounded(&path)?));
                break;
            }
        }
        if found.is_none() {
            if let Some(text) = builtin::get(&uses.value) {
                found = Some((
                    format!("<built-in>/pipelines/{}.yaml", uses.value),
                    text.to_string(),
                ));
            }
        }
        let Some((name, text)) = found else {
            let dirs: Vec<String> = self
                .opts
                .pipeline_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            let searched = if dirs.is_empty() {
                "the built-in pipelines".to_string()
            } else {
                format!("{} and the built-in pipelines", dirs.join(", "))
            };
            let mut all: Vec<String> = builtin::names().map(str::to_string).collect();
            for dir in &self.opts.pipeline_dirs {
                list_pipelines(dir, dir, 0, &mut all);
            }
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            let hint = model::nearest(&uses.value, &all)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(src.err(
                uses.pos,
                format!(
                    "unknown pipeline `{}`: not found in {searched}{hint}",
                    uses.value
                ),
            ));
        };
        let tree = parse_yaml(&name, &text)?;
        let pipeline = decode_pipeline(&Dx { file: &name }, &tree, true)?;
        let loaded = Rc::new(Loaded {
            src: Rc::new(Source {
                name,
                recipe: false,
            }),
            pipeline,
        });
        self.loaded.insert(uses.value.clone(), loaded.clone());
        Ok(loaded)
    }

    pub(super) fn compile_steps(
        &mut self,
        steps: &[Pipeline],
        frame: &Frame,
        scope: &Scope,
        needs: &mut Vec<String>,
    ) -> Result<Vec<Step>, RecipeError> {
        let mut out = Vec::new();
        for (i, p) in steps.iter().enumerate() {
            // Numbered as written, so a false `if:` does not renumber the rest.
            let id = frame.path.as_ref().map(|path| format!("{path}[{i}]"));
            if let Some(s) = self.compile_step(p, frame, scope, needs, id.as_deref())? {
                out.push(s);
            }
        }
        Ok(out)
    }

    pub(super) fn compile_test(
        &mut self,
        t: &Test,
        base: &Frame,
        top_env: &BTreeMap<String, String>,
        scope: &Scope,
        package: &str,
    ) -> Result<TestPlan, RecipeError> {
        let src = self.recipe_src.clone();
        let lk = scope_lookup(scope);
        let env = &t.environment;
        // Tests see the recipe's top-level variables, as melange's do;
        // the test's own win.
        let mut env_map = top_env.clone();
        for (k, v) in &env.environment {
            env_map.insert(k.value.clone(), lenient(&v.value, &lk));
        }
        // Tests run in their own environment, not the build's.
        let mut frame = base.clone();
        frame.env = env_map.clone();
        // melange does not apply recipe-only step rules to tests.
        frame.recipe_rules = false;
        frame.path = None;
        let mut needs = Vec::new();
        let steps = self.compile_steps(&t.pipeline, &frame, scope, &mut needs)?;
        let mut pkgs = Vec::new();
        for p in &env.packages {
            pkgs.push(strict(&src, p, "test.environment.contents.packages", &lk)?);
        }
        pkgs.extend(needs);
        pkgs.push(package.to_string());
        pkgs.sort();
        pkgs.dedup();
        pkgs.retain(|p| !p.is_empty());
        Ok(TestPlan {
            environment: environment_plan(env, pkgs, env_map, &lk),
            steps,
        })
    }

    fn compile_step(
        &mut self,
        p: &Pipeline,
        frame: &Frame,
        scope: &Scope,
        needs: &mut Vec<String>,
        id: Option<&str>,
    ) -> Result<Option<Step>, RecipeError> {
        let src = frame.src.clone();
        if frame.recipe_rules {
            if p.has_with && p.uses.is_none() {
                return Err(src.err(p.pos, "step has `with` but no `uses`"));
            }
            if let (Some(u), Some(_)) = (&p.uses, &p.runs) {
                return Err(src.err(
                    p.pos,
                    format!("step cannot have both `uses: {}` and `runs`", u.value),
                ));
            }
        }
        if frame.depth > MAX_USES_DEPTH {
            return Err(src.err(
                p.pos,
                "pipelines nest too deeply (does a pipeline use itself?)",
            ));
        }
        // melange treats `uses` next to an explicit `pipeline:` as a note only.
        let uses = p.uses.as_ref().filter(|_| p.pipeline.is_empty());
        let Some(uses) = uses else {
            let cond = p.if_.as_ref().map(|c| (c, src.clone()));
            let inputs = own_inputs(p, &src, frame, scope)?;
            return self.finish_step(
                p,
                cond,
                &src,
                frame,
                inputs,
                scope,
                needs,
                BTreeMap::new(),
                id,
            );
        };
        let loaded = self.load(&src, uses)?;
        let file = &loaded.src;
        let declared = &loaded.pipeline.inputs;
        for (k, _) in &p.with {
            if !declared.iter().any(|(d, _)| d.value == k.value) {
                let names: Vec<&str> = declared.iter().map(|(d, _)| d.as_str()).collect();
                let hint = model::hint(&k.value, &names, "it declares no inputs");
                return Err(src.err(
                    k.pos,
                    format!(
                        "unknown input `{}` for pipeline `{}`{hint}",
                        k.value, uses.value
                    ),
                ));
            }
        }
        // Raw value of every declared input: the caller's, else the default.
        let mut raw: Vec<RawInput> = Vec::new();
        for (k, input) in declared {
            let given = lookup(&p.with, &k.value).filter(|v| !v.is_empty());
            let (t, from, by_caller) = match (given, &input.default) {
                (Some(v), _) => (v.clone(), src.clone(), true),
                (None, Some(d)) if !d.is_empty() => (d.clone(), file.clone(), false),
                _ => (Text::new("", p.pos), src.clone(), true),
            };
            if input.required && t.is_empty() {
                return Err(src.err(
                    p.pos,
                    format!("pipeline `{}` requires input `{}`", uses.value, k.value),
                ));
            }
            raw.push(RawInput {
                name: k.value.clone(),
                text: t,
                from,
                by_caller,
            });
        }
        let mut own = resolve_inputs(&raw, frame, scope)?;
        // A value that substitutes to nothing counts as not given, like an
        // empty one written out: the default applies and a required input
        // is missing. Otherwise the embedded `.melange.yaml`, which leaves
        // empty inputs out, would compile differently (found by fuzzing).
        let mut defaulted = false;
        for (r, (_, input)) in raw.iter_mut().zip(declared) {
            let empty = own.get(&r.name).is_some_and(|v| v.is_empty());
            if !(r.by_caller && empty && !r.text.is_empty()) {
                continue;
            }
            if input.required {
                return Err(src.err(
                    r.text.pos,
                    format!(
                        "pipeline `{}` requires input `{}`, but `{}` is empty",
                        uses.value, r.name, r.text.value
                    ),
                ));
            }
            if let Some(d) = input.default.as_ref().filter(|d| !d.is_empty()) {
                *r = RawInput {
                    name: r.name.clone(),
                    text: d.clone(),
                    from: file.clone(),
                    by_caller: false,
                };
                defaulted = true;
            }
        }
        if defaulted {
            own = resolve_inputs(&raw, frame, scope)?;
        }
        for RawInput {
            name: k,
            text: t,
            from,
            ..
        } in &raw
        {
            if let Some(v) = own.get(k) {
                if let Err(msg) = validate::check_checksum(k, v) {
                    return Err(from.err(t.pos, msg));
                }
            }
        }
        let mut inputs = frame.inputs.clone();
        inputs.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        let with: BTreeMap<String, String> = own.into_iter().collect();

        // The pipeline file's fields override the step's, as decoding the
        // file over the step does in melange; the step keeps its name.
        let mut merged = loaded.pipeline.clone();
        merged.name = p.name.clone();
        merged.uses = p.uses.clone();
        let mut env_over = BTreeMap::new();
        let lk = step_lookup(&frame.inputs, scope);
        for (k, v) in &p.environment {
            env_over.insert(k.value.clone(), lenient(&v.value, &lk));
        }
        let mut inner = frame.clone();
        inner.depth += 1;
        inner.recipe_rules = false;
        if inner.origin.is_none() {
            inner.origin = Some((uses.value.clone(), p.pos));
        }
        if let Some(wd) = &p.working_directory {
            let v = strict(&src, wd, "working-directory", &lk)?;
            inner.workdir = absolute_under(&frame.workdir, &v);
        }
        inner.env.extend(env_over.clone());
        inner.src = file.clone();
        let origin = inner.origin.clone();
        let recipe_file = self.recipe_src.name.clone();
        let cond = match &loaded.pipeline.if_ {
            Some(c) => Some((c, file.clone())),
            None => p.if_.as_ref().map(|c| (c, src.clone())),
        };
        let result = self
            .finish_step(&merged, cond, file, &inner, inputs, scope, needs, with, id)
            .and_then(|step| {
                let Some(mut s) = step else { return Ok(None) };
                s.inlined = true;
                if let Some(id) = id {
                    s.host = stages::host_stage(&s, p, &src, id)?;
                }
                Ok(Some(s))
            });
        result.map_err(|mut e| {
            if let Some((name, at)) = origin {
                if e.file != recipe_file && !e.message.contains(" used at ") {
                    e.message = format!(
                        "{} (in pipeline `{name}` used at {recipe_file}:{}:{})",
                        e.message, at.line, at.col
                    );
                }
            }
            e
        })
    }

    /// Decide `if`, substitute the step's text and compile nested steps.
    /// `p` holds the effective fields (a loaded file's, for `uses`) whose
    /// text came from `src`; `cond` is the `if:` and the file it is in.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &mut self,
        p: &Pipeline,
        cond: Option<(&Text, Rc<Source>)>,
        src: &Rc<Source>,
        frame: &Frame,
        inputs: HashMap<String, String>,
        scope: &Scope,
        needs: &mut Vec<String>,
        with: BTreeMap<String, String>,
        id: Option<&str>,
    ) -> Result<Option<Step>, RecipeError> {
        let lk = step_lookup(&inputs, scope);
        if let Some((c, cond_src)) = cond {
            if !eval_if(&cond_src, c, &lk)? {
                return Ok(None);
            }
        }
        let mut workdir = frame.workdir.clone();
        if let Some(wd) = &p.working_directory {
            let v = strict(src, wd, "working-directory", &lk)?;
            workdir = absolute_under(&frame.workdir, &v);
        }
        let mut env = frame.env.clone();
        for (k, v) in &p.environment {
            env.insert(k.value.clone(), lenient(&v.value, &lk));
        }
        let runs = match &p.runs {
            Some(t) => Some(strict(src, t, "runs", &lk)?),
            None => None,
        };
        let mut step_needs = Vec::new();
        for n in &p.needs_packages {
            step_needs.push(strict(src, n, "needs.packages", &lk)?);
        }
        needs.extend(step_needs.iter().cloned());
        let inner = Frame {
            inputs: inputs.clone(),
            workdir: workdir.clone(),
            env: env.clone(),
            src: src.clone(),
            recipe_rules: frame.recipe_rules && src.recipe,
            origin: frame.origin.clone(),
            depth: frame.depth,
            path: id.map(|id| format!("{id}.pipeline")),
        };
        let nested = self.compile_steps(&p.pipeline, &inner, scope, needs)?;
        let lk = step_lookup(&inner.inputs, scope);
        Ok(Some(Step {
            name: p.name.as_ref().map(|n| lenient(&n.value, &lk)),
            uses: p.uses.as_ref().map(|u| u.value.clone()),
            with,
            runs,
            working_directory: workdir,
            environment: env,
            pipeline: nested,
            needs_packages: step_needs,
            inlined: false,
            host: None,
        }))
    }
}

/// Pipeline names under `dir` (for "did you mean" only; bounded walk).
pub(super) fn list_pipelines(base: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten().take(10_000) {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() && depth < 8 {
            list_pipelines(base, &p, depth + 1, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            if let Ok(rel) = p.with_extension("").strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
}

pub(super) fn step_lookup<'a>(
    inputs: &'a HashMap<String, String>,
    scope: &'a Scope,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| match name.strip_prefix("inputs.") {
        Some(k) => inputs.get(k).cloned(),
        None => scope.get(name).cloned(),
    }
}

/// One declared input of a pipeline being used, before substitution.
pub(super) struct RawInput {
    name: String,
    text: Text,
    from: Rc<Source>,
    /// Written by the caller in `with:` (its `${{inputs.*}}` are the
    /// caller's own inputs), rather than the pipeline's default (whose
    /// `${{inputs.*}}` are this pipeline's other inputs).
    by_caller: bool,
}

/// The inputs a step without `uses` sees: its enclosing ones, plus the
/// defaults of any it declares itself (melange applies declared defaults
/// and `required` to every step, not only to loaded pipelines).
pub(super) fn own_inputs(
    p: &Pipeline,
    src: &Rc<Source>,
    frame: &Frame,
    scope: &Scope,
) -> Result<HashMap<String, String>, RecipeError> {
    let mut inputs = frame.inputs.clone();
    if p.inputs.is_empty() {
        return Ok(inputs);
    }
    let mut raw = Vec::new();
    for (k, input) in &p.inputs {
        if frame.inputs.get(&k.value).is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let t = input
            .default
            .clone()
            .unwrap_or_else(|| Text::new("", k.pos));
        if input.required && t.is_empty() {
            return Err(src.err(
                k.pos,
                format!("step requires input `{}`, which nothing sets", k.value),
            ));
        }
        raw.push(RawInput {
            name: k.value.clone(),
            text: t,
            from: src.clone(),
            by_caller: false,
        });
    }
    inputs.extend(resolve_inputs(&raw, frame, scope)?);
    Ok(inputs)
}

/// Resolve one pipeline's inputs. A default may refer to other inputs of
/// the same pipeline (resolved first) or of enclosing pipelines; a value the
/// caller passed refers to the caller's inputs only, so the common
/// pass-through `X: ${{inputs.X}}` is not a self-reference (as in melange).
pub(super) fn resolve_inputs(
    raw: &[RawInput],
    frame: &Frame,
    scope: &Scope,
) -> Result<HashMap<String, String>, RecipeError> {
    let mut done: HashMap<String, String> = HashMap::new();
    fn go(
        i: usize,
        raw: &[RawInput],
        frame: &Frame,
        scope: &Scope,
        done: &mut HashMap<String, String>,
        stack: &mut Vec<usize>,
    ) -> Result<(), RecipeError> {
        let input = &raw[i];
        let (k, t, from) = (&input.name, &input.text, &input.from);
        if done.contains_key(k) {
            return Ok(());
        }
        if stack.contains(&i) {
            return Err(from.err(t.pos, format!("input `{k}` refers to itself")));
        }
        if stack.len() >= MAX_REFERENCE_DEPTH {
            return Err(from.err(
                t.pos,
                format!("input `{k}`: inputs refer to each other too deeply"),
            ));
        }
        if !input.by_caller {
            stack.push(i);
            for (r, _) in subst::references(&t.value) {
                if let Some(dep) = r.strip_prefix("inputs.") {
                    if let Some(j) = raw.iter().position(|x| x.name == dep) {
                        go(j, raw, frame, scope, done, stack)?;
                    }
                }
            }
            stack.pop();
        }
        let by_caller = input.by_caller;
        let lk = |name: &str| match name.strip_prefix("inputs.") {
            Some(n) if by_caller => frame.inputs.get(n).cloned(),
            Some(n) => done.get(n).or_else(|| frame.inputs.get(n)).cloned(),
            None => scope.get(name).cloned(),
        };
        let v = strict(from, t, &format!("input `{k}`"), &lk)?;
        done.insert(k.clone(), v);
        Ok(())
    }
    for i in 0..raw.len() {
        go(i, raw, frame, scope, &mut done, &mut Vec::new())?;
    }
    Ok(done)
}

pub(super) fn environment_plan(
    env: &Environment,
    packages: Vec<String>,
    environment: BTreeMap<String, String>,
    lk: &dyn Fn(&str) -> Option<String>,
) -> EnvironmentPlan {
    EnvironmentPlan {
        contents: Contents {
            repositories: env
                .repositories
                .iter()
                .map(|t| lenient(&t.value, lk))
                .collect(),
            keyring: env.keyring.iter().map(|t| lenient(&t.value, lk)).collect(),
            packages,
        },
        environment,
        // melange creates its `build` account in test environments too.
        accounts: with_build_account(env.accounts.clone()),
    }
}

pub(super) fn with_build_account(mut a: model::Accounts) -> model::Accounts {
    if !a.groups.iter().any(|g| g.groupname.value == "build") {
        a.groups.push(model::Group {
            groupname: Text::new("build", Pos::default()),
            gid: Text::new("1000", Pos::default()),
            members: vec![Text::new("build", Pos::default())],
        });
    }
    if !a.users.iter().any(|u| u.username.value == "build") {
        a.users.push(model::User {
            username: Text::new("build", Pos::default()),
            uid: Text::new("1000", Pos::default()),
            gid: Text::new("1000", Pos::default()),
            ..model::User::default()
        });
    }
    a
}
