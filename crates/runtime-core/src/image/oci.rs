//! The image documents a registry serves, and choosing the manifest for this machine.
//!
//! OCI image manifests and Docker schema 2 manifests have the same shape
//! ([`ImageManifest`]), as do OCI image indexes and Docker manifest lists ([`ImageIndex`]);
//! the `mediaType` tells them apart. Docker schema 1 manifests are refused, as containerd
//! 2 does. Field names follow the OCI image spec (`image-spec/specs-go/v1`).
//!
//! Manifests, indexes and configs are read whole into memory to be parsed, so each has a
//! size cap ([`Capped`]) checked before and while it is read ([`read_at_most`]): a hostile
//! registry or image layout cannot make the runtime allocate more.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::image::digest::Digest;

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// `application/vnd.docker.distribution.manifest.v2+json`
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// `application/vnd.docker.distribution.manifest.list.v2+json`
pub const MEDIA_TYPE_DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 (signed) manifests, which are not supported.
pub const MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 (unsigned) manifests, which are not supported.
pub const MEDIA_TYPE_DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// `application/vnd.oci.image.config.v1+json`
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// `application/vnd.docker.container.image.v1+json`
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// An uncompressed OCI layer.
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
/// A gzip-compressed OCI layer.
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// A zstd-compressed OCI layer.
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// An uncompressed non-distributable OCI layer (deprecated by the spec, still served).
pub const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
/// A gzip-compressed non-distributable OCI layer.
pub const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
/// A zstd-compressed non-distributable OCI layer.
pub const MEDIA_TYPE_OCI_LAYER_NONDISTRIBUTABLE_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// A Docker layer (always gzip-compressed).
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A Docker foreign layer (Windows base layers).
pub const MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// The media types the registry is asked for when resolving a reference, most preferred
/// first (the `Accept` header containerd sends).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_DOCKER_MANIFEST_LIST,
    MEDIA_TYPE_OCI_MANIFEST,
    MEDIA_TYPE_DOCKER_MANIFEST,
];

/// The largest manifest or index accepted: containerd's `MaxManifestSize`, whose value
/// (`4 * 1048 * 1048`, a little over 4 MiB) is kept as it is so that any manifest
/// containerd pulls, this runtime pulls. The manifest of an image with a hundred layers is
/// some 30 KiB.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1048 * 1048;

/// The largest image config accepted: 4 MiB, the cap CRI-O and Podman read configs under
/// (containers/image's `MaxConfigBodySize`). A config holds the environment, the
/// entrypoint and the history; real ones are a few KiB.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// The documents read whole into memory to be parsed, each under its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capped {
    /// An image manifest or index: at most [`MAX_MANIFEST_SIZE`] bytes.
    Manifest,
    /// An image config: at most [`MAX_CONFIG_SIZE`] bytes.
    Config,
}

impl Capped {
    /// The most bytes such a document may have.
    pub const fn limit(self) -> u64 {
        match self {
            Self::Manifest => MAX_MANIFEST_SIZE,
            Self::Config => MAX_CONFIG_SIZE,
        }
    }

    /// Refuses document `name` when its announced `size` is over the cap, before any of it
    /// is read.
    pub fn check(self, name: impl fmt::Display, size: u64) -> Result<(), TooLarge> {
        if size > self.limit() {
            return Err(self.too_large(name, Some(size)));
        }
        Ok(())
    }

    /// Reads document `name` from `reader` to its end, or refuses it as soon as more than
    /// the cap has arrived.
    pub async fn read(
        self,
        name: impl fmt::Display,
        reader: impl AsyncRead + Unpin,
    ) -> Result<Vec<u8>, CappedReadError> {
        read_at_most(reader, self.limit())
            .await?
            .ok_or_else(|| self.too_large(name, None).into())
    }

