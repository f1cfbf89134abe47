//! One worker per pod: drives the pod towards its spec through CRI (sandbox, init
//! containers in order, containers, restarts with back-off, probes), reports its status,
//! and terminates it gracefully when it is deleted.
//!
//! The loop: sync, then wait for a change of the pod, a probe result, the next check
//! (sooner while something is in flight), or the pod's active deadline. The worker's
//! state is its own: starting and killing a container (`start.rs`) and terminating the
//! pod (`terminate.rs`) are its methods, in files of their own.
//!
//! As with the kubelet, a pod whose phase became Succeeded or Failed keeps it and starts
//! nothing more; a Failed pod (an init container failed under `restartPolicy: Never`, a
//! container failed under it, `activeDeadlineSeconds` passed) is killed: its containers
//! stopped with their grace period and its sandbox stopped. Until the pod's init
//! containers are done, its containers wait with the reason `PodInitializing`.

mod start;
mod terminate;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cri_api::v1::PodSandboxConfig;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateWaiting, ContainerStatus, Pod, PodIP, PodStatus, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

use crate::pods::backoff::{self, Backoff, Verdict};
use crate::pods::context::PodContext;
use crate::pods::image::PullBackoff;
use crate::pods::instances::{self, Instance};
use crate::pods::probes::ContainerProbes;
use crate::pods::source::Source;
use crate::pods::status_manager::PodKey;
use crate::pods::volume_refresh::VolumeRefresh;
use crate::pods::{admission, deadline, phase};
use crate::spec;

/// How often a settled pod is checked when nothing wakes its worker: the kubelet's
/// `syncFrequency`. A change in the runtime wakes it at once (the PLEG, `pods/pleg.rs`),
/// as do probe results, timers of back-offs, deadlines and volume refreshes, and changes
/// of the pod.
const SETTLED_CHECK: Duration = Duration::from_secs(60);
/// How soon a pod in flux is checked again.
const BUSY_CHECK: Duration = Duration::from_millis(300);
/// How long a container that could not be created or started waits before the next try:
/// the kubelet's pod worker syncs a pod whose sync failed again after 10 s
/// (`backOffPeriod`), not at its next check.
const FAILED_START_RETRY: Duration = Duration::from_secs(10);
/// The waiting reasons of a container whose creation or start failed, retried after
/// [`FAILED_START_RETRY`]. (A failed pull has a back-off of its own.)
const FAILED_START_REASONS: [&str; 3] = [
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What the pod manager wants of a worker.
#[derive(Debug, Clone)]
pub struct Desired {
    /// The latest version of the pod.
    pub pod: Pod,
    /// Where it came from.
    pub source: Source,
    /// It is gone from its source: stop it now.
    pub removed: bool,
    /// For a static pod: how many times its mirror pod was seen deleted. A worker that
    /// made the mirror for an older count makes it again.
    pub mirror_losses: u64,
}

impl Desired {
    /// Whether the pod must be terminated, and with which grace period.
    fn termination_grace(&self) -> Option<Duration> {
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        if !deleting && !self.removed {
            return None;
        }
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| self.pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
    }
}

/// Starts the worker of one pod; it ends once the pod is terminated and cleaned up.
pub fn spawn(ctx: Arc<PodContext>, desired: watch::Receiver<Desired>) -> tokio::task::JoinHandle<()> {
    let pod = desired.borrow().pod.clone();
    let span = tracing::info_span!(
        "pod",
        pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or("default"), pod.metadata.name.as_deref().unwrap_or("")),
        uid = %pod.metadata.uid.as_deref().unwrap_or(""),
    );
    tokio::spawn(
        async move {
            let mut worker = Worker::new(ctx.clone(), &pod);
            ctx.pleg.register(&worker.uid, worker.notify.clone());
            worker.run(desired).await;
            ctx.pleg.forget(&worker.uid);
        }
        .instrument(span),
    )
}

/// The sandbox the pod runs in.
#[derive(Debug, Clone)]
struct SandboxState {
    id: String,
    config: PodSandboxConfig,
    ips: Vec<String>,
}

/// Why the node failed a pod whatever its containers do (the kubelet's eviction by a pod
/// sync handler): its status shows this reason and message, with phase Failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    reason: String,
    message: String,
}

