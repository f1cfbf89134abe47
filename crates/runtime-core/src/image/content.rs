//! The content store: blobs (manifests, configs, layers) kept by their digest.
//!
//! Layout under the store's root:
//!
//! ```text
//! blobs/sha256/<hex>     verified content, read-only
//! ingest/<hex>.<n>       a blob being written; renamed into blobs/ once its digest checks
//! ```
//!
//! A blob is only ever visible under `blobs/` after its bytes hashed to its name, and the
//! rename makes it appear whole or not at all. Concurrent writers of one digest are
//! serialized by [`KeyedLocks`] so it is fetched once; the others find it present.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::digest::{Digest, Hasher};
use crate::keyed_lock::KeyedLocks;

/// Bytes read from a source at a time while ingesting.
const COPY_CHUNK: usize = 256 * 1024;

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The bytes received do not hash to the digest they were fetched under.
    #[error("blob {expected} failed verification: got {actual} ({size} bytes)")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
        /// How many bytes arrived.
        size: u64,
    },
    /// More or fewer bytes arrived than the descriptor announced.
    #[error("blob {digest} has {actual} bytes, its descriptor says {expected}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The size the descriptor announced.
        expected: u64,
        /// The size that arrived.
        actual: u64,
    },
    /// The blob is not in the store.
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    /// A file-system operation failed.
    #[error("content store {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A directory of verified blobs, addressed by digest.
#[derive(Debug)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
    writers: KeyedLocks<Digest>,
    next_ingest: AtomicU64,
}

impl ContentStore {
    /// Opens (creating if needed) the store at `root`, discarding ingests a crash left.
    pub fn open(root: &Path) -> Result<Self, ContentError> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        std::fs::create_dir_all(&blobs).map_err(io_error(&blobs))?;
        if ingest.exists() {
            std::fs::remove_dir_all(&ingest).map_err(io_error(&ingest))?;
        }
        std::fs::create_dir_all(&ingest).map_err(io_error(&ingest))?;
        Ok(Self {
            blobs,
            ingest,
            writers: KeyedLocks::default(),
            next_ingest: AtomicU64::new(0),
        })
    }

    /// Where the blob `digest` lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// The size of the blob in bytes, 0 if it is absent.
    pub fn size(&self, digest: &Digest) -> u64 {
        std::fs::metadata(self.path(digest)).map_or(0, |m| m.len())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The whole blob, for small ones such as manifests and configs.
    pub async fn read(&self, digest: &Digest) -> Result<Vec<u8>, ContentError> {
        let path = self.path(digest);
        tokio::fs::read(&path).await.map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => ContentError::NotFound(digest.clone()),
            _ => ContentError::Io {
                path: path.clone(),
                source,
            },
        })
    }

    /// Stores `bytes` as the blob `digest` after checking that they hash to it.
    pub async fn write_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), ContentError> {
        self.ingest_with(digest, Some(bytes.len() as u64), || async { Ok(bytes) })
            .await
    }

    /// Makes sure the blob `digest` is present, calling `open` for its bytes only when it is
    /// not. Concurrent calls for one digest fetch it once: the others wait and find it.
    pub async fn ingest<R, F, Fut, E>(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        open: F,
    ) -> Result<bool, IngestError<E>>
    where
        R: AsyncRead + Unpin,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<R, E>>,
    {
        let _guard = self.writers.lock(digest.clone()).await;
        if self.contains(digest) {
            return Ok(false);
        }
        let source = open().await.map_err(IngestError::Source)?;
        self.write_verified(digest, expected_size, source)
            .await
            .map_err(IngestError::Content)?;
        Ok(true)
    }

    /// [`ContentStore::ingest`] for sources that cannot fail to open.
    async fn ingest_with<'a, F, Fut>(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        open: F,
    ) -> Result<(), ContentError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<&'a [u8], std::convert::Infallible>>,
    {
        match self.ingest(digest, expected_size, open).await {
            Ok(_) => Ok(()),
            Err(IngestError::Content(e)) => Err(e),
            Err(IngestError::Source(never)) => match never {},
        }
    }

    /// Streams `source` into an ingest file while hashing it and renames it into place only
    /// if digest and size match. The ingest file is removed otherwise, and also when the
    /// caller stops waiting (the future is dropped mid-copy).
    async fn write_verified(
        &self,
        digest: &Digest,
        expected_size: Option<u64>,
        mut source: impl AsyncRead + Unpin,
    ) -> Result<(), ContentError> {
        let n = self.next_ingest.fetch_add(1, Ordering::Relaxed);
        let temp = IngestFile(self.ingest.join(format!("{}.{n}", digest.hex())));
        let path = temp.0.as_path();
        let mut file = tokio::fs::File::create(path).await.map_err(io_error(path))?;
        let mut hasher = Hasher::default();
        let mut buf = vec![0u8; COPY_CHUNK];
        loop {
            let read = source.read(&mut buf).await.map_err(io_error(path))?;
            if read == 0 {
                break;
            }
            hasher.update(&buf[..read]);
            file.write_all(&buf[..read]).await.map_err(io_error(path))?;
        }
        file.sync_all().await.map_err(io_error(path))?;
        let (actual, size) = hasher.finish();
        if let Some(expected) = expected_size.filter(|&expected| expected != size) {
            return Err(ContentError::SizeMismatch {
                digest: digest.clone(),
                expected,
                actual: size,
            });
        }
        if &actual != digest {
            return Err(ContentError::DigestMismatch {
                expected: digest.clone(),
                actual,
                size,
            });
        }
        let target = self.path(digest);
        tokio::fs::rename(path, &target).await.map_err(io_error(&target))
    }

    /// Removes the blob; removing an absent blob is not an error.
    pub fn remove(&self, digest: &Digest) -> Result<(), ContentError> {
        let path = self.path(digest);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ContentError::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Every blob present.
    pub fn list(&self) -> Result<Vec<Digest>, ContentError> {
        let entries = std::fs::read_dir(&self.blobs).map_err(io_error(&self.blobs))?;
        let mut digests = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error(&self.blobs))?;
            let name = format!("sha256:{}", entry.file_name().to_string_lossy());
            if let Ok(digest) = name.parse() {
                digests.push(digest);
            }
        }
        Ok(digests)
    }
}

