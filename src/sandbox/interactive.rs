//! `-i/--interactive`: a shell on the user's terminal in the sandbox of a
//! step that just failed, with that step's environment and working
//! directory, so the failure can be looked at where it happened. The build
//! goes on (to fail as it would have) when the shell exits.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use super::StepSpec;

/// One session at a time: builds running in parallel must not share the
/// terminal.
static TERMINAL: Mutex<()> = Mutex::new(());

/// Whether an interactive shell can be opened: stdin (what the user
/// types) and stderr (where the shell prompts) are a terminal.
pub fn possible() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// The wrapper that becomes the interactive shell: the step's exports and
/// `cd`, then an interactive shell in place of the script (bash without
/// the user's rc files when the wrapper runs under bash).
pub(super) fn spec(label: &str, workdir: &str, env: &BTreeMap<String, String>) -> StepSpec {
    let mut env = env.clone();
    env.entry("PS1".to_string())
        .or_insert_with(|| "[pkgbuild -i] \\w \\$ ".to_string());
    StepSpec {
        label: format!("{label} (interactive)"),
        script: "set +e\nif [ -n \"${BASH:-}\" ]; then exec \"$BASH\" --norc --noprofile -i; fi\nexec /bin/sh -i\n"
            .to_string(),
        workdir: workdir.to_string(),
        env,
    }
}

/// Runs `cmd` with the terminal as stdin/stdout/stderr and waits; the
/// shell's exit code (None: killed by a signal).
pub(super) fn run_on_terminal(
    label: &str,
    program: &str,
    mut cmd: std::process::Command,
) -> Result<Option<i32>, super::SandboxError> {
    let _turn = TERMINAL.lock().unwrap_or_else(|p| p.into_inner());
    let status = cmd
        .stdin(std::process::Stdio::inherit())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .map_err(|source| super::SandboxError::Spawn {
            label: label.to_string(),
            program: program.to_string(),
            source,
        })?;
    Ok(status.code())
}

/// `-i` as given, checked once per run: without a terminal there is no
/// one to type into the shell, and the build runs as without `-i` (said
/// once, not at every failure).
pub fn requested(flag: bool) -> bool {
    if flag && !possible() {
        crate::errln!(
            "note: -i/--interactive ignored: stdin is not a terminal, so a failing step cannot open a shell"
        );
        return false;
    }
    flag
}
