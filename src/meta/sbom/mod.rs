//! SPDX 2.3 JSON SBOM for one built package, shaped like melange's: the
//! document describes the apk (purl `pkg:apk/<ns>/<name>@<ver>?arch=..&distro=..`),
//! every upstream source (`fetch`, `git-checkout`) is its own package, and the
//! apk is `GENERATED_FROM` each of them. The file lands inside the package at
//! [`sbom_path`].
//!
//! Output is a pure function of [`SbomInput`]: the creation time is
//! SOURCE_DATE_EPOCH, the document namespace is a hash of the document's own
//! content, ordering follows the input, and serialisation is serde's
//! field-ordered pretty printer. So two builds of the same recipe produce the
//! same bytes.
//!
//! Everything written must pass the SPDX project's validator (`pyspdxtools`).
//! Where a recipe value would not (a license outside the SPDX list, a URL the
//! validator's grammar rejects, a malformed CPE or checksum), the value is
//! normalised to something valid and [`warnings`] says what was changed, so a
//! linter can surface it. This module knows nothing of recipes, files or
//! processes.
//!
//! This file builds the document; `license` turns recipe licences into
//! SPDX expressions (the `spdx` crate's list and parser), and `purl` holds
//! package URLs and the two percent-encoding sets the SBOMs use.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::LazyLock;

mod license;
pub(crate) mod model;
pub(crate) mod purl;

pub use license::{is_known_license, normalize_license, License};
pub(crate) use model::{Checksum, CreationInfo, Document, ExternalRef, Package, Relationship};

const NOASSERTION: &str = "NOASSERTION";

/// One upstream source the package was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceRef {
    /// A `fetch` step: an archive downloaded from `url`, with the checksums
    /// the recipe pinned (lowercase hex).
    Fetch {
        url: String,
        sha256: Option<String>,
        sha512: Option<String>,
    },
    /// A `git-checkout` step at a resolved `commit`.
    Git {
        repository: String,
        commit: String,
        tag: Option<String>,
        branch: Option<String>,
    },
}

/// Everything the SBOM of one (sub)package says.
#[derive(Debug, Clone, Copy)]
pub struct SbomInput<'a> {
    /// The apk's name (the subpackage name for subpackages).
    pub name: &'a str,
    /// `<version>-r<release>`, exactly as in `.PKGINFO`.
    pub full_version: &'a str,
    pub arch: &'a str,
    /// The main package's name; equal to `name` for the main package.
    pub origin: &'a str,
    /// The recipe's license expression (all `copyright[].license` joined).
    pub license: &'a str,
    /// The recipe's copyright attestations; empty means NOASSERTION.
    pub copyright: &'a str,
    pub cpe: Option<&'a str>,
    /// The project homepage; empty when unknown.
    pub url: &'a str,
    /// The distribution namespace used in purls and as supplier (`local`, `wolfi`...).
    pub namespace: &'a str,
    pub sources: &'a [SourceRef],
    /// SOURCE_DATE_EPOCH in seconds: the document's creation time.
    pub epoch: u64,
    pub description: &'a str,
    /// The recipe's `environment.contents.packages` (dependency strings such
    /// as `build-base` or `go>=1.22`): recorded as build dependencies of the
    /// apk, since they are what the recipe was written to build with.
    pub build_environment: &'a [String],
    /// The recipe itself, as melange records its configuration file: set
    /// when its repository or licence is known (`--git-repo-url`,
    /// `--license`).
    pub recipe: Option<RecipeRef<'a>>,
}

/// The recipe file a package was built from and where it lives.
#[derive(Debug, Clone, Copy)]
pub struct RecipeRef<'a> {
    /// Its path inside its repository (`hello/hello.yaml`), or its file
    /// name when not in one.
    pub path: &'a str,
    /// The repository holding it (`https://github.com/org/packages`).
    pub repository: Option<&'a str>,
    /// The commit of that repository it was built at; empty when unknown.
    pub commit: &'a str,
    /// The licence of the recipe itself (not of what it builds): an SPDX
    /// expression.
    pub license: Option<&'a str>,
}

