//! The `.apk` writer, checked from the outside: packages are built from
//! temp trees and read back independently (gzip members split by parsing
//! gzip, tar read with the `tar` crate), against the rules of
//! apk-format.md and the mistakes collected in
//! `shared/testdata/apk-tools-rejected`. Each structural check is also run
//! on the matching rejected sample to prove it detects the mistake.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pkgbuild::apk::package::{
    package_file_name, signature_member, write_package, write_package_with_threads, EntryOverride,
    PackageError, PackageSpec, Script, SignOptions, WrittenPackage,
};
use pkgbuild::apk::pkginfo::PkgInfo;
use pkgbuild::apk::sign::{load_public_key, verify, Algorithm, SigningKey};
use sha1::{Digest, Sha1};
use sha2::Sha256;

const MTIME: u64 = 1_700_000_000;

use util::testdata::testdata;

fn key_path() -> PathBuf {
    testdata().join("apk-tools-accepted/keys/test-5f3a.rsa")
}

fn rejected(name: &str) -> Vec<u8> {
    fs::read(testdata().join("apk-tools-rejected").join(name)).unwrap()
}

fn accepted_hello() -> Vec<u8> {
    fs::read(testdata().join("apk-tools-accepted/repo/x86_64/hello-1.0-r0.apk")).unwrap()
}

// ---------------------------------------------------------------- reading

/// Split a file into its gzip members by decoding one member at a time.
fn members(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut dec = flate2::bufread::GzDecoder::new(rest);
        let mut sink = Vec::new();
        dec.read_to_end(&mut sink).expect("a complete gzip member");
        let left = dec.into_inner();
        let used = rest.len() - left.len();
        out.push(&rest[..used]);
        rest = left;
    }
    out
}

fn gunzip(member: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(member)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Walk raw tar blocks: (header count, whether a zero block appears where a
/// header should be, whether the member ends with two zero blocks).
fn block_walk(tar: &[u8]) -> (usize, bool, bool) {
    let mut off = 0;
    let mut headers = 0;
    let mut zero = false;
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            zero = true;
            off += 512;
            continue;
        }
        headers += 1;
        let size_field = std::str::from_utf8(&h[124..136]).unwrap();
        let size = u64::from_str_radix(size_field.trim_matches(['\0', ' ']), 8).unwrap();
        off += 512 + size.div_ceil(512) as usize * 512;
    }
    assert_eq!(off, tar.len(), "member does not hold whole tar blocks");
    let eoa = tar.len() >= 1024 && tar[tar.len() - 1024..].iter().all(|&b| b == 0);
    (headers, zero, eoa)
}

#[derive(Debug, Clone, PartialEq)]
struct Ent {
    path: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    link: String,
    data: Vec<u8>,
    pax: BTreeMap<String, Vec<u8>>,
}

fn entries(tar_bytes: &[u8]) -> Vec<Ent> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut pax = BTreeMap::new();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let x = x.unwrap();
                pax.insert(x.key().unwrap().to_string(), x.value_bytes().to_vec());
            }
        }
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Ent {
            path: String::from_utf8(e.path_bytes().to_vec()).unwrap(),
            kind: h.entry_type().as_byte(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            uname: h.username().unwrap().unwrap_or_default().to_string(),
            gname: h.groupname().unwrap().unwrap_or_default().to_string(),
            mtime: h.mtime().unwrap(),
            link: e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.to_vec()).unwrap())
                .unwrap_or_default(),
            data,
            pax,
        });
    }
    out
}

/// The three (or two) segments of a package, decompressed.
struct Parsed<'a> {
    sig: Option<&'a [u8]>,
    control: &'a [u8],
    data: &'a [u8],
}

fn parse(apk: &[u8]) -> Parsed<'_> {
    let m = members(apk);
    let first = entries(&gunzip(m[0]));
    let signed = first.first().is_some_and(|e| e.path.starts_with(".SIGN."));
    let (sig, rest) = if signed {
        (Some(m[0]), &m[1..])
    } else {
        (None, &m[..])
    };
    Parsed {
        sig,
        control: rest[0],
        data: rest.last().unwrap(),
    }
}

