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
        f.write_str(&chain(&self.0))
    }
}

impl std::error::Error for InputError {}

/// Mark an error as the user's input being wrong.
pub fn input_error(e: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(InputError(e.into()))
}

/// `err` and its causes on one line, each said once: many error types
/// print their source in their own message and also expose it as their
/// source, so anyhow's `{:#}` would repeat it (`...(os error 2): ...(os
/// error 2)`). A cause whose text is already in the line is left out.
pub fn chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Whether `err` (or a cause of it) is an input error.
pub fn is_input_error(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<InputError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("/x/recipe.yaml: cannot read: {source}")]
    struct Twice {
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = anyhow::Error::new(Twice { source: io }).context("building hello");
        let text = chain(&err);
        assert_eq!(text.matches("entity not found").count(), 1, "{text}");
        assert!(text.starts_with("building hello: /x/recipe.yaml"), "{text}");
        let input = input_error(anyhow::anyhow!("bad flag").context("--arch"));
        assert_eq!(chain(&input), "--arch: bad flag");
    }
}
