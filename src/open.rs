//! Opening untrusted input files for reading without hanging on them.
//!
//! A plain `File::open` of a fifo blocks until some writer appears, and
//! reading a character device such as `/dev/zero` never ends: a package,
//! index, recipe or key path an attacker controls could stall any command.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Open `path` for reading if (after symlinks) it is a regular file; a
/// fifo, socket, device or directory is an `InvalidInput` error saying
/// what it is instead.
pub fn regular(path: &Path) -> io::Result<File> {
    // O_NONBLOCK makes the open of a fifo return at once, so its type can
    // be checked; for a regular file the flag means nothing, but it is
    // cleared anyway so later reads behave as usual.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a fifo"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {what}, not a regular file"),
        ));
    }
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_and_a_file_reads() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.apk");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let err = regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("fifo"), "{err}");
        assert!(regular(dir.path())
            .unwrap_err()
            .to_string()
            .contains("directory"));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let mut s = String::new();
        io::Read::read_to_string(&mut regular(&file).unwrap(), &mut s).unwrap();
        assert_eq!(s, "x");
    }
}
