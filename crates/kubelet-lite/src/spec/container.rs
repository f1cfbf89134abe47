//! `container_config`: the CRI ContainerConfig of one container of a pod (the kubelet's
//! `kuberuntime_container.go` `generateContainerConfig`): image, command and args with
//! `$(VAR)` expansion, env, mounts (volumes, /etc/hosts, the termination log), log path,
//! resources, security context, labels and annotations.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use cri_api::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, KeyValue, LinuxContainerConfig, Mount, MountPropagation,
};
use k8s_openapi::api::core::v1::{Container, HostAlias, Pod};

use super::downward::Addresses;
use super::env::{Env, container_env};
use super::identity::pod_identity;
use super::resources::{container_resources, node_memory_capacity};
use super::sandbox::hostname_and_domain;
use super::security::{ImageUser, container_security_context, verify_run_as_non_root};
use super::volumes::{check_relative_path, mount_sub_path};
use super::{ApiObjects, NodeContext, SpecError, Volumes, labels};

/// Where containers find the hosts file, and where the node keeps its own.
const ETC_HOSTS: &str = "/etc/hosts";
/// The default termination message path.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// What a container's config needs beyond the pod: the sandbox's addresses, the fetched
/// objects and prepared volumes, the restart count and the pulled image.
#[derive(Debug, Clone, Copy)]
pub struct ContainerContext<'a> {
    /// The pod's primary IP (`status.podIP`), from the sandbox.
    pub pod_ip: &'a str,
    /// All the pod's IPs (`status.podIPs`).
    pub pod_ips: &'a [String],
    /// The config maps and secrets from [`super::fetch_objects`].
    pub objects: &'a ApiObjects,
    /// The volumes from [`super::prepare_volumes`].
    pub volumes: &'a Volumes,
    /// How many times this container restarted before (names the log file).
    pub restart_count: u32,
    /// The image to run: the reference or ID the runtime returned from PullImage.
    pub image: &'a str,
    /// The user the image runs as (ImageStatus), for `runAsNonRoot`.
    pub image_user: &'a ImageUser,
}

/// The CRI config of `container` (regular or init) of `pod`.
///
/// Writes the pod's /etc/hosts and the container's termination-log file under the pod's
/// directory. `runAsNonRoot` is checked first, against the spec's `runAsUser` and the
/// image's user, as the kubelet does.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    node: &NodeContext,
    ctx: &ContainerContext<'_>,
) -> Result<ContainerConfig, SpecError> {
    verify_run_as_non_root(pod, container, ctx.image_user)?;
    let (_, _, uid) = pod_identity(pod)?;
    let addresses = Addresses {
        pod_ip: ctx.pod_ip,
        pod_ips: ctx.pod_ips,
        host_ip: &node.host_ip,
    };
    let env = container_env(pod, container, ctx.objects, addresses)?;
    let command = expand_all(&env, container.command.as_deref());
    let args = expand_all(&env, container.args.as_deref());
    let mounts = container_mounts(pod, container, node, uid, ctx, &env)?;
    let linux = LinuxContainerConfig {
        resources: Some(container_resources(pod, container, node_memory_capacity())?),
        security_context: Some(container_security_context(pod, container, node)?),
    };
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: container.name.clone(),
            attempt: ctx.restart_count,
        }),
        image: Some(ImageSpec {
            image: ctx.image.to_owned(),
            user_specified_image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: env
            .into_pairs()
            .into_iter()
            .map(|(key, value)| KeyValue { key, value })
            .collect(),
        mounts,
        labels: labels::container_labels(pod, container),
        annotations: labels::container_annotations(pod, container, ctx.restart_count),
        log_path: container_log_path(&container.name, ctx.restart_count),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        linux: Some(linux),
        ..Default::default()
    })
}

/// `<container>/<restart count>.log`, relative to the sandbox's log directory.
pub fn container_log_path(container: &str, restart_count: u32) -> String {
    format!("{container}/{restart_count}.log")
}

fn expand_all(env: &Env, list: Option<&[String]>) -> Vec<String> {
    list.unwrap_or(&[]).iter().map(|s| env.expand(s)).collect()
}

