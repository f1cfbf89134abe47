//! The Node object: registration, its status (conditions following the runtime's Status,
//! addresses, capacity, node info) and the Lease heartbeat in `kube-node-lease`.
//!
//! - [`status`]: what this machine and the runtime say, as a `NodeStatus`;
//! - [`register`]: creating (or adopting) the Node;
//! - [`lease`]: renewing the Lease every 10 s;
//! - [`pod_cidr`]: passing the Node's pod CIDRs on to the runtime;
//! - [`run_status_loop`]: recomputing the status every `node_status_update_frequency`,
//!   patching it when it changed and at least every 5 minutes.

pub mod lease;
pub mod pod_cidr;
pub mod register;
pub mod status;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{Patch, PatchParams};

pub use status::NodeFacts;

/// How often the status is patched even when nothing changed.
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);

/// What went wrong talking to the apiserver about the Node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The apiserver refused or failed a request.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: &'static str,
        /// The client error.
        source: kube::Error,
    },
}

/// Recomputes the node status every `frequency` and patches it when it changed (ignoring
/// heartbeat times) or [`STATUS_REPORT_INTERVAL`] passed; before, gives the runtime the
/// Node's pod CIDRs when they changed. Runs until the task is dropped.
pub async fn run_status_loop(client: kube::Client, facts: NodeFacts, runtime: cri_client::Client, frequency: Duration) {
    let nodes: Api<Node> = Api::all(client);
    let mut last_sent: Option<(serde_json::Value, Instant)> = None;
    let mut pod_cidrs = pod_cidr::PodCidrFollower::default();
    let mut ticker = tokio::time::interval(frequency);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let current = match nodes.get(&facts.node_name).await {
            Ok(node) => node,
            Err(err) => {
                tracing::warn!(error = %err, "reading the node status");
                continue;
            }
        };
        // First, so that a network the runtime renders from them counts at once.
        pod_cidrs.follow(&runtime, &current).await;
        let ready = status::runtime_ready(&runtime).await;
        let new_status = facts.status(ready, current.status.as_ref());
        let comparable = status::without_heartbeats(&new_status);
        let due = match &last_sent {
            Some((previous, at)) => *previous != comparable || at.elapsed() >= STATUS_REPORT_INTERVAL,
            None => true,
        };
        if !due {
            continue;
        }
        let patch = serde_json::json!({ "status": new_status });
        match nodes
            .patch_status(&facts.node_name, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!("node status patched");
                last_sent = Some((comparable, Instant::now()));
            }
            Err(err) => tracing::warn!(error = %err, "patching the node status"),
        }
    }
}