/// Where the SBOM lives inside the package, relative to its root:
/// `var/lib/db/sbom/<name>-<full_version>.spdx.json` (melange's location).
/// A `/` in either part is replaced so the path cannot leave that directory.
pub fn sbom_path(name: &str, full_version: &str) -> String {
    let clean = |s: &str| s.replace(['/', '\0'], "_");
    format!(
        "var/lib/db/sbom/{}-{}.spdx.json",
        clean(name),
        clean(full_version)
    )
}

/// The SBOM document as pretty-printed JSON with a trailing newline.
pub fn render(input: &SbomInput) -> Vec<u8> {
    build(input).0
}

/// What [`render`] had to change to keep the document valid, one sentence
/// each (empty when the input was already clean). Meant for `lint`.
pub fn warnings(input: &SbomInput) -> Vec<String> {
    build(input).1
}

/// Seconds since the Unix epoch as an RFC 3339 UTC timestamp
/// (`1970-01-01T00:00:00Z`). Times past year 9999 are clamped to its last
/// second, since RFC 3339 has only four year digits.
pub fn rfc3339(epoch: u64) -> String {
    const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = epoch.min(MAX);
    let (days, secs) = (t / 86_400, t % 86_400);
    // Civil-from-days (proleptic Gregorian), counting eras of 400 years from
    // 0000-03-01 so that the leap day falls at the end of each year.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Builds the document and returns its bytes plus the normalisation notes.
fn build(input: &SbomInput) -> (Vec<u8>, Vec<String>) {
    let mut warn = Vec::new();
    let mut ids = IdAllocator::default();

    let license = normalize_license(input.license);
    for note in &license.notes {
        warn.push(format!("license: {note}"));
    }

    let apk_id = ids.claim(&format!(
        "SPDXRef-Package-{}-{}",
        input.name, input.full_version
    ));
    let mut packages = vec![apk_package(input, &apk_id, &license.expression, &mut warn)];
    let mut relationships = vec![Relationship {
        element: "SPDXRef-DOCUMENT".into(),
        kind: "DESCRIBES",
        related: apk_id.clone(),
    }];
    for (index, source) in input.sources.iter().enumerate() {
        let pkg = source_package(input, source, index, &mut ids, &mut warn);
        relationships.push(Relationship {
            element: apk_id.clone(),
            kind: "GENERATED_FROM",
            related: pkg.spdx_id.clone(),
        });
        packages.push(pkg);
    }

    if let Some(recipe) = &input.recipe {
        let pkg = recipe_package(input, recipe, &mut ids, &mut warn);
        relationships.push(Relationship {
            element: apk_id.clone(),
            kind: "DESCRIBED_BY",
            related: pkg.spdx_id.clone(),
        });
        packages.push(pkg);
    }

    for dep in input.build_environment {
        let pkg = build_env_package(input, dep, &mut ids);
        relationships.push(Relationship {
            element: pkg.spdx_id.clone(),
            kind: "BUILD_DEPENDENCY_OF",
            related: apk_id.clone(),
        });
        packages.push(pkg);
    }

    let mut doc = Document {
        spdx_id: "SPDXRef-DOCUMENT",
        name: format!("apk-{}-{}", input.name, input.full_version),
        spdx_version: "SPDX-2.3",
        creation_info: CreationInfo {
            created: rfc3339(input.epoch),
            creators: vec![crate::build_info::spdx_creator()],
        },
        data_license: "CC0-1.0",
        document_namespace: String::new(),
        document_describes: vec![apk_id],
        packages,
        relationships,
        extracted: license.extracted,
    };
    // The namespace must be unique per distinct document and stable per
    // identical one: hash everything else the document says.
    let digest = Sha256::digest(to_json(&doc));
    doc.document_namespace = format!(
        "https://spdx.org/spdxdocs/pkgbuild/{}-{}-{}-{}",
        purl::uri_segment(input.name),
        purl::uri_segment(input.full_version),
        purl::uri_segment(input.arch),
        &hex::encode(digest)[..32]
    );
    (to_json(&doc), warn)
}

fn to_json(doc: &Document) -> Vec<u8> {
    // Serialising plain structs of strings cannot fail.
    let mut out = serde_json::to_vec_pretty(doc).unwrap_or_default();
    out.push(b'\n');
    out
}

fn apk_package(input: &SbomInput, id: &str, license: &str, warn: &mut Vec<String>) -> Package {
    let supplier = organization(input.namespace);
    let mut external_refs = vec![ExternalRef {
        category: "PACKAGE-MANAGER",
        locator: apk_purl(input),
        kind: "purl",
    }];
    if let Some(cpe) = input.cpe.map(str::trim).filter(|c| !c.is_empty()) {
        if CPE23.is_match(cpe) {
            external_refs.push(ExternalRef {
                category: "SECURITY",
                locator: cpe.to_string(),
                kind: "cpe23Type",
            });
        } else if CPE22.is_match(cpe) {
            external_refs.push(ExternalRef {
                category: "SECURITY",
                locator: cpe.to_string(),
                kind: "cpe22Type",
            });
        } else {
            warn.push(format!(
                "cpe: {cpe:?} is neither a CPE 2.3 formatted string nor a CPE 2.2 URI; left out"
            ));
        }
    }
    let homepage = match input.url.trim() {
        "" => None,
        url if is_spdx_url(url) => Some(url.to_string()),
        url => {
            warn.push(format!(
                "url: {url:?} is not a URL the SPDX validator accepts; homepage left out"
            ));
            None
        }
    };
    let source_info = (input.origin != input.name && !input.origin.is_empty())
        .then(|| format!("subpackage of {}", input.origin));
    Package {
        spdx_id: id.to_string(),
        name: input.name.to_string(),
        version_info: input.full_version.to_string(),
        files_analyzed: false,
        license_concluded: NOASSERTION,
        license_declared: license.to_string(),
        description: Some(input.description.trim())
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        download_location: NOASSERTION.into(),
        homepage,
        source_info,
        originator: Some(supplier.clone()),
        supplier,
        copyright_text: Some(match input.copyright.trim() {
            "" => NOASSERTION.to_string(),
            text => text.to_string(),
        }),
        checksums: Vec::new(),
        external_refs,
        purpose: None,
    }
}

fn source_package(
    input: &SbomInput,
    source: &SourceRef,
    index: usize,
    ids: &mut IdAllocator,
    warn: &mut Vec<String>,
) -> Package {
    let upstream_version = upstream_version(input.full_version);
    let (id, name, version, location, source_info, supplier, checksums, purl);
    match source {
        SourceRef::Fetch {
            url,
            sha256,
            sha512,
        } => {
            let mut sums = Vec::new();
            let mut qualifiers = Vec::new();
            for (algorithm, value, len) in [("SHA256", sha256, 64), ("SHA512", sha512, 128)] {
                let Some(raw) = value else { continue };
                let value = raw.trim().to_ascii_lowercase();
                if value.len() == len && value.bytes().all(|b| b.is_ascii_hexdigit()) {
                    qualifiers.push(format!("{}:{value}", algorithm.to_ascii_lowercase()));
                    sums.push(Checksum { algorithm, value });
                } else {
                    warn.push(format!(
                        "source {index}: {algorithm} {raw:?} is not {len} hex digits; left out"
                    ));
                }
            }
            let mut q = BTreeMap::new();
            if !qualifiers.is_empty() {
                // purl-spec: `checksum` is a comma-separated list of algo:hex.
                q.insert("checksum", qualifiers.join(","));
            }
            q.insert("download_url", url.clone());
            id = format!(
                "SPDXRef-Package-{}-{upstream_version}-{index}",
                input.origin
            );
            name = input.origin.to_string();
            version = upstream_version.to_string();
            purl = purl::make("generic", None, input.origin, &version, &q);
            (location, source_info) = download_location(url, url, index, warn);
            supplier = NOASSERTION.to_string();
            checksums = sums;
        }
        SourceRef::Git {
            repository,
            commit,
            tag,
            branch,
        } => {
            let tag = tag.as_deref().filter(|t| !t.is_empty());
            let branch = branch.as_deref().filter(|b| !b.is_empty());
            let repo = parse_repo(repository);
            // melange names the version by tag when there is one; the commit
            // is always in the download location.
            version = tag.unwrap_or(commit).to_string();
            name = repo.name.clone();
            let mut parts = vec![repository
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .to_string()];
            parts.extend(branch.map(str::to_string));
            parts.extend(tag.map(str::to_string));
            if !commit.is_empty() {
                parts.push(commit.clone());
            }
            parts.push(index.to_string());
            id = format!("SPDXRef-Package-{}", parts.join("-"));
            // SPDX's VCS download location form, <vcs>+<url>@<revision>,
            // which is also what purl-spec wants in `vcs_url`.
            let mut vcs_location = if repository.starts_with("git+") {
                repository.clone()
            } else {
                format!("git+{repository}")
            };
            if !commit.is_empty() {
                vcs_location = format!("{vcs_location}@{commit}");
            }
            purl = match repo.forge {
                Some(forge) => {
                    purl::make(forge, Some(&repo.owner), &name, &version, &BTreeMap::new())
                }
                None => {
                    let q = BTreeMap::from([("vcs_url", vcs_location.clone())]);
                    purl::make("generic", None, &name, &version, &q)
                }
            };
            (location, source_info) = download_location(&vcs_location, repository, index, warn);
            supplier = match repo.forge {
                Some(_) => organization(&repo.owner),
                None => NOASSERTION.to_string(),
            };
            checksums = Vec::new();
        }
    }
    Package {
        spdx_id: ids.claim(&id),
        name,
        version_info: version,
        files_analyzed: false,
        license_concluded: NOASSERTION,
        // What upstream itself declares is not known to us; the recipe's
        // license describes the built apk.
        license_declared: NOASSERTION.to_string(),
        description: None,
        download_location: location,
        homepage: None,
        source_info,
        originator: Some(supplier.clone()),
        supplier,
        copyright_text: None,
        checksums,
        external_refs: vec![ExternalRef {
            category: "PACKAGE-MANAGER",
            locator: purl,
            kind: "purl",
        }],
        purpose: Some("SOURCE"),
    }
}

/// The recipe as a package of its own: named by its path, versioned by the
/// commit it was built at, downloadable from its repository at that commit,
/// under its own licence; the apk is DESCRIBED_BY it.
fn recipe_package(
    input: &SbomInput,
    recipe: &RecipeRef,
    ids: &mut IdAllocator,
    warn: &mut Vec<String>,
) -> Package {
    let commit = recipe.commit.trim();
    let path = recipe.path.trim_start_matches('/');
    let subpath: Vec<String> = path.split('/').map(purl::escape).collect();
    let (location, source_info, supplier, purl) = match recipe.repository {
        Some(url) => {
            let repo = parse_repo(url);
            let mut vcs = if url.starts_with("git+") {
                url.to_string()
            } else {
                format!("git+{url}")
            };
            if !commit.is_empty() {
                vcs = format!("{vcs}@{commit}");
            }
            let (location, info) = if is_spdx_download_location(&vcs) {
                (format!("{vcs}#{path}"), None)
            } else {
                warn.push(format!(
                    "recipe repository {url:?} is not a download location the SPDX validator accepts; recorded as NOASSERTION with the URL in sourceInfo"
                ));
                (NOASSERTION.to_string(), Some(format!("recipe from {url}")))
            };
            let purl = match repo.forge {
                Some(forge) => purl::make(
                    forge,
                    Some(&repo.owner),
                    &repo.name,
                    commit,
                    &BTreeMap::new(),
                ),
                None => purl::make(
                    "generic",
                    None,
                    &repo.name,
                    commit,
                    &BTreeMap::from([("vcs_url", vcs.clone())]),
                ),
            };
            let supplier = match repo.forge {
                Some(_) => organization(&repo.owner),
                None => organization(input.namespace),
            };
            (location, info, supplier, purl)
        }
        None => (
            NOASSERTION.to_string(),
            None,
            organization(input.namespace),
            purl::make("generic", None, path, commit, &BTreeMap::new()),
        ),
    };
    let purl = format!("{purl}#{}", subpath.join("/"));
    let license = recipe
        .license
        .map(|l| normalize_license(l).expression)
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| NOASSERTION.to_string());
    Package {
        spdx_id: ids.claim(&format!("SPDXRef-Package-{path}")),
        name: path.to_string(),
        version_info: commit.to_string(),
        files_analyzed: false,
        license_concluded: NOASSERTION,
        license_declared: license,
        description: Some("the recipe this package was built from".to_string()),
        download_location: location,
        homepage: None,
        source_info,
        originator: Some(supplier.clone()),
        supplier,
        copyright_text: None,
        checksums: Vec::new(),
        external_refs: vec![ExternalRef {
            category: "PACKAGE-MANAGER",
            locator: purl,
            kind: "purl",
        }],
        purpose: Some("SOURCE"),
    }
}

