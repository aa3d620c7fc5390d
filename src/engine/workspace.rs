//! The build workspace: a private directory seen by the steps as the build
//! root (`/home/build` in the sandbox), seeded with a copy of the source
//! directory and holding one `melange-out/<name>` output tree per package.
//!
//! The copy never follows symlinks (a link is copied as a link), so a
//! hostile source tree cannot pull host files into a package.
//!
//! The scratch directory (`$TMPDIR/pkgbuild-ws-*`) is a [`LockedDir`]: a
//! build killed with SIGKILL leaves it behind, and the next build removes
//! it once nobody holds its lock.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::BuildLog;
use crate::lockdir::LockedDir;

/// Where a build happens on the host.
///
/// Under bubblewrap the build directory is a fresh temporary directory,
/// mounted at `/home/build` whatever its host path. The host runner has no
/// mounts: the steps see the host path itself, and it is written into
/// binaries, logs and the embedded recipe. So it gets a fixed path per
/// package and architecture (`$TMPDIR/pkgbuild-host-<uid>/<name>-<arch>`),
/// locked for the duration of the build, which keeps host builds
/// reproducible on one machine.
pub struct Workspace {
    scratch: LockedDir,
    build_dir: PathBuf,
    fixed: Option<(PathBuf, fs::File)>,
    /// `--workspace-dir`: the user's directory, always kept.
    given: bool,
}

/// `--workspace-dir DIR` made ready: created when absent, refused when it
/// is not an empty directory (a build must start from a known state, and
/// nothing of the user's may be overwritten); its absolute path.
pub fn given_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    let what = || format!("--workspace-dir {}", dir.display());
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mut entries =
                fs::read_dir(dir).with_context(|| format!("{}: cannot read", what()))?;
            if entries.next().is_some() {
                bail!("{}: not empty; the workspace must start empty (remove it, or name a new directory)", what());
            }
        }
        Ok(_) => bail!("{}: not a directory", what()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", what()))?
        }
        Err(e) => return Err(e).with_context(what),
    }
    let abs = dir.canonicalize().with_context(what)?;
    if abs.to_str().is_none() {
        bail!("{}: not a UTF-8 path", what());
    }
    Ok(abs)
}

impl Workspace {
    /// A workspace with a private build directory (bubblewrap).
    pub fn temporary() -> anyhow::Result<Workspace> {
        let scratch = scratch()?;
        let build_dir = scratch.path().join("build");
        fs::create_dir_all(&build_dir)?;
        Ok(Workspace {
            scratch,
            build_dir,
            fixed: None,
            given: false,
        })
    }

    /// The user's `--workspace-dir` (see [`given_dir`]) as the build
    /// directory; kept whatever happens.
    pub fn given(dir: &Path) -> anyhow::Result<Workspace> {
        Ok(Workspace {
            scratch: scratch()?,
            build_dir: given_dir(dir)?,
            fixed: None,
            given: true,
        })
    }

    /// A workspace whose build directory has a stable path (host runner),
    /// [`fixed_dir`].
    pub fn fixed(name: &str, arch: &str, log: &BuildLog) -> anyhow::Result<Workspace> {
        let uid = rustix::process::getuid().as_raw();
        let base = fixed_base();
        match fs::create_dir(&base) {
            Ok(()) => fs::set_permissions(&base, fs::Permissions::from_mode(0o700))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", base.display())),
        }
        // A shared temp directory: refuse one planted by someone else.
        let meta = fs::symlink_metadata(&base)?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o022 != 0 {
            bail!(
                "{}: not a private directory owned by uid {uid}; remove it or set TMPDIR",
                base.display()
            );
        }
        let build_dir = fixed_dir(name, arch);
        let safe = safe_name(name, arch);
        let lock_path = base.join(format!("{safe}.lock"));
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("{}: cannot open lock", lock_path.display()))?;
        if let Err(fs::TryLockError::WouldBlock) = lock.try_lock() {
            log.info(&format!(
                "waiting for another build in {}",
                build_dir.display()
            ));
            lock.lock()?;
        }
        // Left over from a killed build: start clean.
        if fs::symlink_metadata(&build_dir).is_ok() {
            fs::remove_dir_all(&build_dir)
                .with_context(|| format!("{}: cannot clear old workspace", build_dir.display()))?;
        }
        fs::create_dir(&build_dir)?;
        Ok(Workspace {
            scratch: scratch()?,
            build_dir: build_dir.clone(),
            fixed: Some((build_dir, lock)),
            given: false,
        })
    }

    /// Host path of the build root.
    pub fn build_dir(&self) -> &Path {
        &self.build_dir
    }

    /// Private scratch space next to the build (sources, sysroot).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Where the build environment's sysroot goes: outside the build
    /// directory, so nothing of it can end up in a package. The host
    /// runner's steps see its host path (it reaches binaries through
    /// header paths), so there it is fixed like the build directory:
    /// `<build dir>.sysroot`, under the same lock.
    pub fn sysroot_dir(&self) -> PathBuf {
        match &self.fixed {
            Some((dir, _)) => {
                let mut s = dir.clone().into_os_string();
                s.push(".sysroot");
                PathBuf::from(s)
            }
            None => self.scratch().join("sysroot"),
        }
    }

    /// Remove the workspace, or keep it and say where it is.
    pub fn finish(self, keep: bool, log: &BuildLog) {
        if self.given {
            log.info(&format!("workspace is {}", self.build_dir.display()));
            return;
        }
        if keep {
            log.info(&format!("workspace kept at {}", self.build_dir.display()));
            self.scratch.keep();
            return;
        }
        if let Some((dir, _lock)) = &self.fixed {
            let _ = fs::remove_dir_all(dir);
            let _ = fs::remove_dir_all(self.sysroot_dir());
        }
    }
}

