//! RSA keys and signatures as apk-tools uses them (apk-format.md §3).
//!
//! Signatures are RSASSA-PKCS1-v1_5 over a digest of the *compressed*
//! bytes of a gzip member; the signature file inside the archive is named
//! `.SIGN.<ALG>.<public key file name>` and apk looks that exact name up in
//! its keys directory, so the key name is part of the trust chain.

use std::fmt;
use std::path::{Path, PathBuf};

use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// Key files are tiny; anything larger is not a key and is not read whole.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// apk3 ignores signature files above this size; so do we.
pub const MAX_SIGNATURE_LEN: usize = 65536;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("{path}: cannot read key: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an RSA key in PEM form (expected PKCS#1 `RSA PRIVATE KEY`, PKCS#8 `PRIVATE KEY` or `PUBLIC KEY`)")]
    BadKey { path: PathBuf },
    #[error("{path}: {found}; expected a PEM RSA private key, PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`) or PKCS#8 (`-----BEGIN PRIVATE KEY-----`), as `pkgbuild keygen` or `openssl genrsa` write")]
    BadPrivateKey { path: PathBuf, found: String },
    #[error("{path}: key file is larger than {MAX_KEY_FILE} bytes")]
    TooLarge { path: PathBuf },
    #[error(
        "{path}: key name must end in `.rsa` (apko only matches public keys named `*.rsa.pub`)"
    )]
    BadName { path: PathBuf },
    #[error("signing failed: {0}")]
    Rsa(#[from] rsa::Error),
}

/// Signature algorithms of the `.SIGN.<ALG>.` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-1, the legacy abuild default (`.SIGN.RSA.`).
    Rsa,
    /// SHA-256, what melange and pkgbuild write (`.SIGN.RSA256.`).
    Rsa256,
    /// SHA-512 (`.SIGN.RSA512.`): apk reads it, go-apk skips it.
    Rsa512,
}

impl Algorithm {
    pub fn tag(self) -> &'static str {
        match self {
            Algorithm::Rsa => "RSA",
            Algorithm::Rsa256 => "RSA256",
            Algorithm::Rsa512 => "RSA512",
        }
    }

    /// Split a signature entry name into algorithm and key file name.
    /// Returns `None` for names that are not `.SIGN.<ALG>.<key>` with a
    /// known algorithm or whose key part could escape a keys directory.
    pub fn parse_entry_name(name: &str) -> Option<(Algorithm, &str)> {
        let rest = name.strip_prefix(".SIGN.")?;
        let (alg, key) = rest.split_once('.')?;
        let alg = match alg {
            "RSA" => Algorithm::Rsa,
            "RSA256" => Algorithm::Rsa256,
            "RSA512" => Algorithm::Rsa512,
            _ => return None,
        };
        if key.is_empty() || key.contains('/') || key == "." || key == ".." || key.contains('\0') {
            return None;
        }
        Some((alg, key))
    }

    fn scheme(self) -> Pkcs1v15Sign {
        match self {
            Algorithm::Rsa => Pkcs1v15Sign::new::<Sha1>(),
            Algorithm::Rsa256 => Pkcs1v15Sign::new::<Sha256>(),
            Algorithm::Rsa512 => Pkcs1v15Sign::new::<Sha512>(),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Algorithm::Rsa => Sha1::digest(data).to_vec(),
            Algorithm::Rsa256 => Sha256::digest(data).to_vec(),
            Algorithm::Rsa512 => Sha512::digest(data).to_vec(),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

/// A private signing key plus the public key file name apk will look up.
pub struct SigningKey {
    key: RsaPrivateKey,
    /// Base name of the public key file (`<name>.rsa.pub`).
    key_name: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

fn read_small(path: &Path) -> Result<String, SignError> {
    let io = |source| SignError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = crate::open::regular(path).map_err(io)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_KEY_FILE + 1), &mut text)
        .map_err(io)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(SignError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(text)
}

impl SigningKey {
    /// Load a PEM private key (PKCS#1 or PKCS#8). The public key name is
    /// the private key's file name plus `.pub`, as melange derives it.
    pub fn load(path: &Path) -> Result<Self, SignError> {
        let pem = read_small(path)?;
        let key = RsaPrivateKey::from_pkcs1_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
            .map_err(|_| SignError::BadPrivateKey {
                path: path.to_path_buf(),
                found: describe_pem(&pem),
            })?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(SigningKey {
            key,
            key_name: format!("{file}.pub"),
        })
    }

    pub fn from_key(key: RsaPrivateKey, key_name: impl Into<String>) -> Self {
        SigningKey {
            key,
            key_name: key_name.into(),
        }
    }

    /// File name of the public key, e.g. `packager-5f3a.rsa.pub`.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    /// Name of the signature entry for `alg`: `.SIGN.RSA256.<key_name>`.
    pub fn entry_name(&self, alg: Algorithm) -> String {
        format!(".SIGN.{}.{}", alg.tag(), self.key_name)
    }

    pub fn public_key(&self) -> RsaPublicKey {
        self.key.to_public_key()
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        self.key.size() * 8
    }

    /// Sign `data` (the raw compressed bytes of a gzip member).
    pub fn sign(&self, alg: Algorithm, data: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.key.sign(alg.scheme(), &alg.digest(data))?)
    }
}

/// Verify a raw PKCS#1 v1.5 signature over `data`.
pub fn verify(key: &RsaPublicKey, alg: Algorithm, data: &[u8], signature: &[u8]) -> bool {
    key.verify(alg.scheme(), &alg.digest(data), signature)
        .is_ok()
}

/// Parse a PEM public key: SubjectPublicKeyInfo (`PUBLIC KEY`, what apk
/// and go-apk expect) or PKCS#1 (`RSA PUBLIC KEY`, accepted by apk only).
pub fn parse_public_key_pem(pem: &str) -> Option<RsaPublicKey> {
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .ok()
}

/// Load one public key file.
pub fn load_public_key(path: &Path) -> Result<RsaPublicKey, SignError> {
    let pem = read_small(path)?;
    parse_public_key_pem(&pem).ok_or_else(|| SignError::BadKey {
        path: path.to_path_buf(),
    })
}

/// A generated key pair in the PEM forms apk tooling expects.
pub struct KeyPair {
    /// PKCS#1 `RSA PRIVATE KEY` PEM (what go-apk/melange parse).
    pub private_pem: String,
    /// SubjectPublicKeyInfo `PUBLIC KEY` PEM (what apk and go-apk parse).
    pub public_pem: String,
}

/// Generate an RSA key pair of `bits` bits.
pub fn generate(bits: usize) -> Result<KeyPair, SignError> {
    let mut rng = rsa::rand_core::OsRng;
    let key = RsaPrivateKey::new(&mut rng, bits)?;
    let private_pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| SignError::Rsa(rsa::Error::Pkcs1(e)))?
        .to_string();
    let public_pem = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| SignError::Rsa(rsa::Error::Pkcs8(rsa::pkcs8::Error::PublicKey(e))))?;
    Ok(KeyPair {
        private_pem,
        public_pem,
    })
}

