//! Write a compiled `Plan` back out as a melange-schema recipe, the text
//! that travels in every package as `.melange.yaml` "for rebuilds and
//! audits". Feeding it to `pkgbuild build` again (same arch, same build
//! root, same `--pipeline-dir`) compiles to the same plan.
//!
//! What the plan already decided is written as its outcome: `range`
//! subpackages are expanded, `if:` conditions are gone (false steps and
//! subpackages are simply absent), `vars`, `var-transforms`, `data` and
//! build `options` are spent, and every `${{...}}` is substituted. A
//! `uses:` step is written as `uses` + `with` (every resolved input), not
//! as the pipeline it was inlined into, so the recipe stays readable and
//! the rebuild reads the pipeline file again.
//!
//! Two things need care because the rebuild substitutes again:
//! - A substituted text can still hold `${{` (a literal the recipe kept, or
//!   one that came in through a value). There is no escape syntax, but a
//!   value is never re-scanned, so `${{` is written as
//!   `${{vars.pkgbuild-dollar}}{{` with that var set to `$`.
//! - The main package's description is substituted before `vars` exist,
//!   so it cannot use that trick; a description that would come out
//!   different is refused (`EmitError`), which takes a description that
//!   quotes its own `${{package.description}}`.
//!
//! The YAML is written by hand: keys in a fixed order, scalars plain only
//! when no YAML reader could take them for anything but that text,
//! otherwise double-quoted, and multi-line shell text as literal blocks.

use std::collections::BTreeMap;

use crate::recipe::model::{Accounts, Copyright, PackageOptions, SetCap};
use crate::recipe::subst;

use super::compile::absolute_under;
use super::{
    Contents, Dependencies, EnvironmentPlan, PackagePlan, Plan, Scriptlets, Step, TestPlan,
};

/// The var that stands for a literal `$` in escaped text.
const DOLLAR_VAR: &str = "pkgbuild-dollar";
/// How a literal `${{` is written: the var gives `$`, and the `{{` after
/// it is never scanned again.
const ESCAPED_OPEN: &str = "${{vars.pkgbuild-dollar}}{{";

/// Names the main description is substituted with (`package.*`,
/// `targets.*`, ... are set before `vars`; see `compile_recipe`). A
/// reference to one of these would be replaced again on a rebuild.
const EARLY_SCOPE_PREFIXES: &[&str] = &[
    "package.", "targets.", "context.", "host.", "cross.", "build.", "options.",
];

/// Why a plan cannot be written back as a recipe that compiles to it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("the plan has no package")]
    NoPackage,
    #[error(
        "package {package}: description `{text}` still refers to `${{{{{name}}}}}` after substitution; \
         an embedded recipe could not reproduce it (write the description without that reference)"
    )]
    DescriptionReference {
        package: String,
        name: String,
        text: String,
    },
}

/// The plan as recipe YAML (see the module docs for what round-trips).
pub fn recipe_yaml(plan: &Plan) -> Result<String, EmitError> {
    let main = plan.packages.first().ok_or(EmitError::NoPackage)?;
    for (name, _) in subst::references(&main.description) {
        if EARLY_SCOPE_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return Err(EmitError::DescriptionReference {
                package: main.name.clone(),
                name,
                text: main.description.clone(),
            });
        }
    }
    let mut e = Emitter::default();
    let package = e.package(main);
    let environment = e.environment(&plan.environment);
    let build = Parent {
        workdir: &plan.build_root,
        env: &plan.environment.environment,
    };
    let pipeline = e.steps(&main.steps, &build);
    let subpackages: Vec<Y> = plan.packages[1..]
        .iter()
        .map(|p| Y::M(e.subpackage(p, main, plan)))
        .collect();
    let test = main.test.as_ref().map(|t| e.test(t, plan));

    let mut root = Map::default();
    root.map("package", package);
    root.map("environment", environment);
    // Taken as written (never substituted), so written back unescaped.
    let mut caps = Map::default();
    caps.strs("add", &plan.capabilities.add);
    caps.strs("drop", &plan.capabilities.drop);
    root.map("capabilities", caps);
    if e.dollar {
        let mut vars = Map::default();
        vars.str(DOLLAR_VAR, "$");
        root.map("vars", vars);
    }
    // A recipe needs `pipeline:` even when it is empty.
    root.0.push(("pipeline".into(), pipeline));
    root.list("subpackages", subpackages);
    if let Some(t) = test {
        root.map("test", t);
    }
    let mut out = String::from(
        "# Compiled by pkgbuild: conditions decided, ranges expanded, every ${{...}}\n\
         # substituted. `pkgbuild build` on this file, for the same arch and with the\n\
         # same --pipeline-dir, rebuilds the same packages (no build options needed).\n",
    );
    render_map(&mut out, &root.0, 0, false);
    Ok(out)
}

