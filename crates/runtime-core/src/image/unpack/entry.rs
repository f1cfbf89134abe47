//! One tar entry at a time: what each kind of entry becomes below the destination.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tar::EntryType;

use super::UnpackError;
use super::fs::{Node, ResolveError, Tree, file_type, lstat_at, remove_at};
use super::path::{EntryPath, display};
use super::whiteout::{self, Whiteout};
use super::xattr::{self, OnRefusal};

/// Size of the buffer file content is copied through.
const COPY_BUFFER_LEN: usize = 128 * 1024;

/// Owner, mode, times and xattrs an entry's header asks for.
#[derive(Debug, Clone)]
struct Meta {
    uid: u32,
    gid: u32,
    /// Permission bits with setuid, setgid and sticky.
    mode: u32,
    /// Modification time; the access time is set to the same.
    mtime: Timespec,
    /// `(name, value)` from the `SCHILY.xattr.*` PAX records.
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose metadata is applied once everything inside it is written.
struct PendingDir {
    display: String,
    meta: Meta,
}

/// The state of one layer being unpacked.
pub(super) struct Unpacker {
    tree: Tree,
    /// Non-directories created by this layer: the only valid hard link targets.
    extracted: BTreeSet<Vec<u8>>,
    /// Directories listed by the layer, by path; a directory listed twice keeps the last
    /// header's metadata.
    pending_dirs: BTreeMap<Vec<u8>, PendingDir>,
    buffer: Vec<u8>,
    /// Tar entries seen (extension headers not counted).
    pub(super) entries: u64,
    /// Bytes of regular file content written.
    pub(super) unpacked_bytes: u64,
}

impl Unpacker {
    /// Starts unpacking into `dest`, which must be an empty directory.
    pub(super) fn new(dest: &Path) -> Result<Self, UnpackError> {
        let destination = |source| UnpackError::Destination {
            path: dest.to_path_buf(),
            source,
        };
        let tree = Tree::open(dest).map_err(destination)?;
        if !tree.is_empty().map_err(destination)? {
            return Err(UnpackError::DestinationNotEmpty(dest.to_path_buf()));
        }
        Ok(Self {
            tree,
            extracted: BTreeSet::new(),
            pending_dirs: BTreeMap::new(),
            buffer: vec![0; COPY_BUFFER_LEN],
            entries: 0,
            unpacked_bytes: 0,
        })
    }

