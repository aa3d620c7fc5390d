//! Hostile inputs thrown at every command through the real binary (issue
//! 11, "zero panics"): each must end in exit code 1 or 2 (never a panic's
//! 101, never a signal, never a hang), with the offending file or URL named
//! on stderr, and nothing half-written left where the output would go.

mod util;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use util::testdata::{hello_apk, keys_dir, private_key, shipped_index};

/// Longest any one command may take on a hostile input.
const PATIENCE: Duration = Duration::from_secs(120);

struct Case {
    name: &'static str,
    args: Vec<String>,
    /// Text stderr must hold (the file or URL at fault).
    names: String,
    /// Paths that must not exist afterwards (outputs never half-written).
    absent: Vec<PathBuf>,
}

fn case(name: &'static str, args: &[&dyn AsRef<std::ffi::OsStr>], names: &str) -> Case {
    Case {
        name,
        args: args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect(),
        names: names.to_string(),
        absent: Vec::new(),
    }
}

impl Case {
    fn absent(mut self, p: &Path) -> Case {
        self.absent.push(p.to_path_buf());
        self
    }
}

/// Run one case; `Err` says what went wrong.
fn run(cwd: &Path, c: &Case) -> Result<(), String> {
    let out = cwd.join(format!(".out-{}", c.name));
    let err = cwd.join(format!(".err-{}", c.name));
    let mut child = Command::new(env!("CARGO_BIN_EXE_pkgbuild"))
        .args(&c.args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .env("XDG_CONFIG_HOME", cwd.join(".config"))
        .env("XDG_CACHE_HOME", cwd.join(".cache"))
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            break s;
        }
        if start.elapsed() > PATIENCE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {PATIENCE:?}: killed"));
        }
        thread::sleep(Duration::from_millis(50));
    };
    // `verify` and `lint` report each file on stdout; the rest on stderr.
    let stderr = fs::read_to_string(&err).unwrap_or_default()
        + &fs::read_to_string(&out).unwrap_or_default();
    let shown = format!("pkgbuild {}\n--- stderr\n{stderr}", c.args.join(" "));
    match status.code() {
        Some(1 | 2) => {}
        Some(code) => return Err(format!("exit code {code}\n{shown}")),
        None => return Err(format!("killed by a signal ({status})\n{shown}")),
    }
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panic message\n{shown}"));
    }
    if !stderr.contains(&c.names) {
        return Err(format!("stderr does not name {:?}\n{shown}", c.names));
    }
    if stderr.len() > 16 << 10 {
        return Err(format!("{} bytes of stderr", stderr.len()));
    }
    for p in &c.absent {
        if p.symlink_metadata().is_ok() {
            return Err(format!("{} was left behind\n{shown}", p.display()));
        }
    }
    Ok(())
}

/// A gzip member whose tar holds one `name` claiming `size` bytes of
/// zeros, `size` of them actually there: small on disk, huge unpacked.
fn gzip_bomb(name: &str, size: u64) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    gz.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..size / zeros.len() as u64 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

/// APKINDEX text of `n` records, gzipped in a tar.
fn big_index(n: usize) -> Vec<u8> {
    let mut text = String::with_capacity(n * 64);
    for i in 0..n {
        text.push_str(&format!(
            "C:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAA=\nP:p{i}\nV:1.0-r0\nA:x86_64\nS:1\nI:1\nT:t\nU:u\nL:MIT\n\n"
        ));
    }
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "APKINDEX", text.as_bytes())
        .unwrap();
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn mkfifo(p: &Path) {
    let ok = Command::new("mkfifo").arg(p).status().unwrap().success();
    assert!(ok, "mkfifo {}", p.display());
}

/// A server on 127.0.0.1 answering at most `max` requests with `answer`
/// (given the request path), then going away.
fn serve(max: usize, answer: fn(&str, &mut std::net::TcpStream)) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
            thread::spawn(move || answer(&path, &mut s));
        }
    });
    format!("http://{addr}")
}

/// Sends bytes until the client hangs up (or 64 MiB, so a test never
/// runs forever even when the client is broken).
fn infinite_body(_: &str, s: &mut std::net::TcpStream) {
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/gzip\r\n\r\n");
    let chunk = vec![0x1fu8; 64 << 10];
    for _ in 0..1024 {
        if s.write_all(&chunk).is_err() {
            return;
        }
    }
}

