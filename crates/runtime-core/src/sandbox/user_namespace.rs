//! A pod's own user namespace: CRI `userns_options` mode POD (Kubernetes
//! `hostUsers: false`), with the uid and gid ranges the kubelet chose for the pod.
//!
//! The user namespace is created together with the pod's network, IPC and UTS
//! namespaces, so that it owns them: a container in it can then mount `sysfs` and
//! `mqueue`, and `runc exec`, which joins the user namespace first, may still enter the
//! others. Pinning ([`super::namespaces::pin_with`]) does it in two steps:
//! 1. `unshare --user --net --ipc --uts -- sh -c 'echo; read _'` creates the four
//!    namespaces and waits. The runtime, root of the host's user namespace (so any ranges
//!    are allowed), writes the shell's `uid_map` and `gid_map`, bind-mounts its four
//!    namespace files onto the pod's, and lets it exit. (util-linux 2.38 cannot do this
//!    on its own: it maps ranges only through `newuidmap`, and it binds a user namespace
//!    from inside it, where the mount is refused.)
//! 2. `nsenter` enters the four as the pod's root and runs the set-up script (hostname,
//!    `lo`, sysctls): IPC sysctls may only be written by the root of the namespace's owner,
//!    and a hostname is set with `sethostname(2)` (the `hostname` program), since
//!    `/proc/sys/kernel/hostname` is writable by the host's root only.
//!
//! The containers join the namespace by path with the same mappings in their spec (runc
//! 1.1 needs them to know the host ids of the container's root); their root filesystem
//! and bind mounts are id-mapped through it ([`crate::container::idmap`]).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use cri_api::v1::{IdMapping as CriIdMapping, NamespaceMode, PodSandboxConfig, UserNamespace};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::command::{self, RunError};
use super::namespaces::{NamespaceError, PinnedNamespaces};

/// The most ranges a `uid_map` or `gid_map` takes (Linux 4.15 and later).
const MAX_RANGES: usize = 340;

/// One range of ids: `size` ids from `container_id` inside are `host_id`... outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The first id inside the namespace.
    pub container_id: u32,
    /// The id it is on the host.
    pub host_id: u32,
    /// How many ids the range holds.
    pub size: u32,
}

/// The uid and gid ranges of a pod's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMappings {
    /// User ids.
    pub uids: Vec<IdMapping>,
    /// Group ids.
    pub gids: Vec<IdMapping>,
}

impl IdMappings {
    /// The mappings a pod config asks for: `None` for the host's user namespace (mode
    /// NODE, or no `userns_options`); an error naming what is wrong for a mode this
    /// runtime does not offer (CONTAINER, TARGET) or ranges the kernel would refuse.
    pub fn of_pod(config: &PodSandboxConfig) -> Result<Option<IdMappings>, String> {
        let options = config
            .linux
            .as_ref()
            .and_then(|linux| linux.security_context.as_ref())
            .and_then(|sc| sc.namespace_options.as_ref())
            .and_then(|options| options.userns_options.as_ref());
        options.map_or(Ok(None), IdMappings::from_cri)
    }

    /// The mappings of a CRI `UserNamespace` (see [`IdMappings::of_pod`]).
    pub fn from_cri(userns: &UserNamespace) -> Result<Option<IdMappings>, String> {
        match NamespaceMode::try_from(userns.mode) {
            Ok(NamespaceMode::Node) => Ok(None),
            Ok(NamespaceMode::Pod) => Ok(Some(IdMappings {
                uids: ranges("uid", &userns.uids)?,
                gids: ranges("gid", &userns.gids)?,
            })),
            Ok(mode) => Err(format!(
                "mode {} is not supported (POD and NODE are)",
                mode.as_str_name()
            )),
            Err(_) => Err(format!("unknown mode {}", userns.mode)),
        }
    }

    /// The host uid and gid of the container's root (both map id 0: [`IdMappings::from_cri`]
    /// checks it).
    pub fn host_root(&self) -> (u32, u32) {
        (host_id_of_root(&self.uids), host_id_of_root(&self.gids))
    }

    /// The text written to `/proc/PID/uid_map`.
    pub fn uid_map(&self) -> String {
        map_text(&self.uids)
    }

    /// The text written to `/proc/PID/gid_map`.
    pub fn gid_map(&self) -> String {
        map_text(&self.gids)
    }
}

