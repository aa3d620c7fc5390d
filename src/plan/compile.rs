//! Compile a recipe into a `Plan`, following melange's semantics.
//!
//! Order of work: read + decode the recipe; merge `--vars-file` and enabled
//! build options into `vars`; build the substitution scope (`package.*`,
//! `targets.*`, `build.*`, triplets, `vars.*`, `var-transforms`,
//! `options.*.enabled`, `targets.package.*`); expand `range` subpackages;
//! check names, versions, priorities, capabilities, copyright and CPE; then
//! compile every step: resolve `uses:` (each `--pipeline-dir` in order, then
//! the built-ins), bind inputs (declared only, required enforced, defaults
//! applied and substituted, checksums checked), decide `if:`, substitute
//! `runs`, `working-directory`, `needs.packages`, and inherit working
//! directory, environment and inputs into nested steps.
//!
//! Where melange substitutes strictly (an undefined variable is an error:
//! `runs`, `with`, `if`, `working-directory`, `needs`, dependencies,
//! package names, environment packages, `vars`), so do we. Where it only
//! does a lenient text replace (descriptions, step names, step environment,
//! scriptlets, repositories), unknown references are left as written.
//! Errors carry `file:line:col`; an error inside a `uses:` pipeline names
//! that pipeline's file and the recipe step that used it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use crate::arch::{matches_target_architecture, Libc};
use crate::recipe::model::{
    self, decode_pipeline, lookup, Copyright, Dx, Environment, Pipeline, Recipe, Subpackage, Test,
    Text, TextMap,
};
use crate::recipe::subst::{self, SubstError};
use crate::recipe::vars::{apply_transforms, VarTransform, VarsError};
use crate::recipe::{cond, parse_yaml, read_bounded, validate, Pos, RecipeError};

use super::{
    builtin, CompileOptions, Contents, Dependencies, EnvironmentPlan, PackagePlan, Plan,
    Scriptlets, Step, TestPlan, Trigger,
};

/// A compile failure; displays as `file:line:col: message`.
pub type CompileError = RecipeError;

/// `uses:` nesting deeper than this is treated as a loop.
const MAX_USES_DEPTH: usize = 32;
/// Chains of vars (or inputs) referring to each other stop here, so a
/// hostile recipe cannot exhaust the stack.
const MAX_REFERENCE_DEPTH: usize = 64;

/// Compile the recipe at `recipe_path`.
pub fn compile(recipe_path: &Path, opts: &CompileOptions) -> Result<Plan, CompileError> {
    let file = recipe_path.display().to_string();
    let text = read_bounded(recipe_path)?;
    let tree = parse_yaml(&file, &text)?;
    let recipe = model::decode_recipe(&file, &tree)?;
    compile_recipe(
        Rc::new(Source {
            name: file,
            recipe: true,
        }),
        recipe,
        opts,
    )
}

/// A file that recipe or pipeline text came from.
pub(crate) struct Source {
    name: String,
    /// True for the recipe itself (recipe-only rules apply to its steps).
    recipe: bool,
}

impl Source {
    fn err(&self, pos: Pos, message: impl Into<String>) -> RecipeError {
        RecipeError::new(&self.name, pos, message)
    }

    /// The position of byte `off` inside value `t`. Exact for one-line
    /// values and literal blocks (whose position is their first content
    /// character and whose lines share that indentation); folded text is
    /// approximated.
    fn locate(&self, t: &Text, off: usize) -> Pos {
        let off = off.min(t.value.len());
        let before = t.value.get(..off).unwrap_or("");
        let newlines = before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let chars = before[line_start..].chars().count();
        Pos {
            line: t.pos.line + newlines,
            col: t.pos.col + chars,
        }
    }

    fn subst_err(&self, t: &Text, e: &SubstError, what: &str) -> RecipeError {
        self.err(self.locate(t, e.offset), format!("{e} in {what}"))
    }
}

/// Variable name (without `${{ }}`) → value.
type Scope = HashMap<String, String>;

/// Substitute strictly: an undefined variable is an error at its position.
fn strict(
    src: &Source,
    t: &Text,
    what: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, RecipeError> {
    if !t.value.contains("${{") {
        return Ok(t.value.clone());
    }
    subst::substitute(&t.value, lookup).map_err(|e| src.subst_err(t, &e, what))
}

/// Substitute leniently, as melange's parse-time text replace does:
/// unknown or malformed references stay as written.
fn lenient(t: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if !t.contains("${{") {
        return t.to_string();
    }
    let mut out = String::with_capacity(t.len());
    let mut pos = 0;
    for (name, start) in subst::references(t) {
        let Some(end) = t[start..].find("}}").map(|e| start + e + 2) else {
            continue;
        };
        if start < pos {
            continue;
        }
        out.push_str(&t[pos..start]);
        match lookup(&name) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&t[start..end]),
        }
        pos = end;
    }
    out.push_str(&t[pos..]);
    out
}

fn scope_lookup(scope: &Scope) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| scope.get(name).cloned()
}

/// Join a working directory onto the build root unless it is absolute.
pub(crate) fn absolute_under(root: &str, wd: &str) -> String {
    if wd.starts_with('/') {
        return wd.to_string();
    }
    let wd = wd.trim_start_matches("./");
    if wd.is_empty() || wd == "." {
        return root.to_string();
    }
    format!(
        "{}/{}",
        root.trim_end_matches('/'),
        wd.trim_end_matches('/')
    )
}

/// A loaded `uses:` pipeline file.
struct Loaded {
    src: Rc<Source>,
    pipeline: Pipeline,
}

