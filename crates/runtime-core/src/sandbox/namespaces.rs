//! A pod's namespaces, pinned CRI-O style: no process holds them, bind mounts of their
//! `nsfs` files do.
//!
//! [`pin`] runs util-linux `unshare --net=FILE --ipc=FILE --uts=FILE` (the runtime never
//! calls `unshare(2)` on its own threads): `unshare` creates the namespaces, bind-mounts
//! `/proc/PID/ns/*` onto the files, and runs a short `sh` script inside them that sets the
//! hostname, brings `lo` up and writes the pod's sysctls; then it exits, and the mounts keep
//! the namespaces alive. The containers join them by path (the OCI spec's `namespaces[].path`)
//! and CNI configures the network namespace by path. [`unpin`] unmounts and removes the
//! files; the kernel frees a namespace when its last mount and last process are gone.
//!
//! The files are plain files in an ordinary directory, as CRI-O's `pinns` makes them: a
//! bind mount of a network, IPC or UTS namespace needs no special mount propagation (only
//! mount namespaces must be bound into a private or unbindable mount, which is not done
//! here), and a directory that is not made private keeps the host's propagation, so the
//! unmounts in [`unpin`] reach copies of these mounts in mount namespaces created meanwhile
//! on a host whose root is shared.
//!
//! A pod with a user namespace of its own gets it pinned as a fourth file, `user`, owning
//! the other three: see [`super::user_namespace`] for its ranges and
//! `pin_files_in_user_namespace` for how pinning differs.
//!
//! After a restart, [`is_pinned`] tells whether a recorded file still holds a namespace.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use cri_api::v1::{NamespaceMode, NamespaceOption};
use futures_util::future::BoxFuture;
use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tracing::{debug, warn};

use super::command::{self, RunError};
use super::user_namespace::IdMappings;

/// The file name of the pinned network namespace in a pod's namespace directory.
pub const NETWORK_FILE: &str = "net";
/// The file name of the pinned IPC namespace in a pod's namespace directory.
pub const IPC_FILE: &str = "ipc";
/// The file name of the pinned UTS namespace in a pod's namespace directory.
pub const UTS_FILE: &str = "uts";
/// The file name of the pinned user namespace in a pod's namespace directory.
pub const USER_FILE: &str = "user";

/// `NSFS_MAGIC` from `linux/magic.h`: the `f_type` statfs(2) reports for a namespace file.
const NSFS_MAGIC: u64 = 0x6e73_6673;

/// The longest hostname the kernel takes (`__NEW_UTS_LEN`).
const MAX_HOSTNAME_LEN: usize = 64;

/// How long `unshare` and its script may take.
const PIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How many mounts stacked on one file [`unpin`] takes off before giving up.
const MAX_STACKED_MOUNTS: usize = 16;

/// The namespaces of one pod, each a file holding a bind mount of the namespace.
///
/// The IPC and UTS namespaces are pinned for every pod (two empty namespaces cost
/// nothing); whether the containers join them is the OCI spec's decision: a pod with host
/// IPC (`NamespaceOption.ipc` = `NODE`) leaves the IPC namespace out of its spec, and a
/// host-network pod leaves out the UTS namespace with the network one (it shares the
/// node's hostname, as containerd does it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinnedNamespaces {
    /// The network namespace; `None` for a host-network pod.
    pub network: Option<PathBuf>,
    /// The IPC namespace.
    pub ipc: PathBuf,
    /// The UTS namespace, holding the pod's hostname.
    pub uts: PathBuf,
    /// The pod's own user namespace, owning the others; `None`: the host's.
    pub user: Option<PathBuf>,
}

impl PinnedNamespaces {
    /// Every namespace file [`pin`] may create in `dir`, whether or not it did: what a
    /// reconcile after a restart hands to [`unpin`] when it knows only the directory
    /// ([`unpin`] skips missing files).
    pub fn all_in(dir: &Path) -> PinnedNamespaces {
        PinnedNamespaces {
            network: Some(dir.join(NETWORK_FILE)),
            ipc: dir.join(IPC_FILE),
            uts: dir.join(UTS_FILE),
            user: Some(dir.join(USER_FILE)),
        }
    }