    /// The error for document `name` over the cap (of `size` bytes, if announced).
    pub fn too_large(self, name: impl fmt::Display, size: Option<u64>) -> TooLarge {
        TooLarge {
            kind: self,
            name: name.to_string(),
            size,
        }
    }
}

impl fmt::Display for Capped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Manifest => "manifest",
            Self::Config => "image config",
        })
    }
}

/// A manifest, index or config over its cap: refused before it is read whole or parsed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{kind} {name} is larger than the limit of {} bytes{}",
    kind.limit(),
    size.map(|size| format!(" (it has {size})")).unwrap_or_default()
)]
pub struct TooLarge {
    /// What the document is.
    pub kind: Capped,
    /// Which it is: its digest, URL or file.
    pub name: String,
    /// Its size, when it was announced (descriptor, `Content-Length`, file size).
    pub size: Option<u64>,
}

/// Why [`Capped::read`] got no document.
#[derive(Debug, thiserror::Error)]
pub enum CappedReadError {
    /// More than the cap arrived.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads `reader` to its end into memory; `None` as soon as it has given more than
/// `limit` bytes (the rest is never read, so an endless stream ends there).
pub async fn read_at_most(reader: impl AsyncRead + Unpin, limit: u64) -> io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::new();
    reader.take(limit.saturating_add(1)).read_to_end(&mut bytes).await?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// A reference to content: its media type, digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size of the referenced content in bytes.
    pub size: u64,
    /// Other places the content may be fetched from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub annotations: BTreeMap<String, String>,
    /// The platform of the referenced manifest, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The type of an artifact, when the descriptor points to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// The platform an image runs on, in Go's naming (`linux`, `amd64`, `arm64`, `arm` + `v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`...
    pub architecture: String,
    /// Operating system: `linux`, `windows`...
    pub os: String,
    /// Operating system version (Windows).
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Required operating system features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_default"
    )]
    pub os_features: Vec<String>,
    /// CPU variant: `v7` for arm, `v8` for arm64...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest or a Docker schema 2 manifest: a config and layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's media type (required for Docker, optional for OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of an artifact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image configuration blob.
    pub config: Descriptor,
    /// The layers, base first.
    #[serde(default, deserialize_with = "null_default")]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (signatures, attestations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index or a Docker manifest list: one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// The index's media type (required for Docker, optional for OCI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The type of an artifact index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests.
    #[serde(default, deserialize_with = "null_default")]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest, an index or a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// It is larger than its cap.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// The media type is not a manifest or index type this runtime handles.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// A Docker schema 1 manifest: deprecated and unsupported.
    #[error("docker schema 1 manifests are not supported; push the image again with a current client")]
    Schema1,
    /// The bytes are not valid JSON of the expected shape.
    #[error("invalid {media_type} document: {source}")]
    Json {
        /// The media type the bytes were parsed as.
        media_type: String,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// A manifest or an index, as served for a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestDocument {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An image index (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
}

/// Whether `media_type` is one of the two manifest types.
pub fn is_manifest_media_type(media_type: &str) -> bool {
    matches!(media_type, MEDIA_TYPE_OCI_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST)
}

/// Whether `media_type` is one of the two index types.
pub fn is_index_media_type(media_type: &str) -> bool {
    matches!(media_type, MEDIA_TYPE_OCI_INDEX | MEDIA_TYPE_DOCKER_MANIFEST_LIST)
}

/// The media type of manifest `bytes` when the server's `Content-Type` is missing or
/// generic: the document's own `mediaType`, else guessed from its fields as containerd
/// does (`manifests` makes an index, `config` a manifest, `fsLayers` schema 1).
pub fn detect_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        config: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        fs_layers: Option<serde::de::IgnoredAny>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    if let Some(media_type) = probe.media_type.filter(|m| !m.is_empty()) {
        return Some(media_type);
    }
    if probe.manifests.is_some() {
        Some(MEDIA_TYPE_OCI_INDEX.to_string())
    } else if probe.config.is_some() {
        Some(MEDIA_TYPE_OCI_MANIFEST.to_string())
    } else if probe.fs_layers.is_some() {
        Some(MEDIA_TYPE_DOCKER_SCHEMA1.to_string())
    } else {
        None
    }
}

