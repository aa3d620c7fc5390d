//! Host-side source acquisition, run before any sandboxed step: download
//! artifacts into a checksum-addressed cache ([`fetch`]) and check out git
//! repositories ([`git`]).
//!
//! Build steps have no network (see `sandbox`), so everything a recipe's
//! `fetch` and `git-checkout` pipelines would download happens here, on the
//! host, and is verified (checksum or expected commit) before the engine
//! places it in the workspace. This module knows nothing about recipes or
//! the sandbox; it takes plain inputs and returns paths and commits.

pub mod fetch;
pub mod git;

pub use fetch::{fetch, fetch_with, Checksum, FetchError, FetchOptions};
pub use git::{git_checkout, GitCheckout, GitError};
