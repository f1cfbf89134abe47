//! The OCI runtime spec of a container, built from its CRI `ContainerConfig`, the pod's
//! `PodSandboxConfig` and the image config, following containerd 1.6's CRI plugin
//! (`container_create_linux.go`, `pkg/cri/opts`) and what the kubelet expects of it.
//!
//! [`build_spec`] is the whole translation; the rules, in the order it applies them:
//! - **process**: the command line by the kubelet's override rules ([`process_args`]);
//!   the environment is `PATH` (default unless the image sets it), `HOSTNAME`, the image's
//!   `Env`, then the config's `envs`, a later value of a name replacing the earlier one in
//!   place; the working directory is the config's, else the image's, else `/` (it must be
//!   absolute); the user comes from [`super::user`]; `terminal` is the config's `tty`.
//! - **capabilities**: [`DEFAULT_CAPABILITIES`] in the bounding, effective and permitted
//!   sets, then the security context's `add_capabilities` and `drop_capabilities`
//!   (`ALL` first, then single names, with or without `CAP_`); none inheritable or
//!   ambient. A privileged container gets every capability the kernel has.
//! - **mounts**: the standard `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`,
//!   `/sys` and `/sys/fs/cgroup` (read-only unless privileged), then the pod's
//!   `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf` and the CRI mounts, sorted so
//!   that a parent is mounted before what lies below it. A CRI mount replaces a
//!   standard mount or pod file with the same destination.
//! - **devices**: the config's devices (a directory adds every device below it); all host
//!   devices for a privileged container. The device cgroup denies everything but runc's
//!   default set and those devices (a privileged container may use any device).
//! - **hardening**: [`DEFAULT_MASKED_PATHS`] and [`DEFAULT_READONLY_PATHS`] unless the
//!   security context lists its own; `noNewPrivileges` and a read-only root as asked; the
//!   seccomp filter and AppArmor profile of `security` (the built-in RuntimeDefault
//!   filter is [`seccomp`]; AppArmor only where the kernel has it). Privileged containers
//!   get none of these.
//! - **resources** ([`resources`]), `oom_score_adj` (never below the runtime's own, which
//!   the kernel would refuse), the pod's sysctls, `cgroupsPath` as given.
//! - **namespaces** per [`Namespaces`] (the service resolves pod, container, node and
//!   target modes to them): a new mount namespace always; a new cgroup namespace on pure
//!   cgroup v2 hosts (not for privileged containers), as containerd. The pod's own user
//!   namespace, with its uid and gid ranges, when it has one (`userns`).
//! - **annotations**: the config's, then the `io.kubernetes.cri.*` ones containerd sets.
//!
//! Not done: a RuntimeDefault AppArmor profile of this runtime's own (it uses
//! `docker-default` where that is loaded, else runs unconfined; hosts without AppArmor
//! skip it), SELinux labels, CDI devices.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cri_api::v1::{
    Capability, ContainerConfig, Device, KeyValue, LinuxContainerResources, LinuxContainerSecurityContext,
    MountPropagation, PodSandboxConfig,
};

use crate::container::user::{UserError, UserRequest, resolve_user};
use crate::image::oci::{ContainerConfig as ImageContainerConfig, ImageConfig};
use crate::oci::spec::{
    LinuxCapabilities, LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxHugepageLimit, LinuxMemory, LinuxNamespace,
    LinuxResources, Mount, NamespaceType, OCI_VERSION, Process, Root, Spec,
};

/// `PATH` when the image sets none (containerd's and Docker's default).
pub const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities of an unprivileged container (containerd's and runc's defaults).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every Linux capability, indexed by its number (`CAP_CHOWN` is 0).
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths an unprivileged container cannot read (containerd's defaults).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths an unprivileged container cannot write (containerd's defaults).
pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Annotation: `sandbox` or `container` (CRI-aware runtimes and shims read it).
pub const ANNOTATION_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// Annotation: the pod sandbox's id.
pub const ANNOTATION_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Annotation: the pod's namespace.
pub const ANNOTATION_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// Annotation: the pod's name.
pub const ANNOTATION_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// Annotation: the container's name in the pod.
pub const ANNOTATION_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// Annotation: the image the container was created from, as the config names it.
pub const ANNOTATION_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// The lowest and highest `oom_score_adj` the kernel takes.
const OOM_SCORE_ADJ_RANGE: std::ops::RangeInclusive<i64> = -1000..=1000;

/// Standard mount options.
const DEV_SHM_OPTIONS: &[&str] = &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"];

/// Directories under `/dev` whose contents are not devices to hand to a container
/// (containerd's list: pseudo-terminals, shared memory, LXC/LXD and udev state).
const SKIPPED_DEV_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// How a container gets one of its namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode {
    /// Shares the host's (the namespace is left out of the spec).
    Host,
    /// Gets a new one of its own.
    New,
    /// Joins an existing one (the pod's), by the path of its nsfs file.
    Join(PathBuf),
}