/// What an enclosing step hands to the steps inside it.
#[derive(Clone)]
struct Frame {
    inputs: HashMap<String, String>,
    workdir: String,
    env: BTreeMap<String, String>,
    src: Rc<Source>,
    /// Recipe-only rules (`with` needs `uses`, not both `uses` and `runs`).
    recipe_rules: bool,
    /// `uses` name and recipe step position, for errors inside pipeline files.
    origin: Option<(String, Pos)>,
    depth: usize,
}

struct Compiler<'o> {
    opts: &'o CompileOptions,
    recipe_src: Rc<Source>,
    loaded: HashMap<String, Rc<Loaded>>,
}

/// Compile an already-decoded recipe whose text is in `src`.
pub(crate) fn compile_recipe(
    src: Rc<Source>,
    mut recipe: Recipe,
    opts: &CompileOptions,
) -> Result<Plan, CompileError> {
    let mut c = Compiler {
        opts,
        recipe_src: src.clone(),
        loaded: HashMap::new(),
    };
    let root = opts.build_root.trim_end_matches('/').to_string();
    let root = if root.is_empty() {
        "/".to_string()
    } else {
        root
    };
    let outdir = format!("{}/melange-out", root.trim_end_matches('/'));

    // Build options: validate names, then merge their vars and packages.
    for name in &opts.build_options {
        if !recipe.options.iter().any(|(k, _)| k.value == *name) {
            let known: Vec<&str> = recipe.options.iter().map(|(k, _)| k.as_str()).collect();
            let hint = model::hint(name, &known, "the recipe defines no options");
            return Err(src.err(recipe.pos, format!("unknown build option `{name}`{hint}")));
        }
    }
    if let Some(vf) = &opts.vars_file {
        merge_vars(&mut recipe.vars, read_vars_file(vf)?);
    }
    let mut env_packages = recipe.environment.packages.clone();
    for (name, opt) in &recipe.options {
        if opts.build_options.contains(&name.value) {
            merge_vars(&mut recipe.vars, opt.vars.clone());
            env_packages.extend(opt.add_packages.iter().cloned());
            env_packages.retain(|p| !opt.remove_packages.iter().any(|r| r.value == p.value));
        }
    }

    let pkg = &recipe.package;
    let (name, version, epoch) = identity(&src, pkg, &recipe.vars)?;
    let full_version = format!("{version}-r{epoch}");
    let destdir = format!("{outdir}/{name}");
    let arch = opts.arch;

    let mut scope: Scope = HashMap::new();
    let mut set = |k: &str, v: String| {
        scope.insert(k.to_string(), v);
    };
    set("package.name", name.clone());
    set("package.version", version.clone());
    set("package.epoch", epoch.clone());
    set("package.full-version", full_version.clone());
    set("package.description", pkg.description.value.clone());
    set("package.srcdir", root.clone());
    set("targets.outdir", outdir.clone());
    set("targets.destdir", destdir.clone());
    set("targets.contextdir", destdir.clone());
    set("context.name", name.clone());
    set("host.triplet.gnu", arch.gnu_triplet(Libc::Glibc));
    set("host.triplet.rust", arch.rust_triplet(Libc::Glibc));
    set("cross.triplet.gnu.glibc", arch.gnu_triplet(Libc::Glibc));
    set("cross.triplet.gnu.musl", arch.gnu_triplet(Libc::Musl));
    set("cross.triplet.rust.glibc", arch.rust_triplet(Libc::Glibc));
    set("cross.triplet.rust.musl", arch.rust_triplet(Libc::Musl));
    set("build.arch", arch.apk().to_string());
    set("build.goarch", arch.go().to_string());
    for (k, _) in &recipe.options {
        let on = opts.build_options.contains(&k.value);
        set(&format!("options.{}.enabled", k.value), on.to_string());
    }
    let package_description = lenient(&pkg.description.value, &scope_lookup(&scope));
    scope.insert("package.description".into(), package_description.clone());
    resolve_vars(&src, &recipe.vars, &mut scope)?;
    let transforms: Vec<VarTransform> = recipe
        .var_transforms
        .iter()
        .map(|t| VarTransform {
            from: t.from.value.clone(),
            match_: t.match_.value.clone(),
            replace: t.replace.value.clone(),
            to: t.to.value.clone(),
        })
        .collect();
    let mut transformed = BTreeMap::new();
    apply_transforms(&transforms, &scope_lookup(&scope), &mut transformed).map_err(|e| {
        let index = match &e {
            VarsError::From { index, .. }
            | VarsError::BadRegex { index, .. }
            | VarsError::BadName { index, .. } => *index,
        };
        let pos = recipe
            .var_transforms
            .get(index)
            .map_or(recipe.pos, |t| t.from.pos);
        src.err(pos, e.to_string())
    })?;
    scope.extend(transformed);

    // Expand subpackages (range), then name every package for targets.package.*.
    let instances = expand_subpackages(&src, &recipe, &scope)?;
    check_names(&src, &name, &instances)?;
    scope.insert(format!("targets.package.{name}"), destdir.clone());
    for inst in &instances {
        scope.insert(
            format!("targets.package.{}", inst.name),
            format!("{outdir}/{}", inst.name),
        );
    }

    check_package_rules(&src, &recipe)?;

    // The build environment.
    let mut env_map = BTreeMap::new();
    for (k, v) in &recipe.environment.environment {
        env_map.insert(k.value.clone(), lenient(&v.value, &scope_lookup(&scope)));
    }
    for (k, v) in [
        ("HOME", root.clone()),
        ("GOPATH", format!("{root}/.cache/go")),
        ("GOMODCACHE", "/var/cache/melange/gomodcache".to_string()),
    ] {
        let e = env_map.entry(k.to_string()).or_default();
        if e.is_empty() {
            *e = v;
        }
    }
    // Tests see these too (melange's defaults included), so a recipe
    // emitted with the defaults written out compiles to the same tests.
    let top_env = env_map.clone();
    let mut needs = Vec::new();
    let base = Frame {
        inputs: HashMap::new(),
        workdir: root.clone(),
        env: env_map.clone(),
        src: src.clone(),
        recipe_rules: true,
        origin: None,
        depth: 0,
    };

    let target_architecture: Vec<String> = pkg
        .target_architecture
        .iter()
        .map(|t| lenient(&t.value, &scope_lookup(&scope)))
        .collect();
    let builds_for_arch = matches_target_architecture(&target_architecture, arch);

    let main_steps = c.compile_steps(&recipe.pipeline, &base, &scope, &mut needs)?;
    let main_test = recipe
        .test
        .as_ref()
        .map(|t| c.compile_test(t, &base, &top_env, &scope, &name))
        .transpose()?;
    let main_license = license_expression(&pkg.copyright);
    let lk = scope_lookup(&scope);
    let mut packages = vec![PackagePlan {
        name: name.clone(),
        version: version.clone(),
        epoch: epoch.clone(),
        full_version: full_version.clone(),
        description: package_description,
        url: lenient(&pkg.url.value, &lk),
        commit: pkg.commit.value.clone(),
        license: main_license.clone(),
        copyright: pkg.copyright.clone(),
        dependencies: dependencies(&src, &pkg.dependencies, &lk)?,
        options: pkg.options,
        scriptlets: scriptlets(&pkg.scriptlets, &lk),
        checks_disabled: texts(&pkg.checks_disabled),
        setcap: pkg.setcap.clone(),
        cpe: text_btree(&pkg.cpe),
        annotations: text_btree(&pkg.annotations),
        target_architecture: target_architecture.clone(),
        is_subpackage: false,
        destdir: destdir.clone(),
        steps: main_steps,
        test: main_test,
    }];
    drop(lk);

    for inst in &instances {
        let sp = inst.sp;
        let mut sub_scope = scope.clone();
        let subdir = format!("{outdir}/{}", inst.name);
        sub_scope.insert("subpkg.name".into(), inst.name.clone());
        sub_scope.insert("context.name".into(), inst.name.clone());
        sub_scope.insert("targets.subpkgdir".into(), subdir.clone());
        sub_scope.insert("targets.contextdir".into(), subdir.clone());
        if let Some((k, v)) = &inst.range {
            sub_scope.insert("range.key".into(), k.clone());
            sub_scope.insert("range.value".into(), v.clone());
        }
        let keep = match &sp.if_ {
            Some(cond_text) => eval_if(&src, cond_text, &scope_lookup(&sub_scope))?,
            None => true,
        };
        // melange compiles every subpackage (and gathers its needs) before
        // deciding `if:`, so errors in a dropped one still count.
        let steps = c.compile_steps(&sp.pipeline, &base, &sub_scope, &mut needs)?;
        let test = sp
            .test
            .as_ref()
            .map(|t| c.compile_test(t, &base, &top_env, &sub_scope, &inst.name))
            .transpose()?;
        if !keep {
            continue;
        }
        let lk = scope_lookup(&sub_scope);
        let license = if sp.copyright.is_empty() {
            main_license.clone()
        } else {
            license_expression(&sp.copyright)
        };
        packages.push(PackagePlan {
            name: inst.name.clone(),
            version: version.clone(),
            epoch: epoch.clone(),
            full_version: full_version.clone(),
            description: lenient(&sp.description.value, &lk),
            url: lenient(
                if sp.url.is_empty() {
                    &pkg.url.value
                } else {
                    &sp.url.value
                },
                &lk,
            ),
            commit: if sp.commit.is_empty() {
                pkg.commit.value.clone()
            } else {
                sp.commit.value.clone()
            },
            license,
            copyright: if sp.copyright.is_empty() {
                pkg.copyright.clone()
            } else {
                sp.copyright.clone()
            },
            dependencies: dependencies(&src, &sp.dependencies, &lk)?,
            options: sp.options,
            scriptlets: scriptlets(&sp.scriptlets, &lk),
            checks_disabled: texts(&sp.checks_disabled),
            setcap: sp.setcap.clone(),
            cpe: BTreeMap::new(),
            annotations: text_btree(&sp.annotations),
            target_architecture: target_architecture.clone(),
            is_subpackage: true,
            destdir: subdir,
            steps,
            test,
        });
    }

    let lk = scope_lookup(&scope);
    let mut pkgs = Vec::new();
    for p in &env_packages {
        pkgs.push(strict(&src, p, "environment.contents.packages", &lk)?);
    }
    pkgs.extend(needs);
    let environment = EnvironmentPlan {
        contents: Contents {
            repositories: recipe
                .environment
                .repositories
                .iter()
                .map(|t| lenient(&t.value, &lk))
                .collect(),
            keyring: recipe
                .environment
                .keyring
                .iter()
                .map(|t| lenient(&t.value, &lk))
                .collect(),
            packages: dedup_keep_order(pkgs),
        },
        environment: env_map,
        accounts: with_build_account(recipe.environment.accounts.clone()),
    };
    Ok(Plan {
        packages,
        environment,
        arch: arch.apk().to_string(),
        build_root: root,
        builds_for_arch,
        capabilities: super::CapabilitiesPlan {
            add: recipe
                .capabilities
                .add
                .iter()
                .map(|t| t.value.clone())
                .collect(),
            drop: recipe
                .capabilities
                .drop
                .iter()
                .map(|t| t.value.clone())
                .collect(),
        },
    })
}

