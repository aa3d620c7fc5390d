//! Decoding the YAML tree into the recipe structs: one decoder per struct,
//! each checking its keys against a fixed list (unknown keys are errors
//! with a "did you mean" hint).

use super::hints::nearest;
use super::types::*;
use crate::recipe::yaml::{Entry, Node, Pos, Style, Value};
use crate::recipe::RecipeError;

// ---------------------------------------------------------------------------
// Decoding helpers.

/// Decoding context: which file errors should name.
pub struct Dx<'a> {
    pub file: &'a str,
}

/// The entries of a mapping whose keys were all checked against a list.
pub struct Fields<'n> {
    pub pos: Pos,
    entries: &'n [Entry],
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }
}

impl<'a> Dx<'a> {
    pub fn err(&self, pos: Pos, message: impl Into<String>) -> RecipeError {
        RecipeError::new(self.file, pos, message)
    }

    /// Check that `node` is a mapping (null counts as empty) whose keys are all in `known`.
    pub fn fields<'n>(
        &self,
        node: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Result<Fields<'n>, RecipeError> {
        if node.is_null() {
            return Ok(Fields {
                pos: node.pos,
                entries: &[],
            });
        }
        let Some(entries) = node.as_map() else {
            return Err(self.err(
                node.pos,
                format!("`{what}` must be a mapping, found {}", node.kind()),
            ));
        };
        for e in entries {
            if !known.contains(&e.key.as_str()) {
                let hint = match nearest(&e.key, known) {
                    Some(k) => format!(" (did you mean `{k}`?)"),
                    None => format!(" (expected one of: {})", known.join(", ")),
                };
                return Err(self.err(
                    e.key_pos,
                    format!("unknown key `{}` in `{what}`{hint}", e.key),
                ));
            }
        }
        Ok(Fields {
            pos: node.pos,
            entries,
        })
    }

    /// `fields`, or `any_fields` when `lenient`.
    pub fn fields_unless<'n>(
        &self,
        lenient: bool,
        node: &'n Node,
        what: &str,
        known: &[&str],
    ) -> Result<Fields<'n>, RecipeError> {
        if lenient {
            self.any_fields(node, what)
        } else {
            self.fields(node, what, known)
        }
    }

    /// Like `fields`, without checking the keys.
    pub fn any_fields<'n>(&self, node: &'n Node, what: &str) -> Result<Fields<'n>, RecipeError> {
        if node.is_null() {
            return Ok(Fields {
                pos: node.pos,
                entries: &[],
            });
        }
        match node.as_map() {
            Some(entries) => Ok(Fields {
                pos: node.pos,
                entries,
            }),
            None => Err(self.err(
                node.pos,
                format!("`{what}` must be a mapping, found {}", node.kind()),
            )),
        }
    }

    /// A scalar as text; null is "". Lists and maps are errors.
    pub fn text(&self, node: &Node, what: &str) -> Result<Text, RecipeError> {
        match &node.value {
            Value::Scalar { .. } if node.is_null() => Ok(Text::new("", node.pos)),
            Value::Scalar { text, style } => {
                // Point quoted values at their first character, so offsets
                // inside the value map straight onto source columns.
                let mut pos = node.pos;
                if matches!(style, Style::SingleQuoted | Style::DoubleQuoted) {
                    pos.col += 1;
                }
                Ok(Text::new(text.clone(), pos))
            }
            _ => Err(self.err(
                node.pos,
                format!("`{what}` must be text, found {}", node.kind()),
            )),
        }
    }

    /// An optional text field; missing is "" positioned at the parent.
    pub fn text_or_empty(&self, f: &Fields, key: &str) -> Result<Text, RecipeError> {
        match f.get(key) {
            Some(n) => self.text(n, key),
            None => Ok(Text::new("", f.pos)),
        }
    }

    /// An optional text field that stays `None` when missing or null.
    pub fn opt_text(&self, f: &Fields, key: &str) -> Result<Option<Text>, RecipeError> {
        match f.get(key) {
            Some(n) if !n.is_null() => Ok(Some(self.text(n, key)?)),
            _ => Ok(None),
        }
    }

    /// A list of scalars (null is empty).
    pub fn list(&self, node: Option<&Node>, what: &str) -> Result<Vec<Text>, RecipeError> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        if node.is_null() {
            return Ok(Vec::new());
        }
        match &node.value {
            Value::Seq(items) => items.iter().map(|n| self.text(n, what)).collect(),
            _ => Err(self.err(
                node.pos,
                format!("`{what}` must be a list, found {}", node.kind()),
            )),
        }
    }

    /// A list of mappings decoded by `f`.
    pub fn list_of<T>(
        &self,
        node: Option<&Node>,
        what: &str,
        mut f: impl FnMut(&Node) -> Result<T, RecipeError>,
    ) -> Result<Vec<T>, RecipeError> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        if node.is_null() {
            return Ok(Vec::new());
        }
        match &node.value {
            Value::Seq(items) => items.iter().map(&mut f).collect(),
            _ => Err(self.err(
                node.pos,
                format!("`{what}` must be a list, found {}", node.kind()),
            )),
        }
    }

    /// A string → string mapping, order kept.
    pub fn text_map(&self, node: Option<&Node>, what: &str) -> Result<TextMap, RecipeError> {
        let Some(node) = node else {
            return Ok(Vec::new());
        };
        if node.is_null() {
            return Ok(Vec::new());
        }
        let Some(entries) = node.as_map() else {
            return Err(self.err(
                node.pos,
                format!("`{what}` must be a mapping, found {}", node.kind()),
            ));
        };
        entries
            .iter()
            .map(|e| {
                let k = Text::new(e.key.clone(), e.key_pos);
                Ok((k, self.text(&e.value, &e.key)?))
            })
            .collect()
    }

    /// A boolean the way yaml.v3 reads one into a Go bool.
    pub fn bool(&self, node: Option<&Node>, what: &str) -> Result<bool, RecipeError> {
        let Some(node) = node else {
            return Ok(false);
        };
        if node.is_null() {
            return Ok(false);
        }
        let t = self.text(node, what)?;
        match t.value.as_str() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "y" | "Y" => {
                Ok(true)
            }
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "n"
            | "N" => Ok(false),
            other => Err(self.err(
                node.pos,
                format!("`{what}` must be true or false, found `{other}`"),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Decoders, one per struct.

const ROOT_KEYS: &[&str] = &[
    "package",
    "environment",
    "capabilities",
    "pipeline",
    "subpackages",
    "data",
    "update",
    "vars",
    "var-transforms",
    "options",
    "test",
];

/// Decode a whole recipe tree.
pub fn decode_recipe(file: &str, root: &Node) -> Result<Recipe, RecipeError> {
    let dx = Dx { file };
    let f = dx.fields(root, "recipe", ROOT_KEYS)?;
    let Some(pkg) = f.get("package") else {
        return Err(dx.err(root.pos, "missing required key `package`"));
    };
    let package = decode_package(&dx, pkg)?;
    Ok(Recipe {
        pos: pkg.pos,
        package,
        environment: decode_environment(&dx, f.get("environment"), "environment")?,
        capabilities: decode_capabilities(&dx, f.get("capabilities"))?,
        pipeline: decode_pipelines(&dx, f.get("pipeline"), false)?,
        subpackages: dx.list_of(f.get("subpackages"), "subpackages", |n| {
            decode_subpackage(&dx, n)
        })?,
        data: dx.list_of(f.get("data"), "data", |n| {
            // melange accepts an entry without `name` (no `range` can name it).
            let d = dx.fields(n, "data", &["name", "items"])?;
            Ok(RangeData {
                name: dx.text_or_empty(&d, "name")?,
                items: dx.text_map(d.get("items"), "items")?,
            })
        })?,
        update: decode_update(&dx, f.get("update"))?,
        vars: dx.text_map(f.get("vars"), "vars")?,
        var_transforms: dx.list_of(f.get("var-transforms"), "var-transforms", |n| {
            let v = dx.fields(n, "var-transforms", &["from", "match", "replace", "to"])?;
            // melange reads a missing `from`, `match` or `replace` as "";
            // without `to` the result has no name to be used by.
            if v.get("to").is_none() {
                return Err(dx.err(n.pos, "`var-transforms` entry is missing `to`"));
            }
            Ok(VarTransformSpec {
                from: dx.text_or_empty(&v, "from")?,
                match_: dx.text_or_empty(&v, "match")?,
                replace: dx.text_or_empty(&v, "replace")?,
                to: dx.text_or_empty(&v, "to")?,
            })
        })?,
        options: decode_build_options(&dx, f.get("options"))?,
        test: f.get("test").map(|n| decode_test(&dx, n)).transpose()?,
    })
}

const PACKAGE_KEYS: &[&str] = &[
    "name",
    "version",
    "epoch",
    "description",
    "annotations",
    "url",
    "commit",
    "target-architecture",
    "copyright",
    "dependencies",
    "options",
    "scriptlets",
    "checks",
    "cpe",
    "setcap",
    "timeout",
    "resources",
    "test-resources",
];

fn decode_package(dx: &Dx, node: &Node) -> Result<Package, RecipeError> {
    let f = dx.fields(node, "package", PACKAGE_KEYS)?;
    let Some(name) = f.get("name") else {
        return Err(dx.err(node.pos, "missing required key `package.name`"));
    };
    let Some(version) = f.get("version") else {
        return Err(dx.err(node.pos, "missing required key `package.version`"));
    };
    Ok(Package {
        name: dx.text(name, "name")?,
        version: dx.text(version, "version")?,
        epoch: decode_epoch(dx, f.get("epoch"), f.pos)?,
        description: dx.text_or_empty(&f, "description")?,
        url: dx.text_or_empty(&f, "url")?,
        commit: dx.text_or_empty(&f, "commit")?,
        target_architecture: dx.list(f.get("target-architecture"), "target-architecture")?,
        copyright: decode_copyrights(dx, f.get("copyright"))?,
        dependencies: decode_dependencies(dx, f.get("dependencies"))?,
        options: decode_package_options(dx, f.get("options"))?,
        scriptlets: decode_scriptlets(dx, f.get("scriptlets"))?,
        checks_disabled: decode_checks(dx, f.get("checks"))?,
        cpe: decode_fixed_map(
            dx,
            f.get("cpe"),
            "cpe",
            &[
                "part",
                "vendor",
                "product",
                "edition",
                "language",
                "sw_edition",
                "target_sw",
                "target_hw",
                "other",
            ],
        )?,
        setcap: decode_setcaps(dx, f.get("setcap"))?,
        timeout: dx.text_or_empty(&f, "timeout")?,
        resources: decode_fixed_map(dx, f.get("resources"), "resources", RESOURCE_KEYS)?,
        test_resources: decode_fixed_map(
            dx,
            f.get("test-resources"),
            "test-resources",
            RESOURCE_KEYS,
        )?,
        annotations: dx.text_map(f.get("annotations"), "annotations")?,
        pos: node.pos,
    })
}

const RESOURCE_KEYS: &[&str] = &["cpu", "cpumodel", "memory", "disk"];

/// A mapping with a fixed key set and text values.
fn decode_fixed_map(
    dx: &Dx,
    node: Option<&Node>,
    what: &str,
    known: &[&str],
) -> Result<TextMap, RecipeError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    dx.fields(node, what, known)?;
    dx.text_map(Some(node), what)
}

/// Epoch is a `uint64` in melange, read the way Go's yaml.v3 reads an
/// integer into one: `_` separators dropped, `0x`/`0o`/`0b` prefixes and
/// a bare leading `0` (octal, so `010` is 8) honoured, and a float such as
/// `1.0` or `08` truncated. The normalised decimal text is kept.
fn decode_epoch(dx: &Dx, node: Option<&Node>, parent: Pos) -> Result<Text, RecipeError> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(Text::new("0", parent));
    };
    let t = dx.text(node, "epoch")?;
    match yaml_uint(&t.value) {
        Some(n) => Ok(Text::new(n.to_string(), t.pos)),
        None => Err(dx.err(
            t.pos,
            format!(
                "`epoch` must be a non-negative integer, found `{}`",
                t.value
            ),
        )),
    }
}

