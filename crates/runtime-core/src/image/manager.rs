//! The image manager: pull, list, look up and remove images, and collect what no image
//! uses any more.
//!
//! It ties the pieces together: the [`RegistryClient`] fetches, the [`ContentStore`] keeps
//! verified blobs, [`Snapshots`] keeps unpacked layers, and the metadata [`Store`] keeps an
//! [`ImageRecord`] per image. A record is written only after everything it refers to is in
//! place, so a crash mid-pull leaves at worst unreferenced blobs for the next collection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use tokio::sync::{Mutex, RwLock};

use super::content::{ContentError, ContentStore, IngestError};
use super::digest::Digest;
use super::oci::{self, Capped, Descriptor, ImageConfig, ImageManifest, ManifestDocument, ManifestError};
use super::records::{self, ImageName, ImageRecord, LayerRecord};
use super::reference::{InvalidReference, Reference};
use super::registry::{Credentials, RegistryClient, RegistryError};
use super::snapshots::{SnapshotError, Snapshots};
use super::unpack::{Compression, unpack_layer};
use crate::store::{self, Store, StoreError};

/// How many layers of one image are fetched and unpacked at once.
const PARALLEL_LAYERS: usize = 4;

/// Errors of image operations.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image name is not a valid reference or id.
    #[error(transparent)]
    InvalidReference(#[from] InvalidReference),
    /// The registry could not serve the image.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A manifest, index or config is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The image config is not valid JSON of the expected shape.
    #[error("image config {digest}: {source}")]
    Config {
        /// The config's digest.
        digest: Digest,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The image is malformed in a way the documents alone show.
    #[error("image {reference}: {reason}")]
    Malformed {
        /// The image.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob could not be stored or failed verification.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A layer could not be unpacked.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IngestError<ImageError>> for ImageError {
    fn from(error: IngestError<ImageError>) -> Self {
        match error {
            IngestError::Source(e) => e,
            IngestError::Content(e) => e.into(),
        }
    }
}

/// The names an image is recorded under.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The tag reference, if the image was named by tag.
    pub(crate) tag: Option<String>,
    /// The digest reference of what was fetched or imported.
    pub(crate) repo_digest: String,
}

impl Names {
    /// The names of an image fetched as `reference`, whose top-level manifest or index is
    /// `digest`: its tag, unless the reference pinned a digest, and its repo digest.
    pub(crate) fn new(reference: &Reference, digest: &Digest) -> Self {
        let tag = if reference.digest.is_none() {
            reference.tagged()
        } else {
            None
        };
        Self {
            tag,
            repo_digest: reference.canonical(digest),
        }
    }
}

/// Where the blobs of an image come from: a registry for a pull, a local image layout for
/// an import.
pub(crate) trait BlobSource: Sync {
    /// The blob's bytes as they arrive.
    type Reader: tokio::io::AsyncRead + Unpin + Send;

    /// Starts reading blob `digest` of `size` bytes.
    fn open(&self, digest: &Digest, size: u64) -> impl Future<Output = Result<Self::Reader, ImageError>> + Send;
}

/// Blobs of one repository of a registry.
struct RegistrySource<'a> {
    registry: &'a RegistryClient,
    reference: &'a Reference,
    credentials: &'a Credentials,
}

impl BlobSource for RegistrySource<'_> {
    type Reader = super::registry::Blob;

    async fn open(&self, digest: &Digest, size: u64) -> Result<Self::Reader, ImageError> {
        Ok(self
            .registry
            .fetch_blob(self.reference, digest, Some(size), self.credentials)
            .await?)
    }
}

/// The manifest of `index` for this host's platform, refused if the index gives it a size
/// over [`oci::MAX_MANIFEST_SIZE`].
pub(crate) fn platform_manifest<'a>(image: &str, index: &'a oci::ImageIndex) -> Result<&'a Descriptor, ImageError> {
    let platform = oci::host_platform();
    let chosen = oci::select_platform(index, &platform.os, &platform.architecture, platform.variant.as_deref())
        .ok_or_else(|| {
            malformed(
                image,
                &format!("no manifest for {}/{}", platform.os, platform.architecture),
            )
        })?;
    Capped::Manifest
        .check(&chosen.digest, chosen.size)
        .map_err(ManifestError::from)?;
    Ok(chosen)
}

