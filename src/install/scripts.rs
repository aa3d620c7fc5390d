//! Package scripts: written into the root where apk puts them
//! (`/lib/apk/exec/<name>-<version>.<kind>`, mode 0755), handed to the
//! caller's runner, removed afterwards; and the trigger glob match.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use super::paths::Resolver;
use super::{InstallError, ScriptRun, ScriptRunner};

/// Run one script of `name`-`version` through `runner`.
pub fn run(
    resolver: &mut Resolver,
    name: &str,
    version: &str,
    kind: &str,
    body: &[u8],
    args: Vec<String>,
    runner: &mut ScriptRunner,
) -> Result<(), InstallError> {
    let label = format!("{name}-{version}");
    let exec = resolver
        .dir(&["lib", "apk", "exec"], true)
        .map_err(|e| InstallError::Unsafe {
            package: label.clone(),
            path: "lib/apk/exec".into(),
            problem: e.to_string(),
        })?;
    let file = format!("{name}-{version}.{kind}");
    let host = exec.host.join(&file);
    // A leftover (or a script's own symlink) must not redirect the write.
    let _ = fs::remove_file(&host);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&host)
        .map_err(InstallError::io(&label, "cannot write script", &host))?;
    f.write_all(body)
        .and_then(|_| f.set_permissions(fs::Permissions::from_mode(0o755)))
        .map_err(InstallError::io(&label, "cannot write script", &host))?;
    drop(f);
    let guest_path = format!("/lib/apk/exec/{file}");
    let outcome = runner(&ScriptRun {
        package: name,
        version,
        kind,
        guest_path: &guest_path,
        args,
        root: resolver.root(),
    });
    let _ = fs::remove_file(&host);
    outcome.map_err(|message| InstallError::Script {
        package: label,
        kind: kind.to_string(),
        message,
    })
}

/// Whether a trigger glob matches a guest directory: shell globbing where
/// `*` and `?` do not cross `/` (fnmatch with FNM_PATHNAME).
pub fn glob_match(glob: &str, dir: &str) -> bool {
    let (Ok(g), Ok(d)) = (CString::new(glob), CString::new(dir)) else {
        return false;
    };
    // SAFETY: two valid NUL-terminated strings.
    unsafe { libc::fnmatch(g.as_ptr(), d.as_ptr(), libc::FNM_PATHNAME) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_globs_stay_within_one_component() {
        assert!(glob_match("/usr/share/*", "/usr/share/hello"));
        assert!(!glob_match("/usr/share/*", "/usr/share/hello/sub"));
        assert!(glob_match("/etc/foo", "/etc/foo"));
        assert!(!glob_match("/etc/foo", "/etc/foobar"));
        assert!(glob_match(
            "/usr/lib/gdk-pixbuf-?.*/*",
            "/usr/lib/gdk-pixbuf-2.0/x"
        ));
    }

    #[test]
    fn a_failing_script_names_the_package_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Resolver::new(dir.path());
        let mut seen = Vec::new();
        let err = run(
            &mut r,
            "p",
            "1-r0",
            "post-install",
            b"#!/bin/sh\nexit 3\n",
            vec!["1-r0".into()],
            &mut |s: &ScriptRun| {
                let host = s.root.join(&s.guest_path[1..]);
                let meta = fs::metadata(&host).unwrap();
                seen.push((s.guest_path.to_string(), meta.permissions().mode() & 0o777));
                Err("exited with status 3".into())
            },
        )
        .unwrap_err();
        assert_eq!(
            seen,
            [("/lib/apk/exec/p-1-r0.post-install".to_string(), 0o755)]
        );
        assert_eq!(
            err.to_string(),
            "p-1-r0: post-install script failed: exited with status 3"
        );
        assert!(!dir.path().join("lib/apk/exec/p-1-r0.post-install").exists());
    }
}
