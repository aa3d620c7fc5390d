use std::process::ExitCode;

fn main() -> ExitCode {
    pkgbuild::cli::main()
}