/// The main package's checked name, version and epoch.
/// Like melange, `vars` may appear in the name and version (one level, as written).
fn identity(
    src: &Source,
    pkg: &model::Package,
    vars: &TextMap,
) -> Result<(String, String, String), RecipeError> {
    let lk = |n: &str| {
        let k = n.strip_prefix("vars.")?;
        lookup(vars, k).map(|t| t.value.clone())
    };
    let name = strict(src, &pkg.name, "package.name", &lk)?;
    if !validate::is_valid_package_name(&name) {
        return Err(src.err(
            pkg.name.pos,
            format!("invalid package name `{name}`: must match ^[A-Za-z0-9][A-Za-z0-9._+-]*$"),
        ));
    }
    let version = strict(src, &pkg.version, "package.version", &lk)?;
    if version.is_empty() {
        return Err(src.err(pkg.version.pos, "package.version must not be empty"));
    }
    if !validate::is_valid_version(&version) {
        return Err(src.err(
            pkg.version.pos,
            format!(
                "invalid version `{version}`: expected an apk version such as 1.2.3, 1.2.3a, 1.0_rc1 or 2.0_p1"
            ),
        ));
    }
    Ok((name, version, pkg.epoch.value.clone()))
}

/// `name-version-rEPOCH` of a recipe's main package. Only the recipe is
/// read and checked; `uses:` pipelines are not needed.
pub fn package_version(recipe_path: &Path) -> Result<String, CompileError> {
    let file = recipe_path.display().to_string();
    let text = read_bounded(recipe_path)?;
    let tree = parse_yaml(&file, &text)?;
    let recipe = model::decode_recipe(&file, &tree)?;
    let src = Source {
        name: file,
        recipe: true,
    };
    let (name, version, epoch) = identity(&src, &recipe.package, &recipe.vars)?;
    Ok(format!("{name}-{version}-r{epoch}"))
}

