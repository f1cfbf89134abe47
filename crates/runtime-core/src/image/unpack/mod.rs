//! Layer unpacking: a layer blob (tar, gzip or zstd) becomes an overlayfs lower directory,
//! the format containerd's overlay snapshotter produces, without ever touching anything
//! outside that directory.
//!
//! ```no_run
//! use std::fs::File;
//! use std::path::Path;
//! use runtime_core::image::unpack::{unpack_layer, Compression};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let blob = File::open("/var/lib/runtime-core/content/blobs/sha256/abc")?;
//! let compression = Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip");
//! let layer = unpack_layer(blob, compression, Path::new("/var/lib/runtime-core/snapshots/7/fs"))?;
//! println!("{} entries, diff id {}", layer.entries, layer.diff_id);
//! # Ok(())
//! # }
//! ```
//!
//! What each entry becomes:
//! - files, directories, symlinks, hard links and FIFOs, with their owner, mode (setuid,
//!   setgid and sticky included), modification time (also used as access time) and xattrs;
//!   directories get their metadata once the whole layer is written;
//! - `dir/.wh.NAME` becomes a character device 0:0 `dir/NAME` and `dir/.wh..wh..opq` the
//!   xattr `trusted.overlay.opaque=y` on `dir`, overlayfs' spelling of OCI whiteouts; a
//!   whiteout never hides an entry of its own layer (image spec, "Whiteouts");
//! - a later entry replaces an earlier one of the same path (directories merge);
//! - the root entry (`./`) is ignored and missing parent directories are created with mode
//!   0755, both as containerd does.
//!
//! Xattrs come from the PAX records `SCHILY.xattr.<name>`. All are set, `security.capability`
//! included, except overlayfs' own `trusted.overlay.*` / `user.overlay.*`, which only
//! whiteouts may produce (skipped with a warning: a shipped `redirect` could make overlayfs
//! look up other paths of the lower layers). A refusal by the kernel is tolerated, with a
//! warning, only when it means "this file system or this kind of file cannot hold it":
//! `EOPNOTSUPP` for any name, `EPERM` for `user.*` (refused on symlinks and special files)
//! and for `security.*` other than `security.capability` (an LSM refusing a foreign label).
//! Anything else fails the layer, since the image would run differently without it.
//!
//! What is refused, leaving the destination for the caller to delete: absolute names, `..`
//! components, empty names, NUL bytes, names over 4096 bytes, device nodes, hard links to
//! anything but an earlier non-directory of this layer, and any entry whose path goes
//! through a symlink of this layer — whatever the symlink points to, even inside the
//! layer. That last rule is the simplest one that is obviously safe; image builders walk
//! real directories and never produce such paths. (Symlinks of lower layers are not in
//! `dest`: `lib/x` over a lower `lib -> usr/lib` makes a real `lib` directory here, as
//! containerd's overlay fast path does.) The kernel does the checking: each parent
//! directory is opened relative to a descriptor of the destination with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)` (or one
//! `openat(O_NOFOLLOW)` per component where `openat2` is unavailable), and the final
//! component is created with `*at()` calls relative to it, never following a symlink.

mod decompress;
mod entry;
mod fs;
mod path;
mod whiteout;
mod xattr;

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::image::digest::{Digest, HashingReader};

pub use path::PathProblem;
pub use whiteout::WhiteoutProblem;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`+gzip`, Docker's `.tar.gzip`).
    Gzip,
    /// zstd (`+zstd`), including zstd:chunked layers.
    Zstd,
}

/// First bytes of a gzip stream (RFC 1952, ID1 ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// First bytes of a zstd frame (RFC 8878, magic number 0xFD2FB528 little-endian).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Skippable zstd frames start with 0x184D2A5? little-endian.
const ZSTD_SKIPPABLE_MAGIC_HIGH: [u8; 3] = [0x2a, 0x4d, 0x18];