/// A YAML value in the making.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Y {
    S(String),
    /// A field melange reads into an integer (`epoch`, `uid`, `gid`): plain
    /// when it is a decimal number, so Go's yaml decodes it, else quoted.
    N(String),
    B(bool),
    L(Vec<Y>),
    M(Vec<(String, Y)>),
}

/// An ordered mapping whose helpers leave out what is empty, so the recipe
/// only says what differs from melange's defaults.
#[derive(Default)]
struct Map(Vec<(String, Y)>);

impl Map {
    fn str(&mut self, k: &str, v: &str) {
        self.0.push((k.into(), Y::S(v.into())));
    }
    fn int(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.0.push((k.into(), Y::N(v.into())));
        }
    }
    fn nonempty(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.str(k, v);
        }
    }
    fn opt(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    fn flag(&mut self, k: &str, v: bool) {
        if v {
            self.0.push((k.into(), Y::B(true)));
        }
    }
    fn list(&mut self, k: &str, v: Vec<Y>) {
        if !v.is_empty() {
            self.0.push((k.into(), Y::L(v)));
        }
    }
    fn strs(&mut self, k: &str, v: &[String]) {
        self.list(k, v.iter().map(|s| Y::S(s.clone())).collect());
    }
    fn map(&mut self, k: &str, v: Map) {
        if !v.0.is_empty() {
            self.0.push((k.into(), Y::M(v.0)));
        }
    }
    fn pairs<'a>(&mut self, k: &str, v: impl IntoIterator<Item = (&'a String, String)>) {
        let mut m = Map::default();
        for (key, val) in v {
            m.0.push((key.clone(), Y::S(val)));
        }
        self.map(k, m);
    }
}

/// What a step inherits from where it sits: anything equal to it is left
/// out of the step.
struct Parent<'a> {
    workdir: &'a str,
    env: &'a BTreeMap<String, String>,
}

#[derive(Default)]
struct Emitter {
    /// Some text needed `${{` escaped, so `vars.pkgbuild-dollar` must exist.
    dollar: bool,
}

impl Emitter {
    /// Text the rebuild substitutes again, with any literal `${{` escaped.
    fn esc(&mut self, s: &str) -> String {
        if s.contains("${{") {
            self.dollar = true;
            s.replace("${{", ESCAPED_OPEN)
        } else {
            s.to_string()
        }
    }

    fn escs(&mut self, v: &[String]) -> Vec<String> {
        v.iter().map(|s| self.esc(s)).collect()
    }

    fn package(&mut self, p: &PackagePlan) -> Map {
        let mut m = Map::default();
        m.str("name", &p.name);
        m.str("version", &p.version);
        m.int("epoch", &p.epoch);
        // Substituted without vars in scope; checked in `recipe_yaml`.
        m.nonempty("description", &p.description);
        let url = self.esc(&p.url);
        m.nonempty("url", &url);
        // commit, copyright, checks, cpe, setcap and annotations are never
        // substituted, so they are written as they are.
        m.nonempty("commit", &p.commit);
        let ta = self.escs(&p.target_architecture);
        m.strs("target-architecture", &ta);
        m.list("copyright", copyrights(&p.copyright));
        self.package_common(&mut m, p);
        m.pairs("cpe", p.cpe.iter().map(|(k, v)| (k, v.clone())));
        m
    }

