//! `git-checkout` on the host: clone a repository at a branch or tag, verify
//! the pinned commit, apply cherry-picks, and place the tree in the
//! workspace, with input semantics matching melange's built-in pipeline.
//!
//! Semantics kept from melange's `git-checkout`:
//! - `branch` and `tag` are mutually exclusive; neither means the remote HEAD.
//! - `depth` unset means 1 (shallow), except with `branch` plus
//!   `expected-commit`, where it means -1 (full history) so an expected
//!   commit older than the branch tip can be reset to. -1 is full history.
//! - For a tag, `expected-commit` is compared with the commit the tag points
//!   to; the hash of an annotated tag *object* is accepted too, as melange
//!   does (it only warns).
//! - For a branch, an expected commit that is an ancestor of the tip is
//!   checked out with `reset --hard` (full history only); anything else fails.
//! - Cherry-picks are lines `[branch/]commit: comment`, `#` starts a comment,
//!   blank lines are ignored, the comment is required. They are applied with
//!   `git cherry-pick -x`, committer identity fixed and committer date
//!   `SOURCE_DATE_EPOCH` (at least 1980-01-01, as melange), so the resulting
//!   HEAD is the same on every machine.
//!
//! git runs with a scrubbed environment: no user or system config, no
//! terminal prompts, and only the `git`, `http`, `https` and `ssh`
//! transports (no `ext::` command transports from a hostile recipe). The
//! local `file` transport is allowed only when the recipe's repository is
//! itself a local path, so a remote repository's submodules cannot pull in
//! repositories from the build host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Inputs of one `git-checkout`, as in a melange recipe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitCheckout {
    /// URL or absolute path of the repository.
    pub repository: String,
    /// Branch to check out (exclusive with `tag`).
    pub branch: Option<String>,
    /// Tag to check out (exclusive with `branch`).
    pub tag: Option<String>,
    /// Full commit hash the checkout must resolve to.
    pub expected_commit: Option<String>,
    /// Clone depth; `None` = melange's default (see module docs), -1 = full.
    pub depth: Option<i64>,
    /// Clone and update submodules recursively.
    pub recurse_submodules: bool,
    /// Cherry-pick lines, `[branch/]commit: comment`.
    pub cherry_picks: Vec<String>,
    /// The recipe's `destination`, used in messages; the host path is the
    /// `dest` argument of [`git_checkout`].
    pub destination_name: String,
    /// Committer date for cherry-picks (raised to 1980-01-01 if older or
    /// unset).
    pub source_date_epoch: Option<u64>,
}

/// Why a checkout failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    #[error("git-checkout of {repository}: {problem}")]
    Invalid { repository: String, problem: String },
    #[error("cannot run git: {source}\nnote: git must be installed on the build host")]
    Spawn { source: std::io::Error },
    #[error("`git {args}` failed ({status}):\n{stderr}")]
    Command {
        args: String,
        status: String,
        stderr: String,
    },
    #[error("git-checkout of {repository}: expected commit {expected} for {reference}, found {actual}{note}")]
    CommitMismatch {
        repository: String,
        reference: String,
        expected: String,
        actual: String,
        note: &'static str,
    },
    #[error("git-checkout into {}: {entry:?} already exists there", dest.display())]
    DestinationConflict { dest: PathBuf, entry: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Transports allowed for remote repositories (and their submodules).
const REMOTE_PROTOCOLS: &str = "git:http:https:ssh";

/// 1980-01-01: the oldest date zip-based tooling can represent, and
/// melange's floor for cherry-pick committer dates.
const MIN_COMMIT_DATE: u64 = 315_532_800;

/// One parsed cherry-pick line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CherryPick {
    pub branch: Option<String>,
    pub commit: String,
    pub comment: String,
}

/// Parse melange's cherry-pick lines (each entry of `lines` may itself hold
/// several newline-separated lines).
pub fn parse_cherry_picks(lines: &[String]) -> Result<Vec<CherryPick>, String> {
    let mut picks = Vec::new();
    for raw in lines.iter().flat_map(|l| l.lines()) {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let Some((reference, comment)) = line.split_once(':') else {
            return Err(format!(
                "cherry-pick {line:?}: expected `[branch/]commit: comment`"
            ));
        };
        let comment = comment.trim();
        if comment.is_empty() {
            return Err(format!("cherry-pick {line:?}: the comment is required"));
        }
        let reference = reference.trim();
        let (branch, commit) = match reference.rsplit_once('/') {
            Some((b, c)) => (Some(b.to_string()), c),
            None => (None, reference),
        };
        if commit.len() < 4 || commit.len() > 64 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "cherry-pick {line:?}: {commit:?} is not a commit hash"
            ));
        }
        if let Some(b) = &branch {
            check_ref_name("cherry-pick branch", b)?;
        }
        picks.push(CherryPick {
            branch,
            commit: commit.to_ascii_lowercase(),
            comment: comment.to_string(),
        });
    }
    Ok(picks)
}

