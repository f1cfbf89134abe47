//! A multi-platform busybox: an OCI image index whose entry for this machine is the
//! busybox test image itself, listed last, after decoys a runtime must pass over.
//!
//! | index entry (in order) | image |
//! |---|---|
//! | `windows/<this arch>` | decoy: one small layer with `/etc/platform` |
//! | `linux/<other arch>` (`arm64`, or `amd64` on arm64 machines) | decoy, as above |
//! | `linux/arm/v7` (left out on 32-bit arm machines) | decoy, as above |
//! | `linux/<this arch>` | [`crate::test_images::busybox_image`], unchanged |
//!
//! A runtime that picks the right entry ends up with busybox's image id
//! ([`MultiPlatformImage::host_image`]'s config digest) and can run `sh`; one that takes
//! the first entry, matches the architecture alone, or ignores the variant gets a decoy
//! with a single layer and no shell. Each decoy's config names its own platform.

use anyhow::Context;

use crate::Registry;
use crate::image_builder::{Entry, Image, Layer, Platform, go_arch};
use crate::image_index::ImageIndex;
use crate::test_images::{busybox_config, busybox_image};

/// The multi-platform image's repository in the local registry.
pub const MULTI_PLATFORM_REPOSITORY: &str = "library/busybox-multi";
/// The multi-platform image's tag.
pub const MULTI_PLATFORM_TAG: &str = "1";
/// The file each decoy holds, naming its platform (`linux/arm64\n`).
pub const PLATFORM_FILE: &str = "etc/platform";

/// The multi-platform image as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPlatformImage {
    /// Through the mirrors: `docker.io/library/busybox-multi:1`.
    pub reference: String,
    /// Straight at the local registry: `127.0.0.1:PORT/library/busybox-multi:1`.
    pub direct_reference: String,
    /// The index and all its images.
    pub index: ImageIndex,
}

impl MultiPlatformImage {
    /// The image this machine should get: the busybox test image.
    ///
    /// # Panics
    ///
    /// Never for an index built by [`multi_platform_index`], which always lists the host.
    pub fn host_image(&self) -> &Image {
        self.index
            .image_for(&Platform::host())
            .expect("the index lists this machine's platform")
    }

    /// The image id (config digest) a runtime on this machine must report after pulling.
    pub fn host_image_id(&self) -> &str {
        self.host_image().config_digest()
    }

    /// The index digest: the repo digest a runtime records for the pulled image.
    pub fn index_digest(&self) -> &str {
        self.index.digest()
    }
}

/// The architecture of the other Linux decoy: `arm64`, or `amd64` on arm64 machines.
pub fn other_architecture() -> &'static str {
    if go_arch() == "arm64" { "amd64" } else { "arm64" }
}

/// The platforms of the decoys, in index order (see the module documentation).
pub fn decoy_platforms() -> Vec<Platform> {
    let mut platforms = vec![
        Platform {
            os: "windows".into(),
            ..Platform::host()
        },
        Platform::linux(other_architecture()),
    ];
    if go_arch() != "arm" {
        platforms.push(Platform::linux("arm").with_variant("v7"));
    }
    platforms
}

/// A decoy for `platform`: one layer with [`PLATFORM_FILE`], busybox's config.
pub fn decoy_image(platform: &Platform) -> anyhow::Result<Image> {
    let layer = Layer::from_entries(&[
        Entry::dir("etc", 0o755),
        Entry::file(PLATFORM_FILE, 0o644, format!("{platform}\n")),
    ])?;
    Ok(Image::for_platform(vec![layer], &busybox_config(), platform))
}

/// The index: the decoys, then the busybox image for this machine.
pub fn multi_platform_index() -> anyhow::Result<ImageIndex> {
    let mut images = decoy_platforms()
        .iter()
        .map(decoy_image)
        .collect::<anyhow::Result<Vec<_>>>()?;
    images.push(busybox_image()?);
    Ok(ImageIndex::new(images))
}

/// Pushes the multi-platform image to `registry` as
/// `library/busybox-multi:1` and returns its references.
///
/// Fails with [`crate::Missing`] in the chain if there is no static busybox.
pub fn push_multi_platform_image(registry: &Registry) -> anyhow::Result<MultiPlatformImage> {
    let index = multi_platform_index()?;
    registry
        .client()
        .push_index(MULTI_PLATFORM_REPOSITORY, &[MULTI_PLATFORM_TAG], &index)
        .context("pushing the multi-platform image")?;
    Ok(MultiPlatformImage {
        reference: format!("docker.io/{MULTI_PLATFORM_REPOSITORY}:{MULTI_PLATFORM_TAG}"),
        direct_reference: format!("{}/{MULTI_PLATFORM_REPOSITORY}:{MULTI_PLATFORM_TAG}", registry.addr()),
        index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoys_never_match_this_machine() {
        let host = Platform::host();
        let decoys = decoy_platforms();
        assert!(decoys.len() >= 2);
        assert!(decoys.iter().all(|p| p != &host));
        assert_eq!(decoys[0].os, "windows");
        assert_eq!(decoys[0].architecture, host.architecture);
        assert!(
            decoys
                .iter()
                .any(|p| p.os == "linux" && p.architecture != host.architecture)
        );
    }

    #[test]
    fn decoys_name_their_platform_in_config_and_file() {
        let platform = Platform::linux("arm").with_variant("v7");
        let image = decoy_image(&platform).unwrap();
        assert_eq!(image.platform(), &platform);
        assert_eq!(image.layers().len(), 1);
        let config: serde_json::Value = serde_json::from_slice(image.config_blob()).unwrap();
        assert_eq!(config["variant"], "v7");
        assert_eq!(config["architecture"], "arm");
    }

    /// Skipped without a static busybox.
    #[test]
    fn the_host_entry_is_the_busybox_image_and_comes_last() {
        let Ok(index) = multi_platform_index() else {
            return;
        };
        let busybox = busybox_image().unwrap();
        assert_eq!(index.images().last(), Some(&busybox));
        assert_eq!(index.image_for(&Platform::host()), Some(&busybox));
        assert_eq!(index.images().len(), decoy_platforms().len() + 1);
    }
}
