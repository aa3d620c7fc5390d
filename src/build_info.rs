//! What this binary was built from, for `pkgbuild version`, `-V` and the
//! SBOM's creator: a bug report or an SBOM then names the exact source.

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from, or "unknown" (not built from
/// a git checkout).
pub const GIT_COMMIT: &str = env!("PKGBUILD_GIT_COMMIT");
/// That commit's date (YYYY-MM-DD), or "unknown".
pub const GIT_DATE: &str = env!("PKGBUILD_GIT_DATE");

/// `0.1.0 (commit 0123abcd…, 2026-12-07)`: the `-V` text after the name.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("PKGBUILD_GIT_COMMIT"),
    ", ",
    env!("PKGBUILD_GIT_DATE"),
    ")"
);

/// The SPDX `creators` entry: `Tool: pkgbuild-VERSION` plus the commit, so
/// an SBOM says which build of the tool wrote it.
pub fn spdx_creator() -> String {
    format!("Tool: pkgbuild-{VERSION} (commit {GIT_COMMIT}, {GIT_DATE})")
}
