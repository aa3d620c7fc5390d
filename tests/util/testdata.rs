//! Where the shared apk test data
//! lives, and running the real `pkgbuild` binary.

use std::path::{Path, PathBuf};

/// The shared test data directory: `$PKGBUILD_TESTDATA`, else
/// `../shared/testdata` beside the crate (CI: /work/main next to shared/),
/// and a clear failure when neither is there.
pub fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("PKGBUILD_TESTDATA") {
        return PathBuf::from(dir);
    }
    let sibling = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    assert!(
        sibling.is_dir(),
        "shared test data not found at {}: set PKGBUILD_TESTDATA to its directory",
        sibling.display()
    );
    sibling
}

pub fn accepted_repo() -> PathBuf {
    testdata().join("apk-tools-accepted/repo/x86_64")
}

pub fn hello_apk() -> PathBuf {
    accepted_repo().join("hello-1.0-r0.apk")
}

pub fn shipped_index() -> PathBuf {
    accepted_repo().join("APKINDEX.tar.gz")
}

pub fn keys_dir() -> PathBuf {
    testdata().join("apk-tools-accepted/keys")
}

/// The test private key (`test-5f3a.rsa`; its public key is in `keys_dir`).
pub fn private_key() -> PathBuf {
    keys_dir().join("test-5f3a.rsa")
}

pub fn rejected_dir() -> PathBuf {
    testdata().join("apk-tools-rejected")
}

/// What one run of the binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub cmdline: String,
}

impl Run {
    /// Panic with everything we know when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "`{}` exited {}\n--- stdout\n{}--- stderr\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Run `pkgbuild ARGS...` in `cwd`.
pub fn pkgbuild(cwd: &Path, args: &[&str]) -> Run {
    let out = super::cmd()
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("running the pkgbuild binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        cmdline: format!("pkgbuild {}", args.join(" ")),
    }
}

/// Extract one named entry from a (multi-member) `.tar.gz` with the
/// independent `tar` and `flate2` crates, not our own reader.
pub fn tar_gz_entry(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.to_str() == Some(name) {
            let mut out = Vec::new();
            entry.read_to_end(&mut out).ok()?;
            return Some(out);
        }
    }
    None
}