fn pkginfo_of(control: &[u8]) -> (String, PkgInfo) {
    let ents = entries(&gunzip(control));
    assert_eq!(ents[0].path, ".PKGINFO", ".PKGINFO must come first");
    let text = String::from_utf8(ents[0].data.clone()).unwrap();
    let info = PkgInfo::parse(&text);
    (text, info)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ------------------------------------------------- checks, one per mistake

fn check_signature_member_has_no_eoa(apk: &[u8]) -> Result<(), String> {
    let p = parse(apk);
    let sig = p.sig.ok_or("no signature member")?;
    let (n, zero, _) = block_walk(&gunzip(sig));
    if zero || n == 0 {
        return Err("signature member holds end-of-archive blocks".into());
    }
    Ok(())
}

fn check_control_member_has_no_eoa(apk: &[u8]) -> Result<(), String> {
    let (n, zero, _) = block_walk(&gunzip(parse(apk).control));
    if zero || n == 0 {
        return Err("control member holds end-of-archive blocks".into());
    }
    Ok(())
}

fn check_datahash(apk: &[u8]) -> Result<(), String> {
    let p = parse(apk);
    let (_, info) = pkginfo_of(p.control);
    if info.datahash.is_empty() {
        return Err("no datahash".into());
    }
    if info.datahash != hex(&Sha256::digest(p.data)) {
        return Err("datahash does not match the data member".into());
    }
    Ok(())
}

fn check_signature_over_compressed_control(apk: &[u8]) -> Result<(), String> {
    let public = load_public_key(&key_path().with_extension("rsa.pub")).unwrap();
    let p = parse(apk);
    let sigs = entries(&gunzip(p.sig.ok_or("unsigned")?));
    let sig = sigs
        .iter()
        .find(|e| e.path == ".SIGN.RSA256.test-5f3a.rsa.pub")
        .ok_or("no RSA256 signature for test-5f3a.rsa.pub")?;
    if !verify(&public, Algorithm::Rsa256, p.control, &sig.data) {
        return Err("signature does not verify over the compressed control member".into());
    }
    Ok(())
}

fn check_three_members(apk: &[u8]) -> Result<(), String> {
    let n = members(apk).len();
    if n != 3 {
        return Err(format!(
            "{n} gzip members, want 3 (data must be one member)"
        ));
    }
    let (_, zero, eoa) = block_walk(&gunzip(members(apk)[2]));
    if !eoa || !zero {
        return Err("data member does not end with end-of-archive".into());
    }
    Ok(())
}

fn check_file_checksums(apk: &[u8]) -> Result<(), String> {
    for e in entries(&gunzip(parse(apk).data)) {
        let want = match e.kind {
            b'0' => hex(&Sha1::digest(&e.data)),
            b'2' => hex(&Sha1::digest(e.link.as_bytes())),
            _ => continue,
        };
        let got = e.pax.get("APK-TOOLS.checksum.SHA1");
        if got.map(|g| g.as_slice()) != Some(want.as_bytes()) {
            return Err(format!("{}: checksum {got:?}, want {want}", e.path));
        }
    }
    Ok(())
}

fn check_parents_first(apk: &[u8]) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for e in entries(&gunzip(parse(apk).data)) {
        let trimmed = e.path.trim_end_matches('/');
        if e.path.starts_with("./") || e.path.starts_with('/') {
            return Err(format!("{}: not a plain relative name", e.path));
        }
        if let Some((parent, _)) = trimmed.rsplit_once('/') {
            if !seen.contains(parent) {
                return Err(format!("{}: parent {parent}/ not before it", e.path));
            }
        }
        if e.kind == b'1' && !seen.contains(e.link.as_str()) {
            return Err(format!("{}: hardlink before its target {}", e.path, e.link));
        }
        seen.insert(trimmed.to_string());
    }
    Ok(())
}

// --------------------------------------------------------------- building

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn info(name: &str) -> PkgInfo {
    PkgInfo {
        name: name.into(),
        version: "1.0-r0".into(),
        arch: "x86_64".into(),
        description: "test package".into(),
        ..Default::default()
    }
}

