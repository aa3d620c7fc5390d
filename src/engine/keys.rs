//! The signing key used when `--signing-key` is not given: created once in
//! the user's config directory so a first build just works, and reused
//! afterwards. Its name holds a fingerprint, never the user or host name,
//! because the key name is written into every package's signature entry.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::apk::sign::{self, SigningKey};

/// Where pkgbuild keeps its own key: `$XDG_CONFIG_HOME/pkgbuild/keys`, or
/// `~/.config/pkgbuild/keys`.
pub fn default_key_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = env("XDG_CONFIG_HOME")
        .filter(|v| v.starts_with('/'))
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".config"))
        })?;
    Some(base.join("pkgbuild").join("keys"))
}

/// The outcome of looking for the default key.
pub struct DefaultKey {
    pub key: SigningKey,
    pub private_path: PathBuf,
    pub public_path: PathBuf,
    pub created: bool,
}

/// Load the single `*.rsa` key in `dir`, or create `local-<fp>.rsa` there.
pub fn load_or_create(dir: &Path) -> anyhow::Result<DefaultKey> {
    use anyhow::Context;
    if let Ok(rd) = fs::read_dir(dir) {
        let mut keys: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "rsa"))
            .collect();
        keys.sort();
        if let Some(private_path) = keys.into_iter().next() {
            let key = SigningKey::load(&private_path)?;
            let public_path = private_path.with_extension("rsa.pub");
            return Ok(DefaultKey {
                key,
                private_path,
                public_path,
                created: false,
            });
        }
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create key directory", dir.display()))?;
    let pair = sign::generate(4096)?;
    let fp = Sha256::digest(pair.public_pem.as_bytes());
    let name = format!("local-{}.rsa", hex::encode(&fp[..4]));
    let private_path = dir.join(&name);
    let public_path = dir.join(format!("{name}.pub"));
    crate::atomic::write(&public_path, 0o644, pair.public_pem.as_bytes())
        .with_context(|| format!("{}: cannot write public key", public_path.display()))?;
    crate::atomic::write(&private_path, 0o600, pair.private_pem.as_bytes())
        .with_context(|| format!("{}: cannot write private key", private_path.display()))?;
    let key = SigningKey::load(&private_path)?;
    Ok(DefaultKey {
        key,
        private_path,
        public_path,
        created: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_prefers_xdg_then_home() {
        let env = |k: &str| match k {
            "XDG_CONFIG_HOME" => Some("/x/cfg".to_string()),
            "HOME" => Some("/home/u".to_string()),
            _ => None,
        };
        assert_eq!(
            default_key_dir(env).unwrap(),
            Path::new("/x/cfg/pkgbuild/keys")
        );
        let env = |k: &str| (k == "HOME").then(|| "/home/u".to_string());
        assert_eq!(
            default_key_dir(env).unwrap(),
            Path::new("/home/u/.config/pkgbuild/keys")
        );
        assert!(default_key_dir(|_| None).is_none());
    }
}
