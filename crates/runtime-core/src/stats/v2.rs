//! cgroup v2 readers: every controller's files in one directory.
//!
//! - cpu: `cpu.stat` (`usage_usec`, `user_usec`, `system_usec`);
//! - memory: `memory.current`, `memory.stat` (`anon`, `swapcached`, `file`,
//!   `inactive_file`, `pgfault`, `pgmajfault`), `memory.max`, `memory.swap.current` and
//!   `memory.swap.max` (swap alone, unlike v1's memory plus swap);
//! - pids: `pids.current`; io: `io.stat`.
//!
//! The unit tests read the fixture cgroups in `src/stats/fixtures/v2`.

use std::path::Path;

use super::cgroup::{CgroupError, CgroupStats, CpuTime, Io, Memory, limit, read_number, read_optional};
use super::parse;

/// Nanoseconds per microsecond (`cpu.stat` counts microseconds).
const NANOS_PER_MICRO: u64 = 1_000;

/// Reads the cgroup directory `dir`.
pub fn read(dir: &Path) -> Result<CgroupStats, CgroupError> {
    if !dir.is_dir() {
        return Err(CgroupError::Missing(dir.to_path_buf()));
    }
    Ok(CgroupStats {
        cpu: cpu(dir)?,
        memory: memory(dir)?,
        pids: read_number(&dir.join("pids.current"))?,
        io: read_optional(&dir.join("io.stat"))?.map(|text| {
            let (read_bytes, write_bytes) = parse::io_stat_v2(&text);
            Io {
                read_bytes,
                write_bytes,
            }
        }),
    })
}

fn cpu(dir: &Path) -> Result<Option<CpuTime>, CgroupError> {
    let Some(text) = read_optional(&dir.join("cpu.stat"))? else {
        return Ok(None);
    };
    let stat = parse::flat_keyed(&text);
    let Some(usage) = stat.get("usage_usec") else {
        return Ok(None);
    };
    let nanos = |micros: u64| micros.saturating_mul(NANOS_PER_MICRO);
    Ok(Some(CpuTime {
        usage_ns: nanos(*usage),
        user_ns: nanos(stat.get("user_usec").copied().unwrap_or(0)),
        system_ns: nanos(stat.get("system_usec").copied().unwrap_or(0)),
    }))
}

fn memory(dir: &Path) -> Result<Option<Memory>, CgroupError> {
    let Some(usage) = read_number(&dir.join("memory.current"))? else {
        return Ok(None);
    };
    let stat = read_optional(&dir.join("memory.stat"))?.unwrap_or_default();
    let stat = parse::flat_keyed(&stat);
    let value = |key: &str| stat.get(key).copied().unwrap_or(0);
    Ok(Some(Memory {
        usage,
        working_set: usage.saturating_sub(value("inactive_file")),
        rss: value("anon").saturating_add(value("swapcached")),
        cache: value("file"),
        page_faults: value("pgfault"),
        major_page_faults: value("pgmajfault"),
        limit: limit(read_number(&dir.join("memory.max"))?),
        swap_usage: read_number(&dir.join("memory.swap.current"))?,
        swap_limit: limit(read_number(&dir.join("memory.swap.max"))?),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::stats::hierarchy::Hierarchy;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stats/fixtures/v2")
    }

    #[test]
    fn a_v2_cgroup_gives_cpu_memory_pids_and_io() {
        let hierarchy = Hierarchy::V2 { root: fixtures() };
        let stats = hierarchy.read("/kubepods/pod1/c1").expect("read the fixture");
        assert_eq!(
            stats.cpu,
            Some(CpuTime {
                usage_ns: 2_500_000_000,
                user_ns: 1_750_000_000,
                system_ns: 750_000_000
            })
        );
        let memory = stats.memory.expect("memory");
        assert_eq!(memory.usage, 12_582_912);
        assert_eq!(memory.working_set, 12_582_912 - 2_097_152, "usage minus inactive_file");
        assert_eq!(memory.rss, 8_388_608, "anon plus swap cache");
        assert_eq!(memory.cache, 3_145_728);
        assert_eq!((memory.page_faults, memory.major_page_faults), (4242, 17));
        assert_eq!(memory.limit, Some(67_108_864));
        assert_eq!(memory.available(), Some(67_108_864 - (12_582_912 - 2_097_152)));
        assert_eq!(
            (memory.swap_usage, memory.swap_limit),
            (Some(1_048_576), Some(33_554_432))
        );
        assert_eq!(memory.swap_available(), Some(33_554_432 - 1_048_576));
        assert_eq!(stats.pids, Some(5));
        assert_eq!(
            stats.io,
            Some(Io {
                read_bytes: 1_052_672,
                write_bytes: 2_105_344
            })
        );
    }

    #[test]
    fn a_v2_cgroup_without_limits_or_controllers_leaves_them_out() {
        let stats = read(&fixtures().join("unlimited")).expect("read the fixture");
        let memory = stats.memory.expect("memory");
        assert_eq!((memory.usage, memory.working_set), (4096, 4096));
        assert_eq!((memory.limit, memory.available()), (None, None), "memory.max is `max`");
        assert_eq!((memory.swap_usage, memory.swap_limit), (None, None));
        assert_eq!((stats.pids, stats.io), (None, None));
        assert_eq!(stats.cpu.map(|cpu| cpu.usage_ns), Some(10_000));
        assert!(matches!(read(&fixtures().join("absent")), Err(CgroupError::Missing(_))));
    }
}