/// A scalar as yaml.v3 decodes it into a Go `uint64`, or `None` where
/// yaml.v3 reports an error.
pub fn yaml_uint(text: &str) -> Option<u64> {
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(n) = go_int(&plain) {
        return Some(n);
    }
    // yaml.v3 reads anything shaped like a YAML float as one and Go
    // converts it to the integer type by truncation.
    if !is_yaml_float(&plain) {
        return None;
    }
    let f: f64 = plain.parse().ok()?;
    // 2^64 is the first float that does not fit.
    (0.0..18_446_744_073_709_551_616.0)
        .contains(&f)
        .then_some(f as u64)
}

/// Go's `strconv.ParseInt`/`ParseUint` with base 0, limited to values a
/// `uint64` holds (`-0` is 0).
fn go_int(s: &str) -> Option<u64> {
    let (negative, digits) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if lower.len() >= 3 && lower.starts_with("0x") {
        (16, &lower[2..])
    } else if lower.len() >= 3 && lower.starts_with("0o") {
        (8, &lower[2..])
    } else if lower.len() >= 3 && lower.starts_with("0b") {
        (2, &lower[2..])
    } else if let Some(rest) = lower.strip_prefix('0') {
        (8, rest)
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = if body.is_empty() {
        0
    } else {
        u64::from_str_radix(body, radix).ok()?
    };
    if negative && n != 0 {
        return None;
    }
    Some(n)
}

/// yaml.v3's float shape: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

fn decode_checks(dx: &Dx, node: Option<&Node>) -> Result<Vec<Text>, RecipeError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    let f = dx.fields(node, "checks", &["disabled", "enabled"])?;
    dx.list(f.get("disabled"), "checks.disabled")
}

