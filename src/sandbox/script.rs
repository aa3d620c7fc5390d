//! The per-step wrapper script: the only shell text pkgbuild itself writes
//! around a recipe's `runs:` block.
//!
//! The workdir and the step environment come from recipes, which are
//! untrusted text. They are spliced into shell source here, so every value is
//! single-quoted (melange had to fix exactly this: an unquoted `cd` let a
//! crafted workdir run arbitrary commands on the build host, GHSA-5qp8-2ww5-5cwh
//! style injection). Names are checked by the runner before this is called
//! (see [`valid_env_name`]); this module only renders.

use super::StepSpec;
use std::path::Path;
use std::sync::OnceLock;

/// Quote `s` for POSIX shells: wrap it in single quotes and spell each
/// embedded `'` as `'\''`. Inside single quotes nothing is special (no `$`,
/// backquote, backslash or newline processing), so this is total.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        if c == '\'' {
            q.push_str("'\\''");
        } else {
            q.push(c);
        }
    }
    q.push('\'');
    q
}

/// Whether `name` can be exported by a shell: `[A-Za-z_][A-Za-z0-9_]*`.
/// Anything else could not be written as `export NAME=...` and would make the
/// sandbox and host runners disagree, so runners reject it up front.
pub fn valid_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_'))
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Render the wrapper for `step`.
///
/// `set -e` matches melange, whose recipes we run; `pipefail` is deliberately
/// not set, because melange does not set it either and Wolfi scripts contain
/// pipelines like `yes | head` that would start failing. The step env is
/// exported here (not passed on the bwrap command line) so the host and bwrap
/// runners merge it over the base env in exactly the same way.
pub fn wrapper(step: &StepSpec) -> String {
    let mut s = String::with_capacity(step.script.len() + 256);
    s.push_str("set -e\n");
    for (name, value) in &step.env {
        s.push_str("export ");
        s.push_str(name);
        s.push('=');
        s.push_str(&quote(value));
        s.push('\n');
    }
    let dir = quote(&step.workdir);
    s.push_str(&format!("mkdir -p -- {dir}\ncd -- {dir}\n"));
    s.push_str(&step.script);
    if !step.script.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The shell that runs wrappers, as a path valid both on the host and inside
/// bwrap (which mirrors the host's `/usr` and `/bin`).
///
/// bash when it exists, else `/bin/sh`: melange runs steps with `/bin/sh`,
/// which is busybox ash or bash on Wolfi images, but on Debian hosts `/bin/sh`
/// is dash, and many Wolfi recipes use bashisms (`[[ ]]`, arrays,
/// `${var//x/y}`) that dash rejects.
pub fn shell() -> &'static str {
    static SHELL: OnceLock<&'static str> = OnceLock::new();
    SHELL.get_or_init(|| {
        ["/bin/bash", "/usr/bin/bash"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .unwrap_or("/bin/sh")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn step(workdir: &str, script: &str) -> StepSpec {
        StepSpec {
            label: "t".into(),
            script: script.into(),
            workdir: workdir.into(),
            env: BTreeMap::new(),
        }
    }

    /// Run `text` with `sh -c` and return stdout; used to prove that quoting
    /// round-trips through a real shell rather than eyeballing escapes.
    fn sh_echo(quoted: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s' {quoted}"))
            .output()
            .expect("run /bin/sh");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn quote_round_trips_hostile_strings_through_a_real_shell() {
        for s in [
            "",
            "plain",
            "with space",
            "it's",
            "''",
            "$(touch /tmp/pkgbuild-pwned)",
            "`id`",
            "a\nb\n",
            "\\$HOME\\",
            "\"dq\"",
            "semi;colon && or || pipe|",
            "-n",
        ] {
            assert_eq!(sh_echo(&quote(s)), s, "quoting {s:?}");
        }
        assert!(!Path::new("/tmp/pkgbuild-pwned").exists());
    }

    #[test]
    fn wrapper_cds_into_hostile_workdir_without_running_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let marker = tmp.path().join("pwned");
        let dir = format!(
            "{}/a b/'q'/$(touch {})/`touch {}`/x\ny",
            tmp.path().display(),
            marker.display(),
            marker.display()
        );
        let text = wrapper(&step(&dir, "printf '%s' \"$PWD\""));
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(text)
            .output()
            .expect("run /bin/sh");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), dir);
        assert!(Path::new(&dir).is_dir(), "workdir created verbatim");
        assert!(!marker.exists(), "command substitution in workdir ran");
    }

    #[test]
    fn wrapper_is_strict_and_exports_step_env_quoted() {
        let mut s = step("/w", "echo hi");
        s.env.insert("A".into(), "x'y $(z)".into());
        s.env.insert("B".into(), "".into());
        let text = wrapper(&s);
        assert!(text.starts_with("set -e\n"));
        assert!(text.contains("export A='x'\\''y $(z)'\n"));
        assert!(text.contains("export B=''\n"));
        assert!(text.contains("mkdir -p -- '/w'\ncd -- '/w'\necho hi\n"));
    }

    #[test]
    fn env_names_must_be_shell_identifiers() {
        for ok in ["A", "_x", "CFLAGS_1", "a9"] {
            assert!(valid_env_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A=B", "A B", "$(x)", "é"] {
            assert!(!valid_env_name(bad), "{bad}");
        }
    }
}
