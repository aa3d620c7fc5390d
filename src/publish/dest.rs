//! Where `publish` writes: an object store plus the prefix the repository
//! lives under, parsed from `s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`,
//! `file:///DIR` or a plain directory.
//!
//! Credentials come from the standard environment only. A store client
//! left without credentials would go looking for a cloud metadata service
//! (and wait on it for minutes off-cloud), so a destination whose
//! credentials are missing is refused up front, naming the variables.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use super::PublishError;

/// A parsed destination.
#[derive(Debug, Clone)]
pub struct Dest {
    store: Arc<dyn ObjectStore>,
    prefix: ObjPath,
    display: String,
    local_root: Option<PathBuf>,
}

/// How long a request may take to connect, and how often a failed one is
/// retried: an unreachable endpoint must fail in seconds, not minutes.
fn client_options() -> (ClientOptions, RetryConfig) {
    let client = ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300));
    let retry = RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    (client, retry)
}

impl Dest {
    /// Parse `dest`; `endpoint` is `--endpoint`, `vars` the environment
    /// (`std::env::vars()` in the CLI). Only `vars` is read, never the
    /// process environment, so what a test passes is all there is.
    pub fn parse(
        dest: &str,
        endpoint: Option<&str>,
        vars: &[(String, String)],
    ) -> Result<Dest, PublishError> {
        // An empty variable is unset, as CI secret stores leave them.
        let vars: Vec<&(String, String)> = vars.iter().filter(|(_, v)| !v.is_empty()).collect();
        let env = |k: &str| {
            vars.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        let env = &env;
        let bad = |problem: String| PublishError::Dest {
            dest: dest.to_string(),
            problem,
        };
        if let Some(rest) = dest.strip_prefix("s3://") {
            let (bucket, prefix) = split_bucket(rest).map_err(bad)?;
            require_aws_credentials(env).map_err(bad)?;
            let (client, retry) = client_options();
            let mut b = AmazonS3Builder::new();
            for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("AWS_")) {
                if let Ok(key) = k.to_ascii_lowercase().parse() {
                    b = b.with_config(key, v);
                }
            }
            let mut b = b
                .with_bucket_name(bucket)
                .with_client_options(client)
                .with_retry(retry);
            if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
                b = b.with_region("us-east-1");
            }
            let env_endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
            let endpoint = endpoint.map(str::to_string).or(env_endpoint);
            if let Some(e) = &endpoint {
                check_endpoint(e).map_err(bad)?;
                // An `http://` endpoint is a local or test server, used as given.
                b = b
                    .with_endpoint(e.trim_end_matches('/'))
                    .with_allow_http(e.starts_with("http://"));
            }
            let store = b.build().map_err(|e| bad(e.to_string()))?;
            return Self::new(Arc::new(store), prefix, dest, None);
        }
        if let Some(rest) = dest.strip_prefix("gs://") {
            let (bucket, prefix) = split_bucket(rest).map_err(bad)?;
            require_gcp_credentials(env).map_err(bad)?;
            let (client, retry) = client_options();
            let mut b = GoogleCloudStorageBuilder::new();
            for (k, v) in vars.iter().filter(|(k, _)| k.starts_with("GOOGLE_")) {
                if let Ok(key) = k.to_ascii_lowercase().parse() {
                    b = b.with_config(key, v);
                }
            }
            // An `http://` endpoint is a local or test server, used as given.
            let client = client.with_allow_http(endpoint.is_some_and(|e| e.starts_with("http://")));
            let mut b = b
                .with_bucket_name(bucket)
                .with_client_options(client)
                .with_retry(retry);
            if let Some(e) = endpoint {
                check_endpoint(e).map_err(bad)?;
                b = b.with_config(GoogleConfigKey::BaseUrl, e.trim_end_matches('/'));
            }
            let store = b.build().map_err(|e| bad(e.to_string()))?;
            return Self::new(Arc::new(store), prefix, dest, None);
        }
        let dir = if let Some(rest) = dest.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file:// URL needs an absolute path (file:///DIR)".into()
                ));
            }
            PathBuf::from(rest)
        } else if let Some((scheme, _)) = dest.split_once("://") {
            return Err(bad(format!(
                "unknown scheme `{}`: expected s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, file:///DIR or a directory",
                crate::term::quote(scheme).trim_matches('"')
            )));
        } else {
            PathBuf::from(dest)
        };
        if endpoint.is_some() {
            return Err(bad(
                "--endpoint is for s3:// and gs:// destinations, not a directory".into(),
            ));
        }
        Self::local(&dir, dest)
    }

    /// A directory destination: the same protocol, plus the repository
    /// lock `build` takes, since a file system has no conditional replace.
    pub fn local(dir: &Path, display: &str) -> Result<Dest, PublishError> {
        let bad = |problem: String| PublishError::Dest {
            dest: display.to_string(),
            problem,
        };
        let dir = std::path::absolute(dir).map_err(|e| bad(e.to_string()))?;
        std::fs::create_dir_all(&dir).map_err(|e| bad(format!("cannot create: {e}")))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| bad(e.to_string()))?;
        Self::new(Arc::new(store), "", display, Some(dir))
    }

    /// A destination on any store (tests use the in-memory one).
    pub fn from_store(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        display: &str,
    ) -> Result<Dest, PublishError> {
        Self::new(store, prefix, display, None)
    }

    fn new(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        display: &str,
        local_root: Option<PathBuf>,
    ) -> Result<Dest, PublishError> {
        let prefix = ObjPath::parse(prefix.trim_matches('/')).map_err(|e| PublishError::Dest {
            dest: display.to_string(),
            problem: format!("bad prefix: {e}"),
        })?;
        Ok(Dest {
            store,
            prefix,
            display: display.trim_end_matches('/').to_string(),
            local_root,
        })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The destination as the user wrote it.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The directory of a directory destination.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The prefix of one architecture's directory.
    pub fn arch_dir(&self, arch: &str) -> ObjPath {
        self.prefix.clone().join(arch)
    }

    /// The object of `file` in `arch`'s directory.
    pub fn location(&self, arch: &str, file: &str) -> ObjPath {
        self.arch_dir(arch).join(file)
    }

    /// The repository prefix itself.
    pub fn prefix(&self) -> &ObjPath {
        &self.prefix
    }

    /// A location as a URL under the destination, for messages.
    pub fn url(&self, loc: &ObjPath) -> String {
        let rel: Vec<_> = match loc.prefix_match(&self.prefix) {
            Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
            None => return format!("{}/{loc}", self.display),
        };
        format!("{}/{}", self.display, rel.join("/"))
    }
}