/// The namespaces a container gets; the mount namespace is always new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Network.
    pub network: NamespaceMode,
    /// System V IPC and POSIX message queues.
    pub ipc: NamespaceMode,
    /// Hostname.
    pub uts: NamespaceMode,
    /// Process ids.
    pub pid: NamespaceMode,
    /// User and group ids: the host's, or the pod's own (never a new one).
    pub user: NamespaceMode,
}

/// The pod's files bind-mounted into each of its containers (`None`: not mounted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFiles {
    /// Mounted at `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// Mounted at `/etc/hostname`.
    pub hostname: Option<PathBuf>,
    /// Mounted at `/etc/hosts`.
    pub hosts: Option<PathBuf>,
}

/// Everything a container's spec is built from.
#[derive(Debug, Clone, Copy)]
pub struct SpecInputs<'a> {
    /// The container's id.
    pub container_id: &'a str,
    /// The id of the pod sandbox the container belongs to.
    pub sandbox_id: &'a str,
    /// The CRI container config.
    pub config: &'a ContainerConfig,
    /// The CRI config of the pod.
    pub sandbox: &'a PodSandboxConfig,
    /// The image's config.
    pub image: &'a ImageConfig,
    /// The mounted root filesystem (becomes `root.path`).
    pub rootfs: &'a Path,
    /// How the container gets its namespaces.
    pub namespaces: &'a Namespaces,
    /// The pod's hostname, hosts and resolv.conf files.
    pub sandbox_files: &'a SandboxFiles,
    /// The container's cgroup (cgroupfs driver: `<cgroup_parent>/<container_id>`); empty:
    /// left to the runtime.
    pub cgroups_path: &'a str,
    /// The pod's hostname (`HOSTNAME`, and the UTS hostname with a new UTS namespace);
    /// empty: the node's.
    pub hostname: &'a str,
}

