//! What a cgroup says about the processes in it, whatever the cgroup version: the
//! [`CgroupStats`] both readers ([`super::v1`], [`super::v2`]) fill, and the file helpers
//! they share. [`super::hierarchy::Hierarchy`] picks the reader.

use std::io;
use std::path::{Path, PathBuf};

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
    fn huge_limits_mean_no_limit() {
        assert_eq!(limit(Some(9_223_372_036_854_771_712)), None);
        assert_eq!(limit(Some(1 << 20)), Some(1 << 20));
        assert_eq!(limit(None), None);
    }
}
