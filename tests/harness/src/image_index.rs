//! OCI image indexes (multi-platform images, "manifest lists"): one reference, one image
//! per platform, and the runtime picks the one for its machine. Pure code, like
//! [`crate::image_builder`]; [`crate::distribution::RegistryClient::push_index`] pushes.
//!
//! ```
//! use test_harness::image_builder::{Entry, Image, ImageConfig, Layer, Platform};
//! use test_harness::image_index::ImageIndex;
//!
//! let layer = Layer::from_entries(&[Entry::file("hello", 0o644, "hi\n")])?;
//! let index = ImageIndex::new(vec![
//!     Image::for_platform(vec![layer.clone()], &ImageConfig::default(), &Platform::linux("amd64")),
//!     Image::for_platform(vec![layer], &ImageConfig::default(), &Platform::linux("arm64")),
//! ]);
//! assert_eq!(index.image_for(&Platform::linux("arm64")).map(Image::platform), Some(&Platform::linux("arm64")));
//! # Ok::<(), std::io::Error>(())
//! ```

use bytes::Bytes;
use serde_json::{Value, json};

use crate::image_builder::{Image, MEDIA_TYPE_MANIFEST, Platform, sha256_digest};

/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image index over complete images, each listed with the platform it was built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIndex {
    images: Vec<Image>,
    manifest: Bytes,
    digest: String,
}

impl ImageIndex {
    /// An index listing `images` in this order, each under its [`Image::platform`].
    /// Order matters to runtimes that take the first match, so tests can put decoys first.
    pub fn new(images: Vec<Image>) -> ImageIndex {
        let manifest = Bytes::from(index_json(&images).to_string());
        let digest = sha256_digest(&manifest);
        ImageIndex {
            images,
            manifest,
            digest,
        }
    }

    /// The images, in index order.
    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// The images with their platforms, in index order.
    pub fn entries(&self) -> impl Iterator<Item = (&Platform, &Image)> {
        self.images.iter().map(|image| (image.platform(), image))
    }

    /// The first image listed for exactly `platform`.
    pub fn image_for(&self, platform: &Platform) -> Option<&Image> {
        self.images.iter().find(|image| image.platform() == platform)
    }

    /// The index (JSON), as pushed.
    pub fn manifest(&self) -> &Bytes {
        &self.manifest
    }

    /// The index's digest (what `image@sha256:...` references, and a runtime's repo digest).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The index's media type.
    pub fn media_type(&self) -> &'static str {
        MEDIA_TYPE_INDEX
    }
}

/// The OCI image index JSON listing each image's manifest with its platform.
pub fn index_json(images: &[Image]) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": images
            .iter()
            .map(|image| json!({
                "mediaType": MEDIA_TYPE_MANIFEST,
                "digest": image.digest(),
                "size": image.manifest().len(),
                "platform": image.platform().to_json(),
            }))
            .collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_builder::{Entry, ImageConfig, Layer};

    fn image(platform: &Platform) -> Image {
        let layer = Layer::from_entries(&[Entry::file("platform", 0o644, platform.to_string())]).unwrap();
        Image::for_platform(vec![layer], &ImageConfig::default(), platform)
    }

    #[test]
    fn index_lists_each_manifest_with_its_platform_in_order() {
        let arm = Platform::linux("arm").with_variant("v7");
        let amd64 = Platform::linux("amd64");
        let index = ImageIndex::new(vec![image(&arm), image(&amd64)]);
        let json: Value = serde_json::from_slice(index.manifest()).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], MEDIA_TYPE_INDEX);
        let manifests = json["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(manifests[0]["platform"], arm.to_json());
        assert_eq!(manifests[1]["platform"], amd64.to_json());
        for (listed, image) in manifests.iter().zip(index.images()) {
            assert_eq!(listed["mediaType"], MEDIA_TYPE_MANIFEST);
            assert_eq!(listed["digest"], image.digest());
            assert_eq!(listed["size"], image.manifest().len());
        }
        assert_eq!(index.digest(), sha256_digest(index.manifest()));
    }

    #[test]
    fn images_are_found_by_exact_platform() {
        let arm64 = Platform::linux("arm64");
        let index = ImageIndex::new(vec![image(&Platform::linux("amd64")), image(&arm64)]);
        assert_eq!(index.image_for(&arm64), Some(&index.images()[1]));
        assert_eq!(index.image_for(&arm64.clone().with_variant("v8")), None);
        let platforms: Vec<String> = index.entries().map(|(p, _)| p.to_string()).collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    }
}
