//! The recipe structs, as decoded: values keep the text and position the
//! author wrote them at; nothing here reads YAML.

use serde::Serialize;

use crate::recipe::yaml::Pos;

/// A scalar value with the place it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Text {
    pub value: String,
    pub pos: Pos,
}

impl Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

impl Text {
    pub fn new(value: impl Into<String>, pos: Pos) -> Text {
        Text {
            value: value.into(),
            pos,
        }
    }
    pub fn as_str(&self) -> &str {
        &self.value
    }
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

/// An ordered string map as written (`vars`, `with`, `environment`, ...).
pub type TextMap = Vec<(Text, Text)>;

/// Find a key in an ordered map.
pub fn lookup<'a>(map: &'a TextMap, key: &str) -> Option<&'a Text> {
    map.iter().find(|(k, _)| k.value == key).map(|(_, v)| v)
}

/// The root of a recipe file.
#[derive(Clone, Debug, Default)]
pub struct Recipe {
    /// Required: package metadata.
    pub package: Package,
    /// Optional: the build environment (apko image configuration). Default empty.
    pub environment: Environment,
    /// Optional: Linux capabilities for the build runner. Default none.
    pub capabilities: Capabilities,
    /// Required (may be empty): the steps that build the main package.
    pub pipeline: Vec<Pipeline>,
    /// Optional: further packages built from the same tree. Default none.
    pub subpackages: Vec<Subpackage>,
    /// Optional: named item maps that `subpackages[].range` iterates; a
    /// later entry with the same name replaces an earlier one. Default none.
    pub data: Vec<RangeData>,
    /// Optional: auto-update settings (not used for building). Default disabled.
    pub update: Update,
    /// Optional: variables usable as `${{vars.NAME}}`. Default none.
    pub vars: TextMap,
    /// Optional: regex rewrites that define more `vars`. Default none.
    pub var_transforms: Vec<VarTransformSpec>,
    /// Optional: build variants enabled with `--build-option NAME`. Default none.
    pub options: Vec<(Text, BuildOption)>,
    /// Optional: tests of the main package. Default none.
    pub test: Option<Test>,
    /// Where `package:` is (or 1:1 if missing), for whole-recipe errors.
    pub pos: Pos,
}

/// `package:` block.
#[derive(Clone, Debug, Default)]
pub struct Package {
    /// Required: package name, `^[A-Za-z0-9][A-Za-z0-9._+-]*$`.
    pub name: Text,
    /// Required: apk version (`1.2.3`, `1.0_rc1`, ...), kept as written.
    pub version: Text,
    /// Optional: release number, default `0`; normalised decimal text.
    pub epoch: Text,
    /// Optional: one-line description. Default "".
    pub description: Text,
    /// Optional: upstream homepage. Default "".
    pub url: Text,
    /// Optional: git commit of the recipe. Default "".
    pub commit: Text,
    /// Optional: apk or Go arch names this recipe builds for; `all` or empty means any.
    pub target_architecture: Vec<Text>,
    /// Optional: licensing; `license` values join into the SPDX expression. Default none.
    pub copyright: Vec<Copyright>,
    /// Optional: declared dependencies. Default none.
    pub dependencies: Dependencies,
    /// Optional: package options. Default all false.
    pub options: PackageOptions,
    /// Optional: install scripts. Default none.
    pub scriptlets: Scriptlets,
    /// Optional: `checks.disabled` linter names. Default none.
    pub checks_disabled: Vec<Text>,
    /// Optional: CPE fields for vulnerability matching. Default none.
    pub cpe: TextMap,
    /// Optional: file capabilities to set. Default none.
    pub setcap: Vec<SetCap>,
    /// Optional: build timeout as written (`1h`, `3600`). Default "".
    pub timeout: Text,
    /// Optional: build resources (cpu, cpumodel, memory, disk). Default none.
    pub resources: TextMap,
    /// Optional: test resources (same keys). Default none.
    pub test_resources: TextMap,
    /// Optional: free-form annotations. Default none.
    pub annotations: TextMap,
    pub pos: Pos,
}

/// One `copyright:` entry (simple `license`, or an `operator` group of `licenses`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Copyright {
    /// Optional: SPDX license identifier or expression. Default "".
    pub license: Text,
    /// Optional: paths the license covers. Default none.
    pub paths: Vec<Text>,
    /// Optional: copyright attestation text. Default "".
    pub attestation: Text,
    /// Optional: path to a custom license text. Default "".
    #[serde(rename = "license-path")]
    pub license_path: Text,
    /// Optional: license detection override. Default "".
    #[serde(rename = "detection-override")]
    pub detection_override: Text,
    /// Optional: `AND` or `OR` for a group. Default "".
    pub operator: Text,
    /// Optional: group members. Default none.
    pub licenses: Vec<Copyright>,
}