fn spec(root: &Path) -> PackageSpec {
    PackageSpec {
        root: root.to_path_buf(),
        info: info("t"),
        mtime: MTIME,
        ..Default::default()
    }
}

fn key() -> SigningKey {
    SigningKey::load(&key_path()).unwrap()
}

fn build(spec: &PackageSpec, out: &Path) -> (WrittenPackage, Vec<u8>) {
    let k = key();
    let sign = SignOptions {
        key: Some(&k),
        legacy_sha1: false,
    };
    let w = write_package(spec, &sign, out).unwrap();
    let bytes = fs::read(&w.path).unwrap();
    (w, bytes)
}

const LONG_DIR: &str = "usr/share/a-directory-name-that-is-quite-long-to-push-past-the-ustar-name-field-limit-of-100-bytes";

fn long_paths() -> (String, String) {
    let over_100 = format!("{LONG_DIR}/file-beyond-100.txt");
    let over_255 = format!("{LONG_DIR}/{}/{}/deep.txt", "b".repeat(90), "c".repeat(80));
    assert!(over_100.len() > 100 && over_100.len() < 155);
    assert!(over_255.len() > 255);
    (over_100, over_255)
}

/// A tree with every kind of entry the issue lists.
fn full_tree(root: &Path) {
    write(&root.join("usr/bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&root.join("usr/bin/su"), b"setuid binary", 0o4755);
    write(&root.join("usr/share/doc/empty"), b"", 0o644);
    fs::create_dir_all(root.join("etc/private")).unwrap();
    fs::set_permissions(root.join("etc/private"), fs::Permissions::from_mode(0o750)).unwrap();
    write(&root.join("etc/private/conf"), b"secret=1\n", 0o640);
    std::os::unix::fs::symlink("tool", root.join("usr/bin/link")).unwrap();
    fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-hard")).unwrap();
    let (a, b) = long_paths();
    write(&root.join(a), b"over 100", 0o644);
    write(&root.join(b), b"over 255", 0o644);
    let long_target = format!("../../{}", "t".repeat(120));
    std::os::unix::fs::symlink(long_target, root.join("usr/bin/far")).unwrap();
}

fn full_spec(root: &Path) -> PackageSpec {
    let mut s = spec(root);
    s.scripts = vec![(Script::PostInstall, b"#!/bin/sh\nexit 0\n".to_vec())];
    s.control_extra = vec![(".melange.yaml".into(), b"package: {}\n".to_vec())];
    s.overrides.insert(
        "usr/bin/tool".into(),
        EntryOverride {
            xattrs: vec![("user.pkgbuild".into(), b"filetest".to_vec())],
            ..Default::default()
        },
    );
    s.overrides.insert(
        "etc/private/conf".into(),
        EntryOverride {
            uid: 2,
            gid: 2,
            uname: "daemon".into(),
            gname: "daemon".into(),
            mode: Some(0o600),
            xattrs: vec![],
        },
    );
    s
}

// ------------------------------------------------------------------ tests

#[test]
fn full_tree_reads_back_with_every_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    full_tree(&root);
    let (w, apk) = build(&full_spec(&root), tmp.path());
    assert_eq!(w.path, tmp.path().join("t-1.0-r0.apk"));
    assert_eq!(w.file_size, apk.len() as u64);
    assert!(w.warnings.is_empty(), "{:?}", w.warnings);

    for check in [
        check_signature_member_has_no_eoa,
        check_control_member_has_no_eoa,
        check_datahash,
        check_signature_over_compressed_control,
        check_three_members,
        check_file_checksums,
        check_parents_first,
    ] {
        check(&apk).unwrap();
    }

    let p = parse(&apk);
    assert_eq!(w.control_sha1, <[u8; 20]>::from(Sha1::digest(p.control)));
    let sig = entries(&gunzip(p.sig.unwrap()));
    assert_eq!(sig.len(), 1);
    assert_eq!((sig[0].mode, sig[0].uid, sig[0].mtime), (0o644, 0, MTIME));

    let control = entries(&gunzip(p.control));
    let names: Vec<_> = control.iter().map(|e| (e.path.as_str(), e.mode)).collect();
    assert_eq!(
        names,
        [
            (".PKGINFO", 0o644),
            (".post-install", 0o755),
            (".melange.yaml", 0o644)
        ]
    );
    let (_, parsed) = pkginfo_of(p.control);
    assert_eq!(parsed, w.info);
    // Regular files, the hardlinked inode once: tool(20) su(13) conf(9)
    // empty(0) long files(8+8).
    assert_eq!(parsed.size, 20 + 13 + 9 + 8 + 8);

    let data = entries(&gunzip(p.data));
    let by: BTreeMap<_, _> = data.iter().map(|e| (e.path.as_str(), e)).collect();
    let order: Vec<_> = data.iter().map(|e| e.path.as_str()).collect();
    let (long100, long255) = long_paths();
    for e in &data {
        assert_eq!(e.mtime, MTIME, "{}", e.path);
        assert!(!e.path.starts_with('.'), "{}", e.path);
    }
    assert_eq!(by["etc/private/"].mode, 0o750);
    assert_eq!(by["etc/private/"].kind, b'5');
    let conf = by["etc/private/conf"];
    assert_eq!(
        (
            conf.mode,
            conf.uid,
            conf.gid,
            conf.uname.as_str(),
            conf.gname.as_str()
        ),
        (0o600, 2, 2, "daemon", "daemon")
    );
    assert_eq!(by["usr/bin/su"].mode, 0o4755);
    assert_eq!(by["usr/bin/tool"].mode, 0o755);
    assert_eq!(by["usr/bin/tool"].uname, "root");
    assert_eq!(
        by["usr/bin/tool"].pax["SCHILY.xattr.user.pkgbuild"],
        b"filetest"
    );
    assert_eq!(by["usr/bin/link"].kind, b'2');
    assert_eq!(by["usr/bin/link"].link, "tool");
    assert_eq!(by["usr/bin/far"].link.len(), 126);
    let hard = by["usr/bin/tool-hard"];
    assert_eq!(
        (hard.kind, hard.link.as_str(), hard.mode),
        (b'1', "usr/bin/tool", 0o755)
    );
    assert!(!hard.pax.contains_key("APK-TOOLS.checksum.SHA1"));
    assert_eq!(by["usr/share/doc/empty"].data, b"");
    assert_eq!(by[long100.as_str()].data, b"over 100");
    assert_eq!(by[long255.as_str()].data, b"over 255");
    assert!(by[long255.as_str()].pax.contains_key("path"));
    assert!(
        !by[long100.as_str()].pax.contains_key("path"),
        "fits ustar prefix"
    );
    // Depth-first, bytewise sorted siblings (Go's fs.WalkDir order).
    assert_eq!(
        &order[..4],
        ["etc/", "etc/private/", "etc/private/conf", "usr/"]
    );
    let bin: Vec<_> = order
        .iter()
        .filter(|p| p.starts_with("usr/bin/") && p.len() > 8)
        .collect();
    assert_eq!(
        bin,
        [
            &"usr/bin/far",
            &"usr/bin/link",
            &"usr/bin/su",
            &"usr/bin/tool",
            &"usr/bin/tool-hard"
        ]
    );

    // Decompressed back to back, the members are one tar stream.
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(&apk[..])
        .read_to_end(&mut all)
        .unwrap();
    let stream: Vec<_> = entries(&all).into_iter().map(|e| e.path).collect();
    assert_eq!(stream.len(), 1 + 3 + data.len());
    assert_eq!(stream[0], ".SIGN.RSA256.test-5f3a.rsa.pub");
    assert_eq!(stream[4], "etc/");
}

/// Each rejected sample breaks exactly one rule; the check for that rule
/// must flag the sample and pass on what the writer produced.
#[test]
fn writer_never_makes_any_rejected_mistake() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    full_tree(&root);
    let (_, ours) = build(&full_spec(&root), tmp.path());
    type Check = fn(&[u8]) -> Result<(), String>;
    let cases: [(&str, Check); 8] = [
        ("ctl_eoa.apk", check_control_member_has_no_eoa),
        ("sig_eoa.apk", check_signature_member_has_no_eoa),
        ("bad_datahash.apk", check_datahash),
        ("no_datahash.apk", check_datahash),
        (
            "sign_uncompressed.apk",
            check_signature_over_compressed_control,
        ),
        ("data_two_members.apk", check_three_members),
        ("no_file_csum.apk", check_file_checksums),
        ("no_parent_dir.apk", check_parents_first),
    ];
    for (file, check) in cases {
        assert!(
            check(&rejected(file)).is_err(),
            "{file}: check missed the mistake"
        );
        check(&ours).unwrap_or_else(|e| panic!("writer made the {file} mistake: {e}"));
        check(&accepted_hello()).unwrap_or_else(|e| panic!("accepted sample fails: {e}"));
    }
}