/// Why a container's spec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither the config nor the image gives a command line.
    #[error("no command specified: neither the container config nor the image has a command or arguments")]
    NoCommand,
    /// The command line starts with an empty string.
    #[error("the command's first argument is empty")]
    EmptyCommand,
    /// The user could not be resolved.
    #[error("container user: {0}")]
    User(#[from] UserError),
    /// A capability name that Linux does not have.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// A privileged container in an unprivileged pod (containerd refuses it too).
    #[error("a privileged container needs a privileged pod sandbox")]
    PrivilegedInUnprivilegedSandbox,
    /// A path that must be absolute is not.
    #[error("{what} {path:?} is not an absolute path")]
    RelativePath {
        /// Which path (`mount container path`...).
        what: &'static str,
        /// The path given.
        path: String,
    },
    /// A mount asks for something this runtime cannot do.
    #[error("mount at {container_path:?}: {feature} are not supported")]
    UnsupportedMount {
        /// The mount's destination.
        container_path: String,
        /// What it asks for.
        feature: &'static str,
    },
    /// A host path (mount source, device, profile) does not exist.
    #[error("host path {0} does not exist")]
    HostPathNotFound(PathBuf),
    /// A device's host path is neither a device nor a directory.
    #[error("{0} is not a device")]
    NotADevice(PathBuf),
    /// Device permissions other than some of `r`, `w`, `m`.
    #[error("invalid device permissions {0:?}: expected some of r, w and m")]
    DevicePermissions(String),
    /// A seccomp or AppArmor profile request that cannot be honoured.
    #[error("invalid {kind} profile: {reason}")]
    SecurityProfile {
        /// `seccomp` or `apparmor`.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A user namespace request that cannot be honoured.
    #[error("user namespace: {0}")]
    UserNamespace(String),
    /// `oom_score_adj` outside the kernel's range.
    #[error("oom_score_adj {0} is out of range -1000..=1000")]
    OomScoreAdj(i64),
    /// A path the spec must carry as a string is not UTF-8.
    #[error("path {0:?} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
    /// Reading the host failed.
    #[error("{path}: {source}")]
    Io {
        /// The path read.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

impl SpecError {
    /// Whether the configuration is at fault (gRPC `InvalidArgument`).
    pub fn is_invalid_argument(&self) -> bool {
        match self {
            SpecError::User(err) => err.is_invalid_argument(),
            SpecError::HostPathNotFound(_) | SpecError::NonUtf8Path(_) | SpecError::Io { .. } => false,
            _ => true,
        }
    }

    /// Whether a host path the configuration names is missing (gRPC `NotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, SpecError::HostPathNotFound(_))
    }
}

/// Builds the OCI spec of a container.
///
/// Reads the rootfs's `/etc/passwd` and `/etc/group`, stats the host paths of mounts and
/// devices, and reads a few host facts (cgroup version and controllers, the runtime's
/// own `oom_score_adj`, the highest capability the kernel knows).
pub fn build_spec(inputs: &SpecInputs<'_>) -> Result<Spec, SpecError> {
    let facts = HostFacts::detect();
    build_spec_with(inputs, &facts)
}

/// The cgroup limits of a CRI resources message (also what `UpdateContainerResources`
/// applies): CPU, memory, huge pages and cgroup v2 `unified` values, each only when set
/// (non-zero). `oom_score_adj` is a process setting and is not part of it. Huge page
/// limits are dropped when the host has no hugetlb controller (the kubelet sends them
/// for every page size, 0 for unrequested ones), and the swap limit when the host has no
/// swap accounting, as containerd does.
pub fn resources(resources: &LinuxContainerResources) -> LinuxResources {
    resources_with(resources, HostFacts::cgroups())
}

/// The signal that stops a container of this image: its `StopSignal` (`SIGTERM`, `TERM`,
/// `15`, `SIGRTMIN+3`...), SIGTERM (15) when unset or unknown.
pub fn stop_signal(image: &ImageConfig) -> i32 {
    const SIGTERM: i32 = 15;
    let Some(name) = image.config.as_ref().and_then(|config| config.stop_signal.as_deref()) else {
        return SIGTERM;
    };
    parse_signal(name).unwrap_or_else(|| {
        tracing::warn!(stop_signal = name, "unknown image stop signal; using SIGTERM");
        SIGTERM
    })
}

/// A Linux signal by name (`SIGKILL`, `kill`, `SIGRTMIN+1`) or number (`9`).
pub fn parse_signal(name: &str) -> Option<i32> {
    const SIGRTMIN: i32 = 34;
    const SIGRTMAX: i32 = 64;
    let name = name.trim();
    if let Ok(number) = name.parse::<i32>() {
        return (1..=SIGRTMAX).contains(&number).then_some(number);
    }
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let number = match bare {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" | "CLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        "RTMIN" => SIGRTMIN,
        "RTMAX" => SIGRTMAX,
        _ => {
            let (offset, base, sign) = if let Some(offset) = bare.strip_prefix("RTMIN+") {
                (offset, SIGRTMIN, 1)
            } else if let Some(offset) = bare.strip_prefix("RTMAX-") {
                (offset, SIGRTMAX, -1)
            } else {
                return None;
            };
            let offset: u8 = offset.parse().ok()?;
            let number = base + sign * i32::from(offset);
            return (SIGRTMIN..=SIGRTMAX).contains(&number).then_some(number);
        }
    };
    Some(number)
}

/// The command line by the kubelet's (and Docker's) rules: `command` replaces the image's
/// `Entrypoint` and drops its `Cmd`; `args` replaces `Cmd`. An image `Entrypoint` of
/// `[""]` counts as none.
pub fn process_args(
    command: &[String],
    args: &[String],
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
) -> Result<Vec<String>, SpecError> {
    let entrypoint: &[String] = if !command.is_empty() {
        command
    } else {
        match image_entrypoint {
            Some([only]) if only.is_empty() => &[],
            Some(entrypoint) => entrypoint,
            None => &[],
        }
    };
    let arguments: &[String] = if !args.is_empty() {
        args
    } else if !command.is_empty() {
        &[]
    } else {
        image_cmd.unwrap_or(&[])
    };
    let line: Vec<String> = entrypoint.iter().chain(arguments).cloned().collect();
    match line.first() {
        None => Err(SpecError::NoCommand),
        Some(first) if first.is_empty() => Err(SpecError::EmptyCommand),
        Some(_) => Ok(line),
    }
}

/// What the spec depends on besides its inputs, read from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostFacts {
    cgroups: CgroupFacts,
    /// The runtime's own `oom_score_adj`: containers cannot go below it.
    oom_score_adj: Option<i64>,
    /// `/proc/sys/kernel/cap_last_cap`.
    cap_last_cap: Option<usize>,
    /// The kernel enforces AppArmor profiles.
    apparmor: bool,
    /// The runtime's own capability bounding set (`CapBnd`): a container cannot get a
    /// capability the runtime lacks.
    bounding: Option<u64>,
}

/// What the host's cgroups can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CgroupFacts {
    /// `/sys/fs/cgroup` is a cgroup2 mount (pure v2, not hybrid).
    unified: bool,
    /// The hugetlb controller exists.
    hugetlb: bool,
    /// Swap can be limited (`memory.memsw.*` on v1, `memory.swap.max` on v2).
    swap: bool,
}

impl HostFacts {
    fn detect() -> HostFacts {
        HostFacts {
            cgroups: *HostFacts::cgroups(),
            oom_score_adj: read_trimmed("/proc/self/oom_score_adj").and_then(|value| value.parse().ok()),
            cap_last_cap: read_trimmed("/proc/sys/kernel/cap_last_cap").and_then(|value| value.parse().ok()),
            apparmor: security::apparmor_enabled(),
            bounding: read_trimmed("/proc/self/status").and_then(|status| {
                let line = status.lines().find_map(|line| line.strip_prefix("CapBnd:"))?;
                u64::from_str_radix(line.trim(), 16).ok()
            }),
        }
    }

