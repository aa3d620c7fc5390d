//! `.PKGINFO`: the package's metadata file (apk-format.md §2).
//!
//! Rendering is deterministic (abuild's field order, one list item per
//! line, exactly one `triggers` line). Parsing follows apk's rules: split
//! at the first ` = `, ignore other lines and comments, accumulate list
//! keys, keep the last value of single keys.

use std::fmt::Write as _;

/// Largest `.PKGINFO` we accept when reading an untrusted package.
pub const MAX_PKGINFO_LEN: usize = 1024 * 1024;
/// The largest build date an 11-digit octal tar mtime field holds.
pub const MAX_BUILDDATE: u64 = 0o77777777777;

/// Metadata of one package, as written to `.PKGINFO` and the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PkgInfo {
    pub name: String,
    /// Full version including `-rN`.
    pub version: String,
    pub description: String,
    pub url: String,
    /// Unix seconds (SOURCE_DATE_EPOCH); 0 means unset.
    pub builddate: u64,
    pub packager: String,
    /// Installed size in bytes; must be > 0 for a package with content.
    pub size: u64,
    pub arch: String,
    pub origin: String,
    pub commit: String,
    pub maintainer: String,
    pub license: String,
    pub depends: Vec<String>,
    pub provides: Vec<String>,
    pub replaces: Vec<String>,
    pub install_if: Vec<String>,
    pub provider_priority: Option<u64>,
    pub replaces_priority: Option<u64>,
    /// Absolute directory globs for the `.trigger` script.
    pub triggers: Vec<String>,
    /// Lowercase hex SHA-256 of the data gzip member.
    pub datahash: String,
}

/// Values are single lines: apk has no escaping, so a newline would start
/// a new key. Replace control characters rather than corrupt the file.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

