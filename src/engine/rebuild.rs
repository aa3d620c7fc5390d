//! What a package says about how it was built, for `pkgbuild rebuild`: the
//! recipe it carries as `.melange.yaml` and the `.PKGINFO` fields a
//! rebuild must repeat (architecture, `builddate` as SOURCE_DATE_EPOCH,
//! `commit`). The package is untrusted: read with the bounded readers.

use std::path::Path;

use anyhow::Context;

use crate::apk::read;
use crate::arch::Arch;

/// Largest embedded recipe accepted (as for recipe files).
const MAX_RECIPE: u64 = crate::recipe::MAX_FILE_BYTES;

/// How one package was built, as far as it records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    pub name: String,
    /// Full version with `-rN`.
    pub version: String,
    /// The architecture to build for; `None` for `noarch` packages (any
    /// architecture builds them).
    pub arch: Option<Arch>,
    /// `origin`: the main package of the recipe.
    pub origin: String,
    /// SOURCE_DATE_EPOCH of the build.
    pub builddate: u64,
    /// The recipe's commit, when recorded.
    pub commit: Option<String>,
    /// The `.melange.yaml` text.
    pub recipe: Vec<u8>,
}

impl Embedded {
    /// `<name>-<version>.apk`, the file name a build writes.
    pub fn file_name(&self) -> String {
        format!("{}-{}.apk", self.name, self.version)
    }
}

/// Read what `apk` records of its build; an error when it is not a
/// package or carries no recipe.
pub fn embedded(apk: &Path) -> anyhow::Result<Embedded> {
    let (head, size) =
        read::read_head_file(apk).with_context(|| format!("{}: not a package", apk.display()))?;
    let recipe = read::control_file(&head.tar, ".melange.yaml", MAX_RECIPE)
        .with_context(|| format!("{}: reading its .melange.yaml", apk.display()))?
        .with_context(|| {
            format!(
                "{}: carries no .melange.yaml, so there is no recipe to rebuild it from (was it built by pkgbuild or melange?)",
                apk.display()
            )
        })?;
    let ctl = read::control_from_head(head, size)
        .with_context(|| format!("{}: not a package", apk.display()))?;
    let info = ctl.pkginfo;
    let arch = match info.arch.as_str() {
        "" | "noarch" => None,
        a => Some(Arch::parse(a).with_context(|| {
            format!("{}: unknown architecture {a:?} in .PKGINFO", apk.display())
        })?),
    };
    let origin = if info.origin.is_empty() {
        info.name.clone()
    } else {
        info.origin.clone()
    };
    // These name files the rebuild writes and reads: no path may come of
    // them.
    for (field, v) in [
        ("origin", &origin),
        ("pkgname", &info.name),
        ("pkgver", &info.version),
    ] {
        if v.contains('/') || v.starts_with('.') || v.len() > 200 {
            anyhow::bail!("{}: unusable {field} {v:?} in .PKGINFO", apk.display());
        }
    }
    Ok(Embedded {
        name: info.name,
        version: info.version,
        arch,
        origin,
        builddate: info.builddate,
        commit: (!info.commit.is_empty()).then_some(info.commit),
        recipe,
    })
}
