//! The CRI `RuntimeService`: pod sandboxes and containers over pinned namespaces, CNI, runc
//! and one monitor process per container.
//!
//! One file per RPC (or small group), each opening with the method it implements, the way
//! containerd's CRI server is laid out; this file holds what they share.

mod attach;
mod container_create;
mod container_exec;
mod container_list;
mod container_log;
mod container_remove;
mod container_start;
mod container_stats;
mod container_status;
mod container_stop;
mod container_update;
mod exec;
mod metrics;
mod port_forward;
mod reconcile;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_stats;
mod sandbox_status;
mod sandbox_stop;
mod version;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cri_api::server::RuntimeService;
use cri_api::v1::*;
use tonic::{Request, Response, Status};

use crate::image::digest::Digest;
use crate::image::manager::ImageManager;
use crate::keyed_lock::KeyedLocks;
use crate::oci::runc::Runc;
use crate::sandbox::cni::Cni;
use crate::state::{Registry, StateError};

pub use exec::StreamingServer;
pub use version::{RUNTIME_API_VERSION, RUNTIME_NAME};

/// Where the runtime keeps sandbox and container files.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// One directory per sandbox: pinned namespace files, resolv.conf, hostname, hosts.
    pub sandboxes: PathBuf,
    /// One OCI bundle per container: config.json, the rootfs mount point, its upper layer.
    pub containers: PathBuf,
    /// One directory per container for its monitor: pid, exit record, control channel.
    pub monitors: PathBuf,
}

/// Everything the RuntimeService works with.
#[derive(Debug)]
pub struct Pods {
    registry: Registry,
    images: Arc<ImageManager>,
    cni: Cni,
    runtimes: HashMap<String, Runc>,
    default_runtime: String,
    monitor_binary: PathBuf,
    dirs: Dirs,
    log_max_line: usize,
    /// Serializes the operations on one sandbox or container id.
    busy: KeyedLocks<String>,
    /// What stats calls keep between calls.
    usage: container_stats::UsageSources,
}

impl Pods {
    /// Assembles the pod machinery; call [`Pods::reconcile`] before serving.
    pub fn new(parts: PodsParts) -> Self {
        Self {
            registry: parts.registry,
            images: parts.images,
            cni: parts.cni,
            runtimes: parts.runtimes,
            default_runtime: parts.default_runtime,
            monitor_binary: parts.monitor_binary,
            dirs: parts.dirs,
            log_max_line: parts.log_max_line,
            busy: KeyedLocks::default(),
            usage: container_stats::UsageSources::default(),
        }
    }

    /// The OCI runtime of a runtime handler (the default one for an empty name).
    fn runtime(&self, handler: &str) -> Result<&Runc, Status> {
        let name = if handler.is_empty() {
            &self.default_runtime
        } else {
            handler
        };
        self.runtimes
            .get(name)
            .ok_or_else(|| Status::invalid_argument(format!("no runtime handler named {name:?} is configured")))
    }

    /// The OCI runtime a container runs under.
    fn runc(&self, container: &crate::state::ContainerRecord) -> Result<&Runc, Status> {
        self.runtime(&container.runtime_handler)
    }

    /// The diff ids of the image layers that containers use, which image removal must keep.
    pub fn layers_in_use(&self) -> HashSet<Digest> {
        self.registry.containers().into_iter().flat_map(|c| c.layers).collect()
    }
}

/// What [`Pods::new`] assembles.
#[derive(Debug)]
pub struct PodsParts {
    /// The sandbox and container records.
    pub registry: Registry,
    /// The images containers are made from.
    pub images: Arc<ImageManager>,
    /// The pod network.
    pub cni: Cni,
    /// The OCI runtime of each runtime handler.
    pub runtimes: HashMap<String, Runc>,
    /// The handler for sandboxes that name none.
    pub default_runtime: String,
    /// The `runtime-core-monitor` binary.
    pub monitor_binary: PathBuf,
    /// Where sandbox and container files go.
    pub dirs: Dirs,
    /// The longest line of a log record.
    pub log_max_line: usize,
}

/// The `RuntimeService` of runtime-core.
#[derive(Debug, Clone)]
pub struct RuntimeServiceImpl {
    pods: Arc<Pods>,
    /// Where Exec, Attach and PortForward URLs point; without it they are Unavailable.
    streaming: Option<StreamingServer>,
}