    /// The files, each with its kind as `unshare` and `nsenter` options and `/proc/PID/ns`
    /// name it (`user`, `net`, `ipc`, `uts`); the user namespace first.
    pub(super) fn files(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        [
            ("user", self.user.as_deref()),
            ("net", self.network.as_deref()),
            ("ipc", Some(self.ipc.as_path())),
            ("uts", Some(self.uts.as_path())),
        ]
        .into_iter()
        .filter_map(|(kind, path)| Some((kind, path?)))
    }

    /// `--KIND=FILE` for each file: the options that make `unshare` pin the namespaces on
    /// them, or `nsenter` enter them.
    pub(super) fn options(&self) -> Vec<OsString> {
        self.files()
            .map(|(kind, path)| {
                let mut option = OsString::from(format!("--{kind}="));
                option.push(path);
                option
            })
            .collect()
    }
}

/// What a pod's namespaces are to be, and what to set inside them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PinRequest {
    /// The pod uses the host's network (and UTS) namespace: no network namespace is
    /// pinned.
    pub host_network: bool,
    /// The pod uses the host's IPC namespace (its containers will not join the pinned
    /// one): IPC sysctls are refused.
    pub host_ipc: bool,
    /// The hostname of the UTS namespace; empty keeps the node's (the kubelet sends none
    /// for host-network pods).
    pub hostname: String,
    /// Namespaced sysctls to write in the new namespaces (`net.*` needs the pod's own
    /// network namespace; `kernel.shm*`, `kernel.msg*`, `kernel.sem` and `fs.mqueue.*` its
    /// own IPC one), by name (`net.ipv4.ip_local_port_range` or
    /// `net/ipv4/ip_local_port_range`).
    pub sysctls: BTreeMap<String, String>,
    /// The ranges of the pod's own user namespace; `None`: the host's. Needs the pod's own
    /// network and IPC namespaces.
    pub user: Option<IdMappings>,
}

impl PinRequest {
    /// A pod with its own network, IPC and UTS namespaces, named `hostname`.
    pub fn pod(hostname: impl Into<String>) -> PinRequest {
        PinRequest {
            host_network: false,
            host_ipc: false,
            hostname: hostname.into(),
            sysctls: BTreeMap::new(),
            user: None,
        }
    }

    /// What a CRI `LinuxPodSandboxConfig` asks for: its `NamespaceOption` (network and IPC
    /// in mode `NODE` are the host's) and its sysctls, with the user namespace `user`
    /// ([`IdMappings::of_pod`]). A missing option is the CRI default, mode `POD` for both.
    pub fn from_cri(
        hostname: &str,
        options: Option<&NamespaceOption>,
        sysctls: impl IntoIterator<Item = (String, String)>,
        user: Option<IdMappings>,
    ) -> PinRequest {
        let is_node = |mode: i32| mode == NamespaceMode::Node as i32;
        PinRequest {
            host_network: options.is_some_and(|o| is_node(o.network)),
            host_ipc: options.is_some_and(|o| is_node(o.ipc)),
            hostname: hostname.to_string(),
            sysctls: sysctls.into_iter().collect(),
            user,
        }
    }
}