/// Layer media types and their compression (OCI image spec `media-types.md`, Docker's
/// image manifest v2 schema 2, and containerd's `images/mediatypes.go` for zstd).
const LAYER_MEDIA_TYPES: [(&str, Compression); 12] = [
    ("application/vnd.oci.image.layer.v1.tar", Compression::None),
    ("application/vnd.oci.image.layer.v1.tar+gzip", Compression::Gzip),
    ("application/vnd.oci.image.layer.v1.tar+zstd", Compression::Zstd),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        Compression::None,
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        Compression::Gzip,
    ),
    (
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        Compression::Zstd,
    ),
    ("application/vnd.docker.image.rootfs.diff.tar", Compression::None),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::Gzip),
    ("application/vnd.docker.image.rootfs.diff.tar.zstd", Compression::Zstd),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        Compression::None,
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        Compression::Gzip,
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.zstd",
        Compression::Zstd,
    ),
];

impl Compression {
    /// The compression of a blob starting with `first_bytes` (four are enough): gzip and
    /// zstd by their magic numbers, anything else is taken for a plain tar.
    pub fn detect(first_bytes: &[u8]) -> Compression {
        if first_bytes.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if first_bytes.starts_with(&ZSTD_MAGIC)
            || (first_bytes.len() >= 4
                && first_bytes[0] & 0xf0 == 0x50
                && first_bytes[1..4] == ZSTD_SKIPPABLE_MAGIC_HIGH)
        {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The compression a layer media type declares; `None` for a media type that is not a
    /// known layer type (encrypted layers included), in which case pass `None` to
    /// [`unpack_layer`] to detect it from the content.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        let media_type = media_type.split(';').next().unwrap_or_default().trim();
        LAYER_MEDIA_TYPES
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(media_type))
            .map(|&(_, compression)| compression)
    }
}

/// What [`unpack_layer`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackedLayer {
    /// sha256 of the uncompressed tar stream, every byte of it (the image config's
    /// `rootfs.diff_ids` entry for this layer).
    pub diff_id: Digest,
    /// Bytes of regular file content written (hard links not counted twice).
    pub unpacked_bytes: u64,
    /// Tar entries processed, whiteouts and ignored root entries included; PAX and GNU
    /// extension headers are not entries.
    pub entries: u64,
}