fn texts(v: &[Text]) -> Vec<String> {
    v.iter().map(|t| t.value.clone()).collect()
}

fn text_btree(m: &TextMap) -> BTreeMap<String, String> {
    m.iter()
        .map(|(k, v)| (k.value.clone(), v.value.clone()))
        .collect()
}

fn dedup_keep_order(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter()
        .filter(|s| !s.is_empty() && seen.insert(s.clone()))
        .collect()
}

fn merge_vars(into: &mut TextMap, from: TextMap) {
    for (k, v) in from {
        match into.iter_mut().find(|(ek, _)| ek.value == k.value) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}

/// `--vars-file`: a YAML mapping of names to text.
fn read_vars_file(path: &Path) -> Result<TextMap, RecipeError> {
    let name = path.display().to_string();
    let text = read_bounded(path)?;
    let tree = parse_yaml(&name, &text)?;
    Dx { file: &name }.text_map(Some(&tree), "vars file")
}

/// Resolve `vars` (which may refer to each other and to `package.*`) into `scope`.
fn resolve_vars(src: &Source, vars: &TextMap, scope: &mut Scope) -> Result<(), RecipeError> {
    let raw: HashMap<&str, &Text> = vars.iter().map(|(k, v)| (k.as_str(), v)).collect();
    fn resolve(
        name: &str,
        raw: &HashMap<&str, &Text>,
        scope: &mut Scope,
        stack: &mut Vec<String>,
        src: &Source,
    ) -> Result<(), RecipeError> {
        let key = format!("vars.{name}");
        if scope.contains_key(&key) && !stack.is_empty() {
            return Ok(());
        }
        let Some(t) = raw.get(name) else {
            return Ok(());
        };
        if stack.iter().any(|s| s == name) {
            return Err(src.err(t.pos, format!("`vars.{name}` refers to itself")));
        }
        if stack.len() >= MAX_REFERENCE_DEPTH {
            return Err(src.err(
                t.pos,
                format!("`vars.{name}`: variables refer to each other too deeply"),
            ));
        }
        stack.push(name.to_string());
        for (r, _) in subst::references(&t.value) {
            if let Some(dep) = r.strip_prefix("vars.") {
                if dep != name || !stack.is_empty() {
                    resolve(dep, raw, scope, stack, src)?;
                }
            }
        }
        stack.pop();
        let value = strict(src, t, &format!("`vars.{name}`"), &scope_lookup(scope))?;
        scope.insert(key, value);
        Ok(())
    }
    // Own values first, so a var never sees a stale definition of itself.
    for (k, _) in vars {
        scope.remove(&format!("vars.{}", k.value));
    }
    for (k, _) in vars {
        if !scope.contains_key(&format!("vars.{}", k.value)) {
            resolve(&k.value, &raw, scope, &mut Vec::new(), src)?;
        }
    }
    Ok(())
}

/// One subpackage after `range` expansion.
struct Instance<'r> {
    sp: &'r Subpackage,
    name: String,
    range: Option<(String, String)>,
}

