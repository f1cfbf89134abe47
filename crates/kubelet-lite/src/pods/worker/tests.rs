//! The pod worker against cri-client's fake runtime: no root, no apiserver, no real
//! runtime. Each test runs one worker for one pod, as the pod manager does, makes happen
//! what only a runtime can (a container exits, a call fails) and checks what the worker
//! asked of the runtime (the fake's record of calls) and what it reported (the pod
//! snapshot, which holds the status it last handed to the status manager).
//!
//! The node's PLEG follows the fake's container events, so the worker hears of an exit at
//! once; the tests wait for what should happen, never for a time, with [`PATIENCE`] as
//! the bound. To see that the worker did *not* do something, they wake it until it has
//! looked at the pod once more ([`Node::another_sync`]) and then check.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cri_client::testing::{FakeRuntime, FakeServer, Fault, RUNTIME_NAME, Rpc, Status};
use cri_client::v1::{
    ContainerState as CriState, ContainerStatus as CriStatus, CreateContainerRequest, ExecSyncRequest, PodSandboxState,
    StartContainerRequest, StopContainerRequest,
};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Desired;
use crate::metrics::Metrics;
use crate::pods::admission::SysctlAllowlist;
use crate::pods::{KnownPods, Pleg, PodContext, PodSnapshot, Source, StatusManager};
use crate::spec::NodeContext;

/// The longest the tests wait for anything the worker should do.
const PATIENCE: Duration = Duration::from_secs(30);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(10);

/// The image every container of these tests runs (pulled from the fake on first use).
const IMAGE: &str = "busybox:1.36";

/// A node without root or apiserver: a fake runtime on a socket in a temporary directory,
/// and the context workers share, with their files in that directory too.
struct Node {
    fake: FakeRuntime,
    ctx: Arc<PodContext>,
    _server: FakeServer,
    dir: tempfile::TempDir,
}

/// One worker running, and the channel the pod manager would feed it through.
struct Worker {
    uid: String,
    desired: watch::Sender<Desired>,
    task: JoinHandle<()>,
}

impl Node {
    async fn new() -> Node {
        Node::with(|_| {}).await
    }

    /// A node whose fake runtime `prepare` set up before anything talked to it.
    async fn with(prepare: impl FnOnce(&FakeRuntime)) -> Node {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let fake = FakeRuntime::new();
        prepare(&fake);
        let server = fake
            .serve(dir.path().join("cri.sock"))
            .expect("the fake runtime serves");
        let runtime = server.connect().await.expect("a client of the fake runtime");
        let ctx = PodContext {
            runtime,
            client: None,
            node: NodeContext {
                node_name: "edge-1".into(),
                host_ip: "192.0.2.10".into(),
                cluster_domain: "cluster.local".into(),
                root_dir: dir.path().join("root"),
                pod_logs_dir: dir.path().join("logs"),
                ..NodeContext::default()
            },
            node_uid: None,
            runtime_name: RUNTIME_NAME.into(),
            status: StatusManager::spawn(None),
            pods: PodSnapshot::default(),
            metrics: Metrics::default(),
            sysctls: SysctlAllowlist::default(),
            known: KnownPods::default(),
            pleg: Arc::new(Pleg::default()),
        };
        tokio::spawn(ctx.pleg.clone().run(ctx.runtime.clone()));
        Node {
            fake,
            ctx: Arc::new(ctx),
            _server: server,
            dir,
        }
    }

    /// Starts the worker of `pod`, as the pod manager does for a pod from the apiserver.
    fn run(&self, pod: Pod) -> Worker {
        let uid = pod.metadata.uid.clone().expect("test pods have a uid");
        let (desired, receiver) = watch::channel(Desired {
            pod,
            source: Source::Api,
            removed: false,
            mirror_losses: 0,
        });
        let task = super::spawn(self.ctx.clone(), receiver);
        Worker { uid, desired, task }
    }

    /// The status the worker of `uid` reported last, if it reported one (and the pod is
    /// not terminated).
    fn status(&self, uid: &str) -> Option<PodStatus> {
        (self.ctx.pods.pods().into_iter())
            .find(|pod| pod.metadata.uid.as_deref() == Some(uid))
            .and_then(|pod| pod.status)
    }

