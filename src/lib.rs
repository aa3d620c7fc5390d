//! pkgbuild: build signed Alpine `.apk` v2 packages and repositories from
//! melange-style YAML recipes.
//!
//! Data flow, one way only:
//!
//! ```text
//! recipe.yaml ─ recipe::load ─▶ Recipe ─ plan::compile ─▶ Plan
//!   ─ source (host-side fetch/git) + sandbox (steps) ─▶ staged trees
//!   ─ meta (scan deps, SBOM, lint) ─▶ apk::package ─▶ .apk ─ repo ─▶ <repo>/<arch>/APKINDEX.tar.gz
//! ```
//!
//! `apk` knows nothing of recipes or processes; `recipe` knows nothing of
//! building; `sandbox` runs shell steps and knows nothing of apk; only
//! `engine` sees the whole flow. `cli` translates flags into options.

pub mod apk;
pub mod arch;
pub mod atomic;
pub mod build_info;
pub mod ciplan;
pub mod cli;
pub mod engine;
pub mod error;
pub mod image;
pub mod install;
pub mod lockdir;
pub mod meta;
pub mod open;
pub mod plan;
pub mod publish;
pub mod recipe;
pub mod repo;
pub mod resolve;
pub mod sandbox;
pub mod source;
pub mod term;
pub mod upstream;

/// The shared test data (`$PKGBUILD_TESTDATA`, else `../shared/testdata`
/// beside the crate, as CI lays it out).
#[cfg(test)]
pub(crate) fn testdata() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("PKGBUILD_TESTDATA") {
        return dir.into();
    }
    let sibling = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    assert!(
        sibling.is_dir(),
        "shared test data not found at {}: set PKGBUILD_TESTDATA to its directory",
        sibling.display()
    );
    sibling
}