    fn cgroups() -> &'static CgroupFacts {
        static FACTS: OnceLock<CgroupFacts> = OnceLock::new();
        FACTS.get_or_init(|| {
            const CGROUP2_SUPER_MAGIC: u32 = 0x6367_7270;
            // `f_type` is a signed word whose width varies by architecture.
            let unified = rustix::fs::statfs("/sys/fs/cgroup").is_ok_and(|fs| fs.f_type as u32 == CGROUP2_SUPER_MAGIC);
            if unified {
                let controllers = read_trimmed("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
                let own = read_trimmed("/proc/self/cgroup")
                    .and_then(|text| {
                        text.lines()
                            .find_map(|line| line.strip_prefix("0::").map(str::to_string))
                    })
                    .unwrap_or_default();
                // memory.swap.max exists in every cgroup but the root.
                let swap = own.trim_matches('/').is_empty()
                    || Path::new("/sys/fs/cgroup")
                        .join(own.trim_start_matches('/'))
                        .join("memory.swap.max")
                        .exists();
                CgroupFacts {
                    unified,
                    hugetlb: controllers.split_whitespace().any(|c| c == "hugetlb"),
                    swap: swap && controllers.split_whitespace().any(|c| c == "memory"),
                }
            } else {
                CgroupFacts {
                    unified,
                    hugetlb: Path::new("/sys/fs/cgroup/hugetlb").is_dir(),
                    swap: Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists(),
                }
            }
        })
    }

    /// Every capability this kernel has and the runtime holds (`ALL`, privileged).
    fn all_capabilities(&self) -> Vec<String> {
        let count = self.cap_last_cap.map_or(ALL_CAPABILITIES.len(), |last| last + 1);
        ALL_CAPABILITIES
            .iter()
            .take(count)
            .enumerate()
            .filter(|(number, _)| self.bounding.is_none_or(|set| set >> number & 1 == 1))
            .map(|(_, cap)| cap.to_string())
            .collect()
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|text| text.trim().to_string())
}

fn build_spec_with(inputs: &SpecInputs<'_>, facts: &HostFacts) -> Result<Spec, SpecError> {
    let config = inputs.config;
    let default_sc = LinuxContainerSecurityContext::default();
    let sc = config
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .unwrap_or(&default_sc);
    let privileged = sc.privileged;
    let sandbox_privileged = inputs
        .sandbox
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .is_some_and(|sc| sc.privileged);
    if privileged && !sandbox_privileged {
        return Err(SpecError::PrivilegedInUnprivilegedSandbox);
    }
    let user_mappings = match (userns::mappings(config, inputs.sandbox)?, &inputs.namespaces.user) {
        (None, NamespaceMode::Host) => None,
        (Some(mappings), NamespaceMode::Join(_)) => Some(mappings),
        (Some(_), _) => {
            return Err(SpecError::UserNamespace(
                "the pod asks for a user namespace of its own, and its sandbox has none".into(),
            ));
        }
        (None, _) => {
            return Err(SpecError::UserNamespace(
                "the sandbox has a user namespace the pod does not ask for".into(),
            ));
        }
    };
    let hostname = if inputs.hostname.is_empty() {
        read_trimmed("/proc/sys/kernel/hostname").unwrap_or_default()
    } else {
        inputs.hostname.to_string()
    };

    let process = container_process(inputs, sc, &hostname, facts)?;
    let (mounts, rootfs_propagation) = container_mounts(inputs, sc)?;
    let (devices, device_rules) = container_devices(&config.devices, privileged)?;
    let mut resources = config
        .linux
        .as_ref()
        .and_then(|linux| linux.resources.as_ref())
        .map_or_else(LinuxResources::default, |r| resources_with(r, &facts.cgroups));
    resources.devices = device_rules;
    let (masked_paths, readonly_paths) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            paths_or_default(&sc.masked_paths, DEFAULT_MASKED_PATHS),
            paths_or_default(&sc.readonly_paths, DEFAULT_READONLY_PATHS),
        )
    };
    let seccomp = if privileged {
        None
    } else {
        let bounding = process.capabilities.as_ref().map_or(&[][..], |caps| &caps.bounding[..]);
        security::seccomp_profile(sc, bounding)?
    };
    let sysctl = inputs
        .sandbox
        .linux
        .as_ref()
        .map(|linux| linux.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // Only a container with a UTS namespace of its own sets a hostname: one joining the
    // pod's shares the hostname the sandbox set (and runc refuses one without any).
    let spec_hostname = (inputs.namespaces.uts == NamespaceMode::New && !hostname.is_empty()).then_some(hostname);

    Ok(Spec {
        oci_version: OCI_VERSION.to_string(),
        process: Some(process),
        root: Some(Root {
            path: path_string(inputs.rootfs)?,
            readonly: sc.readonly_rootfs,
        }),
        hostname: spec_hostname,
        mounts,
        annotations: annotations(inputs),
        linux: Some(crate::oci::spec::Linux {
            namespaces: container_namespaces(inputs.namespaces, facts.cgroups.unified && !privileged)?,
            uid_mappings: user_mappings.as_ref().map_or_else(Vec::new, |m| userns::oci(&m.uids)),
            gid_mappings: user_mappings.as_ref().map_or_else(Vec::new, |m| userns::oci(&m.gids)),
            devices,
            cgroups_path: (!inputs.cgroups_path.is_empty()).then(|| inputs.cgroups_path.to_string()),
            resources: Some(resources),
            sysctl,
            seccomp,
            masked_paths,
            readonly_paths,
            rootfs_propagation,
            ..crate::oci::spec::Linux::default()
        }),
    })
}