fn expand_subpackages<'r>(
    src: &Source,
    recipe: &'r Recipe,
    scope: &Scope,
) -> Result<Vec<Instance<'r>>, RecipeError> {
    let mut out = Vec::new();
    for sp in &recipe.subpackages {
        // melange reads `range: ""` as no range at all.
        let Some(range) = sp.range.as_ref().filter(|r| !r.value.trim().is_empty()) else {
            let name = strict(src, &sp.name, "subpackage name", &scope_lookup(scope))?;
            out.push(Instance {
                sp,
                name,
                range: None,
            });
            continue;
        };
        // melange keys `data` by name, so a later entry of the same name wins.
        let Some(data) = recipe.data.iter().rfind(|d| d.name.value == range.value) else {
            let known: Vec<&str> = recipe.data.iter().map(|d| d.name.as_str()).collect();
            let hint = model::hint(&range.value, &known, "the recipe has no `data`");
            return Err(src.err(
                range.pos,
                format!(
                    "subpackage `{}` ranges over `{}`, but no `data` entry has that name{hint}",
                    sp.name.value, range.value
                ),
            ));
        };
        // melange iterates items in sorted key order (Go's byte-wise sort).
        let mut items: Vec<&(Text, Text)> = data.items.iter().collect();
        items.sort_by(|a, b| a.0.value.cmp(&b.0.value));
        for (k, v) in items {
            let lk = |n: &str| match n {
                "range.key" => Some(k.value.clone()),
                "range.value" => Some(v.value.clone()),
                _ => scope.get(n).cloned(),
            };
            let name = strict(src, &sp.name, "subpackage name", &lk)?;
            out.push(Instance {
                sp,
                name,
                range: Some((k.value.clone(), v.value.clone())),
            });
        }
    }
    Ok(out)
}

fn check_names(src: &Source, main: &str, instances: &[Instance]) -> Result<(), RecipeError> {
    let mut seen: HashMap<&str, Pos> = HashMap::new();
    for inst in instances {
        let pos = inst.sp.name.pos;
        if !validate::is_valid_package_name(&inst.name) {
            return Err(src.err(
                pos,
                format!(
                    "invalid subpackage name `{}`: must match ^[A-Za-z0-9][A-Za-z0-9._+-]*$",
                    inst.name
                ),
            ));
        }
        if inst.name == main {
            return Err(src.err(
                pos,
                format!(
                    "subpackage `{}` has the same name as the main package",
                    inst.name
                ),
            ));
        }
        if let Some(first) = seen.insert(&inst.name, pos) {
            return Err(src.err(
                pos,
                format!(
                    "duplicate subpackage name `{}` (first defined at line {})",
                    inst.name, first.line
                ),
            ));
        }
    }
    Ok(())
}

/// Capabilities melange knows how to set.
const VALID_CAPABILITIES: &[&str] = &[
    "cap_net_bind_service",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_sys_admin",
];

/// melange's `validate()` rules beyond names and versions.
fn check_package_rules(src: &Source, recipe: &Recipe) -> Result<(), RecipeError> {
    let pkg = &recipe.package;
    let mut deps = vec![&pkg.dependencies];
    deps.extend(recipe.subpackages.iter().map(|s| &s.dependencies));
    for d in deps {
        for p in [&d.provider_priority, &d.replaces_priority]
            .into_iter()
            .flatten()
        {
            if !p.value.contains("${{")
                && !p.value.trim().is_empty()
                && !validate::is_valid_priority(&p.value)
            {
                return Err(src.err(
                    p.pos,
                    format!("priority must be an integer, found `{}`", p.value),
                ));
            }
        }
    }
    let mut caps = vec![&pkg.setcap];
    caps.extend(recipe.subpackages.iter().map(|s| &s.setcap));
    for list in caps {
        for c in list {
            for (k, _) in &c.add {
                for cap in k.value.split(',') {
                    if !VALID_CAPABILITIES.contains(&cap) {
                        return Err(src.err(
                            k.pos,
                            format!(
                                "invalid capability `{cap}` for path `{}` (known: {})",
                                c.path.value,
                                VALID_CAPABILITIES.join(", ")
                            ),
                        ));
                    }
                }
            }
            if c.reason.is_empty() {
                return Err(src.err(
                    c.path.pos,
                    format!("setcap for `{}` needs a `reason`", c.path.value),
                ));
            }
        }
    }
    check_copyright(src, &pkg.copyright, "copyright", pkg.pos)?;
    check_cpe(src, &pkg.cpe, pkg.pos)
}

fn check_copyright(
    src: &Source,
    list: &[Copyright],
    path: &str,
    at: Pos,
) -> Result<(), RecipeError> {
    for (i, cp) in list.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let pos = if cp.license.pos == Pos::default() {
            at
        } else {
            cp.license.pos
        };
        let grouping = !cp.operator.is_empty() || !cp.licenses.is_empty();
        let simple = !cp.license.is_empty();
        if grouping && simple {
            return Err(src.err(
                pos,
                format!("{here}: give either `license` or `operator`/`licenses`, not both"),
            ));
        }
        if !grouping && !simple {
            return Err(src.err(pos, format!("{here}: missing `license`")));
        }
        if grouping {
            if !matches!(cp.operator.as_str(), "" | "AND" | "OR") {
                return Err(src.err(
                    cp.operator.pos,
                    format!(
                        "{here}: operator must be AND or OR, found `{}`",
                        cp.operator.value
                    ),
                ));
            }
            if cp.licenses.is_empty() {
                return Err(src.err(
                    pos,
                    format!("{here}: a group needs at least one entry in `licenses`"),
                ));
            }
            check_copyright(src, &cp.licenses, &format!("{here}.licenses"), pos)?;
        }
    }
    Ok(())
}

