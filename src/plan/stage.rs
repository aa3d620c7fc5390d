//! Host stages: the steps that run on the build host, outside the sandbox,
//! before any sandboxed step. Build steps have no network, so the
//! compiler turns every `fetch` and `git-checkout` step of the build into
//! a typed [`HostStage`] (the download or clone, with its checks); the
//! engine runs these values and hands the result to the sandboxed step
//! through an environment variable. Nothing at run time looks at `uses`
//! names.
//!
//! A stage's id is the step's path in the compiled pipeline tree, written
//! with the recipe's key names: `pipeline[2]`, `pipeline[0].pipeline[1]`
//! (a step inside a `uses:` pipeline), `subpackages[1].pipeline[0]`
//! (subpackages counted after `range` expansion). It depends only on the
//! recipe, its options and the pipelines used, so it is the same in every
//! run and in `pkgbuild compile`.

use serde::Serialize;

/// Variable a fetch step reads: the host path (or guest path under
/// bubblewrap) of the verified download.
pub const FETCHED_FILE_VAR: &str = "PKGBUILD_FETCHED_FILE";
/// Variable a git-checkout step reads: where the host-side checkout is.
pub const CHECKOUT_DIR_VAR: &str = "PKGBUILD_CHECKOUT_DIR";

/// One piece of work done on the host before the sandboxed steps.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostStage {
    /// Stable id: the step's path in the pipeline tree (see module docs).
    pub id: String,
    /// Always `host`: says in the JSON that this runs outside the sandbox.
    pub runs_on: &'static str,
    /// What the stage reads from outside the build (a URL or repository).
    pub fetches: String,
    /// Where on the host it writes (relative to the engine's download
    /// cache or its per-build source directory).
    pub writes: String,
    /// The variable the sandboxed step finds the result in.
    pub hands_over: &'static str,
    #[serde(flatten)]
    pub kind: HostStageKind,
}

/// The typed inputs of a host stage, checked at compile time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HostStageKind {
    /// Download `uri` into the checksum-addressed cache and verify it; the
    /// sandboxed `fetch` step then unpacks it.
    Fetch {
        uri: String,
        expected: Digest,
        /// Unpack the download (the sandboxed step's work).
        extract: bool,
        strip_components: u32,
        /// Where the sandboxed step unpacks, absolute in the sandbox.
        directory: String,
    },
    /// Clone `repository` and verify its commit; the sandboxed
    /// `git-checkout` step then places the tree at `destination`.
    GitCheckout {
        repository: String,
        branch: Option<String>,
        tag: Option<String>,
        expected_commit: Option<String>,
        /// `None`: the default depth (see `source::git`); -1: full history.
        depth: Option<i64>,
        recurse_submodules: bool,
        /// `[branch/]commit: comment` lines, applied in order.
        cherry_picks: Vec<String>,
        /// Where the sandboxed step places the tree, absolute in the sandbox.
        destination: String,
    },
}

/// The digest a download must have, lowercase hex of the right length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Digest {
    Sha256(String),
    Sha512(String),
}

impl Digest {
    /// `sha256` or `sha512`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Digest::Sha256(_) => "sha256",
            Digest::Sha512(_) => "sha512",
        }
    }

    /// The digest in lowercase hex.
    pub fn hex(&self) -> &str {
        match self {
            Digest::Sha256(h) | Digest::Sha512(h) => h,
        }
    }
}

impl HostStage {
    /// The id as a file name (`pipeline[0].pipeline[1]` →
    /// `pipeline-0-pipeline-1`): the checkout directory of a git stage.
    pub fn slug(&self) -> String {
        slug(&self.id)
    }
}

/// `id` with every run of characters other than ASCII letters and digits
/// turned into one `-`, trimmed: safe as a single path component.
pub fn slug(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for c in id.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_single_safe_path_components() {
        assert_eq!(slug("pipeline[2]"), "pipeline-2");
        assert_eq!(
            slug("subpackages[0].pipeline[1].pipeline[0]"),
            "subpackages-0-pipeline-1-pipeline-0"
        );
        assert_eq!(slug("../x"), "x");
    }
}
