//! Unpacked layers, one directory per layer, ready to be overlayfs lower directories.
//!
//! Layout under the snapshots root:
//!
//! ```text
//! <diff-id hex>/        the layer's files (whiteouts as overlayfs expects them)
//! .tmp-<hex>-<n>/       a layer being unpacked, or being removed
//! ```
//!
//! Each layer directory holds that layer alone, independent of the layers below it, so it
//! is keyed by the layer's diff id (the digest of its uncompressed tar) and shared by every
//! image that contains the layer, whatever sits under it. A directory appears under its
//! final name only after its content was unpacked completely and hashed to that diff id;
//! removal renames it away first, so a half-removed layer is never mistaken for a whole one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::Digest;
use crate::keyed_lock::KeyedLocks;

/// Prefix of directories that are not (yet, or any more) layers.
const TEMP_PREFIX: &str = ".tmp-";

/// Errors of the snapshot directory.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The unpacked content does not hash to the diff id the image config names.
    #[error("layer content hashes to {actual}, the image config says {expected}")]
    DiffIdMismatch {
        /// The diff id from the image config.
        expected: Digest,
        /// The digest of the uncompressed tar that was unpacked.
        actual: Digest,
    },
    /// Unpacking failed.
    #[error("unpacking layer {diff_id}: {message}")]
    Unpack {
        /// The layer.
        diff_id: Digest,
        /// What went wrong.
        message: String,
    },
    /// A file-system operation failed.
    #[error("snapshots {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory of unpacked layers.
#[derive(Debug)]
pub struct Snapshots {
    root: PathBuf,
    unpacking: KeyedLocks<Digest>,
    next_temp: AtomicU64,
}

impl Snapshots {
    /// Opens (creating if needed) the snapshots at `root`, removing what a crash left
    /// half-unpacked or half-removed.
    pub fn open(root: &Path) -> Result<Self, SnapshotError> {
        std::fs::create_dir_all(root).map_err(io_error(root))?;
        for entry in std::fs::read_dir(root).map_err(io_error(root))? {
            let entry = entry.map_err(io_error(root))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let path = entry.path();
                std::fs::remove_dir_all(&path).map_err(io_error(&path))?;
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            unpacking: KeyedLocks::default(),
            next_temp: AtomicU64::new(0),
        })
    }

    /// The directory of the layer `diff_id` (whether or not it is present).
    pub fn path(&self, diff_id: &Digest) -> PathBuf {
        self.root.join(diff_id.hex())
    }

    /// Whether the layer is unpacked.
    pub fn contains(&self, diff_id: &Digest) -> bool {
        self.path(diff_id).is_dir()
    }

    /// Makes sure the layer `diff_id` is unpacked, calling `unpack` (on a blocking thread)
    /// to fill an empty directory only if it is not. `unpack` returns the digest of the
    /// uncompressed tar it read, which must equal `diff_id`. Concurrent calls for one layer
    /// unpack it once. Returns whether this call unpacked it.
    pub async fn ensure<F, E>(&self, diff_id: &Digest, unpack: F) -> Result<bool, SnapshotError>
    where
        F: FnOnce(&Path) -> Result<Digest, E> + Send + 'static,
        E: std::fmt::Display,
    {
        let _guard = self.unpacking.lock(diff_id.clone()).await;
        if self.contains(diff_id) {
            return Ok(false);
        }
        let temp = self.temp_path(diff_id);
        let target = self.path(diff_id);
        let expected = diff_id.clone();
        // Everything after the unpack runs on the blocking thread too, so a caller that stops
        // waiting cannot leave the temporary directory behind.
        tokio::task::spawn_blocking(move || unpack_into_place(&temp, &target, &expected, unpack))
            .await
            .map_err(|panic| SnapshotError::Unpack {
                diff_id: diff_id.clone(),
                message: panic.to_string(),
            })?
            .map(|()| true)
    }

    /// Removes the layer; removing an absent layer is not an error.
    pub async fn remove(&self, diff_id: &Digest) -> Result<(), SnapshotError> {
        let _guard = self.unpacking.lock(diff_id.clone()).await;
        let path = self.path(diff_id);
        let temp = self.temp_path(diff_id);
        match std::fs::rename(&path, &temp) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            other => other.map_err(io_error(&path))?,
        }
        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&temp).map_err(|e| (temp, e)))
            .await
            .map_err(|e| SnapshotError::Io {
                path: path.clone(),
                source: io::Error::other(e),
            })?
            .map_err(|(path, source)| SnapshotError::Io { path, source })
    }

    /// Every unpacked layer.
    pub fn list(&self) -> Result<Vec<Digest>, SnapshotError> {
        let mut layers = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_error(&self.root))? {
            let entry = entry.map_err(io_error(&self.root))?;
            if let Ok(diff_id) = format!("sha256:{}", entry.file_name().to_string_lossy()).parse() {
                layers.push(diff_id);
            }
        }
        Ok(layers)
    }

    fn temp_path(&self, diff_id: &Digest) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.root.join(format!("{TEMP_PREFIX}{}-{n}", diff_id.hex()))
    }
}

