//! The node's heartbeat: a `coordination.k8s.io/v1` Lease named after the node in
//! `kube-node-lease`, renewed every [`RENEW_INTERVAL`].

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often the Lease is renewed.
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// The Lease's duration, the kubelet's default.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Renews the Lease of `node_name` (owned by the Node `node_uid`) every
/// [`RENEW_INTERVAL`], creating it when missing. Runs until the task is dropped.
pub async fn run(client: kube::Client, node_name: String, node_uid: String) {
    let leases: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let mut ticker = tokio::time::interval(RENEW_INTERVAL);
    loop {
        ticker.tick().await;
        if let Err(err) = renew(&leases, &node_name, &node_uid).await {
            tracing::warn!(error = %err, "renewing the node lease");
        }
    }
}

/// One renewal: patch `renewTime`, or create the Lease if it does not exist.
async fn renew(leases: &Api<Lease>, node_name: &str, node_uid: &str) -> Result<(), kube::Error> {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let spec = LeaseSpec {
        holder_identity: Some(node_name.to_owned()),
        lease_duration_seconds: Some(LEASE_DURATION_SECONDS),
        renew_time: Some(now),
        ..LeaseSpec::default()
    };
    let patch = serde_json::json!({ "spec": spec });
    match leases
        .patch(node_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node_name.to_owned()),
                    namespace: Some(LEASE_NAMESPACE.to_owned()),
                    owner_references: (!node_uid.is_empty()).then(|| {
                        vec![OwnerReference {
                            api_version: "v1".into(),
                            kind: "Node".into(),
                            name: node_name.to_owned(),
                            uid: node_uid.to_owned(),
                            ..OwnerReference::default()
                        }]
                    }),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            leases.create(&PostParams::default(), &lease).await.map(drop)
        }
        Err(err) => Err(err),
    }
}