fn decode_copyrights(dx: &Dx, node: Option<&Node>) -> Result<Vec<Copyright>, RecipeError> {
    dx.list_of(node, "copyright", |n| {
        let f = dx.fields(
            n,
            "copyright",
            &[
                "license",
                "paths",
                "attestation",
                "license-path",
                "detection-override",
                "operator",
                "licenses",
            ],
        )?;
        Ok(Copyright {
            license: dx.text_or_empty(&f, "license")?,
            paths: dx.list(f.get("paths"), "paths")?,
            attestation: dx.text_or_empty(&f, "attestation")?,
            license_path: dx.text_or_empty(&f, "license-path")?,
            detection_override: dx.text_or_empty(&f, "detection-override")?,
            operator: dx.text_or_empty(&f, "operator")?,
            licenses: decode_copyrights(dx, f.get("licenses"))?,
        })
    })
}

fn decode_dependencies(dx: &Dx, node: Option<&Node>) -> Result<Dependencies, RecipeError> {
    let Some(node) = node else {
        return Ok(Dependencies::default());
    };
    let f = dx.fields(
        node,
        "dependencies",
        &[
            "runtime",
            "provides",
            "replaces",
            "provider-priority",
            "replaces-priority",
        ],
    )?;
    Ok(Dependencies {
        runtime: dx.list(f.get("runtime"), "runtime")?,
        provides: dx.list(f.get("provides"), "provides")?,
        replaces: dx.list(f.get("replaces"), "replaces")?,
        provider_priority: dx.opt_text(&f, "provider-priority")?,
        replaces_priority: dx.opt_text(&f, "replaces-priority")?,
    })
}