/// A workspace that is kept or removed (as `--keep-workspace` says) however
/// the build ends: early returns by `?` included.
pub struct WorkspaceGuard<'a> {
    workspace: Option<Workspace>,
    keep: bool,
    log: &'a BuildLog<'a>,
}

impl<'a> WorkspaceGuard<'a> {
    pub fn new(workspace: Workspace, keep: bool, log: &'a BuildLog<'a>) -> Self {
        WorkspaceGuard {
            workspace: Some(workspace),
            keep,
            log,
        }
    }
}

impl std::ops::Deref for WorkspaceGuard<'_> {
    type Target = Workspace;

    fn deref(&self) -> &Workspace {
        self.workspace
            .as_ref()
            .expect("the workspace is only taken on drop")
    }
}

impl Drop for WorkspaceGuard<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.workspace.take() {
            ws.finish(self.keep, self.log);
        }
    }
}

/// Prefix of every scratch directory in `$TMPDIR`.
pub const SCRATCH_PREFIX: &str = "pkgbuild-ws-";

fn scratch() -> anyhow::Result<LockedDir> {
    let tmp = std::env::temp_dir();
    LockedDir::create(&tmp, SCRATCH_PREFIX)
        .with_context(|| format!("{}: cannot create workspace", tmp.display()))
}

/// `$TMPDIR/pkgbuild-host-<uid>`: the parent of every fixed build directory.
fn fixed_base() -> PathBuf {
    let uid = rustix::process::getuid().as_raw();
    std::env::temp_dir().join(format!("pkgbuild-host-{uid}"))
}