/// The container's process: command line, environment, working directory, user,
/// capabilities and process-level security settings.
fn container_process(
    inputs: &SpecInputs<'_>,
    sc: &LinuxContainerSecurityContext,
    hostname: &str,
    facts: &HostFacts,
) -> Result<Process, SpecError> {
    let config = inputs.config;
    let default_image = ImageContainerConfig::default();
    let image = inputs.image.config.as_ref().unwrap_or(&default_image);

    let args = process_args(
        &config.command,
        &config.args,
        image.entrypoint.as_deref(),
        image.cmd.as_deref(),
    )?;
    let cwd = [config.working_dir.as_str(), image.working_dir.as_deref().unwrap_or("")]
        .into_iter()
        .find(|dir| !dir.is_empty())
        .unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(SpecError::RelativePath {
            what: "working directory",
            path: cwd.to_string(),
        });
    }
    let capabilities = if sc.privileged {
        facts.all_capabilities()
    } else {
        apply_capabilities(sc.capabilities.as_ref(), facts)?
    };
    let oom_score_adj = config
        .linux
        .as_ref()
        .and_then(|linux| linux.resources.as_ref())
        .map(|r| oom_score_adj(r.oom_score_adj, facts.oom_score_adj))
        .transpose()?;
    Ok(Process {
        terminal: config.tty,
        user: resolve_user(inputs.rootfs, &UserRequest::new(Some(sc), image.user.as_deref()))?,
        args,
        env: process_env(&image.env, &config.envs, hostname),
        cwd: cwd.to_string(),
        capabilities: Some(capability_sets(capabilities)),
        rlimits: Vec::new(),
        no_new_privileges: sc.no_new_privs,
        apparmor_profile: if sc.privileged {
            None
        } else {
            security::apparmor_profile(sc, facts.apparmor)?
        },
        oom_score_adj,
        selinux_label: None,
    })
}

/// The device nodes and the device cgroup rules: runc's default set plus the config's
/// devices; every host device, all allowed, for a privileged container.
fn container_devices(
    config_devices: &[Device],
    privileged: bool,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let (mut devices, mut rules) = if privileged {
        let allow_all = LinuxDeviceCgroup {
            allow: true,
            access: Some("rwm".to_string()),
            ..LinuxDeviceCgroup::default()
        };
        (devices_under(Path::new("/dev"), "/dev")?, vec![allow_all])
    } else {
        let deny_all = LinuxDeviceCgroup {
            allow: false,
            access: Some("rwm".to_string()),
            ..LinuxDeviceCgroup::default()
        };
        (
            Vec::new(),
            std::iter::once(deny_all).chain(default_device_rules()).collect(),
        )
    };
    for device in config_devices {
        let (nodes, access) = config_device(device)?;
        for node in nodes {
            if !privileged {
                rules.push(LinuxDeviceCgroup {
                    allow: true,
                    kind: Some(node.kind.clone()),
                    major: Some(node.major),
                    minor: Some(node.minor),
                    access: Some(access.clone()),
                });
            }
            devices.retain(|existing| existing.path != node.path);
            devices.push(node);
        }
    }
    Ok((devices, rules))
}

/// The namespaces in the spec: per [`Namespaces`], a new mount namespace, and a new
/// cgroup namespace when asked.
fn container_namespaces(namespaces: &Namespaces, new_cgroup: bool) -> Result<Vec<LinuxNamespace>, SpecError> {
    let cgroup = if new_cgroup {
        NamespaceMode::New
    } else {
        NamespaceMode::Host
    };
    let mut spec_namespaces = Vec::new();
    for (kind, mode) in [
        (NamespaceType::User, &namespaces.user),
        (NamespaceType::Pid, &namespaces.pid),
        (NamespaceType::Ipc, &namespaces.ipc),
        (NamespaceType::Uts, &namespaces.uts),
        (NamespaceType::Mount, &NamespaceMode::New),
        (NamespaceType::Network, &namespaces.network),
        (NamespaceType::Cgroup, &cgroup),
    ] {
        let path = match mode {
            NamespaceMode::Host => continue,
            NamespaceMode::New => None,
            NamespaceMode::Join(path) => Some(path_string(path)?),
        };
        spec_namespaces.push(LinuxNamespace { kind, path });
    }
    Ok(spec_namespaces)
}

/// `PATH` default, `HOSTNAME`, the image's `Env`, the config's `envs`: a later entry for
/// a name replaces the earlier one where it stands.
fn process_env(image_env: &[String], envs: &[KeyValue], hostname: &str) -> Vec<String> {
    let mut env = vec![DEFAULT_PATH_ENV.to_string()];
    let later = std::iter::once(format!("HOSTNAME={hostname}"))
        .chain(image_env.iter().cloned())
        .chain(envs.iter().map(|kv| format!("{}={}", kv.key, kv.value)));
    for entry in later {
        let name = entry.split_once('=').map_or(entry.as_str(), |(name, _)| name);
        match env
            .iter_mut()
            .find(|existing| existing.split_once('=').map_or(existing.as_str(), |(n, _)| n) == name)
        {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    }
    env
}

/// `net_admin`, `CAP_NET_ADMIN`, ` Net_Admin ` → `CAP_NET_ADMIN`, if Linux has it.
fn capability_name(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPABILITIES.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(name.to_string()))
    }
}

fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("ALL")
}

/// The default set with the security context's additions and removals: `ALL` first (so
/// that "add ALL, drop CHOWN" is everything but CHOWN), then single names, drops last.
fn apply_capabilities(capabilities: Option<&Capability>, facts: &HostFacts) -> Result<Vec<String>, SpecError> {
    let mut set: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|cap| cap.to_string()).collect();
    let Some(capabilities) = capabilities else {
        return Ok(set);
    };
    if capabilities.add_capabilities.iter().any(|cap| is_all(cap)) {
        set = facts.all_capabilities();
    }
    if capabilities.drop_capabilities.iter().any(|cap| is_all(cap)) {
        set.clear();
    }
    for cap in capabilities.add_capabilities.iter().filter(|cap| !is_all(cap)) {
        let cap = capability_name(cap)?;
        if !set.contains(&cap) {
            set.push(cap);
        }
    }
    for cap in capabilities.drop_capabilities.iter().filter(|cap| !is_all(cap)) {
        let cap = capability_name(cap)?;
        set.retain(|existing| *existing != cap);
    }
    Ok(set)
}

fn capability_sets(set: Vec<String>) -> LinuxCapabilities {
    LinuxCapabilities {
        bounding: set.clone(),
        effective: set.clone(),
        permitted: set,
        inheritable: Vec::new(),
        ambient: Vec::new(),
    }
}

/// `path` with `.`, `..` and repeated or trailing slashes resolved lexically.
fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|part| !part.is_empty()).count()
}

/// The standard mounts (containerd's defaults without `/run`, plus `/sys/fs/cgroup`).
fn standard_mounts(privileged: bool) -> Vec<Mount> {
    let ro_unless_privileged = if privileged { "rw" } else { "ro" };
    vec![
        Mount::new("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        Mount::new(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        Mount::new(
            "/dev/pts",
            "devpts",
            "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ),
        Mount::new("/dev/shm", "tmpfs", "shm", DEV_SHM_OPTIONS),
        Mount::new("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        Mount::new(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro_unless_privileged],
        ),
        Mount::new(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro_unless_privileged],
        ),
    ]
}

/// The mounts, and the root propagation the CRI mounts need.
fn container_mounts(
    inputs: &SpecInputs<'_>,
    sc: &LinuxContainerSecurityContext,
) -> Result<(Vec<Mount>, Option<String>), SpecError> {
    let config = inputs.config;
    let mut cri_destinations = BTreeSet::new();
    for mount in &config.mounts {
        if !mount.container_path.starts_with('/') {
            return Err(SpecError::RelativePath {
                what: "mount container path",
                path: mount.container_path.clone(),
            });
        }
        cri_destinations.insert(clean_path(&mount.container_path));
    }

    // The pod's files first, then the CRI mounts: a stable sort by depth keeps that
    // order among mounts of the same depth.
    let mut supplied: Vec<Mount> = Vec::new();
    let readonly = if sc.readonly_rootfs { "ro" } else { "rw" };
    let files = &inputs.sandbox_files;
    for (destination, source) in [
        ("/etc/hostname", &files.hostname),
        ("/etc/hosts", &files.hosts),
        ("/etc/resolv.conf", &files.resolv_conf),
    ] {
        if let Some(source) = source
            && !cri_destinations.contains(destination)
        {
            supplied.push(Mount::new(
                destination,
                "bind",
                &path_string(source)?,
                &["rbind", "rprivate", readonly],
            ));
        }
    }
    // A pod in the host's IPC namespace sees the host's POSIX shared memory too.
    if inputs.namespaces.ipc == NamespaceMode::Host && !cri_destinations.contains("/dev/shm") {
        supplied.push(Mount::new("/dev/shm", "bind", "/dev/shm", &["rbind", "rprivate", "rw"]));
    }

    let mut rootfs_propagation: Option<&str> = None;
    for mount in &config.mounts {
        let destination = clean_path(&mount.container_path);
        let unsupported = |feature| SpecError::UnsupportedMount {
            container_path: mount.container_path.clone(),
            feature,
        };
        if mount.image.as_ref().is_some_and(|image| !image.image.is_empty()) {
            return Err(unsupported("image volumes"));
        }
        if mount.recursive_read_only {
            return Err(unsupported("recursive read-only mounts"));
        }
        if !mount.uid_mappings.is_empty() || !mount.gid_mappings.is_empty() {
            return Err(unsupported("id-mapped mounts"));
        }
        if !mount.host_path.starts_with('/') {
            return Err(SpecError::RelativePath {
                what: "mount host path",
                path: mount.host_path.clone(),
            });
        }
        // The source is used as given, not resolved again: the kubelet checked it (a
        // subPath arrives as a bind mount of the object it opened inside the volume), and
        // following links here would follow one swapped in after that check.
        fs::metadata(&mount.host_path).map_err(|err| host_path_error(&mount.host_path, err))?;
        let source = PathBuf::from(&mount.host_path);
        let propagation = match MountPropagation::try_from(mount.propagation) {
            Ok(MountPropagation::PropagationPrivate) => "rprivate",
            Ok(MountPropagation::PropagationHostToContainer) => {
                if rootfs_propagation != Some("rshared") {
                    rootfs_propagation = Some("rslave");
                }
                "rslave"
            }
            Ok(MountPropagation::PropagationBidirectional) => {
                rootfs_propagation = Some("rshared");
                "rshared"
            }
            Err(_) => {
                tracing::warn!(
                    propagation = mount.propagation,
                    host_path = mount.host_path,
                    "unknown mount propagation; using private"
                );
                "rprivate"
            }
        };
        let access = if mount.readonly { "ro" } else { "rw" };
        supplied.push(Mount::new(
            &destination,
            "bind",
            &path_string(&source)?,
            &["rbind", propagation, access],
        ));
    }
    supplied.sort_by_key(|mount| depth(&mount.destination));

    let supplied_destinations: BTreeSet<String> = supplied.iter().map(|m| clean_path(&m.destination)).collect();
    let dev_supplied = supplied_destinations.contains("/dev");
    // A standard mount gives way to a supplied one at its place, or to a supplied `/dev`.
    let replaced = |mount: &Mount| {
        supplied_destinations.contains(&mount.destination) || (dev_supplied && mount.destination.starts_with("/dev/"))
    };
    let mut mounts: Vec<Mount> = standard_mounts(sc.privileged)
        .into_iter()
        .filter(|mount| !replaced(mount))
        .collect();
    mounts.extend(supplied);
    Ok((mounts, rootfs_propagation.map(str::to_string)))
}

