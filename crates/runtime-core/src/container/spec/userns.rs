//! User namespaces: the CRI `userns_options` (Kubernetes `hostUsers: false`).
//!
//! The kubelet sends the same options in the pod's and in each container's
//! `NamespaceOption`; the container's win. Mode `NODE`, or no options at all, is the
//! host's user namespace (what every kubelet without user-namespace support expects),
//! which is all this runtime offers: mode `POD` is refused with the reason, and so are
//! `CONTAINER` and `TARGET`, as the CRI allows.
//!
//! Why `POD` is refused: the kernel and runc 1.1.5 can run a container in a new user
//! namespace here, but this runtime pins a pod's network and IPC namespaces in the host's
//! user namespace, and a user namespace that does not own them breaks the container:
//! `sysfs` and `mqueue` cannot be mounted (a read-only bind of the host's `/sys` works
//! around the first), and `runc exec` joins the user namespace before the others and is
//! then refused `setns` into them, so ExecSync and `kubectl exec` fail. Doing it right
//! means creating the pod's user namespace with its mappings when the pod's namespaces are
//! pinned (`unshare --user --map-users --map-groups` owning the network, IPC and UTS
//! namespaces), recording it with the sandbox, and having containers join it by path with
//! the same mappings, as containerd 2 does.

use cri_api::v1::{ContainerConfig, NamespaceMode as CriMode, NamespaceOption, PodSandboxConfig};

use super::SpecError;

/// Refuses a user namespace other than the host's (see the module doc).
pub(super) fn check_supported(config: &ContainerConfig, sandbox: &PodSandboxConfig) -> Result<(), SpecError> {
    let container = config
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref());
    let pod = sandbox
        .linux
        .as_ref()
        .and_then(|linux| linux.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref());
    let Some(options) = [container, pod]
        .into_iter()
        .flatten()
        .find_map(|options: &NamespaceOption| options.userns_options.as_ref())
    else {
        return Ok(());
    };
    let refuse = |reason: String| Err(SpecError::UserNamespace(reason));
    match CriMode::try_from(options.mode) {
        Ok(CriMode::Node) => Ok(()),
        Ok(CriMode::Pod) => refuse(
            "mode POD is not supported: this runtime pins the pod's network and IPC namespaces in the host's user \
             namespace, which runc 1.1.5 cannot exec into from a user namespace of the pod's"
                .to_string(),
        ),
        Ok(mode) => refuse(format!("mode {} is not supported", mode.as_str_name())),
        Err(_) => refuse(format!("unknown mode {}", options.mode)),
    }
}