impl RuntimeServiceImpl {
    /// Serves the pods of `pods`.
    pub fn new(pods: Arc<Pods>) -> Self {
        Self { pods, streaming: None }
    }

    /// Hands out Exec, Attach and PortForward URLs of `server`.
    pub fn with_streaming(mut self, server: StreamingServer) -> Self {
        self.streaming = Some(server);
        self
    }
}

/// Now, in nanoseconds since the epoch (the CRI's timestamps).
fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The status for a registry error: NotFound, AlreadyExists for a reserved name,
/// InvalidArgument for an ambiguous id prefix, Internal for the store.
fn state_status(error: StateError) -> Status {
    match &error {
        StateError::NotFound { .. } => Status::not_found(error.to_string()),
        StateError::NameReserved { .. } => Status::already_exists(error.to_string()),
        StateError::Ambiguous { .. } => Status::invalid_argument(error.to_string()),
        StateError::Store(_) => Status::internal(error.to_string()),
    }
}

/// An Internal status for a failed step, logged.
fn internal(step: &str, error: impl std::fmt::Display) -> Status {
    tracing::warn!(%error, step, "runtime call failed");
    Status::internal(format!("{step}: {error}"))
}

/// Runs a call that changes the system on a task of its own, so it finishes (or rolls back)
/// even when the caller gives up: tonic drops a call's future when its client goes away,
/// which would otherwise stop a RunPodSandbox between pinning namespaces and undoing them.
async fn to_completion<T: Send + 'static>(
    call: impl Future<Output = Result<T, Status>> + Send + 'static,
) -> Result<T, Status> {
    tokio::spawn(call)
        .await
        .unwrap_or_else(|e| Err(internal("running the call", e)))
}

/// Whether every label of `selector` is on `labels` with the same value.
fn labels_match(
    selector: &std::collections::HashMap<String, String>,
    labels: &std::collections::HashMap<String, String>,
) -> bool {
    selector.iter().all(|(key, value)| labels.get(key) == Some(value))
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, request: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        version::version(request.into_inner()).map(Response::new)
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.pods.status(request.into_inner()).map(Response::new)
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(version::runtime_config()))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.run_pod_sandbox(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.stop_pod_sandbox(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.remove_pod_sandbox(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        self.pods.pod_sandbox_status(request.into_inner()).map(Response::new)
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        Ok(Response::new(self.pods.list_pod_sandbox(request.into_inner())))
    }

    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.create_container(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.start_container(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.stop_container(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.remove_container(request.into_inner()).await })
            .await
            .map(Response::new)
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        self.pods.list_containers(request.into_inner()).map(Response::new)
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        self.pods.container_status(request.into_inner()).map(Response::new)
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        self.pods
            .update_container_resources(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        self.pods
            .reopen_container_log(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.pods
            .exec(request.into_inner(), self.streaming.as_ref())
            .map(Response::new)
    }

    async fn attach(&self, request: Request<AttachRequest>) -> Result<Response<AttachResponse>, Status> {
        self.pods
            .attach(request.into_inner(), self.streaming.as_ref())
            .map(Response::new)
    }

    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        self.pods
            .port_forward(request.into_inner(), self.streaming.as_ref())
            .map(Response::new)
    }

    async fn exec_sync(&self, request: Request<ExecSyncRequest>) -> Result<Response<ExecSyncResponse>, Status> {
        self.pods.exec_sync(request.into_inner()).await.map(Response::new)
    }

    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        self.pods.container_stats(request.into_inner()).map(Response::new)
    }

    async fn list_container_stats(
        &self,
        request: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        Ok(Response::new(self.pods.list_container_stats(request.into_inner())))
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        self.pods
            .pod_sandbox_stats(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        Ok(Response::new(
            self.pods.list_pod_sandbox_stats(request.into_inner()).await,
        ))
    }

    async fn list_metric_descriptors(
        &self,
        request: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        Ok(Response::new(self.pods.list_metric_descriptors(request.into_inner())))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        request: Request<ListPodSandboxMetricsRequest>,
    ) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
        Ok(Response::new(
            self.pods.list_pod_sandbox_metrics(request.into_inner()).await,
        ))
    }
}
