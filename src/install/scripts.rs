//! Package scripts: written into the root where apk puts them
//! (`/lib/apk/exec/<name>-<version>.<kind>`, mode 0755), handed to the
//! caller's runner, removed afterwards; and the trigger glob match.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use globset::GlobBuilder;

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
/// `*`, `?` and `[...]` do not cross `/` (apk uses fnmatch with
/// FNM_PATHNAME). A glob that cannot be parsed matches nothing.
pub fn glob_match(glob: &str, dir: &str) -> bool {
    GlobBuilder::new(&fnmatch_to_globset(glob))
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .is_ok_and(|g| g.compile_matcher().is_match(dir))
}

/// Rewrite an fnmatch pattern so globset reads it the same way. globset
/// adds syntax fnmatch lacks: `{a,b}` alternation and `**` crossing
/// directories. So braces are escaped, a run of `*` becomes one `*`, and a
/// `[` without its `]` (a literal to fnmatch) is escaped too.
fn fnmatch_to_globset(glob: &str) -> String {
    let chars: Vec<char> = glob.chars().collect();
    let mut out = String::with_capacity(glob.len() + 8);
    let mut i = 0;
    let mut after_star = false;
    while i < chars.len() {
        let star = chars[i] == '*';
        match chars[i] {
            '\\' => {
                // A trailing backslash stays dangling: an error to globset,
                // and no match to fnmatch either.
                out.push('\\');
                out.extend(chars.get(i + 1));
                i += 1;
            }
            '*' if after_star => {}
            '*' => out.push('*'),
            '{' | '}' | ']' => {
                out.push('\\');
                out.push(chars[i]);
            }
            '[' => match class_end(&chars, i) {
                Some(end) => {
                    out.extend(&chars[i..=end]);
                    i = end;
                }
                None => out.push_str("\\["),
            },
            c => out.push(c),
        }
        after_star = star;
        i += 1;
    }
    out
}

/// Index of the `]` closing the bracket expression opened at `start`: a
/// `]` right after `[` or `[!`/`[^` is a member, not the end.
fn class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if matches!(chars.get(i), Some('!' | '^')) {
        i += 1;
    }
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    chars[i.min(chars.len())..]
        .iter()
        .position(|&c| c == ']')
        .map(|p| i + p)
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

    /// Expected answers are what glibc's fnmatch(FNM_PATHNAME), which apk
    /// calls, gives for each pair.
    #[test]
    fn trigger_globs_match_like_fnmatch_with_pathname() {
        let cases = [
            ("/usr/share/**", "/usr/share/a/b", false),
            ("/usr/share/**", "/usr/share/a", true),
            ("/usr/**/x", "/usr/a/b/x", false),
            ("/usr/**/x", "/usr/a/x", true),
            ("/etc/{a,b}", "/etc/a", false),
            ("/etc/{a,b}", "/etc/{a,b}", true),
            ("/etc/[ab]c", "/etc/bc", true),
            ("/etc/[!ab]c", "/etc/bc", false),
            ("/etc/[!ab]c", "/etc/xc", true),
            ("/etc/[]x]", "/etc/]", true),
            ("/etc/[a", "/etc/[a", true),
            ("/etc/[a*", "/etc/[abc", true),
            ("/etc/a]", "/etc/a]", true),
            ("/etc/\\*", "/etc/*", true),
            ("/etc/\\*", "/etc/x", false),
            ("/etc/\\**", "/etc/*x", true),
            ("/etc/?", "/etc/a", true),
            ("/etc/?", "/", false),
            ("/usr/?", "/usr//", false),
            ("/usr/share/*", "/usr/share/.hidden", true),
            (
                "/usr/lib/gdk-pixbuf-?.*/*",
                "/usr/lib/gdk-pixbuf-2.0/x/y",
                false,
            ),
            ("/etc/a\\", "/etc/a\\", false),
        ];
        for (glob, dir, want) in cases {
            assert_eq!(glob_match(glob, dir), want, "{glob:?} against {dir:?}");
        }
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
