//! Layer unpacking (`runtime_core::image::unpack::unpack_layer`) of hostile layers: raw
//! blobs (tar, gzip or zstd, detected), or tars the fuzzer builds from entries whose names
//! and link targets are made of `..`, absolute paths into a canary directory beside the
//! destination, whiteouts and plain names. Whatever the layer, the canary directory and
//! the directory holding both must be exactly as before: nothing outside the destination
//! is created, changed or removed. Needs root (owners, whiteout devices), as the runtime.

#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use runtime_core::image::unpack::{Compression, unpack_layer};

#[derive(Debug, Arbitrary)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    link: Vec<u8>,
    mode: u16,
    owner: u8,
    content: Vec<u8>,
    xattr: Option<(u8, Vec<u8>)>,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Blob { compression: u8, bytes: Vec<u8> },
    Entries { gzip: bool, entries: Vec<Entry> },
}

/// Path pieces the names are made of: each byte of a fuzzed name picks one.
const PIECES: [&str; 14] = [
    "a",
    "b",
    "dir",
    "..",
    ".",
    "",
    ".wh.a",
    ".wh..wh..opq",
    ".wh.",
    "canary",
    "@canary",
    "@dest",
    "@base",
    "x/",
];
const XATTRS: [&str; 6] = [
    "user.note",
    "trusted.overlay.opaque",
    "security.capability",
    "trusted.overlay.redirect",
    "user.overlay.upper",
    "security.selinux",
];
/// Tar type flags: file, directory, symlink, hard link, FIFO, character device, contiguous
/// file, and one no tar knows.
const KINDS: [u8; 8] = *b"0521637x";

/// A name from pieces; `@canary` and friends are absolute paths of the directories.
fn name(bytes: &[u8], base: &Path) -> Vec<u8> {
    let parts: Vec<String> = bytes
        .iter()
        .take(12)
        .map(|b| match PIECES[usize::from(*b) % PIECES.len()] {
            "@canary" => base.join("canary").display().to_string(),
            "@dest" => base.join("dest").display().to_string(),
            "@base" => base.display().to_string(),
            piece => piece.to_string(),
        })
        .collect();
    parts.join("/").into_bytes()
}

fn tar_of(entries: Vec<Entry>, base: &Path) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries.into_iter().take(24) {
        let path = name(&entry.name, base);
        let link = name(&entry.link, base);
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut header = tar::Header::new_ustar();
        if path.len() <= 100 {
            header.as_old_mut().name[..path.len()].copy_from_slice(&path);
        } else {
            pax.push(("path".into(), path.clone()));
        }
        if link.len() <= 100 {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(&link);
        } else {
            pax.push(("linkpath".into(), link.clone()));
        }
        if let Some((which, value)) = &entry.xattr {
            pax.push((
                format!("SCHILY.xattr.{}", XATTRS[usize::from(*which) % XATTRS.len()]),
                value.clone(),
            ));
        }
        let kind = KINDS[usize::from(entry.kind) % KINDS.len()];
        header.as_old_mut().linkflag[0] = kind;
        header.set_mode(u32::from(entry.mode) & 0o7777);
        header.set_uid(u64::from(entry.owner % 4) * 1000);
        header.set_gid(u64::from(entry.owner / 64) * 1000);
        header.set_mtime(1_700_000_000);
        let content: &[u8] = if kind == b'0' || kind == b'7' {
            &entry.content[..entry.content.len().min(4096)]
        } else {
            &[]
        };
        header.set_size(content.len() as u64);
        header.set_cksum();
        if !pax.is_empty() {
            let _ = builder.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        }
        let _ = builder.append(&header, content);
    }
    builder.into_inner().unwrap_or_default()
}

/// Everything observable about a tree: per path, its type, mode, owner, size, content,
/// link target and times.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).expect("stat in the canary tree");
        let mut what = format!(
            "{:o} {}:{} {} {} {}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.len(),
            meta.mtime(),
            meta.nlink()
        );
        if meta.file_type().is_symlink() {
            what.push_str(&format!(" -> {:?}", fs::read_link(&path).expect("readlink")));
        } else if meta.is_file() {
            what.push_str(&format!(" {:?}", fs::read(&path).expect("read")));
        } else if meta.is_dir() {
            for child in fs::read_dir(&path).expect("readdir") {
                stack.push(child.expect("dirent").path());
            }
        }
        out.insert(path, what);
    }
    out
}

fn canary(base: &Path) {
    let canary = base.join("canary");
    fs::create_dir(&canary).unwrap();
    fs::write(canary.join("file"), b"must stay").unwrap();
    fs::create_dir(canary.join("dir")).unwrap();
    fs::write(canary.join("dir/inner"), b"inner").unwrap();
    std::os::unix::fs::symlink("../dest", canary.join("to-dest")).unwrap();
    std::os::unix::fs::symlink("/", canary.join("to-root")).unwrap();
}

fuzz_target!(|input: Input| {
    let base_dir = tempfile::Builder::new()
        .prefix("layer-unpack-")
        .tempdir_in("/dev/shm")
        .expect("a temp dir");
    let base = base_dir.path();
    let dest = base.join("dest");
    fs::create_dir(&dest).unwrap();
    canary(base);
    let before = snapshot(&base.join("canary"));
    let base_meta = fs::metadata(base).unwrap();

    let (blob, compression) = match input {
        Input::Blob { compression, bytes } => {
            let compression = match compression % 4 {
                0 => None,
                1 => Some(Compression::None),
                2 => Some(Compression::Gzip),
                _ => Some(Compression::Zstd),
            };
            (bytes, compression)
        }
        Input::Entries { gzip, entries } => {
            let tar = tar_of(entries, base);
            if gzip {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder.write_all(&tar).unwrap();
                (encoder.finish().unwrap(), None)
            } else {
                (tar, None)
            }
        }
    };
    let _ = unpack_layer(blob.as_slice(), compression, &dest);

    assert_eq!(
        snapshot(&base.join("canary")),
        before,
        "the canary beside the destination changed"
    );
    let mut names: Vec<_> = fs::read_dir(base).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(
        names,
        ["canary", "dest"],
        "something was created beside the destination"
    );
    let after = fs::metadata(base).unwrap();
    assert_eq!(
        (after.mode(), after.uid(), after.gid()),
        (base_meta.mode(), base_meta.uid(), base_meta.gid()),
        "the directory holding the destination changed"
    );
    assert!(
        fs::symlink_metadata(&dest).unwrap().is_dir(),
        "the destination is no longer a directory"
    );
});
