//! The build plan: a recipe compiled into plain data. Every `uses:` is
//! inlined, every input bound, every `${{...}}` substituted, every `if:`
//! decided and every `range` expanded; nothing has run yet. The build
//! engine consumes this, and `pkgbuild compile` prints it as JSON, so the
//! field names below are a contract.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::arch::Arch;
use crate::recipe::model::{Accounts, Copyright, PackageOptions, SetCap};

pub mod builtin;
pub mod compile;
pub mod emit;
pub mod stage;

pub use compile::{compile, package_version, CompileError};
pub use stage::{Digest, HostStage, HostStageKind};

/// Everything needed to build one recipe for one architecture.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The main package first, then each subpackage in recipe order
    /// (after `range` expansion; those whose `if:` is false are left out).
    pub packages: Vec<PackagePlan>,
    /// The build environment (packages to install, variables, accounts).
    pub environment: EnvironmentPlan,
    /// apk architecture name (`x86_64`).
    pub arch: String,
    /// Where the build happens inside the sandbox (`/home/build`).
    pub build_root: String,
    /// False when `package.target-architecture` excludes `arch`: melange
    /// skips such a build, and so should the engine.
    pub builds_for_arch: bool,
    /// Top-level `capabilities`: changes to the default set of a root step.
    pub capabilities: CapabilitiesPlan,
    /// What runs on the host, outside the sandbox, before any step: every
    /// build step's [`HostStage`], in the order the engine runs them (main
    /// package first, depth first). Each is also on its step.
    pub host_stages: Vec<HostStage>,
}

/// `capabilities: {add, drop}` as written (names checked by the engine).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CapabilitiesPlan {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// The build or test environment.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EnvironmentPlan {
    pub contents: Contents,
    /// Environment variables for every step (step variables override).
    pub environment: BTreeMap<String, String>,
    pub accounts: Accounts,
}

/// `environment.contents`: where packages come from and which to install.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Contents {
    pub repositories: Vec<String>,
    pub keyring: Vec<String>,
    /// Recipe packages, build-option changes, then every `needs.packages`
    /// of the steps that will run; first occurrence kept.
    pub packages: Vec<String>,
}

/// One package (main or sub) the build produces.
#[derive(Clone, Debug, Serialize)]
pub struct PackagePlan {
    pub name: String,
    pub version: String,
    /// Decimal text (`0`).
    pub epoch: String,
    /// `<version>-r<epoch>`.
    pub full_version: String,
    pub description: String,
    pub url: String,
    pub commit: String,
    /// SPDX expression built from `copyright[].license` (joined with AND).
    pub license: String,
    pub copyright: Vec<Copyright>,
    pub dependencies: Dependencies,
    pub options: PackageOptions,
    pub scriptlets: Scriptlets,
    pub checks_disabled: Vec<String>,
    pub setcap: Vec<SetCap>,
    pub cpe: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub target_architecture: Vec<String>,
    pub is_subpackage: bool,
    /// Where this package's files are staged (`${{targets.contextdir}}`).
    pub destdir: String,
    pub steps: Vec<Step>,
    pub test: Option<TestPlan>,
}

/// Declared dependencies after substitution.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dependencies {
    pub runtime: Vec<String>,
    pub provides: Vec<String>,
    pub replaces: Vec<String>,
    pub provider_priority: Option<String>,
    pub replaces_priority: Option<String>,
}

/// Install scripts after substitution.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scriptlets {
    pub pre_install: Option<String>,
    pub post_install: Option<String>,
    pub pre_deinstall: Option<String>,
    pub post_deinstall: Option<String>,
    pub pre_upgrade: Option<String>,
    pub post_upgrade: Option<String>,
    pub trigger: Option<Trigger>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Trigger {
    pub script: String,
    pub paths: Vec<String>,
}

/// A package's test: its environment and steps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TestPlan {
    /// Packages are sorted and deduplicated and include the package under test.
    pub environment: EnvironmentPlan,
    pub steps: Vec<Step>,
}

/// One step. A `uses:` step carries the used pipeline's own `runs` (if
/// any) and its steps in `pipeline`; the runner runs `runs`, then `pipeline`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Step {
    pub name: Option<String>,
    pub uses: Option<String>,
    /// Every declared input of the used pipeline, resolved (defaults applied).
    pub with: BTreeMap<String, String>,
    /// Fully substituted shell text.
    pub runs: Option<String>,
    /// Absolute, under `build_root` unless the recipe gave an absolute path.
    pub working_directory: String,
    /// Recipe environment merged with every enclosing step's environment.
    pub environment: BTreeMap<String, String>,
    pub pipeline: Vec<Step>,
    /// This step's own `needs.packages` (already merged into the environment).
    pub needs_packages: Vec<String>,
    /// True when `uses` was resolved and its pipeline inlined here (`with`
    /// holds its inputs); false for a plain step, or for a `uses` written
    /// next to an explicit `pipeline:`, which melange treats as a note.
    /// Kept out of the JSON: it only tells `emit` how to write the step back.
    #[serde(skip)]
    pub inlined: bool,
    /// Set on a build step whose download or clone the engine does on the
    /// host before the sandboxed steps run (see [`stage`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<HostStage>,
}

/// How to compile: target arch, where `uses:` pipelines come from, and
/// which build options and extra vars apply.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub arch: Arch,
    /// Searched in order before the built-in pipelines.
    pub pipeline_dirs: Vec<PathBuf>,
    /// Names of recipe `options:` to enable.
    pub build_options: Vec<String>,
    /// A YAML mapping merged over the recipe's `vars`.
    pub vars_file: Option<PathBuf>,
    /// Sandbox build directory; `targets.*` derive from it.
    pub build_root: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            arch: Arch::host().unwrap_or(Arch::X86_64),
            pipeline_dirs: Vec::new(),
            build_options: Vec::new(),
            vars_file: None,
            build_root: "/home/build".to_string(),
        }
    }
}