/// A waiting reason kubelet-lite sets (back-off, errors) for a container.
#[derive(Debug, Clone)]
struct Waiting {
    reason: String,
    message: String,
    /// For a failed start: not to be tried again before then.
    retry_at: Option<Instant>,
}

impl Waiting {
    /// Waiting for `reason`, with `message`.
    fn new(reason: &str, message: String) -> Waiting {
        Waiting {
            reason: reason.to_owned(),
            message,
            retry_at: None,
        }
    }

    /// How long until the container may be tried again, if it must wait.
    fn retry_in(&self, now: Instant) -> Option<Duration> {
        self.retry_at
            .map(|at| at.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }
}

struct Worker {
    ctx: Arc<PodContext>,
    uid: String,
    key: PodKey,
    sandbox: Option<SandboxState>,
    objects: Option<spec::ApiObjects>,
    volumes: Option<spec::Volumes>,
    /// When the configMap, secret, downwardAPI and projected volumes are next rewritten.
    volume_refresh: VolumeRefresh,
    backoff: Backoff,
    pull_backoff: PullBackoff,
    waiting: HashMap<String, Waiting>,
    probes: HashMap<String, ContainerProbes>,
    notify: Arc<Notify>,
    start_time: Option<Time>,
    /// The [`Desired::mirror_losses`] the mirror pod was last made (or found) for.
    mirror_made_for: Option<u64>,
    /// When the worker first saw the pod; `None` once its start latency was recorded.
    first_seen: Option<Instant>,
    /// The phase, once it is Succeeded or Failed: it stays.
    terminal: Option<&'static str>,
    /// Why the node failed the pod, if it did.
    failure: Option<Failure>,
    /// Whether the Failed pod's containers and sandbox were stopped.
    killed: bool,
}

impl Worker {
    fn new(ctx: Arc<PodContext>, pod: &Pod) -> Worker {
        // What the apiserver shows from before (kubelet-lite restarted): a terminal phase
        // stays, with the node's reason for a failure.
        let status = pod.status.as_ref();
        let terminal = match status.and_then(|s| s.phase.as_deref()) {
            Some("Succeeded") => Some("Succeeded"),
            Some("Failed") => Some("Failed"),
            _ => None,
        };
        let failure = status.filter(|_| terminal == Some("Failed")).and_then(|s| {
            Some(Failure {
                reason: s.reason.clone()?,
                message: s.message.clone().unwrap_or_default(),
            })
        });
        Worker {
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            key: PodKey::of(pod),
            start_time: pod.status.as_ref().and_then(|s| s.start_time.clone()),
            ctx,
            sandbox: None,
            objects: None,
            volumes: None,
            volume_refresh: VolumeRefresh::default(),
            backoff: Backoff::default(),
            pull_backoff: PullBackoff::default(),
            waiting: HashMap::new(),
            probes: HashMap::new(),
            notify: Arc::new(Notify::new()),
            mirror_made_for: None,
            first_seen: Some(Instant::now()),
            terminal,
            failure,
            killed: false,
        }
    }

    async fn run(&mut self, mut desired: watch::Receiver<Desired>) {
        let first = desired.borrow().pod.clone();
        if let Err(rejection) = admission::admit(&first, &self.ctx.sysctls) {
            self.reject(&first, &rejection);
            return self.wait_for_removal(desired).await;
        }
        loop {
            let current = desired.borrow_and_update().clone();
            if let Some(grace) = current.termination_grace() {
                self.terminate(&current, grace).await;
                return;
            }
            if current.source == Source::File {
                self.ensure_mirror(&current.pod, current.mirror_losses).await;
            }
            let syncing = Instant::now();
            let next = match self.sync(&current.pod).await {
                Ok(next) => next,
                Err(err) => {
                    tracing::warn!(error = %err, "pod sync failed");
                    BUSY_CHECK * 5
                }
            };
            self.ctx.metrics.observe_pod_worker("sync", syncing.elapsed());
            let notify = self.notify.clone();
            tokio::select! {
                changed = desired.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = notify.notified() => {}
                () = tokio::time::sleep(next) => {}
            }
        }
    }

