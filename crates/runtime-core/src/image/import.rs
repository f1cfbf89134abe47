//! Importing images from an OCI image layout, for nodes without a registry.
//!
//! An OCI image layout is a directory with an `oci-layout` file, an `index.json` listing
//! the images, and `blobs/sha256/<hex>` holding their content; a tar archive of such a
//! directory (what `skopeo copy ... oci-archive:` or `docker save` in OCI mode write) works
//! too. Each image of `index.json` is recorded under the name its annotations give
//! (`io.containerd.image.name`, or `org.opencontainers.image.ref.name` when that is a
//! full reference, or a bare tag appended to the repository the caller names).
//!
//! Blobs go through the content store like pulled ones: each is verified against its
//! digest before it is used, so a damaged or hostile layout is refused the same way.
//! `index.json`, manifests and configs are held to the caps of pulled ones
//! ([`super::oci::Capped`]) before they are read whole.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::digest::Digest;
use super::manager::{BlobSource, ImageError, ImageManager, Names, platform_manifest};
use super::oci::{Capped, CappedReadError, Descriptor, ImageIndex, ManifestDocument, ManifestError};
use super::records::ImageRecord;
use super::reference::Reference;

/// Annotation containerd writes with the image's full name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming an image of a layout: a tag, or a full reference.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The file marking a directory as an OCI image layout.
const LAYOUT_MARKER: &str = "oci-layout";
/// The layout's list of images.
const LAYOUT_INDEX: &str = "index.json";

/// What happens during an import, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportEvent {
    /// An image of the layout is about to be imported.
    Image {
        /// Its name.
        name: String,
        /// Bytes of its layers.
        layer_bytes: u64,
    },
    /// One layer of the current image is stored and unpacked.
    Layer {
        /// Its size in bytes.
        bytes: u64,
    },
    /// The image is recorded.
    Done {
        /// Its name.
        name: String,
        /// Its id.
        id: Digest,
    },
}

impl ImageManager {
    /// Imports every image of the OCI image layout at `path` (a directory or a tar archive
    /// of one). `repository` names images whose annotation is only a tag. `progress` hears
    /// of each image and layer as it is done.
    pub async fn import(
        &self,
        path: &Path,
        repository: Option<&str>,
        progress: &(dyn Fn(ImportEvent) + Sync),
    ) -> Result<Vec<ImageRecord>, ImageError> {
        if path.is_dir() {
            return self.import_layout(path, repository, progress).await;
        }
        let staging = self.root().join(format!("import-{}", std::process::id()));
        let archive = path.to_path_buf();
        let target = staging.clone();
        let extracted = tokio::task::spawn_blocking(move || extract_layout(&archive, &target))
            .await
            .map_err(|e| import_error(path, &e.to_string()))?;
        let result = match extracted {
            Ok(()) => self.import_layout(&staging, repository, progress).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    async fn import_layout(
        &self,
        layout: &Path,
        repository: Option<&str>,
        progress: &(dyn Fn(ImportEvent) + Sync),
    ) -> Result<Vec<ImageRecord>, ImageError> {
        if !layout.join(LAYOUT_MARKER).is_file() {
            return Err(import_error(layout, "not an OCI image layout (no oci-layout file)"));
        }
        let index_bytes = read_document(&layout.join(LAYOUT_INDEX)).await?;
        let index: ImageIndex =
            serde_json::from_slice(&index_bytes).map_err(|e| import_error(layout, &format!("index.json: {e}")))?;
        let source = LayoutSource {
            dir: layout.join("blobs").join("sha256"),
        };
        let mut imported = Vec::new();
        for entry in &index.manifests {
            let reference = image_name(entry, repository).map_err(|reason| import_error(layout, &reason))?;
            imported.push(self.import_image(&source, entry, &reference, progress).await?);
        }
        Ok(imported)
    }

    async fn import_image(
        &self,
        source: &LayoutSource,
        entry: &Descriptor,
        reference: &Reference,
        progress: &(dyn Fn(ImportEvent) + Sync),
    ) -> Result<ImageRecord, ImageError> {
        let name = reference.to_string();
        let top = self.document(source, &entry.digest).await?;
        let (index, manifest) = match top {
            ManifestDocument::Manifest(manifest) => (None, (entry.digest.clone(), *manifest)),
            ManifestDocument::Index(index) => {
                let chosen = platform_manifest(&name, &index)?;
                let ManifestDocument::Manifest(manifest) = self.document(source, &chosen.digest).await? else {
                    return Err(ImageError::Malformed {
                        reference: name,
                        reason: "nested index".into(),
                    });
                };
                (Some(entry.digest.clone()), (chosen.digest.clone(), *manifest))
            }
        };
        let layer_bytes = manifest.1.layers.iter().map(|l| l.size).sum();
        progress(ImportEvent::Image {
            name: name.clone(),
            layer_bytes,
        });
        let names = Names::new(reference, &entry.digest);
        let layer_sizes: Vec<u64> = manifest.1.layers.iter().map(|l| l.size).collect();
        let record = self.store_image(source, &name, index, manifest, names).await?;
        for bytes in layer_sizes {
            progress(ImportEvent::Layer { bytes });
        }
        progress(ImportEvent::Done {
            name,
            id: record.id.clone(),
        });
        Ok(record)
    }

    /// Stores the manifest or index `digest` from the layout and parses it.
    async fn document(&self, source: &LayoutSource, digest: &Digest) -> Result<ManifestDocument, ImageError> {
        let path = source.path(digest);
        let bytes = read_document(&path).await?;
        self.content_store().write_bytes(digest, &bytes).await?;
        let media_type = super::oci::detect_media_type(&bytes)
            .ok_or_else(|| import_error(&path, "neither an image manifest nor an index"))?;
        Ok(ManifestDocument::parse(&media_type, &bytes)?)
    }
}

/// Reads layout file `path`, a manifest or an index, refusing it (before it is parsed or
/// stored) once more than [`super::oci::MAX_MANIFEST_SIZE`] bytes have been read.
async fn read_document(path: &Path) -> Result<Vec<u8>, ImageError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| import_error(path, &e.to_string()))?;
    Capped::Manifest.read(path.display(), file).await.map_err(|e| match e {
        CappedReadError::TooLarge(e) => ManifestError::from(e).into(),
        CappedReadError::Io(e) => import_error(path, &e.to_string()),
    })
}

