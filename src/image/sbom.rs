//! SPDX 2.3 document for one architecture of an image: the image itself
//! (a `CONTAINER` package, with its digest when known) and every installed
//! apk with version, checksum, licence and purl, the image `CONTAINS` each.
//!
//! Licences go through the package SBOM's normaliser, so what is written
//! is a valid SPDX expression; one it could only express with a
//! `LicenseRef-` (whose text the image does not have) is `NOASSERTION`.
//! The checksum is the apk's `C:` (SHA-1 of its control segment, as apk
//! and apko identify a package), in hex. Output is a pure function of the
//! input: the namespace hashes the document itself.

use sha2::{Digest, Sha256};

use super::rootfs::DbPackage;
use crate::meta::sbom::{
    normalize_license, purl, rfc3339, spdx_id, Checksum, CreationInfo, Document, ExternalRef,
    Package, Relationship,
};

/// What the image SBOM describes.
pub struct ImageSbom<'a> {
    /// The image's name (its tag, or the config's file stem).
    pub name: &'a str,
    /// apk spelling (`x86_64`).
    pub arch: &'a str,
    /// OCI spelling (`amd64`).
    pub go_arch: &'a str,
    /// `sha256:<hex>` of the arch's manifest, when the document is written
    /// outside the image (inside, it cannot know it).
    pub digest: Option<&'a str>,
    pub packages: &'a [DbPackage],
    pub epoch: u64,
}

/// A package of the image document: what an installed database knows,
/// the rest `NOASSERTION`.
fn package(
    spdx_id: String,
    name: String,
    version_info: String,
    license_declared: String,
    checksums: Vec<Checksum>,
    external_refs: Vec<ExternalRef>,
    purpose: &'static str,
) -> Package {
    Package {
        spdx_id,
        name,
        version_info,
        files_analyzed: false,
        license_concluded: "NOASSERTION",
        license_declared,
        description: None,
        download_location: "NOASSERTION".into(),
        homepage: None,
        source_info: None,
        originator: None,
        supplier: "NOASSERTION".into(),
        copyright_text: Some("NOASSERTION".into()),
        checksums,
        external_refs,
        purpose: Some(purpose),
    }
}

/// `Q1<base64 sha1>` → hex, when it is one.
fn q1_hex(c: &str) -> Option<String> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(c.strip_prefix("Q1")?)
        .ok()?;
    (raw.len() == 20).then(|| hex::encode(&raw))
}

