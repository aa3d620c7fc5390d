//! The Alpine package format (apk v2): packages, indexes, signatures and
//! versions, exactly as `../shared/apk-format.md` describes. This module
//! knows nothing of recipes or processes.

pub mod dep;
pub mod diff;
pub mod gzip;
pub mod index;
pub mod package;
pub mod pkginfo;
pub mod read;
pub mod resign;
pub mod sign;
pub mod tar;
pub mod verify;
pub mod version;