    /// The keys a package and a subpackage share, in the same order.
    fn package_common(&mut self, m: &mut Map, p: &PackagePlan) {
        m.map("dependencies", self.dependencies(&p.dependencies));
        m.map("options", options(&p.options));
        m.map("scriptlets", self.scriptlets(&p.scriptlets));
        let mut checks = Map::default();
        checks.strs("disabled", &p.checks_disabled);
        m.map("checks", checks);
        m.list("setcap", p.setcap.iter().map(setcap).collect());
        m.pairs(
            "annotations",
            p.annotations.iter().map(|(k, v)| (k, v.clone())),
        );
    }

    fn subpackage(&mut self, p: &PackagePlan, main: &PackagePlan, plan: &Plan) -> Vec<(String, Y)> {
        let mut m = Map::default();
        m.str("name", &p.name);
        let d = self.esc(&p.description);
        m.nonempty("description", &d);
        // Left out, url, commit and copyright are inherited from the main
        // package, so they are only written where they differ.
        if p.url != main.url {
            let url = self.esc(&p.url);
            m.nonempty("url", &url);
        }
        if p.commit != main.commit {
            m.nonempty("commit", &p.commit);
        }
        let cp = copyrights(&p.copyright);
        if cp != copyrights(&main.copyright) {
            m.list("copyright", cp);
        }
        self.package_common(&mut m, p);
        let build = Parent {
            workdir: &plan.build_root,
            env: &plan.environment.environment,
        };
        m.0.push(("pipeline".into(), self.steps(&p.steps, &build)));
        if let Some(t) = &p.test {
            let t = self.test(t, plan);
            m.map("test", t);
        }
        m.0
    }

    fn dependencies(&mut self, d: &Dependencies) -> Map {
        let mut m = Map::default();
        let runtime = self.escs(&d.runtime);
        m.strs("runtime", &runtime);
        let provides = self.escs(&d.provides);
        m.strs("provides", &provides);
        let replaces = self.escs(&d.replaces);
        m.strs("replaces", &replaces);
        m.opt("provider-priority", d.provider_priority.as_deref());
        m.opt("replaces-priority", d.replaces_priority.as_deref());
        m
    }

    fn scriptlets(&mut self, s: &Scriptlets) -> Map {
        let mut m = Map::default();
        for (k, v) in [
            ("pre-install", &s.pre_install),
            ("post-install", &s.post_install),
            ("pre-deinstall", &s.pre_deinstall),
            ("post-deinstall", &s.post_deinstall),
            ("pre-upgrade", &s.pre_upgrade),
            ("post-upgrade", &s.post_upgrade),
        ] {
            if let Some(v) = v {
                let v = self.esc(v);
                m.str(k, &v);
            }
        }
        if let Some(t) = &s.trigger {
            let mut tm = Map::default();
            let script = self.esc(&t.script);
            tm.str("script", &script);
            let paths = self.escs(&t.paths);
            tm.strs("paths", &paths);
            m.0.push(("trigger".into(), Y::M(tm.0)));
        }
        m
    }

    fn environment(&mut self, env: &EnvironmentPlan) -> Map {
        let mut m = Map::default();
        m.map("contents", self.contents(&env.contents));
        m.map("accounts", accounts(&env.accounts));
        let vars: Vec<(&String, String)> = env
            .environment
            .iter()
            .map(|(k, v)| (k, self.esc(v)))
            .collect();
        m.pairs("environment", vars);
        m
    }

    fn contents(&mut self, c: &Contents) -> Map {
        let mut m = Map::default();
        let repositories = self.escs(&c.repositories);
        m.strs("repositories", &repositories);
        let keyring = self.escs(&c.keyring);
        m.strs("keyring", &keyring);
        let packages = self.escs(&c.packages);
        m.strs("packages", &packages);
        m
    }

    fn test(&mut self, t: &TestPlan, plan: &Plan) -> Map {
        let mut m = Map::default();
        m.map("environment", self.environment(&t.environment));
        let base = Parent {
            workdir: &plan.build_root,
            env: &t.environment.environment,
        };
        m.0.push(("pipeline".into(), self.steps(&t.steps, &base)));
        m
    }