/// `location` if the validator accepts it, else NOASSERTION with the
/// original kept as free-text `sourceInfo` so nothing is lost.
fn download_location(
    location: &str,
    original: &str,
    index: usize,
    warn: &mut Vec<String>,
) -> (String, Option<String>) {
    if is_spdx_download_location(location) {
        (location.to_string(), None)
    } else {
        warn.push(format!(
            "source {index}: {original:?} is not a download location the SPDX validator accepts \
             (it wants a public host name); recorded as NOASSERTION with the URL in sourceInfo"
        ));
        (
            NOASSERTION.to_string(),
            Some(format!("retrieved from {original}")),
        )
    }
}

/// `1.2.3-r4` → `1.2.3`: the upstream version melange's `fetch` uses.
fn upstream_version(full_version: &str) -> &str {
    match full_version.rsplit_once("-r") {
        Some((v, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => full_version,
    }
}

struct Repo {
    /// `github`/`gitlab` purl type when hosted there.
    forge: Option<&'static str>,
    owner: String,
    name: String,
}

fn parse_repo(repository: &str) -> Repo {
    let rest = repository
        .split_once("://")
        .map_or(repository, |(_, rest)| rest);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.rsplit('@').next().unwrap_or(host).to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let last = path.rsplit('/').next().unwrap_or(path);
    let name = if last.is_empty() { "source" } else { last };
    let forge = match host.split(':').next() {
        Some("github.com") => Some("github"),
        Some("gitlab.com") => Some("gitlab"),
        _ => None,
    };
    match (forge, path.split_once('/')) {
        (Some(forge), Some((owner, _))) if !owner.is_empty() => Repo {
            forge: Some(forge),
            owner: owner.to_string(),
            name: name.to_string(),
        },
        _ => Repo {
            forge: None,
            owner: String::new(),
            name: name.to_string(),
        },
    }
}

/// A package of the build environment, known only by the dependency string
/// the recipe gave (`name`, or `name<op>version`).
fn build_env_package(input: &SbomInput, dep: &str, ids: &mut IdAllocator) -> Package {
    let dep = dep.trim();
    let split = dep.find(['<', '>', '=', '~']).unwrap_or(dep.len());
    let name = dep[..split].to_string();
    let constraint = dep[split..]
        .trim_start_matches(['<', '>', '=', '~'])
        .to_string();
    let ns = Some(input.namespace).filter(|n| !n.is_empty());
    let mut q = BTreeMap::new();
    if !input.arch.is_empty() {
        q.insert("arch", input.arch.to_string());
    }
    Package {
        spdx_id: ids.claim(&format!("SPDXRef-BuildEnv-{name}")),
        name: name.clone(),
        // Only an exact pin names the version; a range says nothing certain.
        version_info: if dep[split..].starts_with('=') {
            constraint.clone()
        } else {
            String::new()
        },
        files_analyzed: false,
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.to_string(),
        description: None,
        download_location: NOASSERTION.to_string(),
        homepage: None,
        source_info: Some(format!("build environment package `{dep}`")),
        originator: Some(NOASSERTION.to_string()),
        supplier: NOASSERTION.to_string(),
        copyright_text: None,
        checksums: Vec::new(),
        external_refs: vec![ExternalRef {
            category: "PACKAGE-MANAGER",
            locator: purl::make("apk", ns, &name, "", &q),
            kind: "purl",
        }],
        purpose: Some("APPLICATION"),
    }
}

fn apk_purl(input: &SbomInput) -> String {
    let mut q = BTreeMap::new();
    if !input.arch.is_empty() {
        q.insert("arch", input.arch.to_string());
    }
    if !input.namespace.is_empty() {
        q.insert("distro", input.namespace.to_string());
    }
    let ns = Some(input.namespace).filter(|n| !n.is_empty());
    purl::make("apk", ns, input.name, input.full_version, &q)
}

/// `Organization: Wolfi` from `wolfi` (melange title-cases its namespace).
fn organization(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        return NOASSERTION.to_string();
    }
    let mut chars = name.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>());
    format!(
        "Organization: {}{}",
        first.unwrap_or_default(),
        chars.as_str()
    )
}