/// Reject names git would read as options or that cannot be refs. Full ref
/// syntax is left to git itself.
fn check_ref_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c))
    {
        return Err(format!("{what} {name:?} is not a valid ref name"));
    }
    Ok(())
}

/// Clone `spec.repository` and leave the checked-out tree in `dest`
/// (created if missing; existing entries are kept, a name clash is an
/// error). Returns the final HEAD commit, after cherry-picks.
pub fn git_checkout(spec: &GitCheckout, dest: &Path) -> Result<String, GitError> {
    let invalid = |problem: String| GitError::Invalid {
        repository: spec.repository.clone(),
        problem,
    };
    if spec.repository.trim().is_empty() {
        return Err(invalid("repository is empty".into()));
    }
    let branch = spec.branch.as_deref().filter(|b| !b.is_empty());
    let tag = spec.tag.as_deref().filter(|t| !t.is_empty());
    if let (Some(b), Some(t)) = (branch, tag) {
        return Err(invalid(format!(
            "branch ({b}) and tag ({t}) are mutually exclusive"
        )));
    }
    for (what, name) in [("branch", branch), ("tag", tag)] {
        if let Some(name) = name {
            check_ref_name(what, name).map_err(invalid)?;
        }
    }
    let expected = match spec.expected_commit.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) if (c.len() == 40 || c.len() == 64) && c.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(c.to_ascii_lowercase())
        }
        Some(c) => {
            return Err(invalid(format!(
                "expected-commit {c:?} is not a full commit hash"
            )))
        }
    };
    let depth = match spec.depth {
        None if branch.is_some() && expected.is_some() => None,
        None => Some(1),
        Some(-1) => None,
        Some(n) if n >= 1 => Some(n),
        Some(n) => {
            return Err(invalid(format!(
                "depth {n} is invalid: use -1 (full history) or a positive number"
            )))
        }
    };
    let picks = parse_cherry_picks(&spec.cherry_picks).map_err(invalid)?;
    // The local `file` transport only when the recipe itself names a local
    // repository: otherwise an upstream repo's submodule URL could copy
    // arbitrary git repositories of the build host into the package.
    let local = spec.repository.starts_with('/') || spec.repository.starts_with("file://");
    let allow = [(
        "GIT_ALLOW_PROTOCOL",
        if local {
            "file:git:http:https:ssh"
        } else {
            REMOTE_PROTOCOLS
        },
    )];

    std::fs::create_dir_all(dest).map_err(|source| GitError::Io {
        what: "creating checkout destination",
        path: dest.to_path_buf(),
        source,
    })?;
    // Clone next to the final entries, so moving them in is a rename, and a
    // failure at any point leaves `dest` as it was.
    let tmp = tempfile::Builder::new()
        .prefix(".pkgbuild-git-")
        .tempdir_in(dest)
        .map_err(|source| GitError::Io {
            what: "creating temp clone directory in",
            path: dest.to_path_buf(),
            source,
        })?;
    let work = tmp.path().join("clone");
    let depth_flag = depth.map(|d| format!("--depth={d}"));

    let mut clone: Vec<String> = vec![
        "clone".into(),
        "--quiet".into(),
        // Use the transport even for local paths: --depth is honoured and
        // the clone shares no hard-linked objects with the source repo.
        "--no-local".into(),
        "--origin=origin".into(),
    ];
    if let Some(r) = branch.or(tag) {
        clone.push(format!("--branch={r}"));
    }
    clone.extend(depth_flag.clone());
    if spec.recurse_submodules {
        clone.push("--recurse-submodules".into());
        if depth.is_some() {
            clone.push("--shallow-submodules".into());
        }
    }
    clone.push("--".into());
    clone.push(spec.repository.clone());
    clone.push(work.to_string_lossy().into_owned());
    git(&clone, None, &allow)?;

    let reference;
    if let Some(tag) = tag {
        reference = format!("tag {tag}");
        // `clone --branch` prefers a branch over a tag of the same name;
        // fetch the tag itself and detach at the commit it points to.
        let mut fetch = vec!["fetch", "--quiet", "--no-tags"];
        if let Some(d) = &depth_flag {
            fetch.push(d);
        }
        let refspec = format!("+refs/tags/{tag}:refs/tags/{tag}");
        fetch.extend(["origin", refspec.as_str()]);
        git(&fetch, Some(&work), &allow)?;
        let peeled = format!("refs/tags/{tag}^{{commit}}");
        git(
            &["checkout", "--quiet", "--detach", peeled.as_str()],
            Some(&work),
            &allow,
        )?;
        let head = rev_parse(&allow, &work, "HEAD")?;
        if let Some(want) = &expected {
            let tag_object = rev_parse(&allow, &work, &format!("refs/tags/{tag}"))?;
            if *want != head && *want != tag_object {
                return Err(GitError::CommitMismatch {
                    repository: spec.repository.clone(),
                    reference,
                    expected: want.clone(),
                    actual: head,
                    note: "",
                });
            }
        }
    } else {
        reference = match branch {
            Some(b) => format!("branch {b}"),
            None => "HEAD".to_string(),
        };
        let head = rev_parse(&allow, &work, "HEAD")?;
        if let Some(want) = expected.as_ref().filter(|w| **w != head) {
            let mismatch = |note| GitError::CommitMismatch {
                repository: spec.repository.clone(),
                reference: reference.clone(),
                expected: want.clone(),
                actual: head.clone(),
                note,
            };
            if depth.is_some() {
                return Err(mismatch(
                    "\nnote: the clone is shallow; set depth to -1 to check out an older commit of the branch",
                ));
            }
            let ancestor = git(
                &["merge-base", "--is-ancestor", want.as_str(), "HEAD"],
                Some(&work),
                &allow,
            );
            if ancestor.is_err() {
                return Err(mismatch(
                    "\nnote: the expected commit is not in the history of the checked-out branch",
                ));
            }
            git(
                &["reset", "--quiet", "--hard", want.as_str()],
                Some(&work),
                &allow,
            )?;
        }
    }
    if spec.recurse_submodules {
        git(
            &["submodule", "update", "--quiet", "--init", "--recursive"],
            Some(&work),
            &allow,
        )?;
    }

    apply_cherry_picks(&allow, &work, &picks, spec.source_date_epoch)?;
    let head = rev_parse(&allow, &work, "HEAD")?;
    move_entries(&work, dest)?;
    Ok(head)
}

