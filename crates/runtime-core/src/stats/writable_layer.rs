//! The space a container's writable layer (its overlay upper directory) takes: bytes in
//! use on disk and inodes, as `du` counts them (hard links once, symlinks not followed,
//! one filesystem).
//!
//! Walking a directory tree is the one costly part of a stats call, so each result is
//! kept for [`CACHE_FOR`] and a walk stops after [`MAX_ENTRIES`] entries (a tree that
//! large is reported at its partial size, and logged).

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a walk's result is reused.
pub const CACHE_FOR: Duration = Duration::from_secs(2);

/// The most entries one walk visits.
pub const MAX_ENTRIES: u64 = 200_000;

/// Bytes of a 512-byte block, the unit of `st_blocks`.
const BLOCK: u64 = 512;

/// What a directory tree takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated on disk.
    pub bytes: u64,
    /// Inodes (files, directories, links, ...), the top directory included.
    pub inodes: u64,
}

/// Recent walks, by directory.
#[derive(Debug, Default)]
pub struct LayerUsage {
    recent: Mutex<HashMap<PathBuf, (Instant, Usage)>>,
}

impl LayerUsage {
    /// The usage of `dir`, walked afresh unless a walk younger than [`CACHE_FOR`] is
    /// known.
    pub fn of(&self, dir: &Path) -> io::Result<Usage> {
        let now = Instant::now();
        {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.retain(|_, (at, _)| now.duration_since(*at) < CACHE_FOR);
            if let Some((_, usage)) = recent.get(dir) {
                return Ok(*usage);
            }
        }
        let usage = walk(dir, MAX_ENTRIES)?;
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(dir.to_path_buf(), (now, usage));
        Ok(usage)
    }
}

/// Walks the tree at `dir` (at most `max_entries` entries), staying on its filesystem.
pub fn walk(dir: &Path, max_entries: u64) -> io::Result<Usage> {
    let top = std::fs::symlink_metadata(dir)?;
    let device = top.dev();
    let mut usage = Usage {
        bytes: top.blocks() * BLOCK,
        inodes: 1,
    };
    let mut linked = HashSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            // Files come and go while the container runs.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            if usage.inodes >= max_entries {
                tracing::debug!(dir = %dir.display(), max_entries, "writable layer too large to count in full");
                return Ok(usage);
            }
            let Ok(entry) = entry else { continue };
            let Ok(metadata) = entry.metadata() else { continue };
            if metadata.nlink() > 1 && !metadata.is_dir() && !linked.insert((metadata.dev(), metadata.ino())) {
                continue;
            }
            usage.inodes += 1;
            usage.bytes += metadata.blocks() * BLOCK;
            if metadata.is_dir() && metadata.dev() == device {
                pending.push(entry.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_counts_bytes_and_inodes_once_per_hard_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = walk(dir.path(), MAX_ENTRIES).expect("walk");
        assert_eq!(empty.inodes, 1, "the top directory");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 64 * 1024]).expect("write");
        std::fs::hard_link(dir.path().join("sub/data"), dir.path().join("link")).expect("link");
        std::os::unix::fs::symlink("/usr", dir.path().join("symlink")).expect("symlink");
        let usage = walk(dir.path(), MAX_ENTRIES).expect("walk");
        assert_eq!(usage.inodes, 4, "top, sub, data (once), symlink");
        assert!(
            usage.bytes >= empty.bytes + 64 * 1024 && usage.bytes < empty.bytes + 3 * 64 * 1024,
            "{usage:?}"
        );
        assert_eq!(walk(dir.path(), 2).expect("walk").inodes, 2, "the walk is bounded");
    }

    #[test]
    fn results_are_cached_for_a_while() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layers = LayerUsage::default();
        let before = layers.of(dir.path()).expect("usage");
        std::fs::write(dir.path().join("new"), b"x").expect("write");
        assert_eq!(layers.of(dir.path()).expect("usage"), before, "cached");
        assert_eq!(walk(dir.path(), MAX_ENTRIES).expect("walk").inodes, before.inodes + 1);
    }
}
