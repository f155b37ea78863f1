//! The OCI and Docker JSON documents vzpkg reads and writes: descriptors,
//! manifests, indexes and image configs. Maps are `BTreeMap` and fields are
//! in a fixed order, so the same template serialises to the same bytes (and
//! manifest digest) on every host.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub mod media {
    pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
    pub const SPDX: &str = "application/spdx+json";
    /// Every manifest kind a pull accepts, for `Accept:`.
    pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex of a `sha256:` digest, if it is one.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: String, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            artifact_type: None,
            platform: None,
            annotations: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The runtime part of an image config (what `podman run` uses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "Env", default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What vzpkg records about a template in its image config, beside the
/// standard fields: enough to commit it with the same id and record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateConfig {
    pub format: u32,
    pub template_id: String,
    /// Store layer ids, bottom first, one per image layer.
    pub layers: Vec<String>,
    pub recipe: String,
    pub packages: Vec<crate::store::LockedPackage>,
    pub facts: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vzpkg: Option<TemplateConfig>,
}

/// The OCI architecture name of a package architecture (`amd64`, `x86_64`, ...).
pub fn oci_arch(package_arch: &str) -> Option<&'static str> {
    Some(match package_arch {
        "amd64" | "x86_64" => "amd64",
        "i386" | "i486" | "i586" | "i686" => "386",
        "arm64" | "aarch64" => "arm64",
        "armhf" | "armel" | "armv7hl" => "arm",
        "ppc64el" | "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => return None,
    })
}

/// This host's OCI architecture.
pub fn host_arch() -> &'static str {
    oci_arch(std::env::consts::ARCH).unwrap_or("amd64")
}

/// A manifest, index or list, told apart by media type or shape.
pub enum AnyManifest {
    Image(Box<Manifest>),
    Index(Index),
}

impl AnyManifest {
    pub fn parse(bytes: &[u8], media_type: Option<&str>) -> Result<AnyManifest, String> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let declared = v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .or(media_type)
            .unwrap_or("");
        if v.get("schemaVersion").and_then(|s| s.as_u64()) == Some(1) {
            return Err("it is a Docker schema 1 manifest, which is deprecated and not supported; push the image again with a current client".into());
        }
        let is_index = declared == media::INDEX
            || declared == media::DOCKER_LIST
            || (v.get("manifests").is_some() && v.get("config").is_none());
        if is_index {
            serde_json::from_value(v)
                .map(AnyManifest::Index)
                .map_err(|e| format!("not an image index: {e}"))
        } else {
            serde_json::from_value(v)
                .map(|m| AnyManifest::Image(Box::new(m)))
                .map_err(|e| format!("not an image manifest: {e}"))
        }
    }
}