    /// Reports a pod the node refused to run: phase Failed with the refusal's reason and
    /// message, as the kubelet's `rejectPod` does. Nothing of it reaches the runtime.
    fn reject(&mut self, pod: &Pod, rejection: &admission::Rejection) {
        tracing::warn!(reason = rejection.reason, message = %rejection.message, "pod not admitted");
        let status = PodStatus {
            phase: Some("Failed".to_owned()),
            reason: Some(rejection.reason.to_owned()),
            message: Some(rejection.message.clone()),
            host_ip: (!self.ctx.node.host_ip.is_empty()).then(|| self.ctx.node.host_ip.clone()),
            start_time: self.start_time.clone().or_else(|| Some(now())),
            qos_class: Some(spec::qos_class(pod).as_str().to_owned()),
            ..PodStatus::default()
        };
        self.ctx.pods.set(&self.uid, pod, status.clone());
        self.ctx.status.set(self.key.clone(), status);
    }

    /// The worker of a refused pod: nothing to run, it waits until the pod is deleted,
    /// then cleans up as for any pod.
    async fn wait_for_removal(&mut self, mut desired: watch::Receiver<Desired>) {
        loop {
            let current = desired.borrow_and_update().clone();
            if current.termination_grace().is_some() {
                self.terminate(&current, Duration::ZERO).await;
                return;
            }
            if desired.changed().await.is_err() {
                return;
            }
        }
    }

    /// One pass: deadline, sandbox, init containers, containers, probes, status, and the
    /// kill of a pod that failed. Returns how soon to look again.
    async fn sync(&mut self, pod: &Pod) -> Result<Duration, cri_client::Error> {
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.clone().unwrap_or_else(|| "Always".into());
        let mut instances = instances::instances(&self.ctx.runtime, &self.uid).await?;
        let started = self.start_time.as_ref().map(|t| t.0);
        if self.failure.is_none()
            && self.terminal.is_none()
            && deadline::exceeded(spec.active_deadline_seconds, started, now().0)
        {
            tracing::info!(
                active_deadline_seconds = spec.active_deadline_seconds,
                "the pod passed its active deadline"
            );
            self.failure = Some(Failure {
                reason: deadline::REASON.to_owned(),
                message: deadline::MESSAGE.to_owned(),
            });
        }
        let finished = self.terminal.is_some()
            || self.failure.is_some()
            || self.pod_finished(&spec.containers, &policy, &instances);
        let mut busy = false;
        // When the volumes are next refreshed, if they are kept current: a pass is due then.
        let mut volumes_due = None;
        if !finished {
            if let Err(waiting) = self.ensure_sandbox(pod, &instances).await {
                self.set_waiting_all(pod, &waiting);
                self.report(pod, &policy, &instances);
                return Ok(BUSY_CHECK * 5);
            }
            // Kept current as the kubelet remounts them: on label or annotation changes
            // and at each resync. Boxed: the client's future would grow the worker's.
            if let (Some(objects), Some(volumes)) = (self.objects.as_mut(), self.volumes.as_mut()) {
                let (client, node) = (self.ctx.client.as_ref(), &self.ctx.node);
                Box::pin(self.volume_refresh.keep_current(client, pod, node, objects, volumes)).await;
                volumes_due = self.volume_refresh.next_resync();
            }
            let sandbox_id = self.sandbox.as_ref().map(|s| s.id.clone()).unwrap_or_default();
            instances.retain(|i| i.sandbox_id == sandbox_id || !i.running());
            busy = self.drive(pod, &spec, &policy, &instances).await;
            if busy {
                instances = instances::instances(&self.ctx.runtime, &self.uid).await?;
            }
        }
        self.refresh_probes(pod, &instances);
        let phase = self.report(pod, &policy, &instances);
        if phase == "Failed" && !self.killed {
            // Reported first, as the kubelet does: the kill may take the grace period.
            self.kill_pod(pod, &instances).await;
            let after = instances::instances(&self.ctx.runtime, &self.uid).await?;
            self.refresh_probes(pod, &after);
            self.report(pod, &policy, &after);
        }
        let next = if busy { BUSY_CHECK } else { self.next_check() };
        let next = match volumes_due {
            Some(due) => next.min(due.saturating_duration_since(Instant::now())),
            None => next,
        };
        let started = self.start_time.as_ref().map(|t| t.0);
        let left = deadline::remaining(spec.active_deadline_seconds, started, now().0);
        Ok(match left {
            Some(left) if self.terminal.is_none() => next.min(left),
            _ => next,
        })
    }

