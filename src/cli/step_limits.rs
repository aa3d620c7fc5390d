//! `--max-processes` and `--max-disk`: what a step of `build` or `test`
//! may use (see [`StepLimits`]).
//!
//! `--max-disk` rather than `--max-workspace-size`: the cap covers every
//! tree a step writes (the workspace with its output directories, and the
//! guest root of a hermetic build), and also bounds each single file.

use crate::sandbox::limits::{StepLimits, DEFAULT_MAX_PROCESSES};

#[derive(clap::Args, Debug, Clone)]
pub struct StepLimitArgs {
    /// Stop a step that runs more than N processes and threads at once,
    /// or sits at N for 2 seconds (a fork bomb). 0: no limit.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PROCESSES)]
    pub max_processes: u64,
    /// Stop the steps when they have written more than SIZE to the
    /// workspace (and the guest root), or when one file reaches SIZE
    /// (512M, 10G, plain bytes; suffixes K, M, G, T are powers of 1024).
    /// 0: no cap. Whatever this says, a step is stopped when the
    /// workspace's filesystem falls below 1 GiB (or 2 % of its size,
    /// whichever is smaller) free.
    #[arg(long, value_name = "SIZE", default_value = "0", value_parser = crate::cli::limits::parse_size)]
    pub max_disk: u64,
}

impl StepLimitArgs {
    pub fn limits(&self) -> StepLimits {
        StepLimits {
            max_processes: self.max_processes,
            max_disk: self.max_disk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        limits: StepLimitArgs,
    }

    fn parse(args: &[&str]) -> Result<StepLimits, clap::Error> {
        let mut argv = vec!["x"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.limits.limits())
    }

    #[test]
    fn defaults_are_4096_processes_and_no_disk_cap() {
        assert_eq!(parse(&[]).unwrap(), StepLimits::default());
        assert_eq!(StepLimits::default().max_processes, 4096);
        assert_eq!(StepLimits::default().max_disk, 0);
    }

    #[test]
    fn disk_sizes_take_suffixes_plain_bytes_and_zero() {
        let disk = |s: &str| parse(&["--max-disk", s]).map(|l| l.max_disk);
        assert_eq!(disk("10G").unwrap(), 10 << 30);
        assert_eq!(disk("512M").unwrap(), 512 << 20);
        assert_eq!(disk("123456").unwrap(), 123456);
        assert_eq!(disk("0").unwrap(), 0);
        assert!(disk("10Q").is_err());
        assert!(disk("-1").is_err());
        let procs = parse(&["--max-processes", "0"]).unwrap();
        assert_eq!(procs.max_processes, 0);
    }
}