fn split_bucket(rest: &str) -> Result<(&str, &str), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket name".into());
    }
    let valid = bucket
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'_'));
    if !valid {
        return Err(format!(
            "bucket name {} has characters other than a-z, 0-9, `-`, `.`, `_`",
            crate::term::quote(bucket)
        ));
    }
    if prefix.split('/').any(|c| c == ".." || c == ".") {
        return Err("`.` or `..` in the prefix".into());
    }
    Ok((bucket, prefix))
}

fn check_endpoint(e: &str) -> Result<(), String> {
    if e.starts_with("http://") || e.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "endpoint {} is not an http:// or https:// URL",
            crate::term::quote(e)
        ))
    }
}

fn require_aws_credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
    let ok = (set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY"))
        || set("AWS_WEB_IDENTITY_TOKEN_FILE")
        || set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        || env("AWS_SKIP_SIGNATURE").is_some_and(|v| v == "true")
        // The instance metadata service only when asked for: off-cloud it
        // is an unanswered address that would stall every request.
        || env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v == "false");
    if ok {
        Ok(())
    } else {
        Err("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*; AWS_EC2_METADATA_DISABLED=false to use the instance metadata service)".into())
    }
}

fn require_gcp_credentials(env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let ok = [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_PATH",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GOOGLE_BEARER_TOKEN",
    ]
    .iter()
    .any(|k| env(k).is_some_and(|v| !v.is_empty()));
    if ok {
        Ok(())
    } else {
        Err("no Google Cloud credentials: set GOOGLE_APPLICATION_CREDENTIALS (or GOOGLE_SERVICE_ACCOUNT_KEY)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ENV: &[(String, String)] = &[];

    fn creds() -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "x".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "x".into()),
        ]
    }

    #[test]
    fn unknown_scheme_is_refused_by_name() {
        let e = Dest::parse("ftp://host/repo", None, NO_ENV).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("ftp://host/repo:"), "{msg}");
        assert!(msg.contains("unknown scheme `ftp`"), "{msg}");
    }

    #[test]
    fn missing_aws_credentials_are_refused_before_any_request() {
        let msg = Dest::parse("s3://bucket/p", None, NO_ENV)
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("s3://bucket/p:"), "{msg}");
        assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
        let msg = Dest::parse("gs://bucket/p", None, NO_ENV)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{msg}");
    }

    #[test]
    fn bad_bucket_names_and_prefixes_are_refused() {
        for (dest, needle) in [
            ("s3:///p", "no bucket"),
            ("s3://Bad Bucket/p", "characters"),
            ("s3://b/a/../c", "`..`"),
        ] {
            let msg = Dest::parse(dest, None, &creds()).unwrap_err().to_string();
            assert!(msg.contains(needle), "{dest}: {msg}");
        }
    }

    #[test]
    fn s3_locations_sit_under_the_prefix() {
        let d = Dest::parse(
            "s3://bucket/repo/main/",
            Some("http://127.0.0.1:9"),
            &creds(),
        )
        .unwrap();
        let loc = d.location("x86_64", "a-1-r0.apk");
        assert_eq!(loc.as_ref(), "repo/main/x86_64/a-1-r0.apk");
        assert_eq!(d.url(&loc), "s3://bucket/repo/main/x86_64/a-1-r0.apk");
        assert!(d.local_root().is_none());
    }

    #[test]
    fn a_directory_destination_is_local_and_refuses_an_endpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        let d = Dest::parse(dir.to_str().unwrap(), None, NO_ENV).unwrap();
        assert_eq!(d.local_root(), Some(dir.as_path()));
        let url = format!("file://{}", dir.display());
        assert!(Dest::parse(&url, None, NO_ENV).is_ok());
        let msg = Dest::parse(&url, Some("http://x"), NO_ENV)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("--endpoint"), "{msg}");
        assert!(Dest::parse("file://relative", None, NO_ENV).is_err());
    }
}