    /// Whether every container finished and the policy restarts none of them.
    fn pod_finished(&self, containers: &[Container], policy: &str, instances: &[Instance]) -> bool {
        if policy == "Always" || containers.is_empty() {
            return false;
        }
        containers
            .iter()
            .all(|c| latest(instances, &c.name).is_some_and(|i| i.exited() && (policy == "Never" || i.exit_code == 0)))
    }

    /// Starts what must run: the next init container, or every container that is missing
    /// or may restart. Returns whether it changed anything.
    async fn drive(
        &mut self,
        pod: &Pod,
        spec: &k8s_openapi::api::core::v1::PodSpec,
        policy: &str,
        instances: &[Instance],
    ) -> bool {
        let sandbox_id = self.sandbox.as_ref().map(|s| s.id.clone()).unwrap_or_default();
        let in_sandbox: Vec<Instance> = instances
            .iter()
            .filter(|i| i.sandbox_id == sandbox_id)
            .cloned()
            .collect();
        for init in spec.init_containers.iter().flatten() {
            match latest(&in_sandbox, &init.name) {
                Some(i) if i.exited() && i.exit_code == 0 => continue,
                Some(i) if i.exited() => {
                    if policy == "Never" {
                        return false;
                    }
                    let i = i.clone();
                    return self.restart_with_backoff(pod, init, &i, instances).await;
                }
                Some(_) => return false,
                None => {
                    let count = latest(instances, &init.name).map_or(0, |i| i.restart_count + 1);
                    return self.start_container(pod, init, count).await;
                }
            }
        }
        let mut changed = false;
        for container in &spec.containers {
            match latest(&in_sandbox, &container.name) {
                None => {
                    let count = latest(instances, &container.name).map_or(0, |i| i.restart_count + 1);
                    changed |= self.start_container(pod, container, count).await;
                }
                Some(i) if i.running() => {
                    if i.hash != spec::container_hash(container) {
                        tracing::info!(container = %container.name, "spec changed: restarting the container");
                        self.kill_container(pod, &i.id, container).await;
                        changed = true;
                    } else if let Some(why) = self.probes.get(&i.id).and_then(ContainerProbes::kill_reason) {
                        tracing::info!(container = %container.name, reason = %why, "probe failed: killing the container");
                        self.probes.remove(&i.id);
                        self.kill_container(pod, &i.id, container).await;
                        changed = true;
                    }
                }
                Some(i) if i.exited() => {
                    let restart = match policy {
                        "Never" => false,
                        "OnFailure" => i.exit_code != 0,
                        _ => true,
                    };
                    if restart {
                        let i = i.clone();
                        changed |= self.restart_with_backoff(pod, container, &i, instances).await;
                    }
                }
                Some(i) => {
                    // Created but never started (a failed start): start over.
                    let _ = self.ctx.runtime.remove_container(&i.id).await;
                    changed = true;
                }
            }
        }
        changed
    }

    /// Restarts a finished container unless it is in back-off (then it waits, with
    /// CrashLoopBackOff as its waiting reason).
    ///
    /// The finished instance stays, for `kubectl logs --previous` and the container's
    /// `lastState`, as with the kubelet; older finished instances of the container go.
    async fn restart_with_backoff(
        &mut self,
        pod: &Pod,
        container: &Container,
        last: &Instance,
        instances: &[Instance],
    ) -> bool {
        // Keyed by the container's spec as well as its name, as the kubelet keys it: a
        // container whose spec changed (a new image) starts with no back-off.
        let key = format!("{}_{}", container.name, spec::container_hash(container));
        match self
            .backoff
            .check(&key, last.started(), last.finished(), SystemTime::now())
        {
            Verdict::Restart => {
                if !self.start_container(pod, container, last.restart_count + 1).await {
                    return false;
                }
                for older in instances
                    .iter()
                    .filter(|i| i.name == container.name && i.exited() && i.id != last.id)
                {
                    let _ = self.ctx.runtime.remove_container(&older.id).await;
                }
                true
            }
            Verdict::Wait { delay, .. } => {
                self.waiting.insert(
                    container.name.clone(),
                    Waiting::new(
                        "CrashLoopBackOff",
                        format!(
                            "back-off {} restarting failed container={} pod={}_{}({})",
                            backoff::go_duration(delay),
                            container.name,
                            self.key.name,
                            self.key.namespace,
                            self.uid
                        ),
                    ),
                );
                false
            }
        }
    }

