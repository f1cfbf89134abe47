//! A container's record: what was asked for (immutable) and its [`ContainerStatus`], whose
//! state changes only through the methods below, each named after the event that causes
//! it; the verbs ask the status whether they may act ([`ContainerStatus::can_start`],
//! [`ContainerStatus::is_running`]) instead of comparing states themselves.
//!
//! ```text
//!   created()          started()                 exited()
//!   ─────────▶ Created ─────────▶ Running ─────────────────▶ Exited
//!                 │                  │                          ▲
//!                 │                  │ lost() (the monitor      │
//!                 │                  ▼   ended, no exit record) │
//!                 │               Unknown                       │
//!                 └──────────────── start_failed() ─────────────┘
//! ```
//!
//! RemoveContainer removes the record in any state (a running container is killed
//! first); StopContainer acts on a running container only, and succeeds on the others.

use std::path::PathBuf;

use cri_api::v1::ContainerConfig;
use serde::{Deserialize, Serialize};

/// The exit code recorded for a container whose process could not be started.
const START_ERROR_EXIT_CODE: i32 = 128;

/// Where a container is in its life (the CRI's `ContainerState`); see the module doc for
/// the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created with runc, not started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended; the exit code is known.
    Exited,
    /// Its monitor vanished without recording how it ended.
    Unknown,
}

impl ContainerState {
    /// The CRI enum value.
    pub fn to_cri(self) -> cri_api::v1::ContainerState {
        match self {
            Self::Created => cri_api::v1::ContainerState::ContainerCreated,
            Self::Running => cri_api::v1::ContainerState::ContainerRunning,
            Self::Exited => cri_api::v1::ContainerState::ContainerExited,
            Self::Unknown => cri_api::v1::ContainerState::ContainerUnknown,
        }
    }
}

/// Everything the runtime keeps about one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container id.
    pub id: String,
    /// The reserved name: `<name>_<pod name>_<pod namespace>_<pod uid>_<attempt>`.
    pub name: String,
    /// The sandbox it belongs to.
    pub sandbox_id: String,
    /// The runtime handler of its sandbox (empty for the default).
    pub runtime_handler: String,
    /// The config the kubelet sent.
    #[serde(with = "crate::store::proto")]
    pub config: ContainerConfig,
    /// The image id it runs (`sha256:...`).
    pub image_id: String,
    /// The image as the kubelet named it.
    pub image_name: String,
    /// Creation time, nanoseconds since the epoch.
    pub created_at: i64,
    /// The CRI log file, absolute; `None` when the kubelet asked for no log.
    pub log_path: Option<PathBuf>,
    /// The OCI bundle: `config.json` and the `rootfs` mount point.
    pub bundle: PathBuf,
    /// The monitor's directory (its pid, the exit record, the control channel).
    pub monitor_dir: PathBuf,
    /// The diff ids of the image layers its rootfs is made of, bottom first: image garbage
    /// collection keeps them while the container exists.
    pub layers: Vec<crate::image::digest::Digest>,
    /// The signal that asks it to stop.
    pub stop_signal: i32,
    /// What changes over the container's life.
    pub status: ContainerStatus,
}

/// The mutable part of a container record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Created, running, exited or unknown.
    pub state: ContainerState,
    /// The container's init pid while it runs.
    pub pid: u32,
    /// Start time, nanoseconds since the epoch (0 if never started).
    pub started_at: i64,
    /// Exit time, nanoseconds since the epoch (0 if still running).
    pub finished_at: i64,
    /// Exit code (128 + signal for a killed process).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled` or empty.
    pub reason: String,
    /// A human-readable note on the reason.
    pub message: String,
}

impl ContainerStatus {
    /// The status of a container that was just created.
    pub fn created() -> Self {
        Self {
            state: ContainerState::Created,
            pid: 0,
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
        }
    }

    /// Whether StartContainer may start the container: only a created one.
    pub fn can_start(&self) -> bool {
        self.state == ContainerState::Created
    }

    /// Whether the container has a process: what stop, exec, attach, a resource update and
    /// a log reopen act on, and what the monitor must be asked about.
    pub fn is_running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// Records a start: the container's init `pid`, started at `started_at`.
    pub fn started(&mut self, pid: u32, started_at: i64) {
        self.state = ContainerState::Running;
        self.pid = pid;
        self.started_at = started_at;
    }

    /// Records a start that failed, as containerd does (exit code 128, reason `StartError`,
    /// `message` saying why), so the kubelet sees why and may remove the container.
    pub fn start_failed(&mut self, message: String, finished_at: i64) {
        self.exited(START_ERROR_EXIT_CODE, finished_at, false);
        self.reason = "StartError".into();
        self.message = message;
    }

    /// Records that the container's monitor ended without recording how the container
    /// did: its state is unknown.
    pub fn lost(&mut self, message: String) {
        self.state = ContainerState::Unknown;
        self.message = message;
    }

    /// Records an exit: code, time and the CRI reason (OOMKilled, Completed or Error).
    pub fn exited(&mut self, exit_code: i32, finished_at: i64, oom_killed: bool) {
        self.state = ContainerState::Exited;
        self.exit_code = exit_code;
        self.finished_at = finished_at;
        self.pid = 0;
        self.reason = match (oom_killed, exit_code) {
            (true, _) => "OOMKilled",
            (false, 0) => "Completed",
            (false, _) => "Error",
        }
        .to_string();
    }
}

impl ContainerRecord {
    /// The reserved name of a container with this config in a sandbox with `sandbox_name`.
    pub fn name_of(config: &ContainerConfig, sandbox_name: &str) -> String {
        let metadata = config.metadata.clone().unwrap_or_default();
        format!("{}_{}_{}", metadata.name, sandbox_name, metadata.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_created_container_starts_and_only_a_running_one_has_a_process() {
        let mut status = ContainerStatus::created();
        assert!(status.can_start() && !status.is_running(), "created");
        status.started(7, 1);
        assert!(!status.can_start() && status.is_running(), "running");
        assert_eq!((status.pid, status.started_at), (7, 1));
        let mut lost = status.clone();
        lost.lost("gone".into());
        assert!(!lost.can_start() && !lost.is_running(), "unknown");
        assert_eq!(lost.state, ContainerState::Unknown);
        status.exited(0, 2, false);
        assert!(!status.can_start() && !status.is_running(), "exited");
        let mut failed = ContainerStatus::created();
        failed.start_failed("no such binary".into(), 3);
        assert!(!failed.can_start() && !failed.is_running(), "failed to start");
        assert_eq!(
            (
                failed.state,
                failed.exit_code,
                failed.reason.as_str(),
                failed.message.as_str()
            ),
            (ContainerState::Exited, 128, "StartError", "no such binary")
        );
    }

    #[test]
    fn exit_reasons_follow_the_cri() {
        let cases = [
            ("success", 0, false, "Completed"),
            ("failure", 3, false, "Error"),
            ("oom", 137, true, "OOMKilled"),
        ];
        for (desc, code, oom, reason) in cases {
            let mut status = ContainerStatus::created();
            status.exited(code, 1, oom);
            assert_eq!(
                (status.state, status.reason.as_str()),
                (ContainerState::Exited, reason),
                "{desc}"
            );
        }
    }
}
