//! Graceful termination of a pod: preStop hooks and StopContainer with the grace period
//! for every running container at once, the final status, the sandbox stopped and
//! removed, the volumes removed, and then the pod object deleted (grace 0, this UID as
//! precondition), or the mirror pod of a static pod.
//!
//! A pod that failed but stays (its deadline passed, say) is killed only: its containers
//! stopped the same way and its sandbox stopped, as the kubelet's `killPod`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::{Desired, Worker};
use crate::pods::hooks::{HookTarget, grace_of, stop_with_grace};
use crate::pods::instances;
use crate::pods::source::Source;

impl Worker {
    /// Terminates the pod and removes every trace of it from the runtime, then from the
    /// apiserver.
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
        let running: Vec<instances::Instance> = instances::instances(&runtime, &self.uid)
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(instances::Instance::running)
            .collect();
        self.probes.clear();
        self.stop_running(&specs, &running, grace).await;
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        self.waiting.clear();
        let after = instances::instances(&runtime, &self.uid).await.unwrap_or_default();
        self.report(pod, &policy, &after);
        let sandboxes = instances::sandboxes(&runtime, &self.uid).await.unwrap_or_default();
        for sandbox in &sandboxes {
            if let Err(err) = runtime.stop_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %err, "stopping the sandbox");
            }
        }
        self.ctx.status.flush().await;
        for sandbox in &sandboxes {
            if let Err(err) = runtime.remove_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %err, "removing the sandbox");
            }
        }
        if let Err(err) = crate::spec::remove_volumes(&self.uid, &self.ctx.node).await {
            tracing::warn!(error = %err, "removing the pod's volumes");
        }
        if let Some(client) = &self.ctx.client {
            match desired.source {
                Source::Api if pod.metadata.deletion_timestamp.is_some() => delete_pod(client, pod).await,
                Source::File => crate::pods::mirror::delete(client, pod, None).await,
                Source::Api => {}
            }
        }
        self.ctx.status.forget(self.key.clone());
        self.ctx.pods.remove(&self.uid);
        self.ctx.metrics.set_running_pods(self.ctx.pods.running());
        tracing::info!("pod terminated");
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
        self.stop_running(&specs, &running, grace_of(pod)).await;
        let mut stopped = true;
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

    /// Stops the `running` instances at once, each with its preStop hook and `grace`.
    async fn stop_running(&self, specs: &[Container], running: &[instances::Instance], grace: Duration) {
        let runtime = &self.ctx.runtime;
        let pod_ip = self.pod_ip();
        futures_util::future::join_all(running.iter().map(|instance| {
            let container = specs
                .iter()
                .find(|c| c.name == instance.name)
                .cloned()
                .unwrap_or_default();
            async move {
                let target = HookTarget {
                    runtime,
                    id: &instance.id,
                    pod_ip,
                    container: &container,
                };
                stop_with_grace(&target, grace).await;
            }
        }))
        .await;
    }
}

/// Deletes the pod object for good: grace 0, only this UID.
async fn delete_pod(client: &kube::Client, pod: &Pod) {
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
        Ok(_) => tracing::info!("pod object deleted"),
        Err(kube::Error::Api(status)) if status.is_not_found() || status.is_conflict() => {}
        Err(err) => tracing::warn!(error = %err, "deleting the pod object"),
    }
}
