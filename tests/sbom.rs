//! SBOM documents checked two ways: our own structural assertions (always),
//! and the SPDX project's validator `pyspdxtools` (spdx-tools on PyPI) on
//! every variant. Without `pyspdxtools` on PATH the validator half is skipped
//! with a message, except under CI (env `CI` set), where that is a failure.

mod util;

use pkgbuild::meta::sbom::{self, SbomInput, SourceRef};
use serde_json::Value;
use std::collections::HashSet;
use util::{run_spdx_validator, validate_spdx};

const SHA256: &str = "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";
const SHA512: &str = "0cf9180a764aba863a67b6d72f0918bc131c6772642cb2dce5a34f0a702f9470ddc2bf125c12198b1995c233c34b4afd346c54a2334c350a948a51b6e8b4e6b6";

fn fetch() -> SourceRef {
    SourceRef::Fetch {
        url: "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz".into(),
        sha256: Some(SHA256.into()),
        sha512: None,
    }
}

fn github() -> SourceRef {
    SourceRef::Git {
        repository: "https://github.com/google/go-containerregistry".into(),
        commit: "c195f151efe3369874c72662cd69ad43ee485128".into(),
        tag: Some("v0.20.2".into()),
        branch: None,
    }
}

fn generic_git() -> SourceRef {
    SourceRef::Git {
        repository: "https://git.example.org/tools/frob.git".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        tag: None,
        branch: Some("main".into()),
    }
}

fn base<'a>(license: &'a str, sources: &'a [SourceRef]) -> SbomInput<'a> {
    SbomInput {
        name: "hello",
        full_version: "2.12.1-r3",
        arch: "x86_64",
        origin: "hello",
        license,
        copyright: "Copyright (C) Free Software Foundation",
        cpe: None,
        url: "https://www.gnu.org/software/hello/",
        namespace: "local",
        sources,
        epoch: 1_700_000_000,
        description: "prints a friendly greeting",
        build_environment: &[],
        recipe: None,
    }
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("SBOM is JSON")
}

/// Everything we promise about every document, independent of the validator.
#[track_caller]
fn check_structure(bytes: &[u8]) -> Value {
    let doc = parse(bytes);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    let id_shape = regex::Regex::new(r"^SPDXRef-[A-Za-z0-9.-]+$").unwrap();
    let mut ids = HashSet::from(["SPDXRef-DOCUMENT".to_string()]);
    for p in doc["packages"].as_array().expect("packages") {
        let id = p["SPDXID"].as_str().expect("package SPDXID");
        assert!(id_shape.is_match(id), "bad SPDXID {id}");
        assert!(ids.insert(id.to_string()), "duplicate SPDXID {id}");
        assert_eq!(p["filesAnalyzed"], false, "{id}");
        assert!(p["downloadLocation"].is_string(), "{id}");
    }
    for r in doc["relationships"].as_array().expect("relationships") {
        for side in ["spdxElementId", "relatedSpdxElement"] {
            let id = r[side].as_str().expect("relationship side");
            assert!(ids.contains(id), "relationship names unknown element {id}");
        }
    }
    let described = doc["documentDescribes"][0].as_str().expect("describes");
    assert!(ids.contains(described));
    assert!(doc["relationships"].as_array().unwrap().iter().any(|r| {
        r["spdxElementId"] == "SPDXRef-DOCUMENT"
            && r["relationshipType"] == "DESCRIBES"
            && r["relatedSpdxElement"] == described
    }));
    // Every LicenseRef used is declared exactly once.
    let declared: Vec<&str> = doc["hasExtractedLicensingInfos"]
        .as_array()
        .map(|a| a.iter().map(|e| e["licenseId"].as_str().unwrap()).collect())
        .unwrap_or_default();
    let unique: HashSet<_> = declared.iter().collect();
    assert_eq!(unique.len(), declared.len(), "duplicate extracted license");
    let lref = regex::Regex::new(r"LicenseRef-[A-Za-z0-9.-]+").unwrap();
    for p in doc["packages"].as_array().unwrap() {
        let lic = p["licenseDeclared"].as_str().unwrap();
        for m in lref.find_iter(lic) {
            assert!(declared.contains(&m.as_str()), "{} undeclared", m.as_str());
        }
    }
    let created = doc["creationInfo"]["created"].as_str().unwrap();
    assert!(
        regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            .unwrap()
            .is_match(created),
        "{created}"
    );
    doc
}