fn check_cpe(src: &Source, cpe: &TextMap, at: Pos) -> Result<(), RecipeError> {
    let get = |k: &str| lookup(cpe, k);
    if let Some(part) = get("part") {
        if !part.is_empty() && part.value != "a" {
            return Err(src.err(
                part.pos,
                format!("cpe.part must be `a`, found `{}`", part.value),
            ));
        }
    }
    let vendor = get("vendor").map_or("", Text::as_str);
    let product = get("product").map_or("", Text::as_str);
    if vendor.is_empty() != product.is_empty() {
        return Err(src.err(at, "cpe.vendor and cpe.product must be set together"));
    }
    for (k, v) in cpe {
        if k.value == "part" || v.is_empty() {
            continue;
        }
        let mut bytes = v.value.bytes();
        let first_ok = bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'_' | b'.' | b'-')
        });
        if !first_ok || !rest_ok {
            return Err(src.err(
                v.pos,
                format!(
                    "invalid cpe.{} `{}`: must match ^[a-z\\d][a-z\\d+_.-]*$",
                    k.value, v.value
                ),
            ));
        }
    }
    Ok(())
}

/// SPDX expression from copyright entries, as melange builds it: entries
/// joined with AND (or the shared operator when all are groups of one
/// kind), groups parenthesised when combined, duplicates dropped.
pub fn license_expression(list: &[Copyright]) -> String {
    fn single(cp: &Copyright, nested: bool) -> String {
        if !cp.operator.is_empty() && !cp.licenses.is_empty() {
            let parts: Vec<String> = cp
                .licenses
                .iter()
                .map(|c| single(c, true))
                .filter(|s| !s.is_empty())
                .collect();
            return match parts.len() {
                0 => String::new(),
                1 => parts.into_iter().next().unwrap_or_default(),
                _ => {
                    let joined = combine(parts, &cp.operator.value);
                    if nested {
                        format!("({joined})")
                    } else {
                        joined
                    }
                }
            };
        }
        cp.license.value.clone()
    }
    fn combine(parts: Vec<String>, op: &str) -> String {
        let parts = dedup_keep_order(parts);
        let op = if op == "OR" { "OR" } else { "AND" };
        parts.join(&format!(" {op} "))
    }
    let parts: Vec<String> = list
        .iter()
        .map(|c| single(c, list.len() > 1))
        .filter(|s| !s.is_empty())
        .collect();
    if parts.len() <= 1 {
        return parts.into_iter().next().unwrap_or_default();
    }
    let first_op = list.first().map_or("", |c| c.operator.as_str());
    let same_group = !first_op.is_empty()
        && list
            .iter()
            .all(|c| c.operator.value == first_op && !c.licenses.is_empty());
    combine(parts, if same_group { first_op } else { "AND" })
}

fn dependencies(
    src: &Source,
    d: &model::Dependencies,
    lk: &dyn Fn(&str) -> Option<String>,
) -> Result<Dependencies, RecipeError> {
    let list = |v: &[Text], what: &str| -> Result<Vec<String>, RecipeError> {
        v.iter().map(|t| strict(src, t, what, lk)).collect()
    };
    let prio = |p: &Option<Text>, what: &str| -> Result<Option<String>, RecipeError> {
        let Some(t) = p else { return Ok(None) };
        let v = strict(src, t, what, lk)?;
        // An empty priority (written so, or from an empty variable) is
        // absent, as melange skips it.
        if v.trim().is_empty() {
            return Ok(None);
        }
        if !validate::is_valid_priority(&v) {
            return Err(src.err(t.pos, format!("priority must be an integer, found `{v}`")));
        }
        Ok(Some(v))
    };
    Ok(Dependencies {
        runtime: list(&d.runtime, "dependencies.runtime")?,
        provides: list(&d.provides, "dependencies.provides")?,
        replaces: list(&d.replaces, "dependencies.replaces")?,
        provider_priority: prio(&d.provider_priority, "provider-priority")?,
        replaces_priority: prio(&d.replaces_priority, "replaces-priority")?,
    })
}

fn scriptlets(s: &model::Scriptlets, lk: &dyn Fn(&str) -> Option<String>) -> Scriptlets {
    let one = |t: &Option<Text>| t.as_ref().map(|t| lenient(&t.value, lk));
    Scriptlets {
        pre_install: one(&s.pre_install),
        post_install: one(&s.post_install),
        pre_deinstall: one(&s.pre_deinstall),
        post_deinstall: one(&s.post_deinstall),
        pre_upgrade: one(&s.pre_upgrade),
        post_upgrade: one(&s.post_upgrade),
        trigger: s.trigger.as_ref().map(|t| Trigger {
            script: lenient(&t.script.value, lk),
            paths: t.paths.iter().map(|p| lenient(&p.value, lk)).collect(),
        }),
    }
}

fn with_build_account(mut a: model::Accounts) -> model::Accounts {
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

/// Evaluate an `if:`; errors point at the column inside the condition.
fn eval_if(
    src: &Source,
    t: &Text,
    lk: &dyn Fn(&str) -> Option<String>,
) -> Result<bool, RecipeError> {
    cond::evaluate(&t.value, lk).map_err(|e| {
        let off = t
            .value
            .char_indices()
            .nth(e.column.saturating_sub(1))
            .map_or(t.value.len(), |(i, _)| i);
        src.err(
            src.locate(t, off),
            format!("invalid `if` condition: {}", e.message),
        )
    })
}

/// Reject `uses:` names that could escape a pipeline directory.
fn check_uses_name(src: &Source, uses: &Text) -> Result<(), RecipeError> {
    let n = uses.as_str();
    let bad = n.is_empty()
        || n.starts_with('/')
        || n.contains('\\')
        || n.contains('\0')
        || n.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(src.err(
            uses.pos,
            format!(
                "invalid pipeline name `{n}`: must be a relative name like `autoconf/make` (no `..`, no leading `/`)"
            ),
        ));
    }
    Ok(())
}

