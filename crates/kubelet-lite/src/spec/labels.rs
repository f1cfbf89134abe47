//! The labels and annotations put on sandboxes and containers.
//!
//! The keys are the real kubelet's (`pkg/kubelet/types/labels.go` and
//! `pkg/kubelet/kuberuntime/labels.go`), so `crictl` users recognise them and a restarted
//! kubelet-lite can tell which pod and container a running sandbox or container belongs to.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// Label: the name of the pod a sandbox or container belongs to.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: the namespace of the pod a sandbox or container belongs to.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: the UID of the pod a sandbox or container belongs to.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: the name of the container in the pod spec.
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

/// Container annotation: how many times the container was restarted before this instance.
pub const CONTAINER_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Container annotation: [`container_hash`] of the spec the container was created from.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// Container annotation: the path of the termination message inside the container.
pub const CONTAINER_TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// Container annotation: the termination message policy (`File` or `FallbackToLogsOnError`).
pub const CONTAINER_TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
/// Container annotation: the pod's termination grace period in seconds.
pub const POD_TERMINATION_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Container annotation: the container's ports as JSON, as the kubelet records them.
pub const CONTAINER_PORTS: &str = "io.kubernetes.container.ports";

/// Sandbox annotation: the pod's kubernetes source, `api` or `file` (static pods).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";

/// The labels of a pod's sandbox: the pod's own labels plus name, namespace and UID.
pub fn sandbox_labels(pod: &Pod) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = pod
        .metadata
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(pod_identity(pod));
    labels
}

/// The labels of a container: the pod's name, namespace and UID, and the container's name.
pub fn container_labels(pod: &Pod, container: &Container) -> HashMap<String, String> {
    let mut labels = pod_identity(pod);
    labels.insert(CONTAINER_NAME.to_owned(), container.name.clone());
    labels
}

/// The annotations of a container: restart count, spec hash, termination message path
/// and policy, grace period.
pub fn container_annotations(pod: &Pod, container: &Container, restart_count: u32) -> HashMap<String, String> {
    let mut annotations = HashMap::from([
        (CONTAINER_RESTART_COUNT.to_owned(), restart_count.to_string()),
        (CONTAINER_HASH.to_owned(), container_hash(container)),
        (
            CONTAINER_TERMINATION_MESSAGE_PATH.to_owned(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".to_owned()),
        ),
        (
            CONTAINER_TERMINATION_MESSAGE_POLICY.to_owned(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".to_owned()),
        ),
    ]);
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    annotations.insert(POD_TERMINATION_GRACE_PERIOD.to_owned(), grace.to_string());
    if let Some(ports) = &container.ports
        && let Ok(json) = serde_json::to_string(ports)
    {
        annotations.insert(CONTAINER_PORTS.to_owned(), json);
    }
    annotations
}

fn pod_identity(pod: &Pod) -> HashMap<String, String> {
    let meta = &pod.metadata;
    HashMap::from([
        (POD_NAME.to_owned(), meta.name.clone().unwrap_or_default()),
        (POD_NAMESPACE.to_owned(), meta.namespace.clone().unwrap_or_default()),
        (POD_UID.to_owned(), meta.uid.clone().unwrap_or_default()),
    ])
}

/// A hash of the container's spec, stable across restarts of kubelet-lite and across
/// builds: FNV-1a (64 bits) of the container's JSON, in hex.
///
/// The JSON of a k8s-openapi [`Container`] has a fixed field order and sorted maps, so
/// equal specs give equal hashes; any change of the spec changes the hash, which is how
/// a restarted kubelet-lite tells a container it may adopt from one it must recreate.
pub fn container_hash(container: &Container) -> String {
    // Serializing a Container cannot fail (no non-string map keys); fall back to the name
    // rather than panic if it ever did.
    let json = serde_json::to_vec(container).unwrap_or_else(|_| container.name.clone().into_bytes());
    format!("{:016x}", fnv1a64(&json))
}

/// FNV-1a, 64 bits: small, fast and defined by its constants, so never changes between
/// builds (unlike `std`'s `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.to_owned(),
            image: Some(image.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn container_hash_is_stable_and_known() {
        // The value is pinned: a change here means running containers would be seen as
        // changed after an upgrade of kubelet-lite.
        let c = container("web", "busybox");
        assert_eq!(container_hash(&c), container_hash(&c.clone()));
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn container_hash_changes_with_the_spec() {
        assert_ne!(
            container_hash(&container("web", "busybox:1")),
            container_hash(&container("web", "busybox:2"))
        );
    }

    #[test]
    fn labels_carry_pod_and_container_identity() {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                labels: Some([("app".to_owned(), "x".to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let sandbox = sandbox_labels(&pod);
        assert_eq!(sandbox[POD_NAME], "p");
        assert_eq!(sandbox[POD_NAMESPACE], "ns");
        assert_eq!(sandbox[POD_UID], "u1");
        assert_eq!(sandbox["app"], "x");
        let c = container("web", "busybox");
        let labels = container_labels(&pod, &c);
        assert_eq!(labels[CONTAINER_NAME], "web");
        assert!(!labels.contains_key("app"));
        let annotations = container_annotations(&pod, &c, 3);
        assert_eq!(annotations[CONTAINER_RESTART_COUNT], "3");
        assert_eq!(annotations[CONTAINER_HASH], container_hash(&c));
        assert_eq!(annotations[CONTAINER_TERMINATION_MESSAGE_PATH], "/dev/termination-log");
        assert_eq!(annotations[POD_TERMINATION_GRACE_PERIOD], "30");
    }
}
