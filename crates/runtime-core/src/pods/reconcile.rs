//! Start-up reconciliation: the records against what runc, the mounts and the namespace
//! files say after the daemon was down.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::container_create::idmapped_root;
use super::{Pods, now_nanos};
use crate::container::rootfs::Rootfs;
use crate::monitor;
use crate::sandbox::{namespaces, pid_holder};
use crate::state::container::{ContainerRecord, ContainerState};
use crate::state::sandbox::SandboxState;

impl Pods {
    /// Brings the records up to date before serving:
    ///
    /// - a running container whose monitor recorded an exit while the daemon was down is
    ///   Exited with that code; one whose monitor is gone without a record is Unknown;
    /// - a container whose creation was cut short (no config.json, or one a power cut tore)
    ///   is removed;
    /// - a created container whose start was cut short is settled: adopted as Running if
    ///   runc runs it, Exited if it already ran, a failed start if runc only created it;
    /// - a created container whose rootfs is no longer mounted (after a reboot) gets it back;
    /// - a ready sandbox whose network namespace or shared PID namespace (its init) is gone
    ///   (after a reboot) is stopped;
    /// - a stopped sandbox whose directory is gone (its removal finished, but the record's
    ///   deletion, which is not synced, was lost) is removed with its containers;
    /// - bundle and sandbox directories without a record are removed.
    pub async fn reconcile(&self) {
        for container in self.registry.containers() {
            let id = container.id.clone();
            if !has_valid_config(&container.bundle) {
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
                ContainerState::Created if self.settle_interrupted_start(&container).await => {}
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
        crash_point::hit("reconcile.after_containers");
        for sandbox in self.registry.sandboxes() {
            // Only a stopped sandbox is removed, and a reboot (which empties the state
            // directory) leaves ready ones: those are stopped below, their records kept.
            if !sandbox.dir.exists() && sandbox.status.state != SandboxState::Ready {
                self.forget_removed_sandbox(&sandbox.id).await;
                continue;
            }
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
        crash_point::hit("reconcile.after_sandboxes");
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

/// Whether the bundle's config.json is there and whole (it is written to a temporary file
/// and renamed, but a file torn by a power cut on an older write must not be run).
fn has_valid_config(bundle: &Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .is_ok_and(|bytes| serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok())
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

impl Pods {
    /// Settles a Created container whose StartContainer a crash interrupted after runc
    /// created it (the monitor waiting) or even started it. Returns true if it did
    /// something: runc running it, the record is adopted as Running with runc's pid (its
    /// monitor still records the exit); the monitor having recorded an exit, the record
    /// gets the start and the exit; runc having only created it, it is deleted and recorded
    /// as a failed start, as a start that failed is.
    async fn settle_interrupted_start(&self, container: &ContainerRecord) -> bool {
        let id = &container.id;
        let Ok(runtime) = self.runtime_of(container) else {
            return false;
        };
        if let Some(exit) = monitor::exit_status(&container.monitor_dir) {
            tracing::info!(container = %id, "recording a start and exit that happened while the daemon was down");
            let _ = self.registry.update_container(id, |c| {
                c.status.started(0, exit.finished_at_nanos);
                c.status.exited(exit.exit_code, exit.finished_at_nanos, exit.oom_killed);
            });
            return true;
        }
        if !runtime.knows(id) {
            return false;
        }
        match runtime.state(id).await {
            Ok(Some(state)) if state.status == "running" => {
                tracing::info!(container = %id, pid = state.pid, "adopting a container started while its start went unrecorded");
                let _ = self
                    .registry
                    .update_container(id, |c| c.status.started(state.pid, now_nanos()));
            }
            _ => {
                tracing::info!(container = %id, "deleting a container whose start was cut short");
                if let Err(error) = runtime.delete(id, true).await {
                    tracing::warn!(container = %id, %error, "cannot delete the container from runc");
                }
                let _ = self.registry.update_container(id, |c| {
                    c.status.start_failed(
                        "the runtime stopped while the container was starting".into(),
                        now_nanos(),
                    )
                });
            }
        }
        true
    }

    /// Removes the record of sandbox `id`, whose directory is gone, and its containers'
    /// records and files; its network is detached again first (CNI DEL is idempotent).
    async fn forget_removed_sandbox(&self, id: &str) {
        tracing::info!(sandbox = %id, "removing the record of a sandbox whose directory is gone");
        self.tear_down_sandbox(id).await;
        for container in self.registry.containers_of(id) {
            self.remove_unmounted(&container.bundle);
            self.remove_unmounted(&container.monitor_dir);
            let _ = self.registry.remove_container(&container.id);
        }
        let _ = self.registry.remove_sandbox(id);
    }
}