#[test]
fn every_variant_passes_structure_checks_and_the_spdx_validator() {
    let mut docs = Vec::new();
    let all = [fetch(), github(), generic_git()];
    let both_sums = [SourceRef::Fetch {
        url: "https://example.com/dl/frob-1.0.tar.xz".into(),
        sha256: Some(SHA256.into()),
        sha512: Some(SHA512.into()),
    }];
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
    let cpes = [
        None,
        Some("cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*"),
        Some("cpe:/a:gnu:hello:2.12.1"),
        Some("not a cpe"),
    ];
    let source_sets: [&[SourceRef]; 4] = [&[], &all, &both_sums, &[fetch(), fetch()]];
    for (i, license) in licenses.iter().enumerate() {
        let mut input = base(license, source_sets[i % source_sets.len()]);
        input.cpe = cpes[i % cpes.len()];
        let bytes = sbom::render(&input);
        check_structure(&bytes);
        docs.push((format!("license-{i}"), bytes));
    }
    for (i, cpe) in cpes.iter().enumerate() {
        let mut input = base("MIT", &all);
        input.cpe = *cpe;
        let bytes = sbom::render(&input);
        check_structure(&bytes);
        docs.push((format!("cpe-{i}"), bytes));
    }
    assert_eq!(docs.len(), licenses.len() + cpes.len());
    validate_spdx(&docs);
}

#[test]
fn odd_names_urls_and_hosts_still_validate() {
    let local = [
        SourceRef::Fetch {
            url: "http://127.0.0.1:8080/src/g++_x-1.0.tar.gz".into(),
            sha256: Some("NOT-HEX".into()),
            sha512: None,
        },
        SourceRef::Git {
            repository: "file:///srv/git/thing".into(),
            commit: "abc".into(),
            tag: Some("v1 beta".into()),
            branch: None,
        },
        SourceRef::Git {
            repository: "git@github.com:owner/proj.git".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            tag: None,
            branch: None,
        },
    ];
    let env = vec![
        "go>=1.22".to_string(),
        "busybox=1.36.1-r0".to_string(),
        "g++".to_string(),
    ];
    let input = SbomInput {
        name: "g++_x-libs",
        full_version: "1.0_rc1+git2-r0",
        arch: "aarch64",
        origin: "g++_x",
        license: "mit",
        copyright: "",
        cpe: None,
        url: "http://localhost/home page",
        namespace: "my distro",
        sources: &local,
        epoch: 0,
        description: "",
        build_environment: &env,
        recipe: None,
    };
    let bytes = sbom::render(&input);
    let doc = check_structure(&bytes);
    validate_spdx(&[("odd".into(), bytes.clone())]);
    let apk = &doc["packages"][0];
    assert_eq!(
        apk["SPDXID"],
        "SPDXRef-Package-gC43C43C95x-libs-1.0C95rc1C43git2-r0"
    );
    assert_eq!(apk["sourceInfo"], "subpackage of g++_x");
    assert_eq!(apk["copyrightText"], "NOASSERTION");
    assert!(apk.get("homepage").is_none());
    let local_fetch = &doc["packages"][1];
    assert_eq!(local_fetch["downloadLocation"], "NOASSERTION");
    assert_eq!(
        local_fetch["sourceInfo"],
        "retrieved from http://127.0.0.1:8080/src/g++_x-1.0.tar.gz"
    );
    assert!(local_fetch.get("checksums").is_none());
    let notes = sbom::warnings(&input);
    assert!(notes.iter().any(|w| w.contains("NOT-HEX")), "{notes:?}");
    assert!(notes.iter().any(|w| w.contains("homepage")), "{notes:?}");
    assert!(notes.iter().any(|w| w.contains("127.0.0.1")), "{notes:?}");
}