impl ManifestDocument {
    /// Parses `bytes` served with `media_type`.
    pub fn parse(media_type: &str, bytes: &[u8]) -> Result<Self, ManifestError> {
        let json_err = |source| ManifestError::Json {
            media_type: media_type.to_string(),
            source,
        };
        if is_manifest_media_type(media_type) {
            serde_json::from_slice(bytes)
                .map(|m| Self::Manifest(Box::new(m)))
                .map_err(json_err)
        } else if is_index_media_type(media_type) {
            serde_json::from_slice(bytes)
                .map(|i| Self::Index(Box::new(i)))
                .map_err(json_err)
        } else if matches!(media_type, MEDIA_TYPE_DOCKER_SCHEMA1 | MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED) {
            Err(ManifestError::Schema1)
        } else {
            Err(ManifestError::UnsupportedMediaType(media_type.to_string()))
        }
    }
}

/// An image configuration (OCI `application/vnd.oci.image.config.v1+json`, which Docker's
/// `application/vnd.docker.container.image.v1+json` is a superset of).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    /// When the image was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who created the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture, Go naming.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// Operating system version.
    #[serde(rename = "os.version", default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The defaults for containers run from the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers' uncompressed digests.
    #[serde(default)]
    pub rootfs: RootFs,
    /// How each layer was made.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub history: Vec<History>,
}

/// The defaults an image gives containers (the `config` object of an image config).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Ports, as `port/proto` keys (`80/tcp`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty", with = "key_set")]
    pub exposed_ports: BTreeSet<String>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// The entrypoint; `None` when the image sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default arguments; `None` when the image sets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// Paths the image declares as volumes.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty", with = "key_set")]
    pub volumes: BTreeSet<String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Arbitrary metadata.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub labels: BTreeMap<String, String>,
    /// The signal that stops the container (`SIGTERM`, `15`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Whether `Cmd`/`Entrypoint` are already escaped (Windows only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
}

/// The layers' uncompressed digests, base first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default = "layers_type")]
    pub kind: String,
    /// The digests of the uncompressed layer tarballs.
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        Self {
            kind: layers_type(),
            diff_ids: Vec::new(),
        }
    }
}

fn layers_type() -> String {
    "layers".to_string()
}

/// How one layer was made.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// When (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made the layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// A comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Whether the step made no layer (then it has no entry in `diff_ids`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// `null` (which Docker writes for empty lists and maps) as the default value.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `{"80/tcp": {}, ...}` as a set of its keys (`ExposedPorts`, `Volumes`).
mod key_set {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::de::IgnoredAny;
    use serde::ser::SerializeMap;

    use super::*;

    /// The empty object each key maps to.
    #[derive(Serialize)]
    struct Empty {}

    pub(super) fn serialize<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(set.len()))?;
        for key in set {
            map.serialize_entry(key, &Empty {})?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
        let map = Option::<BTreeMap<String, IgnoredAny>>::deserialize(d)?;
        Ok(map.map(|m| m.into_keys().collect()).unwrap_or_default())
    }
}

/// Go's `GOARCH` name for a Rust `target_arch`.
fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if cfg!(target_endian = "little") => "mips64le",
        "mips" if cfg!(target_endian = "little") => "mipsle",
        other => other, // arm, s390x, riscv64, mips64, mips
    }
}

/// The platform of this machine: `linux` and the architecture this binary was built for,
/// with containerd's default variant (`v8` for arm64, `v7` for arm).
pub fn host_platform() -> Platform {
    let architecture = go_arch(std::env::consts::ARCH).to_string();
    let variant = match architecture.as_str() {
        "arm64" => Some("v8".to_string()),
        "arm" => Some("v7".to_string()),
        _ => None,
    };
    Platform {
        architecture,
        os: "linux".to_string(),
        variant,
        ..Platform::default()
    }
}

