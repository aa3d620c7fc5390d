//! The recipe model: melange-compatible YAML read into typed structs that
//! remember where each value was written. This module knows nothing about
//! building; `plan` turns a `Recipe` into steps.
//!
//! `yaml` keeps positions and exact scalar text, `model` decodes that tree
//! strictly (unknown keys are errors with a "did you mean" hint), and
//! `validate` checks names and versions.

use std::fmt;
use std::path::Path;

pub mod cond;
pub mod model;
pub mod subst;
pub mod validate;
pub mod vars;
pub mod yaml;

pub use model::Recipe;
pub use yaml::Pos;

/// Largest recipe or pipeline file we read; real ones are a few KiB.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// A problem in a recipe or pipeline file, with the place it was found.
/// Displays as `file:line:col: message`, or `file: message` for a
/// problem with the whole file (line 0: it could not be read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeError {
    pub file: String,
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for RecipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.pos.line == 0 {
            return write!(f, "{}: {}", self.file, self.message);
        }
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.pos.line, self.pos.col, self.message
        )
    }
}

impl std::error::Error for RecipeError {}

impl RecipeError {
    /// Every recipe error is made here, so every value a message quotes
    /// is cut to a readable length ([`crate::term::shorten_quoted`]).
    pub fn new(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        RecipeError {
            file: file.to_string(),
            pos,
            message: crate::term::shorten_quoted(&message.into()),
        }
    }
}

/// Read a file with a size bound, naming it in the error.
pub fn read_bounded(path: &Path) -> Result<String, RecipeError> {
    use std::io::Read;
    let name = path.display().to_string();
    // The file as a whole: no line to point at.
    let at = Pos { line: 0, col: 0 };
    let f = crate::open::regular(path)
        .map_err(|e| RecipeError::new(&name, at, format!("cannot open: {e}")))?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| RecipeError::new(&name, at, format!("cannot read: {e}")))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(RecipeError::new(
            &name,
            at,
            format!("file larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(buf).map_err(|_| RecipeError::new(&name, at, "file is not UTF-8"))
}

/// Parse YAML text into a position-keeping tree, errors naming `file`.
pub fn parse_yaml(file: &str, src: &str) -> Result<yaml::Node, RecipeError> {
    yaml::parse(src).map_err(|e| RecipeError::new(file, e.pos, e.message))
}

/// Read and decode a recipe file (no substitution, no validation).
pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
    let name = path.display().to_string();
    let src = read_bounded(path)?;
    let tree = parse_yaml(&name, &src)?;
    model::decode_recipe(&name, &tree)
}
