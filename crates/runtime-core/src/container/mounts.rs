//! What is mounted under a container's directories, from `/proc/self/mountinfo`, and
//! taking all of it down before a directory is removed: the rootfs overlay and the
//! id-mapped mounts of a container in a user namespace ([`super::idmap`]), which may show
//! a host directory that a recursive removal must never walk into.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use rustix::io::Errno;
use rustix::mount::UnmountFlags;

/// The mount points at or below `dir`, deepest first. (mountinfo escapes white space in
/// paths; the runtime's own directories have none.)
pub fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.components().count()));
    points.dedup();
    points
}

/// Whether something is mounted exactly at `path`.
pub fn is_mount_point(path: &Path) -> bool {
    mount_points_under(path).iter().any(|point| point == path)
}

/// Detaches every mount at or below `dir`, deepest first; fails if any is left. When
/// nothing is mounted there, the mount table is read once.
pub fn unmount_under(dir: &Path) -> io::Result<()> {
    let points = mount_points_under(dir);
    if points.is_empty() {
        return Ok(());
    }
    for point in points {
        // Stacked mounts: take each layer off until the point is no mount any more.
        loop {
            match rustix::mount::unmount(&point, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
                Ok(()) => {}
                Err(Errno::INVAL | Errno::NOENT) => break,
                Err(errno) => return Err(io::Error::other(format!("unmounting {}: {errno}", point.display()))),
            }
        }
    }
    match mount_points_under(dir).first() {
        Some(left) => Err(io::Error::other(format!("{} is still mounted", left.display()))),
        None => Ok(()),
    }
}

/// Removes `dir` and everything in it once nothing is mounted below it; a missing
/// directory is fine. When a mount cannot be taken down, nothing is removed.
pub fn remove_unmounted(dir: &Path) -> io::Result<()> {
    unmount_under(dir)?;
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Detaches every mount at or below `dir`, then moves `dir` out of its place with one
/// rename, to a hidden sibling (`.<name>.removed`) whose path is returned, for
/// [`remove_unmounted`] to delete later, off the caller's path: deleting a bundle costs an
/// unlink per file and directory, each of which may wait on the filesystem's journal when
/// the disk is busy. `None` if `dir` does not exist. If the rename fails (a sibling of that
/// name left by a crash), `dir` is removed at once instead. A directory whose mounts cannot
/// be taken down stays where it is. What a crash leaves set aside, start-up reconciliation
/// removes with the other directories no record owns.
pub fn set_aside(dir: &Path) -> io::Result<Option<PathBuf>> {
    let Some(name) = dir.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no directory", dir.display()),
        ));
    };
    unmount_under(dir)?;
    let mut aside_name = OsString::from(".");
    aside_name.push(name);
    aside_name.push(".removed");
    let aside = dir.with_file_name(aside_name);
    match std::fs::rename(dir, &aside) {
        Ok(()) => Ok(Some(aside)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(_) => remove_unmounted(dir).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_a_mount_point_with_everything_under_it() {
        assert!(is_mount_point(Path::new("/")));
        assert!(!mount_points_under(Path::new("/")).is_empty());
        let dir = tempfile::tempdir().unwrap();
        assert!(mount_points_under(dir.path()).is_empty());
        assert!(!is_mount_point(dir.path()));
    }

    #[test]
    fn a_bind_mount_below_is_taken_down_before_the_removal() {
        if !crate::test_support::is_root("mounting") {
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "host data").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b");
        std::fs::create_dir_all(&target).unwrap();
        rustix::mount::mount_bind(outside.path(), &target).unwrap();
        rustix::mount::mount_bind(outside.path(), &target).unwrap();
        // Two mounts stacked on one point: listed once, both taken down.
        assert_eq!(mount_points_under(dir.path()), vec![target.clone()]);
        remove_unmounted(dir.path()).unwrap();
        assert!(!dir.path().exists());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep")).unwrap(),
            "host data"
        );
        remove_unmounted(dir.path()).unwrap();
    }

    #[test]
    fn a_directory_set_aside_leaves_its_place_at_once_and_is_removed_later() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("c1");
        std::fs::create_dir_all(dir.join("upper/etc")).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        let aside = set_aside(&dir).unwrap().expect("set aside");
        assert_eq!(aside, parent.path().join(".c1.removed"));
        assert!(!dir.exists());
        assert!(aside.join("upper/etc").is_dir(), "moved whole");
        remove_unmounted(&aside).unwrap();
        let names: Vec<_> = std::fs::read_dir(parent.path()).unwrap().flatten().collect();
        assert!(names.is_empty(), "{names:?}");
        assert!(set_aside(&dir).unwrap().is_none(), "an absent directory");
    }

    #[test]
    fn a_directory_whose_place_aside_is_taken_is_removed_at_once() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("exit.json"), "{}").unwrap();
        let taken = parent.path().join(".c1.removed");
        std::fs::create_dir_all(&taken).unwrap();
        std::fs::write(taken.join("left by a crash"), "").unwrap();
        assert!(set_aside(&dir).unwrap().is_none());
        assert!(!dir.exists());
    }

    #[test]
    fn mounts_below_come_down_before_a_directory_is_set_aside() {
        if !crate::test_support::is_root("mounting") {
            return;
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "host data").unwrap();
        let parent = tempfile::tempdir().unwrap();
        let target = parent.path().join("c1/rootfs");
        std::fs::create_dir_all(&target).unwrap();
        rustix::mount::mount_bind(outside.path(), &target).unwrap();
        let aside = set_aside(&parent.path().join("c1")).unwrap().expect("set aside");
        assert!(mount_points_under(parent.path()).is_empty());
        remove_unmounted(&aside).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("keep")).unwrap(),
            "host data"
        );
    }
}
