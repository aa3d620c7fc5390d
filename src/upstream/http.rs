//! HTTP(S) GETs through ureq: timeouts, redirects, bounded bodies,
//! conditional requests, and the proxy the environment asks for.
//!
//! ureq 2 reads `*_PROXY` variables but not `NO_PROXY`, so the decision is
//! made here ([`proxy_for`], a pure function of the URL and the variables)
//! and one agent is kept per proxy. Loopback addresses never go through a
//! proxy: a proxy elsewhere cannot reach this machine's 127.0.0.1.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Mutex;
use std::time::Duration;

use super::UpstreamError;

/// Redirects followed before giving up (a loop ends here too).
const MAX_REDIRECTS: u32 = 10;

/// What a validator-carrying GET found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

pub enum Got {
    /// 304: the cached copy is current.
    NotModified,
    /// 200: the body was written; its validators, for the next request.
    Body(Validators),
}

pub struct Http {
    timeout: Duration,
    agents: Mutex<HashMap<Option<String>, ureq::Agent>>,
}

impl Http {
    pub fn new(timeout: Duration) -> Http {
        Http {
            timeout,
            agents: Mutex::new(HashMap::new()),
        }
    }

    fn agent(&self, url: &str) -> Result<ureq::Agent, UpstreamError> {
        let proxy = proxy_for(url, &|k| std::env::var(k).ok());
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = agents.get(&proxy) {
            return Ok(a.clone());
        }
        let mut b = ureq::AgentBuilder::new()
            .timeout_connect(self.timeout)
            .timeout_read(self.timeout)
            .timeout_write(self.timeout)
            .redirects(MAX_REDIRECTS)
            .user_agent(concat!("pkgbuild/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &proxy {
            let p = ureq::Proxy::new(p).map_err(|e| UpstreamError::Transport {
                url: url.to_string(),
                message: format!("bad proxy setting `{p}`: {e}"),
            })?;
            b = b.proxy(p);
        }
        let agent = b.build();
        agents.insert(proxy, agent.clone());
        Ok(agent)
    }

    /// GET `url` into `to` (at most `limit` bytes), sending the
    /// validators of a cached copy when there is one.
    pub fn get(
        &self,
        url: &str,
        cached: Option<&Validators>,
        limit: u64,
        to: &mut File,
    ) -> Result<Got, UpstreamError> {
        let agent = self.agent(url)?;
        // .tar.gz and .apk bytes must arrive exactly as signed: no
        // transfer compression that a client could undo or a server botch.
        let mut req = agent.get(url).set("Accept-Encoding", "identity");
        if let Some(v) = cached {
            if let Some(e) = &v.etag {
                req = req.set("If-None-Match", e);
            }
            if let Some(m) = &v.last_modified {
                req = req.set("If-Modified-Since", m);
            }
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                return Err(UpstreamError::HttpStatus {
                    url: url.to_string(),
                    status,
                    reason: r.status_text().to_string(),
                })
            }
            Err(ureq::Error::Transport(t)) => {
                return Err(UpstreamError::Transport {
                    url: url.to_string(),
                    message: t.to_string(),
                })
            }
        };
        match resp.status() {
            304 if cached.is_some() => return Ok(Got::NotModified),
            200 => {}
            status => {
                return Err(UpstreamError::HttpStatus {
                    url: url.to_string(),
                    status,
                    reason: format!("{} (expected 200)", resp.status_text()),
                })
            }
        }
        let too_large = || UpstreamError::TooLarge {
            url: url.to_string(),
            limit,
        };
        if resp
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > limit)
        {
            return Err(too_large());
        }
        let validators = Validators {
            etag: resp.header("ETag").map(str::to_string),
            last_modified: resp.header("Last-Modified").map(str::to_string),
        };
        let mut body = resp.into_reader().take(limit + 1);
        let n = copy(&mut body, to).map_err(|e| match e {
            CopyError::Read(source) => UpstreamError::Read {
                url: url.to_string(),
                source,
            },
            CopyError::Write(source) => UpstreamError::Io {
                what: "writing the download of",
                path: url.into(),
                source,
            },
        })?;
        if n > limit {
            return Err(too_large());
        }
        Ok(Got::Body(validators))
    }
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy(from: &mut impl Read, to: &mut File) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0u64;
    loop {
        let got = match from.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        to.write_all(&buf[..got]).map_err(CopyError::Write)?;
        n += got as u64;
    }
}

