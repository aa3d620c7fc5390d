//! The one place that decides the build timestamp. Every archive header,
//! `builddate` and SBOM creation time comes from this value, which is what
//! makes two builds of the same recipe byte-identical.

use std::path::Path;

/// Where the timestamp came from, for the build log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochSource {
    Flag,
    Environment,
    GitCommit,
    Zero,
}

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds since 1970")]
    BadEnv(String),
    #[error("--build-date {0:?} is neither seconds since 1970 nor YYYY-MM-DD[THH:MM:SSZ]")]
    BadFlag(String),
}

/// Resolve the epoch: `--build-date`, else `SOURCE_DATE_EPOCH`, else the
/// time of the last git commit touching the recipe, else 0. `env` is
/// injected so tests never have to mutate the process environment.
pub fn resolve(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
    recipe: &Path,
) -> Result<(u64, EpochSource), EpochError> {
    if let Some(f) = flag {
        return parse_date(f)
            .map(|t| (t, EpochSource::Flag))
            .ok_or_else(|| EpochError::BadFlag(f.to_string()));
    }
    if let Some(v) = env("SOURCE_DATE_EPOCH") {
        let v = v.trim().to_string();
        // reproducible-builds.org: an empty value is treated as unset.
        if !v.is_empty() {
            return v
                .parse::<u64>()
                .map(|t| (t, EpochSource::Environment))
                .map_err(|_| EpochError::BadEnv(v));
        }
    }
    if let Some(t) = git_commit_time(recipe) {
        return Ok((t, EpochSource::GitCommit));
    }
    Ok((0, EpochSource::Zero))
}

fn git_commit_time(recipe: &Path) -> Option<u64> {
    let dir = recipe.parent().filter(|d| !d.as_os_str().is_empty())?;
    let name = recipe.file_name()?;
    let out = duct::cmd!("git", "log", "-1", "--format=%ct", "--", name)
        .dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stderr_null()
        .stdout_capture()
        .unchecked()
        .run()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// Accept plain seconds, `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn parse_date(s: &str) -> Option<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t.strip_suffix('Z')?)),
        None => (s, None),
    };
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || y < 1970 {
        return None;
    }
    let mut secs = days_from_civil(y, m, day) * 86400;
    if let Some(t) = time {
        let mut p = t.splitn(3, ':');
        let h: i64 = p.next()?.parse().ok()?;
        let mi: i64 = p.next()?.parse().ok()?;
        let se: i64 = p.next()?.parse().ok()?;
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
    }
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so we need no date crate for one conversion.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flag_wins_over_environment() {
        let env = |_: &str| Some("5".to_string());
        let r = resolve(
            Some("2023-11-14T22:13:20Z"),
            env,
            Path::new("/nonexistent/r.yaml"),
        );
        assert_eq!(r.unwrap(), (1700000000, EpochSource::Flag));
    }

    #[test]
    fn environment_is_used_and_validated() {
        let ok = resolve(None, |_| Some("1700000000".into()), Path::new("/x/r.yaml"));
        assert_eq!(ok.unwrap(), (1700000000, EpochSource::Environment));
        let bad = resolve(None, |_| Some("yesterday".into()), Path::new("/x/r.yaml"));
        assert!(bad.unwrap_err().to_string().contains("yesterday"));
    }

    #[test]
    fn empty_environment_falls_back_to_zero_outside_git() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r.yaml");
        std::fs::write(&r, "x").unwrap();
        assert_eq!(
            resolve(None, |_| Some(String::new()), &r).unwrap(),
            (0, EpochSource::Zero)
        );
        assert_eq!(resolve(None, no_env, &r).unwrap().0, 0);
    }

    #[test]
    fn git_commit_time_of_the_recipe_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path().join("r.yaml");
        std::fs::write(&r, "x").unwrap();
        let git = |args: &[&str]| {
            duct::cmd("git", args)
                .dir(dir.path())
                .env("GIT_COMMITTER_DATE", "1600000000 +0000")
                .env("GIT_AUTHOR_DATE", "1600000000 +0000")
                .stdout_null()
                .stderr_null()
                .run()
                .unwrap();
        };
        git(&["init", "-q"]);
        git(&["add", "r.yaml"]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-qm",
            "r",
        ]);
        assert_eq!(
            resolve(None, no_env, &r).unwrap(),
            (1600000000, EpochSource::GitCommit)
        );
    }

    #[test]
    fn parses_dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951868800));
        assert_eq!(parse_date("2024-02-29T12:00:00Z"), Some(1709208000));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(parse_date("soon"), None);
    }
}
