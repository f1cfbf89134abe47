//! Starting one container (image, config, create, start, postStart hook) and killing one
//! (preStop hook, then StopContainer with the grace period).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::pods::image;
use crate::pods::worker::{Waiting, Worker};
use crate::spec;

/// How long a postStart hook may take.
const POST_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Pulls the image, creates and starts the container in the pod's sandbox, and runs its
/// postStart hook; a failure becomes the container's waiting reason. Returns whether it
/// tried (not while its image is in pull back-off).
pub(crate) async fn start_container(worker: &mut Worker, pod: &Pod, container: &Container, restart_count: i32) -> bool {
    let image = container.image.clone().unwrap_or_default();
    if worker.pull_backoff.remaining(&image, Instant::now()).is_some() {
        let message = format!("Back-off pulling image \"{image}\"");
        worker
            .waiting
            .insert(container.name.clone(), waiting("ImagePullBackOff", message));
        return false;
    }
    match try_start(worker, pod, container, restart_count).await {
        Ok(id) => {
            tracing::info!(container = %container.name, id = %id, restart_count, "container started");
            worker.waiting.remove(&container.name);
        }
        Err(waiting) => {
            tracing::warn!(container = %container.name, reason = %waiting.reason, message = %waiting.message, "container not started");
            worker.waiting.insert(container.name.clone(), waiting);
        }
    }
    true
}

async fn try_start(
    worker: &mut Worker,
    pod: &Pod,
    container: &Container,
    restart_count: i32,
) -> Result<String, Waiting> {
    let runtime = worker.ctx.runtime.clone();
    let Some(sandbox) = worker.sandbox.clone() else {
        return Err(waiting("ContainerCreating", "no sandbox yet".into()));
    };
    let secrets = worker.pull_secrets(pod);
    let image = container.image.clone().unwrap_or_default();
    let image_ref = match image::ensure_image(&runtime, container, &secrets).await {
        Ok(reference) => {
            worker.pull_backoff.succeeded(&image);
            reference
        }
        Err(failure) => {
            if failure.reason == "ErrImagePull" {
                worker.pull_backoff.failed(&image, Instant::now());
            }
            return Err(waiting(failure.reason, failure.message));
        }
    };
    let (Some(objects), Some(volumes)) = (worker.objects.as_ref(), worker.volumes.as_ref()) else {
        return Err(waiting("ContainerCreating", "volumes not ready".into()));
    };
    // The kubelet asks for the image's user before every CreateContainer (runAsNonRoot).
    let image_user = image::image_user(&runtime, &image_ref)
        .await
        .map_err(|message| waiting("CreateContainerConfigError", message))?;
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
    let config = spec::container_config(pod, container, &worker.ctx.node, &context)
        .map_err(|err| waiting("CreateContainerConfigError", err.to_string()))?;
    // The runtime writes the log; the node agent makes its directory, as the kubelet does.
    if !sandbox.config.log_directory.is_empty() {
        let path = std::path::Path::new(&sandbox.config.log_directory).join(&config.log_path);
        if let Some(dir) = path.parent()
            && let Err(err) = tokio::fs::create_dir_all(dir).await
        {
            return Err(waiting(
                "CreateContainerError",
                format!("creating {}: {err}", dir.display()),
            ));
        }
    }
    // Timed by hand: wrapping the calls' futures would grow the worker's future, already
    // large, towards the worker thread's stack size in debug builds.
    let metrics = &worker.ctx.metrics;
    let creating = Instant::now();
    let created = runtime
        .create_container(&sandbox.id, config, sandbox.config.clone())
        .await;
    metrics.observe_cri_call("create_container", creating.elapsed(), created.is_ok());
    let id = created.map_err(|err| waiting("CreateContainerError", err.to_string()))?;
    let starting = Instant::now();
    let started = runtime.start_container(&id).await;
    metrics.observe_cri_call("start_container", starting.elapsed(), started.is_ok());
    if let Err(err) = started {
        let _ = runtime.remove_container(&id).await;
        return Err(waiting("RunContainerError", err.to_string()));
    }
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
        return Err(waiting("PostStartHookError", message));
    }
    Ok(id)
}