/// The blobs directory of a layout.
struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }
}

impl BlobSource for LayoutSource {
    type Reader = tokio::fs::File;

    async fn open(&self, digest: &Digest, _size: u64) -> Result<Self::Reader, ImageError> {
        let path = self.path(digest);
        tokio::fs::File::open(&path)
            .await
            .map_err(|e| import_error(&path, &e.to_string()))
    }
}

/// The reference an image of a layout is recorded under.
fn image_name(entry: &Descriptor, repository: Option<&str>) -> Result<Reference, String> {
    let annotations = &entry.annotations;
    if let Some(name) = annotations.get(CONTAINERD_NAME) {
        return Reference::parse(name).map_err(|e| e.to_string());
    }
    let ref_name = annotations.get(OCI_REF_NAME).map(String::as_str);
    match (ref_name, repository) {
        (Some(name), _) if name.contains('/') || name.contains(':') => {
            Reference::parse(name).map_err(|e| e.to_string())
        }
        (Some(tag), Some(repository)) => Reference::parse(&format!("{repository}:{tag}")).map_err(|e| e.to_string()),
        (None, Some(repository)) => {
            Reference::parse(&format!("{repository}@{}", entry.digest)).map_err(|e| e.to_string())
        }
        (Some(tag), None) => Err(format!(
            "image {} is only tagged {tag:?}: name its repository",
            entry.digest
        )),
        (None, None) => Err(format!("image {} has no name: name its repository", entry.digest)),
    }
}

