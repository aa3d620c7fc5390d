//! A small std-only HTTP server for tests: serves files from a directory
//! on 127.0.0.1 (ETag/If-None-Match → 304, a `/redirect/` prefix → 302,
//! 404), counting requests, bounded in connections and read time.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::sha256_hex;

/// One request the server answered: path as requested, status sent, and
/// whether it carried If-None-Match.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub status: u16,
    pub conditional: bool,
}

/// Serves `root` on a loopback port until dropped (at most 200
/// connections, each with a 5 s read timeout).
pub struct Server {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (root, h, s) = (root.to_path_buf(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().take(200) {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    let _ = answer(stream, &root, &h);
                }
            }
        });
        Server { port, hits, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn count(&self, suffix: &str) -> usize {
        self.hits()
            .iter()
            .filter(|h| h.path.ends_with(suffix))
            .count()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, root: &Path, hits: &Mutex<Vec<Hit>>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut if_none_match = None;
    for _ in 0..100 {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(v.trim().to_string());
            }
        }
    }
    let (status, headers, body) = if let Some(rest) = path.strip_prefix("/redirect/") {
        (302, format!("Location: /{rest}\r\n"), Vec::new())
    } else {
        let rel = path.trim_start_matches('/');
        let file = root.join(rel);
        match (rel.contains(".."), fs::read(&file)) {
            (false, Ok(body)) => {
                let etag = format!("\"{}\"", &sha256_hex(&body)[..16]);
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    (304, format!("ETag: {etag}\r\n"), Vec::new())
                } else {
                    (200, format!("ETag: {etag}\r\n"), body)
                }
            }
            _ => (404, String::new(), b"not found".to_vec()),
        }
    };
    hits.lock().unwrap().push(Hit {
        path,
        status,
        conditional: if_none_match.is_some(),
    });
    let reason = match status {
        200 => "OK",
        302 => "Found",
        304 => "Not Modified",
        _ => "Not Found",
    };
    let mut out = stream;
    let len = if status == 304 {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    write!(
        out,
        "HTTP/1.1 {status} {reason}\r\n{headers}{len}Connection: close\r\n\r\n"
    )?;
    out.write_all(&body)?;
    out.flush()
}