/// Hands out SPDX identifiers: invalid characters are replaced as melange
/// does (`:` and `/` become `-`, anything else outside `[A-Za-z0-9.-]`
/// becomes `C<codepoint>`), and a repeat gets a numeric suffix.
#[derive(Default)]
struct IdAllocator {
    used: HashSet<String>,
}

impl IdAllocator {
    fn claim(&mut self, raw: &str) -> String {
        let base = spdx_id(raw);
        let mut id = base.clone();
        let mut n = 1;
        while !self.used.insert(id.clone()) {
            n += 1;
            id = format!("{base}-{n}");
        }
        id
    }
}

/// Makes `raw` a valid SPDX element id (`SPDXRef-[A-Za-z0-9.-]+`).
pub fn spdx_id(raw: &str) -> String {
    let body = raw.strip_prefix("SPDXRef-").unwrap_or(raw);
    let mut out = String::from("SPDXRef-");
    for c in body.chars() {
        match c {
            ':' | '/' => out.push('-'),
            c if c.is_ascii_alphanumeric() || c == '-' || c == '.' => out.push(c),
            c => {
                let _ = write!(out, "C{}", c as u32);
            }
        }
    }
    if out.len() == "SPDXRef-".len() {
        out.push_str("unnamed");
    }
    out
}