/// Why a layer could not be unpacked. Nothing outside the destination has been touched;
/// the destination holds a partial layer and is the caller's to delete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The destination directory could not be opened or listed.
    #[error("opening destination {}: {source}", path.display())]
    Destination {
        /// The destination given.
        path: PathBuf,
        /// The failure.
        source: io::Error,
    },
    /// The destination directory is not empty.
    #[error("destination {} is not empty", .0.display())]
    DestinationNotEmpty(PathBuf),
    /// The blob could not be read, decompressed, or parsed as a tar.
    #[error("reading layer: {0}")]
    Read(#[source] io::Error),
    /// The content of an entry could not be read (corrupt or truncated blob).
    #[error("reading layer entry {path:?}: {source}")]
    ReadEntry {
        /// The entry's name.
        path: String,
        /// The failure.
        source: io::Error,
    },
    /// The layer ends inside an entry's content.
    #[error("entry {path:?}: layer ends after {written} of its {expected} bytes")]
    Truncated {
        /// The entry's name.
        path: String,
        /// Bytes read.
        written: u64,
        /// Bytes the header announced.
        expected: u64,
    },
    /// A header field cannot be used.
    #[error("entry {path:?}: invalid {field}: {source}")]
    InvalidHeader {
        /// The entry's name.
        path: String,
        /// The header field.
        field: &'static str,
        /// What is wrong with it.
        source: io::Error,
    },
    /// The entry's name is refused.
    #[error("entry {path:?}: {problem}")]
    InvalidPath {
        /// The entry's name (cut if very long).
        path: String,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A whiteout entry is refused.
    #[error("whiteout {path:?}: {problem}")]
    InvalidWhiteout {
        /// The whiteout entry's name.
        path: String,
        /// What is wrong with it.
        problem: WhiteoutProblem,
    },
    /// The entry's path goes through a symlink, which is never followed.
    #[error("entry {path:?}: goes through symlink {symlink:?}, and symlinks are never followed")]
    ThroughSymlink {
        /// The entry's name (`link -> target` for a hard link's target).
        path: String,
        /// The prefix of the path that is a symlink.
        symlink: String,
    },
    /// A component of the entry's path is not a directory.
    #[error("entry {path:?}: {component:?} is not a directory")]
    NotADirectory {
        /// The entry's name (`link -> target` for a hard link's target).
        path: String,
        /// The prefix of the path that is not a directory.
        component: String,
    },
    /// A character or block device entry.
    #[error("entry {path:?}: device nodes are not allowed in image layers")]
    DeviceNode {
        /// The entry's name.
        path: String,
    },
    /// A symlink with an unusable target.
    #[error("symlink {path:?}: target {target:?} is empty, has a NUL byte or exceeds 4096 bytes")]
    InvalidSymlinkTarget {
        /// The symlink's name.
        path: String,
        /// Its target (cut if very long).
        target: String,
    },
    /// A hard link whose target name is refused.
    #[error("hard link {path:?}: target {target:?}: {problem}")]
    InvalidLinkTarget {
        /// The hard link's name.
        path: String,
        /// Its target.
        target: String,
        /// What is wrong with the target.
        problem: PathProblem,
    },
    /// A hard link whose target is not an earlier non-directory entry of this layer.
    #[error("hard link {path:?}: target {target:?} is not an earlier file of this layer")]
    LinkTargetNotExtracted {
        /// The hard link's name.
        path: String,
        /// Its target.
        target: String,
    },
    /// An entry type this unpacker does not handle (GNU volume headers, multi-volume
    /// continuations, ...).
    #[error("entry {path:?}: unsupported tar entry type {:?}", char::from(*.kind))]
    UnsupportedType {
        /// The entry's name.
        path: String,
        /// The type flag byte.
        kind: u8,
    },
    /// Setting an xattr failed (see the module documentation for the tolerated refusals).
    #[error("entry {path:?}: setting xattr {name:?}: {source}")]
    Xattr {
        /// The entry's name.
        path: String,
        /// The xattr's name.
        name: String,
        /// The failure.
        source: io::Error,
    },
    /// A file system operation failed.
    #[error("entry {path:?}: {op}: {source}")]
    Io {
        /// The entry's name.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The failure.
        source: io::Error,
    },
}

/// Unpacks the layer blob `reader` into `dest`, an existing empty directory owned by the
/// caller, as an overlayfs lower directory; `compression` `None` detects it from the
/// content. The whole blob is read, trailing bytes after the tar's end included, so
/// [`UnpackedLayer::diff_id`] covers the whole uncompressed stream.
///
/// Needs root (or `CAP_CHOWN`, `CAP_FOWNER`, `CAP_SYS_ADMIN` for `trusted.*` xattrs and
/// `CAP_MKNOD` for whiteouts). On error nothing outside `dest` has been created or changed;
/// `dest` holds a partial layer for the caller to delete.
pub fn unpack_layer(
    reader: impl Read,
    compression: Option<Compression>,
    dest: &Path,
) -> Result<UnpackedLayer, UnpackError> {
    let _span = tracing::debug_span!("unpack_layer", dest = %dest.display()).entered();
    let mut unpacker = entry::Unpacker::new(dest)?;
    let (head, reader) = decompress::sniff(reader).map_err(UnpackError::Read)?;
    let compression = compression.unwrap_or_else(|| Compression::detect(&head));
    let stream = HashingReader::new(decompress::Decompressor::new(compression, reader));
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        unpacker.apply(entry.map_err(UnpackError::Read)?)?;
    }
    // The tar ends at its first zero block; the diff id covers the padding after it too.
    let mut stream = archive.into_inner();
    io::copy(&mut stream, &mut io::sink()).map_err(UnpackError::Read)?;
    let (diff_id, tar_len) = stream.finish();
    let (entries, unpacked_bytes) = unpacker.finish()?;
    tracing::debug!(%diff_id, tar_len, entries, unpacked_bytes, ?compression, "layer unpacked");
    Ok(UnpackedLayer {
        diff_id,
        unpacked_bytes,
        entries,
    })
}

#[cfg(test)]
mod tests;