#[test]
fn signature_is_over_the_compressed_control_member_not_the_tar() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("root/usr/bin/x"), b"x", 0o755);
    let (_, apk) = build(&spec(&tmp.path().join("root")), tmp.path());
    let p = parse(&apk);
    let public = load_public_key(&key_path().with_extension("rsa.pub")).unwrap();
    let sig = &entries(&gunzip(p.sig.unwrap()))[0].data;
    assert!(verify(&public, Algorithm::Rsa256, p.control, sig));
    assert!(!verify(&public, Algorithm::Rsa256, &gunzip(p.control), sig));
}

#[test]
fn legacy_sha1_adds_a_second_signature_and_unsigned_has_two_members() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("root/usr/bin/x"), b"x", 0o755);
    let s = spec(&tmp.path().join("root"));
    let k = key();
    let w = write_package(
        &s,
        &SignOptions {
            key: Some(&k),
            legacy_sha1: true,
        },
        tmp.path(),
    )
    .unwrap();
    let apk = fs::read(&w.path).unwrap();
    let p = parse(&apk);
    let sigs = entries(&gunzip(p.sig.unwrap()));
    let public = load_public_key(&key_path().with_extension("rsa.pub")).unwrap();
    assert_eq!(sigs[0].path, ".SIGN.RSA256.test-5f3a.rsa.pub");
    assert_eq!(sigs[1].path, ".SIGN.RSA.test-5f3a.rsa.pub");
    assert!(verify(&public, Algorithm::Rsa256, p.control, &sigs[0].data));
    assert!(verify(&public, Algorithm::Rsa, p.control, &sigs[1].data));
    // The re-signer's entry point gives the same member for the same input.
    let again = signature_member(
        p.control,
        &SignOptions {
            key: Some(&k),
            legacy_sha1: true,
        },
        MTIME,
    )
    .unwrap();
    assert_eq!(again, p.sig.unwrap());

    let unsigned = write_package(&s, &SignOptions::default(), tmp.path()).unwrap();
    let apk = fs::read(&unsigned.path).unwrap();
    let m = members(&apk);
    assert_eq!(m.len(), 2);
    assert_eq!(entries(&gunzip(m[0]))[0].path, ".PKGINFO");
    assert_eq!(unsigned.info.datahash, hex(&Sha256::digest(m[1])));
}