    /// Applies one tar entry.
    pub(super) fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let mut kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            // Global PAX headers carry nothing containerd or Docker apply.
            return Ok(());
        }
        self.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let shown = display(&raw);
        if entry.header().as_old().linkflag[0] == 0 && raw.ends_with(b"/") {
            // Pre-POSIX tars mark directories with a slash only (Go's archive/tar agrees).
            kind = EntryType::Directory;
        }
        let path = EntryPath::parse(&raw).map_err(|problem| UnpackError::InvalidPath {
            path: shown.clone(),
            problem,
        })?;
        let Some((parent, name)) = path.split_last() else {
            // `.` or `./`: containerd ignores the root entry; the snapshot owns its root.
            tracing::debug!(path = %shown, "layer root entry ignored");
            return Ok(());
        };
        let meta = read_meta(&mut entry, &shown)?;
        match whiteout::classify(name) {
            Ok(Whiteout::No) => {}
            Ok(Whiteout::Opaque) => return self.opaque(parent, &shown),
            Ok(Whiteout::Remove(deleted)) => return self.whiteout(parent, deleted, &meta, &shown),
            Err(problem) => return Err(UnpackError::InvalidWhiteout { path: shown, problem }),
        }
        let link_target = || entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
        match kind {
            EntryType::Char | EntryType::Block => Err(UnpackError::DeviceNode { path: shown }),
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.regular(&path, entry, &meta, &shown)
            }
            EntryType::Directory => self.directory(&path, meta, shown),
            EntryType::Symlink => self.symlink(&path, &link_target(), &meta, &shown),
            EntryType::Link => self.hard_link(&path, &link_target(), &meta, &shown),
            EntryType::Fifo => self.fifo(&path, &meta, &shown),
            other => Err(UnpackError::UnsupportedType {
                path: shown,
                kind: other.as_byte(),
            }),
        }
    }

    /// Applies the metadata of the directories now that nothing more will be written into
    /// them.
    pub(super) fn finish(mut self) -> Result<(u64, u64), UnpackError> {
        for (path, dir) in std::mem::take(&mut self.pending_dirs) {
            let fd = self
                .tree
                .dir(&path, false)
                .map_err(|e| resolve_error(e, &dir.display))?;
            apply_meta(&Node::Fd(fd.as_fd()), &dir.meta, &dir.display)?;
        }
        Ok((self.entries, self.unpacked_bytes))
    }

    fn regular<R: Read>(
        &mut self,
        path: &EntryPath,
        mut content: tar::Entry<'_, R>,
        meta: &Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let (parent, name) = self.prepare(path, false, shown)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| io_error(shown, "creating file", e.into()))?;
        let mut file = File::from(fd);
        let expected = content.size();
        let mut written = 0u64;
        loop {
            let n = match content.read(&mut self.buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::ReadEntry {
                        path: shown.to_string(),
                        source,
                    });
                }
            };
            file.write_all(&self.buffer[..n])
                .map_err(|e| io_error(shown, "writing file", e))?;
            written += n as u64;
        }
        // Sparse entries expand to more than their archive size; others must match it.
        if !content.header().entry_type().is_gnu_sparse() && written != expected {
            return Err(UnpackError::Truncated {
                path: shown.to_string(),
                written,
                expected,
            });
        }
        self.unpacked_bytes += written;
        apply_meta(&Node::Fd(file.as_fd()), meta, shown)?;
        self.extracted.insert(path.as_bytes().to_vec());
        Ok(())
    }

    fn directory(&mut self, path: &EntryPath, meta: Meta, shown: String) -> Result<(), UnpackError> {
        let (parent, name) = self.prepare(path, true, &shown)?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(0o700)) {
            // An earlier entry made it (listed or implied): the directories merge.
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(io_error(&shown, "creating directory", e.into())),
        }
        self.pending_dirs
            .insert(path.as_bytes().to_vec(), PendingDir { display: shown, meta });
        Ok(())
    }

    fn symlink(&mut self, path: &EntryPath, target: &[u8], meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        // Any text is a valid symlink content; it is never followed here.
        if target.is_empty() || target.contains(&0) || target.len() > super::path::MAX_NAME_LEN {
            return Err(UnpackError::InvalidSymlinkTarget {
                path: shown.to_string(),
                target: display(target),
            });
        }
        let (parent, name) = self.prepare(path, false, shown)?;
        rustix::fs::symlinkat(target, &parent, name).map_err(|e| io_error(shown, "creating symlink", e.into()))?;
        apply_meta(
            &Node::Named {
                parent: parent.as_fd(),
                name,
            },
            meta,
            shown,
        )?;
        self.extracted.insert(path.as_bytes().to_vec());
        Ok(())
    }

    fn hard_link(&mut self, path: &EntryPath, raw_target: &[u8], meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let target_shown = display(raw_target);
        let target = EntryPath::parse(raw_target).map_err(|problem| UnpackError::InvalidLinkTarget {
            path: shown.to_string(),
            target: target_shown.clone(),
            problem,
        })?;
        let not_extracted = || UnpackError::LinkTargetNotExtracted {
            path: shown.to_string(),
            target: target_shown.clone(),
        };
        let Some((target_dir, target_name)) = target.split_last() else {
            return Err(not_extracted());
        };
        let target_parent = match self.tree.dir(target_dir, false) {
            Ok(fd) => fd,
            Err(ResolveError::Missing(_)) => return Err(not_extracted()),
            Err(e) => return Err(resolve_error(e, &format!("{shown} -> {target_shown}"))),
        };
        if !self.extracted.contains(target.as_bytes()) {
            return Err(not_extracted());
        }
        let (parent, name) = self.prepare(path, false, shown)?;
        rustix::fs::linkat(&target_parent, target_name, &parent, name, AtFlags::empty())
            .map_err(|e| io_error(shown, "creating hard link", e.into()))?;
        // Like containerd, the link's header metadata is applied (to the shared inode).
        let stat = lstat_at(parent.as_fd(), name)
            .map_err(|e| io_error(shown, "inspecting hard link", e))?
            .ok_or_else(not_extracted)?;
        if file_type(&stat) == FileType::Symlink {
            apply_meta(
                &Node::Named {
                    parent: parent.as_fd(),
                    name,
                },
                meta,
                shown,
            )?;
        } else {
            let fd = open_node(parent.as_fd(), name).map_err(|e| io_error(shown, "opening hard link", e))?;
            apply_meta(&Node::Fd(fd.as_fd()), meta, shown)?;
        }
        self.extracted.insert(path.as_bytes().to_vec());
        Ok(())
    }

    fn fifo(&mut self, path: &EntryPath, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let (parent, name) = self.prepare(path, false, shown)?;
        rustix::fs::mknodat(&parent, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            .map_err(|e| io_error(shown, "creating fifo", e.into()))?;
        let fd = open_node(parent.as_fd(), name).map_err(|e| io_error(shown, "opening fifo", e))?;
        apply_meta(&Node::Fd(fd.as_fd()), meta, shown)?;
        self.extracted.insert(path.as_bytes().to_vec());
        Ok(())
    }

    /// `dir/.wh..wh..opq`: marks `dir` (created if needed) opaque for overlayfs.
    fn opaque(&mut self, dir: &[u8], shown: &str) -> Result<(), UnpackError> {
        let fd = self.tree.dir(dir, true).map_err(|e| resolve_error(e, shown))?;
        rustix::fs::fsetxattr(
            &fd,
            whiteout::OVERLAY_OPAQUE_XATTR,
            whiteout::OVERLAY_OPAQUE_VALUE,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| UnpackError::Xattr {
            path: shown.to_string(),
            name: whiteout::OVERLAY_OPAQUE_XATTR.to_string(),
            source: e.into(),
        })
    }

    /// `dir/.wh.NAME`: a character device 0:0 `dir/NAME`, overlayfs' whiteout.
    fn whiteout(&mut self, dir: &[u8], deleted: &[u8], meta: &Meta, shown: &str) -> Result<(), UnpackError> {
        let parent = self.tree.dir(dir, true).map_err(|e| resolve_error(e, shown))?;
        let existing = lstat_at(parent.as_fd(), deleted).map_err(|e| io_error(shown, "inspecting whiteout", e))?;
        if existing.is_some() {
            // The spec: a whiteout only hides lower layers, never entries of its own layer.
            tracing::debug!(path = %shown, "whiteout of an entry of the same layer ignored");
            return Ok(());
        }
        let device = rustix::fs::makedev(0, 0);
        rustix::fs::mknodat(&parent, deleted, FileType::CharacterDevice, Mode::empty(), device)
            .map_err(|e| io_error(shown, "creating whiteout device", e.into()))?;
        Node::Named {
            parent: parent.as_fd(),
            name: deleted,
        }
        .chown(meta.uid, meta.gid)
        .map_err(|e| io_error(shown, "changing whiteout owner", e))
    }

    /// Resolves the parent of `path` (creating missing directories) and clears the way for
    /// the entry: whatever an earlier entry left at `path` is removed, unless both are
    /// directories (`keep_dir`), which merge.
    fn prepare<'p>(
        &mut self,
        path: &'p EntryPath,
        keep_dir: bool,
        shown: &str,
    ) -> Result<(Rc<OwnedFd>, &'p [u8]), UnpackError> {
        let (dir, name) = path.split_last().ok_or_else(|| UnpackError::InvalidPath {
            path: shown.to_string(),
            problem: super::PathProblem::Empty,
        })?;
        let parent = self.tree.dir(dir, true).map_err(|e| resolve_error(e, shown))?;
        let Some(stat) = lstat_at(parent.as_fd(), name).map_err(|e| io_error(shown, "inspecting", e))? else {
            return Ok((parent, name));
        };
        let is_dir = file_type(&stat) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok((parent, name));
        }
        remove_at(parent.as_fd(), name, is_dir).map_err(|e| io_error(shown, "replacing earlier entry", e))?;
        if is_dir {
            self.tree.forget_cache();
            let path = path.as_bytes();
            self.pending_dirs.remove(path);
            let files: Vec<_> = self.extracted.range(below(path)).cloned().collect();
            for file in files {
                self.extracted.remove(&file);
            }
            let dirs: Vec<_> = self
                .pending_dirs
                .range(below(path))
                .map(|(dir, _)| dir.clone())
                .collect();
            for dir in dirs {
                self.pending_dirs.remove(&dir);
            }
            // The parent descriptor is still good: only `path` and below were removed.
        } else {
            self.extracted.remove(path.as_bytes());
        }
        Ok((parent, name))
    }
}

