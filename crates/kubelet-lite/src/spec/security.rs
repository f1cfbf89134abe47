//! Security contexts: the pod's and the container's merged (the container's fields win),
//! then turned into the CRI sandbox and container security contexts, as the kubelet's
//! `kuberuntime/security_context.go` does.

use cri_api::v1::security_profile::ProfileType;
use cri_api::v1::{
    Capability, Int64Value, LinuxContainerSecurityContext, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    SeLinuxOption, SecurityProfile,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SELinuxOptions, SeccompProfile};

use super::{NodeContext, SpecError};

/// The paths masked in containers unless `procMount: Unmasked`: the kubelet's own list
/// (`securitycontext.defaultMaskedPaths`), the same defaults the runtimes use.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];
/// The paths made read-only in containers unless `procMount: Unmasked`: the kubelet's
/// own list (`securitycontext.defaultReadonlyPaths`).
pub const DEFAULT_READONLY_PATHS: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];
/// Legacy pod-wide seccomp annotation.
pub const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
/// Legacy per-container seccomp annotation prefix (followed by the container name).
pub const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";
/// AppArmor annotation prefix (followed by the container name).
pub const APPARMOR_CONTAINER_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The namespaces of the pod: network/IPC on the node or the pod's own, PID on the node,
/// shared by the pod (`shareProcessNamespace`) or per container, and a user namespace of
/// its own for `hostUsers: false` ([`super::user_namespace`]).
pub fn namespace_options(pod: &Pod, node: &NodeContext) -> Result<NamespaceOption, SpecError> {
    let spec = pod.spec.as_ref();
    let flag = |f: fn(&k8s_openapi::api::core::v1::PodSpec) -> Option<bool>| spec.and_then(f).unwrap_or(false);
    let mode = |on_node: bool, otherwise: NamespaceMode| if on_node { NamespaceMode::Node } else { otherwise } as i32;
    let pid_default = if flag(|s| s.share_process_namespace) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    Ok(NamespaceOption {
        network: mode(flag(|s| s.host_network), NamespaceMode::Pod),
        pid: mode(flag(|s| s.host_pid), pid_default),
        ipc: mode(flag(|s| s.host_ipc), NamespaceMode::Pod),
        userns_options: super::user_namespace::user_namespace(pod, node)?,
        ..Default::default()
    })
}

fn pod_security(pod: &Pod) -> Option<&PodSecurityContext> {
    pod.spec.as_ref().and_then(|s| s.security_context.as_ref())
}

fn selinux(options: Option<&SELinuxOptions>) -> Option<SeLinuxOption> {
    options.map(|o| SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    })
}

/// Supplemental groups: the pod's, then its fsGroup.
fn supplemental_groups(pod: &Pod) -> Vec<i64> {
    let Some(sc) = pod_security(pod) else {
        return Vec::new();
    };
    let mut groups = sc.supplemental_groups.clone().unwrap_or_default();
    if let Some(fs_group) = sc.fs_group
        && !groups.contains(&fs_group)
    {
        groups.push(fs_group);
    }
    groups
}

/// The CRI security context of the pod's sandbox.
// The deprecated string form of the seccomp profile is still set, for runtimes that
// predate the `seccomp` field.
#[allow(deprecated)]
pub fn sandbox_security_context(pod: &Pod, node: &NodeContext) -> Result<LinuxSandboxSecurityContext, SpecError> {
    let sc = pod_security(pod);
    let privileged = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .any(|c| c.security_context.as_ref().and_then(|s| s.privileged).unwrap_or(false));
    let seccomp = seccomp_profile(
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        annotation(pod, SECCOMP_POD_ANNOTATION),
        node,
    );
    Ok(LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(pod, node)?),
        selinux_options: selinux(sc.and_then(|s| s.se_linux_options.as_ref())),
        run_as_user: sc.and_then(|s| s.run_as_user).map(|value| Int64Value { value }),
        run_as_group: sc.and_then(|s| s.run_as_group).map(|value| Int64Value { value }),
        supplemental_groups: supplemental_groups(pod),
        privileged,
        seccomp_profile_path: legacy_seccomp_path(&seccomp),
        seccomp: Some(seccomp),
        ..Default::default()
    })
}

fn annotation<'p>(pod: &'p Pod, key: &str) -> Option<&'p str> {
    pod.metadata.annotations.as_ref()?.get(key).map(String::as_str)
}

