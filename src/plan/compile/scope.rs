//! The substitution scope: where recipe text came from (for errors), the
//! strict and lenient `${{...}}` substitution, `vars` resolution, `if:`
//! evaluation and `range` expansion of subpackages.

use std::collections::HashMap;
use std::path::Path;

use crate::recipe::model::{self, Dx, Recipe, Subpackage, Text, TextMap};
use crate::recipe::subst::{self, SubstError};
use crate::recipe::{cond, parse_yaml, read_bounded, Pos, RecipeError};

/// Chains of vars (or inputs) referring to each other stop here, so a
/// hostile recipe cannot exhaust the stack.
pub(super) const MAX_REFERENCE_DEPTH: usize = 64;

/// A file that recipe or pipeline text came from.
pub(crate) struct Source {
    pub(super) name: String,
    /// True for the recipe itself (recipe-only rules apply to its steps).
    pub(super) recipe: bool,
}

impl Source {
    pub(super) fn err(&self, pos: Pos, message: impl Into<String>) -> RecipeError {
        RecipeError::new(&self.name, pos, message)
    }

    /// The position of byte `off` inside value `t`. Exact for one-line
    /// values and literal blocks (whose position is their first content
    /// character and whose lines share that indentation); folded text is
    /// approximated.
    pub(super) fn locate(&self, t: &Text, off: usize) -> Pos {
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
pub(super) type Scope = HashMap<String, String>;

/// Substitute strictly: an undefined variable is an error at its position.
pub(super) fn strict(
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
pub(super) fn lenient(t: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
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

pub(super) fn scope_lookup(scope: &Scope) -> impl Fn(&str) -> Option<String> + '_ {
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

pub(super) fn merge_vars(into: &mut TextMap, from: TextMap) {
    for (k, v) in from {
        match into.iter_mut().find(|(ek, _)| ek.value == k.value) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}

/// `--vars-file`: a YAML mapping of names to text.
pub(super) fn read_vars_file(path: &Path) -> Result<TextMap, RecipeError> {
    let name = path.display().to_string();
    let text = read_bounded(path)?;
    let tree = parse_yaml(&name, &text)?;
    Dx { file: &name }.text_map(Some(&tree), "vars file")
}

/// Resolve `vars` (which may refer to each other and to `package.*`) into `scope`.
pub(super) fn resolve_vars(
    src: &Source,
    vars: &TextMap,
    scope: &mut Scope,
) -> Result<(), RecipeError> {
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
pub(super) struct Instance<'r> {
    pub(super) sp: &'r Subpackage,
    pub(super) name: String,
    pub(super) range: Option<(String, String)>,
}

pub(super) fn expand_subpackages<'r>(
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

/// Evaluate an `if:`; errors point at the column inside the condition.
pub(super) fn eval_if(
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
