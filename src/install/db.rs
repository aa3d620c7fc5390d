//! The apk database and `etc/apk` files of a fresh root, in the forms
//! apk-tools 2 reads (apk-format.md §4.3):
//!
//! * `lib/apk/db/installed`: per package its index fields, `r:`/`q:`,
//!   then `F:` per directory (`M:` when not root:root 0755) and `R:` per
//!   entry (`a:` when not root:root 0644, `Z:` = the package's SHA-1);
//! * `lib/apk/db/scripts.tar`: every script as
//!   `<name>-<version>.Q1<C:>.<kind>`;
//! * `lib/apk/db/triggers`: `Q1<C:> /glob ...` per package with triggers;
//! * `lib/apk/db/lock` (empty), `etc/apk/{world,repositories,arch,keys/*}`.
//!
//! Every file is written to a temporary name and renamed into place.

use std::fmt::Write as _;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::extract::{Acl, Installed, Installer, DEFAULT_DIR_ACL, DEFAULT_FILE_ACL};
use super::paths::Resolver;
use super::{InstallError, RootSetup};
use crate::apk::index::Index;
use crate::apk::tar::{Header, Kind, TarWriter};

/// Refuse setup values that would break their files or leave `etc/apk/keys`.
pub fn check_setup(setup: &RootSetup) -> Result<(), InstallError> {
    let one_line = |what: &str, v: &str| {
        if v.contains(['\n', '\r', '\0']) {
            Err(InstallError::Setup(format!(
                "{what} {v:?} must be a single line"
            )))
        } else {
            Ok(())
        }
    };
    one_line("arch", setup.arch)?;
    if setup.arch.is_empty() {
        return Err(InstallError::Setup("arch is empty".into()));
    }
    for w in setup.world.iter().chain(setup.repositories) {
        one_line("world/repositories line", w)?;
    }
    for (name, _) in setup.keys {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(InstallError::Setup(format!(
                "key file name {name:?} must be a plain file name"
            )));
        }
    }
    Ok(())
}

fn q1(sha1: &[u8; 20]) -> String {
    format!("Q1{}", BASE64.encode(sha1))
}

fn push_acl(out: &mut String, acl: &Acl) {
    let _ = write!(out, "{}:{}:{:o}", acl.uid, acl.gid, acl.mode);
    if let Some(x) = &acl.xattr {
        let _ = write!(out, ":{}", q1(x));
    }
}

/// One package's record in `lib/apk/db/installed`.
pub fn render_record(pkg: &Installed, out: &mut String) {
    let index = Index {
        description: None,
        entries: vec![pkg.entry.clone()],
    };
    let text = index.render_text();
    // The index record ends with its blank line; ours goes on.
    out.push_str(text.strip_suffix('\n').unwrap_or(&text));
    let one = |s: &str| s.replace(['\n', '\r'], " ");
    if !pkg.info.replaces.is_empty() {
        let _ = writeln!(out, "r:{}", one(&pkg.info.replaces.join(" ")));
    }
    if let Some(q) = pkg.info.replaces_priority.filter(|&q| q != 0) {
        let _ = writeln!(out, "q:{q}");
    }
    for dir in &pkg.dirs {
        let _ = writeln!(out, "F:{}", one(&dir.path));
        if dir.acl != DEFAULT_DIR_ACL {
            out.push_str("M:");
            push_acl(out, &dir.acl);
            out.push('\n');
        }
        for f in dir.files.iter().filter(|f| !f.gone) {
            let _ = writeln!(out, "R:{}", one(&f.name));
            if f.acl != DEFAULT_FILE_ACL {
                out.push_str("a:");
                push_acl(out, &f.acl);
                out.push('\n');
            }
            if let Some(c) = &f.csum {
                let _ = writeln!(out, "Z:{}", q1(c));
            }
        }
    }
    out.push('\n');
}

/// `lib/apk/db/scripts.tar`: an uncompressed tar of every script.
fn scripts_tar(pkgs: &[Installed]) -> std::io::Result<Vec<u8>> {
    let mut w = TarWriter::new(Vec::new());
    for p in pkgs {
        for (kind, body) in &p.scripts {
            let name = format!(
                "{}-{}.{}{}",
                p.info.name,
                p.info.version,
                p.entry.checksum_field(),
                kind
            );
            let mut h = Header::new(name.into_bytes(), Kind::File, 0o755, p.info.builddate);
            h.size = body.len() as u64;
            w.append(&h, &[], body)?;
        }
    }
    w.end_of_archive()?;
    Ok(w.into_inner())
}

fn triggers_text(pkgs: &[Installed]) -> String {
    let mut out = String::new();
    for p in pkgs.iter().filter(|p| !p.info.triggers.is_empty()) {
        let globs: Vec<String> = p
            .info
            .triggers
            .iter()
            .map(|g| g.replace(['\n', '\r', ' '], ""))
            .collect();
        let _ = writeln!(out, "{} {}", p.entry.checksum_field(), globs.join(" "));
    }
    out
}

fn lines(items: &[String]) -> String {
    items.iter().map(|l| format!("{l}\n")).collect()
}

fn write_in(
    resolver: &mut Resolver,
    dir: &[&str],
    name: &str,
    mode: u32,
    bytes: &[u8],
) -> Result<(), InstallError> {
    let d = resolver.dir(dir, true).map_err(|e| InstallError::Unsafe {
        package: "(database)".into(),
        path: dir.join("/"),
        problem: e.to_string(),
    })?;
    let path = d.host.join(name);
    crate::atomic::write(&path, mode, bytes).map_err(InstallError::io(
        "(database)",
        "cannot write",
        &path,
    ))
}

/// Write the database and `etc/apk` files into `root`.
pub fn write_all(
    root: &Path,
    state: &mut Installer,
    setup: &RootSetup,
) -> Result<(), InstallError> {
    debug_assert_eq!(state.resolver.root(), root);
    state.tree_changed();
    let mut installed = String::new();
    for p in &state.packages {
        render_record(p, &mut installed);
    }
    let scripts = scripts_tar(&state.packages)
        .map_err(|e| InstallError::Setup(format!("cannot encode lib/apk/db/scripts.tar: {e}")))?;
    let triggers = triggers_text(&state.packages);
    let r = &mut state.resolver;
    let db = ["lib", "apk", "db"];
    write_in(r, &db, "installed", 0o644, installed.as_bytes())?;
    write_in(r, &db, "scripts.tar", 0o644, &scripts)?;
    write_in(r, &db, "triggers", 0o644, triggers.as_bytes())?;
    write_in(r, &db, "lock", 0o600, b"")?;
    let etc = ["etc", "apk"];
    write_in(r, &etc, "world", 0o644, lines(setup.world).as_bytes())?;
    write_in(
        r,
        &etc,
        "repositories",
        0o644,
        lines(setup.repositories).as_bytes(),
    )?;
    write_in(
        r,
        &etc,
        "arch",
        0o644,
        format!("{}\n", setup.arch).as_bytes(),
    )?;
    for (name, pem) in setup.keys {
        write_in(r, &["etc", "apk", "keys"], name, 0o644, pem)?;
    }
    Ok(())
}
