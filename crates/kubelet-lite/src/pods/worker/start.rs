//! The worker starting one container of its pod (image, config, create, start, postStart
//! hook) and killing one (preStop hook, then StopContainer with the grace period).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{FAILED_START_REASONS, FAILED_START_RETRY, Waiting, Worker};
use crate::pods::hooks::{HookTarget, grace_of, run_hook, stop_with_grace};
use crate::pods::image;
use crate::spec;

/// How long a postStart hook may take.
const POST_START_TIMEOUT: Duration = Duration::from_secs(30);

impl Worker {
    /// Pulls the image, creates and starts the container in the pod's sandbox, and runs its
    /// postStart hook; a failure becomes the container's waiting reason. Returns whether it
    /// tried (not while its image is in pull back-off).
    pub(super) async fn start_container(&mut self, pod: &Pod, container: &Container, restart_count: i32) -> bool {
        let now = Instant::now();
        if (self.waiting.get(&container.name)).is_some_and(|w| w.retry_in(now).is_some()) {
            return false;
        }
        let image = container.image.clone().unwrap_or_default();
        if self.pull_backoff.remaining(&image, Instant::now()).is_some() {
            let message = format!("Back-off pulling image \"{image}\"");
            self.waiting
                .insert(container.name.clone(), Waiting::new("ImagePullBackOff", message));
            return false;
        }
        match self.try_start(pod, container, restart_count).await {
            Ok(id) => {
                tracing::info!(container = %container.name, id = %id, restart_count, "container started");
                self.waiting.remove(&container.name);
            }
            Err(mut waiting) => {
                tracing::warn!(container = %container.name, reason = %waiting.reason, message = %waiting.message, "container not started");
                if FAILED_START_REASONS.contains(&waiting.reason.as_str()) {
                    waiting.retry_at = Some(Instant::now() + FAILED_START_RETRY);
                }
                self.waiting.insert(container.name.clone(), waiting);
            }
        }
        true
    }

    async fn try_start(&mut self, pod: &Pod, container: &Container, restart_count: i32) -> Result<String, Waiting> {
        let runtime = self.ctx.runtime.clone();
        let Some(sandbox) = self.sandbox.clone() else {
            return Err(Waiting::new("ContainerCreating", "no sandbox yet".into()));
        };
        let secrets = self.pull_secrets(pod);
        let image = container.image.clone().unwrap_or_default();
        let image_ref = match image::ensure_image(&runtime, container, &secrets).await {
            Ok(reference) => {
                self.pull_backoff.succeeded(&image);
                reference
            }
            Err(failure) => {
                if failure.reason == "ErrImagePull" {
                    self.pull_backoff.failed(&image, Instant::now());
                }
                return Err(Waiting::new(failure.reason, failure.message));
            }
        };
        // The services' variables are those of the services as they are now, as the
        // kubelet's (read from its informer at each container's creation). Boxed: the
        // client's future would grow the worker's, already large.
        if let Some(objects) = self.objects.as_mut() {
            Box::pin(objects.refresh_services(self.ctx.client.as_ref(), pod))
                .await
                .map_err(|err| Waiting::new("CreateContainerConfigError", err.to_string()))?;
        }
        let (Some(objects), Some(volumes)) = (self.objects.as_ref(), self.volumes.as_ref()) else {
            return Err(Waiting::new("ContainerCreating", "volumes not ready".into()));
        };
        // The kubelet asks for the image's user before every CreateContainer (runAsNonRoot).
        let image_user = image::image_user(&runtime, &image_ref)
            .await
            .map_err(|message| Waiting::new("CreateContainerConfigError", message))?;
        let pod_ip = sandbox.ips.first().cloned().unwrap_or_default();
        let context = spec::ContainerContext {
            pod_ip: &pod_ip,
            pod_ips: &sandbox.ips,
            objects,
            volumes,
            restart_count: u32::try_from(restart_count).unwrap_or(0),
            image: &image_ref,
            image_user: &image_user,
        };
        let config = spec::container_config(pod, container, &self.ctx.node, &context)
            .map_err(|err| Waiting::new("CreateContainerConfigError", err.to_string()))?;
        // The runtime writes the log; the node agent makes its directory, as the kubelet does.
        if !sandbox.config.log_directory.is_empty() {
            let path = std::path::Path::new(&sandbox.config.log_directory).join(&config.log_path);
            if let Some(dir) = path.parent()
                && let Err(err) = tokio::fs::create_dir_all(dir).await
            {
                return Err(Waiting::new(
                    "CreateContainerError",
                    format!("creating {}: {err}", dir.display()),
                ));
            }
        }
        // Timed by hand: wrapping the calls' futures would grow the worker's future, already
        // large, towards the worker thread's stack size in debug builds.
        let metrics = &self.ctx.metrics;
        let creating = Instant::now();
        let created = runtime
            .create_container(&sandbox.id, config, sandbox.config.clone())
            .await;
        metrics.observe_cri_call("create_container", creating.elapsed(), created.is_ok());
        let id = created.map_err(|err| Waiting::new("CreateContainerError", err.to_string()))?;
        crash_point::hit("worker.after_create_container");
        let starting = Instant::now();
        let started = runtime.start_container(&id).await;
        metrics.observe_cri_call("start_container", starting.elapsed(), started.is_ok());
        if let Err(err) = started {
            let _ = runtime.remove_container(&id).await;
            return Err(Waiting::new("RunContainerError", err.to_string()));
        }
        crash_point::hit("worker.after_start_container");
        let target = HookTarget {
            runtime: &runtime,
            id: &id,
            pod_ip: &pod_ip,
            container,
        };
        if let Some(hook) = container.lifecycle.as_ref().and_then(|l| l.post_start.as_ref())
            && let Err(message) = run_hook(&target, hook, POST_START_TIMEOUT).await
        {
            tracing::warn!(container = %container.name, %message, "postStart hook failed: killing the container");
            let _ = runtime.stop_container(&id, grace_of(pod)).await;
            return Err(Waiting::new("PostStartHookError", message));
        }
        Ok(id)
    }

    /// Runs the preStop hook (within the pod's grace period), then stops the container with
    /// what is left of it.
    pub(super) async fn kill_container(&self, pod: &Pod, id: &str, container: &Container) {
        let target = HookTarget {
            runtime: &self.ctx.runtime,
            id,
            pod_ip: self.pod_ip(),
            container,
        };
        // A failure is logged; the next sync finds the container still running.
        let _ = stop_with_grace(&target, grace_of(pod)).await;
    }
}
