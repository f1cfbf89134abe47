//! Did the OOM killer strike in the container's memory cgroup? (Best effort.)
//!
//! Once the container is created, its init process sits in its cgroups: the monitor
//! reads `/proc/<pid>/cgroup`, finds the memory cgroup and opens its counter file, keeps
//! the count it had then, and reads it again when the container has exited (runc removes
//! the cgroup only on `runc delete`, which comes after):
//!
//! - cgroup v1 (and hybrid): `/sys/fs/cgroup/memory/<path>/memory.oom_control`,
//!   line `oom_kill N` (Linux 4.13+);
//! - cgroup v2: `/sys/fs/cgroup/<path>/memory.events`, line `oom_kill N`.
//!
//! The hierarchies are assumed mounted at their usual places (`/sys/fs/cgroup`, as
//! systemd and every distribution do). The count covers the whole cgroup, so a container
//! whose init survived while a child was killed is still reported as OOM-killed, as
//! containerd reports it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Where cgroup hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The counter file of a memory cgroup, opened while the container ran.
#[derive(Debug)]
pub struct OomCounter {
    file: File,
    /// The count when the counter was opened.
    baseline: u64,
}

impl OomCounter {
    /// Opens the counter of process `pid`'s memory cgroup; `None` if it cannot be found.
    pub fn open(pid: u32) -> Option<OomCounter> {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let file = counter_paths(&cgroups)
            .into_iter()
            .find_map(|path| File::open(path).ok())?;
        let baseline = read_count(&file).ok()?;
        Some(OomCounter { file, baseline })
    }

    /// True if the count grew since [`OomCounter::open`] (false if it cannot be read).
    pub fn fired(&self) -> bool {
        read_count(&self.file).is_ok_and(|count| count > self.baseline)
    }
}

/// The candidate counter files for a `/proc/<pid>/cgroup` text, most specific first.
pub fn counter_paths(proc_cgroup: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for line in proc_cgroup.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_hierarchy), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if relative.split('/').any(|part| part == "..") {
            continue;
        }
        if controllers.split(',').any(|controller| controller == "memory") {
            paths.insert(
                0,
                PathBuf::from(CGROUP_ROOT)
                    .join("memory")
                    .join(relative)
                    .join("memory.oom_control"),
            );
        } else if controllers.is_empty() {
            paths.push(PathBuf::from(CGROUP_ROOT).join(relative).join("memory.events"));
        }
    }
    paths
}

/// The `oom_kill` count in a `memory.oom_control` or `memory.events` text.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|count| count.trim().parse().ok())
}

fn read_count(file: &File) -> io::Result<u64> {
    let mut buf = [0u8; 512];
    let len = file.read_at(&mut buf, 0)?;
    std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(parse_oom_kill)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no oom_kill count"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_found_for_v1_hybrid_and_v2() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "hybrid: memory in v1, an empty unified hierarchy",
                "9:name=systemd:/default/c1\n4:memory:/default/c1\n1:cpu,cpuacct:/default/c1\n0::/default/c1\n",
                &[
                    "/sys/fs/cgroup/memory/default/c1/memory.oom_control",
                    "/sys/fs/cgroup/default/c1/memory.events",
                ],
            ),
            (
                "pure v2",
                "0::/kubepods/burstable/pod1/c1\n",
                &["/sys/fs/cgroup/kubepods/burstable/pod1/c1/memory.events"],
            ),
            ("escaping paths are ignored", "4:memory:/../../etc\n", &[]),
            ("garbage", "nonsense\n", &[]),
        ];
        for (desc, text, want) in cases {
            let got = counter_paths(text);
            let want: Vec<PathBuf> = want.iter().map(PathBuf::from).collect();
            assert_eq!(got, want, "{desc}");
        }
    }

    #[test]
    fn oom_kill_counts_are_read_from_both_formats() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v1), Some(2));
        assert_eq!(parse_oom_kill(v2), Some(1));
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\n"),
            None,
            "kernels before 4.13"
        );
    }
}
