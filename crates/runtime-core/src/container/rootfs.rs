//! A container's root filesystem: an overlay of the image's unpacked layers (read-only,
//! shared by every container of the image) under a writable upper directory of its own.
//!
//! The overlay is mounted `volatile`: a container's writable layer does not outlive the
//! container in Kubernetes, so there is nothing to sync to disk, and unmounting skips the
//! filesystem-wide sync that otherwise makes RemoveContainer wait on unrelated I/O. After
//! a host crash overlayfs refuses to reuse such a work directory; [`Rootfs::mount`] starts
//! it afresh.
//!
//! A container in a pod's own user namespace gets its layers id-mapped through it and an
//! upper directory owned by its root on the host ([`IdmappedRoot`], [`super::idmap`]).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use super::{idmap, mounts};

/// Longest mount option string the kernel takes (one page).
const MAX_MOUNT_DATA: usize = 4095;

/// Why the rootfs could not be mounted or unmounted.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// The layer paths do not fit in one mount call.
    #[error("{layers} layers are too many for one overlay mount ({length} bytes of options)")]
    TooManyLayers {
        /// How many layers the image has.
        layers: usize,
        /// The option string's length.
        length: usize,
    },
    /// A path holds a byte the mount options cannot carry (`,`, `:` or NUL).
    #[error("path {0} cannot be used in overlay options")]
    BadPath(PathBuf),
    /// Preparing the directories or mounting failed.
    #[error("rootfs {path}: {source}")]
    Io {
        /// The directory involved.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
}

/// The directories of one container's rootfs, all under its bundle directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The mount point: the bundle's `rootfs`.
    pub target: PathBuf,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's work directory (same filesystem as `upper`).
    pub work: PathBuf,
}

/// The user namespace a rootfs is seen from, when it is not the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmappedRoot {
    /// The pod's pinned user namespace, through which the layers are id-mapped.
    pub user_ns: PathBuf,
    /// The host uid of the container's root: the owner of the upper directory.
    pub host_uid: u32,
    /// The host gid of the container's root.
    pub host_gid: u32,
}

impl Rootfs {
    /// The rootfs directories of the bundle at `bundle`.
    pub fn in_bundle(bundle: &Path) -> Self {
        Self {
            target: bundle.join("rootfs"),
            upper: bundle.join("upper"),
            work: bundle.join("work"),
        }
    }

    /// Mounts the overlay of `layers` (bottom first) with a fresh upper directory. An image
    /// without layers gets an empty lower directory. With `idmapped`, the layers are
    /// id-mapped through the pod's user namespace and the upper directory belongs to the
    /// container's root.
    pub fn mount(&self, layers: &[PathBuf], idmapped: Option<&IdmappedRoot>) -> Result<(), RootfsError> {
        // overlayfs leaves this marker in a volatile mount's work directory and refuses to
        // mount over it again until it is gone (after a crash, say).
        if self.work.join("incompat").join("volatile").exists() {
            std::fs::remove_dir_all(&self.work).map_err(|source| RootfsError::Io {
                path: self.work.clone(),
                source,
            })?;
        }
        for dir in [&self.target, &self.upper, &self.work] {
            std::fs::create_dir_all(dir).map_err(|source| RootfsError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source: io::Error| RootfsError::Io { path, source }
        };
        let Some(idmapped) = idmapped else {
            return self.mount_overlay(layers);
        };
        rustix::fs::chown(
            &self.upper,
            Some(rustix::fs::Uid::from_raw(idmapped.host_uid)),
            Some(rustix::fs::Gid::from_raw(idmapped.host_gid)),
        )
        .map_err(|e| io_error(&self.upper)(e.into()))?;
        // Attached only while the overlay is mounted: it keeps clones of its own.
        let staging = self.upper.with_file_name("idmapped-layers");
        let mapped = (|| {
            std::fs::create_dir_all(&staging).map_err(io_error(&staging))?;
            let mut mapped = Vec::with_capacity(layers.len());
            for (index, layer) in layers.iter().enumerate() {
                let target = staging.join(index.to_string());
                std::fs::create_dir(&target).map_err(io_error(&target))?;
                idmap::mount_idmapped(layer, &idmapped.user_ns, &target, false).map_err(io_error(layer))?;
                mapped.push(target);
            }
            self.mount_overlay(&mapped)
        })();
        let cleaned = mounts::remove_unmounted(&staging).map_err(io_error(&staging));
        mapped.and(cleaned)
    }

    /// Mounts the overlay of `layers` (bottom first) on the prepared directories.
    fn mount_overlay(&self, layers: &[PathBuf]) -> Result<(), RootfsError> {
        let empty_lower;
        let lowers: Vec<&Path> = if layers.is_empty() {
            empty_lower = self.upper.with_file_name("empty");
            std::fs::create_dir_all(&empty_lower).map_err(|source| RootfsError::Io {
                path: empty_lower.clone(),
                source,
            })?;
            vec![empty_lower.as_path()]
        } else {
            // overlayfs lists the topmost lower directory first.
            layers.iter().rev().map(PathBuf::as_path).collect()
        };
        let data = overlay_options(&lowers, &self.upper, &self.work)?;
        rustix::mount::mount("overlay", &self.target, "overlay", MountFlags::empty(), data.as_c_str()).map_err(|e| {
            RootfsError::Io {
                path: self.target.clone(),
                source: e.into(),
            }
        })
    }

    /// Whether the overlay is mounted (from /proc/self/mountinfo).
    pub fn is_mounted(&self) -> bool {
        mounts::is_mount_point(&self.target)
    }
}

/// The seam through which the pods domain mounts a container's rootfs and takes a bundle
/// down: [`Overlay`] today; a test puts a double behind it.
pub trait RootfsMounter: std::fmt::Debug + Send + Sync {
    /// Mounts `rootfs` over `layers` (see [`Rootfs::mount`]).
    fn mount(&self, rootfs: &Rootfs, layers: &[PathBuf], idmapped: Option<&IdmappedRoot>) -> Result<(), RootfsError>;

