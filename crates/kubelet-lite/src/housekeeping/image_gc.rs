//! Image garbage collection: unused images go, least recently used first, when the image
//! filesystem fills up, as the kubelet's `image_gc_manager.go` decides.
//!
//! The image filesystem is the one holding the directory the runtime's ImageFsInfo names;
//! its size and free space come from `statvfs`, as the kubelet takes them from cAdvisor.
//! When its usage reaches [`ImageGcPolicy::high_threshold_percent`], enough bytes are
//! freed to bring it to [`ImageGcPolicy::low_threshold_percent`]: images no container uses
//! (running or exited: an exited container may restart), not pinned by the runtime, first
//! seen at least [`ImageGcPolicy::min_age`] ago, least recently used first.
//!
//! When an image was last used is known only to this process: [`ImageGc`] records, at
//! each pass, the images the containers use, as the kubelet does in memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cri_client::v1::{Container, Image};

use super::HousekeepingError;

/// When images are collected (the kubelet's `ImageGCPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGcPolicy {
    /// Collection starts when the image filesystem is at least this full (percent).
    /// Default 85 (`imageGCHighThresholdPercent`); 100 turns collection off.
    pub high_threshold_percent: u8,
    /// Collection frees space until the filesystem is at most this full (percent).
    /// Default 80 (`imageGCLowThresholdPercent`).
    pub low_threshold_percent: u8,
    /// An image first seen less than this long ago stays. Default 2 minutes
    /// (`--minimum-image-ttl-duration`).
    pub min_age: Duration,
}

impl Default for ImageGcPolicy {
    fn default() -> ImageGcPolicy {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// The size of a filesystem and its free space, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// The filesystem's size.
    pub capacity: u64,
    /// The bytes an unprivileged user may still write.
    pub available: u64,
}

impl FsUsage {
    /// The usage of the filesystem holding `path`, from `statvfs`.
    pub fn of(path: &Path) -> Result<FsUsage, HousekeepingError> {
        let stat = nix::sys::statvfs::statvfs(path)
            .map_err(|errno| HousekeepingError::io("statvfs", path)(std::io::Error::from(errno)))?;
        let fragment = stat.fragment_size();
        Ok(FsUsage {
            capacity: stat.blocks().saturating_mul(fragment),
            available: stat.blocks_available().saturating_mul(fragment),
        })
    }
}

/// How many bytes collection must free: `None` below the high threshold, else what brings
/// usage down to the low threshold (the kubelet's arithmetic, in whole percents).
pub fn bytes_to_free(usage: FsUsage, policy: &ImageGcPolicy) -> Option<u64> {
    if usage.capacity == 0 || policy.high_threshold_percent >= 100 {
        return None;
    }
    let available_percent = u128::from(usage.available) * 100 / u128::from(usage.capacity);
    let usage_percent = 100u128.saturating_sub(available_percent);
    if usage_percent < u128::from(policy.high_threshold_percent) {
        return None;
    }
    let wanted_available = u128::from(usage.capacity) * u128::from(100 - policy.low_threshold_percent.min(100)) / 100;
    let to_free = wanted_available.saturating_sub(u128::from(usage.available));
    (to_free > 0).then(|| u64::try_from(to_free).unwrap_or(u64::MAX))
}

/// An image that collection may remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The runtime's image id.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When this process first saw it.
    pub first_detected: Instant,
    /// When a container last used it, if ever since this process started.
    pub last_used: Option<Instant>,
}

/// The ids of the images to remove to free `to_free` bytes at `now`: least recently used
/// (never used first), then first detected earliest, skipping those younger than
/// `min_age`, until the sizes add up. Fewer if the candidates do not suffice.
pub fn images_to_remove(candidates: &[Candidate], to_free: u64, now: Instant, min_age: Duration) -> Vec<String> {
    let mut ordered: Vec<&Candidate> = candidates.iter().collect();
    ordered.sort_by_key(|c| (c.last_used, c.first_detected));
    let mut freed = 0u64;
    let mut removed = Vec::new();
    for candidate in ordered {
        if freed >= to_free {
            break;
        }
        if now.saturating_duration_since(candidate.first_detected) < min_age {
            continue;
        }
        freed = freed.saturating_add(candidate.size);
        removed.push(candidate.id.clone());
    }
    removed
}

