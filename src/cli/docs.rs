//! `pkgbuild completion`, `pkgbuild man` and `pkgbuild version`: what a
//! packager of pkgbuild itself (or a curious user) needs beyond the
//! subcommands that build.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for; e.g. `pkgbuild completion bash >
    /// /usr/share/bash-completion/completions/pkgbuild`.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Directory to write pkgbuild.1 and pkgbuild-SUBCOMMAND.1 into
    /// (created when missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

pub fn run_completion(a: CompletionArgs) -> anyhow::Result<ExitCode> {
    use clap_complete::Shell as S;
    let shell = match a.shell {
        Shell::Bash => S::Bash,
        Shell::Zsh => S::Zsh,
        Shell::Fish => S::Fish,
    };
    let mut cmd = super::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pkgbuild", &mut buf);
    std::io::stdout()
        .lock()
        .write_all(&buf)
        .context("writing completions to stdout")?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_version() -> anyhow::Result<ExitCode> {
    writeln!(
        std::io::stdout().lock(),
        "pkgbuild {}",
        crate::build_info::LONG_VERSION
    )
    .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

pub fn run_man(a: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("{}: cannot create man page directory", a.dir.display()))?;
    // Built, every subcommand carries its display name (`pkgbuild-build`),
    // which is the page's name as man(1) looks it up.
    let mut cmd = super::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, &a.dir, &mut written)?;
    let mut out = std::io::stdout().lock();
    for p in written {
        writeln!(out, "{}", p.display()).context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One page per command; hidden commands get none.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut buf = Vec::new();
    man.render(&mut buf)
        .with_context(|| format!("rendering {}", path.display()))?;
    crate::atomic::write(&path, 0o644, &buf)
        .with_context(|| format!("{}: cannot write man page", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