/// `dependencies:` of a package or subpackage.
#[derive(Clone, Debug, Default)]
pub struct Dependencies {
    /// Optional: runtime dependencies. Default none.
    pub runtime: Vec<Text>,
    /// Optional: virtual names provided. Default none.
    pub provides: Vec<Text>,
    /// Optional: packages whose files this one may overwrite. Default none.
    pub replaces: Vec<Text>,
    /// Optional: integer priority among providers. Default none.
    pub provider_priority: Option<Text>,
    /// Optional: integer priority for replaces. Default none.
    pub replaces_priority: Option<Text>,
}

/// `options:` of a package or subpackage.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct PackageOptions {
    /// Optional: do not generate provides. Default false.
    pub no_provides: bool,
    /// Optional: do not generate dependencies. Default false.
    pub no_depends: bool,
    /// Optional: do not generate `cmd:` provides. Default false.
    pub no_commands: bool,
    /// Optional: unversioned `so:` dependencies. Default false.
    pub no_versioned_shlib_deps: bool,
}

/// `scriptlets:` (each script should start with a shebang).
#[derive(Clone, Debug, Default)]
pub struct Scriptlets {
    /// Optional: `.pre-install` script. Default none.
    pub pre_install: Option<Text>,
    /// Optional: `.post-install` script. Default none.
    pub post_install: Option<Text>,
    /// Optional: `.pre-deinstall` script. Default none.
    pub pre_deinstall: Option<Text>,
    /// Optional: `.post-deinstall` script. Default none.
    pub post_deinstall: Option<Text>,
    /// Optional: `.pre-upgrade` script. Default none.
    pub pre_upgrade: Option<Text>,
    /// Optional: `.post-upgrade` script. Default none.
    pub post_upgrade: Option<Text>,
    /// Optional: a trigger script and the paths that fire it. Default none.
    pub trigger: Option<Trigger>,
}

/// `scriptlets.trigger`.
#[derive(Clone, Debug, Default)]
pub struct Trigger {
    /// Optional: the `.trigger` script. Default "".
    pub script: Text,
    /// Optional: directories whose changes fire it. Default none.
    pub paths: Vec<Text>,
}

/// One `setcap:` entry.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SetCap {
    /// Required: the file path.
    pub path: Text,
    /// Required: capability list → flags (e.g. `cap_net_raw: "+ep"`).
    pub add: Vec<(Text, Text)>,
    /// Required: why the capability is needed.
    pub reason: Text,
}

/// `environment:` — the apko image configuration of the build or test.
///
/// Accepted and ignored (image settings a package build has no use for;
/// their sub-keys are not checked, so newer apko fields still parse):
/// `contents.runtime_repositories` (not used at build time, as in apko),
/// `contents.baseimage` {image, apkindex}, `entrypoint` {type, command,
/// shell-fragment, services}, `cmd`, `stop-signal`, `work-dir`, `archs`,
/// `paths` [{path, type, uid, gid, permissions, source, recursive}],
/// `os-release` {name, id, version-id, pretty-name, home-url,
/// bug-report-url}, `vcs-url`, `annotations`, `include`, `volumes`,
/// `layering` {strategy, budget}, `certificates`.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    /// Optional: `build_repositories` then `repositories`, merged. Default none.
    pub repositories: Vec<Text>,
    /// Optional: keyring URLs or paths. Default none.
    pub keyring: Vec<Text>,
    /// Optional: packages to install. Default none.
    pub packages: Vec<Text>,
    /// Optional: environment variables. Default none.
    pub environment: TextMap,
    /// Optional: users and groups. Default none.
    pub accounts: Accounts,
}

/// `environment.accounts`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Accounts {
    /// Optional: user name or uid the steps run as. Default "" (the runner's).
    #[serde(rename = "run-as", skip_serializing_if = "Text::is_empty")]
    pub run_as: Text,
    /// Optional: users to create. Default none (`build` is added at compile).
    pub users: Vec<User>,
    /// Optional: groups to create. Default none (`build` is added at compile).
    pub groups: Vec<Group>,
}

/// One `accounts.users` entry; numbers are kept as written (`uid: 1000`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct User {
    /// Required by apko: the user name. Default "".
    pub username: Text,
    /// Required by apko: the numeric uid. Default "".
    pub uid: Text,
    /// Optional: the numeric primary gid. Default "".
    pub gid: Text,
    /// Optional: login shell. Default "".
    pub shell: Text,
    /// Optional: home directory. Default "".
    pub homedir: Text,
}

/// One `accounts.groups` entry.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Group {
    /// Required by apko: the group name. Default "".
    pub groupname: Text,
    /// Required by apko: the numeric gid. Default "".
    pub gid: Text,
    /// Optional: member user names. Default none.
    pub members: Vec<Text>,
}

/// Top-level `capabilities:`.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// Optional: capabilities added to the build container. Default none.
    pub add: Vec<Text>,
    /// Optional: capabilities dropped from it. Default none.
    pub drop: Vec<Text>,
}