/// Whether `container` uses `image`: by image id, or by one of its names.
fn uses(container: &Container, image: &Image) -> bool {
    let names = || image.repo_tags.iter().chain(&image.repo_digests);
    let by_spec = container.image.as_ref().map(|spec| spec.image.as_str());
    [
        Some(container.image_ref.as_str()),
        Some(container.image_id.as_str()),
        by_spec,
    ]
    .into_iter()
    .flatten()
    .filter(|name| !name.is_empty())
    .any(|name| name == image.id || names().any(|n| n == name))
}

/// What this process knows of one image.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first_detected: Instant,
    last_used: Option<Instant>,
}

/// Image garbage collection with its memory of when each image was first seen and last
/// used. One per node; [`ImageGc::collect`] runs a pass.
#[derive(Debug, Clone)]
pub struct ImageGc {
    policy: ImageGcPolicy,
    seen: HashMap<String, Seen>,
}

impl ImageGc {
    /// Collection with `policy`, knowing no image yet.
    pub fn new(policy: ImageGcPolicy) -> ImageGc {
        ImageGc {
            policy,
            seen: HashMap::new(),
        }
    }

    /// One pass on `runtime`: records which images its containers use, and if the image
    /// filesystem is over the high threshold, removes unused images to bring it to the
    /// low one. Returns the ids of the images removed; a removal that fails is logged and
    /// left for the next pass.
    pub async fn collect(&mut self, runtime: &cri_client::Client) -> Result<Vec<String>, HousekeepingError> {
        let images = (runtime.list_images(None).await).map_err(HousekeepingError::cri("ListImages"))?;
        let containers = (runtime.list_containers(None).await).map_err(HousekeepingError::cri("ListContainers"))?;
        let now = Instant::now();
        let in_use = self.record(&images, &containers, now);
        let info = (runtime.image_fs_info().await).map_err(HousekeepingError::cri("ImageFsInfo"))?;
        let filesystem = (info.image_filesystems.first())
            .and_then(|fs| fs.fs_id.as_ref())
            .map(|id| id.mountpoint.clone())
            .filter(|mountpoint| !mountpoint.is_empty())
            .ok_or(HousekeepingError::NoImageFilesystem)?;
        let usage = FsUsage::of(Path::new(&filesystem))?;
        let Some(to_free) = bytes_to_free(usage, &self.policy) else {
            return Ok(Vec::new());
        };
        let candidates: Vec<Candidate> = images
            .iter()
            .filter(|image| !image.pinned && !in_use.contains(image.id.as_str()))
            .filter_map(|image| {
                let seen = self.seen.get(&image.id)?;
                Some(Candidate {
                    id: image.id.clone(),
                    size: image.size,
                    first_detected: seen.first_detected,
                    last_used: seen.last_used,
                })
            })
            .collect();
        tracing::info!(
            filesystem,
            capacity = usage.capacity,
            available = usage.available,
            to_free,
            candidates = candidates.len(),
            "image filesystem over the high threshold"
        );
        let mut removed = Vec::new();
        for id in images_to_remove(&candidates, to_free, now, self.policy.min_age) {
            match runtime.remove_image(id.as_str()).await {
                Ok(()) => {
                    self.seen.remove(&id);
                    removed.push(id);
                }
                Err(err) => tracing::warn!(image = %id, error = %err, "removing an unused image"),
            }
        }
        Ok(removed)
    }

