//! Lifecycle hooks: postStart after a container starts, preStop before it is stopped
//! within the pod's grace period, as the kubelet's `lifecycle` package runs them.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

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

/// PreStop hook, then StopContainer with the rest of `grace` (see [`stop_container`]).
pub(crate) async fn stop_with_grace(target: &HookTarget<'_>, grace: Duration) -> Result<(), cri_client::Error> {
    let container = target.container;
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
    stop_container(target, left).await
}

/// StopContainer with `grace` (SIGTERM, then SIGKILL: the runtime's part), no hook. A
/// container the runtime no longer knows is stopped.
pub(crate) async fn stop_container(target: &HookTarget<'_>, grace: Duration) -> Result<(), cri_client::Error> {
    match target.runtime.stop_container(target.id, grace).await {
        Err(err) if !err.is_not_found() => {
            tracing::warn!(container = %target.container.name, error = %err, "stopping the container");
            Err(err)
        }
        _ => Ok(()),
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
pub(crate) async fn run_hook(
    target: &HookTarget<'_>,
    hook: &LifecycleHandler,
    timeout: Duration,
) -> Result<(), String> {
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
