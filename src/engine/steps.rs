//! Running a plan's steps: the main package's pipeline, then each
//! subpackage's, in one workspace. Nested `uses:` pipelines are flattened
//! into a list of shell steps labelled `<pipeline>/<step>`, each carrying
//! the variables host-side source preparation gave it.

use std::collections::BTreeMap;

use super::{buildenv, sources, BuildError, BuildLog};
use crate::plan::{Plan, Step};
use crate::sandbox::{self, StepOutcome, StepSpec};

/// A step flattened out of the plan's tree, with the environment added by
/// host-side source preparation.
pub(crate) struct FlatStep<'a> {
    pub label: String,
    pub step: &'a Step,
    pub extra_env: BTreeMap<String, String>,
}

pub(crate) fn step_name(step: &Step, index: usize) -> String {
    step.name
        .clone()
        .or_else(|| step.uses.clone())
        .unwrap_or_else(|| format!("step {}", index + 1))
}

/// The steps that run, depth first, each labelled `<prefix>/<name>` (a
/// `uses:` step's inlined steps under its own label); `extra` gives the
/// variables a step (and everything nested in it) gets on top of its own.
pub(crate) fn flatten<'a>(
    steps: &'a [Step],
    prefix: &str,
    extra: &dyn Fn(&Step) -> BTreeMap<String, String>,
) -> Vec<FlatStep<'a>> {
    fn go<'a>(
        steps: &'a [Step],
        prefix: &str,
        extra: &dyn Fn(&Step) -> BTreeMap<String, String>,
        inherited: &BTreeMap<String, String>,
        out: &mut Vec<FlatStep<'a>>,
    ) {
        for (i, step) in steps.iter().enumerate() {
            let label = if prefix.is_empty() {
                step_name(step, i)
            } else {
                format!("{prefix}/{}", step_name(step, i))
            };
            let mut env = inherited.clone();
            env.extend(extra(step));
            if step.runs.as_deref().is_some_and(|r| !r.trim().is_empty()) {
                out.push(FlatStep {
                    label: label.clone(),
                    step,
                    extra_env: env.clone(),
                });
            }
            go(&step.pipeline, &label, extra, &env, out);
        }
    }
    let mut out = Vec::new();
    go(steps, prefix, extra, &BTreeMap::new(), &mut out);
    out
}

/// The shell text of a step; `trace` (`--debug`) adds `set -x`, as
/// melange's --debug does.
pub(crate) fn script(step: &Step, trace: bool) -> String {
    let body = step.runs.as_deref().unwrap_or_default();
    if trace {
        format!("set -x\n{body}")
    } else {
        body.to_string()
    }
}

/// The error for a step that did not succeed: its status and the last
/// lines it printed. `None` when it succeeded.
pub(crate) fn failure(package: &str, step: &str, outcome: &StepOutcome) -> Option<BuildError> {
    if outcome.success() {
        return None;
    }
    let status = match (outcome.status, outcome.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "killed".to_string(),
    };
    let tail = outcome
        .tail
        .iter()
        .map(|l| format!("  | {l}"))
        .collect::<Vec<_>>()
        .join("\n");
    Some(BuildError::StepFailed {
        package: package.to_string(),
        step: step.to_string(),
        status,
        tail,
    })
}

/// `-i/--interactive`: after `spec` failed with `outcome`, a shell in its
/// sandbox at its working directory; the failure stands whatever the
/// shell does.
pub(crate) fn debug_shell(
    runner: &dyn sandbox::Runner,
    spec: &StepSpec,
    outcome: &StepOutcome,
    log: &BuildLog,
) {
    log.flush();
    let status = match (outcome.status, outcome.signal) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal {sig}"),
        _ => "killed".to_string(),
    };
    crate::errln!(
        "==> step {} failed ({status}): opening a shell in its sandbox at {} with its environment; exit the shell to go on with the failure",
        spec.label,
        spec.workdir
    );
    match runner.interactive(&spec.label, &spec.workdir, &spec.env) {
        Ok(_) => crate::errln!(
            "==> left the shell of {}; the step stays failed",
            spec.label
        ),
        Err(e) => crate::errln!("warning: cannot open an interactive shell: {e}"),
    }
}

/// `sysroot`: how the steps see the build environment's sysroot, if any.
/// `interactive`: a shell opens in the sandbox of a failed step.
pub(super) fn run_all_steps(
    plan: &Plan,
    prepared: &sources::Prepared,
    sysroot: Option<&str>,
    runner: &dyn sandbox::Runner,
    log: &BuildLog,
    interactive: bool,
) -> anyhow::Result<()> {
    for pkg in &plan.packages {
        let flat = flatten(&pkg.steps, "", &|step| prepared.env_for(step));
        let total = flat.len();
        for (i, fs_) in flat.iter().enumerate() {
            let prefix = format!("{}/{}", pkg.name, fs_.label);
            log.step_start(&prefix, i + 1, total);
            let mut env = fs_.step.environment.clone();
            env.extend(fs_.extra_env.clone());
            if let Some(s) = sysroot {
                buildenv::merge_step_env(&mut env, s);
            }
            let spec = StepSpec {
                label: prefix.clone(),
                script: script(fs_.step, log.is_debug()),
                workdir: fs_.step.working_directory.clone(),
                env,
            };
            let began = std::time::Instant::now();
            let outcome = runner.run(&spec, &mut |line| log.step_output(&prefix, line))?;
            log.step_finish(&prefix, began.elapsed(), outcome.success());
            if let Some(err) = failure(&pkg.name, &fs_.label, &outcome) {
                if interactive {
                    debug_shell(runner, &spec, &outcome, log);
                }
                log.flush();
                return Err(err.into());
            }
        }
    }
    Ok(())
}