/// Checks one list of ranges: at least one, at most [`MAX_RANGES`], none empty or past
/// the 32-bit id space, none overlapping another inside or outside, and id 0 mapped
/// (runc finds the container's root through it).
fn ranges(kind: &str, cri: &[CriIdMapping]) -> Result<Vec<IdMapping>, String> {
    if cri.is_empty() {
        return Err(format!("mode POD needs {kind} mappings"));
    }
    if cri.len() > MAX_RANGES {
        return Err(format!(
            "{} {kind} mappings are more than the kernel's {MAX_RANGES}",
            cri.len()
        ));
    }
    let mappings: Vec<IdMapping> = cri
        .iter()
        .map(|m| IdMapping {
            container_id: m.container_id,
            host_id: m.host_id,
            size: m.length,
        })
        .collect();
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in mappings.iter().enumerate() {
        if m.size == 0 {
            return Err(format!("{kind} mapping {i} is empty"));
        }
        if end(m.container_id, m.size) > 1 << 32 || end(m.host_id, m.size) > 1 << 32 {
            return Err(format!("{kind} mapping {i} goes past the largest id"));
        }
        let overlaps = |a: u32, b: u32, size_b: u32| u64::from(a) < end(b, size_b) && u64::from(b) < end(a, m.size);
        if let Some(j) = mappings[..i]
            .iter()
            .position(|o| overlaps(m.container_id, o.container_id, o.size) || overlaps(m.host_id, o.host_id, o.size))
        {
            return Err(format!("{kind} mappings {j} and {i} overlap"));
        }
    }
    if !mappings.iter().any(|m| m.container_id == 0) {
        return Err(format!("the {kind} mappings must map id 0 (the container's root)"));
    }
    Ok(mappings)
}

fn host_id_of_root(mappings: &[IdMapping]) -> u32 {
    mappings.iter().find(|m| m.container_id == 0).map_or(0, |m| m.host_id)
}

fn map_text(mappings: &[IdMapping]) -> String {
    mappings.iter().fold(String::new(), |mut text, m| {
        let _ = writeln!(text, "{} {} {}", m.container_id, m.host_id, m.size);
        text
    })
}

/// Creates the user namespace with `mappings` and the network, IPC and UTS namespaces it
/// owns, pins all four on the files of `pinned` (which exist and hold nothing), then runs
/// `script` (`-- sh -c SCRIPT sh PARAMS...`) inside them as the pod's root. See the
/// module doc. The caller removes the files if this fails.
pub(super) async fn pin_files(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cri(container_id: u32, host_id: u32, length: u32) -> CriIdMapping {
        CriIdMapping {
            host_id,
            container_id,
            length,
        }
    }

    fn pod(uids: Vec<CriIdMapping>, gids: Vec<CriIdMapping>) -> UserNamespace {
        UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids,
            gids,
        }
    }

    #[test]
    fn pod_mode_maps_the_ranges_and_node_mode_is_the_hosts() {
        let userns = pod(vec![cri(0, 65536, 65536)], vec![cri(0, 131072, 65536)]);
        let mappings = IdMappings::from_cri(&userns).unwrap().unwrap();
        assert_eq!(mappings.uid_map(), "0 65536 65536\n");
        assert_eq!(mappings.gid_map(), "0 131072 65536\n");
        assert_eq!(mappings.host_root(), (65536, 131072));
        let node = UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..UserNamespace::default()
        };
        assert_eq!(IdMappings::from_cri(&node).unwrap(), None);
        assert_eq!(IdMappings::of_pod(&PodSandboxConfig::default()).unwrap(), None);
    }

    #[test]
    fn ranges_the_kernel_or_runc_would_refuse_are_refused_with_the_reason() {
        let ok = || vec![cri(0, 65536, 65536)];
        let cases: Vec<(UserNamespace, &str)> = vec![
            (pod(vec![], ok()), "needs uid mappings"),
            (pod(ok(), vec![]), "needs gid mappings"),
            (pod(vec![cri(0, 1, 0)], ok()), "empty"),
            (pod(vec![cri(0, u32::MAX, 2)], ok()), "past the largest id"),
            (pod(vec![cri(0, 1000, 10), cri(5, 5000, 10)], ok()), "overlap"),
            (pod(vec![cri(0, 1000, 10), cri(100, 1005, 10)], ok()), "overlap"),
            (pod(vec![cri(1, 1000, 10)], ok()), "must map id 0"),
            (pod(vec![cri(0, 1, 1); MAX_RANGES + 1], ok()), "more than"),
            (
                UserNamespace {
                    mode: NamespaceMode::Container as i32,
                    ..pod(ok(), ok())
                },
                "CONTAINER is not supported",
            ),
            (
                UserNamespace {
                    mode: 42,
                    ..pod(ok(), ok())
                },
                "unknown mode 42",
            ),
        ];
        for (userns, reason) in cases {
            let err = IdMappings::from_cri(&userns).unwrap_err();
            assert!(err.contains(reason), "{err:?} should say {reason:?}");
        }
        let two = pod(vec![cri(0, 1000, 10), cri(10, 5000, 10)], ok());
        assert_eq!(
            IdMappings::from_cri(&two).unwrap().unwrap().uid_map(),
            "0 1000 10\n10 5000 10\n"
        );
    }
}
