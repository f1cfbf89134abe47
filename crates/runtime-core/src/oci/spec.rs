//! The OCI runtime configuration (`config.json` of a bundle): the subset of runtime-spec 1.1
//! that runc needs to run a Linux container.
//!
//! Field names are the spec's (`ociVersion`, `noNewPrivileges`, `cgroupsPath`, `containerID`
//! ...). `None`, empty lists and empty maps are left out when serializing, as the Go types'
//! `omitempty` does, so the output reads like what containerd or CRI-O hand to runc.
//! Fields this crate does not model are dropped when a document is read; the spec's
//! seccomp object is kept as raw JSON ([`Linux::seccomp`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The runtime-spec version this crate writes.
pub const OCI_VERSION: &str = "1.1.0";

fn is_false(value: &bool) -> bool {
    !*value
}

/// A container's configuration: the `config.json` of an OCI bundle.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    /// The runtime-spec version the document follows ([`OCI_VERSION`]).
    pub oci_version: String,
    /// The container's init process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// The root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Root>,
    /// The hostname set in the container's UTS namespace (only with a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Mounts, in the order they are made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Arbitrary metadata for the runtime and whoever reads the bundle.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Linux-specific configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linux: Option<Linux>,
}

/// The process a container runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// Whether the process gets a pseudo-terminal.
    #[serde(default, skip_serializing_if = "is_false")]
    pub terminal: bool,
    /// Who the process runs as.
    pub user: User,
    /// The command line; `args[0]` is looked up in the container's `PATH`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `NAME=value` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The working directory, absolute within the container.
    pub cwd: String,
    /// The capability sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<LinuxCapabilities>,
    /// Resource limits (`setrlimit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rlimits: Vec<PosixRlimit>,
    /// Sets `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities give nothing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_new_privileges: bool,
    /// The AppArmor profile to run under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparmor_profile: Option<String>,
    /// The process's `/proc/PID/oom_score_adj`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// The SELinux process label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux_label: Option<String>,
}

/// Numeric identity of the container process.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The file mode creation mask; the runtime's default (0022) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<u32>,
    /// Supplementary group ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
}

/// The capability sets of a process, each a list of names such as `CAP_CHOWN`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinuxCapabilities {
    /// The bounding set: the most the process (and its children) can ever have.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounding: Vec<String>,
    /// The effective set: what the kernel checks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effective: Vec<String>,
    /// The inheritable set, kept across `execve` of files with matching file capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inheritable: Vec<String>,
    /// The permitted set: what the process may make effective.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permitted: Vec<String>,
    /// The ambient set, kept across `execve` of unprivileged programs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ambient: Vec<String>,
}

/// One resource limit (`RLIMIT_NOFILE`...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PosixRlimit {
    /// The limit's name, such as `RLIMIT_NOFILE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The hard limit.
    pub hard: u64,
    /// The soft limit.
    pub soft: u64,
}

/// The container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Root {
    /// The directory: absolute, or relative to the bundle.
    pub path: String,
    /// Whether the root filesystem is mounted read-only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
}

/// A mount inside the container.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Mount {
    /// Where it is mounted, absolute within the container.
    pub destination: String,
    /// The filesystem type (`proc`, `tmpfs`, `bind`...).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The device or host path mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Mount options as `mount(8)` spells them (`rbind`, `ro`, `nosuid`, `size=65536k`...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Mount {
    /// A mount of `kind` from `source` at `destination` with `options`.
    pub fn new(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            destination: destination.to_string(),
            kind: Some(kind.to_string()),
            source: Some(source.to_string()),
            options: options.iter().map(|option| option.to_string()).collect(),
        }
    }
}

/// Linux-specific configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Linux {
    /// The namespaces the container gets: new ones, or existing ones joined by path.
    /// A namespace type not listed is shared with the runtime.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<LinuxNamespace>,
    /// User id mappings of a user namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uid_mappings: Vec<LinuxIdMapping>,
    /// Group id mappings of a user namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gid_mappings: Vec<LinuxIdMapping>,
    /// Device nodes created in the container's `/dev`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<LinuxDevice>,
    /// The container's cgroup: a path for the cgroupfs driver, `slice:prefix:name` for
    /// systemd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroups_path: Option<String>,
    /// Resource limits applied through the cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<LinuxResources>,
    /// Kernel parameters set in the container's namespaces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctl: BTreeMap<String, String>,
    /// The seccomp filter, as the spec's `LinuxSeccomp` object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<serde_json::Value>,
    /// Paths made unreadable inside the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub masked_paths: Vec<String>,
    /// Paths made read-only inside the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readonly_paths: Vec<String>,
    /// The SELinux context of the container's mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_label: Option<String>,
    /// The propagation of the root mount: `rprivate`, `rslave`, `rshared`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_propagation: Option<String>,
}

/// A kind of Linux namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamespaceType {
    /// Process ids.
    Pid,
    /// Network devices, addresses, routes, ports.
    Network,
    /// The mount table.
    Mount,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// Hostname and domain name.
    Uts,
    /// User and group ids.
    User,
    /// The cgroup root.
    Cgroup,
    /// Boot and monotonic clocks.
    Time,
}

