//! Images: ListImages, ImageStatus, PullImage, RemoveImage and ImageFsInfo.
//!
//! An image is found by its id, by any of its tags or digests, or by the reference a
//! short name stands for (`busybox` is `docker.io/library/busybox:latest`), as containerd
//! resolves them.

use crate::testing::error::Kind;
use crate::v1::{
    FilesystemIdentifier, FilesystemUsage, Image, ImageFilter, ImageFsInfoResponse, ImageSpec, UInt64Value,
};

use super::{FakeError, State, now};

/// Where the fake says its images are stored.
const IMAGE_FS_MOUNTPOINT: &str = "/var/lib/fake-runtime/images";

impl State {
    /// Adds `image` as it is (an empty id gets a fresh one), replacing an image with the
    /// same id.
    pub(in crate::testing) fn add_image(&mut self, mut image: Image) -> String {
        if image.id.is_empty() {
            image.id = self.new_image_id();
        }
        let id = image.id.clone();
        self.images.retain(|existing| existing.id != id);
        self.images.push(image);
        id
    }

    /// ListImages: every image, or the one `filter` names.
    pub(in crate::testing) fn list_images(&self, filter: Option<ImageFilter>) -> Vec<Image> {
        match filter
            .and_then(|filter| filter.image)
            .filter(|spec| !spec.image.is_empty())
        {
            Some(spec) => self.find_image(&spec.image).cloned().into_iter().collect(),
            None => self.images.clone(),
        }
    }

    /// ImageStatus: the image, or `None` when the runtime does not have it (api.proto: not
    /// an error).
    pub(in crate::testing) fn image_status(&self, spec: Option<&ImageSpec>) -> Option<Image> {
        spec.and_then(|spec| self.find_image(&spec.image)).cloned()
    }

    /// PullImage: the image's id; an image not held yet is added, with no user and a tag
    /// (or digest) for the reference pulled.
    pub(in crate::testing) fn pull_image(&mut self, spec: Option<ImageSpec>) -> Result<String, FakeError> {
        let spec = spec
            .filter(|spec| !spec.image.is_empty())
            .ok_or_else(|| FakeError::InvalidArgument("an image reference is required".to_owned()))?;
        if let Some(image) = self.find_image(&spec.image) {
            return Ok(image.id.clone());
        }
        let reference = normalize(&spec.image);
        let (repo_tags, repo_digests) = if reference.contains('@') {
            (Vec::new(), vec![reference])
        } else {
            (vec![reference], Vec::new())
        };
        let image = Image {
            id: String::new(),
            repo_tags,
            repo_digests,
            size: 0,
            uid: None,
            username: String::new(),
            spec: Some(spec),
            pinned: false,
        };
        Ok(self.add_image(image))
    }

    /// RemoveImage.
    pub(in crate::testing) fn remove_image(&mut self, spec: Option<&ImageSpec>) -> Result<(), FakeError> {
        // api.proto, RemoveImage: "Must be idempotent: return success if the image is
        // already gone."
        let Some(id) = spec
            .and_then(|spec| self.find_image(&spec.image))
            .map(|image| image.id.clone())
        else {
            return Ok(());
        };
        self.images.retain(|image| image.id != id);
        Ok(())
    }

    /// ImageFsInfo: one filesystem holding all images, using the sum of their sizes.
    pub(in crate::testing) fn image_fs_info(&self) -> ImageFsInfoResponse {
        let used: u64 = self.images.iter().map(|image| image.size).sum();
        ImageFsInfoResponse {
            image_filesystems: vec![FilesystemUsage {
                timestamp: now(),
                fs_id: Some(FilesystemIdentifier {
                    mountpoint: IMAGE_FS_MOUNTPOINT.to_owned(),
                }),
                used_bytes: Some(UInt64Value { value: used }),
                inodes_used: Some(UInt64Value {
                    value: self.images.len() as u64,
                }),
            }],
            container_filesystems: Vec::new(),
        }
    }

    /// Every image, in the order they were added.
    pub(in crate::testing) fn images(&self) -> Vec<Image> {
        self.images.clone()
    }

    /// The image `reference` names: its id, a tag or digest, or what a short name
    /// stands for.
    pub(super) fn find_image(&self, reference: &str) -> Option<&Image> {
        let normalized = normalize(reference);
        self.images.iter().find(|image| {
            image.id == reference
                || image
                    .repo_tags
                    .iter()
                    .chain(&image.repo_digests)
                    .any(|name| *name == reference || *name == normalized)
        })
    }

    /// A fresh image id, `sha256:` and 64 hex digits.
    fn new_image_id(&mut self) -> String {
        format!("sha256:{}", self.new_id())
    }

    /// The image `reference` names, which must exist.
    pub(super) fn image(&self, reference: &str) -> Result<&Image, FakeError> {
        self.find_image(reference)
            .ok_or_else(|| FakeError::not_found(Kind::Image, reference))
    }
}

/// The full reference a short one stands for: `docker.io` when no registry is named,
/// `library/` for a one-part docker.io name, `:latest` when there is neither tag nor
/// digest.
fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => (first, rest.to_owned()),
        Some(_) => ("docker.io", name.to_owned()),
        None => ("docker.io", name.to_owned()),
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let last = path.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(digest) => format!("{domain}/{path}@{digest}"),
        None if last.contains(':') => format!("{domain}/{path}"),
        None => format!("{domain}/{path}:latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_references_normalize_as_containerd_resolves_them() {
        let cases = [
            ("a bare name", "busybox", "docker.io/library/busybox:latest"),
            ("a tag", "busybox:1.36", "docker.io/library/busybox:1.36"),
            ("a docker hub user", "me/app", "docker.io/me/app:latest"),
            ("a registry", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
            ("a registry port", "localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost", "localhost/app:v1", "localhost/app:v1"),
            ("a digest", "busybox@sha256:abc", "docker.io/library/busybox@sha256:abc"),
            (
                "already full",
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
        ];
        for (desc, reference, want) in cases {
            assert_eq!(normalize(reference), want, "{desc}");
        }
    }
}