impl Compiler<'_> {
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

    fn compile_steps(
        &mut self,
        steps: &[Pipeline],
        frame: &Frame,
        scope: &Scope,
        needs: &mut Vec<String>,
    ) -> Result<Vec<Step>, RecipeError> {
        let mut out = Vec::new();
        for p in steps {
            if let Some(s) = self.compile_step(p, frame, scope, needs)? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn compile_test(
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
            return self.finish_step(p, cond, &src, frame, inputs, scope, needs, BTreeMap::new());
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
            .finish_step(&merged, cond, file, &inner, inputs, scope, needs, with)
            .map(|step| {
                step.map(|mut s| {
                    s.inlined = true;
                    s
                })
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
        }))
    }
}

/// Pipeline names under `dir` (for "did you mean" only; bounded walk).
fn list_pipelines(base: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) {
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

fn step_lookup<'a>(
    inputs: &'a HashMap<String, String>,
    scope: &'a Scope,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| match name.strip_prefix("inputs.") {
        Some(k) => inputs.get(k).cloned(),
        None => scope.get(name).cloned(),
    }
}

/// One declared input of a pipeline being used, before substitution.
struct RawInput {
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
fn own_inputs(
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
fn resolve_inputs(
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

fn environment_plan(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lic(license: &str) -> Copyright {
        Copyright {
            license: Text::new(license, Pos::default()),
            ..Copyright::default()
        }
    }

    fn group(op: &str, members: &[&str]) -> Copyright {
        Copyright {
            operator: Text::new(op, Pos::default()),
            licenses: members.iter().map(|m| lic(m)).collect(),
            ..Copyright::default()
        }
    }

    #[test]
    fn license_expression_joins_with_and_and_drops_duplicates() {
        assert_eq!(license_expression(&[]), "");
        assert_eq!(license_expression(&[lic("MIT")]), "MIT");
        assert_eq!(
            license_expression(&[lic("MIT"), lic("Apache-2.0"), lic("MIT")]),
            "MIT AND Apache-2.0"
        );
    }

    #[test]
    fn license_groups_are_parenthesised_when_combined() {
        assert_eq!(
            license_expression(&[group("OR", &["MIT", "Apache-2.0"])]),
            "MIT OR Apache-2.0"
        );
        assert_eq!(
            license_expression(&[group("OR", &["MIT", "Apache-2.0"]), lic("BSD-3-Clause")]),
            "(MIT OR Apache-2.0) AND BSD-3-Clause"
        );
        assert_eq!(
            license_expression(&[group("OR", &["A", "B"]), group("OR", &["C", "D"])]),
            "(A OR B) OR (C OR D)"
        );
    }

    #[test]
    fn working_directories_nest_under_the_parent_unless_absolute() {
        assert_eq!(absolute_under("/home/build", "src"), "/home/build/src");
        assert_eq!(absolute_under("/home/build", "./src/"), "/home/build/src");
        assert_eq!(absolute_under("/home/build", "."), "/home/build");
        assert_eq!(absolute_under("/home/build/a", "/opt"), "/opt");
    }

    #[test]
    fn pipeline_names_cannot_escape() {
        let src = Source {
            name: "r.yaml".into(),
            recipe: true,
        };
        for bad in ["../x", "/etc/x", "a/../b", "a//b", "", "a\\b", "./a"] {
            assert!(
                check_uses_name(&src, &Text::new(bad, Pos::default())).is_err(),
                "{bad}"
            );
        }
        for ok in ["fetch", "autoconf/make", "go/build/v2", "test/tw/ldd-check"] {
            assert!(
                check_uses_name(&src, &Text::new(ok, Pos::default())).is_ok(),
                "{ok}"
            );
        }
    }

    fn plan_of(yaml: &str, arch: crate::arch::Arch) -> Result<Plan, RecipeError> {
        let tree = parse_yaml("r.yaml", yaml)?;
        let recipe = model::decode_recipe("r.yaml", &tree)?;
        let opts = CompileOptions {
            arch,
            ..CompileOptions::default()
        };
        compile_recipe(
            Rc::new(Source {
                name: "r.yaml".into(),
                recipe: true,
            }),
            recipe,
            &opts,
        )
    }

    fn names(plan: &Plan) -> Vec<&str> {
        plan.packages.iter().map(|p| p.name.as_str()).collect()
    }

    const HEAD: &str = "package:\n  name: foo\n  version: 1.0\n";

    #[test]
    fn range_uses_the_last_data_entry_of_a_name_in_byte_order() {
        let plan = plan_of(
            &format!(
                "{HEAD}data:\n  - name: v\n    items: {{old: x}}\n  - name: v\n    items: {{b: 1, Z: 2, a10: 3, a9: 4}}\nsubpackages:\n  - range: v\n    name: foo-${{{{range.key}}}}\n"
            ),
            crate::arch::Arch::X86_64,
        )
        .unwrap();
        assert_eq!(names(&plan), ["foo", "foo-Z", "foo-a10", "foo-a9", "foo-b"]);
    }

    #[test]
    fn subpackage_if_sees_range_vars_arch_and_options() {
        let yaml = format!(
            "{HEAD}vars:\n  want: b\noptions:\n  extra: {{}}\ndata:\n  - name: v\n    items: {{a: '1', b: '2'}}\nsubpackages:\n  - range: v\n    name: foo-${{{{range.key}}}}\n    if: ${{{{range.key}}}} == ${{{{vars.want}}}}\n  - name: foo-x86\n    if: ${{{{build.arch}}}} == 'x86_64'\n  - name: foo-extra\n    if: ${{{{options.extra.enabled}}}} == 'true'\n"
        );
        let plan = plan_of(&yaml, crate::arch::Arch::X86_64).unwrap();
        assert_eq!(names(&plan), ["foo", "foo-b", "foo-x86"]);
        let plan = plan_of(&yaml, crate::arch::Arch::Aarch64).unwrap();
        assert_eq!(names(&plan), ["foo", "foo-b"]);
    }

    #[test]
    fn target_architecture_takes_apk_and_go_names() {
        let yaml = |list: &str| format!("{HEAD}  target-architecture: {list}\n");
        let on = |list: &str, arch| plan_of(&yaml(list), arch).unwrap().builds_for_arch;
        use crate::arch::Arch::*;
        assert!(on("[all]", S390x));
        assert!(on("[]", S390x));
        assert!(on("[x86_64, aarch64]", Aarch64));
        assert!(on("[amd64]", X86_64));
        assert!(!on("[arm64]", X86_64));
        assert!(!on("[aarch64, all]", X86_64));
        assert!(!on("[x86_64]", Riscv64));
    }

    #[test]
    fn an_input_that_substitutes_to_nothing_counts_as_not_given() {
        // Found by tests/fuzz.rs: an empty var passed to a required input
        // compiled, but the embedded `.melange.yaml` (empty inputs left
        // out) did not; and a default was skipped that the rebuild applied.
        let e = plan_of(
            &format!("{HEAD}vars:\n  none: ''\npipeline:\n  - uses: copy\n    with:\n      src: ${{{{vars.none}}}}\n"),
            crate::arch::Arch::X86_64,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("pipeline `copy` requires input `src`, but `${{vars.none}}` is empty"),
            "{e}"
        );
        let plan = plan_of(
            &format!("{HEAD}vars:\n  none: ''\npipeline:\n  - uses: strip\n    with:\n      opts: ${{{{vars.none}}}}\n"),
            crate::arch::Arch::X86_64,
        )
        .unwrap();
        assert_eq!(plan.packages[0].steps[0].with["opts"], "-g");
    }

    #[test]
    fn a_step_without_uses_gets_the_defaults_of_inputs_it_declares() {
        let plan = plan_of(
            &format!(
                "{HEAD}pipeline:\n  - inputs:\n      jobs: {{default: '4'}}\n      flags: {{default: '-j${{{{inputs.jobs}}}}'}}\n    runs: make ${{{{inputs.flags}}}}\n"
            ),
            crate::arch::Arch::X86_64,
        )
        .unwrap();
        assert_eq!(plan.packages[0].steps[0].runs.as_deref(), Some("make -j4"));
        let e = plan_of(
            &format!(
                "{HEAD}pipeline:\n  - inputs:\n      jobs: {{required: true}}\n    runs: make\n"
            ),
            crate::arch::Arch::X86_64,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r.yaml:6:7: step requires input `jobs`"),
            "{e}"
        );
    }

    #[test]
    fn test_environments_have_the_build_account_beside_their_own() {
        let plan = plan_of(
            &format!(
                "{HEAD}test:\n  environment:\n    accounts:\n      run-as: build\n      users:\n        - username: app\n          uid: 65532\n  pipeline:\n    - runs: id\n"
            ),
            crate::arch::Arch::X86_64,
        )
        .unwrap();
        let a = &plan.packages[0].test.as_ref().unwrap().environment.accounts;
        let users: Vec<(&str, &str)> = a
            .users
            .iter()
            .map(|u| (u.username.value.as_str(), u.uid.value.as_str()))
            .collect();
        assert_eq!(users, [("app", "65532"), ("build", "1000")]);
        assert!(a
            .groups
            .iter()
            .any(|g| g.groupname.value == "build" && g.gid.value == "1000"));
        assert_eq!(a.run_as.value, "build");
    }

    #[test]
    fn tests_see_the_recipe_environment_under_their_own() {
        let plan = plan_of(
            &format!(
                "{HEAD}environment:\n  environment:\n    FOO: bar\n    DIR: /var/${{{{package.name}}}}\ntest:\n  environment:\n    environment:\n      FOO: mine\n  pipeline:\n    - runs: id\nsubpackages:\n  - name: foo-sub\n    test:\n      pipeline:\n        - runs: id\n"
            ),
            crate::arch::Arch::X86_64,
        )
        .unwrap();
        let env = |i: usize| {
            plan.packages[i]
                .test
                .as_ref()
                .unwrap()
                .environment
                .environment
                .clone()
        };
        let pairs = |m: BTreeMap<String, String>| m.into_iter().collect::<Vec<_>>();
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let mine = pairs(env(0));
        assert!(mine.contains(&kv("FOO", "mine")) && mine.contains(&kv("DIR", "/var/foo")));
        assert!(pairs(env(1)).contains(&kv("FOO", "bar")));
        let step = &plan.packages[1].test.as_ref().unwrap().steps[0];
        assert_eq!(step.environment.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(
            step.environment.get("HOME").map(String::as_str),
            Some("/home/build")
        );
    }

    #[test]
    fn lenient_substitution_keeps_unknown_references() {
        let scope: Scope = [("a".to_string(), "1".to_string())].into();
        let lk = scope_lookup(&scope);
        assert_eq!(lenient("x ${{a}} ${{ b }} ${{", &lk), "x 1 ${{ b }} ${{");
        assert_eq!(lenient("${{ a }}${{a b}}", &lk), "1${{a b}}");
        assert_eq!(lenient("x ${{a}} ${{b}}", &lk), "x 1 ${{b}}");
    }
}
