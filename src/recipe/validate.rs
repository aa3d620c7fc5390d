//! Checks on recipe values that the YAML shape cannot express: package
//! names, apk versions, priorities, checksums.
//!
//! The version grammar here is the apk one
//! (`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc)[0-9]*)*(_(cvs|svn|git|hg|p)[0-9]*)*$`);
//! it should move to `apk::version::validate` once that module exists so
//! the writer and the recipe agree on one definition.

/// Package names melange accepts: `^[A-Za-z0-9][A-Za-z0-9._+-]*$`.
pub fn is_valid_package_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
}

/// Whether `v` is a valid apk version (without the `-rN` release suffix).
pub fn is_valid_version(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = 0;
    // digits(.digits)*
    loop {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            continue;
        }
        break;
    }
    // optional single letter
    if i < b.len() && b[i].is_ascii_lowercase() {
        i += 1;
    }
    // suffixes: pre-release ones first, then post-release ones
    const PRE: &[&str] = &["alpha", "beta", "pre", "rc"];
    const POST: &[&str] = &["cvs", "svn", "git", "hg", "p"];
    let mut post_seen = false;
    while i < b.len() {
        if b[i] != b'_' {
            return false;
        }
        i += 1;
        let rest = &v[i..];
        let word_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        let word = &rest[..word_len];
        if PRE.contains(&word) {
            if post_seen {
                return false;
            }
        } else if POST.contains(&word) {
            post_seen = true;
        } else {
            return false;
        }
        i += word_len;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    true
}

/// Expected hex length of a checksum-style pipeline input, if it is one.
pub fn checksum_length(input: &str) -> Option<usize> {
    match input {
        "expected-sha256" => Some(64),
        "expected-sha512" => Some(128),
        "expected-commit" => Some(40),
        _ => None,
    }
}

/// Check a checksum input value; `Err` says what is wrong.
pub fn check_checksum(input: &str, value: &str) -> Result<(), String> {
    let Some(len) = checksum_length(input) else {
        return Ok(());
    };
    if value.is_empty() {
        return Ok(());
    }
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`{input}` must be {len} hex digits, found non-hex characters in `{value}`"
        ));
    }
    if value.len() != len {
        return Err(format!(
            "`{input}` must be {len} hex digits, found {}",
            value.len()
        ));
    }
    Ok(())
}

/// melange requires priorities to parse as (signed) integers.
pub fn is_valid_priority(p: &str) -> bool {
    let digits = p.strip_prefix(['-', '+']).unwrap_or(p);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names() {
        for ok in ["foo", "py3.12-bar", "libstdc++", "R-sf", "7zip", "a_b"] {
            assert!(is_valid_package_name(ok), "{ok}");
        }
        for bad in ["", "-foo", ".foo", "foo bar", "foo/bar", "${{x}}", "fo:o"] {
            assert!(!is_valid_package_name(bad), "{bad}");
        }
    }

    #[test]
    fn versions() {
        for ok in [
            "1",
            "1.10",
            "00303",
            "1.2.3a",
            "1.0_rc1",
            "1.0_alpha",
            "2.0_p1",
            "1.0_rc2_p3",
            "20240101",
            "1.0_git20240101",
        ] {
            assert!(is_valid_version(ok), "{ok}");
        }
        for bad in [
            "",
            "v1.0",
            "1.0-r1",
            "1..0",
            "1.0.",
            "1.0_foo",
            "1.0AB",
            "1.0_p1_rc1",
            "1.0 ",
        ] {
            assert!(!is_valid_version(bad), "{bad}");
        }
    }

    #[test]
    fn checksums() {
        assert!(check_checksum("expected-sha256", &"a".repeat(64)).is_ok());
        assert_eq!(
            check_checksum("expected-sha256", "abc").unwrap_err(),
            "`expected-sha256` must be 64 hex digits, found 3"
        );
        assert!(check_checksum("expected-commit", &"g".repeat(40)).is_err());
        assert!(check_checksum("uri", "anything").is_ok());
    }

    #[test]
    fn priorities() {
        assert!(is_valid_priority("10") && is_valid_priority("-1"));
        assert!(!is_valid_priority("ten") && !is_valid_priority(""));
    }
}