    fn steps(&mut self, steps: &[Step], parent: &Parent) -> Y {
        Y::L(steps.iter().map(|s| Y::M(self.step(s, parent))).collect())
    }

    fn step(&mut self, s: &Step, parent: &Parent) -> Vec<(String, Y)> {
        let mut m = Map::default();
        if let Some(n) = &s.name {
            let n = self.esc(n);
            m.str("name", &n);
        }
        m.opt("uses", s.uses.as_deref());
        if s.inlined {
            // An empty input falls back to its default on compile, as an
            // absent one does; only the rest need saying.
            let with: Vec<(&String, String)> = s
                .with
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k, self.esc(v)))
                .collect();
            m.pairs("with", with);
        } else if let Some(r) = &s.runs {
            let r = self.esc(r);
            m.str("runs", &r);
        }
        if s.working_directory != parent.workdir {
            let wd = relative_workdir(parent.workdir, &s.working_directory);
            let wd = self.esc(&wd);
            m.str("working-directory", &wd);
        }
        let changed: Vec<(&String, String)> = s
            .environment
            .iter()
            .filter(|(k, v)| parent.env.get(*k) != Some(v))
            .map(|(k, v)| (k, self.esc(v)))
            .collect();
        m.pairs("environment", changed);
        // An inlined pipeline's needs and nested steps come from its file.
        if !s.inlined {
            let needs = self.escs(&s.needs_packages);
            let mut nm = Map::default();
            nm.strs("packages", &needs);
            m.map("needs", nm);
            let inner = Parent {
                workdir: &s.working_directory,
                env: &s.environment,
            };
            if !s.pipeline.is_empty() {
                let nested = self.steps(&s.pipeline, &inner);
                m.0.push(("pipeline".into(), nested));
            }
        }
        m.0
    }
}

/// `wd` relative to `parent` when that reads back the same, else as it is.
fn relative_workdir(parent: &str, wd: &str) -> String {
    let prefix = format!("{}/", parent.trim_end_matches('/'));
    if let Some(rel) = wd.strip_prefix(&prefix) {
        if !rel.is_empty() && absolute_under(parent, rel) == wd {
            return rel.to_string();
        }
    }
    wd.to_string()
}

fn options(o: &PackageOptions) -> Map {
    let mut m = Map::default();
    m.flag("no-provides", o.no_provides);
    m.flag("no-depends", o.no_depends);
    m.flag("no-commands", o.no_commands);
    m.flag("no-versioned-shlib-deps", o.no_versioned_shlib_deps);
    m
}

fn copyrights(list: &[Copyright]) -> Vec<Y> {
    list.iter()
        .map(|c| {
            let mut m = Map::default();
            m.nonempty("license", &c.license.value);
            m.strs(
                "paths",
                &c.paths.iter().map(|p| p.value.clone()).collect::<Vec<_>>(),
            );
            m.nonempty("attestation", &c.attestation.value);
            m.nonempty("license-path", &c.license_path.value);
            m.nonempty("detection-override", &c.detection_override.value);
            m.nonempty("operator", &c.operator.value);
            m.list("licenses", copyrights(&c.licenses));
            Y::M(m.0)
        })
        .collect()
}

fn setcap(c: &SetCap) -> Y {
    let mut m = Map::default();
    m.str("path", &c.path.value);
    let mut add = Map::default();
    for (k, v) in &c.add {
        add.str(&k.value, &v.value);
    }
    m.map("add", add);
    m.str("reason", &c.reason.value);
    Y::M(m.0)
}