fn decode_package_options(dx: &Dx, node: Option<&Node>) -> Result<PackageOptions, RecipeError> {
    let Some(node) = node else {
        return Ok(PackageOptions::default());
    };
    let f = dx.fields(
        node,
        "options",
        &[
            "no-provides",
            "no-depends",
            "no-commands",
            "no-versioned-shlib-deps",
        ],
    )?;
    Ok(PackageOptions {
        no_provides: dx.bool(f.get("no-provides"), "no-provides")?,
        no_depends: dx.bool(f.get("no-depends"), "no-depends")?,
        no_commands: dx.bool(f.get("no-commands"), "no-commands")?,
        no_versioned_shlib_deps: dx
            .bool(f.get("no-versioned-shlib-deps"), "no-versioned-shlib-deps")?,
    })
}

fn decode_scriptlets(dx: &Dx, node: Option<&Node>) -> Result<Scriptlets, RecipeError> {
    let Some(node) = node else {
        return Ok(Scriptlets::default());
    };
    let f = dx.fields(
        node,
        "scriptlets",
        &[
            "pre-install",
            "post-install",
            "pre-deinstall",
            "post-deinstall",
            "pre-upgrade",
            "post-upgrade",
            "trigger",
        ],
    )?;
    let trigger = match f.get("trigger") {
        Some(t) if !t.is_null() => {
            let tf = dx.fields(t, "trigger", &["script", "paths"])?;
            Some(Trigger {
                script: dx.text_or_empty(&tf, "script")?,
                paths: dx.list(tf.get("paths"), "paths")?,
            })
        }
        _ => None,
    };
    Ok(Scriptlets {
        pre_install: dx.opt_text(&f, "pre-install")?,
        post_install: dx.opt_text(&f, "post-install")?,
        pre_deinstall: dx.opt_text(&f, "pre-deinstall")?,
        post_deinstall: dx.opt_text(&f, "post-deinstall")?,
        pre_upgrade: dx.opt_text(&f, "pre-upgrade")?,
        post_upgrade: dx.opt_text(&f, "post-upgrade")?,
        trigger,
    })
}