/// Why namespaces could not be pinned or unpinned.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    /// The hostname cannot be a kernel hostname.
    #[error("invalid hostname {hostname:?}: {reason}")]
    InvalidHostname {
        /// The hostname.
        hostname: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A sysctl is malformed, not namespaced, or needs a namespace the pod does not get.
    #[error("sysctl {key:?}: {reason}")]
    Sysctl {
        /// The sysctl's name as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A user namespace asked for together with the host's network or IPC namespace,
    /// which it could not own.
    #[error("a pod with its own user namespace needs its own network and IPC namespaces")]
    UserWithHostNamespaces,
    /// A namespace file already holds a namespace: pinning again would hide it.
    #[error("{} already holds a pinned namespace", path.display())]
    AlreadyPinned {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A program the pinning needs is not installed.
    #[error("{program} not found (install util-linux and iproute2)")]
    MissingProgram {
        /// The program.
        program: &'static str,
    },
    /// `unshare` failed.
    #[error("pinning namespaces in {}: {message}", dir.display())]
    Pin {
        /// The namespace directory.
        dir: PathBuf,
        /// What `unshare` or its script said.
        message: String,
    },
    /// A namespace file could not be unmounted.
    #[error("unmounting {}: {errno}", path.display())]
    Unmount {
        /// The file.
        path: PathBuf,
        /// The error of umount2(2).
        errno: Errno,
    },
}

/// The seam through which the pods domain pins and releases a pod's namespaces:
/// [`UnsharePinner`] today; a test puts a double behind it.
pub trait NamespacePinner: std::fmt::Debug + Send + Sync {
    /// Pins the namespaces `request` asks for in `dir` (see [`pin_with`]).
    fn pin<'a>(
        &'a self,
        dir: &'a Path,
        request: &'a PinRequest,
    ) -> BoxFuture<'a, Result<PinnedNamespaces, NamespaceError>>;

    /// Releases pinned namespaces, skipping missing files (see [`unpin`]).
    fn unpin<'a>(&'a self, namespaces: &'a PinnedNamespaces) -> BoxFuture<'a, Result<(), NamespaceError>>;
}

/// Pins with util-linux `unshare` ([`pin_with`]) and releases with [`unpin`].
#[derive(Debug, Clone, Copy, Default)]
pub struct UnsharePinner;

impl NamespacePinner for UnsharePinner {
    fn pin<'a>(
        &'a self,
        dir: &'a Path,
        request: &'a PinRequest,
    ) -> BoxFuture<'a, Result<PinnedNamespaces, NamespaceError>> {
        Box::pin(pin_with(dir, request))
    }

    fn unpin<'a>(&'a self, namespaces: &'a PinnedNamespaces) -> BoxFuture<'a, Result<(), NamespaceError>> {
        Box::pin(unpin(namespaces))
    }
}

/// Pins a pod's namespaces in `dir`: a network namespace unless `host_network`, an IPC
/// namespace, and a UTS namespace named `hostname` (the node's if empty). See
/// [`pin_with`].
pub async fn pin(dir: &Path, host_network: bool, hostname: &str) -> Result<PinnedNamespaces, NamespaceError> {
    let request = PinRequest {
        host_network,
        ..PinRequest::pod(hostname)
    };
    pin_with(dir, &request).await
}

