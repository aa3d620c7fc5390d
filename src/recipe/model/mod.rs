//! The recipe model: typed structs decoded from the position-keeping YAML
//! tree.
//!
//! Every key melange accepts has a home here; an unknown key is an error
//! naming the file, line and column and the nearest valid key. Values are
//! kept as the text the author wrote (`Text` carries its position), so
//! `version: 1.10` is `"1.10"` and a data key `3.10:` is `"3.10"`. Only
//! fields that are typed in melange (booleans, epoch) are converted here.
//!
//! Blocks that only feed other tools (`update` sub-blocks, apko image
//! settings we do not use) have their top-level keys checked and the rest
//! accepted as written, to stay as lenient as melange's newer releases.
//!
//! [`types`] holds the structs, [`decode`] turns YAML nodes into them and
//! [`hints`] finds "did you mean" suggestions; imports run one way:
//! `decode` → `types`, `hints`.

pub mod decode;
pub mod hints;
pub mod types;

pub use decode::*;
pub use hints::{hint, nearest};
pub use types::*;