fn malformed(image: &str, reason: &str) -> ImageError {
    ImageError::Malformed {
        reference: image.to_string(),
        reason: reason.to_string(),
    }
}

/// Disk usage of the image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Bytes allocated to blobs and unpacked layers.
    pub bytes: u64,
    /// Inodes they use.
    pub inodes: u64,
}

/// Pulls, keeps and removes images under one root directory.
#[derive(Debug)]
pub struct ImageManager {
    root: PathBuf,
    registry: RegistryClient,
    content: ContentStore,
    snapshots: Snapshots,
    metadata: Arc<Store>,
    /// Serializes read-modify-write of the image records.
    naming: Mutex<()>,
    /// Pulls hold it shared; collection holds it exclusively, so it never deletes what a
    /// pull in progress has fetched but not yet recorded.
    collection: RwLock<()>,
}

impl ImageManager {
    /// Opens the image store under `root` (`content/` and `snapshots/`), with its records in
    /// `metadata` and registries reached through `registry`.
    pub fn open(root: &Path, registry: RegistryClient, metadata: Arc<Store>) -> Result<Self, ImageError> {
        Ok(Self {
            root: root.to_path_buf(),
            registry,
            content: ContentStore::open(&root.join("content"))?,
            snapshots: Snapshots::open(&root.join("snapshots"))?,
            metadata,
            naming: Mutex::new(()),
            collection: RwLock::new(()),
        })
    }

    /// The verified blobs.
    pub(crate) fn content_store(&self) -> &ContentStore {
        &self.content
    }

    /// The directory holding blobs and unpacked layers (the image filesystem).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Pulls `image` (a reference such as `busybox` or `registry.k8s.io/pause:3.9`), unpacks
    /// its layers and records it under its tag and repo digest. Returns the record.
    #[tracing::instrument(skip(self, credentials), fields(image = %image))]
    pub async fn pull(&self, image: &str, credentials: &Credentials) -> Result<ImageRecord, ImageError> {
        let reference = Reference::parse(image)?;
        let _pulling = self.collection.read().await;

        let top = self.registry.resolve(&reference, credentials).await?;
        self.content.write_bytes(&top.digest, &top.bytes).await?;
        let (index, manifest) = match top.document()? {
            ManifestDocument::Manifest(manifest) => (None, (top.digest.clone(), *manifest)),
            ManifestDocument::Index(index) => {
                let chosen = platform_manifest(&reference.to_string(), &index)?;
                let resolved = self
                    .registry
                    .fetch_manifest_by_digest(&reference, &chosen.digest, credentials)
                    .await?;
                self.content.write_bytes(&resolved.digest, &resolved.bytes).await?;
                let ManifestDocument::Manifest(manifest) = resolved.document()? else {
                    return Err(malformed(
                        &reference.to_string(),
                        "an index names another index for this platform",
                    ));
                };
                (Some(top.digest.clone()), (resolved.digest, *manifest))
            }
        };
        let source = RegistrySource {
            registry: &self.registry,
            reference: &reference,
            credentials,
        };
        let names = Names::new(&reference, &top.digest);
        self.store_image(&source, &reference.to_string(), index, manifest, names)
            .await
    }

