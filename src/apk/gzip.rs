//! Reproducible gzip members for apk archives (apk-format.md §1.1).
//!
//! Every member has FLG=0 and MTIME=0 (like `gzip -n`), so output depends
//! only on input. [`ParallelGzip`] compresses big streams on several
//! threads pigz-style: the input is cut into fixed-size chunks at fixed
//! offsets, each chunk is deflated independently with the previous 32 KiB
//! of input as preset dictionary and sync-flushed so the pieces
//! concatenate into one deflate stream. Because chunk boundaries depend
//! only on the byte offset, the output is identical for any thread count —
//! which keeps packages reproducible across machines. It is still ONE gzip
//! member, which apk3 requires for the data segment.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per parallel chunk (pigz's default block size).
pub const CHUNK: usize = 128 * 1024;
/// Deflate's window: how much history a chunk may refer back to.
const WINDOW: usize = 32 * 1024;
const LEVEL: u32 = 6;

/// 10-byte member header: no name, no mtime, XFL 0, OS 3 (Unix), as
/// `gzip -n -6` writes it.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];

/// Compress one whole buffer into a single gzip member (signature,
/// control and index members). Equal to what [`ParallelGzip`] produces for
/// the same bytes.
pub fn gzip_member(data: &[u8]) -> Vec<u8> {
    let mut gz = ParallelGzip::new(Vec::with_capacity(data.len() / 2 + 64), 1);
    // Writing into a Vec cannot fail and compression of memory cannot fail.
    gz.write_all(data).expect("compressing into memory");
    gz.finish().expect("compressing into memory")
}

/// A compressed chunk with the CRC32 of its input.
struct Piece {
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// Deflate one chunk as a piece of a larger raw deflate stream.
fn deflate_chunk(dict: &[u8], input: &[u8], last: bool) -> io::Result<Piece> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    // A fresh state per chunk: `Compress::reset` leaves state behind in
    // the zlib-rs backend (output then depended on what the thread had
    // compressed before), and setup is cheap next to deflating 128 KiB.
    let mut z = Compress::new(Compression::new(LEVEL), false);
    let deflated = run_deflate(&mut z, dict, input, last)?;
    Ok(Piece { deflated, crc })
}