/// A namespace the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxNamespace {
    /// Which namespace.
    #[serde(rename = "type")]
    pub kind: NamespaceType,
    /// An existing namespace to join (`/proc/PID/ns/net`, a bind-mounted nsfs file);
    /// `None` creates a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// A range of ids mapped into a user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinuxIdMapping {
    /// The first id inside the namespace.
    #[serde(rename = "containerID")]
    pub container_id: u32,
    /// The first id on the host.
    #[serde(rename = "hostID")]
    pub host_id: u32,
    /// How many ids.
    pub size: u32,
}

/// A device node the runtime creates in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxDevice {
    /// Where, inside the container.
    pub path: String,
    /// `c` (character), `b` (block), `u` (unbuffered character) or `p` (FIFO).
    #[serde(rename = "type")]
    pub kind: String,
    /// The major number.
    pub major: i64,
    /// The minor number.
    pub minor: i64,
    /// The permission bits of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    /// The node's owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The node's group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

/// Resource limits of the container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxResources {
    /// Device access rules, applied in order (the last matching rule wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<LinuxDeviceCgroup>,
    /// Memory limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<LinuxMemory>,
    /// CPU shares, quota and cpuset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<LinuxCpu>,
    /// The process count limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<LinuxPids>,
    /// Huge page limits per page size.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hugepage_limits: Vec<LinuxHugepageLimit>,
    /// cgroup v2 files and their values, written as given (`memory.high`...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unified: BTreeMap<String, String>,
}

impl LinuxResources {
    /// Whether no limit at all is set.
    pub fn is_empty(&self) -> bool {
        *self == LinuxResources::default()
    }
}

/// A device cgroup rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinuxDeviceCgroup {
    /// Allow (true) or deny (false) the access.
    pub allow: bool,
    /// `a` (all), `c` or `b`; all when unset.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The major number; any when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    /// The minor number; any when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    /// Some of `r` (read), `w` (write), `m` (mknod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
}

/// Memory limits, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxMemory {
    /// The hard limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// The soft limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<i64>,
    /// Memory plus swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap: Option<i64>,
    /// Kernel memory (cgroup v1 only, deprecated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<i64>,
    /// How eagerly the kernel swaps this cgroup's pages, 0 to 100 (cgroup v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swappiness: Option<u64>,
}

/// CPU limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxCpu {
    /// Relative weight (cgroup v1 `cpu.shares`; converted to `cpu.weight` on v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shares: Option<u64>,
    /// Microseconds of CPU time per period (`-1` for no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    /// The length of a period, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// The CPUs the container may run on (`0-3,6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// The memory nodes the container may allocate on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mems: Option<String>,
}

/// The process count limit.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinuxPids {
    /// The most tasks the cgroup may hold (`-1` or `0` for no limit).
    pub limit: i64,
}