#[test]
fn same_tree_in_any_creation_order_and_thread_count_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..600_000u32)
        .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 9973).into_bytes())
        .collect();
    let files: Vec<(String, Vec<u8>)> = vec![
        ("usr/lib/big.dat".into(), big),
        ("usr/bin/a".into(), b"a".to_vec()),
        ("usr/bin/b".into(), b"b".to_vec()),
        ("usr/share/z/y".into(), b"zy".to_vec()),
        ("opt/x".into(), b"x".to_vec()),
    ];
    let one = tmp.path().join("one");
    let two = tmp.path().join("two");
    for (p, d) in &files {
        write(&one.join(p), d, 0o644);
    }
    for (p, d) in files.iter().rev() {
        write(&two.join(p), d, 0o644);
    }
    let k = key();
    let sign = SignOptions {
        key: Some(&k),
        legacy_sha1: false,
    };
    let mut outputs = Vec::new();
    for (root, threads) in [(&one, 1), (&one, 4), (&two, 2), (&two, 1)] {
        let out = tmp.path().join(format!("out-{threads}-{}", outputs.len()));
        fs::create_dir(&out).unwrap();
        let w = write_package_with_threads(&spec(root), &sign, &out, threads).unwrap();
        outputs.push(fs::read(w.path).unwrap());
    }
    assert!(outputs[0].len() > 100_000, "data must span several chunks");
    for (i, o) in outputs.iter().enumerate() {
        assert!(o == &outputs[0], "output {i} differs");
    }
}

