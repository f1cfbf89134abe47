//! Kernel-checked file system operations below the destination directory.
//!
//! Every directory is opened relative to a descriptor of the destination with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)`
//! (or, where `openat2` is unavailable, one `openat(O_NOFOLLOW)` per component), and every
//! final component is created, inspected or removed with `*at()` calls relative to its
//! parent's descriptor, never following a symlink. A path is never joined into a string and
//! handed to a path-based call.

use std::cell::Cell;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::path::components;

/// Flags for every directory opened below the destination.
const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Mode of directories a layer implies without listing them (containerd uses the same).
pub(super) const IMPLIED_DIR_MODE: u32 = 0o755;

/// Why a directory below the destination could not be opened.
#[derive(Debug)]
pub(super) enum ResolveError {
    /// This prefix of the path is a symlink.
    Symlink(Vec<u8>),
    /// This prefix of the path exists and is not a directory.
    NotADirectory(Vec<u8>),
    /// This prefix of the path does not exist (only when not creating).
    Missing(Vec<u8>),
    /// Anything else.
    Io(io::Error),
}

/// The destination directory, and a cache of the last directory opened below it.
pub(super) struct Tree {
    root: Rc<OwnedFd>,
    /// The last directory resolved: layers list a directory's entries together.
    cached: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Cleared when `openat2` is refused (seccomp, kernels before 5.6).
    openat2_works: Cell<bool>,
}

