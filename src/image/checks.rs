//! The image's security defaults (minimal, non-root): an image that runs
//! as root, or that contains a shell or a package manager nobody asked
//! for, is reported, naming the package that brought it.

use super::config::ImageConfig;
use super::rootfs::{DbPackage, RunAs};

/// Programs that make an image a shell-capable one.
const SHELLS: &[&str] = &[
    "sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "fish", "csh", "tcsh", "busybox", "toybox",
];
/// Programs that install more software at run time.
const PACKAGE_MANAGERS: &[&str] = &[
    "apk", "apt", "apt-get", "dpkg", "rpm", "yum", "dnf", "microdnf", "zypper", "pip", "pip3",
    "npm", "gem",
];
const BIN_DIRS: &[&str] = &["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin"];

/// The package name an apk dependency string asks for (`hello>=1.2@local`
/// → `hello`).
fn requested_name(dep: &str) -> &str {
    let dep = dep.trim().trim_start_matches('!');
    let end = dep.find(['<', '>', '=', '~', '@']).unwrap_or(dep.len());
    &dep[..end]
}

/// The name part of a dependency or provides entry (`so:libc.so.6>=2`
/// → `so:libc.so.6`).
fn dep_name(dep: &str) -> &str {
    requested_name(dep)
}

/// How a package came into the image: the shortest chain of dependencies
/// from a requested package to `target` (`hello → glibc`), by name.
fn chain(asked: &[&str], packages: &[DbPackage], target: usize) -> Option<Vec<String>> {
    use std::collections::VecDeque;
    let satisfies = |p: &DbPackage, want: &str| {
        p.name == want || p.provides.iter().any(|x| dep_name(x) == want)
    };
    let mut prev: Vec<Option<usize>> = vec![None; packages.len()];
    let mut seen = vec![false; packages.len()];
    let mut todo = VecDeque::new();
    for (i, p) in packages.iter().enumerate() {
        if asked.iter().any(|a| satisfies(p, a)) {
            seen[i] = true;
            todo.push_back(i);
        }
    }
    while let Some(i) = todo.pop_front() {
        if i == target {
            let mut path = vec![packages[i].name.clone()];
            let mut at = i;
            while let Some(p) = prev[at] {
                path.push(packages[p].name.clone());
                at = p;
            }
            path.reverse();
            return Some(path);
        }
        for d in packages[i].depends.iter().filter(|d| !d.starts_with('!')) {
            let want = dep_name(d);
            for (j, q) in packages.iter().enumerate() {
                if !seen[j] && satisfies(q, want) {
                    seen[j] = true;
                    prev[j] = Some(i);
                    todo.push_back(j);
                }
            }
        }
    }
    None
}

/// One sentence per finding; empty when the image keeps the defaults.
pub fn findings(cfg: &ImageConfig, run_as: Option<&RunAs>, packages: &[DbPackage]) -> Vec<String> {
    let mut out = Vec::new();
    match run_as {
        None => out.push(
            "the image runs as root: set `accounts.run-as` to an unprivileged user".to_string(),
        ),
        Some(r) if r.uid == 0 => out.push(format!(
            "the image runs as root (`run-as: {}` is uid 0)",
            r.user
        )),
        Some(_) => {}
    }
    let asked: Vec<&str> = cfg.packages.iter().map(|p| requested_name(p)).collect();
    for (i, p) in packages.iter().enumerate() {
        if asked.contains(&p.name.as_str()) {
            continue;
        }
        let mut shells = Vec::new();
        let mut managers = Vec::new();
        for f in &p.files {
            let (dir, base) = f.rsplit_once('/').unwrap_or(("", f));
            if !BIN_DIRS.contains(&dir) {
                continue;
            }
            if SHELLS.contains(&base) {
                shells.push(format!("/{f}"));
            } else if PACKAGE_MANAGERS.contains(&base) {
                managers.push(format!("/{f}"));
            }
        }
        let why = || match chain(&asked, packages, i) {
            Some(c) if c.len() > 1 => format!(", pulled in by {}", c.join(" → ")),
            _ => String::new(),
        };
        if !shells.is_empty() {
            out.push(format!(
                "the image contains a shell ({}) from package {}-{}{}, which the configuration does not ask for",
                shells.join(", "),
                p.name,
                p.version,
                why()
            ));
        }
        if !managers.is_empty() {
            out.push(format!(
                "the image contains a package manager ({}) from package {}-{}{}, which the configuration does not ask for",
                managers.join(", "),
                p.name,
                p.version,
                why()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, files: &[&str]) -> DbPackage {
        DbPackage {
            name: name.into(),
            version: "1-r0".into(),
            files: files.iter().map(|f| f.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn root_shells_and_package_managers_are_named_with_their_package() {
        let cfg = ImageConfig {
            packages: vec!["hello>=1".into()],
            ..Default::default()
        };
        let mut hello = pkg("hello", &["usr/bin/hello", "usr/bin/sh"]);
        hello.depends = vec!["so:libc.so.6".into(), "tools>=1".into()];
        let mut tools = pkg("tools", &[]);
        tools.provides = vec!["tools=1".into()];
        tools.depends = vec!["busybox".into()];
        let pkgs = [
            hello,
            pkg("busybox", &["usr/bin/busybox", "usr/share/doc/sh"]),
            pkg("apk-tools", &["sbin/apk"]),
            tools,
        ];
        let f = findings(&cfg, None, &pkgs);
        assert_eq!(f.len(), 3, "{f:?}");
        assert!(f[0].contains("runs as root"));
        assert!(f[1].contains("/usr/bin/busybox") && f[1].contains("busybox-1-r0"));
        assert!(
            f[1].contains("pulled in by hello → tools → busybox"),
            "{f:?}"
        );
        assert!(f[2].contains("package manager") && f[2].contains("apk-tools"));
        let user = RunAs {
            user: "app".into(),
            uid: 65532,
            gid: 65532,
        };
        assert!(findings(&cfg, Some(&user), &pkgs[..1]).is_empty());
        let root = RunAs {
            user: "0".into(),
            uid: 0,
            gid: 0,
        };
        assert!(findings(&cfg, Some(&root), &[])[0].contains("uid 0"));
    }
}
