//! Behaviour of [`unpack_layer`], one behaviour per test; they run as root (they chown,
//! mknod and set `trusted.*` xattrs, as the runtime does).
//!
//! Hostile layers are unpacked into `dest` inside a scratch directory that also holds a
//! `sentinel` tree; every refusal test checks that nothing in the scratch directory outside
//! `dest` changed (names, types, sizes, modes, owners, mtimes, xattrs).

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tar::{EntryType, Header};

use super::*;

/// Default mtime of test entries.
const MTIME: u64 = 1_600_000_000;
/// mtime of everything in the sentinel tree.
const SENTINEL_MTIME: u64 = 1_000_000_000;

/// A `security.capability` value (VFS_CAP_REVISION_2, effective, CAP_NET_RAW permitted).
const CAP_NET_RAW: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

#[derive(Clone, Copy)]
struct Attrs {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

impl Default for Attrs {
    fn default() -> Self {
        Self {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: MTIME,
        }
    }
}

/// Builds layer tars entry by entry, writing header bytes itself so that any name (absolute,
/// `..`, NUL, 5000 bytes) can be written; long or odd names go into PAX records.
struct Layer {
    builder: tar::Builder<Vec<u8>>,
    /// PAX records for the next entry.
    records: Vec<(&'static str, Vec<u8>)>,
}

impl Layer {
    fn new() -> Self {
        Self {
            builder: tar::Builder::new(Vec::new()),
            records: Vec::new(),
        }
    }

    fn entry(&mut self, kind: EntryType, name: &[u8], link: &[u8], content: &[u8], attrs: Attrs) -> &mut Self {
        let mut records = std::mem::take(&mut self.records);
        if name.len() > 99 || name.contains(&0) {
            records.push(("path", name.to_vec()));
        }
        if link.len() > 99 || link.contains(&0) {
            records.push(("linkpath", link.to_vec()));
        }
        if !records.is_empty() {
            let records = records.iter().map(|(key, value)| (*key, value.as_slice()));
            self.builder.append_pax_extensions(records).expect("append pax");
        }
        let mut header = Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(attrs.mode);
        header.set_uid(attrs.uid);
        header.set_gid(attrs.gid);
        header.set_mtime(attrs.mtime);
        header.set_size(content.len() as u64);
        let old = header.as_old_mut();
        let n = name.len().min(99);
        old.name[..n].copy_from_slice(&name[..n]);
        let n = link.len().min(99);
        old.linkname[..n].copy_from_slice(&link[..n]);
        header.set_cksum();
        self.builder.append(&header, content).expect("append entry");
        self
    }

    /// PAX records for the next entry.
    fn pax(&mut self, records: &[(&'static str, &[u8])]) -> &mut Self {
        self.records
            .extend(records.iter().map(|&(key, value)| (key, value.to_vec())));
        self
    }

    fn file(&mut self, name: &str, content: &[u8]) -> &mut Self {
        self.entry(EntryType::Regular, name.as_bytes(), b"", content, Attrs::default())
    }

    fn file_with(&mut self, name: &str, content: &[u8], attrs: Attrs) -> &mut Self {
        self.entry(EntryType::Regular, name.as_bytes(), b"", content, attrs)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.dir_with(
            name,
            Attrs {
                mode: 0o755,
                ..Attrs::default()
            },
        )
    }

    fn dir_with(&mut self, name: &str, attrs: Attrs) -> &mut Self {
        self.entry(EntryType::Directory, name.as_bytes(), b"", b"", attrs)
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            Attrs {
                mode: 0o777,
                ..Attrs::default()
            },
        )
    }

    fn hard_link(&mut self, name: &str, target: &str) -> &mut Self {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            target.as_bytes(),
            b"",
            Attrs::default(),
        )
    }

    /// The tar, with its two zero blocks.
    fn tar(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()))
            .into_inner()
            .expect("finish tar")
    }
}

/// A scratch directory with an empty `dest` and a `sentinel` tree beside it.
struct Scene {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    /// `<root>/sentinel`, holding `file` and `dir/`.
    sentinel: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let dest = root.join("dest");
        let sentinel = root.join("sentinel");
        fs::create_dir(&dest).expect("dest");
        fs::create_dir_all(sentinel.join("dir")).expect("sentinel");
        fs::write(sentinel.join("file"), b"keep").expect("sentinel file");
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(SENTINEL_MTIME);
        for path in [
            sentinel.join("file"),
            sentinel.join("dir"),
            sentinel.clone(),
            root.clone(),
        ] {
            File::open(&path)
                .and_then(|f| f.set_modified(old))
                .expect("age sentinel");
        }
        Self {
            _tmp: tmp,
            root,
            dest,
            sentinel,
        }
    }

    fn unpack(&self, layer: &[u8]) -> Result<UnpackedLayer, UnpackError> {
        unpack_layer(layer, None, &self.dest)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dest.join(name)
    }

    /// Everything under the scratch directory but `dest`.
    fn outside_dest(&self) -> Vec<String> {
        let mut seen = Vec::new();
        walk(&self.root, &self.dest, &mut seen);
        seen.sort();
        seen
    }
}