/// Runs the preStop hook (within the pod's grace period), then stops the container with
/// what is left of it.
pub(crate) async fn kill_container(worker: &Worker, pod: &Pod, id: &str, container: &Container) {
    let target = HookTarget {
        runtime: &worker.ctx.runtime,
        id,
        pod_ip: worker.pod_ip(),
        container,
    };
    stop_with_grace(&target, grace_of(pod)).await;
}

/// The running container a lifecycle hook acts on.
pub(crate) struct HookTarget<'a> {
    /// The runtime that runs it.
    pub(crate) runtime: &'a cri_client::Client,
    /// Its runtime id.
    pub(crate) id: &'a str,
    /// The pod's IP, the default host of an httpGet hook.
    pub(crate) pod_ip: &'a str,
    /// Its spec (hooks, named ports).
    pub(crate) container: &'a Container,
}

/// PreStop hook, then StopContainer with the rest of `grace` (SIGTERM, then SIGKILL:
/// the runtime's part).
pub(crate) async fn stop_with_grace(target: &HookTarget<'_>, grace: Duration) {
    let (runtime, id, container) = (target.runtime, target.id, target.container);
    let started = Instant::now();
    if let Some(hook) = container.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && !grace.is_zero()
    {
        match tokio::time::timeout(grace, run_hook(target, hook, grace)).await {
            Ok(Ok(())) => tracing::info!(container = %container.name, "preStop hook ran"),
            Ok(Err(message)) => tracing::warn!(container = %container.name, %message, "preStop hook failed"),
            Err(_) => tracing::warn!(container = %container.name, "preStop hook timed out"),
        }
    }
    // The kubelet gives the container at least 2 s after a hook used up the grace period.
    let left = grace
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(if grace.is_zero() { 0 } else { 2 }));
    if let Err(err) = runtime.stop_container(id, left).await
        && !err.is_not_found()
    {
        tracing::warn!(container = %container.name, error = %err, "stopping the container");
    }
}

/// The pod's termination grace period.
pub(crate) fn grace_of(pod: &Pod) -> Duration {
    let seconds = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Runs a lifecycle hook: a command in the container (ExecSync), a GET to it over HTTP or
/// HTTPS (a status from 200 to 399 is success, as for probes), or a sleep. A tcpSocket
/// handler, which the API keeps only for compatibility, is logged and skipped, as the
/// kubelet does.
async fn run_hook(target: &HookTarget<'_>, hook: &LifecycleHandler, timeout: Duration) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let command = exec.command.clone().unwrap_or_default();
        let response = target
            .runtime
            .exec_sync(target.id, command, timeout)
            .await
            .map_err(|err| err.to_string())?;
        return match response.exit_code {
            0 => Ok(()),
            code => Err(format!(
                "exited with {code}: {}",
                String::from_utf8_lossy(&response.stderr).trim()
            )),
        };
    }
    if let Some(http) = &hook.http_get {
        let get = crate::probe::http_get(http, target.pod_ip, target.container);
        return match tokio::time::timeout(timeout, get).await {
            Err(_) => Err(format!("HTTP hook timed out after {}s", timeout.as_secs())),
            Ok(Err(message)) => Err(message),
            Ok(Ok(code)) if (200..400).contains(&code) => Ok(()),
            Ok(Ok(code)) => Err(format!("HTTP lifecycle hook returned status {code}")),
        };
    }
    if let Some(sleep) = &hook.sleep {
        let seconds = u64::try_from(sleep.seconds).map_err(|_| format!("invalid sleep of {}s", sleep.seconds))?;
        tokio::time::sleep(Duration::from_secs(seconds).min(timeout)).await;
        return Ok(());
    }
    tracing::warn!(container = %target.container.name, "tcpSocket lifecycle hooks are not run");
    Ok(())
}

fn waiting(reason: &str, message: String) -> Waiting {
    Waiting {
        reason: reason.to_owned(),
        message,
    }
}