fn run_deflate(z: &mut Compress, dict: &[u8], input: &[u8], last: bool) -> io::Result<Vec<u8>> {
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        // Sync flush ends on a byte boundary with an empty stored block,
        // so the next chunk's bytes can simply follow.
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(input.len() / 2 + 256);
    let start_in = z.total_in();
    loop {
        let consumed = (z.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let status = z
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_in = (z.total_in() - start_in) as usize == input.len();
        match status {
            Status::StreamEnd => break,
            // For Sync, spare output space after all input is consumed
            // means the flush marker is fully written.
            _ if !last && done_in && out.len() < out.capacity() => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Multi-threaded, thread-count-independent gzip writer producing ONE
/// member. Output goes to `inner` in order; at most a few chunks per
/// thread are in flight, so memory stays bounded.
pub struct ParallelGzip<W: Write> {
    inner: W,
    pool: Option<rayon::ThreadPool>,
    max_in_flight: usize,
    buf: Vec<u8>,
    /// The last WINDOW bytes of the previous chunk.
    dict: Vec<u8>,
    pending: VecDeque<mpsc::Receiver<io::Result<Piece>>>,
    crc: crc32fast::Hasher,
    total_in: u64,
    header_written: bool,
}

impl<W: Write> ParallelGzip<W> {
    /// `threads` <= 1 compresses on the calling thread.
    pub fn new(inner: W, threads: usize) -> Self {
        let pool = (threads > 1)
            .then(|| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("pkgbuild-gzip-{i}"))
                    .build()
                    .ok()
            })
            .flatten();
        ParallelGzip {
            inner,
            max_in_flight: threads.max(1) * 3,
            pool,
            buf: Vec::with_capacity(CHUNK),
            dict: Vec::new(),
            pending: VecDeque::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            header_written: false,
        }
    }

    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        let input = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let dict = std::mem::replace(
            &mut self.dict,
            input[input.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let (tx, rx) = mpsc::sync_channel(1);
        match &self.pool {
            Some(pool) => pool.spawn(move || {
                // The receiver only disappears when the writer was dropped
                // unfinished; then nobody wants the result.
                let _ = tx.send(deflate_chunk(&dict, &input, last));
            }),
            None => {
                let _ = tx.send(deflate_chunk(&dict, &input, last));
            }
        }
        self.pending.push_back(rx);
        while self.pending.len() > self.max_in_flight {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let piece = rx
            .recv()
            .map_err(|_| io::Error::other("gzip worker thread died"))??;
        if !self.header_written {
            self.inner.write_all(&HEADER)?;
            self.header_written = true;
        }
        self.crc.combine(&piece.crc);
        self.inner.write_all(&piece.deflated)
    }

    /// Finish the member (last chunk, CRC32, ISIZE) and return the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        // ISIZE is the input length modulo 2^32 by definition.
        let isize = self.total_in as u32;
        self.inner
            .write_all(&self.crc.clone().finalize().to_le_bytes())?;
        self.inner.write_all(&isize.to_le_bytes())?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.total_in += n as u64;
        if self.buf.len() == CHUNK {
            self.dispatch(false)?;
        }
        Ok(n)
    }

    /// Only flushes what is already compressed: forcing a chunk boundary
    /// here would make output depend on how callers flush.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Compressible but not trivial: text-like lines with varying numbers
    /// plus a stretch of pseudo-random bytes.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x: u32 = 12345;
        let mut i = 0u64;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i.is_multiple_of(50) {
                out.extend((0..200).map(|k| (x >> (k % 24)) as u8));
            } else {
                out.extend(format!("line {i} value {} some text here\n", x % 1000).bytes());
            }
            i += 1;
        }
        out.truncate(len);
        out
    }

    fn gunzip_all(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn parallel(data: &[u8], threads: usize, write_size: usize) -> Vec<u8> {
        let mut gz = ParallelGzip::new(Vec::new(), threads);
        for piece in data.chunks(write_size.max(1)) {
            gz.write_all(piece).unwrap();
        }
        gz.finish().unwrap()
    }

    /// Number soup: the data on which reusing a reset deflate state
    /// changed the output.
    fn numbers() -> Vec<u8> {
        (0..600_000u32)
            .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 9973).into_bytes())
            .collect()
    }

    #[test]
    fn same_bytes_for_any_thread_count_and_write_pattern() {
        for data in [sample(3 * CHUNK + 777), numbers()] {
            let one = parallel(&data, 1, 1 << 20);
            assert_eq!(parallel(&data, 2, 1000), one);
            assert_eq!(parallel(&data, 3, 1 << 20), one);
            assert_eq!(parallel(&data, 4, 7), one);
            assert_eq!(gunzip_all(&one), data);
        }
    }

    #[test]
    fn output_is_exactly_one_member_with_reproducible_header() {
        for len in [0, 1, CHUNK, 2 * CHUNK, 2 * CHUNK + 1] {
            let data = sample(len);
            let gz = parallel(&data, 4, 4096);
            assert_eq!(&gz[..10], &HEADER);
            let mut dec = flate2::read::GzDecoder::new(&gz[..]);
            let mut out = Vec::new();
            dec.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "len {len}");
            // A single-member decoder consuming everything means no
            // trailing second member.
            let mut rest = Vec::new();
            dec.into_inner().read_to_end(&mut rest).unwrap();
            assert!(rest.is_empty(), "bytes after the first member");
        }
    }

    #[test]
    fn gzip_member_matches_parallel_writer() {
        let data = sample(CHUNK + 5);
        assert_eq!(gzip_member(&data), parallel(&data, 2, 999));
        assert_eq!(gunzip_all(&gzip_member(b"")), b"");
    }

    #[test]
    fn size_is_close_to_a_single_level_6_stream() {
        let data = sample(4 << 20);
        let mut single = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        single.write_all(&data).unwrap();
        let single = single.finish().unwrap().len() as f64;
        let ours = parallel(&data, 2, 1 << 16).len() as f64;
        assert!(ours <= single * 1.02, "ours {ours} vs single {single}");
    }
}
