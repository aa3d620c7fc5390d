//! Package metadata derived from a staged tree after the pipeline ran:
//! dependency and provides scanning, the SPDX SBOM, and the linters.

pub mod apk_lint;
pub mod elf;
pub mod lint;
pub mod sbom;
pub mod scan;
pub mod tree;
