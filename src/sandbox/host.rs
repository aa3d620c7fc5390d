//! The host runner: the same wrapper script and environment policy as the
//! bwrap runner, run by the host shell with the workspace as build root and
//! working directory. It provides NO isolation (network, host files and
//! processes are all reachable); it exists for hosts without bubblewrap and
//! for debugging.
//!
//! Process lifetime: each step leads its own process group. When the shell
//! exits, on timeout, and when `run` unwinds, the whole group is killed, so
//! background jobs do not outlive their step (bwrap gets this from its PID
//! namespace). The shell also gets `PR_SET_PDEATHSIG`, so it dies if
//! pkgbuild is killed; its children may survive that case, since only
//! bwrap's PID namespace can guarantee otherwise. Because the group is not
//! the terminal's foreground group, Ctrl-C stops pkgbuild, whose death then
//! kills the shell.

use super::{ControlDir, KillMode, SandboxConfig, SandboxError, StepOutcome, StepSpec};
use std::collections::BTreeMap;

/// The host [`super::Runner`].
pub struct HostRunner {
    config: SandboxConfig,
    build_root: String,
    control: ControlDir,
    limiter: super::limits::Limiter,
}

impl HostRunner {
    /// Resolve the workspace to an absolute UTF-8 path (recipes substitute
    /// it into shell text, so it must be representable as a string).
    pub fn new(config: SandboxConfig) -> Result<HostRunner, SandboxError> {
        let abs = config
            .workspace
            .canonicalize()
            .map_err(|source| SandboxError::Io {
                what: "resolving workspace",
                path: config.workspace.clone(),
                source,
            })?;
        let build_root = abs
            .to_str()
            .ok_or_else(|| {
                SandboxError::Config(format!("workspace {} is not valid UTF-8", abs.display()))
            })?
            .to_string();
        // Host steps can write anywhere the user can; the disk cap and the
        // reserve cover the workspace, and RLIMIT_FSIZE every file.
        let limiter =
            super::limits::Limiter::new(config.limits, vec![abs.clone()], vec![abs.clone()]);
        Ok(HostRunner {
            config: SandboxConfig {
                workspace: abs,
                ..config
            },
            build_root,
            control: ControlDir::new()?,
            limiter,
        })
    }

    fn env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("PATH".to_string(), super::DEFAULT_PATH.to_string());
        env.insert("HOME".to_string(), self.build_root.clone());
        env.extend(self.config.base_env.clone());
        env
    }
}

impl super::Runner for HostRunner {
    fn name(&self) -> &'static str {
        "host"
    }

    fn build_root(&self) -> &str {
        &self.build_root
    }

    fn run(&self, step: &StepSpec, out: &mut dyn FnMut(&str)) -> Result<StepOutcome, SandboxError> {
        super::check_step(step)?;
        let (name, _remove) = self.control.write_step(step)?;
        let script = self.control.path().join(name);
        let shell = super::script::shell();
        let rlimits = super::limits::Rlimits::for_step(&self.limiter.limits);
        let expr = duct::cmd(shell, [script])
            .full_env(self.env())
            .dir(&self.config.workspace)
            .before_spawn(move |cmd| {
                use std::os::unix::process::CommandExt;
                cmd.process_group(0);
                rlimits.install(cmd);
                // SAFETY: the closure runs in the forked child before exec
                // and only calls prctl(2), which is async-signal-safe.
                unsafe {
                    cmd.pre_exec(|| {
                        rustix::process::set_parent_process_death_signal(Some(
                            rustix::process::Signal::KILL,
                        ))
                        .map_err(std::io::Error::from)
                    });
                }
                Ok(())
            });
        let (limit, build_wide) = self.config.step_limit();
        let result = super::run_streaming(
            &step.label,
            shell,
            expr,
            KillMode::Group,
            limit,
            &self.limiter,
            out,
        );
        super::deadline_error(result, build_wide, &self.config)
    }

    fn interactive(
        &self,
        label: &str,
        workdir: &str,
        env: &BTreeMap<String, String>,
    ) -> Result<Option<i32>, SandboxError> {
        let spec = super::interactive::spec(label, workdir, env);
        super::check_step(&spec)?;
        let (name, _remove) = self.control.write_step(&spec)?;
        let shell = super::script::shell();
        let mut cmd = std::process::Command::new(shell);
        cmd.arg(self.control.path().join(name))
            .env_clear()
            .envs(self.env())
            .current_dir(&self.config.workspace);
        super::interactive::run_on_terminal(&spec.label, shell, cmd)
    }
}