impl Tree {
    /// Opens the destination directory itself; the caller names it, so it may be reached
    /// through symlinks.
    pub(super) fn open(dest: &Path) -> io::Result<Self> {
        let fd = rustix::fs::open(
            dest,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            root: Rc::new(fd),
            cached: None,
            openat2_works: Cell::new(true),
        })
    }

    /// Whether the destination holds nothing.
    pub(super) fn is_empty(&self) -> io::Result<bool> {
        for entry in Dir::read_from(self.root.as_fd())? {
            let entry = entry?;
            if !matches!(entry.file_name().to_bytes(), b"." | b"..") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Opens directory `dir` (a normalized path, empty for the destination itself).
    /// With `create`, missing directories are made with mode [`IMPLIED_DIR_MODE`], owned by
    /// the caller. Symlinks are refused in every component.
    pub(super) fn dir(&mut self, dir: &[u8], create: bool) -> Result<Rc<OwnedFd>, ResolveError> {
        if dir.is_empty() {
            return Ok(Rc::clone(&self.root));
        }
        if let Some((path, fd)) = &self.cached
            && path == dir
        {
            return Ok(Rc::clone(fd));
        }
        // One syscall for the common case; the walk below explains failures and creates.
        let fd = match self.open_beneath(self.root.as_fd(), dir) {
            Ok(fd) => fd,
            Err(_) => self.walk(dir, create)?,
        };
        let fd = Rc::new(fd);
        self.cached = Some((dir.to_vec(), Rc::clone(&fd)));
        Ok(fd)
    }

    /// Forgets the cached directory; called whenever a directory is removed.
    pub(super) fn forget_cache(&mut self) {
        self.cached = None;
    }

    fn walk(&self, dir: &[u8], create: bool) -> Result<OwnedFd, ResolveError> {
        let mut current: Option<OwnedFd> = None;
        let mut prefix_len = 0;
        for component in components(dir) {
            prefix_len += component.len() + usize::from(prefix_len > 0);
            let prefix = &dir[..prefix_len];
            let parent = current.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let mut created = false;
            let fd = loop {
                match self.open_beneath(parent, component) {
                    Ok(fd) => break fd,
                    Err(Errno::NOENT) if create && !created => {
                        match rustix::fs::mkdirat(parent, component, Mode::from_raw_mode(IMPLIED_DIR_MODE)) {
                            Ok(()) | Err(Errno::EXIST) => created = true,
                            Err(e) => return Err(ResolveError::Io(e.into())),
                        }
                    }
                    Err(Errno::NOENT) => return Err(ResolveError::Missing(prefix.to_vec())),
                    Err(Errno::LOOP) => return Err(ResolveError::Symlink(prefix.to_vec())),
                    // O_DIRECTORY on a symlink says ENOTDIR before O_NOFOLLOW can say ELOOP.
                    Err(Errno::NOTDIR) => {
                        let is_symlink = lstat_at(parent, component)
                            .map_err(ResolveError::Io)?
                            .is_some_and(|stat| file_type(&stat) == FileType::Symlink);
                        return Err(if is_symlink {
                            ResolveError::Symlink(prefix.to_vec())
                        } else {
                            ResolveError::NotADirectory(prefix.to_vec())
                        });
                    }
                    Err(e) => return Err(ResolveError::Io(e.into())),
                }
            };
            if created {
                // The umask may have narrowed the mode given to mkdirat.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(IMPLIED_DIR_MODE))
                    .map_err(|e| ResolveError::Io(e.into()))?;
            }
            current = Some(fd);
        }
        // `dir` is not empty, so the loop ran at least once.
        current.ok_or_else(|| ResolveError::Io(io::Error::other("empty directory path")))
    }

    /// Opens directory `path` below `parent`, refusing symlinks, magic links, `..` escapes
    /// and mount crossings.
    fn open_beneath(&self, parent: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
        if self.openat2_works.get() {
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV;
            match rustix::fs::openat2(parent, path, DIR_FLAGS, Mode::empty(), resolve) {
                Err(Errno::NOSYS | Errno::PERM) => self.openat2_works.set(false),
                // EAGAIN: a concurrent rename elsewhere on the system; retry is allowed
                // but the per-component walk is just as safe.
                Err(Errno::AGAIN) => {}
                other => return other,
            }
        }
        // Fallback: one component at a time, each refused if it is a symlink.
        let mut current: Option<OwnedFd> = None;
        for component in components(path) {
            let at = current.as_ref().map_or(parent, |fd| fd.as_fd());
            current = Some(rustix::fs::openat(at, component, DIR_FLAGS, Mode::empty())?);
        }
        current.ok_or(Errno::INVAL)
    }
}

/// `fstatat(parent, name, AT_SYMLINK_NOFOLLOW)`, `None` when nothing is there.
pub(super) fn lstat_at(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Stat>> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The type of a node from its `stat`.
pub(super) fn file_type(stat: &Stat) -> FileType {
    FileType::from_raw_mode(stat.st_mode)
}

/// Removes `name` in `parent`: a directory with everything below it, anything else with
/// `unlinkat`, which removes a symlink itself. Nothing is followed.
pub(super) fn remove_at(parent: BorrowedFd<'_>, name: &[u8], is_dir: bool) -> io::Result<()> {
    if !is_dir {
        return Ok(rustix::fs::unlinkat(parent, name, AtFlags::empty())?);
    }
    let dir = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())?;
    // Names first, then removal: deleting while reading a directory may skip entries.
    let mut children = Vec::new();
    for entry in Dir::read_from(&dir)? {
        let entry = entry?;
        let child: &CStr = entry.file_name();
        if matches!(child.to_bytes(), b"." | b"..") {
            continue;
        }
        let child_is_dir = match entry.file_type() {
            FileType::Unknown => {
                lstat_at(dir.as_fd(), child.to_bytes())?.is_some_and(|stat| file_type(&stat) == FileType::Directory)
            }
            kind => kind == FileType::Directory,
        };
        children.push((child.to_bytes().to_vec(), child_is_dir));
    }
    for (child, child_is_dir) in children {
        remove_at(dir.as_fd(), &child, child_is_dir)?;
    }
    Ok(rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)?)
}

/// A created node whose metadata is being applied.
pub(super) enum Node<'a> {
    /// A regular file, FIFO or directory, through a descriptor opened without following.
    Fd(BorrowedFd<'a>),
    /// A node addressed by its name in its parent and never followed: a symlink (which
    /// cannot be opened for `f*` calls) or a whiteout device.
    Named {
        /// The parent directory.
        parent: BorrowedFd<'a>,
        /// The node's name in it.
        name: &'a [u8],
    },
}