#[test]
fn rebuilding_the_accepted_hello_matches_it_entry_for_entry() {
    let reference = accepted_hello();
    let rp = parse(&reference);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let ref_data = entries(&gunzip(rp.data));
    // Recreate the tree by hand (tar's unpack would apply mtimes/owners
    // we do not need and does not matter for the comparison).
    for e in &ref_data {
        let p = root.join(e.path.trim_end_matches('/'));
        match e.kind {
            b'5' => {
                fs::create_dir_all(&p).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).unwrap();
            }
            b'0' => write(&p, &e.data, e.mode),
            b'2' => std::os::unix::fs::symlink(&e.link, &p).unwrap(),
            b'1' => fs::hard_link(root.join(&e.link), &p).unwrap(),
            k => panic!("unexpected type {k}"),
        }
    }
    let (ref_text, ref_info) = pkginfo_of(rp.control);
    let ref_control = entries(&gunzip(rp.control));
    let mut s = spec(&root);
    s.info = PkgInfo {
        size: 0,
        datahash: String::new(),
        ..ref_info.clone()
    };
    s.mtime = ref_data[0].mtime;
    s.scripts = vec![(Script::PostInstall, ref_control[1].data.clone())];
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    let (w, ours) = build(&s, &out);
    assert_eq!(package_file_name(&w.info), "hello-1.0-r0.apk");
    let op = parse(&ours);

    // .PKGINFO: same lines except the generator comment, `size` (the
    // experiment counted the symlink target too; we follow abuild:
    // regular files only) and `datahash` (compression differs).
    let (our_text, _) = pkginfo_of(op.control);
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| {
                !l.starts_with('#') && !l.starts_with("size = ") && !l.starts_with("datahash = ")
            })
            .map(String::from)
            .collect()
    };
    assert_eq!(strip(&our_text), strip(&ref_text));
    assert_eq!(w.info.size, 21);

    // Control entries: same names, modes, owners, content (but .PKGINFO).
    let our_control = entries(&gunzip(op.control));
    assert_eq!(our_control.len(), ref_control.len());
    for (a, b) in our_control.iter().zip(&ref_control) {
        assert_eq!(
            (&a.path, a.kind, a.mode, a.uid, &a.uname, a.mtime),
            (&b.path, b.kind, b.mode, b.uid, &b.uname, b.mtime)
        );
    }
    assert_eq!(our_control[1].data, ref_control[1].data);
    let ref_sigs = entries(&gunzip(rp.sig.unwrap()));
    let our_sigs = entries(&gunzip(op.sig.unwrap()));
    assert_eq!(
        (
            our_sigs[0].path.as_str(),
            our_sigs[0].mode,
            our_sigs[0].mtime
        ),
        (
            ref_sigs[0].path.as_str(),
            ref_sigs[0].mode,
            ref_sigs[0].mtime
        )
    );

    // Data entries match one for one. Only sibling order may differ: the
    // experiment wrote hello-link before hello-hard, we sort bytewise.
    let our_data = entries(&gunzip(op.data));
    let key = |v: &[Ent]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    };
    assert_eq!(key(&our_data), key(&ref_data));
    let (n, _, eoa) = block_walk(&gunzip(op.data));
    assert_eq!((n, eoa), (block_walk(&gunzip(rp.data)).0, true));
}

#[test]
fn size_is_one_for_a_tree_of_empty_files_and_zero_for_a_meta_package() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("root/etc/empty"), b"", 0o644);
    let (w, _) = build(&spec(&tmp.path().join("root")), tmp.path());
    assert_eq!(w.info.size, 1);
    fs::create_dir(tmp.path().join("meta")).unwrap();
    let mut s = spec(&tmp.path().join("meta"));
    s.info.name = "meta".into();
    let (w, apk) = build(&s, tmp.path());
    assert_eq!(w.info.size, 0);
    check_three_members(&apk).unwrap();
}