fn walk(path: &Path, skip: &Path, seen: &mut Vec<String>) {
    if path == skip {
        return;
    }
    let meta = fs::symlink_metadata(path).expect("lstat");
    seen.push(format!(
        "{} mode={:o} uid={} gid={} size={} mtime={}.{} xattrs={:?}",
        path.display(),
        meta.mode(),
        meta.uid(),
        meta.gid(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        xattr_names(path),
    ));
    if meta.is_dir() {
        for child in fs::read_dir(path).expect("read_dir") {
            walk(&child.expect("dir entry").path(), skip, seen);
        }
    }
}

fn xattr_names(path: &Path) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(path, &mut buf[..]).expect("llistxattr");
    buf.truncate(n);
    buf
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(rustix::io::Errno::NODATA) => None,
        Err(e) => panic!("lgetxattr {name} on {}: {e}", path.display()),
    }
}

fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()))
}

/// Unpacks the layer `build` makes for a fresh scene, expects `refused` to accept the error,
/// and checks nothing outside `dest` changed.
fn assert_refused(build: impl FnOnce(&Scene) -> Vec<u8>, refused: impl FnOnce(&UnpackError) -> bool) {
    let scene = Scene::new();
    let layer = build(&scene);
    let before = scene.outside_dest();
    let err = scene.unpack(&layer).expect_err("hostile layer must be refused");
    assert!(refused(&err), "unexpected error: {err}");
    assert_eq!(scene.outside_dest(), before, "something outside dest changed");
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// zstd with ruzstd's encoder, which writes frame checksums.
fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

fn simple_layer() -> Vec<u8> {
    Layer::new()
        .dir("etc/")
        .file("etc/hostname", b"edge-1\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .tar()
}

// ---- what lands ----

#[test]
fn regular_file_gets_content_owner_mode_and_mtime() {
    let scene = Scene::new();
    let attrs = Attrs {
        mode: 0o640,
        uid: 1234,
        gid: 5678,
        mtime: 1_500_000_000,
    };
    scene
        .unpack(&Layer::new().file_with("app/config", b"key=value\n", attrs).tar())
        .expect("unpack");
    let path = scene.path("app/config");
    let meta = lstat(&path);
    assert!(meta.file_type().is_file());
    assert_eq!(fs::read(&path).expect("read"), b"key=value\n");
    assert_eq!(meta.mode() & 0o7777, 0o640);
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_500_000_000, 0));
    assert_eq!(meta.atime(), 1_500_000_000);
}

#[test]
fn setuid_setgid_and_sticky_bits_survive_the_owner_change() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir_with(
            "tmp/",
            Attrs {
                mode: 0o1777,
                ..Attrs::default()
            },
        )
        .file_with(
            "bin/su",
            b"\x7fELF",
            Attrs {
                mode: 0o4755,
                uid: 0,
                gid: 0,
                mtime: MTIME,
            },
        )
        .file_with(
            "bin/wall",
            b"\x7fELF",
            Attrs {
                mode: 0o2755,
                uid: 1000,
                gid: 5,
                mtime: MTIME,
            },
        )
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(lstat(&scene.path("bin/su")).mode() & 0o7777, 0o4755);
    assert_eq!(lstat(&scene.path("bin/wall")).mode() & 0o7777, 0o2755);
    assert_eq!(lstat(&scene.path("tmp")).mode() & 0o7777, 0o1777);
}

#[test]
fn directory_metadata_is_applied_after_its_content_is_written() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir_with(
            "srv/",
            Attrs {
                mode: 0o750,
                uid: 33,
                gid: 33,
                mtime: 1_400_000_000,
            },
        )
        .file("srv/index.html", b"<html>")
        .dir_with(
            "srv/ro/",
            Attrs {
                mode: 0o555,
                uid: 0,
                gid: 0,
                mtime: 1_300_000_000,
            },
        )
        .file("srv/ro/data", b"read-only directory, written anyway")
        .tar();
    scene.unpack(&layer).expect("unpack");
    let srv = lstat(&scene.path("srv"));
    assert!(srv.is_dir());
    assert_eq!(srv.mode() & 0o7777, 0o750);
    assert_eq!((srv.uid(), srv.gid()), (33, 33));
    assert_eq!(
        srv.mtime(),
        1_400_000_000,
        "writing the content must not leave the mtime at now"
    );
    let ro = lstat(&scene.path("srv/ro"));
    assert_eq!((ro.mode() & 0o7777, ro.mtime()), (0o555, 1_300_000_000));
    assert_eq!(
        fs::read(scene.path("srv/ro/data")).expect("read"),
        b"read-only directory, written anyway"
    );
}