fn apply_cherry_picks(
    env: &[(&str, &str)],
    work: &Path,
    picks: &[CherryPick],
    epoch: Option<u64>,
) -> Result<(), GitError> {
    let date = format!("@{} +0000", epoch.unwrap_or(0).max(MIN_COMMIT_DATE));
    let mut committer = env.to_vec();
    committer.push(("GIT_COMMITTER_DATE", date.as_str()));
    let mut fetched: Vec<&str> = Vec::new();
    for pick in picks {
        if let Some(b) = pick.branch.as_deref() {
            if !fetched.contains(&b) {
                let shallow = git(&["rev-parse", "--is-shallow-repository"], Some(work), env)?;
                // Fetch into a remote-tracking ref: fetching into a local
                // branch fails when that branch is the one checked out.
                let refspec = format!("+refs/heads/{b}:refs/remotes/origin/{b}");
                let mut args = vec!["fetch", "--quiet"];
                if shallow == "true" {
                    args.push("--unshallow");
                }
                args.extend(["origin", refspec.as_str()]);
                git(&args, Some(work), env)?;
                fetched.push(b);
            }
        }
        git(
            &["cherry-pick", "-x", pick.commit.as_str()],
            Some(work),
            &committer,
        )?;
    }
    Ok(())
}

/// Rename every entry of `from` into `to`, refusing to replace anything.
fn move_entries(from: &Path, to: &Path) -> Result<(), GitError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| GitError::Io { what, path, source }
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(from).map_err(io("reading clone", from))? {
        names.push(entry.map_err(io("reading clone", from))?.file_name());
    }
    names.sort();
    for name in &names {
        let target = to.join(name);
        if target.symlink_metadata().is_ok() {
            return Err(GitError::DestinationConflict {
                dest: to.to_path_buf(),
                entry: name.to_string_lossy().into_owned(),
            });
        }
    }
    for name in &names {
        let target = to.join(name);
        std::fs::rename(from.join(name), &target).map_err(io("moving checkout to", &target))?;
    }
    Ok(())
}

fn rev_parse(env: &[(&str, &str)], work: &Path, rev: &str) -> Result<String, GitError> {
    git(
        &["rev-parse", "--verify", "--end-of-options", rev],
        Some(work),
        env,
    )
}