    /// The pod's IP, once its sandbox is known (empty before).
    fn pod_ip(&self) -> &str {
        (self.sandbox.as_ref())
            .and_then(|sandbox| sandbox.ips.first())
            .map_or("", String::as_str)
    }

    /// How long until the next container leaves back-off or may be tried again after a
    /// failed start (or the settled interval).
    fn next_check(&self) -> Duration {
        let now = Instant::now();
        let retry = self.waiting.values().filter_map(|w| w.retry_in(now)).min();
        if (self.waiting.values()).any(|w| w.reason == "CrashLoopBackOff" || w.reason == "ImagePullBackOff") {
            Duration::from_secs(1)
        } else {
            retry.map_or(SETTLED_CHECK, |left| left.min(SETTLED_CHECK))
        }
    }

    /// Makes sure a ready sandbox exists (adopting one, or creating a new one after
    /// stopping the old ones' containers). `Err` holds the waiting reason to show.
    async fn ensure_sandbox(&mut self, pod: &Pod, instances: &[Instance]) -> Result<(), Waiting> {
        let runtime = self.ctx.runtime.clone();
        let sandboxes = instances::sandboxes(&runtime, &self.uid)
            .await
            .map_err(|err| Waiting::new("ContainerCreating", err.to_string()))?;
        if let Some(ready) = sandboxes.iter().find(|s| s.ready) {
            if self.sandbox.as_ref().is_some_and(|s| s.id == ready.id) {
                return Ok(());
            }
            // Adopt it (after a restart of kubelet-lite).
            let config = spec::sandbox_config(pod, &self.ctx.node, ready.attempt)
                .map_err(|err| Waiting::new("CreateContainerConfigError", err.to_string()))?;
            let ips = sandbox_ips(&runtime, &ready.id).await;
            self.prepare_objects(pod).await?;
            tracing::info!(sandbox = %ready.id, "adopted the pod's sandbox");
            self.sandbox = Some(SandboxState {
                id: ready.id.clone(),
                config,
                ips,
            });
            return Ok(());
        }
        // A new sandbox: whatever ran in the old ones stops.
        for instance in instances.iter().filter(|i| i.running()) {
            let _ = runtime.stop_container(&instance.id, Duration::from_secs(2)).await;
        }
        for old in &sandboxes {
            let _ = runtime.stop_pod_sandbox(&old.id).await;
        }
        self.prepare_objects(pod).await?;
        let attempt = sandboxes.first().map_or(0, |s| s.attempt + 1);
        let config = spec::sandbox_config(pod, &self.ctx.node, attempt)
            .map_err(|err| Waiting::new("CreateContainerConfigError", err.to_string()))?;
        let handler = pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone())
            .unwrap_or_default();
        let running = Instant::now();
        let ran = runtime.run_pod_sandbox(config.clone(), &handler).await;
        self.ctx
            .metrics
            .observe_cri_call("run_podsandbox", running.elapsed(), ran.is_ok());
        let id =
            ran.map_err(|err| Waiting::new("ContainerCreating", format!("failed to create pod sandbox: {err}")))?;
        crash_point::hit("worker.after_run_sandbox");
        let ips = sandbox_ips(&runtime, &id).await;
        tracing::info!(sandbox = %id, ?ips, "sandbox ready");
        if self.start_time.is_none() {
            self.start_time = Some(now());
        }
        self.sandbox = Some(SandboxState { id, config, ips });
        for old in &sandboxes {
            let _ = runtime.remove_pod_sandbox(&old.id).await;
        }
        Ok(())
    }

    /// Fetches the config maps and secrets the pod uses and prepares its volumes, once.
    async fn prepare_objects(&mut self, pod: &Pod) -> Result<(), Waiting> {
        let config_error = |err: spec::SpecError| Waiting::new("ContainerCreating", err.to_string());
        if self.objects.is_none() {
            let objects = spec::fetch_objects(self.ctx.client.as_ref(), pod)
                .await
                .map_err(config_error)?;
            self.objects = Some(objects);
        }
        if self.volumes.is_none()
            && let Some(objects) = &self.objects
        {
            let volumes = spec::prepare_volumes(self.ctx.client.as_ref(), pod, &self.ctx.node, objects)
                .await
                .map_err(config_error)?;
            self.volumes = Some(volumes);
        }
        Ok(())
    }

