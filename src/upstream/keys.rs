//! Trusted public keys and the decision whether one of them signed an
//! index (apk-format.md §0, §3). Trust is decided by the key material: a
//! signature verifies with some trusted key, whatever its file is called.

use std::path::Path;

use crate::apk::read::Head;
use crate::apk::sign::{self, SigningKey};

use super::{Client, UpstreamError};

/// Largest key file read (a 4096-bit PEM public key is under 1 KiB).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// A public key the build trusts, with the name messages use for it (the
/// key file's name, which is what `.SIGN.*` entries refer to).
#[derive(Clone)]
pub struct TrustedKey {
    pub name: String,
    pub key: rsa::RsaPublicKey,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("name", &self.name)
            .finish()
    }
}

impl TrustedKey {
    /// The public half of a signing key.
    pub fn of(signing: &SigningKey) -> TrustedKey {
        TrustedKey {
            name: signing.key_name().to_string(),
            key: signing.public_key(),
        }
    }

    /// A public key file, named after the file.
    pub fn from_file(path: &Path) -> Result<TrustedKey, UpstreamError> {
        let key = sign::load_public_key(path).map_err(|source| UpstreamError::Key {
            entry: path.display().to_string(),
            problem: source.to_string(),
        })?;
        Ok(TrustedKey {
            name: last_segment(&path.to_string_lossy()).to_string(),
            key,
        })
    }
}

fn last_segment(s: &str) -> &str {
    let s = s.trim_end_matches('/');
    s.rsplit('/').next().unwrap_or(s)
}

/// `own` first, then every keyring entry: a file path, a `file://` URL, or
/// an `http(s)://` URL fetched through the client's cache (so `--offline`
/// works once it has been fetched).
pub fn load_keyring(
    entries: &[String],
    own: Vec<TrustedKey>,
    client: &Client,
) -> Result<Vec<TrustedKey>, UpstreamError> {
    let mut keys = own;
    for entry in entries {
        let e = entry.trim();
        if let Some(p) = e.strip_prefix("file://") {
            keys.push(TrustedKey::from_file(Path::new(p))?);
        } else if e.starts_with("http://") || e.starts_with("https://") {
            let pem = client.small_file(e, "keys", MAX_KEY_FILE)?;
            let key = std::str::from_utf8(&pem)
                .ok()
                .and_then(sign::parse_public_key_pem)
                .ok_or_else(|| UpstreamError::Key {
                    entry: e.to_string(),
                    problem: "not a PEM RSA public key".into(),
                })?;
            keys.push(TrustedKey {
                name: last_segment(e).to_string(),
                key,
            });
        } else if e.contains("://") {
            return Err(UpstreamError::Key {
                entry: e.to_string(),
                problem: "unsupported scheme (use a path, file://, http:// or https://)".into(),
            });
        } else {
            keys.push(TrustedKey::from_file(Path::new(e))?);
        }
    }
    Ok(keys)
}

/// Which trusted key signed `head` (its name), or why none did. `url`
/// names the index in the error.
pub fn check_trust(
    url: &str,
    head: &Head,
    trusted: &[TrustedKey],
) -> Result<String, UpstreamError> {
    let tried = || {
        if trusted.is_empty() {
            "none".to_string()
        } else {
            trusted
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    if !head.signed {
        return Err(UpstreamError::Unsigned {
            url: url.to_string(),
            tried: tried(),
        });
    }
    let mut bad = None;
    for sig in &head.signatures {
        for t in trusted {
            if sign::verify(&t.key, sig.alg, &head.member, &sig.bytes) {
                return Ok(t.name.clone());
            }
            // The signer's name is a trusted key's, yet it does not verify:
            // the index changed after signing (or the key did).
            if t.name == sig.key_name && bad.is_none() {
                bad = Some(format!(".SIGN.{}.{}", sig.alg, sig.key_name));
            }
        }
    }
    let mut signers: Vec<String> = head.signatures.iter().map(|s| s.key_name.clone()).collect();
    signers.extend(head.unknown_signatures.iter().cloned());
    let signers = signers.join(", ");
    Err(match bad {
        Some(entry) => UpstreamError::BadSignature {
            url: url.to_string(),
            entry,
            signers,
            tried: tried(),
        },
        None => UpstreamError::Untrusted {
            url: url.to_string(),
            signers,
            tried: tried(),
        },
    })
}
