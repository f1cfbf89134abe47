//! The holder of a pod's shared PID namespace (a pod whose PID mode is POD, the kubelet's
//! `shareProcessNamespace: true`).
//!
//! A PID namespace cannot be pinned by a bind mount: it lives as long as its init. So such
//! a pod gets one process, `unshare --pid --fork --kill-child -- runtime-core-monitor
//! --pause <sandbox dir>`, started in a session of its own so it outlives the daemon.
//! In a pod with its own user namespace, `nsenter --user` enters it first, so the PID
//! namespace belongs to it (its containers could not mount `/proc` otherwise); the
//! holder then runs as the pod's root, who may not search the directories holding the
//! monitor binary, so the binary is handed over as an open file on stdin and executed as
//! `/proc/self/fd/0`. Its stdout and stderr are `/dev/null`. The monitor in pause mode ([`crate::monitor::pause`]) is
//! pid 1 of the new namespace: it reaps the namespace's orphans until it is killed. The
//! containers of the pod join `/proc/<its host pid>/ns/pid`.
//!
//! [`stop`] kills it with SIGKILL, which kills every process of the namespace; `unshare`
//! then exits on its own. A pid is only ever killed when its command line is the pause
//! mode's for this sandbox directory, so a pid the kernel gave to another process after a
//! reboot is left alone.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal};

use crate::monitor::pause::PAUSE_ARG;

/// How long the holder's init may take to appear after `unshare` started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`stop`] waits for the killed init to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the start and stop loops look at `/proc`.
const POLL: Duration = Duration::from_millis(5);

/// A holder that could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PidHolderError {
    /// `setsid unshare ...` did not start.
    #[error("starting the PID namespace holder: {0}")]
    Spawn(#[source] io::Error),
    /// `unshare` ended before its child ran the pause mode.
    #[error("the PID namespace holder exited at once ({0})")]
    Exited(ExitStatus),
    /// The pause mode did not appear in time.
    #[error("the PID namespace holder's init did not start within {0:?}")]
    Timeout(Duration),
    /// SIGKILL failed, or the process outlived it.
    #[error("stopping the PID namespace holder {pid}: {source}")]
    Kill {
        /// The holder's host pid.
        pid: u32,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Starts the holder of a new PID namespace for the sandbox in `dir`, owned by the pod's
/// user namespace `user_ns` if it has one; returns the host pid of the namespace's init
/// (the pause mode of `monitor_binary`).
pub async fn start(monitor_binary: &Path, dir: &Path, user_ns: Option<&Path>) -> Result<u32, PidHolderError> {
    // The child is not a process group leader, so setsid(1) execs the rest in place.
    let mut command = tokio::process::Command::new("setsid");
    if let Some(user_ns) = user_ns {
        let mut user = std::ffi::OsString::from("--user=");
        user.push(user_ns);
        command.arg("nsenter").arg(user).arg("--");
    }
    command.args(["unshare", "--pid", "--fork", "--kill-child", "--"]);
    let stdin = match user_ns {
        None => {
            command.arg(monitor_binary);
            Stdio::null()
        }
        Some(_) => {
            command.arg("/proc/self/fd/0");
            Stdio::from(std::fs::File::open(monitor_binary).map_err(PidHolderError::Spawn)?)
        }
    };
    let mut child = command
        .arg(PAUSE_ARG)
        .arg(dir)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(PidHolderError::Spawn)?;
    let unshare = child
        .id()
        .ok_or_else(|| PidHolderError::Spawn(io::Error::other("no pid")))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(init) = children_of(unshare).into_iter().find(|&pid| is_holder(pid, dir)) {
            // unshare stays our child until its own child dies: reap it then.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            return Ok(init);
        }
        if let Some(status) = child.try_wait().map_err(PidHolderError::Spawn)? {
            return Err(PidHolderError::Exited(status));
        }
        if Instant::now() >= deadline {
            // --kill-child: the init, if any, dies with unshare.
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(PidHolderError::Timeout(START_TIMEOUT));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Kills the holder `pid` of the sandbox in `dir` (and so every process of its PID
/// namespace) and waits until it is gone. Idempotent: a pid that is not that holder (any
/// more) is left alone.
pub async fn stop(pid: u32, dir: &Path) -> Result<(), PidHolderError> {
    if !is_holder(pid, dir) {
        return Ok(());
    }
    let Some(target) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return Ok(());
    };
    match rustix::process::kill_process(target, Signal::KILL) {
        Ok(()) | Err(Errno::SRCH) => {}
        Err(err) => {
            return Err(PidHolderError::Kill {
                pid,
                source: err.into(),
            });
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while is_holder(pid, dir) {
        if Instant::now() >= deadline {
            return Err(PidHolderError::Kill {
                pid,
                source: io::Error::other("still running after SIGKILL"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

/// Whether `pid` is the running holder of the sandbox in `dir`: its command line is
/// `<monitor> --pause <dir>` (a dead process, even a zombie, has an empty one).
pub fn is_holder(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|&b| b == 0).skip(1);
    args.next() == Some(PAUSE_ARG.as_bytes()) && args.next() == Some(dir.as_os_str().as_bytes())
}

/// Every holder started for the sandbox directory `dir`, found in /proc: what a restart
/// stops when the daemon died before it recorded the holder's pid.
pub fn holders_of(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| is_holder(pid, dir))
        .collect()
}

/// The namespace file the pod's containers join: `/proc/<pid>/ns/pid`.
pub fn namespace_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/pid"))
}

/// The children of `pid` (from its main thread's `children` file).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read(format!("/proc/{pid}/task/{pid}/children"))
        .map(|text| {
            text.split(u8::is_ascii_whitespace)
                .filter_map(|word| OsStr::from_bytes(word).to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_namespace_path_is_the_init_s_pid_namespace_file() {
        assert_eq!(namespace_path(42), PathBuf::from("/proc/42/ns/pid"));
    }

    #[test]
    fn this_process_is_no_holder() {
        assert!(!is_holder(std::process::id(), Path::new("/")));
        assert!(children_of(u32::MAX).is_empty());
    }
}
