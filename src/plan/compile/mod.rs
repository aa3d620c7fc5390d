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
//!
//! The work is split by concern, with imports running one way:
//! this file holds the phases (`compile_recipe`) and the package fields;
//! [`steps`] resolves `uses:` and compiles steps; [`checks`] holds the
//! recipe rules; [`stages`] turns `fetch`/`git-checkout` steps into typed
//! host stages; [`scope`] the substitution scope, `vars` and `range`.
//! `mod` → `steps` → {`checks`, `stages`} → `scope`.

mod checks;
mod scope;
mod stages;
mod steps;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::rc::Rc;

use crate::arch::{matches_target_architecture, Libc};
use crate::recipe::model::{self, Copyright, Recipe, Text, TextMap};
use crate::recipe::vars::{apply_transforms, VarTransform, VarsError};
use crate::recipe::{parse_yaml, read_bounded, validate, RecipeError};

use super::{
    CompileOptions, Contents, Dependencies, EnvironmentPlan, PackagePlan, Plan, Scriptlets, Trigger,
};
use checks::{check_names, check_package_rules, identity};
pub(crate) use scope::absolute_under;
pub(crate) use scope::Source;
use scope::{
    eval_if, expand_subpackages, lenient, merge_vars, read_vars_file, resolve_vars, scope_lookup,
    strict, Scope,
};
use steps::{with_build_account, Compiler, Frame};

/// A compile failure; displays as `file:line:col: message`.
pub type CompileError = RecipeError;

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

/// Compile an already-decoded recipe whose text is in `src`.
pub(crate) fn compile_recipe(
    src: Rc<Source>,
    mut recipe: Recipe,
    opts: &CompileOptions,
) -> Result<Plan, CompileError> {
    let mut c = Compiler::new(opts, src.clone());
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
        path: Some("pipeline".to_string()),
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

    for (k, inst) in instances.iter().enumerate() {
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
        let sub_base = Frame {
            path: Some(format!("subpackages[{k}].pipeline")),
            ..base.clone()
        };
        let steps = c.compile_steps(&sp.pipeline, &sub_base, &sub_scope, &mut needs)?;
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
    let mut host_stages = Vec::new();
    for p in &packages {
        stages::collect(&p.steps, &mut host_stages);
    }
    let host_stages = host_stages.into_iter().cloned().collect();
    Ok(Plan {
        host_stages,
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

#[cfg(test)]
mod tests {
    use super::checks::check_uses_name;
    use super::*;
    use crate::recipe::Pos;

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
