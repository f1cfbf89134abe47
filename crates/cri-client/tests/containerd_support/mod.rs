//! What the containerd tests share: the environment, and pod and container configs with
//! names of their own (tests run in parallel on one containerd). Polling and the readers
//! of the CRI log format and of IPv4 CIDRs come from the harness.

use std::path::Path;

use anyhow::Context;
use cri_client::Client;
use cri_client::v1::PodSandboxConfig;
pub(crate) use test_harness::cni::in_cidr;
use test_harness::pods;
pub(crate) use test_harness::pods::{busybox_container, eventually, parse_log_line};
use test_harness::{Containerd, Registry, TestImages};

/// The Kubernetes namespace of every test pod.
pub(crate) const NAMESPACE: &str = "cri-client-test";

/// One registry with the test images, one containerd, one client. Fields drop in order:
/// the client and its runtime first, the registry last (containerd may pull while it
/// stops).
pub(crate) struct Env {
    pub(crate) client: Client,
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) containerd: Containerd,
    pub(crate) images: TestImages,
    pub(crate) registry: Registry,
}

impl Env {
    /// Starts the registry, pushes the test images, starts containerd and connects.
    pub(crate) fn setup() -> anyhow::Result<Env> {
        test_harness::require_tools(&["containerd", "runc", "docker-registry", "busybox"])?;
        let registry = Registry::start()?;
        let images = test_harness::push_test_images(&registry)?;
        let containerd = Containerd::start(&registry, &images)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("tokio runtime")?;
        let client = rt
            .block_on(Client::connect(&containerd.endpoint()))
            .context("connecting to containerd")?;
        Ok(Env {
            client,
            rt,
            containerd,
            images,
            registry,
        })
    }

    /// Pulls busybox (a no-op after the first time) and returns its reference.
    pub(crate) async fn busybox(&self) -> anyhow::Result<String> {
        self.client
            .pull_image(self.images.busybox.as_str(), None, None)
            .await
            .context("pulling busybox")?;
        Ok(self.images.busybox.clone())
    }

    /// A pod config named after `test`, unique in this process, whose log directory
    /// exists under containerd's log dir (the kubelet creates it before RunPodSandbox).
    pub(crate) fn pod(&self, test: &str) -> anyhow::Result<PodSandboxConfig> {
        pod_config(self.containerd.log_dir(), test)
    }

    /// Runs a pod for `test`; returns its id and config.
    pub(crate) async fn run_pod(&self, test: &str) -> anyhow::Result<(String, PodSandboxConfig)> {
        let config = self.pod(test)?;
        let id = self
            .client
            .run_pod_sandbox(config.clone(), "")
            .await
            .with_context(|| format!("running the pod of {test}"))?;
        Ok((id, config))
    }

    /// Creates and starts a busybox container running `script` in the pod; returns its id.
    pub(crate) async fn run_container(
        &self,
        pod_id: &str,
        pod: &PodSandboxConfig,
        name: &str,
        script: &str,
    ) -> anyhow::Result<String> {
        let config = busybox_container(&self.busybox().await?, name, script, pod)?;
        let id = self
            .client
            .create_container(pod_id, config, pod.clone())
            .await
            .with_context(|| format!("creating container {name}"))?;
        self.client
            .start_container(&id)
            .await
            .with_context(|| format!("starting container {name}"))?;
        Ok(id)
    }

    /// Stops and removes the pod and its containers (best effort, at the end of a test).
    pub(crate) async fn remove_pod(&self, pod_id: &str) {
        let _ = self.client.stop_pod_sandbox(pod_id).await;
        let _ = self.client.remove_pod_sandbox(pod_id).await;
    }
}

/// See [`Env::pod`].
pub(crate) fn pod_config(log_root: &Path, test: &str) -> anyhow::Result<PodSandboxConfig> {
    pods::pod_config(log_root, NAMESPACE, test)
}
