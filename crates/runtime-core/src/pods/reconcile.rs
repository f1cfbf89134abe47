//! Start-up reconciliation: the records against what runc, the mounts and the namespace
//! files say after the daemon was down.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::Pods;
use super::container_create::idmapped_root;
use crate::container::rootfs::Rootfs;
use crate::sandbox::{namespaces, pid_holder};
use crate::state::container::ContainerState;
use crate::state::sandbox::SandboxState;

impl Pods {
    /// Brings the records up to date before serving:
    ///
    /// - a running container whose monitor recorded an exit while the daemon was down is
    ///   Exited with that code; one whose monitor is gone without a record is Unknown;
    /// - a container whose creation was cut short (no config.json) is removed;
    /// - a created container whose rootfs is no longer mounted (after a reboot) gets it back;
    /// - a ready sandbox whose network namespace or shared PID namespace (its init) is gone
    ///   (after a reboot) is stopped;
    /// - bundle and sandbox directories without a record are removed.
    pub async fn reconcile(&self) {
        for container in self.registry.containers() {
            let id = container.id.clone();
            if !container.bundle.join("config.json").is_file() {
                tracing::info!(container = %id, "removing a container whose creation did not finish");
                self.remove_unmounted(&container.bundle);
                self.remove_unmounted(&container.monitor_dir);
                let _ = self.registry.remove_container(&id);
                continue;
            }
            match container.status.state {
                ContainerState::Running => {
                    if let Err(error) = self.refresh_container(&id) {
                        tracing::warn!(container = %id, %error, "could not refresh the container's state");
                    }
                }
                ContainerState::Created => {
                    let rootfs = Rootfs::in_bundle(&container.bundle);
                    if !rootfs.is_mounted() {
                        let layers: Vec<_> = container.layers.iter().map(|d| self.images.layer_dir(d)).collect();
                        // A pod's user namespace that did not survive leaves its sandbox
                        // to be stopped below, and the mount fails with the reason.
                        let idmapped = (self.registry.sandbox(&container.sandbox_id).ok())
                            .and_then(|sandbox| idmapped_root(&sandbox));
                        if let Err(error) = self.rootfs.mount(&rootfs, &layers, idmapped.as_ref()) {
                            tracing::warn!(container = %id, %error, "could not mount the rootfs again");
                        }
                    }
                }
                ContainerState::Exited | ContainerState::Unknown => {}
            }
        }
        for sandbox in self.registry.sandboxes() {
            if sandbox.status.state != SandboxState::Ready {
                continue;
            }
            let pinned = sandbox.netns.as_deref().is_none_or(namespaces::is_pinned);
            let held = sandbox
                .pid_holder
                .is_none_or(|pid| pid_holder::is_holder(pid, &sandbox.dir));
            if !pinned {
                tracing::info!(sandbox = %sandbox.id, "the sandbox's network namespace is gone; stopping it");
                self.tear_down_sandbox(&sandbox.id).await;
            } else if !held {
                tracing::info!(sandbox = %sandbox.id, "the sandbox's PID namespace is gone; stopping it");
                self.tear_down_sandbox(&sandbox.id).await;
            }
        }
        let containers: HashSet<String> = self.registry.containers().into_iter().map(|c| c.id).collect();
        let sandboxes: HashSet<String> = self.registry.sandboxes().into_iter().map(|s| s.id).collect();
        for dir in orphans(&self.dirs.containers, &containers)
            .into_iter()
            .chain(orphans(&self.dirs.monitors, &containers))
        {
            self.remove_orphan(&dir);
        }
        for dir in orphans(&self.dirs.sandboxes, &sandboxes) {
            // A holder the daemon started but did not get to record.
            for pid in pid_holder::holders_of(&dir) {
                let _ = pid_holder::stop(pid, &dir).await;
            }
            self.remove_orphan(&dir);
        }
    }
}

/// The directories under `parent` whose name is not a known id.
fn orphans(parent: &Path, known: &HashSet<String>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| !known.contains(entry.file_name().to_string_lossy().as_ref()))
        .map(|entry| entry.path())
        .collect()
}

impl Pods {
    /// Removes a directory no record owns, unmounting what is mounted under it first (a
    /// rootfs, id-mapped mounts, pinned namespace files).
    fn remove_orphan(&self, dir: &Path) {
        tracing::info!(path = %dir.display(), "removing a directory no record owns");
        self.remove_unmounted(dir);
    }

    /// Takes down and removes `dir`, with a failure logged: a directory whose mounts cannot
    /// be taken down is left whole.
    fn remove_unmounted(&self, dir: &Path) {
        if let Err(error) = self.rootfs.remove(dir) {
            tracing::warn!(path = %dir.display(), %error, "cannot remove a directory");
        }
    }
}