fn build_err(spec: &PackageSpec, out: &Path) -> PackageError {
    write_package(spec, &SignOptions::default(), out).unwrap_err()
}

#[test]
fn top_level_dotfiles_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("root/.hidden"), b"", 0o644);
    write(&tmp.path().join("root/usr/.ok"), b"", 0o644);
    let err = build_err(&spec(&tmp.path().join("root")), tmp.path());
    assert!(matches!(err, PackageError::TopLevelDotfile { .. }), "{err}");
    assert!(err.to_string().contains(".hidden"), "{err}");
}

#[test]
fn control_characters_in_names_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("root/usr/bad\nname"), b"", 0o644);
    let err = build_err(&spec(&tmp.path().join("root")), tmp.path());
    assert!(matches!(err, PackageError::ControlChar { .. }), "{err}");
}

#[test]
fn paths_of_4086_bytes_or_more_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let mut dir = root.clone();
    let mut rel = 0;
    while rel < 3700 {
        dir.push("d".repeat(240));
        rel += 241;
    }
    fs::create_dir_all(&dir).unwrap();
    // The full path would exceed PATH_MAX, so create it relative to dir.
    let name = "f".repeat(4090 - rel);
    let st = Command::new("touch")
        .arg(&name)
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(st.success());
    let err = build_err(&spec(&root), tmp.path());
    assert!(matches!(err, PackageError::PathTooLong { .. }), "{err}");
}

#[test]
fn files_of_8_gib_are_refused_before_reading() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let f = fs::File::create(root.join("huge")).unwrap();
    f.set_len(8 << 30).unwrap(); // sparse
    let err = build_err(&spec(&root), tmp.path());
    assert!(matches!(err, PackageError::FileTooLarge { .. }), "{err}");
    assert!(err.to_string().contains("huge"), "{err}");
}

#[test]
fn fifos_are_packaged_with_a_warning_and_sockets_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("run")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(root.join("run/pipe"))
        .status()
        .unwrap()
        .success());
    let (w, apk) = build(&spec(&root), tmp.path());
    assert_eq!(w.warnings.len(), 1);
    assert!(w.warnings[0].contains("run/pipe"), "{:?}", w.warnings);
    let data = entries(&gunzip(parse(&apk).data));
    assert_eq!(data[1].path, "run/pipe");
    assert_eq!(data[1].kind, b'6');

    let _sock = std::os::unix::net::UnixListener::bind(root.join("run/sock")).unwrap();
    let err = build_err(&spec(&root), tmp.path());
    assert!(matches!(err, PackageError::Unsupported { .. }), "{err}");
}

#[test]
fn symlinks_are_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    write(&outside.join("secret"), b"do not package", 0o644);
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("usr")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("usr/dir-link")).unwrap();
    let (_, apk) = build(&spec(&root), tmp.path());
    let data = entries(&gunzip(parse(&apk).data));
    let paths: Vec<_> = data.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["usr/", "usr/dir-link"]);
    assert_eq!(data[1].kind, b'2');
}

#[test]
fn overrides_must_match_an_entry_and_not_a_hardlink() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    write(&root.join("usr/a"), b"a", 0o644);
    fs::hard_link(root.join("usr/a"), root.join("usr/b")).unwrap();
    let mut s = spec(&root);
    s.overrides
        .insert("usr/typo".into(), EntryOverride::default());
    let err = build_err(&s, tmp.path());
    assert!(err.to_string().contains("usr/typo"), "{err}");
    let mut s = spec(&root);
    s.overrides.insert("usr/b".into(), EntryOverride::default());
    let err = build_err(&s, tmp.path());
    assert!(err.to_string().contains("hard link to usr/a"), "{err}");
}

