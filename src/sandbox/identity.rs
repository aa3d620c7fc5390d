//! Who a step runs as: the account files the sandbox shows (`/etc/passwd`,
//! `/etc/group`), the uid/gid the step gets, and its capability set.
//!
//! The engine turns a recipe's `environment.accounts` and `capabilities`
//! into an [`Identity`]; this module only validates and renders, so the
//! sandbox keeps knowing nothing of recipes.

use std::collections::BTreeSet;

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The identity every step of a build runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub uid: u32,
    pub gid: u32,
    /// Capabilities (`CAP_*`) a uid-0 step keeps; a non-root step has none.
    pub caps: Vec<String>,
}

/// What a container runtime grants a root process by default (the OCI
/// runtime defaults Docker and containerd use). `CAP_SYS_ADMIN` is not
/// among them: with it a step could remount the read-only mounts.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Every capability name Linux defines, for checking recipe input.
const KNOWN_CAPS: [&str; 41] = [
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` all name `CAP_NET_ADMIN`.
pub fn normalize_cap(name: &str) -> Result<String, String> {
    let up = name.trim().to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if KNOWN_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(format!("unknown capability {name:?}"))
    }
}

/// The default set plus `add`, minus `drop` (`ALL` in `drop` empties the
/// defaults first, as container runtimes read it). Sorted.
pub fn capability_set(add: &[String], drop: &[String]) -> Result<Vec<String>, String> {
    let mut set: BTreeSet<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    for d in drop {
        if d.trim().eq_ignore_ascii_case("all") {
            set.clear();
        } else {
            set.remove(&normalize_cap(d)?);
        }
    }
    for a in add {
        if a.trim().eq_ignore_ascii_case("all") {
            set.extend(KNOWN_CAPS.iter().map(|s| s.to_string()));
        } else {
            set.insert(normalize_cap(a)?);
        }
    }
    Ok(set.into_iter().collect())
}

/// A field of a passwd/group line may not hold the separators.
fn field_ok(s: &str) -> bool {
    !s.contains([':', '\n', '\r', '\0'])
}

impl Identity {
    /// Root with the default capabilities, plus melange's `build` user.
    pub fn root(build_root: &str) -> Identity {
        Identity {
            users: vec![User {
                name: "build".into(),
                uid: 1000,
                gid: 1000,
                home: build_root.into(),
                shell: "/bin/sh".into(),
            }],
            groups: vec![Group {
                name: "build".into(),
                gid: 1000,
                members: vec!["build".into()],
            }],
            uid: 0,
            gid: 0,
            caps: DEFAULT_CAPS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Refuse entries that would corrupt the account files.
    pub fn check(&self) -> Result<(), String> {
        for u in &self.users {
            for f in [&u.name, &u.home, &u.shell] {
                if !field_ok(f) || u.name.is_empty() {
                    return Err(format!("account {:?}: invalid field {f:?}", u.name));
                }
            }
        }
        for g in &self.groups {
            if g.name.is_empty()
                || !field_ok(&g.name)
                || g.members.iter().any(|m| !field_ok(m) || m.contains(','))
            {
                return Err(format!("group {:?}: invalid name or member", g.name));
            }
        }
        Ok(())
    }

    /// `/etc/passwd`: root, the users, then `nobody`, each once.
    pub fn passwd(&self) -> String {
        let mut out = String::from("root:x:0:0:root:/root:/bin/sh\n");
        let mut seen: BTreeSet<&str> = ["root", "nobody"].into();
        for u in &self.users {
            if seen.insert(&u.name) {
                let shell = if u.shell.is_empty() {
                    "/bin/sh"
                } else {
                    &u.shell
                };
                let home = if u.home.is_empty() {
                    format!("/home/{}", u.name)
                } else {
                    u.home.clone()
                };
                out.push_str(&format!(
                    "{}:x:{}:{}:{}:{home}:{shell}\n",
                    u.name, u.uid, u.gid, u.name
                ));
            }
        }
        out.push_str("nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n");
        out
    }

    /// `/etc/group`: root, the groups, then `nogroup`, each once.
    pub fn group(&self) -> String {
        let mut out = String::from("root:x:0:\n");
        let mut seen: BTreeSet<&str> = ["root", "nogroup"].into();
        for g in &self.groups {
            if seen.insert(&g.name) {
                out.push_str(&format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(",")));
            }
        }
        out.push_str("nogroup:x:65534:\n");
        out
    }

    /// The home directory of the user steps run as, when it is not root
    /// (the same default as [`Identity::passwd`] writes).
    pub fn home(&self) -> Option<String> {
        if self.uid == 0 {
            return None;
        }
        let u = self.users.iter().find(|u| u.uid == self.uid)?;
        Some(if u.home.is_empty() {
            format!("/home/{}", u.name)
        } else {
            u.home.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn capability_names_in_any_spelling_and_the_default_set() {
        assert_eq!(normalize_cap("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize_cap("CAP_SYS_PTRACE").unwrap(), "CAP_SYS_PTRACE");
        assert!(normalize_cap("CAP_FLY").is_err());
        let set = capability_set(&s(&["NET_ADMIN"]), &s(&["cap_net_raw"])).unwrap();
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_NET_RAW".to_string()));
        assert!(set.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(
            capability_set(&s(&["SYS_PTRACE"]), &s(&["ALL"])).unwrap(),
            ["CAP_SYS_PTRACE"]
        );
        assert!(capability_set(&s(&["nope"]), &[]).is_err());
    }

    #[test]
    fn account_files_hold_root_build_and_recipe_users_once() {
        let mut id = Identity::root("/home/build");
        id.users.push(User {
            name: "app".into(),
            uid: 65532,
            gid: 65532,
            home: String::new(),
            shell: String::new(),
        });
        id.users.push(id.users[0].clone());
        id.groups.push(Group {
            name: "app".into(),
            gid: 65532,
            members: vec!["app".into(), "build".into()],
        });
        let p = id.passwd();
        assert_eq!(p.matches("\nbuild:").count(), 1, "{p}");
        assert!(p.contains("build:x:1000:1000:build:/home/build:/bin/sh\n"));
        assert!(p.contains("app:x:65532:65532:app:/home/app:/bin/sh\n"));
        assert!(p.starts_with("root:x:0:0:"));
        assert!(id.group().contains("app:x:65532:app,build\n"));
        assert_eq!(id.home(), None);
        id.uid = 65532;
        assert_eq!(id.home().as_deref(), Some("/home/app"));
        id.uid = 1000;
        assert_eq!(id.home().as_deref(), Some("/home/build"));
        id.users[0].name = "evil:0:0".into();
        assert!(id.check().is_err());
    }
}