/// One pipeline step (in a recipe or in a `uses:` pipeline file).
///
/// Accepted and ignored: `retry` {attempts, backoff, initial-delay,
/// max-delay} (melange re-runs a failed step; we run it once).
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    /// Optional: condition; the step is dropped when false.
    pub if_: Option<Text>,
    /// Optional: a name for logs. Default none.
    pub name: Option<Text>,
    /// Optional: a reusable pipeline to run (`autoconf/make`).
    pub uses: Option<Text>,
    /// Optional: inputs to the `uses:` pipeline. Default none.
    pub with: TextMap,
    /// Whether `with:` was written at all (melange rejects `with` without `uses`).
    pub has_with: bool,
    /// Optional: shell text run with /bin/sh.
    pub runs: Option<Text>,
    /// Optional: nested steps that share this step's settings.
    pub pipeline: Vec<Pipeline>,
    /// Optional (pipeline files): declared inputs. Default none.
    pub inputs: Vec<(Text, Input)>,
    /// Optional: packages the step needs in the build environment.
    pub needs_packages: Vec<Text>,
    /// Optional: a label for `--continue-label` style tooling. Default none.
    pub label: Option<Text>,
    /// Optional: `assertions.required-steps`. Default none.
    pub required_steps: Option<Text>,
    /// Optional: working directory, relative to the build root or absolute.
    pub working_directory: Option<Text>,
    /// Optional: environment variables for this step. Default none.
    pub environment: TextMap,
    pub pos: Pos,
}

/// A declared pipeline input.
#[derive(Clone, Debug, Default)]
pub struct Input {
    /// Optional: what the input is for. Default "".
    pub description: Text,
    /// Optional: default value; may use substitutions. Default "".
    pub default: Option<Text>,
    /// Optional: the caller must give a non-empty value. Default false.
    pub required: bool,
}

/// A subpackage.
#[derive(Clone, Debug, Default)]
pub struct Subpackage {
    /// Optional: condition; the subpackage is dropped when false.
    pub if_: Option<Text>,
    /// Optional: name of a `data` entry; one subpackage per item.
    pub range: Option<Text>,
    /// Required: the subpackage name (may use `${{range.key}}`).
    pub name: Text,
    /// Optional: steps that move files into the subpackage. Default none.
    pub pipeline: Vec<Pipeline>,
    /// Optional: declared dependencies. Default none.
    pub dependencies: Dependencies,
    /// Optional: package options. Default all false.
    pub options: PackageOptions,
    /// Optional: install scripts. Default none.
    pub scriptlets: Scriptlets,
    /// Optional: one-line description. Default "".
    pub description: Text,
    /// Optional: homepage. Default the main package's.
    pub url: Text,
    /// Optional: recipe commit. Default the main package's.
    pub commit: Text,
    /// Optional: licensing. Default the main package's.
    pub copyright: Vec<Copyright>,
    /// Optional: free-form annotations. Default none.
    pub annotations: TextMap,
    /// Optional: `checks.disabled` linter names. Default none.
    pub checks_disabled: Vec<Text>,
    /// Optional: file capabilities to set. Default none.
    pub setcap: Vec<SetCap>,
    /// Optional: tests of this subpackage. Default none.
    pub test: Option<Test>,
    pub pos: Pos,
}

/// One `data:` entry.
#[derive(Clone, Debug, Default)]
pub struct RangeData {
    /// Optional (melange accepts it missing): the name `range` refers to. Default "".
    pub name: Text,
    /// Optional: key → value items, iterated in byte order of the keys. Default none.
    pub items: TextMap,
}

/// `update:` block; only `enabled` matters for us. The other keys
/// (`manual`, `require-sequential`, `shared`, `version-separator`,
/// `ignore-regex-patterns`, `release-monitor`, `github`, `git`, `oci`,
/// `version_data`, `version-transform`, `exclude-reason`, `schedule`,
/// `enable-prerelease-tags`) are checked by name and accepted as written.
#[derive(Clone, Debug, Default)]
pub struct Update {
    /// Optional: automatic updates on. Default false.
    pub enabled: bool,
}

/// One `var-transforms:` entry.
#[derive(Clone, Debug, Default)]
pub struct VarTransformSpec {
    /// Optional (melange reads missing as ""): source text, usually `${{package.version}}`.
    pub from: Text,
    /// Optional (missing is ""): regular expression.
    pub match_: Text,
    /// Optional (missing is ""): replacement (`$1` refers to groups).
    pub replace: Text,
    /// Required: the new variable's name (`vars.<to>`).
    pub to: Text,
}

/// One entry of top-level `options:` (a build variant).
#[derive(Clone, Debug, Default)]
pub struct BuildOption {
    /// Optional: vars overridden when enabled.
    pub vars: TextMap,
    /// Optional: packages added to the build environment.
    pub add_packages: Vec<Text>,
    /// Optional: packages removed from the build environment.
    pub remove_packages: Vec<Text>,
}

/// `test:` block.
#[derive(Clone, Debug, Default)]
pub struct Test {
    /// Optional: the test image (the package under test is added). Default empty.
    pub environment: Environment,
    /// Optional: test steps. Default none.
    pub pipeline: Vec<Pipeline>,
    pub pos: Pos,
}
