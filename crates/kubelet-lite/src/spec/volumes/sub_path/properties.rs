//! Properties of sub path resolution: whatever the volume holds (directories, files,
//! relative and absolute links, up and out) and whatever the sub path says, what is
//! opened is inside the volume, and nothing is created or changed outside it. Needs no
//! root: the walk opens and creates, and mounting is not part of it.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// What a volume entry is.
#[derive(Debug, Clone)]
enum Kind {
    Dir,
    File,
    /// A link to the path of these names, from where the second field says.
    Link(Vec<usize>, Absolute),
}

/// Where an absolute link target starts.
#[derive(Debug, Clone, Copy)]
enum Absolute {
    No,
    Volume,
    Base,
    Root,
}

const NAMES: [&str; 7] = ["a", "b", "..", ".", "outside", "volume", "x"];

fn names() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..NAMES.len(), 0..5)
}

fn join(names: &[usize]) -> PathBuf {
    names.iter().map(|i| NAMES[*i]).collect()
}

fn kind() -> impl Strategy<Value = Kind> {
    let absolute = prop_oneof![
        3 => Just(Absolute::No),
        1 => Just(Absolute::Volume),
        1 => Just(Absolute::Base),
        1 => Just(Absolute::Root),
    ];
    prop_oneof![
        Just(Kind::Dir),
        Just(Kind::File),
        (names(), absolute).prop_map(|(target, absolute)| Kind::Link(target, absolute)),
    ]
}

/// Every path under `root` with its type, size and mode.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (bool, u64, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        if meta.is_dir() {
            for child in std::fs::read_dir(&path).expect("readdir") {
                stack.push(child.expect("entry").path());
            }
        }
        out.insert(path, (meta.is_dir(), meta.len(), meta.mode()));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn what_is_opened_is_inside_the_volume(
        entries in prop::collection::vec((names(), kind()), 0..8),
        sub_path in names(),
        absolute_sub_path: bool,
        create: bool,
    ) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let base = dir.path();
        let volume = base.join("volume");
        std::fs::create_dir_all(volume.join("a/b")).expect("the volume");
        std::fs::create_dir_all(base.join("outside/a")).expect("outside");
        std::fs::write(base.join("outside/secret"), "outside").expect("outside");
        // The volume's content is made inside it: `..` only in link targets and sub paths.
        // Nothing is made through a link already there, nor over an existing entry.
        for (path, kind) in entries.iter().filter(|(path, _)| !path.contains(&2)) {
            let path = volume.join(join(path));
            let through_link = path
                .ancestors()
                .take_while(|a| *a != volume)
                .any(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()));
            if through_link || std::fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = match kind {
                Kind::Dir => std::fs::create_dir_all(&path),
                Kind::File => std::fs::write(&path, "inside"),
                Kind::Link(target, absolute) => {
                    let target = match absolute {
                        Absolute::No => join(target),
                        Absolute::Volume => volume.join(join(target)),
                        Absolute::Base => base.join(join(target)),
                        Absolute::Root => Path::new("/").join(join(target)),
                    };
                    std::os::unix::fs::symlink(target, &path)
                }
            };
        }
        let outside_before = snapshot(&base.join("outside"));

        let sub_path = if absolute_sub_path { Path::new("/").join(join(&sub_path)) } else { join(&sub_path) };
        if let Ok(opened) = open_beneath(&volume, &sub_path, create) {
            let real = std::fs::read_link(format!("/proc/self/fd/{}", opened.fd.as_raw_fd())).expect("the fd's path");
            let volume_real = std::fs::canonicalize(&volume).expect("the volume's real path");
            prop_assert!(real.starts_with(&volume_real), "{sub_path:?} opened {real:?}, outside {volume_real:?}");
        }
        prop_assert_eq!(snapshot(&base.join("outside")), outside_before, "something outside the volume changed");
        let mut beside: Vec<_> = std::fs::read_dir(base).expect("readdir").map(|e| e.expect("entry").file_name()).collect();
        beside.sort();
        prop_assert_eq!(beside, ["outside", "volume"], "something was created beside the volume");
    }
}