// ---------------------------------------------------------------------------
// Validator-compatible shapes. The SPDX validator checks URLs and CPEs with
// regular expressions; these say the same things so we never emit a value it
// would reject (we may be stricter, never looser).

/// A URL with a scheme and a public DNS host (the validator wants a
/// letters-only top-level label, so IP literals and `localhost` fail).
static URL: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(
        r"(?i)^(?:https?|ssh|git|svn|sftp|ftp)://(?:[\w\-.!~*'()%;:&=+$,]+@)?[a-z0-9]+(?:[-.][a-z0-9]+)*\.[a-z]{2,}(?::[0-9]{1,5})?(?:/.*)?$",
    )
    .expect("static regex")
});

/// `git+git@host:path` (scp-like) is the one non-URL git form SPDX allows.
static SCP_GIT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"(?i)^git\+git@[a-z0-9.-]+:[a-z0-9/\\.@-]+$").expect("static regex")
});

static CPE23: LazyLock<regex::Regex> = LazyLock::new(|| {
    // One attribute: a quoted-or-plain run with optional wildcards, or `*`/`-`.
    let attr = r##"(?:(?:\?*|\*?)(?:[a-zA-Z0-9._-]|\\[\\*?!"#$%&'()+,/:;<=>@\[\]^`{|}~])+(?:\?*|\*?)|[*-])"##;
    let lang = r"(?:[a-zA-Z]{2,3}(?:-(?:[a-zA-Z]{2}|[0-9]{3}))?|[*-])";
    regex::Regex::new(&format!(
        r"^cpe:2\.3:[aho*-](?::{attr}){{5}}:{lang}(?::{attr}){{4}}$"
    ))
    .expect("static regex")
});

