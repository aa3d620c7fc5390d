//! (module under construction)
pub mod lint;
