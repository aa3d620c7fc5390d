//! Recipe rules beyond the YAML shape: package and subpackage names,
//! versions, priorities, capabilities, copyright, CPE and `uses:` names.

use std::collections::HashMap;

use super::scope::{strict, Instance, Source};
use crate::recipe::model::{self, lookup, Copyright, Recipe, Text, TextMap};
use crate::recipe::{validate, Pos, RecipeError};

/// The main package's checked name, version and epoch.
/// Like melange, `vars` may appear in the name and version (one level, as written).
pub(super) fn identity(
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

pub(super) fn check_names(
    src: &Source,
    main: &str,
    instances: &[Instance],
) -> Result<(), RecipeError> {
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
pub(super) const VALID_CAPABILITIES: &[&str] = &[
    "cap_net_bind_service",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_sys_admin",
];

/// melange's `validate()` rules beyond names and versions.
pub(super) fn check_package_rules(src: &Source, recipe: &Recipe) -> Result<(), RecipeError> {
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

pub(super) fn check_copyright(
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

pub(super) fn check_cpe(src: &Source, cpe: &TextMap, at: Pos) -> Result<(), RecipeError> {
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

/// Reject `uses:` names that could escape a pipeline directory.
pub(super) fn check_uses_name(src: &Source, uses: &Text) -> Result<(), RecipeError> {
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