/// The document as pretty JSON with a final newline.
pub fn render(input: &ImageSbom) -> Vec<u8> {
    let image_id = spdx_id(&format!("SPDXRef-Image-{}-{}", input.name, input.arch));
    let mut image_refs = Vec::new();
    if let Some(d) = input.digest {
        image_refs.push(ExternalRef {
            category: "PACKAGE-MANAGER",
            locator: format!(
                "pkg:oci/{}@{}?arch={}",
                purl::escape(input.name.rsplit_once(':').map_or(input.name, |(n, _)| n)),
                purl::escape(d),
                purl::escape(input.go_arch)
            ),
            kind: "purl",
        });
    }
    let mut packages = vec![package(
        image_id.clone(),
        input.name.to_string(),
        input.digest.unwrap_or_default().to_string(),
        "NOASSERTION".into(),
        Vec::new(),
        image_refs,
        "CONTAINER",
    )];
    let mut relationships = vec![Relationship {
        element: "SPDXRef-DOCUMENT".into(),
        kind: "DESCRIBES",
        related: image_id.clone(),
    }];
    let mut used = std::collections::HashSet::new();
    for p in input.packages {
        let mut id = spdx_id(&format!("SPDXRef-Package-{}-{}", p.name, p.version));
        let base = id.clone();
        let mut n = 1;
        while !used.insert(id.clone()) {
            n += 1;
            id = format!("{base}-{n}");
        }
        let lic = normalize_license(&p.license).expression;
        let license_declared = if lic.contains("LicenseRef-") {
            "NOASSERTION".to_string()
        } else {
            lic
        };
        let arch = if p.arch.is_empty() {
            input.arch
        } else {
            &p.arch
        };
        let mut purl = format!(
            "pkg:apk/pkgbuild/{}@{}?arch={}",
            purl::escape(&p.name),
            purl::escape(&p.version),
            purl::escape(arch)
        );
        if !p.origin.is_empty() && p.origin != p.name {
            purl.push_str(&format!("&origin={}", purl::escape(&p.origin)));
        }
        let checksum = q1_hex(&p.checksum).map(|value| Checksum {
            algorithm: "SHA1",
            value,
        });
        packages.push(package(
            id.clone(),
            p.name.clone(),
            p.version.clone(),
            license_declared,
            checksum.into_iter().collect(),
            vec![ExternalRef {
                category: "PACKAGE-MANAGER",
                locator: purl,
                kind: "purl",
            }],
            "OPERATING-SYSTEM",
        ));
        relationships.push(Relationship {
            element: image_id.clone(),
            kind: "CONTAINS",
            related: id,
        });
    }
    let mut doc = Document {
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("image-{}-{}", input.name, input.arch),
        spdx_version: "SPDX-2.3",
        creation_info: CreationInfo {
            created: rfc3339(input.epoch),
            creators: vec![format!("Tool: pkgbuild-{}", env!("CARGO_PKG_VERSION"))],
        },
        data_license: "CC0-1.0",
        document_namespace: String::new(),
        document_describes: vec![image_id],
        packages,
        relationships,
        extracted: Vec::new(),
    };
    let digest = Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default());
    doc.document_namespace = format!(
        "https://spdx.org/spdxdocs/pkgbuild/image-{}-{}-{}",
        purl::escape(input.name),
        purl::escape(input.arch),
        &hex::encode(digest)[..32]
    );
    let mut out = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_package_with_checksum_licence_and_purl() {
        let pkgs = vec![
            DbPackage {
                name: "glibc".into(),
                version: "2.36-r0".into(),
                arch: "x86_64".into(),
                license: "LGPL-2.1-or-later".into(),
                checksum: "Q1AAECAwQFBgcICQoLDA0ODxAREhM=".into(),
                ..Default::default()
            },
            DbPackage {
                name: "hello".into(),
                version: "1.2.0-r0".into(),
                license: "some custom thing".into(),
                checksum: "Q1AAECAwQFBgcICQoLDA0ODxAREhM=".into(),
                ..Default::default()
            },
        ];
        let input = ImageSbom {
            name: "hello:1.2",
            arch: "x86_64",
            go_arch: "amd64",
            digest: Some("sha256:00ff"),
            packages: &pkgs,
            epoch: 0,
        };
        let a = render(&input);
        assert_eq!(a, render(&input));
        let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
        let p = &v["packages"];
        assert_eq!(p[0]["primaryPackagePurpose"], "CONTAINER");
        assert_eq!(
            p[0]["externalRefs"][0]["referenceLocator"],
            "pkg:oci/hello@sha256%3A00ff?arch=amd64"
        );
        assert_eq!(p[1]["licenseDeclared"], "LGPL-2.1-or-later");
        assert_eq!(
            p[1]["checksums"][0]["checksumValue"],
            "000102030405060708090a0b0c0d0e0f10111213"
        );
        assert_eq!(
            p[1]["externalRefs"][0]["referenceLocator"],
            "pkg:apk/pkgbuild/glibc@2.36-r0?arch=x86_64"
        );
        assert_eq!(p[2]["licenseDeclared"], "NOASSERTION");
        assert_eq!(v["relationships"].as_array().unwrap().len(), 3);
        assert_eq!(v["creationInfo"]["created"], "1970-01-01T00:00:00Z");
    }
}
