//! Today's [`OciRuntime`]: runc, each container created by a monitor of its own, which
//! holds its stdio and records its exit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{MonitorConfig, start};
use crate::oci::runc::{ExecOutput, Runc};
use crate::oci::{Call, Creation, OciError, OciRuntime};

/// runc, with a `runtime-core-monitor` process per container.
#[derive(Debug, Clone)]
pub struct MonitoredRunc {
    runc: Runc,
    monitor_binary: PathBuf,
}

impl MonitoredRunc {
    /// `runc`, creating each container under `monitor_binary`.
    pub fn new(runc: Runc, monitor_binary: PathBuf) -> MonitoredRunc {
        MonitoredRunc { runc, monitor_binary }
    }
}

impl OciRuntime for MonitoredRunc {
    fn create<'a>(&'a self, container: &'a Creation) -> Call<'a, u32> {
        Box::pin(async move {
            let config = MonitorConfig {
                id: container.id.clone(),
                bundle: container.bundle.clone(),
                runc_binary: self.runc.binary().to_path_buf(),
                runc_root: self.runc.root().to_path_buf(),
                state_dir: container.monitor_dir.clone(),
                log_path: container.log_path.clone(),
                log_max_line: container.log_max_line,
                stdin: container.stdin,
                tty: container.tty,
            };
            let started = start(&self.monitor_binary, &config)
                .await
                .map_err(|e| OciError::Create(Box::new(e)))?;
            Ok(started.container_pid)
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> Call<'a, ()> {
        Box::pin(async move { Ok(self.runc.start(id).await?) })
    }

    fn knows(&self, id: &str) -> bool {
        self.runc.knows(id)
    }

    fn state<'a>(&'a self, id: &'a str) -> Call<'a, Option<crate::oci::runc::ContainerState>> {
        Box::pin(async move { Ok(self.runc.state(id).await?) })
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> Call<'a, ()> {
        Box::pin(async move { Ok(self.runc.kill(id, signal, all).await?) })
    }

    fn delete<'a>(&'a self, id: &'a str, force: bool) -> Call<'a, ()> {
        Box::pin(async move { Ok(self.runc.delete(id, force).await?) })
    }

    fn exec<'a>(&'a self, id: &'a str, cmd: &'a [String], timeout: Option<Duration>) -> Call<'a, ExecOutput> {
        Box::pin(async move { Ok(self.runc.exec(id, cmd, timeout).await?) })
    }

    fn update<'a>(&'a self, id: &'a str, resources_json: &'a [u8]) -> Call<'a, ()> {
        Box::pin(async move { Ok(self.runc.update(id, resources_json).await?) })
    }

    fn interactive(&self) -> Option<&Runc> {
        Some(&self.runc)
    }

    fn checkpoint<'a>(&'a self, id: &'a str, image_dir: &'a Path, work_dir: &'a Path) -> Call<'a, ()> {
        Box::pin(async move { Ok(self.runc.checkpoint(id, image_dir, work_dir).await?) })
    }
}
