//! Structure-aware mutation of `.apk` files and `APKINDEX.tar.gz`: a flipped
//! byte inside deflate data is almost always caught by the gzip CRC, so
//! to reach the tar and `.PKGINFO` readers we inflate each gzip member,
//! mutate the tar inside (keeping header checksums valid when asked), and
//! deflate again. For packages the control member's `datahash` is fixed
//! up after the data member changes, so the data reader is reached too.

use std::io::{Read, Write};

use rand::rngs::StdRng;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::harness;

/// The inflated tars of each gzip member, or `None` when `bytes` is not a
/// clean sequence of members.
pub fn split(bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut z = flate2::bufread::GzDecoder::new(rest);
        let mut tar = Vec::new();
        z.by_ref().take(16 << 20).read_to_end(&mut tar).ok()?;
        rest = z.into_inner();
        out.push(tar);
        if out.len() > 8 {
            return None;
        }
    }
    Some(out)
}

pub fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(tar).expect("writing to memory");
    z.finish().expect("writing to memory")
}

/// Offsets of the tar headers in `tar`, following the size fields.
fn headers(tar: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 512 <= tar.len() && out.len() < 64 {
        let h = &tar[off..off + 512];
        if h.iter().all(|b| *b == 0) {
            break;
        }
        out.push(off);
        let size = std::str::from_utf8(&h[124..136])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(|c| c == '\0' || c == ' '), 8).ok())
            .unwrap_or(0);
        off += 512 + (size.div_ceil(512) * 512) as usize;
    }
    out
}

fn fix_checksum(h: &mut [u8]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
}

/// Field values that have broken tar readers before.
const NAMES: &[&str] = &[
    "../../escape",
    "/etc/passwd",
    "usr/../../x",
    "./usr/bin/hello",
    "usr//bin",
    "",
    ".PKGINFO",
    ".SIGN.RSA256.test-5f3a.rsa.pub",
    ".SIGN.RSA.x",
    "usr/bin/hello",
    "usr/bin",
    ".post-install",
    "APKINDEX",
    "DESCRIPTION",
];
const SIZES: &[&str] = &["77777777777", "00000000000", "1", "511", "513", "-1", "zz"];
const TYPES: &[u8] = b"0123456789LKxgSV\0";

/// One edit to one tar header, with its checksum made valid again (most
/// of the time: a bad checksum is a case too).
fn mutate_header(rng: &mut StdRng, tar: &mut [u8]) -> bool {
    let hs = headers(tar);
    if hs.is_empty() {
        return false;
    }
    let off = hs[rng.gen_range(0..hs.len())];
    let h = &mut tar[off..off + 512];
    let put = |h: &mut [u8], range: std::ops::Range<usize>, v: &[u8]| {
        let field = &mut h[range];
        field.fill(0);
        let n = v.len().min(field.len());
        field[..n].copy_from_slice(&v[..n]);
    };
    match rng.gen_range(0..7) {
        0 => put(h, 0..100, NAMES[rng.gen_range(0..NAMES.len())].as_bytes()),
        1 => put(h, 157..257, NAMES[rng.gen_range(0..NAMES.len())].as_bytes()),
        2 => put(h, 124..136, SIZES[rng.gen_range(0..SIZES.len())].as_bytes()),
        3 => h[156] = TYPES[rng.gen_range(0..TYPES.len())],
        4 => put(
            h,
            100..108,
            ["7777777", "0", "4755", "x"][rng.gen_range(0..4)].as_bytes(),
        ),
        5 => {
            // Base-256 numbers (first byte 0x80) in size or mtime.
            let range = if rng.gen_bool(0.5) {
                124..136
            } else {
                136..148
            };
            let mut v = vec![0x80u8];
            v.extend((0..11).map(|_| rng.gen::<u8>()));
            put(h, range, &v);
        }
        _ => put(h, 345..500, NAMES[rng.gen_range(0..NAMES.len())].as_bytes()),
    }
    if rng.gen_bool(0.9) {
        fix_checksum(h);
    }
    true
}

/// Replace the 64 hex digits after `datahash = ` in a control tar with the
/// SHA-256 of `data_member`; the length is unchanged so the tar stays whole.
fn fix_datahash(control: &mut [u8], data_member: &[u8]) {
    let key = b"datahash = ";
    let Some(at) = control.windows(key.len()).position(|w| w == key) else {
        return;
    };
    let start = at + key.len();
    if start + 64 > control.len() {
        return;
    }
    let hex: String = Sha256::digest(data_member)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    control[start..start + 64].copy_from_slice(hex.as_bytes());
}

/// Mutate a package or index: raw bytes now and then, otherwise inside one
/// member's tar (headers or content), re-deflated; for a three-member
/// package whose data changed, `datahash` is fixed up.
pub fn mutate(rng: &mut StdRng, bytes: &mut Vec<u8>, seeds: &[Vec<u8>], dict: &[&[u8]]) {
    let members = match split(bytes) {
        Some(m) if !m.is_empty() && rng.gen_bool(0.85) => m,
        _ => {
            harness::mutate(rng, bytes, seeds, dict, 1 << 20);
            return;
        }
    };
    let mut members = members;
    let which = rng.gen_range(0..members.len());
    let tar_seeds: Vec<Vec<u8>> = seeds.iter().filter_map(|s| split(s)).flatten().collect();
    let tar = &mut members[which];
    if !(rng.gen_bool(0.5) && mutate_header(rng, tar)) {
        harness::mutate(rng, tar, &tar_seeds, dict, 1 << 20);
    }
    // Sometimes drop or duplicate a whole member.
    match rng.gen_range(0..20) {
        0 if members.len() > 1 => {
            let i = rng.gen_range(0..members.len());
            members.remove(i);
        }
        1 => {
            let i = rng.gen_range(0..members.len());
            let copy = members[i].clone();
            members.insert(i, copy);
        }
        _ => {}
    }
    let mut gz: Vec<Vec<u8>> = members.iter().map(|t| gzip(t)).collect();
    if gz.len() >= 2 && rng.gen_bool(0.9) {
        let last = gz.len() - 1;
        fix_datahash(&mut members[last - 1], &gz[last]);
        gz[last - 1] = gzip(&members[last - 1]);
    }
    *bytes = gz.concat();
}
