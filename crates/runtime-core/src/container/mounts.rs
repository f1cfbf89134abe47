//! What is mounted under a container's directories, from `/proc/self/mountinfo`, and
//! taking all of it down before a directory is removed: the rootfs overlay and the
//! id-mapped mounts of a container in a user namespace ([`super::idmap`]), which may show
//! a host directory that a recursive removal must never walk into.

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

/// Detaches every mount at or below `dir`, deepest first; fails if any is left.
pub fn unmount_under(dir: &Path) -> io::Result<()> {
    for point in mount_points_under(dir) {
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
}
