//! Checks of `build`'s melange flags that describe the recipe and its
//! workspace (`--workspace-dir`, `--git-repo-url`, `--license`), made
//! before anything is compiled so a mistake is a usage error (exit 2).

use crate::cli::input_error;

pub(crate) fn check(args: &super::build::Args, archs: usize) -> anyhow::Result<()> {
    if let Some(dir) = &args.workspace_dir {
        // One workspace holds one build: a second would find it used.
        if args.recipes.len() > 1 || archs > 1 {
            return Err(input_error(anyhow::anyhow!(
                "--workspace-dir {}: takes one recipe and one architecture (given {} recipes, {archs} architectures)",
                dir.display(),
                args.recipes.len()
            )));
        }
        crate::engine::workspace::given_dir(dir).map_err(input_error)?;
    }
    if let Some(l) = &args.license {
        let norm = crate::meta::sbom::normalize_license(l);
        if !norm.notes.is_empty() || norm.expression == "NOASSERTION" {
            return Err(input_error(anyhow::anyhow!(
                "--license {l:?}: not an SPDX license expression of listed identifiers (such as Apache-2.0 or MIT OR Apache-2.0): {}",
                norm.notes.join("; ")
            )));
        }
    }
    if let Some(url) = &args.git_repo_url {
        let ok = !url.is_empty()
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
            && (url.contains("://") || url.starts_with("git@"));
        if !ok {
            return Err(input_error(anyhow::anyhow!(
                "--git-repo-url {url:?}: expected the recipe repository's URL, such as https://github.com/ORG/REPO"
            )));
        }
    }
    Ok(())
}