    /// Unmounts what is mounted under `dir` and removes it (see
    /// [`mounts::remove_unmounted`]).
    fn remove(&self, dir: &Path) -> io::Result<()>;

    /// Unmounts what is mounted under `dir` and moves `dir` out of its place at once,
    /// returning where it went, for [`RootfsMounter::remove`] to delete later, off the
    /// caller's path (see [`mounts::set_aside`]); `None` when nothing is left to delete. By
    /// default `dir` is removed at once.
    fn set_aside(&self, dir: &Path) -> io::Result<Option<PathBuf>> {
        self.remove(dir).map(|()| None)
    }
}

/// Overlay mounts made by this process ([`Rootfs::mount`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Overlay;

impl RootfsMounter for Overlay {
    fn mount(&self, rootfs: &Rootfs, layers: &[PathBuf], idmapped: Option<&IdmappedRoot>) -> Result<(), RootfsError> {
        rootfs.mount(layers, idmapped)
    }

    fn remove(&self, dir: &Path) -> io::Result<()> {
        mounts::remove_unmounted(dir)
    }

    fn set_aside(&self, dir: &Path) -> io::Result<Option<PathBuf>> {
        mounts::set_aside(dir)
    }
}

/// The overlay mount options for `lowers` (topmost first), `upper` and `work`.
fn overlay_options(lowers: &[&Path], upper: &Path, work: &Path) -> Result<CString, RootfsError> {
    let text = |path: &Path| -> Result<String, RootfsError> {
        let text = path.to_str().ok_or_else(|| RootfsError::BadPath(path.to_path_buf()))?;
        if text.contains([',', ':', '\0']) {
            return Err(RootfsError::BadPath(path.to_path_buf()));
        }
        Ok(text.to_string())
    };
    let lowerdir = lowers.iter().map(|p| text(p)).collect::<Result<Vec<_>, _>>()?.join(":");
    let data = format!(
        "lowerdir={lowerdir},upperdir={},workdir={},volatile",
        text(upper)?,
        text(work)?
    );
    if data.len() > MAX_MOUNT_DATA {
        return Err(RootfsError::TooManyLayers {
            layers: lowers.len(),
            length: data.len(),
        });
    }
    CString::new(data).map_err(|_| RootfsError::BadPath(upper.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_list_the_top_layer_first_and_refuse_unusable_paths() {
        let lowers = [Path::new("/l/top"), Path::new("/l/bottom")];
        let options = overlay_options(&lowers, Path::new("/c/upper"), Path::new("/c/work")).expect("options");
        assert_eq!(
            options.to_str().expect("utf-8"),
            "lowerdir=/l/top:/l/bottom,upperdir=/c/upper,workdir=/c/work,volatile"
        );
        assert!(overlay_options(&[Path::new("/a:b")], Path::new("/u"), Path::new("/w")).is_err());
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/runtime-core/images/snapshots/{i:064}")))
            .collect();
        let many: Vec<&Path> = many.iter().map(PathBuf::as_path).collect();
        assert!(matches!(
            overlay_options(&many, Path::new("/u"), Path::new("/w")),
            Err(RootfsError::TooManyLayers { layers: 100, .. })
        ));
    }

    #[test]
    fn an_overlay_of_two_layers_shows_both_and_writes_to_the_upper_directory() {
        if !crate::test_support::is_root("mounting overlayfs") {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (bottom, top) = (dir.path().join("bottom"), dir.path().join("top"));
        std::fs::create_dir_all(&bottom).expect("mkdir");
        std::fs::create_dir_all(&top).expect("mkdir");
        std::fs::write(bottom.join("a"), "bottom").expect("write");
        std::fs::write(top.join("a"), "top").expect("write");
        std::fs::write(bottom.join("b"), "only bottom").expect("write");
        let rootfs = Rootfs::in_bundle(&dir.path().join("bundle"));
        rootfs.mount(&[bottom.clone(), top], None).expect("mount");
        assert!(rootfs.is_mounted());
        assert_eq!(std::fs::read_to_string(rootfs.target.join("a")).expect("read"), "top");
        assert_eq!(
            std::fs::read_to_string(rootfs.target.join("b")).expect("read"),
            "only bottom"
        );
        std::fs::write(rootfs.target.join("new"), "x").expect("write");
        mounts::unmount_under(&rootfs.target).expect("unmount");
        assert!(!rootfs.is_mounted());
        assert!(rootfs.upper.join("new").exists(), "writes land in the upper directory");
        assert!(!bottom.join("new").exists(), "layers stay untouched");
    }
}