/// Pins the pod's namespaces as files `net` (unless the pod uses the host network), `ipc`
/// and `uts` in `dir` (created if missing; a directory of this pod alone), with the
/// hostname set, `lo` up in the network namespace and the sysctls written.
///
/// On failure nothing stays pinned and the files are gone.
pub async fn pin_with(dir: &Path, request: &PinRequest) -> Result<PinnedNamespaces, NamespaceError> {
    validate_hostname(&request.hostname)?;
    if request.user.is_some() && (request.host_network || request.host_ipc) {
        return Err(NamespaceError::UserWithHostNamespaces);
    }
    let sysctls = request
        .sysctls
        .iter()
        .map(|(key, value)| {
            check_sysctl_value(key, value)?;
            Ok((sysctl_path(key, request)?, value.clone()))
        })
        .collect::<Result<Vec<_>, NamespaceError>>()?;
    let pinned = PinnedNamespaces {
        network: (!request.host_network).then(|| dir.join(NETWORK_FILE)),
        ipc: dir.join(IPC_FILE),
        uts: dir.join(UTS_FILE),
        user: request.user.is_some().then(|| dir.join(USER_FILE)),
    };
    let program =
        |name: &'static str| command::find_program(name).ok_or(NamespaceError::MissingProgram { program: name });
    let unshare = program("unshare")?;
    let sh = program("sh")?;
    if !request.host_network {
        program("ip")?;
    }
    if request.user.is_some() && !request.hostname.is_empty() {
        program("hostname")?;
    }

    fs::create_dir_all(dir).map_err(|source| NamespaceError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for (_, path) in pinned.files() {
        if is_pinned(path) {
            return Err(NamespaceError::AlreadyPinned {
                path: path.to_path_buf(),
            });
        }
    }
    // Not one of the files existed as a namespace: any failure from here on may clean up
    // every one of them.
    let result = pin_files(&unshare, &sh, dir, &pinned, request, &sysctls).await;
    if let Err(err) = &result {
        debug!(dir = %dir.display(), error = %err, "pinning failed; removing the namespace files");
        if let Err(cleanup) = unpin_files(&pinned) {
            warn!(dir = %dir.display(), error = %cleanup, "cannot clean up after a failed pin");
        }
    }
    result.map(|()| pinned)
}

async fn pin_files(
    unshare: &Path,
    sh: &Path,
    dir: &Path,
    pinned: &PinnedNamespaces,
    request: &PinRequest,
    sysctls: &[(PathBuf, String)],
) -> Result<(), NamespaceError> {
    // Bind mounts need files that exist.
    for (_, path) in pinned.files() {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o444)
            .open(path)
            .map_err(|source| NamespaceError::Io {
                path: path.to_path_buf(),
                source,
            })?;
    }
    if let Some(mappings) = &request.user {
        let script = script_args(sh, request, sysctls);
        pin_files_in_user_namespace(unshare, sh, dir, pinned, mappings, script, PIN_TIMEOUT).await?;
        return check_pinned(dir, pinned, request);
    }
    let args = unshare_args(pinned, sh, request, sysctls);
    let failed = |message: String| NamespaceError::Pin {
        dir: dir.to_path_buf(),
        message,
    };
    let output = command::run(unshare, &args, &[], None, PIN_TIMEOUT)
        .await
        .map_err(|err| match err {
            RunError::Spawn(err) | RunError::Wait(err) => failed(format!("running unshare: {err}")),
            RunError::Timeout => failed(format!("unshare did not finish within {PIN_TIMEOUT:?}")),
        })?;
    if !output.status.success() {
        return Err(failed(format!("unshare {}: {}", output.status, output.stderr_text())));
    }
    check_pinned(dir, pinned, request)
}

