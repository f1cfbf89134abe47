//! RemoveContainer: kill it if needed, then delete its runc state, rootfs and bundle.

use std::sync::Arc;
use std::time::Duration;

use cri_api::v1::{ContainerEventType, RemoveContainerRequest, RemoveContainerResponse};

use super::{Pods, PodsError};
use crate::state::StateError;

impl Pods {
    /// RemoveContainer: a running container is killed first. Its log file stays (the
    /// kubelet owns logs).
    ///
    /// api.proto: "This call is idempotent, and must not return an error if the container
    /// has already been removed."
    #[tracing::instrument(skip_all, fields(container = %request.container_id))]
    pub async fn remove_container(
        &self,
        request: RemoveContainerRequest,
    ) -> Result<RemoveContainerResponse, PodsError> {
        let id = match self.registry.container(&request.container_id) {
            Ok(container) => container.id,
            Err(StateError::NotFound { .. }) => return Ok(RemoveContainerResponse {}),
            Err(e) => return Err(e.into()),
        };
        let _busy = self.busy.lock(id.clone()).await;
        self.remove_container_files(&id).await?;
        Ok(RemoveContainerResponse {})
    }

    /// Kills the container if it runs, deletes it from runc, unmounts its rootfs, removes its
    /// bundle and monitor directories (their files in the background) and its record.
    pub(super) async fn remove_container_files(&self, id: &str) -> Result<(), PodsError> {
        self.stop_container_process(id, Duration::ZERO).await?;
        let container = self.registry.container(id)?;
        // The monitor deletes runc's state when the container exits; only a container that
        // never ran, or whose monitor died, still needs it.
        let runtime = self.runtime_of(&container)?;
        if runtime.knows(id) {
            runtime
                .delete(id, true)
                .await
                .map_err(|e| PodsError::failed("deleting the container from runc", e))?;
        }
        crash_point::hit("container_remove.after_runc_delete");
        // The rootfs and any id-mapped mounts come down before anything moves; then each
        // directory leaves its place with one rename, and its files (an unlink each, which
        // waits on the filesystem's journal when the disk is busy) are deleted in the
        // background, as containerd leaves a removed container's snapshot to its garbage
        // collector. What a crash leaves set aside, start-up reconciliation removes.
        let mut aside = Vec::new();
        for dir in [&container.bundle, &container.monitor_dir] {
            let moved = self
                .rootfs
                .set_aside(dir)
                .map_err(|e| PodsError::failed("removing container files", e))?;
            aside.extend(moved);
        }
        crash_point::hit("container_remove.after_set_aside");
        if !aside.is_empty() {
            let rootfs = Arc::clone(&self.rootfs);
            tokio::task::spawn_blocking(move || {
                for dir in aside {
                    if let Err(error) = rootfs.remove(&dir) {
                        tracing::warn!(path = %dir.display(), %error, "cannot remove the files of a removed container");
                    }
                }
            });
        }
        self.registry.remove_container(id)?;
        crash_point::hit("container_remove.after_record");
        self.announce(ContainerEventType::ContainerDeletedEvent, &container);
        Ok(())
    }
}
