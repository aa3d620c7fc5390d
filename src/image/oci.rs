//! The OCI image layout (image-spec v1.1) in one tar archive, what skopeo
//! and podman call an `oci-archive`: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`.
//!
//! `index.json` names one image index (annotated with the tag as
//! `org.opencontainers.image.ref.name`) that lists one manifest per
//! architecture; each manifest has its config and its single layer. JSON
//! is written by serde from structs and sorted maps, so equal inputs give
//! equal bytes and therefore equal digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::layer::{sha256_hex, Layer};
use crate::apk::tar::{Header, Kind, TarWriter};

pub const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: &'static str,
    pub digest: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `amd64`, `arm/v7` → architecture and variant.
    pub fn of(go_arch: &str) -> Platform {
        let (arch, variant) = match go_arch.split_once('/') {
            Some((a, v)) => (a.to_string(), Some(v.to_string())),
            None => (go_arch.to_string(), None),
        };
        Platform {
            architecture: arch,
            os: "linux",
            variant,
        }
    }
}

/// The runtime part of the image config (the spec's `config` object).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunConfig {
    #[serde(rename = "User", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint", skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Cmd", skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(rename = "WorkingDir", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(rename = "StopSignal", skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(rename = "Volumes", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Empty>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Empty {}

#[derive(Serialize)]
struct ImageConfigJson<'a> {
    created: &'a str,
    architecture: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    os: &'static str,
    config: &'a RunConfig,
    rootfs: RootFs,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: String,
    comment: &'static str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<&'a Descriptor>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct IndexJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: &'a [Descriptor],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Structs of strings and maps always serialise.
    serde_json::to_vec(v).unwrap_or_default()
}

/// A blob held in memory until the archive is written.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub bytes: Vec<u8>,
}

fn blob(bytes: Vec<u8>) -> Blob {
    Blob {
        digest: format!("sha256:{}", sha256_hex(&bytes)),
        bytes,
    }
}

/// One architecture's finished image, before the index is made.
pub struct ArchImage {
    pub manifest: Descriptor,
    pub blobs: Vec<Blob>,
    pub layer: Layer,
}

/// Make the config and manifest of one architecture.
pub fn arch_image(
    go_arch: &str,
    created: &str,
    run: &RunConfig,
    layer: Layer,
    annotations: &BTreeMap<String, String>,
) -> ArchImage {
    let platform = Platform::of(go_arch);
    let cfg = blob(json(&ImageConfigJson {
        created,
        architecture: &platform.architecture,
        variant: platform.variant.as_deref(),
        os: "linux",
        config: run,
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![layer.diff_id.clone()],
        },
        history: vec![History {
            created,
            created_by: format!("pkgbuild image {}", env!("CARGO_PKG_VERSION")),
            comment: "apk packages and image configuration",
        }],
    }));
    let cfg_desc = Descriptor {
        media_type: MT_CONFIG,
        digest: cfg.digest.clone(),
        size: cfg.bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let layer_desc = Descriptor {
        media_type: MT_LAYER,
        digest: layer.digest.clone(),
        size: layer.size,
        platform: None,
        annotations: BTreeMap::new(),
    };
    let man = blob(json(&Manifest {
        schema_version: 2,
        media_type: MT_MANIFEST,
        config: &cfg_desc,
        layers: vec![&layer_desc],
        annotations,
    }));
    ArchImage {
        manifest: Descriptor {
            media_type: MT_MANIFEST,
            digest: man.digest.clone(),
            size: man.bytes.len() as u64,
            platform: Some(platform),
            annotations: BTreeMap::new(),
        },
        blobs: vec![cfg, man],
        layer,
    }
}

/// The finished layout's top-level facts.
#[derive(Debug, Clone)]
pub struct Written {
    /// `sha256:<hex>` of the image index: the image's digest.
    pub digest: String,
}

/// Write the whole layout as a tar at `out` (atomically).
pub fn write_archive(
    out: &Path,
    images: &[ArchImage],
    ref_name: &str,
    annotations: &BTreeMap<String, String>,
    epoch: u64,
) -> Result<Written> {
    let manifests: Vec<Descriptor> = images.iter().map(|i| i.manifest.clone()).collect();
    let index = blob(json(&IndexJson {
        schema_version: 2,
        media_type: MT_INDEX,
        manifests: &manifests,
        annotations,
    }));
    let mut top_ann = BTreeMap::new();
    top_ann.insert(REF_NAME.to_string(), ref_name.to_string());
    let top = json(&IndexJson {
        schema_version: 2,
        media_type: MT_INDEX,
        manifests: &[Descriptor {
            media_type: MT_INDEX,
            digest: index.digest.clone(),
            size: index.bytes.len() as u64,
            platform: None,
            annotations: top_ann,
        }],
        annotations: &BTreeMap::new(),
    });
    // Blobs by digest, each once, in digest order.
    let mut mem: BTreeMap<String, &[u8]> = BTreeMap::new();
    let mut files: BTreeMap<String, &Layer> = BTreeMap::new();
    for i in images {
        for b in &i.blobs {
            mem.insert(b.digest.clone(), &b.bytes);
        }
        files.insert(i.layer.digest.clone(), &i.layer);
    }
    mem.insert(index.digest.clone(), &index.bytes);
    let mut names: Vec<String> = mem.keys().chain(files.keys()).cloned().collect();
    names.sort();
    names.dedup();
    crate::atomic::write_with(out, 0o644, |f| {
        let mut tar = TarWriter::new(BufWriter::new(f));
        let dir = |tar: &mut TarWriter<_>, p: &str| {
            tar.write_header(&Header::new(p, Kind::Directory, 0o755, epoch), &[])
        };
        dir(&mut tar, "blobs/")?;
        dir(&mut tar, "blobs/sha256/")?;
        for d in &names {
            let hexd = d.trim_start_matches("sha256:");
            let path = format!("blobs/sha256/{hexd}");
            if let Some(bytes) = mem.get(d) {
                let mut h = Header::new(path, Kind::File, 0o644, epoch);
                h.size = bytes.len() as u64;
                tar.append(&h, &[], bytes)?;
            } else if let Some(l) = files.get(d) {
                let mut h = Header::new(path, Kind::File, 0o644, epoch);
                h.size = l.size;
                tar.write_header(&h, &[])?;
                let mut src = fs::File::open(&l.path)?;
                let copied = io::copy(&mut (&mut src).take(l.size), tar.get_mut())?;
                if copied != l.size {
                    return Err(io::Error::other(format!(
                        "{}: layer shorter than written",
                        l.path.display()
                    )));
                }
                tar.end_content(l.size)?;
            }
        }
        let mut h = Header::new("index.json", Kind::File, 0o644, epoch);
        h.size = top.len() as u64;
        tar.append(&h, &[], &top)?;
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        let mut h = Header::new("oci-layout", Kind::File, 0o644, epoch);
        h.size = layout.len() as u64;
        tar.append(&h, &[], layout)?;
        tar.end_of_archive()?;
        tar.into_inner().flush()
    })
    .with_context(|| format!("{}: cannot write the image", out.display()))?;
    Ok(Written {
        digest: index.digest,
    })
}
