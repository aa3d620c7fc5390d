//! A recipe's (or test's) `environment.accounts` and top-level
//! `capabilities`, turned into the [`Identity`] the sandbox runs steps as.
//! The compiler has already added melange's `build` user and group.

use anyhow::{anyhow, Context, Result};

use crate::plan::{CapabilitiesPlan, EnvironmentPlan};
use crate::sandbox::identity::{self, Group, Identity, User};

fn number(what: &str, name: &str, text: &str) -> Result<u32> {
    text.trim().parse::<u32>().map_err(|_| {
        anyhow!("environment.accounts: {what} of {name:?} is {text:?}, expected a number")
    })
}

/// Users, groups, the `run-as` user (root when absent, as melange) and
/// the capability set a root step gets.
pub fn identity(env: &EnvironmentPlan, caps: &CapabilitiesPlan) -> Result<Identity> {
    let a = &env.accounts;
    let mut users = Vec::new();
    for u in &a.users {
        let name = u.username.value.clone();
        let uid = number("uid", &name, &u.uid.value)?;
        let gid = if u.gid.value.trim().is_empty() {
            uid
        } else {
            number("gid", &name, &u.gid.value)?
        };
        users.push(User {
            name,
            uid,
            gid,
            home: u.homedir.value.clone(),
            shell: u.shell.value.clone(),
        });
    }
    let mut groups = Vec::new();
    for g in &a.groups {
        let name = g.groupname.value.clone();
        groups.push(Group {
            gid: number("gid", &name, &g.gid.value)?,
            name,
            members: g.members.iter().map(|m| m.value.clone()).collect(),
        });
    }
    let run_as = a.run_as.value.trim();
    let (uid, gid) = if run_as.is_empty() || run_as == "root" || run_as == "0" {
        (0, 0)
    } else if let Some(u) = users
        .iter()
        .find(|u| u.name == run_as || u.uid.to_string() == run_as)
    {
        (u.uid, u.gid)
    } else {
        anyhow::bail!(
            "environment.accounts.run-as: {run_as:?} is not root and not one of the accounts ({})",
            users
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let caps = identity::capability_set(&caps.add, &caps.drop)
        .map_err(|e| anyhow!("capabilities: {e}"))?;
    let id = Identity {
        users,
        groups,
        uid,
        gid,
        caps,
    };
    id.check()
        .map_err(|e| anyhow!(e))
        .context("environment.accounts")?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::model::{Accounts, Text, User as RUser};
    use crate::recipe::Pos;

    fn t(s: &str) -> Text {
        Text::new(s, Pos::default())
    }

    fn env(run_as: &str) -> EnvironmentPlan {
        let mut e = EnvironmentPlan {
            accounts: Accounts {
                run_as: t(run_as),
                users: vec![RUser {
                    username: t("build"),
                    uid: t("1000"),
                    gid: t("1000"),
                    ..Default::default()
                }],
                groups: vec![],
            },
            ..Default::default()
        };
        e.accounts.users.push(RUser {
            username: t("app"),
            uid: t("65532"),
            ..Default::default()
        });
        e
    }

    #[test]
    fn run_as_picks_a_declared_user_by_name_or_uid_and_root_by_default() {
        let caps = CapabilitiesPlan::default();
        let root = identity(&env(""), &caps).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.caps.contains(&"CAP_CHOWN".to_string()));
        let app = identity(&env("app"), &caps).unwrap();
        assert_eq!((app.uid, app.gid), (65532, 65532));
        assert_eq!(identity(&env("1000"), &caps).unwrap().uid, 1000);
        let err = identity(&env("ghost"), &caps).unwrap_err().to_string();
        assert!(err.contains("ghost") && err.contains("app"), "{err}");
        let bad = CapabilitiesPlan {
            add: vec!["CAP_TELEPORT".into()],
            drop: vec![],
        };
        assert!(identity(&env(""), &bad).is_err());
    }
}