/// Creates the user namespace with `mappings` and the network, IPC and UTS namespaces it
/// owns, pins all four on the files of `pinned` (which exist and hold nothing), then runs
/// `script` (`-- sh -c SCRIPT sh PARAMS...`) inside them as the pod's root, in two steps:
/// 1. `unshare --user --net --ipc --uts -- sh -c 'echo; read _'` creates the four
///    namespaces and waits. The runtime, root of the host's user namespace (so any ranges
///    are allowed), writes the shell's `uid_map` and `gid_map`, bind-mounts its four
///    namespace files onto the pod's, and lets it exit. (util-linux 2.38 cannot do this
///    on its own: it maps ranges only through `newuidmap`, and it binds a user namespace
///    from inside it, where the mount is refused.)
/// 2. `nsenter` enters the four as the pod's root and runs the set-up script (hostname,
///    `lo`, sysctls): IPC sysctls may only be written by the root of the namespace's owner,
///    and a hostname is set with `sethostname(2)` (the `hostname` program), since
///    `/proc/sys/kernel/hostname` is writable by the host's root only.
///
/// The caller removes the files if this fails.
async fn pin_files_in_user_namespace(
    unshare: &Path,
    sh: &Path,
    dir: &Path,
    pinned: &PinnedNamespaces,
    mappings: &IdMappings,
    script: Vec<OsString>,
    timeout: Duration,
) -> Result<(), NamespaceError> {
    let failed = |message: String| NamespaceError::Pin {
        dir: dir.to_path_buf(),
        message,
    };
    let nsenter = command::find_program("nsenter").ok_or(NamespaceError::MissingProgram { program: "nsenter" })?;
    let mut holder = tokio::process::Command::new(unshare)
        .args(pinned.files().map(|(kind, _)| format!("--{kind}")))
        .arg("--")
        .arg(sh)
        .args(["-c", "echo; read _"])
        .env("PATH", command::search_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| failed(format!("running unshare: {err}")))?;
    let pid = holder.id().ok_or_else(|| failed("unshare exited at once".into()))?;
    let (Some(mut input), Some(output), Some(mut errors)) =
        (holder.stdin.take(), holder.stdout.take(), holder.stderr.take())
    else {
        return Err(failed("unshare has no pipes".into()));
    };
    let held = tokio::time::timeout(timeout, async {
        // The shell's first line says the namespaces exist.
        let mut line = String::new();
        BufReader::new(output).read_line(&mut line).await?;
        if line.is_empty() {
            let mut message = String::new();
            errors.read_to_string(&mut message).await?;
            return Err(std::io::Error::other(format!("unshare failed: {}", message.trim())));
        }
        let proc = Path::new("/proc").join(pid.to_string());
        std::fs::write(proc.join("uid_map"), mappings.uid_map())?;
        std::fs::write(proc.join("gid_map"), mappings.gid_map())?;
        for (kind, file) in pinned.files() {
            rustix::mount::mount_bind(proc.join("ns").join(kind), file)?;
        }
        input.write_all(b"\n").await?;
        drop(input);
        holder.wait().await
    })
    .await;
    match held {
        Err(_elapsed) => return Err(failed(format!("unshare did not finish within {timeout:?}"))),
        Ok(Err(err)) => return Err(failed(format!("holding the new namespaces: {err}"))),
        Ok(Ok(status)) if !status.success() => return Err(failed(format!("unshare {status}"))),
        Ok(Ok(_)) => {}
    }
    let mut args = pinned.options();
    args.extend(script);
    let output = command::run(&nsenter, &args, &[], None, timeout)
        .await
        .map_err(|err| match err {
            RunError::Spawn(err) | RunError::Wait(err) => failed(format!("running nsenter: {err}")),
            RunError::Timeout => failed(format!("nsenter did not finish within {timeout:?}")),
        })?;
    if !output.status.success() {
        return Err(failed(format!("nsenter {}: {}", output.status, output.stderr_text())));
    }
    Ok(())
}

/// Fails unless every file of `pinned` holds a namespace.
fn check_pinned(dir: &Path, pinned: &PinnedNamespaces, request: &PinRequest) -> Result<(), NamespaceError> {
    for (_, path) in pinned.files() {
        if !is_pinned(path) {
            return Err(NamespaceError::Pin {
                dir: dir.to_path_buf(),
                message: format!("{} holds no namespace after pinning", path.display()),
            });
        }
    }
    debug!(
        dir = %dir.display(),
        host_network = request.host_network,
        user = request.user.is_some(),
        "namespaces pinned"
    );
    Ok(())
}

/// The arguments of `unshare`: one `--KIND=FILE` per namespace, then [`script_args`].
fn unshare_args(
    pinned: &PinnedNamespaces,
    sh: &Path,
    request: &PinRequest,
    sysctls: &[(PathBuf, String)],
) -> Vec<OsString> {
    let mut args = pinned.options();
    args.extend(script_args(sh, request, sysctls));
    args
}