/// The keys strictly below `path`: they sort between `path/` and `path0` (`'0'` follows
/// `'/'`), so a removed subtree is forgotten in time proportional to its size.
fn below(path: &[u8]) -> std::ops::Range<Vec<u8>> {
    [path, b"/"].concat()..[path, b"0"].concat()
}

/// Opens a regular file or FIFO created by this layer, without following and without
/// blocking on the FIFO, to apply metadata through its descriptor.
fn open_node(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    Ok(rustix::fs::openat(parent, name, flags, Mode::empty())?)
}

/// Reads owner, mode, mtime and xattrs from the entry's headers.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, shown: &str) -> Result<Meta, UnpackError> {
    let header_error = |field: &'static str, source: io::Error| UnpackError::InvalidHeader {
        path: shown.to_string(),
        field,
        source,
    };
    let mut xattrs = Vec::new();
    let mut pax_mtime = None;
    if let Some(records) = entry.pax_extensions().map_err(|e| header_error("pax records", e))? {
        for record in records {
            let record = record.map_err(|e| header_error("pax records", e))?;
            let key = record.key_bytes();
            if let Some(name) = key.strip_prefix(xattr::PAX_XATTR_PREFIX) {
                xattrs.push((name.to_vec(), record.value_bytes().to_vec()));
            } else if key == b"mtime" {
                pax_mtime = parse_pax_time(record.value_bytes());
            }
        }
    }
    let header = entry.header();
    let out_of_range = |field| header_error(field, io::Error::new(io::ErrorKind::InvalidData, "out of range"));
    let uid = header.uid().map_err(|e| header_error("uid", e))?;
    let gid = header.gid().map_err(|e| header_error("gid", e))?;
    let mtime = match pax_mtime {
        Some(time) => time,
        None => {
            let secs = header.mtime().map_err(|e| header_error("mtime", e))?;
            Timespec {
                tv_sec: i64::try_from(secs).map_err(|_| out_of_range("mtime"))?,
                tv_nsec: 0,
            }
        }
    };
    Ok(Meta {
        uid: u32::try_from(uid).map_err(|_| out_of_range("uid"))?,
        gid: u32::try_from(gid).map_err(|_| out_of_range("gid"))?,
        mode: header.mode().map_err(|e| header_error("mode", e))? & 0o7777,
        mtime,
        xattrs,
    })
}

