//! One image layer: the image root as a reproducible gzipped tar.
//!
//! The tree is walked depth first with each directory's entries sorted by
//! their name bytes; every mtime is the build epoch (the installer stamps
//! its database files with the wall clock, and `paths:` entries are made
//! now: none of that may reach the layer); owners and modes come from the
//! disk as the installer left it, replaced by [`Overrides`] (the apk
//! database's records and what the image config set). Hard links become
//! link entries to the first path in walk order. Nothing is followed
//! through a symlink. The tar and gzip writers are the ones packages use,
//! so the bytes do not depend on the machine or the thread count.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::rootfs::Overrides;
use crate::apk::gzip::ParallelGzip;
use crate::apk::tar::{Header, Kind, TarWriter};

/// A written layer blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The gzipped tar on disk.
    pub path: PathBuf,
    /// `sha256:<hex>` of the gzipped bytes (the blob digest).
    pub digest: String,
    pub size: u64,
    /// `sha256:<hex>` of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: String,
    pub entries: usize,
}

/// Counts and hashes what passes through.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W: Write>(inner: W) -> Hashing<W> {
    Hashing {
        inner,
        hash: Sha256::new(),
        len: 0,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Write the layer of `root` to `out`.
pub fn write(root: &Path, overrides: &Overrides, epoch: u64, out: &Path) -> Result<Layer> {
    let file =
        fs::File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let gz = ParallelGzip::new(hashing(BufWriter::new(file)), threads);
    let mut tar = TarWriter::new(hashing(gz));
    let mut walk = Walk {
        tar: &mut tar,
        overrides,
        epoch,
        links: HashMap::new(),
        entries: 0,
    };
    walk.dir(root, "")
        .with_context(|| format!("writing the layer of {}", root.display()))?;
    let entries = walk.entries;
    tar.end_of_archive()?;
    let raw = tar.into_inner();
    let diff_id = format!("sha256:{}", hex::encode(raw.hash.finalize()));
    let mut done = raw.inner.finish()?;
    done.flush()?;
    Ok(Layer {
        path: out.to_path_buf(),
        digest: format!("sha256:{}", hex::encode(done.hash.finalize())),
        size: done.len,
        diff_id,
        entries,
    })
}

struct Walk<'a, W: Write> {
    tar: &'a mut TarWriter<W>,
    overrides: &'a Overrides,
    epoch: u64,
    /// (dev, inode) of multiply-linked files → their first path.
    links: HashMap<(u64, u64), Vec<u8>>,
    entries: usize,
}

