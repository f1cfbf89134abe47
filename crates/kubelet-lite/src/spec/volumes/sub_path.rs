//! `subPath` mounts that cannot leave their volume.
//!
//! A pod author controls what is inside a writable volume: an init container can put
//! `ln -s / x` there and a later container mount `subPath: x`. Joining the sub path onto
//! the volume's directory and handing that to the runtime would bind-mount the host's
//! root (the class of CVE-2017-1002101 and CVE-2021-25741). So, as the kubelet does:
//!
//! 1. [`open_beneath`] walks the sub path one component at a time from a descriptor of
//!    the volume's directory, never letting the kernel follow a link: each component is
//!    opened with `O_PATH | O_NOFOLLOW`, a symbolic link is read and its target walked
//!    the same way, `..` steps back to the descriptor of the parent the walk came from.
//!    A path that goes above the volume, by `..` or through an absolute link pointing
//!    elsewhere, is refused. Links that stay inside the volume are followed (the
//!    `..data` links of configMap and secret volumes are such links). Missing directories
//!    are created on the way in writable volumes, with `mkdirat` on the parent's
//!    descriptor.
//! 2. [`bind_sub_path`] bind-mounts **the opened object itself** (`/proc/self/fd/N`) on a
//!    path under the pod's directory that only kubelet-lite writes to, and that path is
//!    what the runtime is given. What was checked is what is mounted: swapping a
//!    directory for a link after the walk changes nothing.
//!
//! The mounts live in `root_dir/pods/<uid>/volume-subpaths/<volume>/<container>/<index>`
//! (the kubelet's layout) and go with the pod's directory, unmounted before anything
//! under it is removed.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd as _, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, readlinkat};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, mkdirat};

use crate::spec::{SpecError, SubPathError};

/// How many symbolic links one sub path may go through (the kernel's own limit).
const MAX_LINKS: usize = 40;
/// The mode of directories created for a sub path, as the kubelet creates them.
const NEW_DIRECTORY_MODE: u32 = 0o755;

/// An object found inside a volume, held open so that it cannot be swapped.
#[derive(Debug)]
pub(crate) struct Opened {
    fd: OwnedFd,
    stat: FileStat,
}

impl Opened {
    /// Whether the object is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        SFlag::from_bits_truncate(self.stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
    }

    /// The object's device and inode numbers.
    #[cfg(test)]
    fn identity(&self) -> (u64, u64) {
        (self.stat.st_dev, self.stat.st_ino)
    }
}

/// Opens `sub_path` inside the directory `volume` without leaving it, creating missing
/// directories when `create` (see the module docs). `sub_path` is relative; `..` is
/// allowed only as long as it stays inside.
pub(crate) fn open_beneath(volume: &Path, sub_path: &Path, create: bool) -> Result<Opened, SubPathError> {
    let root = nix::fcntl::open(
        volume,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(os_error("open the volume", volume))?;
    // The volume's own path, for absolute links that point back into it.
    let volume_real = std::fs::canonicalize(volume).unwrap_or_else(|_| volume.to_owned());
    // The directories walked into, below the volume's directory.
    let mut walked: Vec<OwnedFd> = Vec::new();
    let mut pending = components(sub_path).map_err(|()| SubPathError::Escapes { through: None })?;
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if walked.pop().is_none() {
                return Err(SubPathError::Escapes { through: None });
            }
            continue;
        }
        let here = walked.last().unwrap_or(&root).as_fd();
        let fd = open_component(here, &name, create)?;
        let stat = fstat(&fd).map_err(os_error("stat", Path::new(&name)))?;
        let kind = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(SubPathError::TooManyLinks);
            }
            let target = readlinkat(&fd, "").map_err(os_error("read the link", Path::new(&name)))?;
            let target = PathBuf::from(target);
            let escapes = || SubPathError::Escapes {
                through: Some(format!("{name} -> {}", target.display())),
            };
            let relative = if target.is_absolute() {
                // Absolute links resolve from the host's root: only one that names a
                // place inside this volume stays inside.
                walked.clear();
                lexically_under(&target, &volume_real).ok_or_else(escapes)?
            } else {
                target.clone()
            };
            let mut next = components(&relative).map_err(|()| escapes())?;
            next.extend(pending);
            pending = next;
            continue;
        }
        if !pending.is_empty() && kind != SFlag::S_IFDIR {
            return Err(SubPathError::NotADirectory(name));
        }
        if pending.is_empty() {
            return Ok(Opened { fd, stat });
        }
        walked.push(fd);
    }
    // The sub path named the volume's directory itself (`.` or `a/..`).
    let fd = walked.pop().unwrap_or(root);
    let stat = fstat(&fd).map_err(os_error("stat", volume))?;
    Ok(Opened { fd, stat })
}

