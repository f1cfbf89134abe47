//! Mirror pods: the apiserver's read-only copies of static pods, so `kubectl get pods`
//! shows them. Same namespace and name, annotated with the static pod's hash.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};

use crate::pods::source::{CONFIG_HASH, CONFIG_MIRROR};

/// Makes sure the mirror pod of static pod `pod` exists with its current hash (replacing
/// an outdated one, or one being deleted), owned by the Node `(name, uid)` as
/// NodeRestriction demands. Returns whether it does.
pub async fn ensure(client: &kube::Client, pod: &Pod, node: (&str, &str)) -> bool {
    let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let hash = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONFIG_HASH))
        .cloned()
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    match pods.get_opt(&name).await {
        Ok(Some(existing)) => {
            let existing_hash = existing
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CONFIG_MIRROR))
                .cloned();
            if existing_hash.as_deref() == Some(hash.as_str()) && existing.metadata.deletion_timestamp.is_none() {
                return true;
            }
            if !delete_now(&pods, &name, existing.metadata.uid.as_deref()).await {
                return false;
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "reading the mirror pod");
            return false;
        }
    }
    let mut annotations = pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(CONFIG_MIRROR.into(), hash);
    let mirror = Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.0.to_owned(),
                uid: node.1.to_owned(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: pod.spec.clone(),
        status: None,
    };
    match pods.create(&PostParams::default(), &mirror).await {
        Ok(_) => {
            tracing::info!("mirror pod created");
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "creating the mirror pod");
            false
        }
    }
}

/// Deletes the mirror pod named as `pod` (the static pod, or the mirror pod itself), only
/// if its UID is still `uid` when given. Returns whether it is gone.
pub async fn delete(client: &kube::Client, pod: &Pod, uid: Option<&str>) -> bool {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    delete_now(&pods, name, uid).await
}

/// Deletes mirror pod `name` at once (no grace period: nothing runs for it), only if its
/// UID is still `uid` when given. Returns whether it is gone.
async fn delete_now(pods: &Api<Pod>, name: &str, uid: Option<&str>) -> bool {
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: uid.map(|uid| Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(name, &params).await {
        Ok(_) => {
            tracing::info!("mirror pod deleted");
            true
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => true,
        Err(err) => {
            tracing::warn!(error = %err, "deleting the mirror pod");
            false
        }
    }
}