fn redirect_loop(path: &str, s: &mut std::net::TcpStream) {
    let next = format!("{path}x");
    let _ = write!(
        s,
        "HTTP/1.1 302 Found\r\nLocation: {next}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

fn short_body(_: &str, s: &mut std::net::TcpStream) {
    let _ = s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n\x1f\x8b\x08\0",
    );
}

fn write(p: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, bytes).unwrap();
    p.to_path_buf()
}

fn accepted_root() -> PathBuf {
    util::testdata::accepted_repo()
        .parent()
        .unwrap()
        .to_path_buf()
}

const RECIPE_HEAD: &str =
    "package:\n  name: hostile\n  version: 1.0.0\n  epoch: 0\n  description: d\n";

#[test]
fn every_command_refuses_hostile_input_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let keys = keys_dir();
    let key = private_key();
    let pubkey = keys.join("test-5f3a.rsa.pub");
    let mut cases: Vec<Case> = Vec::new();

    // Packages: a gzip bomb, a fifo, a symlink out of the repository.
    let bomb = write(&t.join("bomb/bomb.apk"), gzip_bomb(".PKGINFO", 1 << 30));
    let fifo = t.join("fifo/x.apk");
    fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    mkfifo(&fifo);
    let out_index = t.join("out/APKINDEX.tar.gz");
    fs::create_dir_all(t.join("out")).unwrap();
    cases.push(case(
        "verify-bomb-apk",
        &[&"verify", &"--keys-dir", &keys, &bomb],
        "bomb.apk",
    ));
    cases.push(case("lint-bomb-apk", &[&"lint", &bomb], "bomb.apk"));
    cases.push(
        case(
            "index-bomb-apk",
            &[&"index", &"-o", &out_index, &bomb],
            "bomb.apk",
        )
        .absent(&out_index),
    );
    cases.push(case(
        "sign-bomb-apk",
        &[&"sign", &"-k", &key, &bomb],
        "bomb.apk",
    ));
    cases.push(case(
        "rebuild-bomb-apk",
        &[&"rebuild", &"--signing-key", &key, &bomb],
        "bomb.apk",
    ));
    cases.push(case(
        "verify-fifo-apk",
        &[&"verify", &"--keys-dir", &keys, &fifo],
        "x.apk",
    ));
    cases.push(case("lint-fifo-apk", &[&"lint", &fifo], "x.apk"));
    cases.push(
        case(
            "index-fifo-apk",
            &[&"index", &"-o", &out_index, &fifo],
            "x.apk",
        )
        .absent(&out_index),
    );
    cases.push(case(
        "sign-fifo-apk",
        &[&"sign", &"-k", &key, &fifo],
        "x.apk",
    ));

    // Indexes: a gzip bomb and a million records.
    let bomb_index = write(
        &t.join("bombrepo/x86_64/APKINDEX.tar.gz"),
        gzip_bomb("APKINDEX", 1 << 30),
    );
    let huge_index = write(
        &t.join("hugerepo/x86_64/APKINDEX.tar.gz"),
        big_index(1_000_000),
    );
    for (n, idx) in [("bomb", &bomb_index), ("huge", &huge_index)] {
        let name = idx.display().to_string();
        let leak: &'static str = Box::leak(format!("verify-{n}-index").into_boxed_str());
        cases.push(case(leak, &[&"verify", &"--keys-dir", &keys, idx], &name));
        // A million valid records merge fine (exit 0); only the bomb must fail.
        let leak: &'static str = Box::leak(format!("merge-{n}-index").into_boxed_str());
        if n == "bomb" {
            cases.push(
                case(
                    leak,
                    &[&"index", &"-m", &"-s", idx, &"-o", &out_index, &hello_apk()],
                    &name,
                )
                .absent(&out_index),
            );
        }
        let repo = idx.parent().unwrap().parent().unwrap().to_path_buf();
        let root = t.join(format!("root-{n}"));
        let leak: &'static str = Box::leak(format!("root-{n}-index").into_boxed_str());
        cases.push(
            case(
                leak,
                &[&"root", &"-r", &repo, &"-k", &pubkey, &root, &"hello"],
                "APKINDEX.tar.gz",
            )
            .absent(&root),
        );
    }

    // A repository whose package is a symlink to a file outside it, and
    // one whose package is a fifo: publishing either refuses it by name.
    let outside = t.join("outside.apk");
    fs::copy(hello_apk(), &outside).unwrap();
    let linkrepo = t.join("linkrepo");
    fs::create_dir_all(linkrepo.join("x86_64")).unwrap();
    std::os::unix::fs::symlink(&outside, linkrepo.join("x86_64/hello-1.0-r0.apk")).unwrap();
    let dest = t.join("dest-link");
    cases.push(
        case(
            "publish-symlink-apk",
            &[
                &"publish",
                &"--signing-key",
                &key,
                &linkrepo,
                &format!("file://{}", dest.display()),
            ],
            "hello-1.0-r0.apk",
        )
        .absent(&dest.join("x86_64/hello-1.0-r0.apk")),
    );
    let fiforepo = t.join("fiforepo");
    fs::create_dir_all(fiforepo.join("x86_64")).unwrap();
    mkfifo(&fiforepo.join("x86_64/x.apk"));
    let dest = t.join("dest-fifo");
    cases.push(
        case(
            "publish-fifo-apk",
            &[
                &"publish",
                &"--signing-key",
                &key,
                &fiforepo,
                &format!("file://{}", dest.display()),
            ],
            "x.apk",
        )
        .absent(&dest.join("x86_64/x.apk")),
    );

    // Recipes: a 10 MB scalar, 100k nested `[`, a fifo.
    let big = write(
        &t.join("recipes/big.yaml"),
        format!("{RECIPE_HEAD}  url: {}\n", "a".repeat(10 << 20)),
    );
    let deep = write(
        &t.join("recipes/deep.yaml"),
        format!("{RECIPE_HEAD}pipeline: {}\n", "[".repeat(100_000)),
    );
    let deep_map = write(
        &t.join("recipes/deepmap.yaml"),
        format!("{RECIPE_HEAD}pipeline: {}\n", "{a: ".repeat(100_000)),
    );
    let fifo_recipe = t.join("recipes/fifo.yaml");
    mkfifo(&fifo_recipe);
    let plan_out = t.join("plan.json");
    for (n, r) in [
        ("big", &big),
        ("deep", &deep),
        ("deepmap", &deep_map),
        ("fifo", &fifo_recipe),
    ] {
        let file = r.file_name().unwrap().to_string_lossy().into_owned();
        for cmd in ["compile", "package-version", "lint"] {
            let leak: &'static str = Box::leak(format!("{cmd}-{n}-recipe").into_boxed_str());
            cases.push(case(leak, &[&cmd, r], &file));
        }
        let leak: &'static str = Box::leak(format!("plan-{n}-recipe").into_boxed_str());
        cases.push(case(leak, &[&"plan", &"-o", &plan_out, r], &file).absent(&plan_out));
        let lock = r.with_extension("lock.json");
        let leak: &'static str = Box::leak(format!("lock-{n}-recipe").into_boxed_str());
        cases.push(case(leak, &[&"lock", r], &file).absent(&lock));
        let out = t.join(format!("build-out-{n}"));
        let leak: &'static str = Box::leak(format!("build-{n}-recipe").into_boxed_str());
        cases.push(
            case(
                leak,
                &[&"build", r, &"--signing-key", &key, &"--out-dir", &out],
                &file,
            )
            .absent(&out.join("x86_64/APKINDEX.tar.gz")),
        );
    }

    // Env files: a fifo, /dev/zero-like size.
    let hello_recipe = write(
        &t.join("ok/hello.yaml"),
        format!("{RECIPE_HEAD}pipeline:\n  - runs: 'true'\n"),
    );
    let fifo_env = t.join("ok/fifo.env");
    mkfifo(&fifo_env);
    let huge_env = write(&t.join("ok/huge.env"), vec![b'#'; 20 << 20]);
    for (n, env) in [("fifo", &fifo_env), ("huge", &huge_env)] {
        let file = env.file_name().unwrap().to_string_lossy().into_owned();
        let out = t.join(format!("env-out-{n}"));
        let leak: &'static str = Box::leak(format!("build-{n}-env-file").into_boxed_str());
        cases.push(
            case(
                leak,
                &[
                    &"build",
                    &hello_recipe,
                    &"--env-file",
                    env,
                    &"--signing-key",
                    &key,
                    &"--out-dir",
                    &out,
                ],
                &file,
            )
            .absent(&out),
        );
    }

    // A lock file naming a package the repository does not have.
    let lock = write(
        &t.join("ok/missing.lock.json"),
        r#"{"version":"v1","config":{"name":"hello.yaml","checksum":"sha256:00"},"contents":{"keyring":[],"repositories":[],"packages":[{"name":"ghost","url":"ghost-1-r0.apk","version":"1-r0","architecture":"x86_64","repository":"nowhere","checksum":"Q1AAAA","size":1}]}}"#,
    );
    let out = t.join("lock-out");
    cases.push(
        case(
            "build-lock-names-missing-package",
            &[
                &"build",
                &hello_recipe,
                &"--lockfile",
                &lock,
                &"-r",
                &accepted_root(),
                &"-k",
                &keys.join("test-5f3a.rsa.pub"),
                &"--signing-key",
                &key,
                &"--out-dir",
                &out,
            ],
            "missing.lock.json",
        )
        .absent(&out.join("x86_64")),
    );

    // Image configs: an include cycle, a huge paths list.
    let cyc_a = t.join("img/a.yaml");
    write(&cyc_a, "include: b.yaml\ncontents:\n  packages: [hello]\n");
    write(&t.join("img/b.yaml"), "include: a.yaml\n");
    let mut many = String::from("contents:\n  packages: [hello]\npaths:\n");
    for i in 0..200_000 {
        many.push_str(&format!(
            "  - path: /d{i}\n    type: directory\n    permissions: 0o755\n"
        ));
    }
    let many_paths = write(&t.join("img/many.yaml"), many);
    let repo = util::testdata::accepted_repo()
        .parent()
        .unwrap()
        .to_path_buf();
    for (n, cfg) in [("cyclic", &cyc_a), ("many-paths", &many_paths)] {
        let out = t.join(format!("{n}.tar"));
        let leak: &'static str = Box::leak(format!("image-{n}").into_boxed_str());
        cases.push(
            case(
                leak,
                &[&"image", cfg, &"--out", &out, &"-r", &repo, &"-k", &pubkey],
                "yaml",
            )
            .absent(&out),
        );
    }

    // Keys: a public key that is a directory, a private key that is a
    // directory or a fifo.
    let key_dir = t.join("keys/evil.rsa.pub");
    fs::create_dir_all(&key_dir).unwrap();
    let fifo_key = t.join("keys/fifo.rsa");
    mkfifo(&fifo_key);
    let root = t.join("root-keydir");
    cases.push(
        case(
            "root-public-key-is-a-directory",
            &[&"root", &"-r", &repo, &"-k", &key_dir, &root, &"hello"],
            "evil.rsa.pub",
        )
        .absent(&root),
    );
    let out = t.join("image-keydir.tar");
    cases.push(
        case(
            "image-public-key-is-a-directory",
            &[
                &"image",
                &write(&t.join("img/ok.yaml"), "contents:\n  packages: [hello]\n"),
                &"--out",
                &out,
                &"-r",
                &repo,
                &"-k",
                &key_dir,
            ],
            "evil.rsa.pub",
        )
        .absent(&out),
    );
    let copy = t.join("signme/hello.apk");
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    fs::copy(hello_apk(), &copy).unwrap();
    cases.push(case(
        "sign-private-key-is-a-directory",
        &[&"sign", &"-k", &key_dir, &copy],
        "evil.rsa.pub",
    ));
    cases.push(case(
        "sign-private-key-is-a-fifo",
        &[&"sign", &"-k", &fifo_key, &copy],
        "fifo.rsa",
    ));
    let idx_copy = t.join("signme/APKINDEX.tar.gz");
    fs::copy(shipped_index(), &idx_copy).unwrap();
    cases.push(case(
        "sign-index-private-key-is-a-fifo",
        &[&"sign-index", &"-f", &"-k", &fifo_key, &idx_copy],
        "fifo.rsa",
    ));
    cases.push(case(
        "keygen-onto-a-directory",
        &[&"keygen", &t.join("keys/isdir.rsa/")],
        "isdir.rsa",
    ));
    fs::create_dir_all(t.join("keys/isdir.rsa")).unwrap();

    // HTTP repositories: an endless body, a redirect loop, a short body.
    for (n, answer) in [
        (
            "infinite-body",
            infinite_body as fn(&str, &mut std::net::TcpStream),
        ),
        ("redirect-loop", redirect_loop),
        ("short-body", short_body),
    ] {
        let url = serve(64, answer);
        let root = t.join(format!("root-{n}"));
        let leak: &'static str = Box::leak(format!("root-http-{n}").into_boxed_str());
        cases.push(
            case(
                leak,
                &[&"root", &"-r", &url, &"-k", &pubkey, &root, &"hello"],
                &url,
            )
            .absent(&root),
        );
    }

    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| run(t, c).err().map(|e| format!("== {}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}
