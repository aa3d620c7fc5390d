//! `--out-dir` is checked before anything is built: a repository that
//! cannot be written would otherwise fail every build at its log file,
//! with a message about the log rather than the flag.

use std::path::Path;

/// Creates `dir` when missing and proves a file can be made in it; the
/// error names the flag and the directory (a usage error, exit 2).
pub(crate) fn ensure_writable(flag: &str, dir: &Path) -> anyhow::Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        crate::cli::input_error(anyhow::anyhow!("{flag} {}: {what}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("cannot create the output directory", e))?;
    tempfile::Builder::new()
        .prefix(".pkgbuild-write-check")
        .tempfile_in(dir)
        .map_err(|e| fail("the output directory is not writable", e))?;
    Ok(())
}
