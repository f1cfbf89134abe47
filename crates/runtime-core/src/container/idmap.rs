//! Id-mapped mounts for containers in a pod's own user namespace.
//!
//! Image layers, volumes and the pod's `/etc` files belong to the host's ids; seen from a
//! user namespace whose root is host uid 65536, say, a file of host uid 0 belongs to
//! nobody, and the container's root could not write its own `/tmp`. An id-mapped mount
//! (`mount_setattr(2)` with `MOUNT_ATTR_IDMAP` and the pod's user namespace) shows the
//! files of host uid N as uid N inside, and writes through it land as uid N on disk. runc
//! 1.1 makes none, so the runtime makes them before runc runs:
//!
//! - the rootfs: overlayfs cannot be id-mapped itself, but it takes id-mapped lower
//!   layers. Each layer gets a detached id-mapped clone, attached under the bundle just
//!   long enough to mount the overlay (overlayfs keeps private clones of its layers); the
//!   upper directory, outside any mapping, belongs to the container's root on the host, so
//!   files the container writes belong to host uid 65536 + N there ([`super::rootfs`]).
//! - bind mounts: each source gets an id-mapped clone under the bundle's `idmapped/`
//!   directory, and the spec mounts that instead ([`map_bind_mounts`]). They stay until
//!   the container is removed ([`super::mounts::remove_unmounted`] takes them down before
//!   anything is deleted).
//!
//! This is the crate's only `unsafe`: `mount_setattr(2)` has no safe wrapper in rustix or
//! nix, so `set_idmap` calls it through `libc::syscall`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::libc;
use rustix::fs::CWD;
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use crate::oci::spec::Mount;

/// `MOUNT_ATTR_IDMAP` from `linux/mount.h`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// The directory of a bundle holding its id-mapped bind mount sources.
pub const BIND_MOUNTS_DIR: &str = "idmapped";

/// `struct mount_attr` of `linux/mount.h` (`MOUNT_ATTR_SIZE_VER0`, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Mounts at `target` (an existing file or directory) an id-mapped clone of the mount
/// tree at `source`, mapped through the user namespace pinned at `user_ns`; `recursive`
/// clones and maps the mounts below `source` too (what `rbind` asks).
pub fn mount_idmapped(source: &Path, user_ns: &Path, target: &Path, recursive: bool) -> io::Result<()> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let context =
        |what: &str, err: io::Error| io::Error::new(err.kind(), format!("{what} {}: {err}", source.display()));
    let tree = rustix::mount::open_tree(CWD, source, flags).map_err(|e| context("cloning", e.into()))?;
    let user_ns_file = File::open(user_ns).map_err(|e| context("opening the user namespace for", e))?;
    set_idmap(tree.as_fd(), user_ns_file.as_fd(), recursive).map_err(|e| context("id-mapping", e))?;
    rustix::mount::move_mount(tree.as_fd(), "", CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
        .map_err(|e| context("attaching the id-mapped", e.into()))
}

/// Marks the detached mount tree `tree` id-mapped through the user namespace `user_ns`.
#[allow(unsafe_code)]
fn set_idmap(tree: BorrowedFd<'_>, user_ns: BorrowedFd<'_>, recursive: bool) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: u64::try_from(user_ns.as_raw_fd()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr(2) reads `size_of::<MountAttr>()` bytes from `attr`, a live
    // `repr(C)` value laid out as the kernel's `struct mount_attr`, and a NUL-terminated
    // empty path; both outlive the call, and both descriptors are open for its duration.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &raw const attr,
            size_of::<MountAttr>(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Replaces the source of each bind mount in `mounts` with an id-mapped clone of it (see
/// the module doc), made under `dir` (created here). A failure names the mount; what was
/// made stays for [`super::mounts::remove_unmounted`] to take down.
pub fn map_bind_mounts(mounts: &mut [Mount], user_ns: &Path, dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (index, mount) in mounts.iter_mut().enumerate() {
        if mount.kind.as_deref() != Some("bind") {
            continue;
        }
        let Some(source) = mount.source.clone() else {
            continue;
        };
        let failed =
            |err: io::Error| io::Error::new(err.kind(), format!("id-mapped mount at {}: {err}", mount.destination));
        let target = dir.join(index.to_string());
        make_mount_point(Path::new(&source), &target).map_err(failed)?;
        let recursive = mount.options.iter().any(|option| option == "rbind");
        mount_idmapped(Path::new(&source), user_ns, &target, recursive).map_err(failed)?;
        mount.source = Some(target.to_string_lossy().into_owned());
    }
    Ok(())
}

/// An empty directory or file at `target`, as `source` is one or the other.
fn make_mount_point(source: &Path, target: &PathBuf) -> io::Result<()> {
    if std::fs::metadata(source)?.is_dir() {
        std::fs::create_dir(target)
    } else {
        OpenOptions::new().write(true).create_new(true).open(target).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_attribute_struct_is_the_kernel_s_first_version() {
        assert_eq!(size_of::<MountAttr>(), 32);
    }

    #[test]
    fn a_bind_mount_seen_through_a_user_namespace_maps_its_owners() {
        if !crate::test_support::is_root("id-mapped mounts") {
            return;
        }
        // A user namespace mapping 0..65536 to 300000..365536, pinned by a sleeping
        // process for the test's length.
        let mut holder = std::process::Command::new("unshare")
            .args(["--user", "--", "sleep", "30"])
            .spawn()
            .unwrap();
        let user_ns = PathBuf::from(format!("/proc/{}/ns/user", holder.id()));
        // Until unshare(2) has run, the process is still in this user namespace.
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(&user_ns).ok().as_ref() == Some(&ours) {
            assert!(std::time::Instant::now() < deadline, "unshare made no user namespace");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::fs::write(format!("/proc/{}/uid_map", holder.id()), "0 300000 65536\n").unwrap();
        std::fs::write(format!("/proc/{}/gid_map", holder.id()), "0 300000 65536\n").unwrap();

        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("root-owned"), "x").unwrap();
        let bundle = tempfile::tempdir().unwrap();
        let mut mounts = vec![
            Mount::new(
                "/data",
                "bind",
                host.path().to_str().unwrap(),
                &["rbind", "rprivate", "rw"],
            ),
            Mount::new("/proc", "proc", "proc", &[]),
        ];
        let dir = bundle.path().join(BIND_MOUNTS_DIR);
        let result = map_bind_mounts(&mut mounts, &user_ns, &dir);
        let _ = holder.kill();
        let _ = holder.wait();
        result.unwrap();
        let mapped = dir.join("0");
        assert_eq!(mounts[0].source.as_deref(), mapped.to_str());
        assert_eq!(mounts[1].source.as_deref(), Some("proc"), "only bind mounts are mapped");
        let owner = std::fs::metadata(mapped.join("root-owned")).unwrap();
        assert_eq!((owner.uid(), owner.gid()), (300000, 300000));
        super::super::mounts::remove_unmounted(bundle.path()).unwrap();
        assert!(host.path().join("root-owned").exists(), "the host's files stay");
    }
}
