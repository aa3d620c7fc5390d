//! Compatibility with the samples checked against real apk-tools
//! (`../shared/testdata`): the accepted package and index verify, our
//! indexer reproduces apk's own `APKINDEX` byte for byte, every rejected
//! sample is refused with a reason naming its mistake, and no truncation,
//! corruption or garbage makes the reader panic.

mod util;

use std::fs;
use std::path::Path;

use pkgbuild::apk::index::{Index, IndexEntry};
use pkgbuild::apk::read::{read_control, read_data, ReadError};
use pkgbuild::apk::verify::verify_file;
use rand::{Rng, SeedableRng};
use util::testdata::*;

#[test]
fn accepted_package_and_index_verify_through_the_binary() {
    let keys = keys_dir();
    let (pkg, index) = (hello_apk(), shipped_index());
    let run = pkgbuild(
        &accepted_repo(),
        &[
            "verify",
            "--keys-dir",
            keys.to_str().unwrap(),
            pkg.to_str().unwrap(),
            index.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    assert_eq!(
        run.stdout,
        format!("{}: OK\n{}: OK\n", pkg.display(), index.display())
    );
}

#[test]
fn index_of_the_accepted_package_is_byte_identical_to_apk_index() {
    let shipped_desc = tar_gz_entry(&shipped_index(), "DESCRIPTION").expect("shipped DESCRIPTION");
    let shipped_text = tar_gz_entry(&shipped_index(), "APKINDEX").expect("shipped APKINDEX");
    let dir = tempfile::tempdir().unwrap();
    let desc = String::from_utf8(shipped_desc.clone()).unwrap();
    let key = private_key();
    let run = pkgbuild(
        dir.path(),
        &[
            "index",
            "-o",
            "APKINDEX.tar.gz",
            "--signing-key",
            key.to_str().unwrap(),
            "--description",
            &desc,
            hello_apk().to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    assert!(
        run.stderr.contains("Index has 1 packages"),
        "{}",
        run.stderr
    );
    let out = dir.path().join("APKINDEX.tar.gz");
    // Read back with the independent tar/flate2 crates.
    let text = tar_gz_entry(&out, "APKINDEX").expect("APKINDEX in our output");
    assert_eq!(
        String::from_utf8_lossy(&text),
        String::from_utf8_lossy(&shipped_text)
    );
    assert_eq!(text, shipped_text);
    assert_eq!(tar_gz_entry(&out, "DESCRIPTION"), Some(shipped_desc));
    verify_file(&out, &keys_dir()).expect("our index verifies");
    // Same structure as the shipped one: signature member, then one member.
    let ours = Index::read(&out).unwrap();
    assert_eq!(ours, Index::read(&shipped_index()).unwrap());
}

#[test]
fn index_entry_reads_only_signature_and_control_members() {
    // Cut the data member off: the indexer must not notice, since it never
    // inflates data (and `S:` is the file size, metadata only).
    let full = fs::read(hello_apk()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.apk");
    fs::write(&cut, &full[..381 + 425 + 1]).unwrap();
    let e = IndexEntry::from_package(&cut).unwrap();
    assert_eq!(e.file_size, 381 + 425 + 1);
    assert_eq!(e.checksum_field(), "Q1nO7CmxdGHJEmoneupOUkkhqAtxk=");
    assert!(verify_file(&cut, &keys_dir()).is_err());
}

/// Each rejected sample and the words its reason must contain.
const REJECTED: &[(&str, &str)] = &[
    (
        "ctl_eoa.apk",
        "end-of-archive blocks inside the control member",
    ),
    (
        "sig_eoa.apk",
        "end-of-archive blocks inside the signature member",
    ),
    ("bad_datahash.apk", "datahash mismatch"),
    ("no_datahash.apk", "no datahash in .PKGINFO"),
    ("sign_uncompressed.apk", "made over the uncompressed tar"),
    (
        "data_two_members.apk",
        "data split over more than one gzip member",
    ),
    // `apk verify` passes the next two (it does not look at the layout),
    // but `apk add` then fails; our verify checks the layout too, so it
    // refuses them up front.
    (
        "no_file_csum.apk",
        "`usr/bin/hello`: regular file without APK-TOOLS.checksum.SHA1",
    ),
    (
        "no_parent_dir.apk",
        "`usr/bin/hello`: no directory entry `usr/bin/`",
    ),
];

#[test]
fn every_rejected_sample_is_refused_naming_the_mistake() {
    let keys = keys_dir();
    let mut files: Vec<_> = fs::read_dir(rejected_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= REJECTED.len());
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let (_, needle) = REJECTED
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no expected reason listed for rejected sample {name}"));
        let run = pkgbuild(
            &rejected_dir(),
            &["verify", "--keys-dir", keys.to_str().unwrap(), name],
        );
        run.expect_code(1);
        let line = run.stdout.trim_end();
        assert!(
            line.starts_with(&format!("{name}: ")) && line.contains(needle),
            "{name}: got `{line}`, want it to contain `{needle}`"
        );
        assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    }
}

/// Verify must fail without panicking; reading the control member must not
/// panic either (it may succeed when only the data member is damaged).
fn must_not_panic(path: &Path) -> bool {
    let verified = verify_file(path, &keys_dir()).is_ok();
    if let Ok(ctl) = read_control(path) {
        let _ = read_data(path, &ctl, |_, r| -> Result<(), ReadError> {
            std::io::copy(r, &mut std::io::sink())?;
            Ok(())
        });
        let _ = Index::read(path);
    }
    verified
}

#[test]
fn every_truncation_of_package_and_index_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t");
    for source in [hello_apk(), shipped_index()] {
        let full = fs::read(&source).unwrap();
        for len in 0..full.len() {
            fs::write(&p, &full[..len]).unwrap();
            assert!(
                !must_not_panic(&p),
                "{} cut to {len} bytes verified",
                source.display()
            );
            assert!(Index::read(&p).is_err() || len == full.len());
        }
    }
}

#[test]
fn random_byte_flips_never_panic_and_covered_bytes_always_fail() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for source in [hello_apk(), shipped_index()] {
        let full = fs::read(&source).unwrap();
        // The signature member ends at 381 in both files; everything after
        // it is covered by the signature or the datahash.
        let sig_len = 381;
        for _ in 0..1500 {
            let mut bytes = full.clone();
            let flips = rng.gen_range(1..4);
            let mut covered = false;
            for _ in 0..flips {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << rng.gen_range(0..8);
                covered |= i >= sig_len;
            }
            fs::write(&p, &bytes).unwrap();
            let ok = must_not_panic(&p);
            assert!(!(ok && covered), "flip after the signature member verified");
        }
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn random_garbage_and_mangled_tars_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g");
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let hello = fs::read(hello_apk()).unwrap();
    // The inflated signature+control tar, to mangle header fields in.
    let ctl_tar = {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&hello[..381 + 425])
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    for round in 0..3000 {
        let bytes = match round % 3 {
            // Raw garbage, sometimes with a gzip magic in front.
            0 => {
                let n = rng.gen_range(0..2048);
                let mut v: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                if rng.gen_bool(0.5) && v.len() > 3 {
                    v[..3].copy_from_slice(&[0x1f, 0x8b, 8]);
                }
                v
            }
            // Valid gzip around random bytes: exercises the tar parser.
            1 => {
                let n = rng.gen_range(0..3000);
                let v: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                gz(&v)
            }
            // The real tar with a few header bytes changed, re-gzipped as
            // one or two members, followed by the real data member.
            _ => {
                let mut t = ctl_tar.clone();
                for _ in 0..rng.gen_range(1..6) {
                    let i = rng.gen_range(0..t.len());
                    t[i] = rng.gen();
                }
                let split = 1024.min(t.len());
                let mut v = gz(&t[..split]);
                v.extend(gz(&t[split..]));
                v.extend_from_slice(&hello[381 + 425..]);
                v
            }
        };
        fs::write(&p, &bytes).unwrap();
        // Mangled tars can still be valid packages whose signature no
        // longer matches; nothing here may verify.
        assert!(!must_not_panic(&p), "round {round} verified");
    }
}
