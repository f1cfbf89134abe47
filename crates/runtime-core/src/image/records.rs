//! What the runtime remembers of each image, and how names map onto images.
//!
//! An image is identified by its id, the digest of its config (`sha256:...`), as the
//! kubelet and containerd do. Names point at images:
//!
//! - a **tag** (`docker.io/library/busybox:1.36`) names at most one image at a time; pulling
//!   the tag again may move it to another image;
//! - a **repo digest** (`docker.io/library/busybox@sha256:<manifest or index digest>`) is
//!   what the tag resolved to when pulled, and never moves.
//!
//! An image stays as long as some tag or repo digest names it.

use serde::{Deserialize, Serialize};

use super::digest::Digest;

/// One layer of an image, as its manifest and config describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as stored (usually compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar: the key of its snapshot directory.
    pub diff_id: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// Everything the runtime keeps about one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: the config's digest.
    pub id: Digest,
    /// Tags naming this image, normalized (`docker.io/library/busybox:1.36`).
    pub repo_tags: Vec<String>,
    /// Digest references naming this image (`docker.io/library/busybox@sha256:...`).
    pub repo_digests: Vec<String>,
    /// Digest of the image manifest (for this platform).
    pub manifest: Digest,
    /// Digest of the index or manifest list the manifest was chosen from, if any.
    pub index: Option<Digest>,
    /// The layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// Bytes of the manifest, config and layer blobs together.
    pub size: u64,
    /// The user the image's config runs as (`config.User`), empty for the default.
    pub user: String,
    /// Whether the image is pinned (never garbage collected by the kubelet).
    pub pinned: bool,
}

impl ImageRecord {
    /// Every blob this image needs kept: index, manifest, config and layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Digest> {
        self.index
            .iter()
            .chain([&self.manifest, &self.id])
            .chain(self.layers.iter().map(|l| &l.digest))
    }

    /// Whether any name still points at this image.
    pub fn is_named(&self) -> bool {
        !self.repo_tags.is_empty() || !self.repo_digests.is_empty()
    }
}

/// Records `image` as pulled under `tag` (if the reference had one) and `repo_digest`:
/// adds the names to it (merging with the existing record of the same id) and takes the
/// tag away from any other image. Returns every record that changed, `image`'s first.
pub fn name_pulled_image(
    existing: &[ImageRecord],
    mut image: ImageRecord,
    tag: Option<&str>,
    repo_digest: &str,
) -> Vec<ImageRecord> {
    if let Some(old) = existing.iter().find(|r| r.id == image.id) {
        image.repo_tags = old.repo_tags.clone();
        image.repo_digests = old.repo_digests.clone();
        image.pinned = old.pinned;
    }
    if let Some(tag) = tag {
        push_unique(&mut image.repo_tags, tag);
    }
    push_unique(&mut image.repo_digests, repo_digest);

    let mut changed = vec![image.clone()];
    if let Some(tag) = tag {
        for other in existing
            .iter()
            .filter(|r| r.id != image.id && r.repo_tags.iter().any(|t| t == tag))
        {
            let mut other = other.clone();
            other.repo_tags.retain(|t| t != tag);
            changed.push(other);
        }
    }
    changed
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_string());
    }
}

/// What a user may name an image by, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageName {
    /// The image id, `sha256:<hex>` or the bare hex.
    Id(Digest),
    /// A normalized tag reference.
    Tag(String),
    /// A normalized digest reference `repo@sha256:...`.
    RepoDigest(String),
}

/// The image `name` points at, if any.
pub fn find<'a>(records: &'a [ImageRecord], name: &ImageName) -> Option<&'a ImageRecord> {
    records.iter().find(|r| match name {
        ImageName::Id(id) => &r.id == id,
        ImageName::Tag(tag) => r.repo_tags.iter().any(|t| t == tag),
        ImageName::RepoDigest(reference) => r.repo_digests.iter().any(|d| d == reference),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(config: &[u8]) -> ImageRecord {
        ImageRecord {
            id: Digest::of(config),
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            manifest: Digest::of(b"manifest"),
            index: None,
            layers: Vec::new(),
            size: 1,
            user: String::new(),
            pinned: false,
        }
    }

    #[test]
    fn pulling_a_tag_again_moves_it_to_the_new_image() {
        let first = name_pulled_image(
            &[],
            image(b"v1"),
            Some("docker.io/library/x:latest"),
            "docker.io/library/x@sha256:1",
        );
        let existing = first;
        let second = name_pulled_image(
            &existing,
            image(b"v2"),
            Some("docker.io/library/x:latest"),
            "docker.io/library/x@sha256:2",
        );
        assert_eq!(second.len(), 2);
        assert_eq!(second[0].repo_tags, ["docker.io/library/x:latest"]);
        assert!(second[1].repo_tags.is_empty(), "the tag left the old image");
        assert_eq!(
            second[1].repo_digests,
            ["docker.io/library/x@sha256:1"],
            "its digest stays"
        );
        assert!(second[1].is_named());
    }

    #[test]
    fn pulling_one_image_under_two_tags_merges_the_names() {
        let first = name_pulled_image(
            &[],
            image(b"same"),
            Some("docker.io/library/x:a"),
            "docker.io/library/x@sha256:m",
        );
        let second = name_pulled_image(
            &first,
            image(b"same"),
            Some("docker.io/library/x:b"),
            "docker.io/library/x@sha256:m",
        );
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].repo_tags, ["docker.io/library/x:a", "docker.io/library/x:b"]);
        assert_eq!(second[0].repo_digests, ["docker.io/library/x@sha256:m"]);
    }

    #[test]
    fn a_pull_by_digest_adds_no_tag() {
        let pulled = name_pulled_image(&[], image(b"d"), None, "docker.io/library/x@sha256:m");
        assert!(pulled[0].repo_tags.is_empty());
        assert_eq!(pulled[0].repo_digests.len(), 1);
    }

    #[test]
    fn images_are_found_by_id_tag_and_repo_digest() {
        let records = name_pulled_image(
            &[],
            image(b"f"),
            Some("docker.io/library/f:1"),
            "docker.io/library/f@sha256:m",
        );
        let id = records[0].id.clone();
        let cases = [
            ("id", ImageName::Id(id), true),
            ("tag", ImageName::Tag("docker.io/library/f:1".into()), true),
            (
                "repo digest",
                ImageName::RepoDigest("docker.io/library/f@sha256:m".into()),
                true,
            ),
            ("other tag", ImageName::Tag("docker.io/library/f:2".into()), false),
            ("other id", ImageName::Id(Digest::of(b"other")), false),
        ];
        for (desc, name, found) in cases {
            assert_eq!(find(&records, &name).is_some(), found, "{desc}");
        }
    }
}