/// `-- sh -c SCRIPT sh PARAMS...`: the script that sets the pod's hostname, brings `lo`
/// up and writes the sysctls, with the hostname and the sysctl paths and values as
/// positional parameters (never as script text).
fn script_args(sh: &Path, request: &PinRequest, sysctls: &[(PathBuf, String)]) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut script = vec!["set -e"];
    let mut params: Vec<OsString> = Vec::new();
    if !request.hostname.is_empty() {
        script.push(if request.user.is_some() {
            // The root of a user namespace may not write the /proc file; sethostname(2)
            // asks only for CAP_SYS_ADMIN over the UTS namespace.
            "hostname -- \"$1\""
        } else {
            // The UTS sysctls of /proc belong to the writer's UTS namespace: no
            // `hostname` program needed.
            "printf %s \"$1\" > /proc/sys/kernel/hostname"
        });
        script.push("shift");
        params.push(request.hostname.clone().into());
    }
    if !request.host_network {
        script.push("ip link set lo up");
    }
    if !sysctls.is_empty() {
        script.push("while [ $# -ge 2 ]; do printf %s \"$2\" > \"$1\"; shift 2; done");
        for (path, value) in sysctls {
            params.push(path.clone().into());
            params.push(value.clone().into());
        }
    }
    args.push("--".into());
    args.push(sh.into());
    args.push("-c".into());
    args.push(script.join("\n").into());
    args.push("sh".into());
    args.extend(params);
    args
}

fn validate_hostname(hostname: &str) -> Result<(), NamespaceError> {
    let invalid = |reason| NamespaceError::InvalidHostname {
        hostname: hostname.to_string(),
        reason,
    };
    if hostname.len() > MAX_HOSTNAME_LEN {
        return Err(invalid("longer than 64 bytes"));
    }
    if hostname
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '/')
    {
        return Err(invalid("contains a control character, white space or a slash"));
    }
    Ok(())
}

/// The sysctls the IPC namespace holds besides `fs.mqueue.*` (the list runc checks).
const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The `/proc/sys` file of sysctl `key`, if the key is well-formed and belongs to a
/// namespace the pod gets of its own (a sysctl of the host's namespace would change the
/// node).
fn sysctl_path(key: &str, request: &PinRequest) -> Result<PathBuf, NamespaceError> {
    let refuse = |reason: &str| NamespaceError::Sysctl {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let relative = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let well_formed = !relative.is_empty()
        && relative
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':'))
        && relative
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if !well_formed {
        return Err(refuse("not a sysctl name"));
    }
    let dotted = relative.replace('/', ".");
    if dotted.starts_with("net.") {
        if request.host_network {
            return Err(refuse("net.* sysctls need the pod's own network namespace"));
        }
    } else if IPC_SYSCTLS.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        if request.host_ipc {
            return Err(refuse("IPC sysctls need the pod's own IPC namespace"));
        }
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        if request.host_network {
            return Err(refuse("UTS sysctls need the pod's own UTS namespace"));
        }
    } else {
        return Err(refuse("not a namespaced sysctl"));
    }
    Ok(Path::new("/proc/sys").join(relative))
}

/// Refuses a sysctl value that could carry more than one setting: a line break, another
/// control character, or the `=` and `+` that separate settings in the tools that write
/// several at once (the smuggling of CVE-2022-0811). Real values are numbers, words and
/// spaces (`"1024 65000"`).
fn check_sysctl_value(key: &str, value: &str) -> Result<(), NamespaceError> {
    if value.chars().any(|c| c.is_control() || c == '=' || c == '+') {
        return Err(NamespaceError::Sysctl {
            key: key.to_string(),
            reason: format!("value {value:?} holds a control character, '=' or '+'"),
        });
    }
    Ok(())
}

/// Unmounts and removes the namespace files. Idempotent: missing files and files that
/// are no longer mounts are fine. The directory stays (it belongs to the caller).
pub async fn unpin(namespaces: &PinnedNamespaces) -> Result<(), NamespaceError> {
    unpin_files(namespaces)
}

