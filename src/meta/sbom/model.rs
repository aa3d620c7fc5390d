//! The SPDX 2.3 document model both SBOMs write (a package's and an
//! image's): field order is the order melange writes, and a field left
//! out of one kind of document is skipped when empty.

use serde::Serialize;

use super::license::ExtractedLicense;

#[derive(Serialize)]
pub(crate) struct Document {
    #[serde(rename = "SPDXID")]
    pub(crate) spdx_id: &'static str,
    pub(crate) name: String,
    #[serde(rename = "spdxVersion")]
    pub(crate) spdx_version: &'static str,
    #[serde(rename = "creationInfo")]
    pub(crate) creation_info: CreationInfo,
    #[serde(rename = "dataLicense")]
    pub(crate) data_license: &'static str,
    #[serde(rename = "documentNamespace")]
    pub(crate) document_namespace: String,
    #[serde(rename = "documentDescribes")]
    pub(crate) document_describes: Vec<String>,
    pub(crate) packages: Vec<Package>,
    pub(crate) relationships: Vec<Relationship>,
    #[serde(
        rename = "hasExtractedLicensingInfos",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) extracted: Vec<ExtractedLicense>,
}

#[derive(Serialize)]
pub(crate) struct CreationInfo {
    pub(crate) created: String,
    pub(crate) creators: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct Package {
    #[serde(rename = "SPDXID")]
    pub(crate) spdx_id: String,
    pub(crate) name: String,
    #[serde(rename = "versionInfo", skip_serializing_if = "String::is_empty")]
    pub(crate) version_info: String,
    #[serde(rename = "filesAnalyzed")]
    pub(crate) files_analyzed: bool,
    #[serde(rename = "licenseConcluded")]
    pub(crate) license_concluded: &'static str,
    #[serde(rename = "licenseDeclared")]
    pub(crate) license_declared: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    #[serde(rename = "downloadLocation")]
    pub(crate) download_location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) homepage: Option<String>,
    #[serde(rename = "sourceInfo", skip_serializing_if = "Option::is_none")]
    pub(crate) source_info: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) originator: Option<String>,
    pub(crate) supplier: String,
    #[serde(rename = "copyrightText", skip_serializing_if = "Option::is_none")]
    pub(crate) copyright_text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) checksums: Vec<Checksum>,
    #[serde(rename = "externalRefs", skip_serializing_if = "Vec::is_empty")]
    pub(crate) external_refs: Vec<ExternalRef>,
    #[serde(
        rename = "primaryPackagePurpose",
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) purpose: Option<&'static str>,
}

#[derive(Serialize)]
pub(crate) struct Checksum {
    pub(crate) algorithm: &'static str,
    #[serde(rename = "checksumValue")]
    pub(crate) value: String,
}

#[derive(Serialize)]
pub(crate) struct ExternalRef {
    #[serde(rename = "referenceCategory")]
    pub(crate) category: &'static str,
    #[serde(rename = "referenceLocator")]
    pub(crate) locator: String,
    #[serde(rename = "referenceType")]
    pub(crate) kind: &'static str,
}

#[derive(Serialize)]
pub(crate) struct Relationship {
    #[serde(rename = "spdxElementId")]
    pub(crate) element: String,
    #[serde(rename = "relationshipType")]
    pub(crate) kind: &'static str,
    #[serde(rename = "relatedSpdxElement")]
    pub(crate) related: String,
}