/// What a file that failed to load as a private key holds, for the error.
fn describe_pem(text: &str) -> String {
    let label = text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|r| r.strip_suffix("-----"))
    });
    match label {
        None => "no PEM `-----BEGIN ...-----` block found".into(),
        Some(l) if l.contains("PUBLIC KEY") => {
            format!("holds a `{l}` block (a public key; sign with the private half)")
        }
        Some(l @ ("RSA PRIVATE KEY" | "PRIVATE KEY")) => {
            format!("its `{l}` block does not decode as an RSA key")
        }
        Some(l) => format!(
            "holds a `{}` block, not an RSA private key",
            crate::term::quote(l).trim_matches('"')
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata_key() -> PathBuf {
        crate::testdata().join("apk-tools-accepted/keys/test-5f3a.rsa")
    }

    #[test]
    fn loads_shared_test_key_and_round_trips_signature() {
        let key = SigningKey::load(&testdata_key()).unwrap();
        assert_eq!(key.key_name(), "test-5f3a.rsa.pub");
        assert_eq!(
            key.entry_name(Algorithm::Rsa256),
            ".SIGN.RSA256.test-5f3a.rsa.pub"
        );
        let public = load_public_key(&testdata_key().with_extension("rsa.pub")).unwrap();
        for alg in [Algorithm::Rsa, Algorithm::Rsa256, Algorithm::Rsa512] {
            let sig = key.sign(alg, b"member bytes").unwrap();
            assert_eq!(sig.len(), 256);
            assert!(verify(&public, alg, b"member bytes", &sig));
            assert!(!verify(&public, alg, b"member bytez", &sig));
        }
    }

    #[test]
    fn entry_names_parse_and_reject_traversal() {
        assert_eq!(
            Algorithm::parse_entry_name(".SIGN.RSA256.a.rsa.pub"),
            Some((Algorithm::Rsa256, "a.rsa.pub"))
        );
        assert_eq!(
            Algorithm::parse_entry_name(".SIGN.RSA.k"),
            Some((Algorithm::Rsa, "k"))
        );
        assert_eq!(Algorithm::parse_entry_name(".SIGN.DSA.k"), None);
        assert_eq!(Algorithm::parse_entry_name(".SIGN.RSA256.../x"), None);
        assert_eq!(Algorithm::parse_entry_name(".SIGN.RSA256.."), None);
        assert_eq!(Algorithm::parse_entry_name(".PKGINFO"), None);
    }

    #[test]
    fn garbage_key_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.rsa");
        std::fs::write(&p, "not a key").unwrap();
        let expected = "expected a PEM RSA private key, PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`) or PKCS#8 (`-----BEGIN PRIVATE KEY-----`)";
        for (content, found) in [
            ("not a key", "no PEM"),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "`RSA PRIVATE KEY` block does not decode",
            ),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "a public key",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
                "`EC PRIVATE KEY` block, not an RSA private key",
            ),
        ] {
            std::fs::write(&p, content).unwrap();
            let err = SigningKey::load(&p).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{}: ", p.display())), "{err}");
            assert!(err.contains(found), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }
}