#[test]
fn same_input_gives_same_bytes_and_any_change_a_new_namespace() {
    let sources = [fetch(), github()];
    let a = sbom::render(&base("MIT", &sources));
    let b = sbom::render(&base("MIT", &sources));
    assert_eq!(a, b);
    let mut other = base("MIT", &sources);
    other.epoch += 1;
    let c = sbom::render(&other);
    let ns = |bytes: &[u8]| {
        parse(bytes)["documentNamespace"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_ne!(ns(&a), ns(&c));
    assert!(
        ns(&a).starts_with("https://spdx.org/spdxdocs/pkgbuild/hello-2.12.1-r3-x86_64-"),
        "{}",
        ns(&a)
    );
    assert!(a.ends_with(b"}\n"));
}

#[test]
fn creation_time_comes_from_the_epoch() {
    for (epoch, want) in [
        (0, "1970-01-01T00:00:00Z"),
        (1_700_000_000, "2023-11-14T22:13:20Z"),
    ] {
        let mut input = base("MIT", &[]);
        input.epoch = epoch;
        let doc = parse(&sbom::render(&input));
        assert_eq!(doc["creationInfo"]["created"], want);
        assert_eq!(sbom::rfc3339(epoch), want);
    }
}

#[test]
fn package_and_sources_have_melange_shaped_identities() {
    let sources = [fetch(), github(), generic_git()];
    let mut input = base("Apache-2.0", &sources);
    input.cpe = Some("cpe:2.3:a:gnu:hello:2.12.1:*:*:*:*:*:*:*");
    let doc = parse(&sbom::render(&input));
    assert_eq!(doc["name"], "apk-hello-2.12.1-r3");
    let p = &doc["packages"];
    assert_eq!(p[0]["SPDXID"], "SPDXRef-Package-hello-2.12.1-r3");
    assert_eq!(p[0]["versionInfo"], "2.12.1-r3");
    assert_eq!(p[0]["licenseDeclared"], "Apache-2.0");
    assert_eq!(p[0]["supplier"], "Organization: Local");
    assert_eq!(p[0]["homepage"], "https://www.gnu.org/software/hello/");
    assert_eq!(
        p[0]["externalRefs"][0]["referenceLocator"],
        "pkg:apk/local/hello@2.12.1-r3?arch=x86_64&distro=local"
    );
    assert_eq!(p[0]["externalRefs"][1]["referenceType"], "cpe23Type");
    assert_eq!(p[0]["externalRefs"][1]["referenceCategory"], "SECURITY");

    assert_eq!(p[1]["SPDXID"], "SPDXRef-Package-hello-2.12.1-0");
    assert_eq!(p[1]["versionInfo"], "2.12.1");
    assert_eq!(
        p[1]["downloadLocation"],
        "https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz"
    );
    assert_eq!(p[1]["checksums"][0]["algorithm"], "SHA256");
    assert_eq!(
        p[1]["externalRefs"][0]["referenceLocator"],
        format!(
            "pkg:generic/hello@2.12.1?checksum=sha256%3A{SHA256}\
             &download_url=https%3A%2F%2Fftp.gnu.org%2Fgnu%2Fhello%2Fhello-2.12.1.tar.gz"
        )
    );
    assert_eq!(p[1]["primaryPackagePurpose"], "SOURCE");

    assert_eq!(
        p[2]["SPDXID"],
        "SPDXRef-Package-github.com-google-go-containerregistry-v0.20.2-\
         c195f151efe3369874c72662cd69ad43ee485128-1"
    );
    assert_eq!(p[2]["name"], "go-containerregistry");
    assert_eq!(p[2]["versionInfo"], "v0.20.2");
    assert_eq!(p[2]["supplier"], "Organization: Google");
    assert_eq!(
        p[2]["externalRefs"][0]["referenceLocator"],
        "pkg:github/google/go-containerregistry@v0.20.2"
    );
    assert_eq!(
        p[2]["downloadLocation"],
        "git+https://github.com/google/go-containerregistry@c195f151efe3369874c72662cd69ad43ee485128"
    );

    assert_eq!(p[3]["name"], "frob");
    assert_eq!(
        p[3]["externalRefs"][0]["referenceLocator"],
        "pkg:generic/frob@0123456789abcdef0123456789abcdef01234567?vcs_url=\
         git%2Bhttps%3A%2F%2Fgit.example.org%2Ftools%2Ffrob.git%400123456789abcdef0123456789abcdef01234567"
    );

    let rels: Vec<(String, String, String)> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["spdxElementId"].as_str().unwrap().into(),
                r["relationshipType"].as_str().unwrap().into(),
                r["relatedSpdxElement"].as_str().unwrap().into(),
            )
        })
        .collect();
    let apk = "SPDXRef-Package-hello-2.12.1-r3".to_string();
    assert_eq!(
        rels[0],
        ("SPDXRef-DOCUMENT".into(), "DESCRIBES".into(), apk.clone())
    );
    for (i, pkg) in p.as_array().unwrap()[1..].iter().enumerate() {
        assert_eq!(
            rels[i + 1],
            (
                apk.clone(),
                "GENERATED_FROM".into(),
                pkg["SPDXID"].as_str().unwrap().into()
            )
        );
    }
}

