//! cgroup v1 (and hybrid) readers: one hierarchy per controller, `<root>/<controller>/<path>`.
//!
//! - cpu: `cpuacct.usage` (ns) and `cpuacct.stat` (user and system, in `USER_HZ` ticks);
//! - memory: `memory.usage_in_bytes`, `memory.stat` (the hierarchical `total_*` lines),
//!   `memory.limit_in_bytes` and, with swap accounting, `memory.memsw.*` (memory plus
//!   swap);
//! - pids: `pids.current`; io: `blkio.throttle.io_service_bytes_recursive`.

use std::path::Path;

use super::cgroup::{CgroupError, CgroupStats, CpuTime, Io, Memory, limit, read_number, read_optional};
use super::parse;

/// Nanoseconds per `USER_HZ` tick: the kernel reports `cpuacct.stat` in 1/100 s whatever
/// its internal tick rate.
const NANOS_PER_USER_HZ_TICK: u64 = 10_000_000;

/// Reads the cgroup at `relative` under each controller's hierarchy in `root`.
pub fn read(root: &Path, relative: &Path) -> Result<CgroupStats, CgroupError> {
    let dir = |controller: &str| root.join(controller).join(relative);
    if !dir("memory").is_dir() && !dir("cpuacct").is_dir() {
        return Err(CgroupError::Missing(dir("memory")));
    }
    Ok(CgroupStats {
        cpu: cpu(&dir("cpuacct"))?,
        memory: memory(&dir("memory"))?,
        pids: read_number(&dir("pids").join("pids.current"))?,
        io: read_optional(&dir("blkio").join("blkio.throttle.io_service_bytes_recursive"))?.map(|text| {
            let (read_bytes, write_bytes) = parse::io_service_bytes_v1(&text);
            Io {
                read_bytes,
                write_bytes,
            }
        }),
    })
}

fn cpu(dir: &Path) -> Result<Option<CpuTime>, CgroupError> {
    let Some(usage_ns) = read_number(&dir.join("cpuacct.usage"))? else {
        return Ok(None);
    };
    let stat = read_optional(&dir.join("cpuacct.stat"))?.unwrap_or_default();
    let stat = parse::flat_keyed(&stat);
    let ticks = |key: &str| {
        stat.get(key)
            .copied()
            .unwrap_or(0)
            .saturating_mul(NANOS_PER_USER_HZ_TICK)
    };
    Ok(Some(CpuTime {
        usage_ns,
        user_ns: ticks("user"),
        system_ns: ticks("system"),
    }))
}

fn memory(dir: &Path) -> Result<Option<Memory>, CgroupError> {
    let Some(usage) = read_number(&dir.join("memory.usage_in_bytes"))? else {
        return Ok(None);
    };
    let stat = read_optional(&dir.join("memory.stat"))?.unwrap_or_default();
    let stat = parse::flat_keyed(&stat);
    // The `total_` lines count the cgroup and its children (a pod cgroup's containers).
    let value = |key: &str| {
        stat.get(format!("total_{key}").as_str())
            .or_else(|| stat.get(key))
            .copied()
            .unwrap_or(0)
    };
    let limit_bytes = limit(read_number(&dir.join("memory.limit_in_bytes"))?);
    let memsw_usage = read_number(&dir.join("memory.memsw.usage_in_bytes"))?;
    let memsw_limit = limit(read_number(&dir.join("memory.memsw.limit_in_bytes"))?);
    Ok(Some(Memory {
        usage,
        working_set: usage.saturating_sub(value("inactive_file")),
        rss: value("rss"),
        cache: value("cache"),
        page_faults: value("pgfault"),
        major_page_faults: value("pgmajfault"),
        limit: limit_bytes,
        swap_usage: memsw_usage.map(|memsw| memsw.saturating_sub(usage)),
        swap_limit: memsw_limit.map(|memsw| memsw.saturating_sub(limit_bytes.unwrap_or(0))),
    }))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        fs::write(path, text).expect("write");
    }

    #[test]
    fn a_v1_cgroup_is_read_from_each_controller() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        write(r, "cpuacct/pod/c1/cpuacct.usage", "2500000000\n");
        write(r, "cpuacct/pod/c1/cpuacct.stat", "user 150\nsystem 50\n");
        write(r, "memory/pod/c1/memory.usage_in_bytes", "10485760\n");
        write(
            r,
            "memory/pod/c1/memory.stat",
            "cache 1\nrss 2\ninactive_file 3\ntotal_cache 4194304\ntotal_rss 6291456\n\
             total_inactive_file 1048576\ntotal_pgfault 700\ntotal_pgmajfault 7\n",
        );
        write(r, "memory/pod/c1/memory.limit_in_bytes", "67108864\n");
        write(r, "memory/pod/c1/memory.memsw.usage_in_bytes", "11534336\n");
        write(r, "memory/pod/c1/memory.memsw.limit_in_bytes", "134217728\n");
        write(r, "pids/pod/c1/pids.current", "3\n");
        write(
            r,
            "blkio/pod/c1/blkio.throttle.io_service_bytes_recursive",
            "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n",
        );
        let stats = read(r, Path::new("pod/c1")).expect("read");
        assert_eq!(
            stats.cpu,
            Some(CpuTime {
                usage_ns: 2_500_000_000,
                user_ns: 1_500_000_000,
                system_ns: 500_000_000
            })
        );
        let memory = stats.memory.expect("memory");
        assert_eq!(memory.usage, 10_485_760);
        assert_eq!(memory.working_set, 10_485_760 - 1_048_576);
        assert_eq!((memory.rss, memory.cache), (6_291_456, 4_194_304));
        assert_eq!((memory.page_faults, memory.major_page_faults), (700, 7));
        assert_eq!(memory.limit, Some(67_108_864));
        assert_eq!(memory.swap_usage, Some(1_048_576));
        assert_eq!(memory.swap_limit, Some(134_217_728 - 67_108_864));
        assert_eq!(stats.pids, Some(3));
        assert_eq!(
            stats.io,
            Some(Io {
                read_bytes: 4096,
                write_bytes: 8192
            })
        );
    }

    #[test]
    fn unlimited_v1_memory_has_no_limit_and_a_missing_cgroup_is_an_error() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        write(r, "memory/c2/memory.usage_in_bytes", "4096\n");
        write(r, "memory/c2/memory.limit_in_bytes", "9223372036854771712\n");
        let stats = read(r, Path::new("c2")).expect("read");
        let memory = stats.memory.expect("memory");
        assert_eq!((memory.limit, memory.swap_usage), (None, None));
        assert_eq!((stats.cpu, stats.pids), (None, None));
        assert!(matches!(read(r, Path::new("gone")), Err(CgroupError::Missing(_))));
    }
}
