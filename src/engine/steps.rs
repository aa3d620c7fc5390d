//! Running a plan's steps: the main package's pipeline, then each
//! subpackage's, in one workspace. Nested `uses:` pipelines are flattened
//! into a list of shell steps labelled `<pipeline>/<step>`, each carrying
//! the variables host-side source preparation gave it.

use std::collections::BTreeMap;

use super::{buildenv, sources, BuildError, BuildLog};
use crate::plan::{Plan, Step};
use crate::sandbox::{self, StepSpec};

/// A step flattened out of the plan's tree, with the environment added by
/// host-side source preparation.
struct FlatStep<'a> {
    label: String,
    step: &'a Step,
    extra_env: BTreeMap<String, String>,
}

pub(crate) fn step_name(step: &Step, index: usize) -> String {
    step.name
        .clone()
        .or_else(|| step.uses.clone())
        .unwrap_or_else(|| format!("step {}", index + 1))
}

fn flatten<'a>(
    steps: &'a [Step],
    prefix: &str,
    prepared: &sources::Prepared,
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
        env.extend(prepared.env_for(step));
        if step.runs.as_deref().is_some_and(|r| !r.trim().is_empty()) {
            out.push(FlatStep {
                label: label.clone(),
                step,
                extra_env: env.clone(),
            });
        }
        flatten(&step.pipeline, &label, prepared, &env, out);
    }
}

/// `sysroot`: how the steps see the build environment's sysroot, if any.
pub(super) fn run_all_steps(
    plan: &Plan,
    prepared: &sources::Prepared,
    sysroot: Option<&str>,
    runner: &dyn sandbox::Runner,
    log: &BuildLog,
) -> anyhow::Result<()> {
    for pkg in &plan.packages {
        let mut flat = Vec::new();
        flatten(&pkg.steps, "", prepared, &BTreeMap::new(), &mut flat);
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
                // --debug traces every command, as melange's --debug does.
                script: match (log.is_debug(), fs_.step.runs.as_deref()) {
                    (true, Some(body)) => format!("set -x\n{body}"),
                    (_, body) => body.unwrap_or_default().to_string(),
                },
                workdir: fs_.step.working_directory.clone(),
                env,
            };
            let outcome = runner.run(&spec, &mut |line| log.step_output(&prefix, line))?;
            if outcome.status != Some(0) {
                let status = match (outcome.status, outcome.signal) {
                    (Some(code), _) => format!("exit status {code}"),
                    (None, Some(sig)) => format!("killed by signal {sig}"),
                    _ => "killed".to_string(),
                };
                log.flush();
                return Err(BuildError::StepFailed {
                    package: pkg.name.clone(),
                    step: fs_.label.clone(),
                    status,
                    tail: outcome
                        .tail
                        .iter()
                        .map(|l| format!("  | {l}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                }
                .into());
            }
        }
    }
    Ok(())
}