    /// Waits until the pod's reported status passes `check`, and returns it.
    async fn status_where(&self, uid: &str, what: &str, check: impl Fn(&PodStatus) -> bool) -> PodStatus {
        self.until(what, || self.status(uid).filter(|status| check(status)))
            .await
    }

    /// Waits until the pod's status shows instance `id` as container `name`'s, and
    /// returns it.
    async fn reported(&self, uid: &str, name: &str, id: &str) -> PodStatus {
        let container_id = format!("{RUNTIME_NAME}://{id}");
        self.status_where(uid, &format!("{name} reported as {id}"), |status| {
            container_status(status, name).container_id.as_ref() == Some(&container_id)
        })
        .await
    }

    /// Waits until the pod's phase is `phase`, and returns the status.
    async fn phase(&self, uid: &str, phase: &str) -> PodStatus {
        self.status_where(uid, &format!("phase {phase}"), |status| {
            status.phase.as_deref() == Some(phase)
        })
        .await
    }

    /// Waits until `found` gives something, at most [`PATIENCE`].
    async fn until<T>(&self, what: &str, found: impl FnMut() -> Option<T>) -> T {
        self.within(PATIENCE, what, found).await
    }

    /// Waits until `found` gives something, at most `bound`.
    async fn within<T>(&self, bound: Duration, what: &str, mut found: impl FnMut() -> Option<T>) -> T {
        let waiting = async {
            loop {
                if let Some(value) = found() {
                    return value;
                }
                tokio::time::sleep(POLL).await;
            }
        };
        match tokio::time::timeout(bound, waiting).await {
            Ok(value) => value,
            Err(_) => panic!(
                "waited {bound:?} for {what}; the runtime received {:?} and holds {:#?}",
                self.fake.calls().iter().map(|call| call.rpc).collect::<Vec<_>>(),
                self.fake.containers()
            ),
        }
    }

    /// Waits until the worker has looked at the pod again, all of it, since this call:
    /// whatever the runtime held before the call, the worker has seen and acted on.
    ///
    /// Every pass of the worker lists the pod's containers once, and once more after it
    /// changed something; three listings from now include a whole pass begun after now.
    /// (The PLEG lists too, but only when its stream of events starts.)
    async fn another_sync(&self) {
        let listings = || self.fake.calls_to(Rpc::ListContainers).len();
        let now = listings();
        self.until("the worker to look at the pod again", || {
            self.ctx.pleg.wake_all();
            (listings() >= now + 3).then_some(())
        })
        .await;
    }

    /// The instances of container `name` the runtime holds, oldest first.
    fn instances(&self, name: &str) -> Vec<CriStatus> {
        (self.fake.containers().into_iter())
            .filter(|container| container.metadata.as_ref().is_some_and(|m| m.name == name))
            .collect()
    }

    /// Waits until an instance of container `name` runs, started for its `attempt`th
    /// time (0 first), and returns its id.
    async fn running(&self, name: &str, attempt: u32) -> String {
        self.until(&format!("{name} (attempt {attempt}) running"), || {
            self.instances(name)
                .into_iter()
                .find(|c| {
                    c.state == CriState::ContainerRunning as i32
                        && c.metadata.as_ref().is_some_and(|m| m.attempt == attempt)
                })
                .map(|c| c.id)
        })
        .await
    }

    /// The running instance of container `name` ends with `exit_code`, as if its process
    /// exited.
    fn exit(&self, name: &str, exit_code: i32) {
        let running = (self.instances(name).into_iter())
            .find(|c| c.state == CriState::ContainerRunning as i32)
            .unwrap_or_else(|| panic!("{name} is not running"));
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        self.fake
            .exit_container(&running.id, exit_code, reason)
            .expect("a running container can exit");
    }

    /// The containers CreateContainer was asked for, by name, in order.
    fn created(&self) -> Vec<String> {
        (self.fake.calls_to(Rpc::CreateContainer).iter())
            .filter_map(|call| call.request::<CreateContainerRequest>())
            .map(|request| container_name(request.config.as_ref().and_then(|c| c.metadata.as_ref())))
            .collect()
    }

    /// The containers StartContainer was asked for, by name (those the runtime still
    /// holds), in order.
    fn started(&self) -> Vec<String> {
        let containers = self.fake.containers();
        (self.fake.calls_to(Rpc::StartContainer).iter())
            .filter_map(|call| call.request::<StartContainerRequest>())
            .map(|request| {
                (containers.iter())
                    .find(|c| c.id == request.container_id)
                    .map_or_else(|| "<removed>".to_owned(), |c| container_name(c.metadata.as_ref()))
            })
            .collect()
    }