/// A seccomp profile from the `seccompProfile` field, else the legacy annotation, else
/// unconfined (the kubelet's default without the SeccompDefault feature).
fn seccomp_profile(field: Option<&SeccompProfile>, annotation: Option<&str>, node: &NodeContext) -> SecurityProfile {
    let localhost = |name: &str| SecurityProfile {
        profile_type: ProfileType::Localhost as i32,
        localhost_ref: node.root_dir.join("seccomp").join(name).to_string_lossy().into_owned(),
    };
    let of = |t: ProfileType| SecurityProfile {
        profile_type: t as i32,
        localhost_ref: String::new(),
    };
    if let Some(field) = field {
        return match field.type_.as_str() {
            "RuntimeDefault" => of(ProfileType::RuntimeDefault),
            "Localhost" => localhost(field.localhost_profile.as_deref().unwrap_or("")),
            _ => of(ProfileType::Unconfined),
        };
    }
    match annotation {
        Some("runtime/default" | "docker/default") => of(ProfileType::RuntimeDefault),
        Some(value) if value.starts_with("localhost/") => localhost(&value["localhost/".len()..]),
        _ => of(ProfileType::Unconfined),
    }
}

/// The deprecated string form of a seccomp profile, for runtimes that read only it.
fn legacy_seccomp_path(profile: &SecurityProfile) -> String {
    match ProfileType::try_from(profile.profile_type) {
        Ok(ProfileType::RuntimeDefault) => "runtime/default".to_owned(),
        Ok(ProfileType::Localhost) => format!("localhost/{}", profile.localhost_ref),
        _ => "unconfined".to_owned(),
    }
}

/// The user a container runs as per its spec (container over pod); `None` means the
/// image's user.
pub fn effective_run_as_user(pod: &Pod, container: &Container) -> Option<i64> {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security(pod).and_then(|s| s.run_as_user))
}

fn effective_run_as_non_root(pod: &Pod, container: &Container) -> bool {
    container
        .security_context
        .as_ref()
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_security(pod).and_then(|s| s.run_as_non_root))
        .unwrap_or(false)
}

/// The user an image runs as, from the runtime's ImageStatus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageUser {
    /// A numeric user (`uid` or `uid:gid` in the image config).
    Uid(i64),
    /// A user by name, which cannot be checked without the image's `/etc/passwd`.
    Name(String),
}

impl ImageUser {
    /// The user of an image as ImageStatus reports it: `uid` when numeric, `username`
    /// otherwise; an image that names no user runs as root, as the kubelet assumes.
    pub fn from_status(image: &cri_api::v1::Image) -> ImageUser {
        match (&image.uid, image.username.as_str()) {
            (Some(uid), _) => ImageUser::Uid(uid.value),
            (None, "") => ImageUser::Uid(0),
            (None, name) => ImageUser::Name(name.to_owned()),
        }
    }
}

/// Checks `runAsNonRoot`, as the kubelet's `verifyRunAsNonRoot` does before it creates a
/// container: with it set, the spec's `runAsUser` (container, then pod) must not be 0,
/// and without a `runAsUser` the image's user must be numeric and not 0.
pub fn verify_run_as_non_root(pod: &Pod, container: &Container, image_user: &ImageUser) -> Result<(), SpecError> {
    if !effective_run_as_non_root(pod, container) {
        return Ok(());
    }
    match (effective_run_as_user(pod, container), image_user) {
        (Some(0), _) => Err(SpecError::RunAsNonRoot(format!(
            "runAsUser 0 breaks the non-root policy (container {})",
            container.name
        ))),
        (Some(_), _) => Ok(()),
        (None, ImageUser::Uid(0)) => Err(SpecError::RunAsNonRoot(format!(
            "image will run as root (container {})",
            container.name
        ))),
        (None, ImageUser::Uid(_)) => Ok(()),
        (None, ImageUser::Name(name)) => Err(SpecError::RunAsNonRoot(format!(
            "image has non-numeric user ({name}), cannot verify user is non-root (container {})",
            container.name
        ))),
    }
}

