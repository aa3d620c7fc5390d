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