impl<W: Write> Walk<'_, W> {
    fn dir(&mut self, host: &Path, key: &str) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = fs::read_dir(host)
            .with_context(|| format!("{}: cannot list", host.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let h = host.join(&name);
            let k = if key.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{key}/{}", name.to_string_lossy())
            };
            let mut path = if key.is_empty() {
                Vec::new()
            } else {
                let mut p = key.as_bytes().to_vec();
                p.push(b'/');
                p
            };
            path.extend_from_slice(name.as_bytes());
            let is_dir = self.entry(&h, &k, path)?;
            if is_dir {
                self.dir(&h, &k)?;
            }
        }
        Ok(())
    }

    /// Write one entry; true when it is a directory to descend into.
    fn entry(&mut self, host: &Path, key: &str, mut path: Vec<u8>) -> Result<bool> {
        let m = fs::symlink_metadata(host)
            .with_context(|| format!("{}: cannot stat", host.display()))?;
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Directory
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else if ft.is_block_device() {
            Kind::BlockDevice
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            // Sockets have no place in an image.
            return Ok(false);
        };
        if kind == Kind::Directory {
            path.push(b'/');
        }
        let mut h = Header::new(path.clone(), kind, m.mode() & 0o7777, self.epoch);
        h.uid = m.uid();
        h.gid = m.gid();
        if let Some(o) = self.overrides.get(key) {
            h.uid = o.uid;
            h.gid = o.gid;
            if kind != Kind::Symlink {
                h.mode = o.mode;
            }
        }
        if kind == Kind::Symlink {
            h.mode = 0o777;
        }
        // Names would say what the build machine's passwd says: ids only.
        if h.uid != 0 {
            h.uname.clear();
        }
        if h.gid != 0 {
            h.gname.clear();
        }
        match kind {
            Kind::Symlink => {
                h.link = fs::read_link(host)?.as_os_str().as_bytes().to_vec();
            }
            Kind::CharDevice | Kind::BlockDevice => {
                let rdev = m.rdev();
                h.dev_major = libc::major(rdev);
                h.dev_minor = libc::minor(rdev);
            }
            _ => {}
        }
        let mut xattrs = crate::install::list_xattrs(host).unwrap_or_default();
        xattrs.sort();
        let extra: Vec<(String, Vec<u8>)> = xattrs
            .into_iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
            .collect();
        self.entries += 1;
        if kind == Kind::File && m.nlink() > 1 {
            let id = (m.dev(), m.ino());
            if let Some(first) = self.links.get(&id) {
                h.kind = Kind::HardLink;
                h.link = first.clone();
                self.tar.write_header(&h, &extra)?;
                return Ok(false);
            }
            self.links.insert(id, path);
        }
        if kind != Kind::File {
            self.tar.write_header(&h, &extra)?;
            return Ok(kind == Kind::Directory);
        }
        h.size = m.len();
        self.tar.write_header(&h, &extra)?;
        let mut f = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(host)
            .with_context(|| format!("{}: cannot open", host.display()))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut left = h.size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = f.read(&mut buf[..want])?;
            if n == 0 {
                bail!(
                    "{}: file shrank while the layer was written",
                    host.display()
                );
            }
            self.tar.write_content(&buf[..n])?;
            left -= n as u64;
        }
        self.tar.end_content(h.size)?;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::rootfs::Meta;

    fn tree(dir: &Path) -> PathBuf {
        let root = dir.join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("a-b")).unwrap();
        fs::write(root.join("usr/bin/prog"), b"#!prog\n").unwrap();
        fs::hard_link(root.join("usr/bin/prog"), root.join("usr/bin/prog2")).unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        root
    }

    fn entries(layer: &Path) -> Vec<(String, u8, u64, u64, String)> {
        let gz = fs::read(layer).unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        let mut out = Vec::new();
        let mut off = 0;
        while off + 512 <= raw.len() && raw[off] != 0 {
            let h = &raw[off..off + 512];
            let field = |a: usize, b: usize| {
                String::from_utf8_lossy(&h[a..b])
                    .trim_end_matches('\0')
                    .to_string()
            };
            let num = |a: usize, b: usize| u64::from_str_radix(field(a, b).trim(), 8).unwrap_or(0);
            let size = num(124, 136);
            out.push((
                field(0, 100),
                h[156],
                num(108, 116),
                num(136, 148),
                field(157, 257),
            ));
            off += 512 + size.div_ceil(512) as usize * 512;
        }
        out
    }

    #[test]
    fn layers_are_sorted_stamped_with_the_epoch_and_take_overridden_owners() {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path());
        let mut o = Overrides::new();
        o.insert(
            "usr/bin/prog".into(),
            Meta {
                uid: 65532,
                gid: 65532,
                mode: 0o750,
            },
        );
        let a = write(&root, &o, 1_700_000_000, &dir.path().join("a.tar.gz")).unwrap();
        let e = entries(&a.path);
        let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "a-b/",
                "bin",
                "usr/",
                "usr/bin/",
                "usr/bin/prog",
                "usr/bin/prog2"
            ]
        );
        assert!(e.iter().all(|x| x.3 == 1_700_000_000));
        assert_eq!(e[4].2, 65532);
        assert_eq!(e[5].1, b'1', "second name of a hard link is a link entry");
        assert_eq!(e[5].4, "usr/bin/prog");
        // Touching files (new mtimes) changes nothing; content does.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(root.join("usr/bin/prog"), b"#!prog\n").unwrap();
        let b = write(&root, &o, 1_700_000_000, &dir.path().join("b.tar.gz")).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, b.diff_id);
        fs::write(root.join("usr/bin/prog"), b"#!prog2\n").unwrap();
        let c = write(&root, &o, 1_700_000_000, &dir.path().join("c.tar.gz")).unwrap();
        assert_ne!(a.diff_id, c.diff_id);
        assert_eq!(fs::metadata(&c.path).unwrap().len(), c.size);
    }
}