fn host_path_error(path: impl Into<PathBuf>, err: io::Error) -> SpecError {
    let path = path.into();
    if err.kind() == io::ErrorKind::NotFound {
        SpecError::HostPathNotFound(path)
    } else {
        SpecError::Io { path, source: err }
    }
}

fn path_string(path: &Path) -> Result<String, SpecError> {
    path.to_str()
        .map(str::to_string)
        .ok_or_else(|| SpecError::NonUtf8Path(path.to_path_buf()))
}

/// runc's default device rules: `mknod` of any device, and the devices every container
/// has (null, zero, full, random, urandom, tty, ptmx, pseudo-terminals).
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| LinuxDeviceCgroup {
        allow: true,
        kind: Some(kind.to_string()),
        major,
        minor,
        access: Some(access.to_string()),
    };
    vec![
        rule("c", None, None, "m"),
        rule("b", None, None, "m"),
        rule("c", Some(1), Some(3), "rwm"), // /dev/null
        rule("c", Some(1), Some(5), "rwm"), // /dev/zero
        rule("c", Some(1), Some(7), "rwm"), // /dev/full
        rule("c", Some(1), Some(8), "rwm"), // /dev/random
        rule("c", Some(1), Some(9), "rwm"), // /dev/urandom
        rule("c", Some(5), Some(0), "rwm"), // /dev/tty
        rule("c", Some(5), Some(2), "rwm"), // /dev/ptmx
        rule("c", Some(136), None, "rwm"),  // /dev/pts/*
    ]
}

/// The nodes a CRI device adds, and the cgroup access they get.
fn config_device(device: &Device) -> Result<(Vec<LinuxDevice>, String), SpecError> {
    let permissions = if device.permissions.is_empty() {
        "rwm".to_string()
    } else if device.permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        device.permissions.clone()
    } else {
        return Err(SpecError::DevicePermissions(device.permissions.clone()));
    };
    if !device.host_path.starts_with('/') {
        return Err(SpecError::RelativePath {
            what: "device host path",
            path: device.host_path.clone(),
        });
    }
    let container_path = if device.container_path.is_empty() {
        device.host_path.as_str()
    } else {
        device.container_path.as_str()
    };
    if !container_path.starts_with('/') {
        return Err(SpecError::RelativePath {
            what: "device container path",
            path: container_path.to_string(),
        });
    }
    let host_path = Path::new(&device.host_path);
    let metadata = fs::metadata(host_path).map_err(|err| host_path_error(host_path, err))?;
    let nodes = if metadata.is_dir() {
        devices_under(host_path, &clean_path(container_path))?
    } else {
        let node = device_node(&metadata, &clean_path(container_path))
            .ok_or_else(|| SpecError::NotADevice(host_path.to_path_buf()))?;
        vec![node]
    };
    Ok((nodes, permissions))
}

/// The node for a character or block device's metadata, at `container_path`.
fn device_node(metadata: &fs::Metadata, container_path: &str) -> Option<LinuxDevice> {
    let file_type = metadata.file_type();
    let kind = if file_type.is_char_device() {
        "c"
    } else if file_type.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = metadata.rdev();
    Some(LinuxDevice {
        path: container_path.to_string(),
        kind: kind.to_string(),
        major: i64::from(rustix::fs::major(rdev)),
        minor: i64::from(rustix::fs::minor(rdev)),
        file_mode: Some(metadata.mode() & 0o777),
        uid: Some(metadata.uid()),
        gid: Some(metadata.gid()),
    })
}