/// Normalizes an architecture and variant the way containerd's `platforms.Normalize`
/// does: `x86_64` -> `amd64`, `aarch64` -> `arm64`, `armhf` -> `arm` `v7`, `arm64` `v8` ->
/// `arm64` without variant, and so on.
pub fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.filter(|v| !v.is_empty()).map(str::to_ascii_lowercase);
    let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
        ("i386", _) => ("386", None),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.filter(|v| *v != "v1")),
        ("aarch64" | "arm64", v) => ("arm64", v.filter(|v| !matches!(*v, "8" | "v8"))),
        ("armhf", _) => ("arm", Some("v7")),
        ("armel", _) => ("arm", Some("v6")),
        ("arm", None | Some("7")) => ("arm", Some("v7")),
        ("arm", Some(v @ ("5" | "6" | "8"))) => {
            return ("arm".to_string(), Some(format!("v{v}")));
        }
        (other, v) => (other, v),
    };
    (arch.to_string(), variant.map(str::to_string))
}

/// How well descriptor platform `candidate` suits `wanted` (both normalized): lower is
/// better, `None` means it cannot run. arm hosts run older arm variants, arm64 hosts run
/// 32-bit arm (containerd's `platforms.Only`).
fn platform_rank(wanted: &(String, String, Option<String>), candidate: &Platform) -> Option<u32> {
    let (os, arch, variant) = wanted;
    if !candidate.os.eq_ignore_ascii_case(os) {
        return None;
    }
    let (c_arch, c_variant) = normalize_arch(&candidate.architecture, candidate.variant.as_deref());
    let version = |v: &Option<String>| -> Option<u32> { v.as_deref()?.strip_prefix('v')?.parse().ok() };
    if &c_arch == arch {
        if &c_variant == variant {
            return Some(0);
        }
        return match (arch.as_str(), version(variant), version(&c_variant)) {
            // An arm v7 host runs v6 and v5 images, preferring the newest.
            ("arm", Some(want), Some(have)) if have < want => Some(want - have),
            // No variant asked for (amd64): any variant the image names is a guess.
            (_, None, _) => Some(50),
            _ => None,
        };
    }
    if arch == "arm64" && c_arch == "arm" {
        // 32-bit arm on a 64-bit arm host: v8, then v7, v6, v5.
        let have = version(&c_variant).unwrap_or(7);
        return (have <= 8).then(|| 100 + (8 - have));
    }
    None
}

