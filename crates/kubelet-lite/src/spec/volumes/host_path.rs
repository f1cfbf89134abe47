//! hostPath volumes: the `type` checks of the kubelet's `hostpath` plugin, creating the
//! path for the `...OrCreate` types.

use std::os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use crate::spec::SpecError;

/// Checks (and for `DirectoryOrCreate`/`FileOrCreate`, creates) a hostPath of the given
/// type. An empty or absent type checks nothing.
pub(crate) fn check_host_path(path: &Path, kind: Option<&str>) -> Result<(), SpecError> {
    let kind = kind.unwrap_or("");
    let wrong = || SpecError::HostPathType {
        path: path.to_owned(),
        expected: kind.to_owned(),
    };
    let meta = std::fs::metadata(path);
    let is = |check: fn(&std::fs::FileType) -> bool| meta.as_ref().is_ok_and(|m| check(&m.file_type()));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(SpecError::io("create hostPath directory", path))?;
                return Ok(());
            }
            if is(std::fs::FileType::is_dir) {
                Ok(())
            } else {
                Err(wrong())
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(SpecError::io("create hostPath file", path))?;
                return Ok(());
            }
            if is(std::fs::FileType::is_dir) {
                Err(wrong())
            } else {
                Ok(())
            }
        }
        "Directory" => is(std::fs::FileType::is_dir).then_some(()).ok_or_else(wrong),
        "File" => is(std::fs::FileType::is_file).then_some(()).ok_or_else(wrong),
        "Socket" => is(std::fs::FileType::is_socket).then_some(()).ok_or_else(wrong),
        "CharDevice" => is(std::fs::FileType::is_char_device).then_some(()).ok_or_else(wrong),
        "BlockDevice" => is(std::fs::FileType::is_block_device).then_some(()).ok_or_else(wrong),
        other => Err(SpecError::invalid("hostPath.type", format!("unknown type {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_checks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let socket_path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket_path).unwrap();
        let cases = [
            ("untyped missing path", dir.path().join("nope"), "", true),
            ("directory", dir.path().to_path_buf(), "Directory", true),
            ("file is no directory", file.clone(), "Directory", false),
            ("file", file.clone(), "File", true),
            ("missing file", dir.path().join("nope"), "File", false),
            ("socket", socket_path.clone(), "Socket", true),
            ("file is no socket", file.clone(), "Socket", false),
            ("char device", "/dev/null".into(), "CharDevice", true),
            ("file is no block device", file.clone(), "BlockDevice", false),
            (
                "create directory",
                dir.path().join("new/dir"),
                "DirectoryOrCreate",
                true,
            ),
            (
                "existing file is no directory",
                file.clone(),
                "DirectoryOrCreate",
                false,
            ),
            ("create file", dir.path().join("newfile"), "FileOrCreate", true),
            ("unknown type", file.clone(), "Fancy", false),
        ];
        for (desc, path, kind, ok) in cases {
            let result = check_host_path(&path, Some(kind));
            assert_eq!(result.is_ok(), ok, "{desc}: {result:?}");
        }
        assert!(dir.path().join("new/dir").is_dir());
        assert!(dir.path().join("newfile").is_file());
    }
}