fn accounts(a: &Accounts) -> Map {
    let mut m = Map::default();
    m.nonempty("run-as", &a.run_as.value);
    let users = a
        .users
        .iter()
        .map(|u| {
            let mut um = Map::default();
            um.nonempty("username", &u.username.value);
            um.int("uid", &u.uid.value);
            um.int("gid", &u.gid.value);
            um.nonempty("shell", &u.shell.value);
            um.nonempty("homedir", &u.homedir.value);
            Y::M(um.0)
        })
        .collect();
    m.list("users", users);
    let groups = a
        .groups
        .iter()
        .map(|g| {
            let mut gm = Map::default();
            gm.nonempty("groupname", &g.groupname.value);
            gm.int("gid", &g.gid.value);
            gm.strs(
                "members",
                &g.members
                    .iter()
                    .map(|t| t.value.clone())
                    .collect::<Vec<_>>(),
            );
            Y::M(gm.0)
        })
        .collect();
    m.list("groups", groups);
    m
}

// ---------------------------------------------------------------------------
// Rendering.

/// Write `entries` as a block mapping at column `indent`; `inline_first`
/// when the first key follows a `- ` already written.
fn render_map(out: &mut String, entries: &[(String, Y)], indent: usize, inline_first: bool) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 || !inline_first {
            push_indent(out, indent);
        }
        out.push_str(&key(k));
        out.push(':');
        render_after(out, v, indent);
    }
}

/// Write a value after `key:` or `-` (which sits at column `indent`).
fn render_after(out: &mut String, v: &Y, indent: usize) {
    match v {
        Y::S(s) => scalar(out, s, indent),
        Y::N(n) if is_decimal(n) => {
            out.push(' ');
            out.push_str(n);
            out.push('\n');
        }
        Y::N(n) => scalar(out, n, indent),
        Y::B(b) => {
            out.push(' ');
            out.push_str(if *b { "true" } else { "false" });
            out.push('\n');
        }
        Y::L(items) if items.is_empty() => out.push_str(" []\n"),
        Y::L(items) => {
            out.push('\n');
            render_seq(out, items, indent + 2);
        }
        Y::M(entries) if entries.is_empty() => out.push_str(" {}\n"),
        Y::M(entries) => {
            out.push('\n');
            render_map(out, entries, indent + 2, false);
        }
    }
}

fn render_seq(out: &mut String, items: &[Y], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push('-');
        match item {
            Y::M(entries) if !entries.is_empty() => {
                out.push(' ');
                render_map(out, entries, indent + 2, true);
            }
            other => render_after(out, other, indent),
        }
    }
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn key(k: &str) -> String {
    if is_plain(k) {
        k.to_string()
    } else {
        double_quoted(k)
    }
}

/// Write a scalar after `key:`/`-` at column `indent`; a literal block's
/// lines go two columns further in.
fn scalar(out: &mut String, s: &str, indent: usize) {
    out.push(' ');
    if is_plain(s) {
        out.push_str(s);
        out.push('\n');
        return;
    }
    if !fits_literal_block(s) {
        out.push_str(&double_quoted(s));
        out.push('\n');
        return;
    }
    out.push('|');
    // Leading blanks would be taken for indentation: say how deep it is
    // instead (relative to the enclosing key or `-`, which is `indent`).
    if s.starts_with([' ', '\t', '\n']) {
        out.push('2');
    }
    if !s.ends_with('\n') {
        out.push('-');
    } else if s.ends_with("\n\n") {
        out.push('+');
    }
    out.push('\n');
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        if !line.is_empty() {
            push_indent(out, indent + 2);
            out.push_str(line);
        }
        out.push('\n');
    }
}

/// Plain only when every YAML reader takes it as exactly this string:
/// starts with a letter or `/`, uses no indicator characters, and is not a
/// word YAML 1.1 reads as a boolean or null.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '/') {
        return false;
    }
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _./+@%=:-".contains(c));
    let words = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    ok_chars
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains("  ")
        && !words.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// `0` or a number without leading zeros (which YAML 1.1 reads as octal).
fn is_decimal(s: &str) -> bool {
    s == "0"
        || (s.starts_with(|c: char| matches!(c, '1'..='9'))
            && s.bytes().all(|b| b.is_ascii_digit()))
}

