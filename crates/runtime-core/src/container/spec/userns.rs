//! User namespaces: the CRI `userns_options` (Kubernetes `hostUsers: false`).
//!
//! The pod decides: RunPodSandbox gives a pod whose options say mode POD a user namespace
//! of its own with the given ranges, owning its network, IPC and UTS namespaces
//! ([`crate::sandbox::user_namespace`]), and every container of the pod joins it
//! ([`super::Namespaces::user`]) with the same ranges in its spec. The kubelet repeats the
//! pod's options in each container's `NamespaceOption`; a container asking for anything
//! else is refused. Mode NODE, or no options at all, is the host's user namespace.

use cri_api::v1::{ContainerConfig, PodSandboxConfig};

use super::SpecError;
use crate::oci::spec::LinuxIdMapping;
use crate::sandbox::user_namespace::{IdMapping, IdMappings};

/// The ranges of the pod's user namespace the container joins (`None`: the host's), after
/// checking that the container's own options agree with the pod's.
pub(super) fn mappings(config: &ContainerConfig, sandbox: &PodSandboxConfig) -> Result<Option<IdMappings>, SpecError> {
    let pod = IdMappings::of_pod(sandbox).map_err(SpecError::UserNamespace)?;
    if let Some(options) = config.userns_options() {
        let own = IdMappings::from_cri(options).map_err(SpecError::UserNamespace)?;
        if own != pod {
            return Err(SpecError::UserNamespace(
                "the container's user namespace options differ from its pod's: containers share the pod's".into(),
            ));
        }
    }
    Ok(pod)
}

/// The OCI form of a list of ranges.
pub(super) fn oci(mappings: &[IdMapping]) -> Vec<LinuxIdMapping> {
    mappings
        .iter()
        .map(|m| LinuxIdMapping {
            container_id: m.container_id,
            host_id: m.host_id,
            size: m.size,
        })
        .collect()
}