static CPE22: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[cC][pP][eE]:/[AHOaho]?(?::[A-Za-z0-9._\-~%]*){0,6}$")
        .expect("static regex")
});

fn is_spdx_url(s: &str) -> bool {
    URL.is_match(s)
}

fn is_spdx_download_location(s: &str) -> bool {
    let vcs_stripped = ["git+", "hg+", "svn+", "bzr+"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    is_spdx_url(vcs_stripped) || SCP_GIT.is_match(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(951_868_799), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn rfc3339_matches_a_day_by_day_walk() {
        // Independent check: walk the calendar one day at a time.
        let (mut y, mut m, mut d) = (1970i64, 1i64, 1i64);
        for day in 0..(366 * 130u64) {
            assert_eq!(
                rfc3339(day * 86_400 + 3_661),
                format!("{y:04}-{m:02}-{d:02}T01:01:01Z")
            );
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn spdx_ids_only_use_allowed_characters() {
        assert_eq!(
            spdx_id("SPDXRef-Package-g++_x-1.0"),
            "SPDXRef-Package-gC43C43C95x-1.0"
        );
        assert_eq!(spdx_id("a:b/c"), "SPDXRef-a-b-c");
        assert_eq!(spdx_id(""), "SPDXRef-unnamed");
    }

    #[test]
    fn upstream_version_strips_the_release() {
        assert_eq!(upstream_version("1.2.3-r4"), "1.2.3");
        assert_eq!(upstream_version("1.2.3"), "1.2.3");
        assert_eq!(upstream_version("1.2-rc1-r0"), "1.2-rc1");
    }

    #[test]
    fn validator_shapes() {
        assert!(is_spdx_download_location(
            "https://ftp.gnu.org/gnu/x.tar.gz"
        ));
        assert!(is_spdx_download_location(
            "git+https://github.com/a/b@0123abc"
        ));
        assert!(is_spdx_download_location("git+git@github.com:a/b.git"));
        assert!(!is_spdx_download_location("http://127.0.0.1:8080/x.tar.gz"));
        assert!(!is_spdx_download_location("file:///tmp/x"));
        assert!(CPE23.is_match("cpe:2.3:a:gnu:hello:2.12:*:*:*:*:*:*:*"));
        assert!(!CPE23.is_match("cpe:2.3:a:gnu:hello"));
        assert!(CPE22.is_match("cpe:/a:gnu:hello:2.12"));
    }

    #[test]
    fn sbom_path_stays_in_its_directory() {
        assert_eq!(
            sbom_path("foo", "1.0-r0"),
            "var/lib/db/sbom/foo-1.0-r0.spdx.json"
        );
        assert_eq!(
            sbom_path("../x", "1/2"),
            "var/lib/db/sbom/.._x-1_2.spdx.json"
        );
    }
}