/// Parses a PAX time (`1700000000.123456789`, `-1.5`): seconds and an optional fraction.
fn parse_pax_time(value: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for digit in frac.bytes().chain(std::iter::repeat(b'0')).take(9) {
        nanos = nanos * 10 + i64::from(digit - b'0');
    }
    Some(match (negative, nanos) {
        (false, _) => Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
        (true, 0) => Timespec {
            tv_sec: -secs,
            tv_nsec: 0,
        },
        (true, _) => Timespec {
            tv_sec: -secs - 1,
            tv_nsec: 1_000_000_000 - nanos,
        },
    })
}

/// Owner first (it clears setuid/setgid and `security.capability`), then mode, xattrs,
/// and times last.
fn apply_meta(node: &Node<'_>, meta: &Meta, shown: &str) -> Result<(), UnpackError> {
    node.chown(meta.uid, meta.gid)
        .map_err(|e| io_error(shown, "changing owner", e))?;
    node.chmod(meta.mode).map_err(|e| io_error(shown, "changing mode", e))?;
    for (name, value) in &meta.xattrs {
        let name_shown = String::from_utf8_lossy(name);
        if !xattr::is_allowed(name) {
            tracing::warn!(path = %shown, xattr = %name_shown, "overlayfs xattr in layer skipped");
            continue;
        }
        let Err(e) = node.set_xattr(name, value) else { continue };
        let errno = Errno::from_io_error(&e);
        match errno.map(|errno| xattr::on_refusal(name, errno)) {
            Some(OnRefusal::Skip) => {
                tracing::warn!(path = %shown, xattr = %name_shown, error = %e, "xattr skipped");
            }
            _ => {
                return Err(UnpackError::Xattr {
                    path: shown.to_string(),
                    name: name_shown.into_owned(),
                    source: e,
                });
            }
        }
    }
    let times = Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    };
    node.set_times(&times).map_err(|e| io_error(shown, "setting times", e))
}

fn io_error(shown: &str, op: &'static str, source: io::Error) -> UnpackError {
    UnpackError::Io {
        path: shown.to_string(),
        op,
        source,
    }
}

fn resolve_error(e: ResolveError, shown: &str) -> UnpackError {
    let path = shown.to_string();
    match e {
        ResolveError::Symlink(at) => UnpackError::ThroughSymlink {
            path,
            symlink: display(&at),
        },
        ResolveError::NotADirectory(at) => UnpackError::NotADirectory {
            path,
            component: display(&at),
        },
        ResolveError::Missing(at) => UnpackError::Io {
            path,
            op: "opening directory",
            source: io::Error::new(io::ErrorKind::NotFound, format!("{} does not exist", display(&at))),
        },
        ResolveError::Io(source) => UnpackError::Io {
            path,
            op: "opening parent directory",
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times_keep_their_fraction() {
        type Case<'a> = (&'a str, &'a [u8], Option<(i64, i64)>);
        let cases: [Case<'_>; 7] = [
            ("whole seconds", b"1700000000", Some((1_700_000_000, 0))),
            (
                "nanoseconds",
                b"1700000000.123456789",
                Some((1_700_000_000, 123_456_789)),
            ),
            ("short fraction", b"1.5", Some((1, 500_000_000))),
            ("fraction beyond nanoseconds", b"1.1234567891", Some((1, 123_456_789))),
            ("negative with fraction", b"-1.25", Some((-2, 750_000_000))),
            ("garbage", b"12x", None),
            ("empty", b"", None),
        ];
        for (desc, value, want) in cases {
            let got = parse_pax_time(value).map(|t| (t.tv_sec, t.tv_nsec));
            assert_eq!(got, want, "{desc}");
        }
    }
}
