//! `--out-dir` is checked before anything is built: a repository that
//! cannot be written would otherwise fail every build at its log file,
//! with a message about the log rather than the flag.

use std::path::Path;

/// Proves a file can be made in `dir`, or (when it does not exist yet) in
/// the nearest existing parent it would be created in, without creating
/// anything: a run refused for a recipe error must leave no directory
/// behind. The error names the flag and the directory (exit 2).
pub(crate) fn ensure_writable(flag: &str, dir: &Path) -> anyhow::Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        crate::cli::input_error(anyhow::anyhow!("{flag} {}: {what}: {e}", dir.display()))
    };
    let mut probe = dir;
    while !probe.exists() {
        match probe.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe = p,
            _ => {
                probe = Path::new(".");
                break;
            }
        }
    }
    if !probe.is_dir() {
        return Err(fail(
            "cannot create the output directory",
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a directory", probe.display()),
            ),
        ));
    }
    tempfile::Builder::new()
        .prefix(".pkgbuild-write-check")
        .tempfile_in(probe)
        .map_err(|e| fail("the output directory is not writable", e))?;
    Ok(())
}