/// The CRI security context of a container: the container's fields over the pod's.
// The deprecated string forms of the seccomp and AppArmor profiles are still set, for
// runtimes that predate the `seccomp` and `apparmor` fields.
#[allow(deprecated)]
pub fn container_security_context(
    pod: &Pod,
    container: &Container,
    node: &NodeContext,
) -> Result<LinuxContainerSecurityContext, SpecError> {
    let pod_sc = pod_security(pod);
    let sc = container.security_context.as_ref();
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|s| s.run_as_group));
    let capabilities = sc.and_then(|s| s.capabilities.as_ref()).map(|c| Capability {
        add_capabilities: c.add.clone().unwrap_or_default(),
        drop_capabilities: c.drop.clone().unwrap_or_default(),
        ..Default::default()
    });
    let unmasked = sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
    let paths = |list: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            list.iter().map(|p| (*p).to_owned()).collect()
        }
    };
    let seccomp_annotation = annotation(pod, &format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", container.name))
        .or_else(|| annotation(pod, SECCOMP_POD_ANNOTATION));
    let seccomp = seccomp_profile(
        sc.and_then(|s| s.seccomp_profile.as_ref())
            .or_else(|| pod_sc.and_then(|s| s.seccomp_profile.as_ref())),
        seccomp_annotation,
        node,
    );
    let apparmor = annotation(
        pod,
        &format!("{APPARMOR_CONTAINER_ANNOTATION_PREFIX}{}", container.name),
    );
    Ok(LinuxContainerSecurityContext {
        capabilities,
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        namespace_options: Some(namespace_options(pod, node)?),
        selinux_options: selinux(
            sc.and_then(|s| s.se_linux_options.as_ref())
                .or_else(|| pod_sc.and_then(|s| s.se_linux_options.as_ref())),
        ),
        run_as_user: effective_run_as_user(pod, container).map(|value| Int64Value { value }),
        run_as_group: run_as_group.map(|value| Int64Value { value }),
        readonly_rootfs: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        supplemental_groups: supplemental_groups(pod),
        no_new_privs: sc
            .and_then(|s| s.allow_privilege_escalation)
            .is_some_and(|allow| !allow),
        masked_paths: paths(DEFAULT_MASKED_PATHS),
        readonly_paths: paths(DEFAULT_READONLY_PATHS),
        seccomp_profile_path: legacy_seccomp_path(&seccomp),
        seccomp: Some(seccomp),
        apparmor: apparmor.map(apparmor_profile),
        apparmor_profile: apparmor.unwrap_or("").to_owned(),
        ..Default::default()
    })
}