#[test]
fn missing_parent_directories_are_created_with_mode_0755() {
    let scene = Scene::new();
    scene
        .unpack(&Layer::new().file("usr/local/bin/tool", b"#!/bin/sh\n").tar())
        .expect("unpack");
    for dir in ["usr", "usr/local", "usr/local/bin"] {
        let meta = lstat(&scene.path(dir));
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.mode() & 0o7777, 0o755, "{dir}");
    }
}

#[test]
fn symlink_keeps_any_target_text_and_gets_owner_and_mtime_without_following() {
    let scene = Scene::new();
    let sentinel_file = scene.sentinel.join("file");
    let before = scene.outside_dest();
    let layer = Layer::new()
        .entry(
            EntryType::Symlink,
            b"abs",
            sentinel_file.as_os_str().as_encoded_bytes(),
            b"",
            Attrs {
                mode: 0o777,
                uid: 42,
                gid: 43,
                mtime: 1_234_567_890,
            },
        )
        .symlink("up", "../../../../etc/shadow")
        .symlink("dangling", "no such file")
        .tar();
    scene.unpack(&layer).expect("unpack");
    let abs = lstat(&scene.path("abs"));
    assert!(abs.file_type().is_symlink());
    assert_eq!(fs::read_link(scene.path("abs")).expect("readlink"), sentinel_file);
    assert_eq!((abs.uid(), abs.gid(), abs.mtime()), (42, 43, 1_234_567_890));
    assert_eq!(
        fs::read_link(scene.path("up")).expect("readlink"),
        Path::new("../../../../etc/shadow")
    );
    assert_eq!(
        fs::read_link(scene.path("dangling")).expect("readlink"),
        Path::new("no such file")
    );
    assert_eq!(
        scene.outside_dest(),
        before,
        "chown/utimensat must not follow the symlink"
    );
}

#[test]
fn hard_link_shares_the_inode_of_an_earlier_file() {
    let scene = Scene::new();
    let layer = Layer::new()
        .file("bin/busybox", b"multi-call")
        .hard_link("bin/sh", "bin/busybox")
        .tar();
    let unpacked = scene.unpack(&layer).expect("unpack");
    let (target, link) = (lstat(&scene.path("bin/busybox")), lstat(&scene.path("bin/sh")));
    assert_eq!(target.ino(), link.ino());
    assert_eq!(link.nlink(), 2);
    assert_eq!(fs::read(scene.path("bin/sh")).expect("read"), b"multi-call");
    assert_eq!(unpacked.unpacked_bytes, 10, "a hard link adds no content");
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink_itself() {
    let scene = Scene::new();
    let layer = Layer::new()
        .symlink("lib64", "/lib")
        .hard_link("lib64-again", "lib64")
        .tar();
    scene.unpack(&layer).expect("unpack");
    let link = lstat(&scene.path("lib64-again"));
    assert!(link.file_type().is_symlink());
    assert_eq!(link.ino(), lstat(&scene.path("lib64")).ino());
}

#[test]
fn fifo_is_created_with_owner_and_mode() {
    let scene = Scene::new();
    let attrs = Attrs {
        mode: 0o620,
        uid: 7,
        gid: 8,
        mtime: MTIME,
    };
    scene
        .unpack(&Layer::new().entry(EntryType::Fifo, b"run/ctl", b"", b"", attrs).tar())
        .expect("unpack");
    let meta = lstat(&scene.path("run/ctl"));
    assert!(meta.file_type().is_fifo());
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid(), meta.mtime()),
        (0o620, 7, 8, MTIME as i64)
    );
}