/// Scheme, lowercased host (no brackets) and port of an http(s) URL.
fn split_url(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let default = if scheme == "https" { 443 } else { 80 };
    let port = match port {
        Some(p) if !p.is_empty() => p.parse().ok()?,
        _ => default,
    };
    Some((scheme, host.to_ascii_lowercase(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether one `NO_PROXY` item covers `host:port`: `*`, a domain (with or
/// without a leading `.` or `*.`; it covers its subdomains), an IP
/// address, an IPv4 CIDR block, each optionally with `:port`.
fn no_proxy_matches(item: &str, host: &str, port: u16) -> bool {
    let item = item.trim().to_ascii_lowercase();
    if item == "*" {
        return true;
    }
    let (name, want_port) = match item.rsplit_once(':') {
        Some((n, p)) if !n.contains(':') || n.ends_with(']') => match p.parse::<u16>() {
            Ok(p) => (n.to_string(), Some(p)),
            Err(_) => (item.clone(), None),
        },
        _ => (item.clone(), None),
    };
    if want_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = name.trim_start_matches("*.").trim_start_matches('.');
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return false;
    }
    if let Some((net, bits)) = name.split_once('/') {
        let (Ok(net), Ok(bits), Ok(ip)) = (
            net.parse::<std::net::Ipv4Addr>(),
            bits.parse::<u32>(),
            host.parse::<std::net::Ipv4Addr>(),
        ) else {
            return false;
        };
        if bits > 32 {
            return false;
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        return u32::from(net) & mask == u32::from(ip) & mask;
    }
    host == name || host.strip_suffix(name).is_some_and(|r| r.ends_with('.'))
}

/// The proxy for `url`, from `env` (lowercase names first, as curl reads
/// them): `http_proxy` for http, `https_proxy` for https, `all_proxy`
/// for either; `None` when `no_proxy` covers the host or it is loopback.
pub fn proxy_for(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let var = |name: &str| {
        env(name)
            .or_else(|| env(&name.to_ascii_uppercase()))
            .filter(|v| !v.trim().is_empty())
    };
    let (scheme, host, port) = split_url(url)?;
    if is_loopback(&host) {
        return None;
    }
    if let Some(list) = var("no_proxy") {
        if list.split(',').any(|i| no_proxy_matches(i, &host, port)) {
            return None;
        }
    }
    let proxy = match scheme.as_str() {
        "http" => var("http_proxy"),
        "https" => var("https_proxy"),
        _ => None,
    };
    proxy
        .or_else(|| var("all_proxy"))
        .map(|p| p.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn each_scheme_takes_its_own_proxy_lowercase_first() {
        let e = env(&[
            ("HTTP_PROXY", "http://upper:3128"),
            ("http_proxy", "http://lower:3128"),
            ("HTTPS_PROXY", "http://secure:3128"),
        ]);
        assert_eq!(
            proxy_for("http://dl.example.org/r", &e).as_deref(),
            Some("http://lower:3128")
        );
        assert_eq!(
            proxy_for("https://dl.example.org/r", &e).as_deref(),
            Some("http://secure:3128")
        );
        let only_http = env(&[("HTTP_PROXY", "http://p:1")]);
        assert_eq!(proxy_for("https://x.org/", &only_http), None);
        let all = env(&[("ALL_PROXY", "http://all:1")]);
        assert_eq!(
            proxy_for("https://x.org/", &all).as_deref(),
            Some("http://all:1")
        );
        assert_eq!(proxy_for("https://x.org/", &env(&[])), None);
    }

    #[test]
    fn no_proxy_covers_domains_subdomains_ports_ips_and_cidrs() {
        let e = env(&[
            ("https_proxy", "http://p:3128"),
            (
                "NO_PROXY",
                " .internal.example, wolfi.dev,10.0.0.0/8, 192.168.1.7 ,mirror.org:8443",
            ),
        ]);
        let direct = |u: &str| proxy_for(u, &e).is_none();
        assert!(direct("https://packages.wolfi.dev/os"));
        assert!(direct("https://wolfi.dev/os"));
        assert!(!direct("https://notwolfi.dev/os"));
        assert!(direct("https://a.b.internal.example/r"));
        assert!(direct("https://internal.example/r"));
        assert!(direct("https://10.20.30.40/r"));
        assert!(!direct("https://11.0.0.1/r"));
        assert!(direct("https://192.168.1.7/r"));
        assert!(direct("https://mirror.org:8443/r"));
        assert!(!direct("https://mirror.org/r"));
        assert!(!direct("https://dl-cdn.alpinelinux.org/alpine"));
        let star = env(&[("https_proxy", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(proxy_for("https://x.org/", &star), None);
    }

    #[test]
    fn loopback_is_never_proxied() {
        let e = env(&[("http_proxy", "http://p:1"), ("https_proxy", "http://p:1")]);
        for u in [
            "http://127.0.0.1:8080/r",
            "http://127.3.2.1/r",
            "http://localhost:1/r",
            "http://[::1]:80/r",
            "https://user@LOCALHOST/r",
        ] {
            assert_eq!(proxy_for(u, &e), None, "{u}");
        }
        assert!(proxy_for("http://10.0.0.1/r", &e).is_some());
    }

    #[test]
    fn urls_split_into_scheme_host_port() {
        assert_eq!(
            split_url("HTTPS://u:p@Example.org/a?b"),
            Some(("https".into(), "example.org".into(), 443))
        );
        assert_eq!(
            split_url("http://[::1]:8080/x"),
            Some(("http".into(), "::1".into(), 8080))
        );
        assert_eq!(split_url("http://h:notaport/"), None);
    }
}
