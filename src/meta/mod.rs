//! Package metadata derived from a staged tree: SBOMs (and, from other
//! modules, dependency scanning and lints).

pub mod sbom;