/// The container's mounts: its volumeMounts, then /etc/hosts (pods on their own network)
/// and the termination log, unless the container mounts something at those paths.
fn container_mounts(
    pod: &Pod,
    container: &Container,
    node: &NodeContext,
    uid: &str,
    ctx: &ContainerContext<'_>,
    env: &Env,
) -> Result<Vec<Mount>, SpecError> {
    let privileged = container
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mut mounts = Vec::new();
    for (index, vm) in container.volume_mounts.iter().flatten().enumerate() {
        let volume = ctx.volumes.get(&vm.name).ok_or_else(|| SpecError::UnknownVolume {
            volume: vm.name.clone(),
            mount: vm.mount_path.clone(),
        })?;
        let sub_path = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => Some(p.clone()),
            (_, Some(expr)) if !expr.is_empty() => Some(env.expand(expr)),
            _ => None,
        };
        let host_path = match sub_path {
            Some(sub) => {
                check_relative_path(&sub)?;
                let target = node.sub_path_mount(uid, &vm.name, &container.name, index);
                mount_sub_path(&vm.name, &volume.host_path, &sub, volume.read_only, &target)?
            }
            None => volume.host_path.clone(),
        };
        let propagation = match vm.mount_propagation.as_deref() {
            None | Some("None") => MountPropagation::PropagationPrivate,
            Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") if privileged => MountPropagation::PropagationBidirectional,
            Some("Bidirectional") => {
                return Err(SpecError::invalid(
                    format!("volumeMounts[{}].mountPropagation", vm.name),
                    "Bidirectional needs a privileged container",
                ));
            }
            Some(other) => {
                return Err(SpecError::invalid(
                    format!("volumeMounts[{}].mountPropagation", vm.name),
                    format!("unknown mode {other:?}"),
                ));
            }
        };
        mounts.push(Mount {
            container_path: vm.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly: vm.read_only.unwrap_or(false) || volume.read_only,
            propagation: propagation as i32,
            ..Default::default()
        });
    }
    let mounted = |mounts: &[Mount], path: &str| mounts.iter().any(|m| Path::new(&m.container_path) == Path::new(path));
    // As the kubelet's makeMounts: once the pod's IPs are known (the sandbox's, or the
    // node's for a pod on the host's network), a container that mounts nothing at
    // /etc/hosts gets the kubelet's hosts file.
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
    let ips_known = if host_network {
        !node.host_ip.is_empty()
    } else {
        !ctx.pod_ip.is_empty()
    };
    if ips_known && !mounted(&mounts, ETC_HOSTS) {
        let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_deref()).unwrap_or(&[]);
        let content = if host_network {
            let node_hosts = std::fs::read(ETC_HOSTS).map_err(SpecError::io("read", ETC_HOSTS))?;
            host_network_hosts_file_content(&node_hosts, aliases)
        } else {
            let (hostname, domain) = hostname_and_domain(pod, node);
            hosts_file_content(ctx.pod_ips, ctx.pod_ip, &hostname, domain.as_deref(), aliases).into_bytes()
        };
        let path = node.etc_hosts_path(uid);
        write_if_changed(&path, &content)?;
        mounts.push(Mount {
            container_path: ETC_HOSTS.to_owned(),
            host_path: path.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    let message_path = container
        .termination_message_path
        .as_deref()
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
    if !message_path.is_empty() && !mounted(&mounts, message_path) {
        let path = node.container_file(uid, &container.name, &ctx.restart_count.to_string());
        create_termination_log(&path)?;
        mounts.push(Mount {
            container_path: message_path.to_owned(),
            host_path: path.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    Ok(mounts)
}

/// The first line of the hosts file of a pod on the host's network: a copy of the node's
/// (the kubelet's `managedHostsHeaderWithHostNetwork`). It is not the header of
/// [`HOSTS_HEADER`]: what reads it can tell the two apart.
const HOST_NETWORK_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file (host network).\n";

/// The start of the kubelet-managed hosts file: the comment, then the loopback and IPv6
/// lines every pod's `/etc/hosts` has (the kubelet's `managedHostsHeader`, then the first
/// lines of its `managedHostsFileContent`).
const HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n\
     127.0.0.1\tlocalhost\n\
     ::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\n\
     fe00::0\tip6-mcastprefix\n\
     fe00::1\tip6-allnodes\n\
     fe00::2\tip6-allrouters\n";

/// The kubelet-managed hosts file: loopback entries, the pod's IPs with its hostname (and
/// FQDN with a subdomain), then `hostAliases`.
pub fn hosts_file_content(
    pod_ips: &[String],
    pod_ip: &str,
    hostname: &str,
    domain: Option<&str>,
    aliases: &[HostAlias],
) -> String {
    let mut out = String::from(HOSTS_HEADER);
    let ips: Vec<&str> = if pod_ips.is_empty() {
        vec![pod_ip]
    } else {
        pod_ips.iter().map(String::as_str).collect()
    };
    for ip in ips.into_iter().filter(|ip| !ip.is_empty()) {
        match domain {
            Some(domain) => out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out.push_str(&host_alias_entries(aliases));
    out
}

/// The hosts file of a pod on the host's network (the kubelet's `nodeHostsFileContent`):
/// its header, the node's hosts file as it is, then `hostAliases`.
fn host_network_hosts_file_content(node_hosts: &[u8], aliases: &[HostAlias]) -> Vec<u8> {
    let mut out = HOST_NETWORK_HOSTS_HEADER.as_bytes().to_vec();
    out.extend_from_slice(node_hosts);
    out.extend_from_slice(host_alias_entries(aliases).as_bytes());
    out
}

/// The lines of `hostAliases`, one per IP, after a blank line and a comment; nothing
/// without any.
fn host_alias_entries(aliases: &[HostAlias]) -> String {
    let mut out = String::new();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or(&[]).join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

/// Writes `content` to `path` (atomically, through a temporary file) unless it is
/// already there.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), SpecError> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(SpecError::io("create directory", parent))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).map_err(SpecError::io("write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(SpecError::io("rename into place", path))
}

/// An empty, world-writable termination-log file (kept if it exists).
fn create_termination_log(path: &Path) -> Result<(), SpecError> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(SpecError::io("create directory", parent))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o666)
        .open(path)
        .map_err(SpecError::io("create termination log", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(SpecError::io("set mode of", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::volumes::VolumeEntry;
    use std::path::PathBuf;

    struct Fixture {
        _tmp: tempfile::TempDir,
        node: NodeContext,
        objects: ApiObjects,
        volumes: Volumes,
        ips: Vec<String>,
    }

    impl Drop for Fixture {
        // Sub paths are bind mounts: taken down before the temporary directory goes.
        fn drop(&mut self) {
            let _ = crate::spec::volumes::remove_pod_dir(&self.node.pod_dir("u1"));
        }
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("vol-data")).unwrap();
        let node = NodeContext {
            node_name: "edge".into(),
            host_ip: "198.18.255.1".into(),
            cluster_domain: "cluster.local".into(),
            root_dir: tmp.path().to_path_buf(),
            ..Default::default()
        };
        let mut volumes = Volumes::default();
        volumes.entries.insert(
            "data".into(),
            VolumeEntry {
                host_path: tmp.path().join("vol-data"),
                read_only: false,
            },
        );
        volumes.entries.insert(
            "cfg".into(),
            VolumeEntry {
                host_path: tmp.path().join("vol-cfg"),
                read_only: true,
            },
        );
        Fixture {
            _tmp: tmp,
            node,
            objects: ApiObjects::default(),
            volumes,
            ips: vec!["198.18.0.7".into()],
        }
    }

    fn config(f: &Fixture, pod: &Pod, restart_count: u32) -> Result<ContainerConfig, SpecError> {
        let ctx = ContainerContext {
            pod_ip: &f.ips[0],
            pod_ips: &f.ips,
            objects: &f.objects,
            volumes: &f.volumes,
            restart_count,
            image: "sha256:abc",
            image_user: &ImageUser::Uid(0),
        };
        container_config(pod, &pod.spec.as_ref().unwrap().containers[0], &f.node, &ctx)
    }

    fn pod(container: serde_json::Value, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([container]);
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1"},
            "spec": spec
        }))
        .unwrap()
    }

    #[test]
    fn command_env_and_basics() {
        let f = fixture();
        let p = pod(
            serde_json::json!({
                "name": "app", "image": "busybox:1.36", "workingDir": "/srv", "tty": true, "stdin": true,
                "command": ["sh", "-c", "echo $(GREETING) $$(GREETING) $(NOPE)"],
                "args": ["$(POD_IP)"],
                "env": [{"name": "GREETING", "value": "hi"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
            }),
            serde_json::json!({}),
        );
        let c = config(&f, &p, 2).unwrap();
        assert_eq!(c.command, ["sh", "-c", "echo hi $(GREETING) $(NOPE)"]);
        assert_eq!(c.args, ["198.18.0.7"]);
        assert_eq!(c.log_path, "app/2.log");
        assert_eq!(c.metadata.unwrap().attempt, 2);
        let image = c.image.unwrap();
        assert_eq!(
            (image.image.as_str(), image.user_specified_image.as_str()),
            ("sha256:abc", "busybox:1.36")
        );
        assert_eq!(c.working_dir, "/srv");
        assert!(c.tty && c.stdin && !c.stdin_once);
        assert_eq!(c.labels[labels::CONTAINER_NAME], "app");
        assert_eq!(c.annotations[labels::CONTAINER_RESTART_COUNT], "2");
        let envs: Vec<_> = c.envs.iter().map(|kv| (kv.key.as_str(), kv.value.as_str())).collect();
        assert_eq!(envs, [("GREETING", "hi"), ("POD_IP", "198.18.0.7")]);
        assert_eq!(c.linux.unwrap().resources.unwrap().oom_score_adj, 1000);
    }

    #[test]
    fn mounts() {
        let f = fixture();
        let p = pod(
            serde_json::json!({
                "name": "app",
                "env": [{"name": "SUB", "value": "by-env"}],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "data", "mountPath": "/logs", "subPath": "logs", "readOnly": true},
                    {"name": "data", "mountPath": "/x", "subPathExpr": "$(SUB)", "mountPropagation": "HostToContainer"},
                    {"name": "cfg", "mountPath": "/etc/app"}
                ]
            }),
            serde_json::json!({"hostname": "h", "subdomain": "s", "hostAliases": [{"ip": "198.18.0.1", "hostnames": ["a", "b"]}]}),
        );
        let c = config(&f, &p, 0).unwrap();
        let root = f.node.root_dir.clone();
        let mounts: Vec<_> = c
            .mounts
            .iter()
            .map(|m| {
                (
                    m.container_path.as_str(),
                    PathBuf::from(&m.host_path),
                    m.readonly,
                    m.propagation,
                )
            })
            .collect();
        let private = MountPropagation::PropagationPrivate as i32;
        assert_eq!(
            mounts,
            [
                ("/data", root.join("vol-data"), false, private),
                ("/logs", root.join("pods/u1/volume-subpaths/data/app/1"), true, private),
                (
                    "/x",
                    root.join("pods/u1/volume-subpaths/data/app/2"),
                    false,
                    MountPropagation::PropagationHostToContainer as i32
                ),
                ("/etc/app", root.join("vol-cfg"), true, private),
                ("/etc/hosts", root.join("pods/u1/etc-hosts"), false, private),
                (
                    "/dev/termination-log",
                    root.join("pods/u1/containers/app/0"),
                    false,
                    private
                ),
            ]
        );
        assert!(root.join("vol-data/logs").is_dir(), "subPath created");
        assert!(root.join("vol-data/by-env").is_dir(), "subPathExpr created");
        // The mounts show the sub paths themselves.
        std::fs::write(root.join("pods/u1/volume-subpaths/data/app/1/seen"), "").unwrap();
        assert!(root.join("vol-data/logs/seen").is_file());
        let hosts = std::fs::read_to_string(root.join("pods/u1/etc-hosts")).unwrap();
        assert!(hosts.contains("198.18.0.7\th.s.ns.svc.cluster.local\th\n"), "{hosts}");
        assert!(
            hosts.ends_with("# Entries added by HostAliases.\n198.18.0.1\ta\tb\n"),
            "{hosts}"
        );
        assert!(root.join("pods/u1/containers/app/0").is_file());
    }

    #[test]
    fn host_network_gets_a_copy_of_the_node_hosts_file() {
        let mut f = fixture();
        let p = pod(
            serde_json::json!({"name": "app", "terminationMessagePath": ""}),
            serde_json::json!({"hostNetwork": true, "hostAliases": [{"ip": "198.18.0.1", "hostnames": ["a"]}]}),
        );
        // The sandbox of a pod on the host's network has no IP of its own.
        f.ips = vec![String::new()];
        let c = config(&f, &p, 0).unwrap();
        let root = f.node.root_dir.clone();
        let mounts: Vec<_> = c
            .mounts
            .iter()
            .map(|m| (m.container_path.as_str(), PathBuf::from(&m.host_path)))
            .collect();
        assert_eq!(mounts, [("/etc/hosts", root.join("pods/u1/etc-hosts"))]);
        let mut want = b"# Kubernetes-managed hosts file (host network).\n".to_vec();
        want.extend(std::fs::read("/etc/hosts").unwrap());
        want.extend(b"\n# Entries added by HostAliases.\n198.18.0.1\ta\n");
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(root.join("pods/u1/etc-hosts")).unwrap()),
            String::from_utf8_lossy(&want)
        );
        // Without the node's IP (as without the pod's for others), no hosts file yet.
        f.node.host_ip.clear();
        assert!(config(&f, &p, 0).unwrap().mounts.is_empty());
    }

    #[test]
    fn hosts_files_and_their_headers() {
        let aliases: Vec<HostAlias> =
            serde_json::from_value(serde_json::json!([{"ip": "198.18.0.1", "hostnames": ["a", "b"]}])).unwrap();
        let ips = ["198.18.0.7".to_owned(), "fd00::7".to_owned()];
        assert_eq!(
            hosts_file_content(&ips, &ips[0], "web", None, &[]),
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             198.18.0.7\tweb\nfd00::7\tweb\n"
        );
        assert!(
            hosts_file_content(&ips, &ips[0], "web", Some("sub.ns.svc.cluster.local"), &aliases).ends_with(
                "198.18.0.7\tweb.sub.ns.svc.cluster.local\tweb\nfd00::7\tweb.sub.ns.svc.cluster.local\tweb\n\n\
                 # Entries added by HostAliases.\n198.18.0.1\ta\tb\n"
            )
        );
        assert_eq!(
            host_network_hosts_file_content(b"127.0.0.1 localhost\n", &[]),
            b"# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
        assert_eq!(
            host_network_hosts_file_content(b"", &aliases),
            b"# Kubernetes-managed hosts file (host network).\n\n# Entries added by HostAliases.\n198.18.0.1\ta\tb\n"
        );
    }

    #[test]
    fn config_errors() {
        let f = fixture();
        let cases = [
            (
                "unknown volume",
                serde_json::json!({"name": "app", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]}),
                "volume mount \"/n\" refers to unknown volume \"nope\"",
            ),
            (
                "escaping subPath",
                serde_json::json!({"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/n", "subPath": "../../etc"}]}),
                "invalid path \"../../etc\": must not contain '..'",
            ),
            (
                "bidirectional without privilege",
                serde_json::json!({"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/n", "mountPropagation": "Bidirectional"}]}),
                "invalid volumeMounts[data].mountPropagation: Bidirectional needs a privileged container",
            ),
            (
                "runAsNonRoot with root",
                serde_json::json!({"name": "app", "securityContext": {"runAsNonRoot": true, "runAsUser": 0}}),
                "container has runAsNonRoot and runAsUser 0 breaks the non-root policy (container app)",
            ),
            (
                "runAsNonRoot with a root image",
                serde_json::json!({"name": "app", "securityContext": {"runAsNonRoot": true}}),
                "container has runAsNonRoot and image will run as root (container app)",
            ),
        ];
        for (desc, container, message) in cases {
            let err = config(&f, &pod(container, serde_json::json!({})), 0).expect_err(desc);
            assert_eq!(err.to_string(), message, "{desc}");
        }
    }
}