/// Opens one name in `dir` as a path descriptor without following a link, creating a
/// directory of that name first when it is missing and `create` is set.
fn open_component(dir: std::os::fd::BorrowedFd<'_>, name: &str, create: bool) -> Result<OwnedFd, SubPathError> {
    let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) if create => {
            match mkdirat(dir, name, Mode::from_bits_truncate(NEW_DIRECTORY_MODE)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(errno) => return Err(os_error("create the directory", Path::new(name))(errno)),
            }
            openat(dir, name, flags, Mode::empty()).map_err(os_error("open", Path::new(name)))
        }
        Err(Errno::ENOENT) => Err(SubPathError::Missing(name.to_owned())),
        Err(errno) => Err(os_error("open", Path::new(name))(errno)),
    }
}

/// The names of a relative path, `.` and empty names dropped; `Err` for an absolute one.
fn components(path: &Path) -> Result<VecDeque<String>, ()> {
    let mut names = VecDeque::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => names.push_back(name.to_string_lossy().into_owned()),
            Component::ParentDir => names.push_back("..".to_owned()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(()),
        }
    }
    Ok(names)
}

/// `path` relative to `base` when, with `.` and `..` taken lexically, it names `base` or
/// something under it.
fn lexically_under(path: &Path, base: &Path) -> Option<PathBuf> {
    let mut clean: Vec<&OsStr> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    let clean: PathBuf = std::iter::once(OsStr::new("/")).chain(clean).collect();
    clean.strip_prefix(base).ok().map(Path::to_path_buf)
}

/// Bind-mounts the object `opened` holds on `target` (made a directory or an empty file
/// to match), replacing whatever was mounted there before.
pub(crate) fn bind_sub_path(opened: &Opened, target: &Path) -> Result<(), SubPathError> {
    unmount_all(target).map_err(os_error("unmount", target))?;
    let io = |what| {
        move |source| SubPathError::Os {
            what,
            path: target.display().to_string(),
            source,
        }
    };
    match std::fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() == opened.is_dir() && !meta.is_symlink() => {}
        Ok(meta) => {
            // A leftover of another kind (the volume's object changed kind): nothing is
            // mounted on it any more, so it is only kubelet-lite's own empty entry.
            if meta.is_dir() {
                std::fs::remove_dir(target).map_err(io("remove"))?;
            } else {
                std::fs::remove_file(target).map_err(io("remove"))?;
            }
            create_target(target, opened.is_dir()).map_err(io("create"))?;
        }
        Err(_) => create_target(target, opened.is_dir()).map_err(io("create"))?,
    }
    let source = PathBuf::from(format!("/proc/self/fd/{}", opened.fd.as_raw_fd()));
    nix::mount::mount(
        Some(source.as_os_str()),
        target,
        None::<&OsStr>,
        MsFlags::MS_BIND,
        None::<&OsStr>,
    )
    .map_err(os_error("bind-mount the sub path on", target))
}

/// Wraps a failed system call on `path`.
fn os_error(what: &'static str, path: &Path) -> impl FnOnce(Errno) -> SubPathError {
    let path = path.display().to_string();
    move |errno| SubPathError::Os {
        what,
        path,
        source: errno.into(),
    }
}

fn create_target(target: &Path, dir: bool) -> std::io::Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dir {
        std::fs::create_dir(target)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map(drop)
    }
}

/// Takes down every mount stacked on `target` (none is fine).
fn unmount_all(target: &Path) -> Result<(), Errno> {
    loop {
        match nix::mount::umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            // Not a mount point (or not there): nothing left.
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(errno) => return Err(errno),
        }
    }
}