/// The manifest of `index` for platform `os`/`arch`/`variant` (Go naming; normalized
/// first), or `None` when the index has none that runs there. The best match wins; among
/// equals, the first in the index. Manifests without a platform are taken only when none
/// has a matching one.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    os: &str,
    arch: &str,
    variant: Option<&str>,
) -> Option<&'a Descriptor> {
    let (arch, variant) = normalize_arch(arch, variant);
    let wanted = (os.to_ascii_lowercase(), arch, variant);
    let manifests = index
        .manifests
        .iter()
        .filter(|d| is_manifest_media_type(&d.media_type) || is_index_media_type(&d.media_type));
    let best = manifests
        .clone()
        .filter_map(|d| Some((platform_rank(&wanted, d.platform.as_ref()?)?, d)))
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, d)| d);
    best.or_else(|| manifests.clone().find(|d| d.platform.is_none()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn index_json() -> String {
        let entry = |digest: &str, arch: &str, variant: Option<&str>| {
            let variant = variant.map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
            format!(
                r#"{{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{digest}","size":1,
                   "platform":{{"architecture":"{arch}","os":"linux"{variant}}}}}"#
            )
        };
        let hex = |n: u8| format!("sha256:{}", format!("{n:x}").repeat(64));
        let manifests = [
            entry(&hex(1), "amd64", None),
            entry(&hex(2), "arm", Some("v5")),
            entry(&hex(3), "arm", Some("v6")),
            entry(&hex(4), "arm64", Some("v8")),
            entry(&hex(5), "386", None),
            entry(&hex(6), "ppc64le", None),
            // An attestation manifest, as buildkit pushes them.
            format!(
                r#"{{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{}","size":1,
                   "platform":{{"architecture":"unknown","os":"unknown"}}}}"#,
                hex(7)
            ),
        ];
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_TYPE_OCI_INDEX}","manifests":[{}]}}"#,
            manifests.join(",")
        )
    }

    #[test]
    fn platform_selection_picks_the_best_runnable_manifest() {
        let index: ImageIndex = serde_json::from_str(&index_json()).expect("index");
        #[rustfmt::skip]
        let cases = [
            ("amd64 exact", "linux", "amd64", None, Some('1')),
            ("x86_64 normalizes to amd64", "linux", "x86_64", None, Some('1')),
            ("arm64 with v8 variant", "linux", "arm64", Some("v8"), Some('4')),
            ("aarch64 without variant", "linux", "aarch64", None, Some('4')),
            ("arm v7 falls back to v6, the newest older variant", "linux", "arm", Some("v7"), Some('3')),
            ("armhf is arm v7", "linux", "armhf", None, Some('3')),
            ("arm v5 exact", "linux", "arm", Some("v5"), Some('2')),
            ("i386 is 386", "linux", "i386", None, Some('5')),
            ("no s390x manifest", "linux", "s390x", None, None),
            ("no windows manifest", "windows", "amd64", None, None),
            ("attestations are never chosen", "unknown", "amd64", None, None),
        ];
        for (desc, os, arch, variant, want) in cases {
            let got = select_platform(&index, os, arch, variant).map(|d| d.digest.hex().chars().next().expect("hex"));
            assert_eq!(got, want, "{desc}");
        }
    }

    #[test]
    fn arm64_hosts_fall_back_to_32_bit_arm() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST}","digest":"{D1}","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v6"}}}},
                {{"mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST}","digest":"{D2}","size":1,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}
            ]}}"#
        );
        let index: ImageIndex = serde_json::from_str(&json).expect("index");
        let got = select_platform(&index, "linux", "arm64", None).expect("a match");
        assert_eq!(got.digest.as_str(), D2);
    }

    #[test]
    fn manifests_without_platform_are_a_last_resort() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{D1}","size":1}},
                {{"mediaType":"{MEDIA_TYPE_OCI_MANIFEST}","digest":"{D2}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}}
            ]}}"#
        );
        let index: ImageIndex = serde_json::from_str(&json).expect("index");
        assert_eq!(
            select_platform(&index, "linux", "amd64", None).map(|d| d.digest.as_str()),
            Some(D2)
        );
        assert_eq!(
            select_platform(&index, "linux", "s390x", None).map(|d| d.digest.as_str()),
            Some(D1)
        );
    }

    #[test]
    fn host_platform_is_linux_in_go_naming() {
        let host = host_platform();
        assert_eq!(host.os, "linux");
        #[cfg(target_arch = "x86_64")]
        assert_eq!((host.architecture.as_str(), host.variant.as_deref()), ("amd64", None));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(
            (host.architecture.as_str(), host.variant.as_deref()),
            ("arm64", Some("v8"))
        );
    }

    #[test]
    fn normalization_table() {
        #[rustfmt::skip]
        let cases = [
            ("x86_64", None, "amd64", None),
            ("amd64", Some("v1"), "amd64", None),
            ("amd64", Some("v3"), "amd64", Some("v3")),
            ("aarch64", Some("8"), "arm64", None),
            ("arm64", Some("v8"), "arm64", None),
            ("armhf", None, "arm", Some("v7")),
            ("armel", None, "arm", Some("v6")),
            ("arm", None, "arm", Some("v7")),
            ("arm", Some("6"), "arm", Some("v6")),
            ("i386", None, "386", None),
            ("s390x", None, "s390x", None),
        ];
        for (arch, variant, want_arch, want_variant) in cases {
            let got = normalize_arch(arch, variant);
            assert_eq!(
                got,
                (want_arch.to_string(), want_variant.map(str::to_string)),
                "{arch} {variant:?}"
            );
        }
    }

    #[test]
    fn docker_schema2_manifest_parses() {
        let json = format!(
            r#"{{
              "schemaVersion": 2,
              "mediaType": "{MEDIA_TYPE_DOCKER_MANIFEST}",
              "config": {{"mediaType": "{MEDIA_TYPE_DOCKER_CONFIG}", "size": 1469, "digest": "{D1}"}},
              "layers": [{{"mediaType": "{MEDIA_TYPE_DOCKER_LAYER_GZIP}", "size": 2819, "digest": "{D2}"}}]
            }}"#
        );
        let doc = ManifestDocument::parse(MEDIA_TYPE_DOCKER_MANIFEST, json.as_bytes()).expect("parse");
        let ManifestDocument::Manifest(m) = doc else {
            panic!("not a manifest")
        };
        assert_eq!(m.config.size, 1469);
        assert_eq!(m.layers[0].digest.as_str(), D2);
        assert_eq!(m.layers[0].media_type, MEDIA_TYPE_DOCKER_LAYER_GZIP);
    }

    #[test]
    fn parse_dispatches_on_media_type() {
        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{MEDIA_TYPE_OCI_CONFIG}","digest":"{D1}","size":2}},"layers":null}}"#
        );
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        #[rustfmt::skip]
        let cases: [(&str, &str, &str, Result<&str, &str>); 6] = [
            ("oci manifest", MEDIA_TYPE_OCI_MANIFEST, &manifest, Ok("manifest")),
            ("oci index", MEDIA_TYPE_OCI_INDEX, index, Ok("index")),
            ("docker list", MEDIA_TYPE_DOCKER_MANIFEST_LIST, index, Ok("index")),
            ("schema 1", MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, "{}", Err("schema 1")),
            ("unknown type", "text/html", "{}", Err("unsupported manifest media type")),
            ("index bytes as manifest", MEDIA_TYPE_OCI_MANIFEST, index, Err("invalid application/vnd.oci.image.manifest.v1+json")),
        ];
        for (desc, media_type, bytes, want) in cases {
            let got = ManifestDocument::parse(media_type, bytes.as_bytes());
            match (got, want) {
                (Ok(ManifestDocument::Manifest(_)), Ok("manifest")) | (Ok(ManifestDocument::Index(_)), Ok("index")) => {
                }
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{desc}: {e}"),
                (got, want) => panic!("{desc}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn media_type_detection_without_content_type() {
        #[rustfmt::skip]
        let cases = [
            ("explicit mediaType", format!(r#"{{"mediaType":"{MEDIA_TYPE_DOCKER_MANIFEST}"}}"#), Some(MEDIA_TYPE_DOCKER_MANIFEST)),
            ("manifests field", r#"{"schemaVersion":2,"manifests":[]}"#.to_string(), Some(MEDIA_TYPE_OCI_INDEX)),
            ("config field", r#"{"schemaVersion":2,"config":{}}"#.to_string(), Some(MEDIA_TYPE_OCI_MANIFEST)),
            ("schema 1", r#"{"schemaVersion":1,"fsLayers":[]}"#.to_string(), Some(MEDIA_TYPE_DOCKER_SCHEMA1)),
            ("nothing known", r#"{"a":1}"#.to_string(), None),
            ("not json", "<html>".to_string(), None),
        ];
        for (desc, json, want) in cases {
            assert_eq!(detect_media_type(json.as_bytes()).as_deref(), want, "{desc}");
        }
    }

    #[test]
    fn image_config_reads_docker_nulls_and_round_trips() {
        let json = format!(
            r#"{{
              "architecture": "amd64",
              "os": "linux",
              "created": "2023-05-18T22:34:17.4Z",
              "config": {{
                "User": "65532:65532",
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": null,
                "Cmd": ["sh"],
                "WorkingDir": "/work",
                "ExposedPorts": {{"80/tcp": {{}}, "53/udp": {{}}}},
                "Volumes": {{"/data": {{}}}},
                "Labels": null,
                "StopSignal": "SIGQUIT",
                "OnBuild": null,
                "Image": "sha256:abc"
              }},
              "rootfs": {{"type": "layers", "diff_ids": ["{D1}", "{D2}"]}},
              "history": [
                {{"created": "2023-05-18T22:34:17Z", "created_by": "ADD file in /"}},
                {{"created_by": "CMD [\"sh\"]", "empty_layer": true}}
              ]
            }}"#
        );
        let config: ImageConfig = serde_json::from_str(&json).expect("config");
        let c = config.config.as_ref().expect("container config");
        assert_eq!(c.user.as_deref(), Some("65532:65532"));
        assert_eq!(c.entrypoint, None);
        assert_eq!(c.cmd, Some(vec!["sh".to_string()]));
        assert_eq!(c.working_dir.as_deref(), Some("/work"));
        assert_eq!(c.exposed_ports.iter().collect::<Vec<_>>(), ["53/udp", "80/tcp"]);
        assert_eq!(c.volumes.iter().collect::<Vec<_>>(), ["/data"]);
        assert!(c.labels.is_empty());
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(config.rootfs.diff_ids.len(), 2);
        assert!(config.history[1].empty_layer);

        let again: ImageConfig =
            serde_json::from_slice(&serde_json::to_vec(&config).expect("serialize")).expect("reparse");
        assert_eq!(again, config);
        let text = serde_json::to_string(&config).expect("serialize");
        assert!(text.contains(r#""ExposedPorts":{"53/udp":{},"80/tcp":{}}"#), "{text}");
    }

    #[test]
    fn minimal_oci_config_parses() {
        let config: ImageConfig =
            serde_json::from_str(r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#)
                .expect("config");
        assert_eq!(config.config, None);
        assert_eq!(config.architecture, "arm64");
    }

    #[test]
    fn caps_refuse_one_byte_over_and_name_the_document_and_the_limit() {
        for kind in [Capped::Manifest, Capped::Config] {
            let limit = kind.limit();
            assert!(kind.check(D1, limit).is_ok(), "{kind} at the cap");
            let err = kind.check(D1, limit + 1).expect_err("over the cap");
            assert_eq!((err.kind, err.size), (kind, Some(limit + 1)));
            assert_eq!(
                err.to_string(),
                format!(
                    "{kind} {D1} is larger than the limit of {limit} bytes (it has {})",
                    limit + 1
                )
            );
        }
        assert_eq!(MAX_MANIFEST_SIZE, 4_393_216, "containerd's value");
        assert_eq!(MAX_CONFIG_SIZE, 4_194_304);
    }

    #[tokio::test]
    async fn reading_stops_past_the_limit() {
        let ten = [7u8; 10];
        assert_eq!(read_at_most(&ten[..], 10).await.expect("read"), Some(ten.to_vec()));
        assert_eq!(read_at_most(&ten[..], 9).await.expect("read"), None);
        // An endless source ends at the limit.
        assert_eq!(read_at_most(tokio::io::repeat(0), 1 << 20).await.expect("read"), None);
        let err = Capped::Config
            .read("blob.json", tokio::io::repeat(b' '))
            .await
            .expect_err("endless");
        assert!(
            matches!(
                &err,
                CappedReadError::TooLarge(TooLarge {
                    kind: Capped::Config,
                    size: None,
                    ..
                })
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("image config blob.json is larger than the limit of 4194304 bytes"),
            "{err}"
        );
    }
}
