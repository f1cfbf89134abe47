//! Readings of the host a soak samples: a process's memory and open files, mounts and
//! pinned network namespaces under a directory, the veths of a bridge, host-local's
//! address reservations, cgroups, directory entries.
//!
//! Each reading is a plain count or size; something that cannot be read (a process that
//! just exited, a directory not made yet) counts as zero.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::Path;

/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The cgroup parent runtime-core puts containers under when their pod names none (as
/// kubelet-lite's pods do): `<hierarchy>/runtime-core/<container id>`.
pub const RUNTIME_CORE_CGROUP_PARENT: &str = "runtime-core";

/// Resident and proportional set size of a process (or the sum over several), in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `Rss:` of `/proc/PID/smaps_rollup`.
    pub rss_kib: u64,
    /// `Pss:`: shared pages divided among the processes sharing them.
    pub pss_kib: u64,
}

impl std::ops::Add for Memory {
    type Output = Memory;

    fn add(self, other: Memory) -> Memory {
        Memory {
            rss_kib: self.rss_kib + other.rss_kib,
            pss_kib: self.pss_kib + other.pss_kib,
        }
    }
}

/// Process `pid`'s memory from `/proc/PID/smaps_rollup` (zero if it is gone).
pub fn memory(pid: u32) -> Memory {
    let rollup = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    parse_smaps_rollup(&rollup)
}

fn parse_smaps_rollup(text: &str) -> Memory {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Memory {
        rss_kib: field("Rss:"),
        pss_kib: field("Pss:"),
    }
}

/// How many file descriptors process `pid` has open (zero if it is gone).
pub fn open_fds(pid: u32) -> u64 {
    entry_count(Path::new(&format!("/proc/{pid}/fd")))
}

/// How many processes have `pid` as their parent (zombies included): a node agent whose
/// children are not reaped, or that leaves helpers running, shows here.
pub fn children_of(pid: u32) -> u64 {
    if pid == 0 {
        return 0; // the kernel's own threads
    }
    entry_names(Path::new("/proc"))
        .iter()
        .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        .filter(|name| {
            let stat = fs::read_to_string(format!("/proc/{name}/stat")).unwrap_or_default();
            parent_pid(&stat) == Some(pid)
        })
        .count() as u64
}

/// The parent pid in a `/proc/PID/stat` line: the second field after the parenthesised
/// command name (which may hold spaces and parentheses).
fn parent_pid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// How many entries directory `dir` has (zero if it does not exist).
pub fn entry_count(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().count() as u64)
        .unwrap_or(0)
}

/// The names of the entries of `dir` (none if it does not exist).
pub fn entry_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Mounts at or below `dir` and, among them, the distinct network namespaces pinned by a
/// bind mount of an `nsfs` file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mounts {
    /// Every mount at or below the directory.
    pub all: u64,
    /// Distinct network namespaces bind-mounted at or below the directory.
    pub net_namespaces: u64,
}

/// Mounts below `dir` (a path without spaces or backslashes, which mountinfo would
/// escape), from this process's `/proc/self/mountinfo`.
pub fn mounts_under(dir: &Path) -> Mounts {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    count_mounts(&mountinfo, &dir)
}

/// Counts the mountinfo lines whose mount point (field 5) is at or below `dir`, and the
/// distinct `net:[INODE]` roots (field 4) of the `nsfs` ones among them.
fn count_mounts(mountinfo: &str, dir: &Path) -> Mounts {
    let mut all = 0;
    let mut namespaces = BTreeSet::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        if !Path::new(point).starts_with(dir) {
            continue;
        }
        all += 1;
        let fstype = fields.iter().skip_while(|field| **field != "-").nth(1);
        if fstype == Some(&"nsfs") && root.starts_with("net:[") {
            namespaces.insert(*root);
        }
    }
    Mounts {
        all,
        net_namespaces: namespaces.len() as u64,
    }
}

