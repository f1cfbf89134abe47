//! The pod's identity, which the sandbox, its containers and its user namespace all name.

use k8s_openapi::api::core::v1::Pod;

use super::SpecError;

/// The pod's name, namespace and UID, which every pod has.
pub(crate) fn pod_identity(pod: &Pod) -> Result<(&str, &str, &str), SpecError> {
    let meta = &pod.metadata;
    let name = meta.name.as_deref().ok_or(SpecError::MissingField("metadata.name"))?;
    let uid = meta.uid.as_deref().ok_or(SpecError::MissingField("metadata.uid"))?;
    Ok((name, meta.namespace.as_deref().unwrap_or("default"), uid))
}
