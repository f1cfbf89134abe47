//! The CRI `RuntimeService`: each RPC calls [`crate::pods::Pods`] and maps its errors onto
//! gRPC status codes (`service::status::pods_status`). The calls that hand out streaming
//! URLs, and Version, Status and RuntimeConfig, have a file of their own, named as
//! containerd names them.

mod container_attach;
mod container_exec;
mod sandbox_portforward;
mod version;

use std::future::Future;
use std::sync::Arc;

use cri_api::server::RuntimeService;
use cri_api::v1::*;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use super::status::pods_status;
use crate::pods::{Pods, PodsError, SubscriptionEnded};
use crate::stream::StreamingServer;

pub use version::{RUNTIME_API_VERSION, RUNTIME_NAME};

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

/// A domain answer as a gRPC one.
fn respond<T>(result: Result<T, PodsError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|error| pods_status(&error))
}

/// Runs a call that changes the system on a task of its own, so it finishes (or rolls back)
/// even when the caller gives up: tonic drops a call's future when its client goes away,
/// which would otherwise stop a RunPodSandbox between pinning namespaces and undoing them.
async fn to_completion<T: Send + 'static>(
    call: impl Future<Output = Result<T, PodsError>> + Send + 'static,
) -> Result<Response<T>, Status> {
    match tokio::spawn(call).await {
        Ok(result) => respond(result),
        Err(error) => respond(Err(PodsError::failed("running the call", error))),
    }
}

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, request: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(version::version(request.into_inner())))
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(self.runtime_status(request.into_inner())))
    }

    async fn runtime_config(
        &self,
        _: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        Ok(Response::new(version::runtime_config()))
    }

    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        respond(self.pods.update_runtime_config(request.into_inner()))
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.run_pod_sandbox(request.into_inner()).await }).await
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.stop_pod_sandbox(request.into_inner()).await }).await
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.remove_pod_sandbox(request.into_inner()).await }).await
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        respond(self.pods.pod_sandbox_status(request.into_inner()))
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
        to_completion(async move { pods.create_container(request.into_inner()).await }).await
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.start_container(request.into_inner()).await }).await
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.stop_container(request.into_inner()).await }).await
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.remove_container(request.into_inner()).await }).await
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        respond(self.pods.list_containers(request.into_inner()))
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        respond(self.pods.container_status(request.into_inner()))
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        respond(self.pods.update_container_resources(request.into_inner()).await)
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        respond(self.pods.reopen_container_log(request.into_inner()).await)
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.exec_url(request.into_inner()).map(Response::new)
    }

    async fn attach(&self, request: Request<AttachRequest>) -> Result<Response<AttachResponse>, Status> {
        self.attach_url(request.into_inner()).map(Response::new)
    }

    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        self.port_forward_url(request.into_inner()).map(Response::new)
    }

    async fn exec_sync(&self, request: Request<ExecSyncRequest>) -> Result<Response<ExecSyncResponse>, Status> {
        respond(self.pods.exec_sync(request.into_inner()).await)
    }

    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        respond(self.pods.container_stats(request.into_inner()))
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
        respond(self.pods.pod_sandbox_stats(request.into_inner()).await)
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

    async fn checkpoint_container(
        &self,
        request: Request<CheckpointContainerRequest>,
    ) -> Result<Response<CheckpointContainerResponse>, Status> {
        let pods = self.pods.clone();
        to_completion(async move { pods.checkpoint_container(request.into_inner()).await }).await
    }

    /// A stream of every container's changes from now on; it ends with ResourceExhausted
    /// if the subscriber falls behind (it must relist and subscribe again), and without an
    /// error when the runtime stops serving.
    async fn get_container_events(
        &self,
        _: Request<GetEventsRequest>,
    ) -> Result<Response<BoxStream<ContainerEventResponse>>, Status> {
        let events = futures_util::stream::unfold(Some(self.pods.subscribe_container_events()), |state| async {
            let mut subscription = state?;
            match subscription.next().await {
                Ok(event) => Some((Ok(event), Some(subscription))),
                Err(ended @ SubscriptionEnded::FellBehind(_)) => {
                    Some((Err(Status::resource_exhausted(ended.to_string())), None))
                }
                Err(SubscriptionEnded::Closed) => None,
            }
        });
        Ok(Response::new(Box::pin(events)))
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
