//! The cgroup hierarchy of a host, and the reader it picks:
//!
//! - cgroup v1 (and hybrid, where the unified hierarchy holds no resource controllers):
//!   one directory per controller, `<root>/<controller>/<path>` ([`super::v1`]);
//! - pure cgroup v2: one directory, `<root>/<path>` ([`super::v2`]).

use std::path::{Path, PathBuf};

use super::cgroup::{CgroupError, CgroupStats};

/// Where cgroup hierarchies are mounted on every distribution.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `f_type` of a cgroup2 filesystem.
const CGROUP2_SUPER_MAGIC: u32 = 0x6367_7270;

/// The cgroup hierarchy of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// One hierarchy per controller under `root` (cgroup v1, or hybrid).
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// The unified hierarchy at `root` (pure cgroup v2).
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

impl Hierarchy {
    /// This host's hierarchy: v2 if `/sys/fs/cgroup` is a cgroup2 mount, else v1 (which
    /// covers hybrid hosts: their resource controllers are all v1).
    pub fn detect() -> Hierarchy {
        let root = PathBuf::from(CGROUP_ROOT);
        let unified = rustix::fs::statfs(&root).is_ok_and(|fs| fs.f_type as u32 == CGROUP2_SUPER_MAGIC);
        if unified {
            Hierarchy::V2 { root }
        } else {
            Hierarchy::V1 { root }
        }
    }

    /// Reads the cgroup at `path` (as in an OCI `cgroupsPath` with the cgroupfs driver,
    /// e.g. `/kubepods/pod1/c1`). Paths that climb out of the hierarchy are refused as
    /// missing.
    pub fn read(&self, path: &str) -> Result<CgroupStats, CgroupError> {
        let relative = path.trim_start_matches('/');
        if relative.split('/').any(|part| part == "..") {
            return Err(CgroupError::Missing(PathBuf::from(path)));
        }
        match self {
            Hierarchy::V1 { root } => super::v1::read(root, Path::new(relative)),
            Hierarchy::V2 { root } => super::v2::read(&root.join(relative)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_climbing_out_of_the_hierarchy_are_refused() {
        let hierarchy = Hierarchy::V2 {
            root: PathBuf::from("/nonexistent"),
        };
        assert!(matches!(hierarchy.read("/a/../../etc"), Err(CgroupError::Missing(_))));
    }
}