    /// Fetches what `manifest` lists from `source` (each blob once, however many callers
    /// want it), unpacks its layers and records the image under `names`. A config whose
    /// descriptor is over [`oci::MAX_CONFIG_SIZE`] is refused before it is fetched; the
    /// download stops at the size the descriptor gives.
    pub(crate) async fn store_image(
        &self,
        source: &impl BlobSource,
        image: &str,
        index: Option<Digest>,
        (manifest_digest, manifest): (Digest, ImageManifest),
        names: Names,
    ) -> Result<ImageRecord, ImageError> {
        let config_digest = &manifest.config.digest;
        Capped::Config
            .check(config_digest, manifest.config.size)
            .map_err(ManifestError::from)?;
        self.content
            .ingest(config_digest, Some(manifest.config.size), || {
                source.open(config_digest, manifest.config.size)
            })
            .await?;
        let config = self.config_of(config_digest).await?;
        let layers = layer_records(image, &manifest, &config)?;
        let fetches: Vec<_> = layers.iter().map(|layer| self.fetch_layer(source, layer)).collect();
        futures_util::stream::iter(fetches)
            .buffer_unordered(PARALLEL_LAYERS)
            .try_collect::<Vec<()>>()
            .await?;
        crash_point::hit("image_pull.after_layers");

        let documents = [Some(&manifest_digest), index.as_ref()].into_iter().flatten();
        let size = documents.map(|d| self.content.size(d)).sum::<u64>()
            + manifest.config.size
            + layers.iter().map(|l| l.size).sum::<u64>();
        let record = ImageRecord {
            id: config_digest.clone(),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            manifest: manifest_digest,
            index,
            layers,
            size,
            user: config.config.as_ref().and_then(|c| c.user.clone()).unwrap_or_default(),
            pinned: false,
        };
        self.record(record, &names).await
    }

    /// Fetches one layer blob (once, however many pulls want it) and unpacks it (once).
    async fn fetch_layer(&self, source: &impl BlobSource, layer: &LayerRecord) -> Result<(), ImageError> {
        if self.snapshots.contains(&layer.diff_id) && self.content.contains(&layer.digest) {
            return Ok(());
        }
        self.content
            .ingest(&layer.digest, Some(layer.size), || {
                source.open(&layer.digest, layer.size)
            })
            .await?;
        let blob = self.content.path(&layer.digest);
        let compression = Compression::from_media_type(&layer.media_type);
        self.snapshots
            .ensure(&layer.diff_id, move |dir: &Path| {
                let file = std::fs::File::open(&blob).map_err(|e| format!("{}: {e}", blob.display()))?;
                let reader = std::io::BufReader::with_capacity(256 * 1024, file);
                unpack_layer(reader, compression, dir)
                    .map(|unpacked| unpacked.diff_id)
                    .map_err(|e| e.to_string())
            })
            .await?;
        Ok(())
    }

    /// Stores `record` with its new names, moving `tag` away from any other image.
    async fn record(&self, record: ImageRecord, names: &Names) -> Result<ImageRecord, ImageError> {
        let _naming = self.naming.lock().await;
        let existing = self.list()?;
        let changed = records::name_pulled_image(&existing, record, names.tag.as_deref(), &names.repo_digest);
        let keys: Vec<String> = changed.iter().map(|r| r.id.to_string()).collect();
        let puts: Vec<(&str, &dyn store::ErasedRecord)> = keys
            .iter()
            .zip(&changed)
            .map(|(k, r)| (k.as_str(), r as &dyn store::ErasedRecord))
            .collect();
        self.metadata.update(store::IMAGES, &puts, &[])?;
        Ok(changed
            .into_iter()
            .next()
            .expect("name_pulled_image returns the pulled image first"))
    }

