//! SBOM bytes pinned across refactors: reproducibility means the same
//! input gives the same document in every release, so every variant here is
//! compared with a digest recorded in `tests/golden/sbom.tsv`, and every
//! licence the Wolfi sample recipes declare is compared, normalised
//! expression and notes included, with `tests/golden/wolfi-licenses.tsv`.
//! `PKGBUILD_BLESS=1` rewrites both files (review the diff). The whole
//! document is digested except the creator and namespace, which name the
//! pkgbuild commit (see `digest`); `same_input_gives_same_bytes…` in
//! `tests/sbom.rs` covers those.

mod util;

use std::collections::BTreeSet;
use std::fmt::Write;
use std::fs;
use std::path::PathBuf;

use pkgbuild::image::rootfs::DbPackage;
use pkgbuild::image::sbom::{self as image_sbom, ImageSbom};
use pkgbuild::meta::sbom::{self, RecipeRef, SbomInput, SourceRef};
use sha2::{Digest, Sha256};
use yaml_rust2::{Yaml, YamlLoader};

use util::testdata::testdata;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `actual` with the golden file, or rewrites it when blessing.
fn check_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("PKGBUILD_BLESS").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (PKGBUILD_BLESS=1 writes it)", path.display()));
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .filter(|(e, a)| e != a)
            .take(10)
            .map(|(e, a)| format!("- {e}\n+ {a}"))
            .collect();
        panic!(
            "{} differs ({} vs {} lines):\n{}",
            path.display(),
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

/// The document's digest with the two values that name the pkgbuild commit
/// (the creator, and the namespace hashed over it) blanked, so the digest
/// pins what the input decides and survives new commits.
fn digest(bytes: &[u8]) -> String {
    let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let namespace = doc["documentNamespace"].as_str().expect("a namespace");
    let creator = pkgbuild::build_info::spdx_creator();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let bytes = text
        .replace(&format!("{creator:?}"), "\"Tool: pkgbuild\"")
        .replace(&format!("{namespace:?}"), "\"namespace\"");
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

const SHA256: &str = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";

fn sources() -> Vec<SourceRef> {
    vec![
        SourceRef::Fetch {
            url: "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz".into(),
            sha256: Some(SHA256.into()),
            sha512: None,
        },
        SourceRef::Fetch {
            url: "http://127.0.0.1:8080/src/g++_x 1.0%zz.tar.gz?x=y#z".into(),
            sha256: Some("NOT-HEX".into()),
            sha512: None,
        },
        SourceRef::Git {
            repository: "https://github.com/google/go-containerregistry".into(),
            commit: "c195f151efe3369874c72662cd69ad43ee485128".into(),
            tag: Some("v0.20.2".into()),
            branch: None,
        },
        SourceRef::Git {
            repository: "https://git.example.org/tools/frob@é.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            tag: None,
            branch: Some("main/next ✓".into()),
        },
        SourceRef::Git {
            repository: "git@github.com:owner/pro j.git".into(),
            commit: "abc".into(),
            tag: Some("v1 beta".into()),
            branch: None,
        },
        SourceRef::Git {
            repository: "file:///srv/git/thing".into(),
            commit: "abc".into(),
            tag: None,
            branch: None,
        },
    ]
}

fn input<'a>(
    name: &'a str,
    version: &'a str,
    license: &'a str,
    namespace: &'a str,
    sources: &'a [SourceRef],
    env: &'a [String],
) -> SbomInput<'a> {
    SbomInput {
        name,
        full_version: version,
        arch: "x86_64",
        origin: "hello",
        license,
        copyright: "Copyright (C) Free Software Foundation",
        cpe: None,
        url: "https://www.gnu.org/software/hello/",
        namespace,
        sources,
        epoch: 1_700_000_000,
        description: "prints a friendly greeting",
        build_environment: env,
        recipe: None,
    }
}