/// Unpacks into the fresh directory `temp` and renames it to `target` if the content hashes
/// to `expected`; removes `temp` in every other case.
fn unpack_into_place<F, E>(temp: &Path, target: &Path, expected: &Digest, unpack: F) -> Result<(), SnapshotError>
where
    F: FnOnce(&Path) -> Result<Digest, E>,
    E: std::fmt::Display,
{
    std::fs::create_dir(temp).map_err(io_error(temp))?;
    let result = match unpack(temp) {
        Err(e) => Err(SnapshotError::Unpack {
            diff_id: expected.clone(),
            message: e.to_string(),
        }),
        Ok(actual) if &actual != expected => Err(SnapshotError::DiffIdMismatch {
            expected: expected.clone(),
            actual,
        }),
        Ok(_) if target.is_dir() => {
            // Another unpack of the same layer, whose caller gave up waiting, finished first.
            let _ = std::fs::remove_dir_all(temp);
            return Ok(());
        }
        Ok(_) => std::fs::rename(temp, target).map_err(io_error(target)),
    };
    if result.is_err() {
        let _ = std::fs::remove_dir_all(temp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshots() -> (tempfile::TempDir, Snapshots) {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshots = Snapshots::open(&dir.path().join("snapshots")).expect("open");
        (dir, snapshots)
    }

    fn write_file(content: &'static [u8]) -> impl FnOnce(&Path) -> Result<Digest, io::Error> {
        move |dir| {
            std::fs::write(dir.join("file"), content)?;
            Ok(Digest::of(content))
        }
    }

    #[tokio::test]
    async fn a_layer_appears_whole_under_its_diff_id() {
        let (_dir, snapshots) = snapshots();
        let diff_id = Digest::of(b"one");
        assert!(snapshots.ensure(&diff_id, write_file(b"one")).await.expect("unpack"));
        assert!(!snapshots.ensure(&diff_id, write_file(b"one")).await.expect("present"));
        assert_eq!(
            std::fs::read(snapshots.path(&diff_id).join("file")).expect("read"),
            b"one"
        );
        assert_eq!(snapshots.list().expect("list"), vec![diff_id]);
    }

    #[tokio::test]
    async fn content_with_another_diff_id_is_discarded() {
        let (dir, snapshots) = snapshots();
        let diff_id = Digest::of(b"expected");
        let err = snapshots
            .ensure(&diff_id, write_file(b"other"))
            .await
            .expect_err("mismatch");
        assert!(matches!(err, SnapshotError::DiffIdMismatch { .. }), "{err}");
        let left = std::fs::read_dir(dir.path().join("snapshots")).expect("dir").count();
        assert_eq!(left, 0, "nothing half-written is left");
    }

    #[tokio::test]
    async fn a_failed_unpack_leaves_nothing() {
        let (dir, snapshots) = snapshots();
        let diff_id = Digest::of(b"x");
        let err = snapshots
            .ensure(&diff_id, |dir: &Path| {
                std::fs::write(dir.join("partial"), b"...")?;
                Err::<Digest, _>(io::Error::other("hostile entry"))
            })
            .await
            .expect_err("failure");
        assert!(err.to_string().contains("hostile entry"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path().join("snapshots")).expect("dir").count(), 0);
    }

    #[tokio::test]
    async fn removal_is_idempotent_and_leftovers_are_cleaned_on_open() {
        let (dir, snapshots) = snapshots();
        let diff_id = Digest::of(b"one");
        snapshots.ensure(&diff_id, write_file(b"one")).await.expect("unpack");
        snapshots.remove(&diff_id).await.expect("remove");
        snapshots.remove(&diff_id).await.expect("remove again");
        assert!(!snapshots.contains(&diff_id));

        std::fs::create_dir(dir.path().join("snapshots/.tmp-crashed-0")).expect("mkdir");
        Snapshots::open(&dir.path().join("snapshots")).expect("reopen");
        assert_eq!(std::fs::read_dir(dir.path().join("snapshots")).expect("dir").count(), 0);
    }
}
