//! What a cgroup says about the processes in it, whatever the cgroup version: the
//! [`CgroupStats`] both readers fill, and the [`Hierarchy`] that picks the reader.
//!
//! - cgroup v1 (and hybrid, where the unified hierarchy holds no resource controllers):
//!   one directory per controller, `<root>/<controller>/<path>` ([`super::v1`]);
//! - pure cgroup v2: one directory, `<root>/<path>` ([`super::v2`]).

use std::io;
use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted on every distribution.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `f_type` of a cgroup2 filesystem.
const CGROUP2_SUPER_MAGIC: u32 = 0x6367_7270;

/// Above this a memory limit means "none" (cgroup v1 writes `PAGE_COUNTER_MAX` pages in
/// bytes, about 2^63).
const UNLIMITED: u64 = 1 << 62;

/// Why a cgroup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup does not exist (the container never ran, or runc removed it).
    #[error("cgroup {0} does not exist")]
    Missing(PathBuf),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
}

/// The usage of one cgroup; a field is `None` when its controller is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used, in nanoseconds.
    pub cpu: Option<CpuTime>,
    /// Memory use.
    pub memory: Option<Memory>,
    /// How many processes (tasks) are in it.
    pub pids: Option<u64>,
    /// Block I/O.
    pub io: Option<Io>,
}

/// CPU time used, in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    /// All CPU time.
    pub usage_ns: u64,
    /// Time in user mode.
    pub user_ns: u64,
    /// Time in kernel mode.
    pub system_ns: u64,
}

/// Memory use, in bytes and page fault counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// All memory charged to the cgroup, page cache included.
    pub usage: u64,
    /// `usage` minus the inactive file cache: what the kubelet evicts on.
    pub working_set: u64,
    /// Anonymous memory and swap cache (transparent huge pages included).
    pub rss: u64,
    /// Page cache.
    pub cache: u64,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
    /// The memory limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// Swap in use, where the kernel accounts it.
    pub swap_usage: Option<u64>,
    /// The swap limit; `None` when unlimited or not accounted.
    pub swap_limit: Option<u64>,
}

impl Memory {
    /// The limit minus the working set (`None` without a limit).
    pub fn available(&self) -> Option<u64> {
        self.limit.map(|limit| limit.saturating_sub(self.working_set))
    }

    /// The swap limit minus the swap in use.
    pub fn swap_available(&self) -> Option<u64> {
        Some(self.swap_limit?.saturating_sub(self.swap_usage.unwrap_or(0)))
    }
}

/// Block I/O, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Io {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
}

/// A limit as the kernel wrote it: huge values mean no limit.
pub(super) fn limit(value: Option<u64>) -> Option<u64> {
    value.filter(|&v| v < UNLIMITED)
}

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

/// The text of `path`; `None` if the file does not exist (an absent controller or a
/// kernel without that file).
pub(super) fn read_optional(path: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The number in the one-value file at `path`, if it exists and holds one.
pub(super) fn read_number(path: &Path) -> Result<Option<u64>, CgroupError> {
    Ok(read_optional(path)?.as_deref().and_then(super::parse::single))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_memory_is_the_limit_minus_the_working_set() {
        let memory = Memory {
            working_set: 30,
            limit: Some(100),
            swap_usage: Some(5),
            swap_limit: Some(50),
            ..Memory::default()
        };
        assert_eq!(memory.available(), Some(70));
        assert_eq!(memory.swap_available(), Some(45));
        assert_eq!(
            Memory::default().available(),
            None,
            "no limit, nothing to subtract from"
        );
    }

    #[test]
    fn paths_climbing_out_of_the_hierarchy_are_refused() {
        let hierarchy = Hierarchy::V2 {
            root: PathBuf::from("/nonexistent"),
        };
        assert!(matches!(hierarchy.read("/a/../../etc"), Err(CgroupError::Missing(_))));
    }

    #[test]
    fn huge_limits_mean_no_limit() {
        assert_eq!(limit(Some(9_223_372_036_854_771_712)), None);
        assert_eq!(limit(Some(1 << 20)), Some(1 << 20));
        assert_eq!(limit(None), None);
    }
}