#[test]
fn xattrs_from_pax_records_are_set_file_capabilities_included() {
    let scene = Scene::new();
    let layer = Layer::new()
        .pax(&[
            ("SCHILY.xattr.trusted.checksum", b"abc"),
            ("SCHILY.xattr.user.note", b"dir"),
        ])
        .dir("data/")
        .pax(&[
            ("SCHILY.xattr.security.capability", &CAP_NET_RAW),
            ("SCHILY.xattr.user.note", b"\0binary\xff"),
        ])
        .file_with(
            "bin/ping",
            b"\x7fELF",
            Attrs {
                mode: 0o755,
                uid: 1000,
                gid: 1000,
                mtime: MTIME,
            },
        )
        // The kernel refuses user.* xattrs on symlinks: tolerated, with a warning.
        .pax(&[("SCHILY.xattr.user.note", b"link")])
        .symlink("bin/ping6", "ping")
        .tar();
    scene.unpack(&layer).expect("unpack");
    let ping = scene.path("bin/ping");
    assert_eq!(
        xattr(&ping, "security.capability").as_deref(),
        Some(&CAP_NET_RAW[..]),
        "kept after chown"
    );
    assert_eq!(xattr(&ping, "user.note").as_deref(), Some(&b"\0binary\xff"[..]));
    assert_eq!(lstat(&ping).uid(), 1000);
    assert_eq!(
        xattr(&scene.path("data"), "trusted.checksum").as_deref(),
        Some(&b"abc"[..])
    );
    assert_eq!(xattr(&scene.path("data"), "user.note").as_deref(), Some(&b"dir"[..]));
    assert_eq!(xattr(&scene.path("bin/ping6"), "user.note"), None);
}

#[test]
fn trusted_xattr_on_a_symlink_is_set_without_following() {
    let scene = Scene::new();
    let layer = Layer::new()
        .pax(&[("SCHILY.xattr.trusted.tag", b"on-link")])
        .symlink("link", "target")
        .file("target", b"x")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(
        xattr(&scene.path("link"), "trusted.tag").as_deref(),
        Some(&b"on-link"[..])
    );
    assert_eq!(xattr(&scene.path("target"), "trusted.tag"), None);
}