/// Every device below the host directory `dir`, at the same place below `container_dir`
/// (containerd's `getDevices`: symbolic links and `/dev/console` are skipped, and so are
/// [`SKIPPED_DEV_DIRS`]).
fn devices_under(dir: &Path, container_dir: &str) -> Result<Vec<LinuxDevice>, SpecError> {
    let io_error = |source| SpecError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(io_error)?
        .collect::<Result<_, _>>()
        .map_err(io_error)?;
    entries.sort_by_key(|entry| entry.file_name());
    let mut devices = Vec::new();
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let metadata = match fs::symlink_metadata(entry.path()) {
            Ok(metadata) => metadata,
            // Gone since the listing (a hot-unplugged device).
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(SpecError::Io {
                    path: entry.path(),
                    source,
                });
            }
        };
        let container_path = format!("{}/{name}", container_dir.trim_end_matches('/'));
        if metadata.is_dir() {
            if !SKIPPED_DEV_DIRS.contains(&name.as_str()) {
                devices.extend(devices_under(&entry.path(), &container_path)?);
            }
        } else if name != "console"
            && let Some(node) = device_node(&metadata, &container_path)
        {
            devices.push(node);
        }
    }
    Ok(devices)
}

fn paths_or_default(paths: &[String], default: &[&str]) -> Vec<String> {
    if paths.is_empty() {
        default.iter().map(|path| path.to_string()).collect()
    } else {
        paths.to_vec()
    }
}

/// The requested `oom_score_adj`, raised to the runtime's own: the kernel refuses an
/// unprivileged lowering, and a node agent that runs the runtime at -999 expects its
/// containers to stay above it (containerd's `restrict_oom_score_adj`).
fn oom_score_adj(requested: i64, own: Option<i64>) -> Result<i32, SpecError> {
    if !OOM_SCORE_ADJ_RANGE.contains(&requested) {
        return Err(SpecError::OomScoreAdj(requested));
    }
    let adj = own.map_or(requested, |own| requested.max(own));
    i32::try_from(adj).map_err(|_| SpecError::OomScoreAdj(adj))
}

fn resources_with(r: &LinuxContainerResources, cgroups: &CgroupFacts) -> LinuxResources {
    let cpu = LinuxCpu {
        shares: u64::try_from(r.cpu_shares).ok().filter(|&shares| shares > 0),
        quota: (r.cpu_quota != 0).then_some(r.cpu_quota),
        period: u64::try_from(r.cpu_period).ok().filter(|&period| period > 0),
        cpus: (!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()),
        mems: (!r.cpuset_mems.is_empty()).then(|| r.cpuset_mems.clone()),
    };
    let swap = (r.memory_swap_limit_in_bytes != 0).then_some(r.memory_swap_limit_in_bytes);
    if swap.is_some() && !cgroups.swap {
        tracing::debug!("no swap accounting on this host; ignoring the swap limit");
    }
    let memory = LinuxMemory {
        limit: (r.memory_limit_in_bytes != 0).then_some(r.memory_limit_in_bytes),
        swap: swap.filter(|_| cgroups.swap),
        ..LinuxMemory::default()
    };
    let hugepage_limits = if cgroups.hugetlb {
        r.hugepage_limits
            .iter()
            .map(|limit| LinuxHugepageLimit {
                page_size: limit.page_size.clone(),
                limit: limit.limit,
            })
            .collect()
    } else {
        if !r.hugepage_limits.is_empty() {
            tracing::debug!("no hugetlb cgroup controller on this host; ignoring huge page limits");
        }
        Vec::new()
    };
    LinuxResources {
        devices: Vec::new(),
        memory: (memory != LinuxMemory::default()).then_some(memory),
        cpu: (cpu != LinuxCpu::default()).then_some(cpu),
        pids: None,
        hugepage_limits,
        unified: r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The config's annotations, then the `io.kubernetes.cri.*` ones (which win).
fn annotations(inputs: &SpecInputs<'_>) -> BTreeMap<String, String> {
    let config = inputs.config;
    let mut annotations: BTreeMap<String, String> =
        config.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let sandbox_metadata = inputs.sandbox.metadata.clone().unwrap_or_default();
    let container_name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let image_name = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
    for (key, value) in [
        (ANNOTATION_CONTAINER_TYPE, "container".to_string()),
        (ANNOTATION_SANDBOX_ID, inputs.sandbox_id.to_string()),
        (ANNOTATION_SANDBOX_NAMESPACE, sandbox_metadata.namespace),
        (ANNOTATION_SANDBOX_NAME, sandbox_metadata.name),
        (ANNOTATION_CONTAINER_NAME, container_name),
        (ANNOTATION_IMAGE_NAME, image_name),
    ] {
        annotations.insert(key.to_string(), value);
    }
    annotations
}

pub mod seccomp;
mod security;
mod userns;

#[cfg(test)]
mod tests;