    /// Every image.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        Ok(self.metadata.list(store::IMAGES)?)
    }

    /// The image `name` (an id, a tag or a digest reference) points at, if any.
    pub fn find(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let name = parse_name(name)?;
        Ok(records::find(&self.list()?, &name).cloned())
    }

    /// The config of a pulled image (refused over [`oci::MAX_CONFIG_SIZE`], as at pull).
    pub async fn config_of(&self, id: &Digest) -> Result<ImageConfig, ImageError> {
        Capped::Config
            .check(id, self.content.size(id))
            .map_err(ManifestError::from)?;
        let bytes = self.content.read(id).await?;
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Config {
            digest: id.clone(),
            source,
        })
    }

    /// The directory of the unpacked layer `diff_id`.
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.snapshots.path(diff_id)
    }

    /// The unpacked layer directories of an image, bottom first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image.layers.iter().map(|l| self.snapshots.path(&l.diff_id)).collect()
    }

    /// Holds off collection (image removal) while the lease lives: what creates a
    /// container takes one before it looks the image up and keeps it until the container
    /// is recorded, so the layers it mounts are either in use or still an image's when
    /// a removal decides what to delete.
    pub async fn lease(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.collection.read().await
    }

    /// Removes the image `name` points at, with all its names, then collects what no image
    /// uses. Removing an image that does not exist is not an error. Layers that `in_use`
    /// lists (asked once no lease is held) are kept.
    pub async fn remove(&self, name: &str, in_use: &(dyn Fn() -> HashSet<Digest> + Sync)) -> Result<(), ImageError> {
        let name = parse_name(name)?;
        {
            let _naming = self.naming.lock().await;
            let existing = self.list()?;
            let Some(image) = records::find(&existing, &name) else {
                return Ok(());
            };
            self.metadata.delete(store::IMAGES, image.id.as_str())?;
        }
        crash_point::hit("image_remove.after_record");
        self.collect_garbage(in_use).await
    }

    /// Deletes blobs and unpacked layers that no image (and, for layers, nothing `in_use`
    /// lists once no pull or [`lease`](Self::lease) is under way) refers to.
    pub async fn collect_garbage(&self, in_use: &(dyn Fn() -> HashSet<Digest> + Sync)) -> Result<(), ImageError> {
        let _exclusive = self.collection.write().await;
        let in_use = in_use();
        let images = self.list()?;
        let blobs: HashSet<&Digest> = images.iter().flat_map(ImageRecord::blobs).collect();
        let layers: HashSet<&Digest> = images
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| &l.diff_id))
            .chain(&in_use)
            .collect();
        for blob in self.content.list()? {
            if !blobs.contains(&blob) {
                self.content.remove(&blob)?;
            }
        }
        for layer in self.snapshots.list()? {
            if !layers.contains(&layer) {
                tracing::debug!(%layer, "removing unused layer");
                self.snapshots.remove(&layer).await?;
            }
        }
        Ok(())
    }

    /// Bytes and inodes the image store uses (hard links counted once).
    pub async fn fs_usage(&self) -> Result<FsUsage, ImageError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || disk_usage(&root))
            .await
            .map_err(|e| ContentError::Io {
                path: self.root.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| {
                ContentError::Io {
                    path: self.root.clone(),
                    source,
                }
                .into()
            })
    }
}

/// Parses what a CRI caller may name an image by: an id (`sha256:<hex>` or the bare hex),
/// or a reference, normalized.
pub fn parse_name(name: &str) -> Result<ImageName, InvalidReference> {
    if let Ok(id) = name.parse::<Digest>() {
        return Ok(ImageName::Id(id));
    }
    if let Ok(id) = format!("sha256:{name}").parse::<Digest>() {
        return Ok(ImageName::Id(id));
    }
    let reference = Reference::parse(name)?;
    Ok(match (&reference.digest, reference.tagged()) {
        (Some(digest), _) => ImageName::RepoDigest(reference.canonical(digest)),
        (None, Some(tag)) => ImageName::Tag(tag),
        (None, None) => ImageName::Tag(reference.to_string()),
    })
}

/// Pairs each layer descriptor with its diff id from the config.
fn layer_records(image: &str, manifest: &ImageManifest, config: &ImageConfig) -> Result<Vec<LayerRecord>, ImageError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        let reason = format!(
            "{} layers but {} diff ids in the config",
            manifest.layers.len(),
            diff_ids.len()
        );
        return Err(malformed(image, &reason));
    }
    manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            if Compression::from_media_type(&layer.media_type).is_none() {
                let reason = format!("layer {} has unsupported media type {}", layer.digest, layer.media_type);
                return Err(malformed(image, &reason));
            }
            Ok(LayerRecord {
                digest: layer.digest.clone(),
                diff_id: diff_id.clone(),
                size: layer.size,
                media_type: layer.media_type.clone(),
            })
        })
        .collect()
}