#[test]
fn overlay_xattrs_shipped_in_a_layer_are_skipped() {
    let scene = Scene::new();
    let layer = Layer::new()
        .pax(&[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ])
        .dir("sneaky/")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(xattr(&scene.path("sneaky"), "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&scene.path("sneaky"), "trusted.overlay.redirect"), None);
}

// ---- whiteouts ----

#[test]
fn whiteout_becomes_a_character_device_0_0() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir("etc/")
        .entry(
            EntryType::Regular,
            b"etc/.wh.motd",
            b"",
            b"",
            Attrs {
                uid: 5,
                gid: 6,
                ..Attrs::default()
            },
        )
        .tar();
    scene.unpack(&layer).expect("unpack");
    let meta = lstat(&scene.path("etc/motd"));
    assert!(meta.file_type().is_char_device());
    assert_eq!(meta.rdev(), 0);
    assert_eq!((meta.uid(), meta.gid()), (5, 6));
    assert!(
        fs::symlink_metadata(scene.path("etc/.wh.motd")).is_err(),
        "whiteout entries are not extracted"
    );
}

#[test]
fn opaque_marker_sets_trusted_overlay_opaque_and_is_not_extracted() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/kept", b"same layer")
        .file("new/dir/.wh..wh..opq", b"")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(
        xattr(&scene.path("var"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr(&scene.path("new/dir"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&scene.path("new"), "trusted.overlay.opaque"), None);
    assert!(fs::symlink_metadata(scene.path("var/.wh..wh..opq")).is_err());
    assert_eq!(fs::read(scene.path("var/kept")).expect("read"), b"same layer");
}

#[test]
fn whiteout_does_not_hide_an_entry_of_the_same_layer() {
    let scene = Scene::new();
    let layer = Layer::new()
        .file("a", b"listed before its whiteout")
        .file(".wh.a", b"")
        .file(".wh.b", b"")
        .file("b", b"listed after its whiteout")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(
        fs::read(scene.path("a")).expect("read a"),
        b"listed before its whiteout"
    );
    assert_eq!(fs::read(scene.path("b")).expect("read b"), b"listed after its whiteout");
}

// ---- replacing ----

#[test]
fn later_entry_replaces_an_earlier_file() {
    let scene = Scene::new();
    let layer = Layer::new()
        .file("f", b"first")
        .file("f", b"second")
        .file("g", b"file")
        .symlink("g", "f")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(fs::read(scene.path("f")).expect("read"), b"second");
    assert!(lstat(&scene.path("g")).file_type().is_symlink());
}

#[test]
fn later_file_replaces_an_earlier_symlink_without_writing_through_it() {
    let scene = Scene::new();
    let before = scene.outside_dest();
    let target = scene.sentinel.join("file");
    let layer = Layer::new()
        .entry(
            EntryType::Symlink,
            b"x",
            target.as_os_str().as_encoded_bytes(),
            b"",
            Attrs::default(),
        )
        .file("x", b"overwritten?")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert!(lstat(&scene.path("x")).file_type().is_file());
    assert_eq!(fs::read(scene.path("x")).expect("read"), b"overwritten?");
    assert_eq!(fs::read(&target).expect("read sentinel"), b"keep");
    assert_eq!(scene.outside_dest(), before);
}

#[test]
fn later_file_replaces_an_earlier_directory_tree() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir("d/")
        .file("d/sub/f", b"gone")
        .symlink("d/l", "/")
        .file("d", b"now a file")
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(fs::read(scene.path("d")).expect("read"), b"now a file");
}

#[test]
fn directories_listed_twice_merge_and_take_the_last_metadata() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir_with(
            "d/",
            Attrs {
                mode: 0o700,
                ..Attrs::default()
            },
        )
        .file("d/f", b"kept")
        .dir_with(
            "d/",
            Attrs {
                mode: 0o711,
                uid: 9,
                ..Attrs::default()
            },
        )
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert_eq!(fs::read(scene.path("d/f")).expect("read"), b"kept");
    let d = lstat(&scene.path("d"));
    assert_eq!((d.mode() & 0o7777, d.uid()), (0o711, 9));
}

// ---- names and formats ----

#[test]
fn root_entry_is_ignored() {
    let scene = Scene::new();
    let before = lstat(&scene.dest);
    let layer = Layer::new()
        .dir_with(
            "./",
            Attrs {
                mode: 0o700,
                uid: 99,
                ..Attrs::default()
            },
        )
        .file("./f", b"x")
        .tar();
    let unpacked = scene.unpack(&layer).expect("unpack");
    assert_eq!(unpacked.entries, 2);
    assert_eq!(
        (lstat(&scene.dest).mode(), lstat(&scene.dest).uid()),
        (before.mode(), before.uid())
    );
    assert!(scene.path("f").is_file());
}

#[test]
fn long_names_and_subsecond_mtimes_come_from_pax_records() {
    let scene = Scene::new();
    let long = format!("{}/file", "d".repeat(200));
    let layer = Layer::new().pax(&[("mtime", b"1600000000.25")]).file(&long, b"x").tar();
    scene.unpack(&layer).expect("unpack");
    let meta = lstat(&scene.path(&long));
    assert_eq!((meta.mtime(), meta.mtime_nsec()), (1_600_000_000, 250_000_000));
}

#[test]
fn old_style_directory_with_only_a_trailing_slash_is_a_directory() {
    let scene = Scene::new();
    let mut tar = Layer::new()
        .entry(
            EntryType::Directory,
            b"old/",
            b"",
            b"",
            Attrs {
                mode: 0o755,
                ..Attrs::default()
            },
        )
        .tar();
    // Type flag NUL (pre-POSIX regular file), then fix the checksum.
    tar[156] = 0;
    let mut header = Header::new_old();
    header.as_mut_bytes().copy_from_slice(&tar[..512]);
    header.set_cksum();
    tar[..512].copy_from_slice(header.as_bytes());
    scene.unpack(&tar).expect("unpack");
    assert!(lstat(&scene.path("old")).is_dir());
}

#[test]
fn entries_and_unpacked_bytes_are_counted() {
    let scene = Scene::new();
    let layer = Layer::new()
        .dir("d/")
        .file("d/a", b"12345")
        .file("d/b", b"678")
        .file("d/.wh.c", b"")
        .symlink("d/l", "a")
        .tar();
    let unpacked = scene.unpack(&layer).expect("unpack");
    assert_eq!((unpacked.entries, unpacked.unpacked_bytes), (5, 8));
}

#[test]
fn non_empty_destination_is_refused() {
    let scene = Scene::new();
    fs::write(scene.path("leftover"), b"x").expect("write");
    let err = scene.unpack(&simple_layer()).expect_err("must refuse");
    assert!(matches!(err, UnpackError::DestinationNotEmpty(_)), "{err}");
}

#[test]
fn truncated_layer_fails() {
    let scene = Scene::new();
    let tar = Layer::new().file("big", &[7u8; 4000]).tar();
    let err = scene.unpack(&tar[..2000]).expect_err("must fail");
    assert!(
        matches!(err, UnpackError::Truncated { .. } | UnpackError::Read(_)),
        "{err}"
    );
}

#[test]
fn corrupt_gzip_fails() {
    let scene = Scene::new();
    let mut blob = gzip(&simple_layer());
    let middle = blob.len() / 2;
    blob[middle] ^= 0xff;
    let err = scene.unpack(&blob).expect_err("must fail");
    assert!(
        matches!(err, UnpackError::Read(_) | UnpackError::ReadEntry { .. }),
        "{err}"
    );
}

#[test]
fn corrupt_zstd_fails_on_its_frame_checksum() {
    let mut blob = zstd(&simple_layer());
    let last = blob.len() - 1;
    blob[last] ^= 0xff; // the checksum itself: the content decodes, the check must fail
    let scene = Scene::new();
    let err = scene.unpack(&blob).expect_err("must fail");
    assert!(err.to_string().contains("checksum"), "{err}");
}

// ---- compression and diff id ----

#[test]
fn diff_id_is_the_sha256_of_the_whole_uncompressed_tar() {
    let mut tar = simple_layer();
    // More zero blocks and arbitrary bytes after the end-of-archive marker: still hashed.
    tar.extend_from_slice(&[0u8; 2048]);
    tar.extend_from_slice(b"trailing garbage after the end of the archive");
    let want = Digest::of(&tar);
    for (desc, blob) in [("plain", tar.clone()), ("gzip", gzip(&tar)), ("zstd", zstd(&tar))] {
        let scene = Scene::new();
        let unpacked = scene.unpack(&blob).unwrap_or_else(|e| panic!("{desc}: {e}"));
        assert_eq!(unpacked.diff_id, want, "{desc}");
        assert_eq!(
            fs::read(scene.path("etc/hostname")).expect("read"),
            b"edge-1\n",
            "{desc}"
        );
    }
}

#[test]
fn gzip_layer_with_several_members_is_read_whole() {
    let tar = simple_layer();
    let (head, tail) = tar.split_at(700);
    let blob = [gzip(head), gzip(tail)].concat();
    let scene = Scene::new();
    let unpacked = unpack_layer(&blob[..], Some(Compression::Gzip), &scene.dest).expect("unpack");
    assert_eq!(unpacked.diff_id, Digest::of(&tar));
    assert!(lstat(&scene.path("etc/localtime")).file_type().is_symlink());
}

#[test]
fn zstd_layer_with_several_frames_and_a_skippable_frame_is_read_whole() {
    let tar = simple_layer();
    let (head, tail) = tar.split_at(1000);
    let skippable = [&[0x5e, 0x2a, 0x4d, 0x18][..], &5u32.to_le_bytes(), b"skip!"].concat();
    let blob = [zstd(head), skippable, zstd(tail)].concat();
    let scene = Scene::new();
    let unpacked = scene.unpack(&blob).expect("unpack");
    assert_eq!(unpacked.diff_id, Digest::of(&tar));
    assert_eq!(fs::read(scene.path("etc/hostname")).expect("read"), b"edge-1\n");
}

#[test]
fn explicit_compression_overrides_detection() {
    // A plain tar whose first file name starts with the gzip magic bytes.
    let tar = Layer::new()
        .entry(EntryType::Regular, b"\x1f\x8bodd", b"", b"x", Attrs::default())
        .tar();
    assert_eq!(Compression::detect(&tar), Compression::Gzip);
    let scene = Scene::new();
    unpack_layer(&tar[..], Some(Compression::None), &scene.dest).expect("unpack");
    assert!(scene.dest.join(std::ffi::OsStr::from_bytes(b"\x1f\x8bodd")).is_file());
}

#[test]
fn compression_is_detected_from_magic_bytes() {
    let cases: [(&str, &[u8], Compression); 6] = [
        ("gzip", &[0x1f, 0x8b, 0x08, 0x00], Compression::Gzip),
        ("zstd frame", &[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
        ("zstd skippable frame", &[0x50, 0x2a, 0x4d, 0x18], Compression::Zstd),
        ("tar", b"etc/", Compression::None),
        ("empty", b"", Compression::None),
        ("half a zstd magic", &[0x28, 0xb5], Compression::None),
    ];
    for (desc, bytes, want) in cases {
        assert_eq!(Compression::detect(bytes), want, "{desc}");
    }
}

#[test]
fn compression_follows_the_media_type() {
    let cases = [
        (
            "oci tar",
            "application/vnd.oci.image.layer.v1.tar",
            Some(Compression::None),
        ),
        (
            "oci gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Some(Compression::Gzip),
        ),
        (
            "oci zstd",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Some(Compression::Zstd),
        ),
        (
            "docker gzip",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Some(Compression::Gzip),
        ),
        (
            "docker foreign",
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Some(Compression::Gzip),
        ),
        (
            "nondistributable",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            Some(Compression::Zstd),
        ),
        (
            "with a parameter",
            "application/vnd.oci.image.layer.v1.tar+gzip; foo=bar",
            Some(Compression::Gzip),
        ),
        (
            "encrypted",
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            None,
        ),
        ("not a layer", "application/vnd.oci.image.config.v1+json", None),
    ];
    for (desc, media_type, want) in cases {
        assert_eq!(Compression::from_media_type(media_type), want, "{desc}");
    }
}

// ---- hostile layers ----

#[test]
fn absolute_path_is_refused() {
    assert_refused(
        |scene| {
            let evil = scene.sentinel.join("evil");
            Layer::new()
                .entry(
                    EntryType::Regular,
                    evil.as_os_str().as_encoded_bytes(),
                    b"",
                    b"pwned",
                    Attrs::default(),
                )
                .tar()
        },
        |e| {
            matches!(
                e,
                UnpackError::InvalidPath {
                    problem: PathProblem::Absolute,
                    ..
                }
            )
        },
    );
}

#[test]
fn dotdot_component_is_refused() {
    for name in [
        "../sentinel/evil",
        "a/../../sentinel/evil",
        "a/b/../../../sentinel/evil",
    ] {
        assert_refused(
            |_| Layer::new().file(name, b"pwned").tar(),
            |e| {
                matches!(
                    e,
                    UnpackError::InvalidPath {
                        problem: PathProblem::DotDot,
                        ..
                    }
                )
            },
        );
    }
}

#[test]
fn path_through_a_symlink_to_an_absolute_directory_is_refused() {
    assert_refused(
        |scene| {
            Layer::new()
                .entry(
                    EntryType::Symlink,
                    b"link",
                    scene.sentinel.as_os_str().as_encoded_bytes(),
                    b"",
                    Attrs::default(),
                )
                .file("link/evil", b"pwned")
                .tar()
        },
        |e| matches!(e, UnpackError::ThroughSymlink { symlink, .. } if symlink == "link"),
    );
}

#[test]
fn path_through_a_symlink_to_dotdot_is_refused() {
    assert_refused(
        |_| {
            Layer::new()
                .symlink("up", "..")
                .file("up/sentinel/evil", b"pwned")
                .tar()
        },
        |e| matches!(e, UnpackError::ThroughSymlink { .. }),
    );
}

#[test]
fn path_through_a_symlink_inside_the_layer_is_refused_too() {
    assert_refused(
        |_| {
            Layer::new()
                .dir("real/")
                .symlink("alias", "real")
                .file("alias/f", b"x")
                .tar()
        },
        |e| matches!(e, UnpackError::ThroughSymlink { symlink, .. } if symlink == "alias"),
    );
}

#[test]
fn directory_replaced_by_a_symlink_cannot_be_written_through() {
    assert_refused(
        |scene| {
            Layer::new()
                .dir("d/")
                .file("d/a", b"x")
                .entry(
                    EntryType::Symlink,
                    b"d",
                    scene.sentinel.as_os_str().as_encoded_bytes(),
                    b"",
                    Attrs::default(),
                )
                .file("d/evil", b"pwned")
                .tar()
        },
        |e| matches!(e, UnpackError::ThroughSymlink { .. }),
    );
}

#[test]
fn directory_metadata_is_not_applied_through_a_symlink_that_replaced_it() {
    // `d` is listed as a directory (metadata pending), then replaced by a symlink to the
    // sentinel: the pending chmod/chown/utimes must not land on the sentinel.
    let scene = Scene::new();
    let before = scene.outside_dest();
    let layer = Layer::new()
        .dir_with(
            "d/",
            Attrs {
                mode: 0o700,
                uid: 4242,
                ..Attrs::default()
            },
        )
        .entry(
            EntryType::Symlink,
            b"d",
            scene.sentinel.as_os_str().as_encoded_bytes(),
            b"",
            Attrs::default(),
        )
        .tar();
    scene.unpack(&layer).expect("unpack");
    assert!(lstat(&scene.path("d")).file_type().is_symlink());
    assert_eq!(scene.outside_dest(), before);
}

#[test]
fn hard_link_to_an_absolute_target_is_refused() {
    assert_refused(
        |scene| {
            let target = scene.sentinel.join("file");
            Layer::new()
                .entry(
                    EntryType::Link,
                    b"link",
                    target.as_os_str().as_encoded_bytes(),
                    b"",
                    Attrs::default(),
                )
                .tar()
        },
        |e| {
            matches!(
                e,
                UnpackError::InvalidLinkTarget {
                    problem: PathProblem::Absolute,
                    ..
                }
            )
        },
    );
}

#[test]
fn hard_link_with_a_dotdot_target_is_refused() {
    assert_refused(
        |_| Layer::new().hard_link("link", "../sentinel/file").tar(),
        |e| {
            matches!(
                e,
                UnpackError::InvalidLinkTarget {
                    problem: PathProblem::DotDot,
                    ..
                }
            )
        },
    );
}

#[test]
fn hard_link_through_a_symlink_is_refused() {
    assert_refused(
        |scene| {
            Layer::new()
                .entry(
                    EntryType::Symlink,
                    b"s",
                    scene.sentinel.as_os_str().as_encoded_bytes(),
                    b"",
                    Attrs::default(),
                )
                .hard_link("link", "s/file")
                .tar()
        },
        |e| matches!(e, UnpackError::ThroughSymlink { symlink, .. } if symlink == "s"),
    );
}

#[test]
fn hard_link_to_an_entry_not_yet_extracted_is_refused() {
    for (desc, layer) in [
        (
            "target listed later",
            Layer::new().hard_link("link", "later").file("later", b"x").tar(),
        ),
        ("target never listed", Layer::new().hard_link("link", "nowhere").tar()),
        (
            "target is a directory",
            Layer::new().dir("d/").hard_link("link", "d").tar(),
        ),
        (
            "target is an implied directory",
            Layer::new().file("d/f", b"x").hard_link("link", "d").tar(),
        ),
        (
            "target is a whiteout",
            Layer::new().file(".wh.gone", b"").hard_link("link", "gone").tar(),
        ),
    ] {
        assert_refused(
            |_| layer,
            |e| {
                let ok = matches!(e, UnpackError::LinkTargetNotExtracted { .. });
                assert!(ok, "{desc}: {e}");
                ok
            },
        );
    }
}

#[test]
fn device_nodes_are_refused() {
    for kind in [EntryType::Char, EntryType::Block] {
        assert_refused(
            |_| Layer::new().entry(kind, b"dev/sda", b"", b"", Attrs::default()).tar(),
            |e| {
                matches!(e, UnpackError::DeviceNode { .. })
                    && e.to_string() == "entry \"dev/sda\": device nodes are not allowed in image layers"
            },
        );
    }
}

#[test]
fn whiteout_of_dot_or_dotdot_is_refused() {
    for name in ["d/.wh..", "d/.wh...", ".wh..."] {
        assert_refused(
            |_| Layer::new().dir("d/").file(name, b"").tar(),
            |e| {
                matches!(
                    e,
                    UnpackError::InvalidWhiteout {
                        problem: WhiteoutProblem::DotOrDotDot,
                        ..
                    }
                )
            },
        );
    }
    assert_refused(
        |_| Layer::new().file("d/.wh.", b"").tar(),
        |e| {
            matches!(
                e,
                UnpackError::InvalidWhiteout {
                    problem: WhiteoutProblem::NoName,
                    ..
                }
            )
        },
    );
}

#[test]
fn whiteout_and_opaque_marker_through_a_symlink_are_refused() {
    for marker in ["link/.wh.file", "link/.wh..wh..opq"] {
        assert_refused(
            |scene| {
                Layer::new()
                    .entry(
                        EntryType::Symlink,
                        b"link",
                        scene.sentinel.as_os_str().as_encoded_bytes(),
                        b"",
                        Attrs::default(),
                    )
                    .file(marker, b"")
                    .tar()
            },
            |e| matches!(e, UnpackError::ThroughSymlink { .. }),
        );
    }
}

#[test]
fn empty_name_is_refused() {
    assert_refused(
        |_| Layer::new().pax(&[("path", b"")]).file("", b"x").tar(),
        |e| {
            matches!(
                e,
                UnpackError::InvalidPath {
                    problem: PathProblem::Empty,
                    ..
                }
            )
        },
    );
}

#[test]
fn name_with_a_nul_byte_is_refused() {
    assert_refused(
        |_| {
            Layer::new()
                .entry(
                    EntryType::Regular,
                    b"evil\0/../../sentinel/x",
                    b"",
                    b"x",
                    Attrs::default(),
                )
                .tar()
        },
        |e| {
            matches!(
                e,
                UnpackError::InvalidPath {
                    problem: PathProblem::Nul,
                    ..
                }
            )
        },
    );
}

#[test]
fn name_longer_than_4096_bytes_is_refused() {
    let name = format!("{}/f", "d/".repeat(2100));
    assert_refused(
        |_| Layer::new().file(&name, b"x").tar(),
        |e| {
            matches!(
                e,
                UnpackError::InvalidPath {
                    problem: PathProblem::TooLong { len: 4202 },
                    ..
                }
            )
        },
    );
}