    /// `root_dir/pods/<uid>`: the pod's files on the node.
    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.ctx.node.pod_dir(uid)
    }
}

impl Worker {
    /// The pod is deleted in the apiserver with a grace period of `grace` seconds.
    fn delete(&self, grace: i64) {
        self.desired.send_modify(|desired| {
            desired.pod.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
            desired.pod.metadata.deletion_grace_period_seconds = Some(grace);
        });
    }

    /// Waits until the worker is done (it ends once the pod is terminated).
    async fn finished(self) {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the worker ends once its pod is terminated")
            .expect("the worker does not panic");
    }
}

fn container_name(metadata: Option<&cri_client::v1::ContainerMetadata>) -> String {
    metadata.map(|m| m.name.clone()).unwrap_or_default()
}

/// A pod `name` in namespace `default` with the uid `<name>-uid` and this spec.
fn pod(name: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("{name}-uid")},
        "spec": spec,
    }))
    .expect("a valid pod")
}

/// A container spec named `name` running [`IMAGE`].
fn container(name: &str) -> serde_json::Value {
    json!({"name": name, "image": IMAGE})
}

/// The status of container `name` (init or not) in `status`.
fn container_status<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    (status.init_container_statuses.iter().flatten())
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status for {name} in {status:#?}"))
}

/// The waiting reason and message of container `name`, if it is waiting.
fn waiting(status: &PodStatus, name: &str) -> Option<(String, String)> {
    let state = container_status(status, name).state.as_ref()?;
    let waiting = state.waiting.as_ref()?;
    Some((
        waiting.reason.clone().unwrap_or_default(),
        waiting.message.clone().unwrap_or_default(),
    ))
}

/// The exit code of container `name`, if it is terminated.
fn exit_code(status: &PodStatus, name: &str) -> Option<i32> {
    let state = container_status(status, name).state.as_ref()?;
    state.terminated.as_ref().map(|t| t.exit_code)
}

fn is_running(status: &PodStatus, name: &str) -> bool {
    (container_status(status, name).state.as_ref()).is_some_and(|state| state.running.is_some())
}

/// The status of condition `type_`: `True` or `False`.
fn condition(status: &PodStatus, type_: &str) -> String {
    (status.conditions.iter().flatten())
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
        .unwrap_or_else(|| panic!("no {type_} condition in {status:#?}"))
}

#[tokio::test]
async fn init_containers_run_one_at_a_time_each_exiting_zero_before_the_next_then_the_app_containers_start() {
    let node = Node::new().await;
    let spec = json!({
        "initContainers": [container("init-a"), container("init-b")],
        "containers": [container("app-1"), container("app-2")],
    });
    let worker = node.run(pod("ordered", spec));

    node.running("init-a", 0).await;
    node.another_sync().await;
    assert_eq!(
        node.created(),
        ["init-a"],
        "nothing else while the first init container runs"
    );
    let status = node.phase(&worker.uid, "Pending").await;
    assert_eq!(condition(&status, "Initialized"), "False");

    // A failed init container runs again (restartPolicy Always); the next one waits.
    node.exit("init-a", 1);
    node.running("init-a", 1).await;
    node.another_sync().await;
    assert_eq!(node.created(), ["init-a", "init-a"]);

    node.exit("init-a", 0);
    node.running("init-b", 0).await;
    node.another_sync().await;
    assert_eq!(node.created(), ["init-a", "init-a", "init-b"]);

    node.exit("init-b", 0);
    node.running("app-1", 0).await;
    node.running("app-2", 0).await;
    assert_eq!(node.created(), ["init-a", "init-a", "init-b", "app-1", "app-2"]);
    assert_eq!(
        node.started(),
        node.created(),
        "each container started once, as created"
    );
    let sandboxes = node.fake.sandboxes();
    assert_eq!(sandboxes.len(), 1, "one sandbox for the pod's life");
    for call in node.fake.calls_to(Rpc::CreateContainer) {
        let request = call
            .request::<CreateContainerRequest>()
            .expect("a CreateContainerRequest");
        assert_eq!(request.pod_sandbox_id, sandboxes[0].id, "created in the pod's sandbox");
    }
    let calls: Vec<Rpc> = node.fake.calls().iter().map(|c| c.rpc).collect();
    let sandbox_at = calls.iter().position(|rpc| *rpc == Rpc::RunPodSandbox);
    let first_create = calls.iter().position(|rpc| *rpc == Rpc::CreateContainer);
    assert!(sandbox_at < first_create, "the sandbox comes first: {calls:?}");

    let status = node.phase(&worker.uid, "Running").await;
    assert_eq!(condition(&status, "Initialized"), "True");
    assert_eq!(exit_code(&status, "init-a"), Some(0));
    assert_eq!(container_status(&status, "init-a").restart_count, 1);
    assert_eq!(exit_code(&status, "init-b"), Some(0));
}