/// A file under `ingest/`, removed when dropped unless it was renamed into place.
struct IngestFile(PathBuf);

impl Drop for IngestFile {
    fn drop(&mut self) {
        // After a successful rename the file is gone and this is a harmless NotFound.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Why [`ContentStore::ingest`] failed: the source or the store.
#[derive(Debug, thiserror::Error)]
pub enum IngestError<E> {
    /// Opening the source (a registry request, say) failed.
    #[error(transparent)]
    Source(E),
    /// Writing or verifying the blob failed.
    #[error(transparent)]
    Content(ContentError),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        (dir, store)
    }

    #[tokio::test]
    async fn verified_bytes_are_stored_under_their_digest() {
        let (_dir, store) = store();
        let digest = Digest::of(b"hello");
        store.write_bytes(&digest, b"hello").await.expect("write");
        assert!(store.contains(&digest));
        assert_eq!(store.read(&digest).await.expect("read"), b"hello");
        assert_eq!(store.list().expect("list"), vec![digest]);
    }

    #[tokio::test]
    async fn a_blob_whose_digest_does_not_match_is_rejected_and_leaves_nothing() {
        let (dir, store) = store();
        let claimed = Digest::of(b"what was asked for");
        let err = store
            .write_bytes(&claimed, b"something else")
            .await
            .expect_err("mismatch");
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!store.contains(&claimed));
        let leftovers = std::fs::read_dir(dir.path().join("ingest"))
            .expect("ingest dir")
            .count();
        assert_eq!(leftovers, 0);
    }

    #[tokio::test]
    async fn a_blob_of_the_wrong_size_is_rejected() {
        let (_dir, store) = store();
        let digest = Digest::of(b"12345");
        let err = store
            .ingest(&digest, Some(4), || async { Ok::<_, io::Error>(&b"12345"[..]) })
            .await
            .expect_err("size");
        assert!(
            matches!(err, IngestError::Content(ContentError::SizeMismatch { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn concurrent_ingests_of_one_blob_open_the_source_once() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let opened = Arc::new(AtomicUsize::new(0));
        let data = vec![42u8; 1 << 20];
        let digest = Digest::of(&data);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, opened, data, digest) = (store.clone(), opened.clone(), data.clone(), digest.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .ingest(&digest, Some(data.len() as u64), || async {
                        opened.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, io::Error>(std::io::Cursor::new(data))
                    })
                    .await
                    .expect("ingest")
            }));
        }
        let mut fetched = 0;
        for task in tasks {
            fetched += usize::from(task.await.expect("join"));
        }
        assert_eq!((fetched, opened.load(Ordering::SeqCst)), (1, 1));
    }

    #[tokio::test]
    async fn an_abandoned_ingest_leaves_no_file() {
        let (dir, store) = store();
        let digest = Digest::of(b"never finished");
        let (mut writer, reader) = tokio::io::duplex(64);
        writer.write_all(b"never").await.expect("write");
        let ingest = store.ingest(&digest, None, || async { Ok::<_, io::Error>(reader) });
        let abandoned = tokio::time::timeout(std::time::Duration::from_millis(50), ingest).await;
        assert!(abandoned.is_err(), "the ingest waits for more bytes until dropped");
        assert_eq!(std::fs::read_dir(dir.path().join("ingest")).expect("dir").count(), 0);
    }

    #[tokio::test]
    async fn removing_is_idempotent() {
        let (_dir, store) = store();
        let digest = Digest::of(b"x");
        store.write_bytes(&digest, b"x").await.expect("write");
        store.remove(&digest).expect("remove");
        store.remove(&digest).expect("remove again");
        assert!(matches!(store.read(&digest).await, Err(ContentError::NotFound(_))));
    }
}