/// The environment git runs with: nothing from the user but `PATH` and
/// proxy/CA settings, plus config that makes runs non-interactive and
/// quiet.
fn git_env(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for key in [
        "PATH",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ] {
        if let Ok(v) = std::env::var(key) {
            env.insert(key.to_string(), v);
        }
    }
    for (k, v) in [
        ("LC_ALL", "C"),
        ("GIT_TERMINAL_PROMPT", "0"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("GIT_ALLOW_PROTOCOL", REMOTE_PROTOCOLS),
        ("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
        ("GIT_AUTHOR_NAME", "pkgbuild"),
        ("GIT_AUTHOR_EMAIL", "pkgbuild@localhost"),
        ("GIT_COMMITTER_NAME", "pkgbuild"),
        ("GIT_COMMITTER_EMAIL", "pkgbuild@localhost"),
    ] {
        env.insert(k.to_string(), v.to_string());
    }
    // Config given through the environment counts as command-line config,
    // the only place besides global/system config that git reads
    // safe.directory from. Every repository here is one we just cloned.
    let config = [
        ("safe.directory", "*"),
        ("advice.detachedHead", "false"),
        ("maintenance.auto", "false"),
        ("gc.auto", "0"),
    ];
    env.insert("GIT_CONFIG_COUNT".into(), config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        env.insert(format!("GIT_CONFIG_KEY_{i}"), k.to_string());
        env.insert(format!("GIT_CONFIG_VALUE_{i}"), v.to_string());
    }
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// Run git, returning trimmed stdout; a failure carries git's stderr.
fn git<S: AsRef<str>>(
    args: &[S],
    cwd: Option<&Path>,
    extra_env: &[(&str, &str)],
) -> Result<String, GitError> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let mut expr = duct::cmd("git", &args)
        .full_env(git_env(extra_env))
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    if let Some(dir) = cwd {
        expr = expr.dir(dir);
    }
    let out = expr.run().map_err(|source| GitError::Spawn { source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        return Err(GitError::Command {
            args: args.join(" "),
            status: out
                .status
                .code()
                .map_or_else(|| "killed by a signal".into(), |c| format!("exit {c}")),
            stderr: tail,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[test]
    fn cherry_pick_lines_follow_melange_syntax() {
        let picks = parse_cherry_picks(&lines(
            "# a comment line\n\n3.10/62705d869aca4055e8a96e2ed4f9013e9917c661: fix CVE # trailing\n  abcdef12: local commit\nrelease/v2/ABCDEF12: nested branch\n",
        ))
        .expect("parse");
        assert_eq!(
            picks,
            [
                CherryPick {
                    branch: Some("3.10".into()),
                    commit: "62705d869aca4055e8a96e2ed4f9013e9917c661".into(),
                    comment: "fix CVE".into()
                },
                CherryPick {
                    branch: None,
                    commit: "abcdef12".into(),
                    comment: "local commit".into()
                },
                CherryPick {
                    branch: Some("release/v2".into()),
                    commit: "abcdef12".into(),
                    comment: "nested branch".into()
                },
            ]
        );
    }

    #[test]
    fn cherry_pick_lines_without_comment_or_hash_are_rejected() {
        for bad in [
            "abcdef12",
            "abcdef12:",
            "abcdef12:   # only a comment",
            "main/--upload-pack=x: evil",
            "-x/abcdef12: option as branch",
            "my branch/abcdef12: space",
        ] {
            assert!(parse_cherry_picks(&lines(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn invalid_inputs_fail_before_cloning() {
        let dest = tempfile::tempdir().expect("tempdir");
        let base = GitCheckout {
            repository: "/nonexistent/repo".into(),
            ..Default::default()
        };
        let cases = [
            GitCheckout {
                branch: Some("main".into()),
                tag: Some("v1".into()),
                ..base.clone()
            },
            GitCheckout {
                depth: Some(0),
                ..base.clone()
            },
            GitCheckout {
                expected_commit: Some("abc123".into()),
                ..base.clone()
            },
            GitCheckout {
                tag: Some("--upload-pack=touch /tmp/x".into()),
                ..base.clone()
            },
        ];
        for spec in cases {
            match git_checkout(&spec, dest.path()) {
                Err(GitError::Invalid { .. }) => {}
                other => panic!("{spec:?}: expected an input error, got {other:?}"),
            }
        }
        let err = git_checkout(
            &GitCheckout {
                branch: Some("main".into()),
                tag: Some("v1".into()),
                ..base
            },
            dest.path(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("mutually exclusive"), "{err}");
    }
}