/// How many interfaces are enslaved to `bridge` (the pods' veths); zero without the bridge.
pub fn bridge_ports(bridge: &str) -> u64 {
    entry_count(Path::new(&format!("/sys/class/net/{bridge}/brif")))
}

/// The addresses host-local holds under its data directory `ipam_dir` (one file named
/// after each address, in a directory per network).
pub fn ip_reservations(ipam_dir: &Path) -> u64 {
    entry_names(ipam_dir)
        .iter()
        .map(|network| {
            entry_names(&ipam_dir.join(network))
                .iter()
                .filter(|name| name.parse::<IpAddr>().is_ok())
                .count() as u64
        })
        .sum()
}

/// The ids among `ids` that have a cgroup directory under runtime-core's parent in any
/// hierarchy (cgroup v1 controllers, the v2 unified one).
pub fn cgroups_of(ids: &BTreeSet<String>) -> BTreeSet<String> {
    entry_names(Path::new(CGROUP_ROOT))
        .iter()
        .flat_map(|hierarchy| entry_names(&Path::new(CGROUP_ROOT).join(hierarchy).join(RUNTIME_CORE_CGROUP_PARENT)))
        .filter(|name| ids.contains(name))
        .collect()
}

/// The size of file `path` in bytes (zero if it does not exist).
pub fn file_size(path: &Path) -> u64 {
    fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_gives_rss_and_pss() {
        let text = "55d0c0000000-7ffc00000000 ---p 00000000 00:00 0   [rollup]\n\
                    Rss:               12345 kB\nPss:                6789 kB\nPss_Anon:  100 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Memory {
                rss_kib: 12345,
                pss_kib: 6789
            }
        );
        assert_eq!(parse_smaps_rollup(""), Memory::default());
    }

    #[test]
    fn the_parent_pid_follows_the_command_name() {
        assert_eq!(parent_pid("4242 (sleep) S 17 4242 4242 0 -1"), Some(17));
        assert_eq!(parent_pid("7 (a) b (c)) Z 1 7 7 0 -1"), Some(1));
        assert_eq!(parent_pid(""), None);
        assert_eq!(children_of(u32::MAX), 0);
    }

    #[test]
    fn mounts_are_counted_below_the_directory_and_net_namespaces_once_each() {
        let mountinfo = "\
22 1 0:21 / /proc rw - proc proc rw
40 22 0:4 net:[4026532001] /soak/run/sb1/ns/net rw - nsfs nsfs rw
41 22 0:4 net:[4026532001] /soak/run/sb1/ns/net rw - nsfs nsfs rw
42 22 0:4 ipc:[4026532002] /soak/run/sb1/ns/ipc rw - nsfs nsfs rw
43 22 0:4 net:[4026532003] /soak/run/sb2/ns/net rw - nsfs nsfs rw
44 22 0:50 / /soak/run/c1/rootfs rw - overlay overlay rw,lowerdir=/x
45 22 0:51 / /soak/with\\040space rw - tmpfs tmpfs rw
46 22 0:4 net:[4026532009] /elsewhere/net rw - nsfs nsfs rw
";
        let mounts = count_mounts(mountinfo, Path::new("/soak"));
        assert_eq!(
            mounts,
            Mounts {
                all: 6,
                net_namespaces: 2
            }
        );
    }

    #[test]
    fn reservations_are_the_files_named_as_addresses() {
        let dir = std::env::temp_dir().join(format!("soak-ipam-{}", std::process::id()));
        let network = dir.join("kubelet-lite-kltsoak0");
        fs::create_dir_all(&network).unwrap();
        for name in ["198.18.120.2", "198.18.120.3", "last_reserved_ip.0", "lock"] {
            fs::write(network.join(name), "x").unwrap();
        }
        assert_eq!(ip_reservations(&dir), 2);
        assert_eq!(ip_reservations(&dir.join("missing")), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