/// Allocated bytes and distinct inodes under `root`, not following symlinks.
fn disk_usage(root: &Path) -> std::io::Result<FsUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut usage = FsUsage { bytes: 0, inodes: 0 };
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        let metadata = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if seen.insert((metadata.dev(), metadata.ino())) {
            usage.inodes += 1;
            usage.bytes += metadata.blocks() * 512;
        }
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_as_ids_tags_or_repo_digests() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let id: Digest = format!("sha256:{hex}").parse().expect("digest");
        let cases = [
            ("full id", format!("sha256:{hex}"), ImageName::Id(id.clone())),
            ("bare hex id", hex.to_string(), ImageName::Id(id.clone())),
            (
                "short name",
                "busybox".to_string(),
                ImageName::Tag("docker.io/library/busybox:latest".into()),
            ),
            (
                "tag",
                "registry.k8s.io/pause:3.9".to_string(),
                ImageName::Tag("registry.k8s.io/pause:3.9".into()),
            ),
            (
                "digest reference",
                format!("busybox@sha256:{hex}"),
                ImageName::RepoDigest(format!("docker.io/library/busybox@sha256:{hex}")),
            ),
        ];
        for (desc, input, expected) in cases {
            assert_eq!(parse_name(&input).expect(desc), expected, "{desc}");
        }
        assert!(parse_name("Upper/Case").is_err());
    }

    /// A container creation holds a lease from the image lookup until its record is
    /// written; a collection asks which layers are in use only once no lease is held, so it
    /// cannot delete the layers of a container that was being created when it began.
    #[tokio::test]
    async fn collection_asks_what_is_in_use_only_after_the_leases_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(Store::open(&dir.path().join("metadata.db")).expect("store"));
        let images = Arc::new(
            ImageManager::open(
                &dir.path().join("images"),
                RegistryClient::new(crate::image::hosts::RegistryHosts::none()),
                store,
            )
            .expect("images"),
        );
        let lease = images.lease().await;
        let asked = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let collection = tokio::spawn({
            let (images, asked) = (images.clone(), asked.clone());
            async move {
                let in_use = move || {
                    asked.store(true, std::sync::atomic::Ordering::SeqCst);
                    HashSet::new()
                };
                images.collect_garbage(&in_use).await
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(
            !asked.load(std::sync::atomic::Ordering::SeqCst),
            "in use was asked while a creation held its lease"
        );
        drop(lease);
        collection.await.expect("join").expect("collection");
        assert!(asked.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn disk_usage_counts_hard_links_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), vec![1u8; 10_000]).expect("write");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).expect("link");
        let usage = disk_usage(dir.path()).expect("usage");
        assert_eq!(usage.inodes, 2, "the directory and one file");
        assert!(usage.bytes >= 10_000);
    }

    #[test]
    fn an_index_naming_a_manifest_over_the_cap_is_refused_before_it_is_fetched() {
        let platform = oci::host_platform();
        let digest = Digest::of(b"a huge manifest");
        let index = oci::ImageIndex {
            schema_version: 2,
            media_type: Some(oci::MEDIA_TYPE_OCI_INDEX.into()),
            artifact_type: None,
            manifests: vec![Descriptor {
                media_type: oci::MEDIA_TYPE_OCI_MANIFEST.into(),
                digest: digest.clone(),
                size: oci::MAX_MANIFEST_SIZE + 1,
                urls: Vec::new(),
                annotations: Default::default(),
                platform: Some(platform),
                artifact_type: None,
            }],
            subject: None,
            annotations: Default::default(),
        };
        let err = platform_manifest("example.com/huge:1", &index).expect_err("over the cap");
        assert!(
            matches!(&err, ImageError::Manifest(ManifestError::TooLarge(too_large)) if too_large.name == digest.to_string()),
            "{err}"
        );
    }
}