impl Node<'_> {
    /// Sets the owner (`fchown`, or `fchownat(AT_SYMLINK_NOFOLLOW)` for a symlink).
    pub(super) fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        let (uid, gid) = (
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        );
        match self {
            Self::Fd(fd) => rustix::fs::fchown(fd, uid, gid)?,
            Self::Named { parent, name } => rustix::fs::chownat(parent, *name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?,
        }
        Ok(())
    }

    /// Sets the permission bits, setuid/setgid/sticky included; a named node keeps its own
    /// (symlinks have none that matter, whiteouts keep 0).
    pub(super) fn chmod(&self, mode: u32) -> io::Result<()> {
        match self {
            Self::Fd(fd) => Ok(rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))?),
            Self::Named { .. } => Ok(()),
        }
    }

    /// Sets one extended attribute without following a symlink.
    pub(super) fn set_xattr(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        match self {
            Self::Fd(fd) => Ok(rustix::fs::fsetxattr(fd, name, value, XattrFlags::empty())?),
            Self::Named { parent, name: link } => {
                // There is no fsetxattr for a symlink and no setxattrat before Linux 6.13:
                // reach the parent through its descriptor's magic link and let lsetxattr
                // stop at the final component.
                let path = proc_fd_path(*parent, link);
                Ok(rustix::fs::lsetxattr(
                    path.as_slice(),
                    name,
                    value,
                    XattrFlags::empty(),
                )?)
            }
        }
    }

    /// Sets access and modification times without following a symlink.
    pub(super) fn set_times(&self, times: &Timestamps) -> io::Result<()> {
        match self {
            Self::Fd(fd) => rustix::fs::futimens(fd, times)?,
            Self::Named { parent, name } => rustix::fs::utimensat(parent, *name, times, AtFlags::SYMLINK_NOFOLLOW)?,
        }
        Ok(())
    }
}

/// `/proc/self/fd/<parent>/<name>`.
fn proc_fd_path(parent: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    path
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, symlink};

    use super::*;

    /// `root/{real/sub/, file, link -> real, abs -> <outside>}` and `outside/{keep}`.
    fn layout() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (root, outside) = (tmp.path().join("root"), tmp.path().join("outside"));
        std::fs::create_dir_all(root.join("real/sub")).expect("mkdir");
        std::fs::create_dir(&outside).expect("mkdir");
        std::fs::write(outside.join("keep"), b"x").expect("write");
        std::fs::write(root.join("file"), b"x").expect("write");
        symlink("real", root.join("link")).expect("symlink");
        symlink(&outside, root.join("abs")).expect("symlink");
        (tmp, root, outside)
    }

    #[test]
    fn resolution_refuses_symlinks_with_and_without_openat2() {
        for openat2 in [true, false] {
            let (_tmp, root, outside) = layout();
            let mut tree = Tree::open(&root).expect("open");
            tree.openat2_works.set(openat2);
            let desc = if openat2 { "openat2" } else { "openat walk" };
            assert!(tree.dir(b"real/sub", false).is_ok(), "{desc}: plain directory");
            for (path, symlink) in [(&b"link/sub"[..], &b"link"[..]), (b"abs", b"abs"), (b"abs/new", b"abs")] {
                match tree.dir(path, true) {
                    Err(ResolveError::Symlink(at)) => assert_eq!(at, symlink, "{desc}"),
                    other => panic!("{desc}: {path:?} gave {other:?}"),
                }
            }
            let not_a_dir = tree.dir(b"file/x", true);
            assert!(matches!(not_a_dir, Err(ResolveError::NotADirectory(at)) if at == b"file"));
            assert!(matches!(tree.dir(b"no/such", false), Err(ResolveError::Missing(at)) if at == b"no"));
            tree.dir(b"new/deeper", true).expect("created");
            assert_eq!(
                std::fs::metadata(root.join("new/deeper")).expect("stat").mode() & 0o7777,
                0o755
            );
            assert_eq!(
                std::fs::read_dir(&outside).expect("read_dir").count(),
                1,
                "{desc}: outside untouched"
            );
        }
    }

    #[test]
    fn removing_a_tree_removes_symlinks_not_their_targets() {
        let (_tmp, root, outside) = layout();
        symlink(&outside, root.join("real/sub/escape")).expect("symlink");
        let tree = Tree::open(&root).expect("open");
        remove_at(tree.root.as_fd(), b"real", true).expect("remove");
        assert!(!root.join("real").exists());
        assert_eq!(std::fs::read(outside.join("keep")).expect("read"), b"x");
        remove_at(tree.root.as_fd(), b"abs", false).expect("remove symlink");
        assert!(outside.is_dir());
    }
}