fn unpin_files(namespaces: &PinnedNamespaces) -> Result<(), NamespaceError> {
    let mut first_error = None;
    for (_, path) in namespaces.files() {
        if let Err(err) = unmount_and_remove(path) {
            warn!(path = %path.display(), error = %err, "cannot unpin a namespace");
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn unmount_and_remove(path: &Path) -> Result<(), NamespaceError> {
    let mut unmounted = 0;
    while is_pinned(path) {
        if unmounted == MAX_STACKED_MOUNTS {
            return Err(NamespaceError::Unmount {
                path: path.to_path_buf(),
                errno: Errno::EBUSY,
            });
        }
        // Lazily: a process (a CNI plugin, `nsenter`) may hold the file open for a moment.
        match umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => unmounted += 1,
            // Not a mount point (any more), or no such file.
            Err(Errno::EINVAL | Errno::ENOENT) => break,
            Err(errno) => {
                return Err(NamespaceError::Unmount {
                    path: path.to_path_buf(),
                    errno,
                });
            }
        }
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NamespaceError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// True if `path` is a live namespace mount (its filesystem is `nsfs`): what a reconcile
/// after a restart asks of a recorded namespace file.
pub fn is_pinned(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|stat| u64::try_from(stat.f_type).is_ok_and(|t| t == NSFS_MAGIC))
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn unshare_pins_each_requested_namespace_on_its_file() {
        let dir = Path::new("/run/p/ns");
        let request = PinRequest::pod("web-0");
        let pinned = PinnedNamespaces {
            user: None,
            ..PinnedNamespaces::all_in(dir)
        };
        let args = texts(&unshare_args(&pinned, Path::new("/bin/sh"), &request, &[]));
        assert_eq!(
            args[..5],
            [
                "--net=/run/p/ns/net",
                "--ipc=/run/p/ns/ipc",
                "--uts=/run/p/ns/uts",
                "--",
                "/bin/sh"
            ]
        );
        assert_eq!(args[5], "-c");
        assert!(args[6].contains("> /proc/sys/kernel/hostname"));
        assert!(args[6].contains("ip link set lo up"));
        // The hostname is a parameter, never script text.
        assert_eq!(args[7..], ["sh", "web-0"]);
        assert!(!args[6].contains("web-0"));
    }

    #[test]
    fn host_network_pods_get_no_network_namespace_and_keep_the_node_hostname() {
        let request = PinRequest {
            host_network: true,
            ..PinRequest::pod("")
        };
        let pinned = PinnedNamespaces {
            network: None,
            ipc: "/d/ipc".into(),
            uts: "/d/uts".into(),
            user: None,
        };
        let args = texts(&unshare_args(&pinned, Path::new("/bin/sh"), &request, &[]));
        assert_eq!(args[..4], ["--ipc=/d/ipc", "--uts=/d/uts", "--", "/bin/sh"]);
        assert!(!args[5].contains("hostname") && !args[5].contains("ip link"));
        assert_eq!(args[6..], ["sh"]);
    }

    #[test]
    fn sysctls_are_passed_as_path_and_value_pairs() {
        let mut request = PinRequest::pod("h");
        request
            .sysctls
            .insert("net.ipv4.ip_local_port_range".into(), "1024 65000".into());
        let sysctls: Vec<(PathBuf, String)> = request
            .sysctls
            .iter()
            .map(|(k, v)| (sysctl_path(k, &request).unwrap(), v.clone()))
            .collect();
        let args = texts(&unshare_args(
            &PinnedNamespaces {
                user: None,
                ..PinnedNamespaces::all_in(Path::new("/d"))
            },
            Path::new("/bin/sh"),
            &request,
            &sysctls,
        ));
        assert_eq!(
            args[args.len() - 4..],
            ["sh", "h", "/proc/sys/net/ipv4/ip_local_port_range", "1024 65000"]
        );
    }

    #[test]
    fn the_cri_namespace_options_decide_which_namespaces_are_the_hosts() {
        let node = NamespaceMode::Node as i32;
        let pod = NamespaceMode::Pod as i32;
        let request = PinRequest::from_cri("h", None, [], None);
        assert_eq!((request.host_network, request.host_ipc), (false, false));
        let host_network = NamespaceOption {
            network: node,
            ipc: pod,
            ..Default::default()
        };
        let request = PinRequest::from_cri("h", Some(&host_network), [], None);
        assert_eq!((request.host_network, request.host_ipc), (true, false));
        let host_ipc = NamespaceOption {
            network: pod,
            ipc: node,
            ..Default::default()
        };
        let request = PinRequest::from_cri("h", Some(&host_ipc), [("a.b".to_string(), "1".to_string())], None);
        assert_eq!((request.host_network, request.host_ipc), (false, true));
        assert_eq!(request.sysctls.get("a.b").map(String::as_str), Some("1"));
    }

    #[test]
    fn sysctl_values_cannot_smuggle_a_second_setting() {
        for value in ["1", "1024 65000", "0 2147483647", "4096 87380 6291456"] {
            assert!(
                check_sysctl_value("net.ipv4.ip_local_port_range", value).is_ok(),
                "{value:?}"
            );
        }
        for value in [
            "1+kernel.core_pattern=|/tmp/x",
            "1\nkernel.core_pattern=|/tmp/x",
            "1=2",
            "1\0",
            "1\r",
        ] {
            let err = check_sysctl_value("kernel.shm_rmid_forced", value).unwrap_err();
            assert!(err.to_string().contains("kernel.shm_rmid_forced"), "{err}");
        }
    }

    #[test]
    fn sysctls_map_to_proc_sys_only_in_the_pods_own_namespaces() {
        let pod = PinRequest::pod("h");
        let cases: &[(&str, Option<&str>)] = &[
            (
                "net.ipv4.ip_unprivileged_port_start",
                Some("/proc/sys/net/ipv4/ip_unprivileged_port_start"),
            ),
            (
                "net/ipv4/conf/eth0.100/forwarding",
                Some("/proc/sys/net/ipv4/conf/eth0.100/forwarding"),
            ),
            ("kernel.shm_rmid_forced", Some("/proc/sys/kernel/shm_rmid_forced")),
            ("fs.mqueue.msg_max", Some("/proc/sys/fs/mqueue/msg_max")),
            ("kernel.domainname", Some("/proc/sys/kernel/domainname")),
            ("kernel.panic", None),
            ("vm.swappiness", None),
            ("net/../../etc/passwd", None),
            ("net..ipv4", None),
            ("net.ipv4.x y", None),
            ("", None),
        ];
        for (key, expected) in cases {
            let got = sysctl_path(key, &pod).ok();
            assert_eq!(got.as_deref(), expected.map(Path::new), "{key}");
        }
        let host_network = PinRequest {
            host_network: true,
            ..pod.clone()
        };
        assert!(sysctl_path("net.core.somaxconn", &host_network).is_err());
        assert!(sysctl_path("kernel.hostname", &host_network).is_err());
        let host_ipc = PinRequest { host_ipc: true, ..pod };
        assert!(sysctl_path("kernel.sem", &host_ipc).is_err());
    }

    #[test]
    fn hostnames_are_what_the_kernel_takes() {
        assert!(validate_hostname("web-0").is_ok());
        assert!(validate_hostname("").is_ok());
        assert!(validate_hostname(&"a".repeat(64)).is_ok());
        assert!(validate_hostname(&"a".repeat(65)).is_err());
        assert!(validate_hostname("a b").is_err());
        assert!(validate_hostname("a\nb").is_err());
    }

    #[test]
    fn plain_and_missing_files_are_not_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("net");
        assert!(!is_pinned(&file));
        fs::write(&file, b"").unwrap();
        assert!(!is_pinned(&file));
    }

    #[tokio::test]
    async fn unpinning_plain_and_missing_files_removes_them() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(NETWORK_FILE), b"").unwrap();
        let all = PinnedNamespaces::all_in(dir.path());
        unpin(&all).await.unwrap();
        assert!(!dir.path().join(NETWORK_FILE).exists());
        unpin(&all).await.unwrap();
    }
}
