//! `RuntimeService`.

use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::testing::{RUNTIME_NAME, RUNTIME_VERSION, Rpc, STREAMING_URL, lock};
use crate::v1::runtime_service_server::RuntimeService;
use crate::v1::*;

use super::Service;

/// The version of the kubelet's runtime API that VersionResponse reports, as every
/// runtime does.
const KUBELET_API_VERSION: &str = "0.1.0";

#[tonic::async_trait]
impl RuntimeService for Service {
    async fn version(&self, request: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        self.answer(Rpc::Version, request, |_, _| {
            Ok(VersionResponse {
                version: KUBELET_API_VERSION.to_owned(),
                runtime_name: RUNTIME_NAME.to_owned(),
                runtime_version: RUNTIME_VERSION.to_owned(),
                runtime_api_version: crate::CRI_API_VERSION.to_owned(),
            })
        })
        .await
    }

    async fn run_pod_sandbox(
        &self,
        request: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        self.answer(Rpc::RunPodSandbox, request, |state, r| {
            let pod_sandbox_id = state.run_pod_sandbox(r.config, &r.runtime_handler)?;
            Ok(RunPodSandboxResponse { pod_sandbox_id })
        })
        .await
    }

    async fn stop_pod_sandbox(
        &self,
        request: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        self.answer(Rpc::StopPodSandbox, request, |state, r| {
            state
                .stop_pod_sandbox(&r.pod_sandbox_id)
                .map(|()| StopPodSandboxResponse {})
        })
        .await
    }

    async fn remove_pod_sandbox(
        &self,
        request: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        self.answer(Rpc::RemovePodSandbox, request, |state, r| {
            state
                .remove_pod_sandbox(&r.pod_sandbox_id)
                .map(|()| RemovePodSandboxResponse {})
        })
        .await
    }

    async fn pod_sandbox_status(
        &self,
        request: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        self.answer(Rpc::PodSandboxStatus, request, |state, r| {
            state.pod_sandbox_status(&r.pod_sandbox_id)
        })
        .await
    }

    async fn list_pod_sandbox(
        &self,
        request: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        self.answer(Rpc::ListPodSandbox, request, |state, r| {
            Ok(ListPodSandboxResponse {
                items: state.list_pod_sandbox(r.filter),
            })
        })
        .await
    }

    async fn create_container(
        &self,
        request: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        self.answer(Rpc::CreateContainer, request, |state, r| {
            let container_id = state.create_container(&r.pod_sandbox_id, r.config)?;
            Ok(CreateContainerResponse { container_id })
        })
        .await
    }

    async fn start_container(
        &self,
        request: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        self.answer(Rpc::StartContainer, request, |state, r| {
            state
                .start_container(&r.container_id)
                .map(|()| StartContainerResponse {})
        })
        .await
    }

    async fn stop_container(
        &self,
        request: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        self.answer(Rpc::StopContainer, request, |state, r| {
            state.stop_container(&r.container_id).map(|()| StopContainerResponse {})
        })
        .await
    }

    async fn remove_container(
        &self,
        request: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        self.answer(Rpc::RemoveContainer, request, |state, r| {
            state
                .remove_container(&r.container_id)
                .map(|()| RemoveContainerResponse {})
        })
        .await
    }

    async fn list_containers(
        &self,
        request: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        self.answer(Rpc::ListContainers, request, |state, r| {
            Ok(ListContainersResponse {
                containers: state.list_containers(r.filter),
            })
        })
        .await
    }

    async fn container_status(
        &self,
        request: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        self.answer(Rpc::ContainerStatus, request, |state, r| {
            state.container_status(&r.container_id)
        })
        .await
    }

    async fn update_container_resources(
        &self,
        request: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        self.answer(Rpc::UpdateContainerResources, request, |state, r| {
            let resources = ContainerResources {
                linux: r.linux,
                windows: r.windows,
            };
            state
                .update_container_resources(&r.container_id, resources)
                .map(|()| UpdateContainerResourcesResponse {})
        })
        .await
    }

    async fn reopen_container_log(
        &self,
        request: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        self.answer(Rpc::ReopenContainerLog, request, |state, r| {
            state
                .ensure_running(&r.container_id, "reopen the log of")
                .map(|()| ReopenContainerLogResponse {})
        })
        .await
    }