impl PkgInfo {
    /// Render `.PKGINFO`, ending with `datahash` (computed last).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut kv = |k: &str, v: &str| {
            let v = one_line(v);
            if !v.is_empty() {
                let _ = writeln!(out, "{k} = {v}");
            }
        };
        kv("pkgname", &self.name);
        kv("pkgver", &self.version);
        kv("pkgdesc", &self.description);
        kv("url", &self.url);
        if self.builddate != 0 {
            kv("builddate", &self.builddate.to_string());
        }
        kv("packager", &self.packager);
        kv("size", &self.size.to_string());
        kv("arch", &self.arch);
        kv("origin", &self.origin);
        kv("commit", &self.commit);
        kv("maintainer", &self.maintainer);
        kv("license", &self.license);
        for r in &self.replaces {
            kv("replaces", r);
        }
        if let Some(p) = self.replaces_priority {
            kv("replaces_priority", &p.to_string());
        }
        if let Some(p) = self.provider_priority {
            kv("provider_priority", &p.to_string());
        }
        for d in &self.depends {
            kv("depend", d);
        }
        for p in &self.provides {
            kv("provides", p);
        }
        if !self.install_if.is_empty() {
            kv("install_if", &self.install_if.join(" "));
        }
        if !self.triggers.is_empty() {
            kv("triggers", &self.triggers.join(" "));
        }
        kv("datahash", &self.datahash);
        out
    }

    /// Parse the `.PKGINFO` of a package read from disk: as [`PkgInfo::parse`],
    /// but a `builddate` or `size` that is not a number, or a `builddate`
    /// that no tar header can carry, is an error rather than a 0 (or a
    /// panic later, when the date becomes an index's mtime).
    pub fn parse_checked(text: &str) -> Result<PkgInfo, String> {
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((k, v)) = line.split_once(" = ") else {
                continue;
            };
            if k != "builddate" && k != "size" {
                continue;
            }
            let shown = crate::term::quote(v.trim());
            let n: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{k} = {shown}: expected a non-negative integer"))?;
            if k == "builddate" && n > MAX_BUILDDATE {
                return Err(format!(
                    "builddate = {n}: out of range (at most {MAX_BUILDDATE}, the largest tar mtime)"
                ));
            }
        }
        Ok(PkgInfo::parse(text))
    }

    /// Parse `.PKGINFO` text the way apk does. Unknown keys are ignored.
    pub fn parse(text: &str) -> PkgInfo {
        let mut p = PkgInfo::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once(" = ") else {
                continue;
            };
            let v = v.to_string();
            match k {
                "pkgname" => p.name = v,
                "pkgver" => p.version = v,
                "pkgdesc" => p.description = v,
                "url" => p.url = v,
                "builddate" => p.builddate = v.trim().parse().unwrap_or(0),
                "packager" => p.packager = v,
                "size" => p.size = v.trim().parse().unwrap_or(0),
                "arch" => p.arch = v,
                "origin" => p.origin = v,
                "commit" => p.commit = v,
                "maintainer" => p.maintainer = v,
                "license" => p.license = v,
                "depend" => p.depends.extend(v.split_whitespace().map(String::from)),
                "provides" => p.provides.extend(v.split_whitespace().map(String::from)),
                "replaces" => p.replaces.extend(v.split_whitespace().map(String::from)),
                "install_if" => p.install_if = v.split_whitespace().map(String::from).collect(),
                "provider_priority" => p.provider_priority = v.trim().parse().ok(),
                "replaces_priority" => p.replaces_priority = v.trim().parse().ok(),
                // Each triggers line replaces the previous one in apk.
                "triggers" => p.triggers = v.split_whitespace().map(String::from).collect(),
                "datahash" => p.datahash = v,
                _ => {}
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PkgInfo {
        PkgInfo {
            name: "hello".into(),
            version: "1.0-r0".into(),
            description: "Hello test package".into(),
            url: "https://example.org/hello".into(),
            builddate: 1700000000,
            packager: "Test <test@example.org>".into(),
            size: 26,
            arch: "x86_64".into(),
            origin: "hello".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            maintainer: "Test <test@example.org>".into(),
            license: "MIT".into(),
            depends: vec!["so:libc.musl-x86_64.so.1".into()],
            provides: vec!["cmd:hello=1.0-r0".into()],
            datahash: "455eb2dab3408b56f9568a9c255808469366cafc8034bf2ccf8c7660f5821ede".into(),
            ..Default::default()
        }
    }

    #[test]
    fn renders_the_spec_example_field_for_field() {
        let expected = "\
pkgname = hello
pkgver = 1.0-r0
pkgdesc = Hello test package
url = https://example.org/hello
builddate = 1700000000
packager = Test <test@example.org>
size = 26
arch = x86_64
origin = hello
commit = 0123456789abcdef0123456789abcdef01234567
maintainer = Test <test@example.org>
license = MIT
depend = so:libc.musl-x86_64.so.1
provides = cmd:hello=1.0-r0
datahash = 455eb2dab3408b56f9568a9c255808469366cafc8034bf2ccf8c7660f5821ede
";
        assert_eq!(sample().render(), expected);
    }

    #[test]
    fn parse_round_trips_render_and_ignores_lines_without_separator() {
        let mut p = sample();
        p.triggers = vec!["/usr/share/*".into(), "/etc/foo".into()];
        p.install_if = vec!["hello".into(), "docs".into()];
        p.replaces = vec!["old".into()];
        p.provider_priority = Some(10);
        p.replaces_priority = Some(5);
        let text = format!("# comment\nbogus=line\n{}", p.render());
        assert_eq!(PkgInfo::parse(&text), p);
    }

    #[test]
    fn newlines_in_values_cannot_inject_keys() {
        let mut p = sample();
        p.description = "evil\ndatahash = 00".into();
        let parsed = PkgInfo::parse(&p.render());
        assert_eq!(parsed.datahash, p.datahash);
        assert_eq!(parsed.description, "evil datahash = 00");
    }
}