/// Resolves `sub_path` of volume `volume_name` (at `volume_dir` on the host) safely and
/// bind-mounts it on `target`; returns `target`, the host path to give the runtime.
/// Missing directories are created unless the volume is read-only. A refusal names the
/// volume and the sub path.
pub(crate) fn mount_sub_path(
    volume_name: &str,
    volume_dir: &Path,
    sub_path: &str,
    read_only_volume: bool,
    target: &Path,
) -> Result<PathBuf, SpecError> {
    let refused = |reason: SubPathError| SpecError::SubPath {
        volume: volume_name.to_owned(),
        sub_path: sub_path.to_owned(),
        reason,
    };
    let opened = open_beneath(volume_dir, Path::new(sub_path), !read_only_volume).map_err(refused)?;
    bind_sub_path(&opened, target).map_err(refused)?;
    Ok(target.to_owned())
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn volume() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("volume");
        std::fs::create_dir_all(volume.join("data/inner")).unwrap();
        std::fs::write(volume.join("data/file"), "in").unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        (dir, volume)
    }

    fn identity(path: &Path) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt as _;
        let meta = std::fs::metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    #[test]
    fn plain_paths_and_links_inside_the_volume_resolve_inside() {
        let (_dir, volume) = volume();
        symlink("data/inner", volume.join("rel")).unwrap();
        symlink(volume.join("data"), volume.join("abs")).unwrap();
        symlink("../file", volume.join("data/inner/up")).unwrap();
        let cases = [
            ("a directory", "data/inner", volume.join("data/inner")),
            ("a file", "data/file", volume.join("data/file")),
            ("a relative link", "rel", volume.join("data/inner")),
            (
                "an absolute link into the volume",
                "abs/inner",
                volume.join("data/inner"),
            ),
            ("a link going up inside", "data/inner/up", volume.join("data/file")),
            (
                "dot-dot that stays inside",
                "data/inner/../file",
                volume.join("data/file"),
            ),
            ("the volume itself", ".", volume.clone()),
        ];
        for (desc, sub_path, expected) in cases {
            let opened =
                open_beneath(&volume, Path::new(sub_path), false).unwrap_or_else(|err| panic!("{desc}: {err}"));
            assert_eq!(opened.identity(), identity(&expected), "{desc}");
        }
    }

    #[test]
    fn paths_leaving_the_volume_are_refused() {
        let (dir, volume) = volume();
        symlink("/", volume.join("root")).unwrap();
        symlink("../outside", volume.join("up")).unwrap();
        symlink("root", volume.join("chain")).unwrap();
        symlink(dir.path().join("outside"), volume.join("abs-out")).unwrap();
        symlink("loop", volume.join("loop")).unwrap();
        let cases = [
            ("a link to /", "root"),
            ("a name under a link to /", "root/tmp"),
            ("a link out with ..", "up"),
            ("a chain of links to /", "chain"),
            ("an absolute link outside", "abs-out"),
            ("dot-dot above the volume", "data/../../outside"),
        ];
        for (desc, sub_path) in cases {
            let err = open_beneath(&volume, Path::new(sub_path), true).unwrap_err();
            assert!(matches!(err, SubPathError::Escapes { .. }), "{desc}: {err}");
        }
        let err = open_beneath(&volume, Path::new("loop"), false).unwrap_err();
        assert!(matches!(err, SubPathError::TooManyLinks), "{err}");
        let err = open_beneath(&volume, Path::new("data/file/x"), false).unwrap_err();
        assert!(matches!(err, SubPathError::NotADirectory(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path().join("outside")).unwrap().count(), 0);
    }

    #[test]
    fn missing_directories_are_made_inside_only_when_writable() {
        let (dir, volume) = volume();
        symlink("/", volume.join("root")).unwrap();
        let err = open_beneath(&volume, Path::new("new/deeper"), false).unwrap_err();
        assert!(matches!(err, SubPathError::Missing(_)), "{err}");
        assert!(!volume.join("new").exists());
        let opened = open_beneath(&volume, Path::new("new/deeper"), true).unwrap();
        assert!(opened.is_dir());
        assert_eq!(opened.identity(), identity(&volume.join("new/deeper")));
        // `x/new` through a link out of the volume creates nothing outside.
        let name = format!("kubelet-lite-subpath-test-{}", std::process::id());
        let err = open_beneath(&volume, &Path::new("root/tmp").join(&name), true).unwrap_err();
        assert!(matches!(err, SubPathError::Escapes { .. }), "{err}");
        assert!(!Path::new("/tmp").join(&name).exists());
        assert_eq!(std::fs::read_dir(dir.path().join("outside")).unwrap().count(), 0);
    }

    #[test]
    fn absolute_links_are_taken_lexically_against_the_volume() {
        let base = Path::new("/var/lib/v");
        assert_eq!(
            lexically_under(Path::new("/var/lib/v/a"), base),
            Some(PathBuf::from("a"))
        );
        assert_eq!(
            lexically_under(Path::new("/var/lib/x/../v/a"), base),
            Some(PathBuf::from("a"))
        );
        assert_eq!(lexically_under(Path::new("/var/lib/v"), base), Some(PathBuf::new()));
        assert_eq!(lexically_under(Path::new("/var/lib/vv"), base), None);
        assert_eq!(lexically_under(Path::new("/"), base), None);
    }
}