/// A huge page limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxHugepageLimit {
    /// The page size, as the kernel names it (`2MB`, `1GB`).
    pub page_size: String,
    /// The limit, in bytes.
    pub limit: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Spec {
        Spec {
            oci_version: OCI_VERSION.to_string(),
            process: Some(Process {
                terminal: true,
                user: User {
                    uid: 1000,
                    gid: 1000,
                    umask: Some(0o022),
                    additional_gids: vec![10, 20],
                },
                args: vec!["sh".into()],
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                capabilities: Some(LinuxCapabilities {
                    bounding: vec!["CAP_CHOWN".into()],
                    effective: vec!["CAP_CHOWN".into()],
                    permitted: vec!["CAP_CHOWN".into()],
                    ..LinuxCapabilities::default()
                }),
                rlimits: vec![PosixRlimit {
                    kind: "RLIMIT_NOFILE".into(),
                    hard: 1024,
                    soft: 1024,
                }],
                no_new_privileges: true,
                apparmor_profile: Some("p".into()),
                oom_score_adj: Some(-5),
                selinux_label: None,
            }),
            root: Some(Root {
                path: "/rootfs".into(),
                readonly: true,
            }),
            hostname: Some("h".into()),
            mounts: vec![Mount::new("/proc", "proc", "proc", &["nosuid"])],
            annotations: BTreeMap::from([("a".to_string(), "b".to_string())]),
            linux: Some(Linux {
                namespaces: vec![
                    LinuxNamespace {
                        kind: NamespaceType::Network,
                        path: Some("/proc/1/ns/net".into()),
                    },
                    LinuxNamespace {
                        kind: NamespaceType::Mount,
                        path: None,
                    },
                ],
                uid_mappings: vec![LinuxIdMapping {
                    container_id: 0,
                    host_id: 100000,
                    size: 65536,
                }],
                gid_mappings: vec![],
                devices: vec![LinuxDevice {
                    path: "/dev/fuse".into(),
                    kind: "c".into(),
                    major: 10,
                    minor: 229,
                    file_mode: Some(0o666),
                    uid: Some(0),
                    gid: Some(0),
                }],
                cgroups_path: Some("/kubepods/pod1/c1".into()),
                resources: Some(LinuxResources {
                    devices: vec![LinuxDeviceCgroup {
                        allow: false,
                        access: Some("rwm".into()),
                        ..LinuxDeviceCgroup::default()
                    }],
                    memory: Some(LinuxMemory {
                        limit: Some(1 << 20),
                        ..LinuxMemory::default()
                    }),
                    cpu: Some(LinuxCpu {
                        shares: Some(512),
                        cpus: Some("0-1".into()),
                        ..LinuxCpu::default()
                    }),
                    pids: Some(LinuxPids { limit: 100 }),
                    hugepage_limits: vec![LinuxHugepageLimit {
                        page_size: "2MB".into(),
                        limit: 0,
                    }],
                    unified: BTreeMap::from([("memory.high".to_string(), "max".to_string())]),
                }),
                sysctl: BTreeMap::from([("net.ipv4.ip_forward".to_string(), "1".to_string())]),
                seccomp: Some(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})),
                masked_paths: vec!["/proc/kcore".into()],
                readonly_paths: vec!["/proc/sys".into()],
                mount_label: None,
                rootfs_propagation: Some("rslave".into()),
            }),
        }
    }

    #[test]
    fn serializes_with_the_spec_field_names() {
        let value = serde_json::to_value(sample()).expect("serialize");
        assert_eq!(value["ociVersion"], OCI_VERSION);
        let process = &value["process"];
        assert_eq!(process["terminal"], true);
        assert_eq!(process["user"]["additionalGids"], serde_json::json!([10, 20]));
        assert_eq!(process["user"]["umask"], 18);
        assert_eq!(process["noNewPrivileges"], true);
        assert_eq!(process["apparmorProfile"], "p");
        assert_eq!(process["oomScoreAdj"], -5);
        assert_eq!(process["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(process["capabilities"]["bounding"][0], "CAP_CHOWN");
        assert_eq!(value["root"]["readonly"], true);
        assert_eq!(value["mounts"][0]["type"], "proc");
        let linux = &value["linux"];
        assert_eq!(
            linux["namespaces"][0],
            serde_json::json!({"type": "network", "path": "/proc/1/ns/net"})
        );
        assert_eq!(linux["namespaces"][1], serde_json::json!({"type": "mount"}));
        assert_eq!(
            linux["uidMappings"][0],
            serde_json::json!({"containerID": 0, "hostID": 100000, "size": 65536})
        );
        assert_eq!(linux["devices"][0]["fileMode"], 0o666);
        assert_eq!(linux["cgroupsPath"], "/kubepods/pod1/c1");
        assert_eq!(linux["rootfsPropagation"], "rslave");
        assert_eq!(linux["maskedPaths"][0], "/proc/kcore");
        assert_eq!(linux["readonlyPaths"][0], "/proc/sys");
        assert_eq!(linux["sysctl"]["net.ipv4.ip_forward"], "1");
        let resources = &linux["resources"];
        assert_eq!(
            resources["devices"][0],
            serde_json::json!({"allow": false, "access": "rwm"})
        );
        assert_eq!(resources["memory"], serde_json::json!({"limit": 1 << 20}));
        assert_eq!(resources["cpu"], serde_json::json!({"shares": 512, "cpus": "0-1"}));
        assert_eq!(resources["hugepageLimits"][0]["pageSize"], "2MB");
        assert_eq!(resources["unified"]["memory.high"], "max");
        assert_eq!(resources["pids"]["limit"], 100);
    }

    #[test]
    fn leaves_out_unset_and_empty_fields() {
        let spec = Spec {
            oci_version: OCI_VERSION.to_string(),
            process: Some(Process {
                cwd: "/".into(),
                ..Process::default()
            }),
            linux: Some(Linux::default()),
            ..Spec::default()
        };
        let value = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(
            value,
            serde_json::json!({
                "ociVersion": OCI_VERSION,
                "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/"},
                "linux": {}
            })
        );
    }

    #[test]
    fn round_trips() {
        let spec = sample();
        let json = serde_json::to_string_pretty(&spec).expect("serialize");
        let back: Spec = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, spec);
    }

    #[test]
    fn reads_a_runc_generated_spec() {
        // Trimmed output of `runc spec` (runc 1.1): fields this crate does not model are
        // dropped, the rest is read.
        let json = r#"{
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": true,
                "user": {"uid": 0, "gid": 0},
                "args": ["sh"],
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                "cwd": "/",
                "capabilities": {"bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]},
                "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "runc",
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                               {"type": "mount"}, {"type": "cgroup"}],
                "maskedPaths": ["/proc/acpi"],
                "readonlyPaths": ["/proc/bus"]
            }
        }"#;
        let spec: Spec = serde_json::from_str(json).expect("deserialize");
        let process = spec.process.expect("process");
        assert_eq!(process.args, ["sh"]);
        assert!(process.terminal && process.no_new_privileges);
        assert_eq!(spec.root.expect("root").path, "rootfs");
        let linux = spec.linux.expect("linux");
        assert_eq!(linux.namespaces.len(), 6);
        assert_eq!(linux.namespaces[5].kind, NamespaceType::Cgroup);
    }
}