#[test]
fn custom_and_missing_licenses_are_declared_or_noassertion() {
    let doc = parse(&sbom::render(&base("LicenseRef-foo AND MIT", &[])));
    assert_eq!(
        doc["packages"][0]["licenseDeclared"],
        "LicenseRef-foo AND MIT"
    );
    let info = &doc["hasExtractedLicensingInfos"][0];
    assert_eq!(info["licenseId"], "LicenseRef-foo");
    assert!(!info["extractedText"].as_str().unwrap().is_empty());

    let doc = parse(&sbom::render(&base("", &[])));
    assert_eq!(doc["packages"][0]["licenseDeclared"], "NOASSERTION");
    assert!(doc.get("hasExtractedLicensingInfos").is_none());
    assert!(sbom::warnings(&base("MIT", &[fetch()])).is_empty());
}

#[test]
fn sbom_lives_where_melange_puts_it() {
    assert_eq!(
        sbom::sbom_path("hello", "2.12.1-r3"),
        "var/lib/db/sbom/hello-2.12.1-r3.spdx.json"
    );
}

/// Guards the harness itself: a document we break on purpose must be
/// rejected, or a passing validator run above would prove nothing.
#[test]
fn validator_rejects_a_broken_document() {
    let good = sbom::render(&base("MIT", &[fetch()]));
    let mut bad_license = parse(&good);
    bad_license["packages"][0]["licenseDeclared"] = "Not-A-License".into();
    let mut dangling = parse(&good);
    dangling["relationships"][1]["relatedSpdxElement"] = "SPDXRef-nowhere".into();
    let docs: Vec<(String, Vec<u8>)> = [("bad-license", bad_license), ("dangling", dangling)]
        .into_iter()
        .map(|(l, v)| (l.to_string(), serde_json::to_vec(&v).unwrap()))
        .collect();
    let Some(results) = run_spdx_validator(&docs) else {
        return;
    };
    for ((label, _), (ok, text)) in docs.iter().zip(results) {
        assert!(!ok, "pyspdxtools accepted broken document {label}");
        assert!(text.contains("invalid"), "{label}: {text}");
    }
}