/// Extracts the layout files of an archive (plain or gzip-compressed tar) into `target`.
/// Only `oci-layout`, `index.json` and `blobs/sha256/<hex>` regular files are taken; any
/// other entry is skipped, and no link or special file is ever created.
fn extract_layout(archive: &Path, target: &Path) -> Result<(), ImageError> {
    let file = std::fs::File::open(archive).map_err(|e| import_error(archive, &e.to_string()))?;
    let mut reader = std::io::BufReader::new(file);
    let gzipped = {
        let head = std::io::BufRead::fill_buf(&mut reader).map_err(|e| import_error(archive, &e.to_string()))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let reader: Box<dyn Read> = if gzipped {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let blobs = target.join("blobs").join("sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| import_error(target, &e.to_string()))?;
    let mut tar = tar::Archive::new(reader);
    let entries = tar.entries().map_err(|e| import_error(archive, &e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| import_error(archive, &e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| import_error(archive, &e.to_string()))?
            .into_owned();
        let Some(destination) = layout_file(&name, target) else {
            continue;
        };
        let mut out = std::fs::File::create(&destination).map_err(|e| import_error(&destination, &e.to_string()))?;
        std::io::copy(&mut entry, &mut out).map_err(|e| import_error(&destination, &e.to_string()))?;
    }
    Ok(())
}

/// Where a layout file named `name` in an archive goes under `target`, or `None` if it is
/// not one an import uses.
fn layout_file(name: &Path, target: &Path) -> Option<PathBuf> {
    let parts: Vec<&str> = name
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(part) => part.to_str(),
            _ => None,
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [file @ (LAYOUT_MARKER | LAYOUT_INDEX)] => Some(target.join(file)),
        ["blobs", "sha256", hex] => {
            let digest: Digest = format!("sha256:{hex}").parse().ok()?;
            Some(target.join("blobs").join("sha256").join(digest.hex()))
        }
        _ => None,
    }
}

fn import_error(path: &Path, reason: &str) -> ImageError {
    ImageError::Malformed {
        reference: path.display().to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn descriptor(annotations: &[(&str, &str)]) -> Descriptor {
        Descriptor {
            media_type: super::super::oci::MEDIA_TYPE_OCI_MANIFEST.into(),
            digest: Digest::of(b"manifest"),
            size: 8,
            urls: Vec::new(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            platform: None,
            artifact_type: None,
        }
    }

    /// A naming case: description, annotations, repository given, expected name.
    type NamingCase<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>, Result<String, ()>);

    #[test]
    fn layout_images_are_named_from_their_annotations() {
        let digest = Digest::of(b"manifest");
        let cases: [NamingCase<'_>; 6] = [
            (
                "containerd's full name",
                &[(CONTAINERD_NAME, "busybox:1.36"), (OCI_REF_NAME, "1.36")],
                None,
                Ok("docker.io/library/busybox:1.36".into()),
            ),
            (
                "full reference as ref.name",
                &[(OCI_REF_NAME, "registry.k8s.io/pause:3.9")],
                None,
                Ok("registry.k8s.io/pause:3.9".into()),
            ),
            (
                "bare tag with a repository",
                &[(OCI_REF_NAME, "1.36")],
                Some("example.com/tools/busybox"),
                Ok("example.com/tools/busybox:1.36".into()),
            ),
            (
                "no name with a repository",
                &[],
                Some("example.com/x"),
                Ok(format!("example.com/x@{digest}")),
            ),
            (
                "bare tag without a repository",
                &[(OCI_REF_NAME, "1.36")],
                None,
                Err(()),
            ),
            ("nothing", &[], None, Err(())),
        ];
        for (desc, annotations, repository, expected) in cases {
            let got = image_name(&descriptor(annotations), repository)
                .map(|r| r.to_string())
                .map_err(|_| ());
            assert_eq!(got, expected, "{desc}");
        }
    }

    #[test]
    fn only_layout_files_are_taken_from_archives() {
        let target = Path::new("/staging");
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases = [
            ("index", "index.json", Some("/staging/index.json".to_string())),
            (
                "marker with ./",
                "./oci-layout",
                Some("/staging/oci-layout".to_string()),
            ),
            (
                "blob",
                &*format!("blobs/sha256/{hex}"),
                Some(format!("/staging/blobs/sha256/{hex}")),
            ),
            ("traversal", "../index.json", None),
            ("absolute", "/index.json", None),
            ("bad blob name", "blobs/sha256/../../x", None),
            ("other file", "README", None),
        ];
        for (desc, name, expected) in cases {
            let got = layout_file(Path::new(name), target).map(|p| p.display().to_string());
            assert_eq!(got, expected, "{desc}");
        }
    }
}
