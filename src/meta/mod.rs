//! Package metadata derived from staged trees: dependency scanning (`scan`,
//! with ELF reading in `elf`), and later SBOMs and linters.

pub mod elf;
pub mod scan;