fn safe_name(name: &str, arch: &str) -> String {
    format!("{name}-{arch}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The host runner's build directory for a package and architecture
/// (`$TMPDIR/pkgbuild-host-<uid>/<name>-<arch>`), known before it exists:
/// the plan is compiled with it as its build root.
pub fn fixed_dir(name: &str, arch: &str) -> PathBuf {
    fixed_base().join(safe_name(name, arch))
}

/// The patterns of `.melangeignore`, with git's `.gitignore` semantics
/// (ripgrep's `ignore` crate: anchoring, `**`, `!` negation, character
/// classes, trailing-`/` directory patterns). A line that is not a valid
/// pattern is skipped, as git skips it.
#[derive(Debug)]
pub struct IgnoreRules {
    matcher: Gitignore,
}

impl Default for IgnoreRules {
    fn default() -> Self {
        IgnoreRules {
            matcher: Gitignore::empty(),
        }
    }
}

impl IgnoreRules {
    /// The rules of `src/.melangeignore`, none when there is no such file;
    /// read bounded and never from a fifo or device, since the source
    /// directory is the recipe author's.
    pub fn load(src: &Path) -> io::Result<IgnoreRules> {
        let path = src.join(".melangeignore");
        if fs::symlink_metadata(&path).is_err() {
            return Ok(IgnoreRules::default());
        }
        let text = crate::recipe::read_bounded(&path)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(IgnoreRules::parse(&text))
    }

    pub fn parse(text: &str) -> IgnoreRules {
        let mut builder = GitignoreBuilder::new("");
        for line in text.lines() {
            let _ = builder.add_line(None, line);
        }
        IgnoreRules {
            matcher: builder.build().unwrap_or_else(|_| Gitignore::empty()),
        }
    }

    /// Whether `rel` (slash-separated, relative to the source root) is
    /// ignored. As in git, a path inside an ignored directory is ignored
    /// whatever later patterns say about it (git never looks inside), and
    /// otherwise the last pattern matching the path itself wins.
    pub fn is_ignored(&self, rel: &str, is_dir: bool) -> bool {
        let rel = rel.trim_start_matches('/');
        if rel.is_empty() {
            return false;
        }
        let parent_ignored = rel
            .match_indices('/')
            .any(|(i, _)| self.matcher.matched(&rel[..i], true).is_ignore());
        parent_ignored || self.matcher.matched(rel, is_dir).is_ignore()
    }
}

/// Copy `src` into `dst` (which must exist), skipping ignored paths and
/// any path in `exclude` (the output and cache directories and the env
/// file, when they lie inside the source directory). Symlinks are recreated, never followed.
pub fn copy_source(src: &Path, dst: &Path, exclude: &[PathBuf]) -> io::Result<u64> {
    let rules = IgnoreRules::load(src)?;
    let exclude: Vec<PathBuf> = exclude
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    let mut copied = 0;
    copy_dir(src, dst, "", &rules, &exclude, &mut copied)?;
    Ok(copied)
}

fn copy_dir(
    src: &Path,
    dst: &Path,
    rel: &str,
    rules: &IgnoreRules,
    exclude: &[PathBuf],
    copied: &mut u64,
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name_str = name.to_string_lossy();
        let child_rel = if rel.is_empty() {
            name_str.to_string()
        } else {
            format!("{rel}/{name_str}")
        };
        let from = entry.path();
        let to = dst.join(&name);
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if rules.is_ignored(&child_rel, ft.is_dir()) {
            continue;
        }
        if !ft.is_symlink()
            && exclude
                .iter()
                .any(|x| fs::canonicalize(&from).is_ok_and(|c| &c == x))
        {
            continue;
        }
        if ft.is_dir() {
            fs::create_dir_all(&to)?;
            copy_dir(&from, &to, &child_rel, rules, exclude, copied)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(meta.permissions().mode()))?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            *copied += meta.len();
        }
        // Sockets, fifos and devices are not source files; skip them.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_follow_gitignore_semantics() {
        let r = IgnoreRules::parse("# c\n*.o\n/build\nlogs/\n!keep.o\ndocs/**/*.tmp\n");
        assert!(r.is_ignored("a.o", false));
        assert!(r.is_ignored("src/x/a.o", false));
        assert!(!r.is_ignored("keep.o", false));
        assert!(r.is_ignored("build", true));
        assert!(r.is_ignored("build/x.c", false));
        assert!(!r.is_ignored("src/build", true));
        assert!(r.is_ignored("logs", true));
        assert!(r.is_ignored("a/logs/x", false));
        assert!(!r.is_ignored("logs", false));
        assert!(r.is_ignored("docs/a/b/c.tmp", false));
        assert!(r.is_ignored("docs/c.tmp", false));
        assert!(!r.is_ignored("main.c", false));
    }

    #[test]
    fn ignore_rules_handle_what_a_hand_written_translation_got_wrong() {
        // `!` inside a character class negates the class, not the rule.
        let r = IgnoreRules::parse("data[!0-9].txt\n");
        assert!(r.is_ignored("dataX.txt", false));
        assert!(!r.is_ignored("data1.txt", false));
        // A leading `\!` is a literal `!`; `**/` matches at any depth,
        // `a/**` everything below; trailing spaces are ignored.
        let r = IgnoreRules::parse("\\!bang\n**/tmp\nout/**\nspace.txt   \n");
        assert!(r.is_ignored("!bang", false));
        assert!(r.is_ignored("x/y/tmp", true));
        assert!(r.is_ignored("out/a/b", false));
        assert!(!r.is_ignored("out", true));
        assert!(r.is_ignored("space.txt", false));
        // A negated file under an ignored directory stays ignored, as in git.
        let r = IgnoreRules::parse("build/\n!build/keep\n");
        assert!(r.is_ignored("build/keep", false));
        // A broken pattern is skipped, the others still apply.
        let r = IgnoreRules::parse("[\n*.o\n");
        assert!(r.is_ignored("x.o", false));
    }

    #[test]
    fn copy_honours_ignore_and_keeps_symlinks_as_links() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("sub")).unwrap();
        fs::create_dir_all(s.join("packages/x86_64")).unwrap();
        fs::write(s.join("a.c"), "int x;").unwrap();
        fs::write(s.join("sub/b.o"), "obj").unwrap();
        fs::write(s.join(".melangeignore"), "*.o\n").unwrap();
        fs::write(s.join("secrets.env"), "TOKEN=x\n").unwrap();
        symlink("/etc/passwd", s.join("link")).unwrap();
        copy_source(s, dst.path(), &[s.join("packages"), s.join("secrets.env")]).unwrap();
        let d = dst.path();
        assert_eq!(fs::read_to_string(d.join("a.c")).unwrap(), "int x;");
        assert!(!d.join("sub/b.o").exists());
        assert!(!d.join("packages").exists());
        assert!(!d.join("secrets.env").exists());
        let meta = fs::symlink_metadata(d.join("link")).unwrap();
        assert!(meta.file_type().is_symlink());
        assert_eq!(
            fs::read_link(d.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
    }
}