    /// Records `images` as seen at `now` and those `containers` use as used at `now`;
    /// forgets images the runtime no longer has. Returns the ids of the images in use.
    fn record<'a>(&mut self, images: &'a [Image], containers: &[Container], now: Instant) -> HashSet<&'a str> {
        let listed: HashSet<&str> = images.iter().map(|image| image.id.as_str()).collect();
        self.seen.retain(|id, _| listed.contains(id.as_str()));
        let mut in_use = HashSet::new();
        for image in images {
            let seen = self.seen.entry(image.id.clone()).or_insert(Seen {
                first_detected: now,
                last_used: None,
            });
            if containers.iter().any(|container| uses(container, image)) {
                seen.last_used = Some(now);
                in_use.insert(image.id.as_str());
            }
        }
        in_use
    }
}

#[cfg(test)]
mod tests {
    use cri_client::v1::ImageSpec;

    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn nothing_is_freed_below_the_high_threshold() {
        let policy = ImageGcPolicy::default();
        let usage = FsUsage {
            capacity: 100 * GIB,
            available: 16 * GIB,
        };
        assert_eq!(bytes_to_free(usage, &policy), None);
    }

    #[test]
    fn above_the_high_threshold_enough_is_freed_to_reach_the_low_one() {
        let policy = ImageGcPolicy::default();
        let usage = FsUsage {
            capacity: 100 * GIB,
            available: 10 * GIB,
        };
        assert_eq!(bytes_to_free(usage, &policy), Some(10 * GIB));
    }

    #[test]
    fn a_high_threshold_of_100_turns_collection_off() {
        let policy = ImageGcPolicy {
            high_threshold_percent: 100,
            ..ImageGcPolicy::default()
        };
        let full = FsUsage {
            capacity: GIB,
            available: 0,
        };
        assert_eq!(bytes_to_free(full, &policy), None);
    }

    #[test]
    fn least_recently_used_images_go_first_until_enough_is_freed() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let candidate = |id: &str, size: u64, first: u64, last: Option<u64>| Candidate {
            id: id.into(),
            size,
            first_detected: at(first),
            last_used: last.map(at),
        };
        let candidates = [
            candidate("recent", 10, 0, Some(50)),
            candidate("never", 10, 5, None),
            candidate("old", 10, 0, Some(10)),
            candidate("young", 100, 95, None),
        ];
        let now = at(100);
        let min_age = Duration::from_secs(30);
        assert_eq!(images_to_remove(&candidates, 15, now, min_age), ["never", "old"]);
        assert_eq!(
            images_to_remove(&candidates, 1000, now, min_age),
            ["never", "old", "recent"]
        );
        assert!(images_to_remove(&candidates, 0, now, min_age).is_empty());
    }

    #[test]
    fn images_used_by_any_container_are_in_use_whatever_names_it() {
        let image = Image {
            id: "sha256:abc".into(),
            repo_tags: vec!["docker.io/library/busybox:1.36".into()],
            ..Image::default()
        };
        let other = Image {
            id: "sha256:def".into(),
            ..Image::default()
        };
        let by_tag = Container {
            image: Some(ImageSpec {
                image: "docker.io/library/busybox:1.36".into(),
                ..ImageSpec::default()
            }),
            ..Container::default()
        };
        let by_id = Container {
            image_ref: "sha256:abc".into(),
            ..Container::default()
        };
        let mut gc = ImageGc::new(ImageGcPolicy::default());
        let images = [image, other];
        let now = Instant::now();
        for containers in [vec![by_tag], vec![by_id]] {
            let in_use = gc.record(&images, &containers, now);
            assert_eq!(in_use, HashSet::from(["sha256:abc"]));
        }
        assert_eq!(gc.seen["sha256:abc"].last_used, Some(now));
        assert_eq!(gc.seen["sha256:def"].last_used, None);
        gc.record(&images[..1], &[], now);
        assert!(!gc.seen.contains_key("sha256:def"), "a removed image is forgotten");
    }
}