    /// The secrets named by the pod's imagePullSecrets.
    fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let Some(objects) = &self.objects else {
            return Vec::new();
        };
        pod.spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|reference| objects.secrets.get(reference.name.as_str()).cloned())
            .collect()
    }

    fn set_waiting_all(&mut self, pod: &Pod, waiting: &Waiting) {
        for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            self.waiting.insert(container.name.clone(), waiting.clone());
        }
    }

    /// Starts probes for running containers that have none, drops those of containers
    /// that are gone.
    fn refresh_probes(&mut self, pod: &Pod, instances: &[Instance]) {
        let pod_ip = self
            .sandbox
            .as_ref()
            .and_then(|s| s.ips.first().cloned())
            .unwrap_or_default();
        let running: Vec<&Instance> = instances.iter().filter(|i| i.running()).collect();
        self.probes.retain(|id, _| running.iter().any(|i| &i.id == id));
        for instance in running {
            let Some(container) = pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == instance.name)
            else {
                continue;
            };
            let probes = self.probes.entry(instance.id.clone()).or_insert_with(|| {
                ContainerProbes::start(&self.ctx.runtime, &instance.id, &pod_ip, container, &self.notify)
            });
            probes.advance(&self.ctx.runtime, &instance.id, &pod_ip, container, &self.notify);
        }
    }

    /// Computes the pod status and hands it to the status manager; returns its phase.
    fn report(&mut self, pod: &Pod, policy: &str, instances: &[Instance]) -> &'static str {
        let spec = pod.spec.clone().unwrap_or_default();
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let init: Vec<ContainerStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| self.container_status(c, instances, Kind::Init))
            .collect();
        let initialized = init.iter().all(|s| s.ready);
        let kind = if initialized {
            Kind::App { has_init }
        } else {
            Kind::AppBeforeInit
        };
        let containers: Vec<ContainerStatus> = spec
            .containers
            .iter()
            .map(|c| self.container_status(c, instances, kind))
            .collect();
        let now = now();
        let phase = match (&self.failure, self.terminal) {
            (Some(_), _) => "Failed",
            (None, Some(terminal)) => terminal,
            (None, None) => phase::phase(policy, &init, &containers),
        };
        if phase::is_terminal(phase) && self.terminal.is_none() {
            tracing::info!(phase, "the pod is done");
            self.terminal = Some(phase);
        }
        let conditions = phase::conditions(pod, &init, &containers, phase, &now);
        let ips = self.sandbox.as_ref().map(|s| s.ips.clone()).unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let ips = if host_network && !self.ctx.node.host_ip.is_empty() {
            vec![self.ctx.node.host_ip.clone()]
        } else {
            ips
        };
        if self.start_time.is_none() {
            self.start_time = Some(now.clone());
        }
        let status = PodStatus {
            phase: Some(phase.to_owned()),
            conditions: Some(conditions),
            container_statuses: Some(containers),
            init_container_statuses: (!init.is_empty()).then_some(init),
            host_ip: (!self.ctx.node.host_ip.is_empty()).then(|| self.ctx.node.host_ip.clone()),
            pod_ip: ips.first().cloned(),
            pod_ips: (!ips.is_empty()).then(|| ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
            start_time: self.start_time.clone(),
            qos_class: Some(spec::qos_class(pod).as_str().to_owned()),
            reason: self.failure.as_ref().map(|f| f.reason.clone()),
            message: self.failure.as_ref().map(|f| f.message.clone()),
            ..PodStatus::default()
        };
        if phase == "Running"
            && let Some(first_seen) = self.first_seen.take()
        {
            self.ctx.metrics.observe_pod_start(first_seen.elapsed());
        }
        self.ctx.pods.set(&self.uid, pod, status.clone());
        self.ctx.metrics.set_running_pods(self.ctx.pods.running());
        self.ctx.status.set(self.key.clone(), status);
        phase
    }

    fn container_status(&self, container: &Container, instances: &[Instance], kind: Kind) -> ContainerStatus {
        let runtime = &self.ctx.runtime_name;
        let init = kind == Kind::Init;
        let mut same_name = instances.iter().filter(|i| i.name == container.name);
        let newest = same_name.next();
        let previous = same_name.find(|i| i.exited());
        let image = container.image.clone().unwrap_or_default();
        // The containers of a pod whose init containers are not done have not started:
        // they wait for them, whatever else was noted for them.
        let waiting_override = self
            .waiting
            .get(&container.name)
            .filter(|_| kind != Kind::AppBeforeInit && !newest.is_some_and(Instance::running));
        let (state, last_state) = match (newest, waiting_override) {
            (Some(i), Some(w)) if i.exited() => (waiting_state(w), Some(i.k8s_state(runtime))),
            (Some(i), _) => (i.k8s_state(runtime), previous.map(|p| p.k8s_state(runtime))),
            (None, Some(w)) => (waiting_state(w), None),
            (None, None) => (
                waiting_state(&Waiting::new(kind.default_waiting_reason(), String::new())),
                None,
            ),
        };
        let probes = newest.and_then(|i| self.probes.get(&i.id));
        let running = newest.is_some_and(Instance::running);
        let started = running && probes.is_none_or(ContainerProbes::started);
        let ready = if init {
            newest.is_some_and(|i| i.exited() && i.exit_code == 0)
        } else {
            started && probes.is_none_or(ContainerProbes::ready)
        };
        ContainerStatus {
            name: container.name.clone(),
            image,
            image_id: newest.map(|i| i.image_ref.clone()).unwrap_or_default(),
            container_id: newest.map(|i| format!("{runtime}://{}", i.id)),
            ready,
            restart_count: newest.map_or(0, |i| i.restart_count),
            started: (!init).then_some(started),
            state: Some(state),
            last_state,
            ..ContainerStatus::default()
        }
    }

    /// For static pods: makes sure the mirror pod exists in the apiserver, again after
    /// it was seen deleted (`losses` grew).
    async fn ensure_mirror(&mut self, pod: &Pod, losses: u64) {
        if self.mirror_made_for == Some(losses) {
            return;
        }
        if let Some(client) = &self.ctx.client {
            let node = (
                self.ctx.node.node_name.as_str(),
                self.ctx.node_uid.as_deref().unwrap_or_default(),
            );
            if crate::pods::mirror::ensure(client, pod, node).await {
                self.mirror_made_for = Some(losses);
                // A new mirror pod has no status yet: the next report sends it whole.
                self.ctx.status.forget(self.key.clone());
            }
        }
    }
}