    async fn exec_sync(&self, request: Request<ExecSyncRequest>) -> Result<Response<ExecSyncResponse>, Status> {
        let request = self
            .answer(Rpc::ExecSync, request, |state, r| {
                state.ensure_running(&r.container_id, "exec in").map(|()| r)
            })
            .await?
            .into_inner();
        // The handler runs without the state's lock: it may look at the fake.
        let handler = lock(&self.0.shared.exec_sync).clone();
        Ok(Response::new(
            handler.map_or_else(ExecSyncResponse::default, |handler| handler(&request)),
        ))
    }

    async fn exec(&self, request: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        self.answer(Rpc::Exec, request, |state, r| {
            state.ensure_running(&r.container_id, "exec in")?;
            Ok(ExecResponse {
                url: format!("{STREAMING_URL}/exec/{}", r.container_id),
            })
        })
        .await
    }

    async fn attach(&self, request: Request<AttachRequest>) -> Result<Response<AttachResponse>, Status> {
        self.answer(Rpc::Attach, request, |state, r| {
            state.ensure_running(&r.container_id, "attach to")?;
            Ok(AttachResponse {
                url: format!("{STREAMING_URL}/attach/{}", r.container_id),
            })
        })
        .await
    }

    async fn port_forward(
        &self,
        request: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        self.answer(Rpc::PortForward, request, |state, r| {
            let url = state.port_forward(&r.pod_sandbox_id)?;
            Ok(PortForwardResponse { url })
        })
        .await
    }

    async fn container_stats(
        &self,
        request: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        self.answer(Rpc::ContainerStats, request, |state, r| {
            let stats = state.container_stats(&r.container_id)?;
            Ok(ContainerStatsResponse { stats: Some(stats) })
        })
        .await
    }

    async fn list_container_stats(
        &self,
        request: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        self.answer(Rpc::ListContainerStats, request, |state, r| {
            Ok(ListContainerStatsResponse {
                stats: state.list_container_stats(r.filter),
            })
        })
        .await
    }

    async fn pod_sandbox_stats(
        &self,
        request: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        self.answer(Rpc::PodSandboxStats, request, |state, r| {
            let stats = state.pod_sandbox_stats(&r.pod_sandbox_id)?;
            Ok(PodSandboxStatsResponse { stats: Some(stats) })
        })
        .await
    }

    async fn list_pod_sandbox_stats(
        &self,
        request: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        self.answer(Rpc::ListPodSandboxStats, request, |state, r| {
            Ok(ListPodSandboxStatsResponse {
                stats: state.list_pod_sandbox_stats(r.filter),
            })
        })
        .await
    }

    async fn update_runtime_config(
        &self,
        request: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        // The pod CIDR it carries changes nothing in the fake; the call is recorded.
        self.answer(Rpc::UpdateRuntimeConfig, request, |_, _| {
            Ok(UpdateRuntimeConfigResponse {})
        })
        .await
    }

    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        self.answer(Rpc::Status, request, |state, _| {
            Ok(StatusResponse {
                status: Some(RuntimeStatus {
                    conditions: state.conditions.clone(),
                }),
                ..Default::default()
            })
        })
        .await
    }

    async fn checkpoint_container(
        &self,
        request: Request<CheckpointContainerRequest>,
    ) -> Result<Response<CheckpointContainerResponse>, Status> {
        self.answer(Rpc::CheckpointContainer, request, |state, r| {
            state
                .checkpoint_container(&r.container_id)
                .map(|()| CheckpointContainerResponse {})
        })
        .await
    }

    async fn get_container_events(
        &self,
        request: Request<GetEventsRequest>,
    ) -> Result<Response<BoxStream<ContainerEventResponse>>, Status> {
        let events = self
            .answer(Rpc::GetContainerEvents, request, |state, _| Ok(state.subscribe()))
            .await?
            .into_inner();
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(events).map(Ok))))
    }

    async fn list_metric_descriptors(
        &self,
        request: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        self.answer(Rpc::ListMetricDescriptors, request, |_, _| {
            Ok(ListMetricDescriptorsResponse::default())
        })
        .await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        request: Request<ListPodSandboxMetricsRequest>,
    ) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
        self.answer(Rpc::ListPodSandboxMetrics, request, |_, _| {
            Ok(ListPodSandboxMetricsResponse::default())
        })
        .await
    }

    async fn runtime_config(
        &self,
        request: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        self.answer(Rpc::RuntimeConfig, request, |_, _| {
            Ok(RuntimeConfigResponse {
                linux: Some(LinuxRuntimeConfiguration {
                    cgroup_driver: CgroupDriver::Systemd.into(),
                }),
            })
        })
        .await
    }
}