#[tokio::test]
async fn a_failing_run_pod_sandbox_is_retried_and_the_pod_status_says_why() {
    let node = Node::new().await;
    let exhausted = Status::internal("failed to set up the network: no IP addresses left in range");
    node.fake.inject(Rpc::RunPodSandbox, Fault::error(exhausted).times(2));
    let worker = node.run(pod("no-ip", json!({"containers": [container("app")]})));

    let status = node
        .status_where(&worker.uid, "the sandbox failure reported", |status| {
            waiting(status, "app").is_some_and(|(_, message)| message.contains("no IP addresses left"))
        })
        .await;
    let (reason, message) = waiting(&status, "app").expect("waiting");
    assert_eq!(reason, "ContainerCreating");
    assert!(message.contains("failed to create pod sandbox"), "{message}");
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(
        node.fake.calls_to(Rpc::CreateContainer).is_empty(),
        "no container without a sandbox"
    );

    node.running("app", 0).await;
    assert_eq!(
        node.fake.calls_to(Rpc::RunPodSandbox).len(),
        3,
        "two failures, then the sandbox"
    );
    let sandboxes = node.fake.sandboxes();
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].state, PodSandboxState::SandboxReady as i32);
    let status = node.phase(&worker.uid, "Running").await;
    assert!(is_running(&status, "app"));
    assert_eq!(waiting(&status, "app"), None, "the failure is no longer reported");
    assert_eq!(
        status.pod_ip.as_deref(),
        sandboxes[0].network.as_ref().map(|n| n.ip.as_str())
    );
}

#[tokio::test]
async fn a_failing_create_container_does_not_stop_the_other_containers_and_is_retried() {
    let node = Node::new().await;
    let full = || Status::resource_exhausted("no space left on device");
    // CreateContainer calls, in order: a (fails), b, a again (fails, slowly: meanwhile the
    // status of the first pass can be read), a again.
    node.fake.inject(Rpc::CreateContainer, Fault::error(full()));
    node.fake.inject(Rpc::CreateContainer, Fault::delay(Duration::ZERO));
    let slow_failure = Fault::error(full()).with_delay(Duration::from_millis(500));
    node.fake.inject(Rpc::CreateContainer, slow_failure);
    let worker = node.run(pod("two", json!({"containers": [container("a"), container("b")]})));

    node.until("a second try at creating a", || {
        (node.fake.calls_to(Rpc::CreateContainer).len() >= 3).then_some(())
    })
    .await;
    let status = node.status(&worker.uid).expect("a status after the first pass");
    let (reason, message) = waiting(&status, "a").expect("a waits");
    assert_eq!(reason, "CreateContainerError");
    assert!(message.contains("no space left on device"), "{message}");
    assert!(is_running(&status, "b"), "b started although a could not be created");

    node.running("a", 0).await;
    assert_eq!(node.created(), ["a", "b", "a", "a"]);
    assert_eq!(node.started(), ["b", "a"], "b is left running, not started again");
    let status = node.phase(&worker.uid, "Running").await;
    assert!(is_running(&status, "a") && is_running(&status, "b"));
}

#[tokio::test]
async fn a_container_that_cannot_be_created_is_retried_with_back_off() {
    let node = Node::new().await;
    node.fake.inject(
        Rpc::CreateContainer,
        Fault::error(Status::resource_exhausted("no space left on device")).always(),
    );
    let _worker = node.run(pod("full", json!({"containers": [container("app")]})));
    node.until("a first try", || {
        (!node.fake.calls_to(Rpc::CreateContainer).is_empty()).then_some(())
    })
    .await;
    // The kubelet waits 10 s before it syncs a pod whose sync failed; anything near that
    // makes at most one more try in 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tries = node.fake.calls_to(Rpc::CreateContainer).len();
    assert!(tries <= 2, "{tries} tries of CreateContainer in 5 s");
}