/// Which list a container status is for, and what a container that never ran waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An init container.
    Init,
    /// A container of a pod whose init containers are done (or that has none).
    App {
        /// Whether the pod has init containers.
        has_init: bool,
    },
    /// A container of a pod whose init containers are not done.
    AppBeforeInit,
}

impl Kind {
    /// The reason a container that never ran waits with: `PodInitializing` in a pod with
    /// init containers (for them too), `ContainerCreating` otherwise, as the kubelet's
    /// default waiting state.
    fn default_waiting_reason(self) -> &'static str {
        match self {
            Kind::Init | Kind::AppBeforeInit | Kind::App { has_init: true } => "PodInitializing",
            Kind::App { has_init: false } => "ContainerCreating",
        }
    }
}

fn waiting_state(waiting: &Waiting) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(waiting.reason.clone()),
            message: (!waiting.message.is_empty()).then(|| waiting.message.clone()),
        }),
        ..ContainerState::default()
    }
}

/// The newest instance named `name`.
fn latest<'a>(instances: &'a [Instance], name: &str) -> Option<&'a Instance> {
    instances.iter().find(|i| i.name == name)
}

/// The sandbox's IPs (primary first), as PodSandboxStatus reports them.
async fn sandbox_ips(runtime: &cri_client::Client, id: &str) -> Vec<String> {
    let Ok(status) = runtime.pod_sandbox_status(id, false).await else {
        return Vec::new();
    };
    let Some(network) = status.status.and_then(|s| s.network) else {
        return Vec::new();
    };
    std::iter::once(network.ip)
        .chain(network.additional_ips.into_iter().map(|ip| ip.ip))
        .filter(|ip| !ip.is_empty())
        .collect()
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}
