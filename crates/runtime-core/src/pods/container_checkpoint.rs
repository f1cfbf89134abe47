//! CheckpointContainer: a forensic checkpoint of a running container, as CRI-O makes it:
//! CRIU (through `runc checkpoint --leave-running`) dumps its processes, and the dump and
//! the container's `config.json` go into a tar archive at the requested location. The
//! container keeps running.
//!
//! CRIU must work on the machine: `criu check` is asked first, and a machine where it
//! fails (a kernel CRIU does not know, missing capabilities) gets FailedPrecondition with
//! CRIU's own reason, before anything is written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cri_api::v1::{CheckpointContainerRequest, CheckpointContainerResponse};

use super::{Pods, PodsError, now_nanos};

/// The CRIU binary, looked up on `PATH`.
const CRIU: &str = "criu";

/// How long a checkpoint may take when the request gives no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl Pods {
    /// CheckpointContainer: InvalidArgument without an absolute archive location,
    /// NotFound for an unknown container, FailedPrecondition for one that does not run or
    /// where CRIU cannot work.
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn checkpoint_container(
        &self,
        request: CheckpointContainerRequest,
    ) -> Result<CheckpointContainerResponse, PodsError> {
        let archive = PathBuf::from(&request.location);
        if !archive.is_absolute() || archive.file_name().is_none() {
            return Err(PodsError::invalid(format!(
                "the checkpoint location {:?} is not an absolute file path",
                request.location
            )));
        }
        let container = self.running_container(&request.container_id)?;
        criu_usable().await.map_err(PodsError::wrong_state)?;
        let _busy = self.busy.lock(container.id.clone()).await;
        let timeout = u64::try_from(request.timeout)
            .ok()
            .filter(|&seconds| seconds > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let scratch = container.bundle.join(format!("checkpoint-{}", now_nanos()));
        let images = scratch.join("checkpoint");
        let work = scratch.join("work");
        for dir in [&images, &work] {
            std::fs::create_dir_all(dir).map_err(|e| PodsError::failed("creating the checkpoint directory", e))?;
        }
        let dumped = async {
            let runtime = self.runtime_of(&container)?;
            tokio::time::timeout(timeout, runtime.checkpoint(&container.id, &images, &work))
                .await
                .map_err(|_| PodsError::failed("checkpointing", format!("not done within {timeout:?}")))?
                .map_err(|e| PodsError::failed("checkpointing", e))?;
            let config = container.bundle.join("config.json");
            tokio::task::spawn_blocking(move || write_archive(&archive, &images, &config))
                .await
                .map_err(|e| PodsError::failed("writing the checkpoint archive", e))?
                .map_err(|e| PodsError::failed("writing the checkpoint archive", e))
        }
        .await;
        if let Err(error) = std::fs::remove_dir_all(&scratch) {
            tracing::warn!(dir = %scratch.display(), %error, "cannot remove the checkpoint's scratch directory");
        }
        dumped.map(|()| CheckpointContainerResponse {})
    }
}

/// Whether CRIU can checkpoint on this machine (`criu check`); the reason it cannot if not.
async fn criu_usable() -> Result<(), String> {
    let output = tokio::process::Command::new(CRIU)
        .arg("check")
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|error| format!("checkpointing needs CRIU: cannot run {CRIU}: {error}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    // CRIU's first error is the cause; the ones after it say what it could not do then.
    let reason = said
        .lines()
        .find(|line| line.contains("Error"))
        .or_else(|| said.lines().last())
        .unwrap_or("no reason given");
    Err(format!(
        "CRIU cannot checkpoint on this machine (`criu check` failed): {}",
        reason.trim()
    ))
}

/// Writes `checkpoint/` (CRIU's images) and `config.json` into a tar archive at `archive`,
/// through a temporary file renamed into place.
fn write_archive(archive: &Path, images: &Path, config: &Path) -> std::io::Result<()> {
    let partial = archive.with_file_name(format!(
        ".{}.partial",
        archive.file_name().unwrap_or_default().to_string_lossy()
    ));
    let written = (|| {
        let mut builder = tar::Builder::new(std::fs::File::create(&partial)?);
        builder.follow_symlinks(false);
        builder.append_dir_all("checkpoint", images)?;
        builder.append_path_with_name(config, "config.json")?;
        builder.into_inner()?.sync_all()?;
        std::fs::rename(&partial, archive)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}