#[tokio::test]
async fn under_restart_policy_always_an_exited_container_is_restarted_then_backs_off() {
    let node = Node::new().await;
    let worker = node.run(pod("always", json!({"containers": [container("app")]})));
    node.running("app", 0).await;

    // A container that completed restarts at once the first time...
    node.exit("app", 0);
    let restarted = node.running("app", 1).await;
    let status = node.reported(&worker.uid, "app", &restarted).await;
    assert!(is_running(&status, "app"));
    let app = container_status(&status, "app");
    assert_eq!(app.restart_count, 1);
    let last = app
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("a last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(
        node.instances("app").len(),
        2,
        "the finished instance stays for its logs"
    );

    // ...then waits in back-off.
    node.exit("app", 1);
    let status = node
        .status_where(&worker.uid, "app in back-off", |status| {
            waiting(status, "app").is_some_and(|(reason, _)| reason == "CrashLoopBackOff")
        })
        .await;
    let (_, message) = waiting(&status, "app").expect("waiting");
    assert_eq!(
        message,
        "back-off 10s restarting failed container=app pod=always_default(always-uid)"
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&status, "Ready"), "False");
    node.another_sync().await;
    assert_eq!(node.created(), ["app", "app"], "no restart within the back-off");

    // Once the back-off is over it restarts, and the oldest instance goes.
    node.running("app", 2).await;
    let attempts = || -> Vec<u32> {
        (node.instances("app").iter())
            .filter_map(|c| c.metadata.as_ref().map(|m| m.attempt))
            .collect()
    };
    node.until("the oldest instance removed", || (attempts() == [1, 2]).then_some(()))
        .await;
    node.another_sync().await;
    assert_eq!(attempts(), [1, 2], "the last finished instance stays");
}

#[tokio::test]
async fn a_container_in_back_off_restarts_at_once_when_its_image_changes() {
    let node = Node::new().await;
    let worker = node.run(pod("crashing", json!({"containers": [container("app")]})));
    node.running("app", 0).await;
    node.exit("app", 1);
    node.running("app", 1).await;
    node.exit("app", 1);
    node.status_where(&worker.uid, "app in back-off", |status| {
        waiting(status, "app").is_some_and(|(reason, _)| reason == "CrashLoopBackOff")
    })
    .await;

    // A new image is a new container for the back-off, as the kubelet keys it by the
    // container's spec: no waiting out the 10 s left.
    let updated = std::time::Instant::now();
    worker.desired.send_modify(|desired| {
        let spec = desired.pod.spec.as_mut().expect("a spec");
        spec.containers[0].image = Some("registry.example/other:2".into());
    });
    node.running("app", 2).await;
    let waited = updated.elapsed();
    assert!(
        waited < Duration::from_secs(7),
        "restarted {waited:?} after the image changed"
    );
    let images: Vec<String> = (node.fake.calls_to(Rpc::CreateContainer).iter())
        .filter_map(|call| call.request::<CreateContainerRequest>())
        .filter_map(|request| Some(request.config.as_ref()?.image.as_ref()?.image.clone()))
        .collect();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0], images[1]);
    assert_ne!(images[1], images[2], "the restart runs the new image");
}

#[tokio::test]
async fn under_restart_policy_on_failure_only_a_container_that_failed_is_restarted() {
    let node = Node::new().await;
    let spec = json!({"restartPolicy": "OnFailure", "containers": [container("ok"), container("bad")]});
    let worker = node.run(pod("on-failure", spec));
    node.running("ok", 0).await;
    node.running("bad", 0).await;

    node.exit("ok", 0);
    node.exit("bad", 2);
    let restarted = node.running("bad", 1).await;
    node.another_sync().await;
    assert_eq!(
        node.created(),
        ["ok", "bad", "bad"],
        "ok, which succeeded, is not restarted"
    );
    let status = node.reported(&worker.uid, "bad", &restarted).await;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(exit_code(&status, "ok"), Some(0));

    node.exit("bad", 0);
    let status = node.phase(&worker.uid, "Succeeded").await;
    assert_eq!(exit_code(&status, "bad"), Some(0));
    assert_eq!(container_status(&status, "bad").restart_count, 1);
    node.another_sync().await;
    assert_eq!(node.created(), ["ok", "bad", "bad"]);
}

