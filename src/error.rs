//! The one classification every caller of the library needs: was the
//! input wrong (a recipe, a flag, a lock file; the CLI exits 2), or did
//! the work fail (a step, a download, a signature; exit 1)? Library code
//! marks input errors with [`input_error`]; everything else is a failure.

use std::fmt;

/// An error in what the user gave: recipe, options, plan, lock file.
#[derive(Debug)]
pub struct InputError(pub anyhow::Error);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for InputError {}

/// Mark an error as the user's input being wrong.
pub fn input_error(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(InputError(e.into()))
}

/// Whether `err` (or a cause of it) is an input error.
pub fn is_input_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<InputError>())
}
