//! Resource usage: ContainerStats, ListContainerStats, PodSandboxStats,
//! ListPodSandboxStats, ListMetricDescriptors and ListPodSandboxMetrics.

use cri_api::client::RuntimeServiceClient;
use cri_api::v1::{
    ContainerStats, ContainerStatsFilter, ContainerStatsRequest, ListContainerStatsRequest,
    ListMetricDescriptorsRequest, ListPodSandboxMetricsRequest, ListPodSandboxStatsRequest, MetricDescriptor,
    PodSandboxMetrics, PodSandboxStats, PodSandboxStatsFilter, PodSandboxStatsRequest,
};

use crate::client::{Client, Deadline, Result};

impl Client {
    /// ContainerStats: CPU, memory and writable-layer usage of one container. An unknown id
    /// is an error; `None` only if the runtime answered without stats.
    pub async fn container_stats(&self, container_id: &str) -> Result<Option<ContainerStats>> {
        let request = ContainerStatsRequest {
            container_id: container_id.to_owned(),
        };
        self.call(
            "ContainerStats",
            container_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::container_stats,
        )
        .await
        .map(|response| response.stats)
    }

    /// ListContainerStats: the stats of the running containers matching `filter`.
    pub async fn list_container_stats(&self, filter: Option<ContainerStatsFilter>) -> Result<Vec<ContainerStats>> {
        let request = ListContainerStatsRequest { filter };
        self.call(
            "ListContainerStats",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_container_stats,
        )
        .await
        .map(|response| response.stats)
    }

    /// PodSandboxStats: the usage of one pod sandbox and its containers. An unknown id is
    /// an error; `None` only if the runtime answered without stats.
    pub async fn pod_sandbox_stats(&self, pod_sandbox_id: &str) -> Result<Option<PodSandboxStats>> {
        let request = PodSandboxStatsRequest {
            pod_sandbox_id: pod_sandbox_id.to_owned(),
        };
        self.call(
            "PodSandboxStats",
            pod_sandbox_id,
            Deadline::Default,
            request,
            RuntimeServiceClient::pod_sandbox_stats,
        )
        .await
        .map(|response| response.stats)
    }

    /// ListPodSandboxStats: the stats of the pod sandboxes matching `filter`.
    pub async fn list_pod_sandbox_stats(&self, filter: Option<PodSandboxStatsFilter>) -> Result<Vec<PodSandboxStats>> {
        let request = ListPodSandboxStatsRequest { filter };
        self.call(
            "ListPodSandboxStats",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_pod_sandbox_stats,
        )
        .await
        .map(|response| response.stats)
    }

    /// ListMetricDescriptors: the names, help and label keys of the metrics
    /// ListPodSandboxMetrics returns.
    pub async fn list_metric_descriptors(&self) -> Result<Vec<MetricDescriptor>> {
        let request = ListMetricDescriptorsRequest {};
        self.call(
            "ListMetricDescriptors",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_metric_descriptors,
        )
        .await
        .map(|response| response.descriptors)
    }

    /// ListPodSandboxMetrics: the metrics of every pod sandbox and its containers.
    pub async fn list_pod_sandbox_metrics(&self) -> Result<Vec<PodSandboxMetrics>> {
        let request = ListPodSandboxMetricsRequest {};
        self.call(
            "ListPodSandboxMetrics",
            "",
            Deadline::Default,
            request,
            RuntimeServiceClient::list_pod_sandbox_metrics,
        )
        .await
        .map(|response| response.pod_metrics)
    }
}