fn decode_setcaps(dx: &Dx, node: Option<&Node>) -> Result<Vec<SetCap>, RecipeError> {
    dx.list_of(node, "setcap", |n| {
        let f = dx.fields(n, "setcap", &["path", "add", "reason"])?;
        Ok(SetCap {
            path: dx.text_or_empty(&f, "path")?,
            add: dx.text_map(f.get("add"), "add")?,
            reason: dx.text_or_empty(&f, "reason")?,
        })
    })
}

pub const ENVIRONMENT_KEYS: &[&str] = &[
    "contents",
    "entrypoint",
    "cmd",
    "stop-signal",
    "work-dir",
    "accounts",
    "archs",
    "environment",
    "paths",
    "vcs-url",
    "annotations",
    "include",
    "volumes",
    "layering",
    "certificates",
    "os-release",
];

/// Decode an apko image configuration block (a recipe's `environment:`,
/// or the root of an image config for `pkgbuild image`).
pub fn decode_environment(
    dx: &Dx,
    node: Option<&Node>,
    what: &str,
) -> Result<Environment, RecipeError> {
    let Some(node) = node else {
        return Ok(Environment::default());
    };
    let f = dx.fields(node, what, ENVIRONMENT_KEYS)?;
    let mut env = Environment {
        environment: dx.text_map(f.get("environment"), "environment")?,
        ..Environment::default()
    };
    if let Some(c) = f.get("contents") {
        let cf = dx.fields(
            c,
            "contents",
            &[
                "repositories",
                "build_repositories",
                "runtime_repositories",
                "keyring",
                "packages",
                "baseimage",
            ],
        )?;
        // apko installs `runtime_repositories` into the image only; they
        // are not used to fetch the build's packages.
        for key in ["build_repositories", "repositories"] {
            env.repositories.extend(dx.list(cf.get(key), key)?);
        }
        env.keyring = dx.list(cf.get("keyring"), "keyring")?;
        env.packages = dx.list(cf.get("packages"), "packages")?;
    }
    if let Some(a) = f.get("accounts") {
        let af = dx.fields(a, "accounts", &["run-as", "users", "groups"])?;
        env.accounts.run_as = dx.text_or_empty(&af, "run-as")?;
        env.accounts.users = dx.list_of(af.get("users"), "users", |n| {
            let u = dx.fields(n, "users", &["username", "uid", "gid", "shell", "homedir"])?;
            Ok(User {
                username: dx.text_or_empty(&u, "username")?,
                uid: dx.text_or_empty(&u, "uid")?,
                gid: dx.text_or_empty(&u, "gid")?,
                shell: dx.text_or_empty(&u, "shell")?,
                homedir: dx.text_or_empty(&u, "homedir")?,
            })
        })?;
        env.accounts.groups = dx.list_of(af.get("groups"), "groups", |n| {
            let g = dx.fields(n, "groups", &["groupname", "gid", "members"])?;
            Ok(Group {
                groupname: dx.text_or_empty(&g, "groupname")?,
                gid: dx.text_or_empty(&g, "gid")?,
                members: dx.list(g.get("members"), "members")?,
            })
        })?;
    }
    Ok(env)
}

fn decode_capabilities(dx: &Dx, node: Option<&Node>) -> Result<Capabilities, RecipeError> {
    let Some(node) = node else {
        return Ok(Capabilities::default());
    };
    let f = dx.fields(node, "capabilities", &["add", "drop"])?;
    Ok(Capabilities {
        add: dx.list(f.get("add"), "add")?,
        drop: dx.list(f.get("drop"), "drop")?,
    })
}

const PIPELINE_KEYS: &[&str] = &[
    "if",
    "name",
    "uses",
    "with",
    "runs",
    "pipeline",
    "inputs",
    "needs",
    "label",
    "assertions",
    "working-directory",
    "environment",
    "retry",
];

/// Decode a list of steps. `lenient` (for pipeline files, which melange
/// reads without strict key checking) accepts unknown keys.
pub fn decode_pipelines(
    dx: &Dx,
    node: Option<&Node>,
    lenient: bool,
) -> Result<Vec<Pipeline>, RecipeError> {
    dx.list_of(node, "pipeline", |n| decode_pipeline(dx, n, lenient))
}