#[tokio::test]
async fn under_restart_policy_never_no_container_is_restarted_and_one_that_failed_fails_the_pod() {
    let node = Node::new().await;
    let spec = json!({"restartPolicy": "Never", "containers": [container("ok"), container("bad")]});
    let worker = node.run(pod("never", spec));
    node.running("ok", 0).await;
    node.running("bad", 0).await;

    node.exit("bad", 3);
    let status = node
        .status_where(&worker.uid, "bad reported exited", |status| {
            exit_code(status, "bad").is_some()
        })
        .await;
    assert_eq!(status.phase.as_deref(), Some("Running"), "ok still runs");

    node.exit("ok", 0);
    let status = node.phase(&worker.uid, "Failed").await;
    assert_eq!(exit_code(&status, "ok"), Some(0));
    assert_eq!(exit_code(&status, "bad"), Some(3));
    let terminated = (container_status(&status, "bad").state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .expect("terminated");
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    node.another_sync().await;
    assert_eq!(node.created(), ["ok", "bad"], "nothing restarted");
}

#[tokio::test]
async fn the_phase_is_pending_while_init_containers_run_running_with_the_containers_then_succeeded() {
    let node = Node::new().await;
    let spec = json!({
        "restartPolicy": "Never",
        "initContainers": [container("setup")],
        "containers": [container("job")],
    });
    let worker = node.run(pod("batch", spec));

    node.running("setup", 0).await;
    let status = node
        .status_where(&worker.uid, "setup reported running", |status| {
            is_running(status, "setup")
        })
        .await;
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(condition(&status, "Initialized"), "False");
    assert!(waiting(&status, "job").is_some(), "job waits for the init container");
    assert_eq!(container_status(&status, "job").container_id, None);

    node.exit("setup", 0);
    let job = node.running("job", 0).await;
    let status = node.phase(&worker.uid, "Running").await;
    assert_eq!(condition(&status, "Initialized"), "True");
    assert_eq!(condition(&status, "Ready"), "True");
    assert_eq!(
        container_status(&status, "job").container_id.as_deref(),
        Some(format!("{RUNTIME_NAME}://{job}").as_str())
    );

    node.exit("job", 0);
    let status = node.phase(&worker.uid, "Succeeded").await;
    assert_eq!(condition(&status, "Ready"), "False");
    assert_eq!(exit_code(&status, "job"), Some(0));
}

#[tokio::test]
async fn termination_stops_every_container_with_the_grace_period_then_stops_and_removes_the_sandbox() {
    let node = Node::new().await;
    let spec = json!({
        "terminationGracePeriodSeconds": 30,
        "containers": [
            {"name": "web", "image": IMAGE, "lifecycle": {"preStop": {"exec": {"command": ["/bin/drain"]}}}},
            container("sidecar"),
        ],
    });
    let worker = node.run(pod("doomed", spec));
    let web = node.running("web", 0).await;
    let sidecar = node.running("sidecar", 0).await;
    let sandbox = node.fake.sandboxes()[0].id.clone();
    let uid = worker.uid.clone();
    node.phase(&uid, "Running").await;
    assert!(node.pod_dir(&uid).exists(), "the pod has files on the node");
    // What the runtime writes the pod's logs into (the fake writes none).
    let logs = node.ctx.node.pod_log_directory("default", "doomed", &uid);
    std::fs::create_dir_all(logs.join("web")).unwrap();
    node.fake.clear_calls();

    worker.delete(7);
    worker.finished().await;

    let calls = node.fake.calls();
    let position = |wanted: &dyn Fn(&cri_client::testing::Call) -> bool| {
        calls
            .iter()
            .position(wanted)
            .unwrap_or_else(|| panic!("a call missing: {:?}", calls.iter().map(|c| c.rpc).collect::<Vec<_>>()))
    };
    let stop_of = |id: &str| {
        let id = id.to_owned();
        move |call: &cri_client::testing::Call| {
            call.request::<StopContainerRequest>()
                .is_some_and(|r| r.container_id == id)
        }
    };
    let pre_stop = position(&|call| {
        call.request::<ExecSyncRequest>()
            .is_some_and(|r| r.container_id == web && r.cmd == ["/bin/drain"])
    });
    let stop_web = position(&stop_of(&web));
    let stop_sidecar = position(&stop_of(&sidecar));
    let stop_sandbox = position(&|call| call.rpc == Rpc::StopPodSandbox);
    let remove_sandbox = position(&|call| call.rpc == Rpc::RemovePodSandbox);
    assert!(
        pre_stop < stop_web,
        "the preStop hook runs before its container is stopped"
    );
    assert!(
        stop_web.max(stop_sidecar) < stop_sandbox,
        "containers stop before their sandbox"
    );
    assert!(stop_sandbox < remove_sandbox);
    for call in node.fake.calls_to(Rpc::StopContainer) {
        let request = call.request::<StopContainerRequest>().expect("a StopContainerRequest");
        assert_eq!(request.timeout, 7, "the deletion's grace period, not the spec's");
    }
    assert_eq!(node.fake.calls_to(Rpc::StopContainer).len(), 2);
    assert!((node.fake.calls_to(Rpc::RemovePodSandbox).iter()).all(|call| {
        call.request::<cri_client::v1::RemovePodSandboxRequest>()
            .is_some_and(|r| r.pod_sandbox_id == sandbox)
    }));
    assert!(
        node.fake.sandboxes().is_empty() && node.fake.containers().is_empty(),
        "nothing left in the runtime"
    );
    assert!(node.status(&uid).is_none(), "the pod is forgotten");
    assert!(!node.pod_dir(&uid).exists(), "the pod's files are removed");
    assert!(!logs.exists(), "the pod's logs are removed");
    assert!(node.dir.path().exists());
}

#[tokio::test]
async fn termination_completes_when_the_runtime_says_the_pod_is_already_gone_and_again_when_nothing_is_left() {
    let node = Node::new().await;
    let gone = |what: &str| Status::not_found(format!("{what} not found"));
    let worker = node.run(pod(
        "vanishing",
        json!({"containers": [container("a"), container("b")]}),
    ));
    node.running("a", 0).await;
    node.running("b", 0).await;
    let uid = worker.uid.clone();
    node.phase(&uid, "Running").await;
    node.fake.clear_calls();

    // Someone removed the containers and the sandbox while the worker was stopping them.
    node.fake
        .inject(Rpc::StopContainer, Fault::error(gone("container")).times(2));
    node.fake.inject(Rpc::StopPodSandbox, Fault::error(gone("sandbox")));
    node.fake.inject(Rpc::RemovePodSandbox, Fault::error(gone("sandbox")));
    worker.delete(5);
    worker.finished().await;
    assert_eq!(node.fake.calls_to(Rpc::StopContainer).len(), 2);
    assert_eq!(node.fake.calls_to(Rpc::StopPodSandbox).len(), 1);
    assert_eq!(node.fake.calls_to(Rpc::RemovePodSandbox).len(), 1);
    assert!(node.status(&uid).is_none(), "the pod is forgotten all the same");
    assert!(!node.pod_dir(&uid).exists());

    // A second termination of the same pod (a new worker for a pod being deleted) finds
    // what the faults left in the runtime and removes it; a third finds nothing to do.
    for _ in 0..2 {
        node.fake.clear_calls();
        let mut again = pod("vanishing", json!({"containers": [container("a"), container("b")]}));
        again.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        again.metadata.deletion_grace_period_seconds = Some(5);
        node.run(again).finished().await;
        assert!(node.fake.calls_to(Rpc::RunPodSandbox).is_empty(), "nothing is started");
        assert!(
            node.fake.calls_to(Rpc::CreateContainer).is_empty(),
            "nothing is started"
        );
        assert!(node.fake.sandboxes().is_empty() && node.fake.containers().is_empty());
        assert!(node.status(&uid).is_none());
    }
    assert!(
        node.fake.calls_to(Rpc::StopPodSandbox).is_empty(),
        "nothing was left to stop"
    );
}

#[tokio::test]
async fn termination_retries_a_failing_stop_pod_sandbox_until_the_sandbox_is_stopped_and_removed() {
    let node = Node::new().await;
    let worker = node.run(pod("stubborn", json!({"containers": [container("app")]})));
    node.running("app", 0).await;
    let uid = worker.uid.clone();
    node.phase(&uid, "Running").await;
    node.fake.clear_calls();

    node.fake.inject(
        Rpc::StopPodSandbox,
        Fault::error(Status::unavailable("the runtime is restarting")).times(2),
    );
    worker.delete(1);
    worker.finished().await;

    let rpcs: Vec<Rpc> = node.fake.calls().iter().map(|call| call.rpc).collect();
    assert_eq!(
        node.fake.calls_to(Rpc::StopPodSandbox).len(),
        3,
        "tried until it worked: {rpcs:?}"
    );
    let last_stop = rpcs.iter().rposition(|rpc| *rpc == Rpc::StopPodSandbox).unwrap();
    let first_remove = rpcs.iter().position(|rpc| *rpc == Rpc::RemovePodSandbox).unwrap();
    assert!(last_stop < first_remove, "removed once stopped: {rpcs:?}");
    assert!(node.fake.sandboxes().is_empty() && node.fake.containers().is_empty());
    assert!(node.status(&uid).is_none());
    assert!(!node.pod_dir(&uid).exists());
}

#[tokio::test]
async fn termination_retries_a_failing_stop_container_and_stops_the_sandbox_only_after_it() {
    let node = Node::new().await;
    let spec = json!({"containers": [
        {"name": "app", "image": IMAGE, "lifecycle": {"preStop": {"exec": {"command": ["/bin/drain"]}}}},
    ]});
    let worker = node.run(pod("clinging", spec));
    let app = node.running("app", 0).await;
    let uid = worker.uid.clone();
    node.phase(&uid, "Running").await;
    node.fake.clear_calls();

    node.fake.inject(
        Rpc::StopContainer,
        Fault::error(Status::deadline_exceeded("stop timed out")).times(2),
    );
    worker.delete(1);
    worker.finished().await;

    let calls = node.fake.calls();
    let rpcs: Vec<Rpc> = calls.iter().map(|call| call.rpc).collect();
    let stops = node.fake.calls_to(Rpc::StopContainer);
    assert_eq!(stops.len(), 3, "tried until it worked: {rpcs:?}");
    assert!(stops.iter().all(|call| {
        call.request::<StopContainerRequest>()
            .is_some_and(|r| r.container_id == app)
    }));
    assert_eq!(
        node.fake.calls_to(Rpc::ExecSync).len(),
        1,
        "the preStop hook runs once, not at each try"
    );
    let last_stop = rpcs.iter().rposition(|rpc| *rpc == Rpc::StopContainer).unwrap();
    let stop_sandbox = rpcs.iter().position(|rpc| *rpc == Rpc::StopPodSandbox).unwrap();
    assert!(
        last_stop < stop_sandbox,
        "the sandbox is stopped once its containers are: {rpcs:?}"
    );
    assert!(node.fake.sandboxes().is_empty() && node.fake.containers().is_empty());
    assert!(node.status(&uid).is_none());
}

/// Runs a pod whose container exits with 3 once it is reported running, and returns how
/// long the exit took to reach the pod's status (failing past `bound`).
async fn exit_reported_within(node: &Node, bound: Duration) -> Duration {
    let worker = node.run(pod(
        "exits",
        json!({"restartPolicy": "Never", "containers": [container("app")]}),
    ));
    node.running("app", 0).await;
    node.status_where(&worker.uid, "app running", |status| is_running(status, "app"))
        .await;
    let exited = std::time::Instant::now();
    node.exit("app", 3);
    node.within(bound, "the exit in the pod's status", || {
        node.status(&worker.uid)
            .filter(|status| exit_code(status, "app") == Some(3))
    })
    .await;
    exited.elapsed()
}

#[tokio::test]
async fn an_exit_reaches_the_status_within_a_second_through_the_runtime_s_events() {
    let node = Node::new().await;
    exit_reported_within(&node, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn against_a_runtime_without_events_an_exit_reaches_the_status_within_a_relist() {
    let node = Node::with(|fake| {
        fake.inject(
            Rpc::GetContainerEvents,
            Fault::error(Status::unimplemented("no events here")).always(),
        );
    })
    .await;
    // A relist period, and a pass of the worker.
    exit_reported_within(&node, crate::pods::pleg::RELIST_PERIOD + Duration::from_secs(1)).await;
}
