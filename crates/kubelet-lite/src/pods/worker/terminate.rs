//! Graceful termination of a pod: preStop hooks and StopContainer with the grace period
//! for every running container at once, the final status, the sandbox stopped and
//! removed, its logs and volumes removed, and then the pod object deleted (grace 0, this
//! UID as precondition), or the mirror pod of a static pod.
//!
//! Each step that fails is tried again, after a back-off growing from 1 s to 10 s
//! ([`RetryPolicy::TERMINATION`]), until it succeeds or what it acts on is gone (the
//! runtime answers NotFound, or lists nothing of the pod): the next step never starts
//! before the one it depends on is done, so the pod's final status is sent and its
//! object deleted only once its containers are stopped, as the kubelet's pod worker
//! keeps syncing a terminating pod until it is. A preStop hook runs once; a StopContainer
//! tried again gets what is left of the grace period.
//!
//! A pod that failed but stays (its deadline passed, say) is killed only: its containers
//! stopped the same way and its sandbox stopped, as the kubelet's `killPod`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::{Desired, Worker};
use crate::pods::hooks::{HookTarget, grace_of, stop_container, stop_with_grace};
use crate::pods::instances;
use crate::pods::source::Source;
use crate::retry::{RetryBackoff, RetryPolicy};

/// Why a step of the termination in the apiserver must be tried again.
#[derive(Debug, thiserror::Error)]
enum StepError {
    /// The apiserver refused or failed a request.
    #[error(transparent)]
    Api(#[from] kube::Error),
    /// The final status did not reach the apiserver.
    #[error("the final status was not sent")]
    StatusNotSent,
    /// The mirror pod of a static pod could not be deleted.
    #[error("the mirror pod was not deleted")]
    MirrorNotDeleted,
}

/// Evaluates `$step`, an expression giving a `Result`, until it is `Ok`, waiting a
/// growing back-off ([`RetryPolicy::TERMINATION`]) after each failure; gives what the
/// `Ok` held. (A macro: closures returning futures that borrow the worker make its task
/// lose `Send`.)
macro_rules! until_done {
    ($what:expr, $step:expr) => {{
        let mut backoff = RetryBackoff::new(RetryPolicy::TERMINATION);
        loop {
            match $step {
                Ok(done) => break done,
                Err(err) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %err, retry_in = ?delay, "{} failed; trying again", $what);
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }};
}

impl Worker {
    /// Terminates the pod and removes every trace of it from the runtime, then from the
    /// apiserver, each step tried until it is done.
    pub(super) async fn terminate(&mut self, desired: &Desired, grace: Duration) {
        let pod = &desired.pod;
        let runtime = self.ctx.runtime.clone();
        tracing::info!(grace = ?grace, "terminating the pod");
        let specs: Vec<Container> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .cloned()
            .collect();
        self.probes.clear();
        let deadline = Instant::now() + grace;
        let mut hooked = HashSet::new();
        until_done!(
            "stopping the containers",
            self.stop_containers(&specs, deadline, &mut hooked).await
        );
        crash_point::hit("worker.after_stop_containers");
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        self.waiting.clear();
        let after = until_done!(
            "listing the stopped containers",
            instances::instances(&runtime, &self.uid).await
        );
        self.report(pod, &policy, &after);
        until_done!("stopping the sandboxes", self.sandboxes_each(Sandboxes::Stop).await);
        crash_point::hit("worker.after_stop_sandboxes");
        until_done!(
            "sending the final status",
            (self.ctx.status.flush(self.key.clone()).await)
                .then_some(())
                .ok_or(StepError::StatusNotSent)
        );
        until_done!("removing the sandboxes", self.sandboxes_each(Sandboxes::Remove).await);
        crash_point::hit("worker.after_remove_sandboxes");
        until_done!("removing the pod's logs", remove_logs(&self.ctx.node, pod).await);
        until_done!(
            "removing the pod's volumes",
            crate::spec::remove_volumes(&self.uid, &self.ctx.node).await
        );
        if let Some(client) = &self.ctx.client {
            until_done!("deleting the pod object", delete_object(client, desired).await);
        }
        self.ctx.status.forget(self.key.clone());
        self.ctx.pods.remove(&self.uid);
        self.ctx.metrics.set_running_pods(self.ctx.pods.running());
        tracing::info!("pod terminated");
    }

    /// Stops the pod's running containers with what is left of the grace period until
    /// `deadline`, each after its preStop hook the first time (`hooked` holds the ids
    /// whose hook ran).
    async fn stop_containers(
        &self,
        specs: &[Container],
        deadline: Instant,
        hooked: &mut HashSet<String>,
    ) -> Result<(), cri_client::Error> {
        let running: Vec<instances::Instance> = instances::instances(&self.ctx.runtime, &self.uid)
            .await?
            .into_iter()
            .filter(instances::Instance::running)
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        self.stop_running(specs, &running, left, hooked).await
    }

    /// Stops or removes every sandbox of the pod; one the runtime no longer knows is done.
    async fn sandboxes_each(&self, verb: Sandboxes) -> Result<(), cri_client::Error> {
        let runtime = &self.ctx.runtime;
        for sandbox in instances::sandboxes(runtime, &self.uid).await? {
            let done = match verb {
                Sandboxes::Stop => runtime.stop_pod_sandbox(&sandbox.id).await,
                Sandboxes::Remove => runtime.remove_pod_sandbox(&sandbox.id).await,
            };
            if let Err(err) = done
                && !err.is_not_found()
            {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Kills a pod that failed and stays: its running containers stopped (preStop hooks,
    /// the pod's grace period), then its sandboxes. Done once, unless a call failed.
    pub(super) async fn kill_pod(&mut self, pod: &Pod, instances: &[instances::Instance]) {
        let runtime = self.ctx.runtime.clone();
        let specs: Vec<Container> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
            .cloned()
            .collect();
        let running: Vec<instances::Instance> = instances.iter().filter(|i| i.running()).cloned().collect();
        tracing::info!(containers = running.len(), "killing the failed pod");
        self.probes.clear();
        let mut stopped = (self
            .stop_running(&specs, &running, grace_of(pod), &mut HashSet::new())
            .await)
            .is_ok();
        match instances::sandboxes(&runtime, &self.uid).await {
            Ok(sandboxes) => {
                for sandbox in sandboxes.iter().filter(|s| s.ready) {
                    if let Err(err) = runtime.stop_pod_sandbox(&sandbox.id).await {
                        tracing::warn!(sandbox = %sandbox.id, error = %err, "stopping the sandbox");
                        stopped = false;
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "listing the sandboxes");
                stopped = false;
            }
        }
        self.killed = stopped;
    }

    /// Stops the `running` instances at once with `grace`, each after its preStop hook
    /// unless `hooked` (the ids whose hook ran) already holds it. Fails with the first
    /// StopContainer that failed.
    async fn stop_running(
        &self,
        specs: &[Container],
        running: &[instances::Instance],
        grace: Duration,
        hooked: &mut HashSet<String>,
    ) -> Result<(), cri_client::Error> {
        let runtime = &self.ctx.runtime;
        let pod_ip = self.pod_ip();
        let stopped = futures_util::future::join_all(running.iter().map(|instance| {
            let container = specs
                .iter()
                .find(|c| c.name == instance.name)
                .cloned()
                .unwrap_or_default();
            let hook = hooked.insert(instance.id.clone());
            async move {
                let target = HookTarget {
                    runtime,
                    id: &instance.id,
                    pod_ip,
                    container: &container,
                };
                if hook {
                    stop_with_grace(&target, grace).await
                } else {
                    stop_container(&target, grace).await
                }
            }
        }))
        .await;
        stopped.into_iter().collect()
    }
}

/// What [`Worker::sandboxes_each`] does to each sandbox.
#[derive(Debug, Clone, Copy)]
enum Sandboxes {
    /// StopPodSandbox.
    Stop,
    /// RemovePodSandbox.
    Remove,
}

/// Removes the pod's log directory (`/var/log/pods/<namespace>_<name>_<uid>`), which the
/// runtime leaves, as the kubelet's container GC removes it once the pod is gone.
async fn remove_logs(node: &crate::spec::NodeContext, pod: &Pod) -> std::io::Result<()> {
    let meta = &pod.metadata;
    let dir = node.pod_log_directory(
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default(),
    );
    match tokio::fs::remove_dir_all(&dir).await {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// Deletes what stands for the pod in the apiserver: the pod object of a pod being
/// deleted there, the mirror pod of a static pod.
async fn delete_object(client: &kube::Client, desired: &Desired) -> Result<(), StepError> {
    let pod = &desired.pod;
    match desired.source {
        Source::Api if pod.metadata.deletion_timestamp.is_some() => delete_pod(client, pod).await,
        Source::File => (crate::pods::mirror::delete(client, pod, None).await)
            .then_some(())
            .ok_or(StepError::MirrorNotDeleted),
        Source::Api => Ok(()),
    }
}

/// Deletes the pod object for good: grace 0, only this UID. An object already gone, or
/// replaced by another of the same name, is done.
async fn delete_pod(client: &kube::Client, pod: &Pod) -> Result<(), StepError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => {
            tracing::info!("pod object deleted");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => Ok(()),
        Err(err) => Err(err.into()),
    }
}