fn apparmor_profile(value: &str) -> SecurityProfile {
    let (profile_type, localhost_ref) = match value {
        "runtime/default" => (ProfileType::RuntimeDefault, String::new()),
        v if v.starts_with("localhost/") => (ProfileType::Localhost, v["localhost/".len()..].to_owned()),
        _ => (ProfileType::Unconfined, String::new()),
    };
    SecurityProfile {
        profile_type: profile_type as i32,
        localhost_ref,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            root_dir: "/var/lib/kl".into(),
            ..Default::default()
        }
    }

    #[test]
    fn namespaces() {
        let cases = [
            (
                "defaults",
                serde_json::json!({}),
                (NamespaceMode::Pod, NamespaceMode::Container, NamespaceMode::Pod),
            ),
            (
                "host namespaces",
                serde_json::json!({"hostNetwork": true, "hostPID": true, "hostIPC": true}),
                (NamespaceMode::Node, NamespaceMode::Node, NamespaceMode::Node),
            ),
            (
                "shared process namespace",
                serde_json::json!({"shareProcessNamespace": true}),
                (NamespaceMode::Pod, NamespaceMode::Pod, NamespaceMode::Pod),
            ),
        ];
        for (desc, mut spec, (net, pid, ipc)) in cases {
            spec["containers"] = serde_json::json!([{"name": "c"}]);
            let ns = namespace_options(&pod(serde_json::json!({"metadata": {}, "spec": spec})), &node()).unwrap();
            assert_eq!(
                (ns.network, ns.pid, ns.ipc),
                (net as i32, pid as i32, ipc as i32),
                "{desc}"
            );
        }
    }

    #[test]
    fn container_over_pod() {
        let p = pod(serde_json::json!({
            "metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "runtime/default"}},
            "spec": {
                "securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "supplementalGroups": [5], "fsGroup": 7,
                                    "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "c", "securityContext": {
                    "runAsUser": 1001, "privileged": true, "readOnlyRootFilesystem": true,
                    "allowPrivilegeEscalation": false, "procMount": "Unmasked",
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "prof.json"}
                }}]
            }
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sc = container_security_context(&p, c, &node()).unwrap();
        assert_eq!(
            sc.run_as_user,
            Some(Int64Value { value: 1001 }),
            "container's user wins"
        );
        assert_eq!(sc.run_as_group, Some(Int64Value { value: 2000 }), "pod's group applies");
        assert_eq!(sc.supplemental_groups, [5, 7], "fsGroup joins the supplemental groups");
        assert!(sc.privileged && sc.readonly_rootfs && sc.no_new_privs);
        assert!(
            sc.masked_paths.is_empty() && sc.readonly_paths.is_empty(),
            "Unmasked proc mount"
        );
        let caps = sc.capabilities.unwrap();
        assert_eq!(
            (caps.add_capabilities, caps.drop_capabilities),
            (vec!["NET_ADMIN".into()], vec!["ALL".into()])
        );
        let seccomp = sc.seccomp.unwrap();
        assert_eq!(seccomp.profile_type, ProfileType::Localhost as i32);
        assert_eq!(seccomp.localhost_ref, "/var/lib/kl/seccomp/prof.json");
        assert_eq!(sc.apparmor.unwrap().profile_type, ProfileType::RuntimeDefault as i32);

        let sandbox = sandbox_security_context(&p, &node()).unwrap();
        assert!(
            sandbox.privileged,
            "a privileged container makes the sandbox privileged"
        );
        assert_eq!(
            sandbox.seccomp.unwrap().profile_type,
            ProfileType::RuntimeDefault as i32
        );
        assert_eq!(sandbox.run_as_user, Some(Int64Value { value: 1000 }));
    }

    #[test]
    #[allow(deprecated)]
    fn defaults_and_legacy_annotations() {
        let p = pod(serde_json::json!({
            "metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}},
            "spec": {"containers": [{"name": "c"}]}
        }));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let sc = container_security_context(&p, c, &node()).unwrap();
        assert_eq!(sc.seccomp.unwrap().profile_type, ProfileType::RuntimeDefault as i32);
        assert_eq!(sc.seccomp_profile_path, "runtime/default");
        assert!(
            !sc.no_new_privs,
            "unset allowPrivilegeEscalation leaves no_new_privs off"
        );
        assert_eq!(sc.masked_paths.len(), DEFAULT_MASKED_PATHS.len());
        assert!(sc.run_as_user.is_none());
        let plain = pod(serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "c"}]}}));
        let sc = container_security_context(&plain, c, &node()).unwrap();
        assert_eq!(sc.seccomp.unwrap().profile_type, ProfileType::Unconfined as i32);
    }

    #[test]
    fn run_as_non_root() {
        let root = ImageUser::Uid(0);
        let cases = [
            ("not required", serde_json::json!({}), root.clone(), true),
            (
                "root user in spec",
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 0}),
                ImageUser::Uid(1000),
                false,
            ),
            (
                "non-root user in spec over a root image",
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 10}),
                root.clone(),
                true,
            ),
            (
                "image runs as root",
                serde_json::json!({"runAsNonRoot": true}),
                root.clone(),
                false,
            ),
            (
                "image runs as a user",
                serde_json::json!({"runAsNonRoot": true}),
                ImageUser::Uid(65534),
                true,
            ),
            (
                "image user by name",
                serde_json::json!({"runAsNonRoot": true}),
                ImageUser::Name("nobody".into()),
                false,
            ),
            (
                "image user by name with a numeric runAsUser",
                serde_json::json!({"runAsNonRoot": true, "runAsUser": 1000}),
                ImageUser::Name("nobody".into()),
                true,
            ),
        ];
        for (desc, sc, image_user, ok) in cases {
            let p = pod(
                serde_json::json!({"metadata": {}, "spec": {"containers": [{"name": "c", "securityContext": sc}]}}),
            );
            let c = &p.spec.as_ref().unwrap().containers[0];
            let result = verify_run_as_non_root(&p, c, &image_user);
            assert_eq!(result.is_ok(), ok, "{desc}: {result:?}");
        }
    }

    #[test]
    fn the_image_user_comes_from_image_status() {
        let image = |uid: Option<i64>, username: &str| cri_api::v1::Image {
            uid: uid.map(|value| cri_api::v1::Int64Value { value }),
            username: username.into(),
            ..Default::default()
        };
        assert_eq!(ImageUser::from_status(&image(Some(65532), "")), ImageUser::Uid(65532));
        assert_eq!(ImageUser::from_status(&image(None, "")), ImageUser::Uid(0));
        assert_eq!(
            ImageUser::from_status(&image(None, "nonroot")),
            ImageUser::Name("nonroot".into())
        );
    }
}
