//! Registering the Node: create it, or take over the one that exists under this name.

use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{NodeError, NodeFacts};

/// Creates the Node with its labels and a first status; if it exists, patches its labels
/// and status instead. Returns the Node's UID (for the Lease's owner reference).
pub async fn register(
    client: &kube::Client,
    facts: &NodeFacts,
    ready: Result<(), String>,
) -> Result<String, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(facts.node_name.clone()),
            labels: Some(facts.labels()),
            annotations: Some([("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: None,
    };
    let created = match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => {
            tracing::info!(node = %facts.node_name, "node registered");
            created
        }
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let patch = serde_json::json!({ "metadata": { "labels": facts.labels() } });
            let existing = nodes
                .patch(&facts.node_name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .map_err(|source| NodeError::Api {
                    what: "updating the existing node",
                    source,
                })?;
            tracing::info!(node = %facts.node_name, "node already registered: adopted");
            existing
        }
        Err(source) => {
            return Err(NodeError::Api {
                what: "registering the node",
                source,
            });
        }
    };
    let status = facts.status(ready, created.status.as_ref());
    let patch = serde_json::json!({ "status": status });
    nodes
        .patch_status(&facts.node_name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .map_err(|source| NodeError::Api {
            what: "reporting the first node status",
            source,
        })?;
    Ok(created.metadata.uid.unwrap_or_default())
}
