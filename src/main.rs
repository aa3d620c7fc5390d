//! The `pkgbuild` binary: all behaviour lives in the library; this only
//! hands over to the CLI, which maps errors to exit codes (1 failed, 2 bad
//! input).

use std::process::ExitCode;

fn main() -> ExitCode {
    pkgbuild::cli::main()
}