#[test]
fn bad_control_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("root")).unwrap();
    let base = spec(&tmp.path().join("root"));
    let mut no_shebang = base.clone();
    no_shebang.scripts = vec![(Script::PreInstall, b"echo hi\n".to_vec())];
    let mut trigger_without_globs = base.clone();
    trigger_without_globs.scripts = vec![(Script::Trigger, b"#!/bin/sh\n".to_vec())];
    let mut extra_with_slash = base.clone();
    extra_with_slash.control_extra = vec![(".dir/x".into(), vec![])];
    let mut sign_extra = base.clone();
    sign_extra.control_extra = vec![(".SIGN.RSA.x".into(), vec![])];
    for s in [
        no_shebang,
        trigger_without_globs,
        extra_with_slash,
        sign_extra,
    ] {
        let err = build_err(&s, tmp.path());
        assert!(matches!(err, PackageError::Control { .. }), "{err}");
    }
    let mut bad_name = base;
    bad_name.info.name = "../evil".into();
    assert!(matches!(
        build_err(&bad_name, tmp.path()),
        PackageError::Info(_)
    ));
}

#[test]
fn a_failure_midway_keeps_the_previous_package_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    write(&root.join("usr/bin/x"), &vec![7u8; 300_000], 0o755);
    let (w, before) = build(&spec(&root), &out);
    // Sorted after usr/, so the data member is half written when it fails.
    let f = fs::File::create(root.join("zz-huge")).unwrap();
    f.set_len(9 << 30).unwrap();
    let err = build_err(&spec(&root), &out);
    assert!(matches!(err, PackageError::FileTooLarge { .. }), "{err}");
    assert_eq!(fs::read(&w.path).unwrap(), before);
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("t-1.0-r0.apk")]);
}

// ------------------------------------------------------------------ keygen

fn keygen(dir: &Path, args: &[&str]) -> std::process::Output {
    util::cmd()
        .arg("keygen")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_usable_private_0600_and_spki_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = keygen(tmp.path(), &["--key-size", "2048"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let private = tmp.path().join("pkgbuild.rsa");
    let public = tmp.path().join("pkgbuild.rsa.pub");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pkgbuild.rsa.pub"), "{stdout}");
    let mode = fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(fs::read_to_string(&private)
        .unwrap()
        .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(fs::read_to_string(&public)
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));
    let k = SigningKey::load(&private).unwrap();
    assert_eq!(k.bits(), 2048);
    assert_eq!(k.key_name(), "pkgbuild.rsa.pub");
    let sig = k.sign(Algorithm::Rsa256, b"data").unwrap();
    assert!(verify(
        &load_public_key(&public).unwrap(),
        Algorithm::Rsa256,
        b"data",
        &sig
    ));

    // Never overwrite: the same path again fails and leaves the key alone.
    let before = fs::read(&private).unwrap();
    let again = keygen(tmp.path(), &["--key-size", "2048"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(fs::read(&private).unwrap(), before);
}

#[test]
fn keygen_refuses_small_keys_bad_names_and_an_existing_public_half() {
    let tmp = tempfile::tempdir().unwrap();
    let small = keygen(tmp.path(), &["a.rsa", "--key-size", "1024"]);
    assert_eq!(small.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&small.stderr).contains("2048"));
    let name = keygen(tmp.path(), &["key.pem", "--key-size", "2048"]);
    assert_eq!(name.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&name.stderr).contains(".rsa"));
    fs::write(tmp.path().join("b.rsa.pub"), "keep me").unwrap();
    let pubexists = keygen(tmp.path(), &["b.rsa", "--key-size", "2048"]);
    assert_eq!(pubexists.status.code(), Some(2));
    assert!(!tmp.path().join("b.rsa").exists());
    assert_eq!(
        fs::read_to_string(tmp.path().join("b.rsa.pub")).unwrap(),
        "keep me"
    );
    assert!(!tmp.path().join("a.rsa").exists());
}

#[test]
fn files_above_the_in_memory_limit_are_streamed_with_the_right_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    let size = pkgbuild::apk::package::READ_WHOLE_LIMIT + 4097;
    let f = fs::File::create(root.join("big")).unwrap();
    f.set_len(size).unwrap(); // sparse zeros: cheap to create and read
    drop(f);
    write(&root.join("small"), b"after the big one", 0o644);
    let (w, apk) = build(&spec(&root), tmp.path());
    assert_eq!(w.info.size, size + 17);
    check_file_checksums(&apk).unwrap();
    check_datahash(&apk).unwrap();
    let data = entries(&gunzip(parse(&apk).data));
    assert_eq!(data[0].data.len() as u64, size);
    assert_eq!(data[1].data, b"after the big one");
}
