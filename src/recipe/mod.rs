//! (module under construction)
pub mod cond;
pub mod subst;
pub mod vars;
