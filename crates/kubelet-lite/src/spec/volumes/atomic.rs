//! Writing a volume's files atomically with the kubelet's `..data` scheme
//! (`pkg/volume/util/atomic_writer.go`): the files go into a fresh hidden directory,
//! the `..data` symlink is switched to it with one rename, and each top-level entry is a
//! symlink through `..data`. A reader sees either the old set or the new set, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::spec::SpecError;

/// The symlink pointing at the current generation of files.
const DATA_LINK: &str = "..data";
/// The symlink built next to [`DATA_LINK`] before it replaces it.
const DATA_TMP_LINK: &str = "..data_tmp";

/// One file of a volume: contents and permission bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileContent {
    /// The bytes.
    pub(crate) data: Vec<u8>,
    /// Permission bits (e.g. `0o644`).
    pub(crate) mode: u32,
}

/// A volume's files by relative path.
pub(crate) type Files = BTreeMap<String, FileContent>;

/// Checks a relative path of a projected file: not empty, not absolute, no `..` element,
/// not starting with `..` (reserved for the scheme's own entries).
pub(crate) fn check_relative_path(path: &str) -> Result<(), SpecError> {
    let invalid = |reason| SpecError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if Path::new(path).is_absolute() {
        return Err(invalid("must be relative"));
    }
    if Path::new(path).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(invalid("must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    Ok(())
}

/// Makes `dir` hold exactly `files`; does nothing when it already does.
/// `group` (the pod's fsGroup) owns the files and may read them, best effort.
pub(crate) fn write_files(dir: &Path, files: &Files, group: Option<u32>) -> Result<(), SpecError> {
    for path in files.keys() {
        check_relative_path(path)?;
    }
    std::fs::create_dir_all(dir).map_err(SpecError::io("create volume directory", dir))?;
    let data_link = dir.join(DATA_LINK);
    let old_generation = std::fs::read_link(&data_link).ok();
    if old_generation.is_some() && unchanged(&data_link, files) {
        return Ok(());
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let generation_name = format!("..{nanos}_{}", std::process::id());
    let generation = dir.join(&generation_name);
    std::fs::create_dir(&generation).map_err(SpecError::io("create volume generation", &generation))?;
    for (path, content) in files {
        let target = generation.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(SpecError::io("create directory", parent))?;
        }
        let mode = if group.is_some() {
            content.mode | 0o040
        } else {
            content.mode
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(SpecError::io("create file", &target))?;
        file.write_all(&content.data)
            .map_err(SpecError::io("write file", &target))?;
        // The umask may have cut bits off at creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(SpecError::io("set mode of", &target))?;
        if let Some(gid) = group {
            let _ = std::os::unix::fs::chown(&target, None, Some(gid));
        }
    }
    let tmp_link = dir.join(DATA_TMP_LINK);
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&generation_name, &tmp_link).map_err(SpecError::io("create symlink", &tmp_link))?;
    std::fs::rename(&tmp_link, &data_link).map_err(SpecError::io("switch symlink", &data_link))?;

    let top_level: BTreeSet<&str> = files.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &top_level {
        let link = dir.join(name);
        let want = Path::new(DATA_LINK).join(name);
        if std::fs::read_link(&link).ok().as_deref() != Some(want.as_path()) {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&want, &link).map_err(SpecError::io("create symlink", &link))?;
        }
    }
    // Entries of the previous generation that are gone now.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !top_level.contains(name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if let Some(old) = old_generation {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

/// Whether the current generation holds exactly `files` (contents and modes).
fn unchanged(data_link: &Path, files: &Files) -> bool {
    let mut found = 0usize;
    let mut stack = vec![data_link.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            return false;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                found += 1;
            }
        }
    }
    found == files.len()
        && files.iter().all(|(path, content)| {
            let p = data_link.join(path);
            std::fs::read(&p).is_ok_and(|data| data == content.data)
                && std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o777 & content.mode == content.mode)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_owned(),
                    FileContent {
                        data: v.as_bytes().to_vec(),
                        mode: 0o644,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn writes_updates_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("vol");
        write_files(&root, &files(&[("a", "1"), ("sub/b", "2")]), None).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(root.join("sub/b")).unwrap(), "2");
        assert_eq!(std::fs::read_link(root.join("a")).unwrap(), Path::new("..data/a"));
        let first = std::fs::read_link(root.join(DATA_LINK)).unwrap();

        write_files(&root, &files(&[("a", "1"), ("sub/b", "2")]), None).unwrap();
        assert_eq!(
            std::fs::read_link(root.join(DATA_LINK)).unwrap(),
            first,
            "same content: untouched"
        );

        write_files(&root, &files(&[("a", "changed")]), None).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("a")).unwrap(), "changed");
        assert!(!root.join("sub").exists(), "a dropped entry disappears");
        assert!(!root.join(first).exists(), "the old generation is removed");
    }

    #[test]
    fn refuses_escaping_paths() {
        for (desc, path) in [
            ("absolute", "/etc/passwd"),
            ("parent", "a/../../x"),
            ("reserved", "..data"),
            ("empty", ""),
        ] {
            assert!(check_relative_path(path).is_err(), "{desc}");
        }
        assert!(check_relative_path("ok/file.txt").is_ok());
    }
}