/// A literal block keeps text as written, as long as it has no characters
/// YAML would normalise (CR, other controls, Unicode line breaks, BOM) and
/// no line made only of blanks (which block scalars fold into indentation).
fn fits_literal_block(s: &str) -> bool {
    s.contains('\n')
        && s.chars().any(|c| !c.is_whitespace())
        && !s.chars().any(|c| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
        })
        && s.strip_suffix('\n')
            .unwrap_or(s)
            .split('\n')
            .all(|l| l.is_empty() || !l.chars().all(|c| c == ' ' || c == '\t'))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::plan::{compile, CompileOptions};
    use crate::recipe::yaml::{self, Value};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn opts(pipeline_dirs: Vec<PathBuf>) -> CompileOptions {
        CompileOptions {
            arch: Arch::X86_64,
            pipeline_dirs,
            ..CompileOptions::default()
        }
    }

    /// The first place two JSON values differ, for a readable failure.
    fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: &str) -> Option<String> {
        use serde_json::Value as J;
        match (a, b) {
            (J::Object(x), J::Object(y)) => {
                for k in x.keys().chain(y.keys()) {
                    let (Some(va), Some(vb)) = (x.get(k), y.get(k)) else {
                        return Some(format!("{at}.{k}: present on one side only"));
                    };
                    if let Some(d) = first_difference(va, vb, &format!("{at}.{k}")) {
                        return Some(d);
                    }
                }
                None
            }
            (J::Array(x), J::Array(y)) if x.len() == y.len() => x
                .iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (va, vb))| first_difference(va, vb, &format!("{at}[{i}]"))),
            _ if a == b => None,
            _ => Some(format!("{at}:\n  before: {a}\n  after:  {b}")),
        }
    }

    fn inlined_flags(steps: &[Step], out: &mut Vec<bool>) {
        for s in steps {
            out.push(s.inlined);
            inlined_flags(&s.pipeline, out);
        }
    }

    fn all_flags(plan: &Plan) -> Vec<bool> {
        let mut out = Vec::new();
        for p in &plan.packages {
            inlined_flags(&p.steps, &mut out);
            if let Some(t) = &p.test {
                inlined_flags(&t.steps, &mut out);
            }
        }
        out
    }

    /// Compile, emit, compile the emitted text, and compare the plans; the
    /// second emission must be the same text (so a rebuild embeds the
    /// same recipe again). Returns the emitted text.
    fn round_trip(recipe: &Path, opts: &CompileOptions) -> Result<String, String> {
        let name = recipe.display();
        let plan = compile(recipe, opts).map_err(|e| format!("{name}: first compile: {e}"))?;
        let text = recipe_yaml(&plan).map_err(|e| format!("{name}: emit: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("embedded.yaml");
        std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        // Build options and `--vars-file` are spent: the rebuild needs neither.
        let spent = CompileOptions {
            build_options: Vec::new(),
            vars_file: None,
            ..opts.clone()
        };
        let again =
            compile(&path, &spent).map_err(|e| format!("{name}: recompile: {e}\n{text}"))?;
        let (a, b) = (
            serde_json::to_value(&plan).map_err(|e| e.to_string())?,
            serde_json::to_value(&again).map_err(|e| e.to_string())?,
        );
        if let Some(d) = first_difference(&a, &b, "plan") {
            return Err(format!("{name}: plans differ at {d}\n--- emitted\n{text}"));
        }
        if all_flags(&plan) != all_flags(&again) {
            return Err(format!("{name}: `uses` inlined differently\n{text}"));
        }
        let text2 = recipe_yaml(&again).map_err(|e| format!("{name}: emit again: {e}"))?;
        if text2 != text {
            return Err(format!(
                "{name}: second emission differs\n--- first\n{text}\n--- second\n{text2}"
            ));
        }
        Ok(text)
    }

    #[test]
    fn fixture_and_example_recipes_round_trip() {
        let fixtures = repo().join("tests/fixtures/recipes");
        let with_pipes = opts(vec![fixtures.join("pipelines")]);
        round_trip(&fixtures.join("full.yaml"), &with_pipes).unwrap();
        let extra = CompileOptions {
            build_options: vec!["extra".into()],
            ..with_pipes.clone()
        };
        round_trip(&fixtures.join("full.yaml"), &extra).unwrap();
        let aarch64 = CompileOptions {
            arch: Arch::Aarch64,
            ..with_pipes
        };
        round_trip(&fixtures.join("full.yaml"), &aarch64).unwrap();
        let mut examples = 0;
        for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
            let dir = entry.unwrap().path();
            for f in std::fs::read_dir(&dir).into_iter().flatten() {
                let f = f.unwrap().path();
                // Image configurations (apko's schema) live beside recipes.
                if f.extension().is_some_and(|x| x == "yaml")
                    && !crate::image::config::is_image_config(&f)
                {
                    round_trip(&f, &opts(vec![])).unwrap();
                    examples += 1;
                }
            }
        }
        assert!(examples > 0, "no example recipes found");
    }

    fn write_recipe(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("r.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn literal_template_text_survives_the_rebuild() {
        // `${{` reaches the plan through raw data values and through
        // references lenient fields leave alone; the rebuild must not
        // substitute (or reject) them.
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            r#"package:
  name: lit
  version: 1.0.0
  epoch: 0
  description: "uses ${{vars.kept}} as written"
data:
  - name: d
    items:
      a: "${{ not.a.var }} and ${{"
pipeline:
  - name: "say ${{ nobody }}"
    environment:
      GREETING: "${{ unknown.ref }}"
    runs: echo '${{package.name}}'
subpackages:
  - range: d
    name: lit-${{range.key}}
    description: "${{vars.nope}} ${{range.value}}"
    pipeline:
      - runs: printf '%s' '${{range.value}}'
"#,
        );
        let text = round_trip(&recipe, &opts(vec![])).unwrap();
        assert!(text.contains("pkgbuild-dollar: \"$\""), "{text}");
        let plan = compile(&recipe, &opts(vec![])).unwrap();
        assert_eq!(
            plan.packages[1].steps[0].runs.as_deref(),
            Some("printf '%s' '${{ not.a.var }} and ${{'")
        );
        assert_eq!(
            plan.packages[0].description,
            "uses ${{vars.kept}} as written"
        );
    }

    #[test]
    fn capabilities_survive_the_rebuild() {
        // Found by tests/fuzz.rs: `capabilities` was left out of the
        // emitted recipe, so a rebuild ran steps with the default set.
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            "package:\n  name: c\n  version: 1\ncapabilities:\n  add: [CAP_NET_ADMIN]\n  drop: [CAP_SYS_ADMIN]\npipeline:\n  - runs: true\n",
        );
        let text = round_trip(&recipe, &opts(vec![])).unwrap();
        assert!(
            text.contains(
                "capabilities:\n  add:\n    - CAP_NET_ADMIN\n  drop:\n    - CAP_SYS_ADMIN\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn uses_beside_an_explicit_pipeline_stays_a_note() {
        // melange does not load `uses` when the step has its own
        // `pipeline:`; the emitted step must keep both and not inline.
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            "package:\n  name: n\n  version: 1\npipeline:\n  - uses: not/a/real/pipeline\n    working-directory: sub\n    needs:\n      packages: [make]\n    pipeline:\n      - runs: make\n",
        );
        let text = round_trip(&recipe, &opts(vec![])).unwrap();
        assert!(
            text.ends_with(
                "  - uses: not/a/real/pipeline\n    working-directory: sub\n    needs:\n      packages:\n        - make\n    pipeline:\n      - runs: make\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_description_quoting_itself_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            "package:\n  name: d\n  version: 1\n  description: x ${{package.description}}\npipeline: []\n",
        );
        let plan = compile(&recipe, &opts(vec![])).unwrap();
        let e = recipe_yaml(&plan).unwrap_err();
        assert!(
            matches!(&e, EmitError::DescriptionReference { name, .. } if name == "package.description"),
            "{e}"
        );
    }

    #[test]
    fn output_is_ordered_and_quotes_what_yaml_would_retype() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = write_recipe(
            dir.path(),
            "package:\n  name: v\n  version: 00303\n  epoch: 0\n  description: true\npipeline:\n  - runs: |\n      echo a\n      echo b\n",
        );
        let text = round_trip(&recipe, &opts(vec![])).unwrap();
        let body: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            body[..6],
            [
                "package:",
                "  name: v",
                "  version: \"00303\"",
                "  epoch: 0",
                "  description: \"true\"",
                "environment:",
            ]
        );
        assert!(
            text.ends_with("pipeline:\n  - runs: |\n      echo a\n      echo b\n"),
            "{text}"
        );
    }

    /// The scalar text of `k` in a parsed document.
    fn scalar_of(doc: &yaml::Node, path: &[&str]) -> String {
        let mut n = doc;
        for p in path {
            n = match p.parse::<usize>() {
                Ok(i) => match &n.value {
                    Value::Seq(items) => &items[i],
                    _ => panic!("not a list at {p}"),
                },
                Err(_) => n.get(p).unwrap_or_else(|| panic!("no key {p}")),
            };
        }
        match &n.value {
            Value::Scalar { text, .. } => text.clone(),
            other => panic!("not a scalar: {other:?}"),
        }
    }

    /// A scalar in every position the emitter writes one (map value at two
    /// depths, list item, value in a list item's map, and as a key).
    fn check_scalar(s: &str) {
        let entries = vec![
            ("top".to_string(), Y::S(s.into())),
            (
                "nested".into(),
                Y::M(vec![(
                    "steps".into(),
                    Y::L(vec![
                        Y::S(s.into()),
                        Y::M(vec![
                            ("k".into(), Y::S("v".into())),
                            ("runs".into(), Y::S(s.into())),
                        ]),
                    ]),
                )]),
            ),
            ("keys".into(), Y::M(vec![(s.to_string(), Y::S("x".into()))])),
        ];
        let mut out = String::new();
        render_map(&mut out, &entries, 0, false);
        let doc = yaml::parse(&out).unwrap_or_else(|e| panic!("{s:?}: {e}\n{out}"));
        for path in [
            &["top"][..],
            &["nested", "steps", "0"],
            &["nested", "steps", "1", "runs"],
        ] {
            assert_eq!(scalar_of(&doc, path), s, "{path:?} of\n{out}");
        }
        if !s.is_empty() {
            let keys = doc.get("keys").and_then(|k| k.as_map()).unwrap();
            assert_eq!(keys[0].key, s, "key in\n{out}");
        }
    }

    #[test]
    fn scalars_read_back_as_the_same_text() {
        for s in [
            "",
            "1.10",
            "00303",
            "true",
            "No",
            "~",
            "null",
            "1.2.0",
            "0",
            "-1",
            "a: b",
            "a #b",
            "#x",
            "- x",
            "x:",
            "@x",
            "`x`",
            "*x",
            "&x",
            "!x",
            "%x",
            "[a]",
            "{a}",
            "'a'",
            "\"a\"",
            "a\\b",
            " lead",
            "trail ",
            "tab\tin",
            "é ü",
            "echo hi\n",
            "echo hi",
            "a\nb",
            "a\nb\n\n",
            "  indented\nnext\n",
            "\n\nafter blank lines\n",
            "line\n   \nspaces-only line\n",
            "cr\r\n",
            "nel\u{85}x",
            "ls\u{2028}x",
            "bom\u{feff}",
            "nul\u{0}",
            "\tleading tab\n",
            "${{x}}",
            "https://example.org/a?b=c&d",
            "make DESTDIR=\"${x}\"\n  install\n",
            "\n",
            "\n\n",
            " ",
            "\t",
        ] {
            check_scalar(s);
        }
    }

    #[test]
    fn random_scalars_read_back_as_the_same_text() {
        let alphabet = [
            "a", "Z", "1", "0", ".", " ", "  ", "\t", "\n", "\n\n", "\r", ":", ": ", "#", " #",
            "-", "- ", "\"", "'", "\\", "|", ">", "{", "}", "[", "]", ",", "&", "*", "!", "%", "@",
            "`", "$", "${{", "}}", "é", "\u{85}", "\u{2028}", "\u{0}", "~", "?", "=",
        ];
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for _ in 0..3000 {
            let len = rng.gen_range(0..12);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            check_scalar(&s);
        }
    }
}