#[test]
fn build_environment_packages_are_build_dependencies_of_the_apk() {
    let env = vec![
        "build-base".to_string(),
        "busybox=1.36.1-r0".to_string(),
        "go>=1.22".to_string(),
    ];
    let mut input = base("MIT", &[]);
    input.build_environment = &env;
    let bytes = sbom::render(&input);
    let doc = check_structure(&bytes);
    validate_spdx(&[("build-env".into(), bytes.clone())]);
    let packages = doc["packages"].as_array().unwrap();
    let find = |name: &str| {
        packages
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no package {name}"))
    };
    assert_eq!(find("busybox")["versionInfo"], "1.36.1-r0");
    assert!(
        find("go").get("versionInfo").is_none(),
        "a range is not a version"
    );
    assert!(find("build-base").get("versionInfo").is_none());
    let apk_id = packages[0]["SPDXID"].as_str().unwrap();
    let build_deps: Vec<&str> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["relationshipType"] == "BUILD_DEPENDENCY_OF" && r["relatedSpdxElement"] == apk_id
        })
        .map(|r| r["spdxElementId"].as_str().unwrap())
        .collect();
    assert_eq!(build_deps.len(), 3, "{build_deps:?}");
}

#[test]
fn the_recipe_is_a_package_the_apk_is_described_by() {
    use pkgbuild::meta::sbom::RecipeRef;
    let cases = [
        (
            "github",
            RecipeRef {
                path: "packages/hello.yaml",
                repository: Some("https://github.com/example-org/packages"),
                commit: "0123456789abcdef0123456789abcdef01234567",
                license: Some("Apache-2.0"),
            },
        ),
        (
            "generic",
            RecipeRef {
                path: "hello.yaml",
                repository: Some("https://git.example.org/distro/recipes.git"),
                commit: "",
                license: Some("mit OR Apache-2.0"),
            },
        ),
        (
            "none",
            RecipeRef {
                path: "hello.yaml",
                repository: None,
                commit: "abc",
                license: None,
            },
        ),
    ];
    let mut docs = Vec::new();
    for (label, recipe) in cases {
        let mut input = base("MIT", &[]);
        input.recipe = Some(recipe);
        let bytes = sbom::render(&input);
        let doc = check_structure(&bytes);
        let pkgs = doc["packages"].as_array().unwrap();
        let r = pkgs
            .iter()
            .find(|p| p["name"] == recipe.path)
            .unwrap_or_else(|| panic!("{label}: no recipe package"));
        let id = r["SPDXID"].as_str().unwrap();
        let rels = doc["relationships"].as_array().unwrap();
        assert!(
            rels.iter()
                .any(|x| x["spdxElementId"] == "SPDXRef-Package-hello-2.12.1-r3"
                    && x["relationshipType"] == "DESCRIBED_BY"
                    && x["relatedSpdxElement"] == id),
            "{label}: {rels:?}"
        );
        let purl = r["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        match label {
            "github" => {
                assert_eq!(r["versionInfo"], recipe.commit);
                assert_eq!(r["licenseDeclared"], "Apache-2.0");
                assert_eq!(
                    r["downloadLocation"],
                    "git+https://github.com/example-org/packages@0123456789abcdef0123456789abcdef01234567#packages/hello.yaml"
                );
                assert_eq!(
                    purl,
                    "pkg:github/example-org/packages@0123456789abcdef0123456789abcdef01234567#packages/hello.yaml"
                );
                assert_eq!(r["supplier"], "Organization: Example-org");
            }
            "generic" => {
                assert_eq!(r["licenseDeclared"], "MIT OR Apache-2.0");
                assert!(r.get("versionInfo").is_none(), "{r}");
                assert_eq!(
                    r["downloadLocation"],
                    "git+https://git.example.org/distro/recipes.git#hello.yaml"
                );
                assert!(purl.starts_with("pkg:generic/recipes?vcs_url="), "{purl}");
                assert!(purl.ends_with("#hello.yaml"), "{purl}");
            }
            _ => {
                assert_eq!(r["licenseDeclared"], "NOASSERTION");
                assert_eq!(r["downloadLocation"], "NOASSERTION");
                assert_eq!(purl, "pkg:generic/hello.yaml@abc#hello.yaml");
            }
        }
        docs.push((format!("recipe-{label}"), bytes));
    }
    validate_spdx(&docs);
}