#[test]
fn sbom_bytes_match_the_recorded_digests() {
    let all = sources();
    let env = [
        "go>=1.22".to_string(),
        "busybox=1.36.1-r0".to_string(),
        "g++".to_string(),
        "py3.12-foo~1".to_string(),
    ];
    let names = [
        ("hello", "2.12.1-r3"),
        ("g++_x-libs", "1.0_rc1+git2-r0"),
        ("py3-ünï", "0.1:2-r0"),
        ("a/b%c d", "1 2-r0"),
    ];
    let namespaces = ["wolfi", "my distro", "", "a/b?c"];
    let licenses = [
        "MIT",
        "Apache-2.0 AND MIT",
        "GPL-2.0-or-later WITH Classpath-exception-2.0",
        "LicenseRef-foo",
        "",
        "BSD-3-Clause OR (MIT AND LicenseRef-bar)",
        "GPL v2 or whatever",
        "gpl-2.0+ and Foo_Bar",
        "MIT WITH Not-An-Exception",
        "NONE",
    ];
    let mut out = String::new();
    for (i, (name, version)) in names.iter().enumerate() {
        for (j, ns) in namespaces.iter().enumerate() {
            for (k, license) in licenses.iter().enumerate() {
                let src = &all[(i + j + k) % all.len()..];
                let env = &env[..(i + k) % (env.len() + 1)];
                let mut inp = input(name, version, license, ns, src, env);
                inp.cpe = (k % 3 == 0).then_some("cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*");
                if k % 4 == 1 {
                    inp.recipe = Some(RecipeRef {
                        path: "recipes/hello world.yaml",
                        repository: Some("https://github.com/wolfi-dev/os"),
                        commit: "0123456789abcdef0123456789abcdef01234567",
                        license: Some("Apache-2.0"),
                    });
                }
                let bytes = sbom::render(&inp);
                let notes = sbom::warnings(&inp).join(" | ");
                writeln!(out, "apk {i}.{j}.{k}\t{}\t{notes}", digest(&bytes)).unwrap();
            }
        }
    }
    let pkgs: Vec<DbPackage> = names
        .iter()
        .zip(licenses.iter().cycle().skip(3))
        .map(|((name, version), license)| DbPackage {
            name: name.to_string(),
            version: version.to_string(),
            arch: "x86_64".into(),
            license: license.to_string(),
            origin: format!("{name} origin"),
            checksum: "Q1AAECAwQFBgcICQoLDA0ODxAREhM=".into(),
            ..Default::default()
        })
        .collect();
    for (i, image) in ["hello:1.2", "reg.example/a b:latest", "x"]
        .iter()
        .enumerate()
    {
        let doc = image_sbom::render(&ImageSbom {
            name: image,
            arch: "x86_64",
            go_arch: "amd64",
            digest: (i != 1).then_some("sha256:00ff"),
            packages: &pkgs[i..],
            epoch: 1_700_000_000,
        });
        writeln!(out, "image {i}\t{}", digest(&doc)).unwrap();
    }
    check_golden("sbom.tsv", &out);
}

/// Every `license:` under a `copyright:` list anywhere in the recipe.
fn collect_licenses(y: &Yaml, out: &mut BTreeSet<String>) {
    match y {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if k.as_str() == Some("copyright") {
                    for item in v.as_vec().into_iter().flatten() {
                        if let Some(l) = item["license"].as_str() {
                            out.insert(l.to_string());
                        }
                    }
                }
                collect_licenses(v, out);
            }
        }
        Yaml::Array(a) => a.iter().for_each(|v| collect_licenses(v, out)),
        _ => {}
    }
}

#[test]
fn wolfi_sample_licences_normalise_as_recorded() {
    let dir = testdata().join("wolfi-sample/recipes");
    let mut licenses = BTreeSet::new();
    let mut recipes = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let docs =
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut own = BTreeSet::new();
        docs.iter().for_each(|d| collect_licenses(d, &mut own));
        // A recipe with several copyright entries joins them with AND.
        if own.len() > 1 {
            licenses.insert(own.iter().cloned().collect::<Vec<_>>().join(" AND "));
        }
        licenses.extend(own);
        recipes += 1;
    }
    assert!(
        recipes >= 200,
        "only {recipes} recipes in {}",
        dir.display()
    );
    assert!(licenses.len() >= 40, "only {} licences", licenses.len());
    // Spellings recipes elsewhere use, and the odd corners of the grammar.
    licenses.extend(
        [
            "GPL-2.0",
            "GPL-2.0+",
            "gpl-2.0+",
            "LGPL-2.1+",
            "GPL-3.0-or-later+",
            "GFDL-1.3",
            "mit",
            "MIT/Apache-2.0",
            "MIT OR Apache-2.0 OR",
            "Apache 2.0",
            "BSD",
            "Public Domain",
            "MIT and (apache-2.0 or bsd-2-clause)",
            "((MIT))",
            "(MIT",
            "MIT)",
            "()",
            "AND",
            "MIT WITH",
            "WITH MIT",
            "GPL-2.0-only WITH Linux-syscall-note",
            "gpl-2.0-only with linux-syscall-note",
            "Apache-2.0 WITH LLVM-exception OR MIT",
            "GPL-2.0-or-later WITH Unknown-exception",
            "LicenseRef-",
            "LicenseRef-a.b-c",
            "LicenseRef-a_b",
            "DocumentRef-x:LicenseRef-y",
            "MIT AND MIT",
            "MIT  AND\tBSD-3-Clause",
            "eCos-2.0",
            "Nokia-Qt-exception-1.1",
            "GPL-2.0-with-classpath-exception",
            "wxWindows",
            "StandardML-NJ",
            "BSD-2-Clause-FreeBSD",
            "AGPL-1.0",
            "LGPL-2.0+ AND BSD-3-Clause+",
            "MIT WITH Classpath-exception-2.0 WITH x",
            "(MIT OR BSD-3-Clause) WITH GCC-exception-3.1",
        ]
        .map(String::from),
    );
    let mut out = String::new();
    for raw in &licenses {
        let l = sbom::normalize_license(raw);
        writeln!(out, "{raw}\t{}\t{}", l.expression, l.notes.join(" | ")).unwrap();
    }
    check_golden("wolfi-licenses.tsv", &out);
}