/// Decode one step (or a whole pipeline file, which has the same shape).
pub fn decode_pipeline(dx: &Dx, node: &Node, lenient: bool) -> Result<Pipeline, RecipeError> {
    // Pipeline files are decoded without key checks, as melange does.
    let f = dx.fields_unless(lenient, node, "pipeline", PIPELINE_KEYS)?;
    let needs_packages = match f.get("needs") {
        Some(n) => {
            let nf = dx.fields_unless(lenient, n, "needs", &["packages"])?;
            dx.list(nf.get("packages"), "needs.packages")?
        }
        None => Vec::new(),
    };
    let required_steps = match f.get("assertions") {
        Some(n) => {
            let af = dx.fields_unless(lenient, n, "assertions", &["required-steps"])?;
            dx.opt_text(&af, "required-steps")?
        }
        None => None,
    };
    if let Some(r) = f.get("retry") {
        dx.fields_unless(
            lenient,
            r,
            "retry",
            &["attempts", "backoff", "initial-delay", "max-delay"],
        )?;
    }
    let inputs = match f.get("inputs") {
        Some(n) if !n.is_null() => {
            let Some(entries) = n.as_map() else {
                return Err(dx.err(n.pos, "`inputs` must be a mapping"));
            };
            entries
                .iter()
                .map(|e| {
                    let i = dx.fields_unless(
                        lenient,
                        &e.value,
                        "inputs",
                        &["description", "default", "required"],
                    )?;
                    Ok((
                        Text::new(e.key.clone(), e.key_pos),
                        Input {
                            description: dx.text_or_empty(&i, "description")?,
                            default: dx.opt_text(&i, "default")?,
                            required: dx.bool(i.get("required"), "required")?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, RecipeError>>()?
        }
        _ => Vec::new(),
    };
    Ok(Pipeline {
        if_: dx.opt_text(&f, "if")?,
        name: dx.opt_text(&f, "name")?,
        uses: dx.opt_text(&f, "uses")?,
        has_with: f.get("with").is_some_and(|n| !n.is_null()),
        with: dx.text_map(f.get("with"), "with")?,
        runs: dx.opt_text(&f, "runs")?,
        pipeline: decode_pipelines(dx, f.get("pipeline"), lenient)?,
        inputs,
        needs_packages,
        label: dx.opt_text(&f, "label")?,
        required_steps,
        working_directory: dx.opt_text(&f, "working-directory")?,
        environment: dx.text_map(f.get("environment"), "environment")?,
        pos: node.pos,
    })
}

const SUBPACKAGE_KEYS: &[&str] = &[
    "if",
    "range",
    "name",
    "pipeline",
    "dependencies",
    "options",
    "scriptlets",
    "description",
    "annotations",
    "url",
    "commit",
    "copyright",
    "checks",
    "test",
    "setcap",
];

fn decode_subpackage(dx: &Dx, node: &Node) -> Result<Subpackage, RecipeError> {
    let f = dx.fields(node, "subpackages", SUBPACKAGE_KEYS)?;
    let Some(name) = f.get("name") else {
        return Err(dx.err(node.pos, "subpackage is missing required key `name`"));
    };
    Ok(Subpackage {
        if_: dx.opt_text(&f, "if")?,
        range: dx.opt_text(&f, "range")?,
        name: dx.text(name, "name")?,
        pipeline: decode_pipelines(dx, f.get("pipeline"), false)?,
        dependencies: decode_dependencies(dx, f.get("dependencies"))?,
        options: decode_package_options(dx, f.get("options"))?,
        scriptlets: decode_scriptlets(dx, f.get("scriptlets"))?,
        description: dx.text_or_empty(&f, "description")?,
        url: dx.text_or_empty(&f, "url")?,
        commit: dx.text_or_empty(&f, "commit")?,
        copyright: decode_copyrights(dx, f.get("copyright"))?,
        annotations: dx.text_map(f.get("annotations"), "annotations")?,
        checks_disabled: decode_checks(dx, f.get("checks"))?,
        setcap: decode_setcaps(dx, f.get("setcap"))?,
        test: f.get("test").map(|n| decode_test(dx, n)).transpose()?,
        pos: node.pos,
    })
}

fn decode_test(dx: &Dx, node: &Node) -> Result<Test, RecipeError> {
    let f = dx.fields(node, "test", &["environment", "pipeline"])?;
    Ok(Test {
        environment: decode_environment(dx, f.get("environment"), "test.environment")?,
        pipeline: decode_pipelines(dx, f.get("pipeline"), false)?,
        pos: node.pos,
    })
}

const UPDATE_KEYS: &[&str] = &[
    "enabled",
    "manual",
    "require-sequential",
    "shared",
    "version-separator",
    "ignore-regex-patterns",
    "release-monitor",
    "github",
    "git",
    "oci",
    "version_data",
    "version-transform",
    "exclude-reason",
    "schedule",
    "enable-prerelease-tags",
];

fn decode_update(dx: &Dx, node: Option<&Node>) -> Result<Update, RecipeError> {
    let Some(node) = node else {
        return Ok(Update::default());
    };
    let f = dx.fields(node, "update", UPDATE_KEYS)?;
    Ok(Update {
        enabled: dx.bool(f.get("enabled"), "enabled")?,
    })
}

fn decode_build_options(
    dx: &Dx,
    node: Option<&Node>,
) -> Result<Vec<(Text, BuildOption)>, RecipeError> {
    let Some(node) = node.filter(|n| !n.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(entries) = node.as_map() else {
        return Err(dx.err(node.pos, "`options` must be a mapping of option names"));
    };
    entries
        .iter()
        .map(|e| {
            let f = dx.fields(&e.value, "options", &["vars", "environment"])?;
            let mut opt = BuildOption {
                vars: dx.text_map(f.get("vars"), "vars")?,
                ..BuildOption::default()
            };
            if let Some(env) = f.get("environment") {
                let ef = dx.fields(env, "environment", &["contents"])?;
                if let Some(c) = ef.get("contents") {
                    let cf = dx.fields(c, "contents", &["packages"])?;
                    if let Some(p) = cf.get("packages") {
                        let pf = dx.fields(p, "packages", &["add", "remove"])?;
                        opt.add_packages = dx.list(pf.get("add"), "add")?;
                        opt.remove_packages = dx.list(pf.get("remove"), "remove")?;
                    }
                }
            }
            Ok((Text::new(e.key.clone(), e.key_pos), opt))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::yaml::parse;

    fn decode(src: &str) -> Result<Recipe, RecipeError> {
        decode_recipe("r.yaml", &parse(src).unwrap())
    }

    const MIN: &str = "package:\n  name: foo\n  version: 1.10\n  epoch: 0\n";

    #[test]
    fn version_keeps_trailing_zero() {
        assert_eq!(decode(MIN).unwrap().package.version.value, "1.10");
    }

    #[test]
    fn version_keeps_leading_zeros() {
        let r = decode("package:\n  name: foo\n  version: 00303\n").unwrap();
        assert_eq!(r.package.version.value, "00303");
        assert_eq!(r.package.epoch.value, "0");
    }

    #[test]
    fn data_keys_stay_text() {
        let r = decode(&format!(
            "{MIN}data:\n  - name: py\n    items:\n      3.10: '310'\n      3.9: 39\n"
        ))
        .unwrap();
        let items: Vec<_> = r.data[0]
            .items
            .iter()
            .map(|(k, v)| (k.value.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(items, [("3.10", "310"), ("3.9", "39")]);
    }

    #[test]
    fn true_is_the_string_true_and_empty_is_empty() {
        let r = decode(&format!("{MIN}vars:\n  a: true\n  b:\n  c: ''\n  d: ~\n")).unwrap();
        let v: Vec<_> = r.vars.iter().map(|(_, v)| v.value.as_str()).collect();
        assert_eq!(v, ["true", "", "", ""]);
    }

    #[test]
    fn epoch_is_normalised_and_checked() {
        let r = decode("package:\n  name: foo\n  version: 1\n  epoch: 007\n").unwrap();
        assert_eq!(r.package.epoch.value, "7");
        let e = decode("package:\n  name: foo\n  version: 1\n  epoch: -1\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yaml:4:10: `epoch` must be a non-negative integer, found `-1`"
        );
    }

    #[test]
    fn unknown_key_suggests_nearest() {
        let e = decode(&format!("{MIN}pipline:\n  - runs: x\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yaml:5:1: unknown key `pipline` in `recipe` (did you mean `pipeline`?)"
        );
    }

    #[test]
    fn unknown_step_key_is_positioned() {
        let e = decode(&format!(
            "{MIN}pipeline:\n  - runs: x\n    working-dir: y\n"
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.yaml:7:5: unknown key `working-dir` in `pipeline` (did you mean `working-directory`?)"
        );
    }

    #[test]
    fn booleans_accept_yaml_spellings() {
        let r = decode(&format!(
            "{MIN}  options:\n    no-provides: true\n    no-depends: yes\n"
        ))
        .unwrap();
        assert!(r.package.options.no_provides && r.package.options.no_depends);
        let e = decode(&format!("{MIN}  options:\n    no-provides: maybe\n")).unwrap_err();
        assert!(e.message.contains("true or false"), "{e}");
    }

    #[test]
    fn epoch_reads_like_yaml_v3_into_uint64() {
        for (written, want) in [
            ("0", "0"),
            ("12", "12"),
            ("007", "7"),
            ("010", "8"),
            ("08", "8"),
            ("0x1f", "31"),
            ("0o17", "15"),
            ("0b101", "5"),
            ("1_000", "1000"),
            ("+5", "5"),
            ("-0", "0"),
            ("1.9", "1"),
            ("2e1", "20"),
            ("'3'", "3"),
        ] {
            let r = decode(&format!(
                "package:\n  name: foo\n  version: 1\n  epoch: {written}\n"
            ))
            .unwrap_or_else(|e| panic!("{written}: {e}"));
            assert_eq!(r.package.epoch.value, want, "{written}");
        }
        for bad in [
            "-1",
            "-0.5",
            "abc",
            "0x",
            "1.2.3",
            ".inf",
            "18446744073709551616",
        ] {
            let e = decode(&format!(
                "package:\n  name: foo\n  version: 1\n  epoch: {bad}\n"
            ))
            .unwrap_err();
            assert!(e.message.contains("non-negative integer"), "{bad}: {e}");
        }
    }

    /// A recipe using every key melange's schema (and apko's image
    /// configuration) accepts, at every level, decodes.
    const EVERY_KEY: &str = include_str!("../../../tests/fixtures/recipes/every-key.yaml");

    #[test]
    fn every_key_melange_accepts_decodes() {
        let r = decode(EVERY_KEY).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.package.name.value, "every-key");
        assert_eq!(r.package.test_resources.len(), 4);
        assert_eq!(r.package.resources.len(), 4);
        assert_eq!(r.package.cpe.len(), 9);
        assert_eq!(r.environment.packages.len(), 2);
        // runtime_repositories are the image's, not the build's.
        let repos: Vec<&str> = r
            .environment
            .repositories
            .iter()
            .map(Text::as_str)
            .collect();
        assert_eq!(
            repos,
            [
                "https://build.example.com/os",
                "https://packages.example.com/os"
            ]
        );
        assert_eq!(r.environment.accounts.users[0].uid.value, "1000");
        assert_eq!(r.data[0].items.len(), 3);
        assert!(r.update.enabled);
    }

    /// Newly accepted keys still give a "did you mean" for a typo of them.
    #[test]
    fn typos_of_newly_accepted_keys_are_caught() {
        for (place, typo, want) in [
            (
                "environment:\n  os-releese: {}\n",
                "os-releese",
                "os-release",
            ),
            (
                "pipeline:\n  - runs: x\n    retyr: {attempts: 2}\n",
                "retyr",
                "retry",
            ),
            (
                "pipeline:\n  - runs: x\n    retry: {atempts: 2}\n",
                "atempts",
                "attempts",
            ),
            ("  test-resource: {}\n", "test-resource", "test-resources"),
            (
                "environment:\n  contents:\n    runtime_repository: []\n",
                "runtime_repository",
                "runtime_repositories",
            ),
        ] {
            let e = decode(&format!("{MIN}{place}")).unwrap_err();
            assert!(
                e.message.contains(&format!("unknown key `{typo}`"))
                    && e.message.contains(&format!("did you mean `{want}`?")),
                "{typo}: {e}"
            );
        }
    }

    #[test]
    fn data_without_name_and_partial_var_transforms_are_accepted() {
        let r = decode(&format!(
            "{MIN}data:\n  - items: {{a: b}}\nvar-transforms:\n  - from: x\n    to: y\n"
        ))
        .unwrap();
        assert_eq!(r.data[0].name.value, "");
        assert_eq!(r.var_transforms[0].match_.value, "");
        let e = decode(&format!("{MIN}var-transforms:\n  - from: x\n")).unwrap_err();
        assert!(e.message.contains("missing `to`"), "{e}");
    }

    #[test]
    fn numbers_and_booleans_where_melange_types_them() {
        let r = decode(&format!(
            "{MIN}environment:\n  accounts:\n    users:\n      - {{username: u, uid: 1000, gid: 1000}}\n    groups:\n      - {{groupname: g, gid: 1000, members: [u]}}\npipeline:\n  - runs: x\n    assertions: {{required-steps: 1}}\n"
        ))
        .unwrap();
        assert_eq!(r.environment.accounts.groups[0].gid.value, "1000");
        assert_eq!(r.pipeline[0].required_steps.as_ref().unwrap().value, "1");
    }

    #[test]
    fn nearest_only_for_close_typos() {
        assert_eq!(nearest("pipline", ROOT_KEYS), Some("pipeline"));
        assert_eq!(nearest("zzzzzzzzzz", ROOT_KEYS), None);
    }
}
