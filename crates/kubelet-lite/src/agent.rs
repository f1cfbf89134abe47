//! The node agent put together: the runtime (embedded or remote), the Node, the pod
//! sources, the pod manager and the status manager, run until shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::config::Settings;
use crate::node::{self, NodeFacts};
use crate::pods::{self, PodContext, Source, StatusManager};
use crate::runtime::{EmbeddedError, EmbeddedRuntime};
use crate::spec::NodeContext;

/// How long the runtime may take to answer CRI Version at start-up.
const RUNTIME_WAIT: Duration = Duration::from_secs(60);
/// How long the embedded runtime may take to stop serving at shutdown (pod workers may
/// still hold connections; its containers keep running either way).
const EMBEDDED_STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The root directory could not be created.
    #[error("creating the root directory {path}: {source}")]
    RootDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The embedded runtime did not start.
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    /// The CRI runtime is unreachable.
    #[error("the CRI runtime at {endpoint} does not answer: {source}")]
    Runtime {
        /// Its endpoint.
        endpoint: String,
        /// The last error.
        source: cri_client::Error,
    },
    /// The kubeconfig is unusable.
    #[error("loading the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The apiserver client could not be built.
    #[error("building the apiserver client: {0}")]
    Client(#[from] kube::Error),
    /// The node could not be registered.
    #[error(transparent)]
    Node(#[from] node::NodeError),
}

/// Runs the node agent with `settings` until `shutdown` completes. Pods keep running
/// when it returns (a restarted agent adopts them).
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    std::fs::create_dir_all(&settings.root_dir).map_err(|source| AgentError::RootDir {
        path: settings.root_dir.clone(),
        source,
    })?;
    let (embedded, endpoint) = match &settings.runtime_endpoint {
        Some(endpoint) => (None, endpoint.clone()),
        None => {
            let embedded = EmbeddedRuntime::start(
                settings.runtime_config.as_deref(),
                &settings.root_dir,
                &settings.pod_cidr,
            )?;
            let endpoint = embedded.endpoint().to_owned();
            (Some(embedded), endpoint)
        }
    };
    let runtime = connect_runtime(&endpoint).await?;
    let version = runtime.version().await.map_err(|source| AgentError::Runtime {
        endpoint: endpoint.clone(),
        source,
    })?;
    tracing::info!(runtime = %version.runtime_name, version = %version.runtime_version, %endpoint, "connected to the CRI runtime");

    let client = match &settings.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)?;
            let config =
                kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default()).await?;
            Some(kube::Client::try_from(config)?)
        }
        None => None,
    };
    let node_ip = settings.node_ip.or_else(detect_node_ip);
    let facts = NodeFacts {
        node_name: settings.node_name.clone(),
        node_ip,
        port: settings.port,
        max_pods: settings.max_pods,
        runtime_version: format!("{}://{}", version.runtime_name, version.runtime_version),
        root_dir: settings.root_dir.clone(),
    };
    let mut tasks = Vec::new();
    let mut node_uid = None;
    if let Some(client) = &client {
        let uid = register_until_done(client, &facts, &runtime).await;
        node_uid = Some(uid.clone());
        tasks.push(tokio::spawn(node::lease::run(
            client.clone(),
            facts.node_name.clone(),
            uid,
        )));
        tasks.push(tokio::spawn(node::run_status_loop(
            client.clone(),
            facts.clone(),
            runtime.clone(),
            settings.node_status_update_frequency,
        )));
    }

    let ctx = Arc::new(PodContext {
        runtime: runtime.clone(),
        client: client.clone(),
        node: NodeContext {
            node_name: settings.node_name.clone(),
            host_ip: node_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            cluster_dns: settings.cluster_dns.iter().map(ToString::to_string).collect(),
            cluster_domain: settings.cluster_domain.clone(),
            root_dir: settings.root_dir.clone(),
        },
        node_uid,
        runtime_name: version.runtime_name.clone(),
        status: StatusManager::spawn(client.clone()),
    });
    let (events, receiver) = mpsc::unbounded_channel();
    let mut sources = HashSet::new();
    if let Some(client) = &client {
        sources.insert(Source::Api);
        tasks.push(tokio::spawn(pods::source::watch_api(
            client.clone(),
            settings.node_name.clone(),
            events.clone(),
        )));
    }
    if let Some(dir) = &settings.pod_manifest_path {
        sources.insert(Source::File);
        tasks.push(tokio::spawn(pods::source::watch_dir(
            dir.clone(),
            settings.node_name.clone(),
            events.clone(),
        )));
    }
    drop(events);
    tasks.push(crate::housekeeping::spawn(
        runtime.clone(),
        crate::housekeeping::HousekeepingSettings::default(),
    ));
    tasks.push(tokio::spawn(pods::run_manager(ctx, receiver, sources)));
    tracing::info!(node = %settings.node_name, ip = ?node_ip, "kubelet-lite running");

    shutdown.await;
    tracing::info!("shutting down (pods keep running)");
    for task in &tasks {
        task.abort();
    }
    for task in tasks {
        let _ = task.await;
    }
    drop(runtime);
    if let Some(embedded) = embedded
        && tokio::time::timeout(EMBEDDED_STOP_TIMEOUT, embedded.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("the embedded runtime did not stop in time (clients still connected)");
    }
    Ok(())
}

/// Connects to the runtime, waiting up to [`RUNTIME_WAIT`] for it to answer Version.
async fn connect_runtime(endpoint: &str) -> Result<cri_client::Client, AgentError> {
    let error = |source| AgentError::Runtime {
        endpoint: endpoint.to_owned(),
        source,
    };
    let runtime = cri_client::Client::connect_lazy(endpoint, cri_client::Options::default()).map_err(error)?;
    let started = Instant::now();
    loop {
        match runtime.version().await {
            Ok(_) => return Ok(runtime),
            Err(err) if started.elapsed() >= RUNTIME_WAIT => return Err(error(err)),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Registers the node, retrying every 2 s until the apiserver accepts it; returns its UID.
async fn register_until_done(client: &kube::Client, facts: &NodeFacts, runtime: &cri_client::Client) -> String {
    loop {
        let ready = node::status::runtime_ready(runtime).await;
        match node::register::register(client, facts, ready).await {
            Ok(uid) => return uid,
            Err(err) => {
                tracing::warn!(error = %err, "registering the node; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// The first global IPv4 address of this host, from the route to a benchmarking-range
/// address (no packet is sent: a connected UDP socket only picks a source address).
fn detect_node_ip() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("198.18.0.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}
