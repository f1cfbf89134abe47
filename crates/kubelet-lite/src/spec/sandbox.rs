//! `sandbox_config`: the CRI PodSandboxConfig of a pod (the kubelet's
//! `kuberuntime_sandbox.go`): metadata, hostname, log directory, DNS, host ports, labels,
//! annotations and the Linux security context.

use cri_api::v1::{LinuxPodSandboxConfig, PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol};
use k8s_openapi::api::core::v1::Pod;

use super::dns::{ResolvConf, dns_config};
use super::identity::pod_identity;
use super::security::sandbox_security_context;
use super::{NodeContext, SpecError, labels};

/// Longest hostname the kernel takes.
const MAX_HOSTNAME_LEN: usize = 63;

/// The pod's hostname and, with a subdomain, its domain
/// (`<subdomain>.<namespace>.svc.<cluster domain>`), as `GeneratePodHostnameAndDomain`.
pub fn hostname_and_domain(pod: &Pod, node: &NodeContext) -> (String, Option<String>) {
    let spec = pod.spec.as_ref();
    let hostname = match spec.and_then(|s| s.hostname.as_deref()).filter(|h| !h.is_empty()) {
        Some(h) => h.to_owned(),
        None => truncate_hostname(pod.metadata.name.as_deref().unwrap_or("")),
    };
    let domain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())
        .map(|sub| {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
            format!("{sub}.{namespace}.svc.{}", node.cluster_domain)
        });
    (hostname, domain)
}

/// A pod name cut to 63 bytes, without a trailing `-` or `.`.
fn truncate_hostname(name: &str) -> String {
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_owned();
    }
    let mut end = MAX_HOSTNAME_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['-', '.']).to_owned()
}

/// The CRI config of the pod's sandbox; `attempt` counts sandboxes created for this pod
/// before this one.
pub fn sandbox_config(pod: &Pod, node: &NodeContext, attempt: u32) -> Result<PodSandboxConfig, SpecError> {
    sandbox_config_with(pod, node, attempt, &ResolvConf::host())
}

/// [`sandbox_config`] with the host's resolver configuration given.
pub fn sandbox_config_with(
    pod: &Pod,
    node: &NodeContext,
    attempt: u32,
    host_resolv: &ResolvConf,
) -> Result<PodSandboxConfig, SpecError> {
    let (name, namespace, uid) = pod_identity(pod)?;
    let spec = pod.spec.as_ref().ok_or(SpecError::MissingField("spec"))?;
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = if host_network {
        String::new()
    } else {
        let (hostname, domain) = hostname_and_domain(pod, node);
        match domain {
            Some(domain) if spec.set_hostname_as_fqdn.unwrap_or(false) => format!("{hostname}.{domain}"),
            _ => hostname,
        }
    };
    let sysctls = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: uid.to_owned(),
            namespace: namespace.to_owned(),
            attempt,
        }),
        hostname,
        log_directory: node
            .pod_log_directory(namespace, name, uid)
            .to_string_lossy()
            .into_owned(),
        dns_config: Some(dns_config(pod, node, host_resolv)),
        port_mappings: port_mappings(pod)?,
        labels: labels::sandbox_labels(pod),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(sandbox_security_context(pod, node)?),
            sysctls,
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Host port mappings of every container port with a `hostPort`.
fn port_mappings(pod: &Pod) -> Result<Vec<PortMapping>, SpecError> {
    let mut mappings = Vec::new();
    for container in pod.spec.iter().flat_map(|s| s.containers.iter()) {
        for port in container.ports.iter().flatten() {
            let Some(host_port) = port.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let protocol = match port.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                other => {
                    return Err(SpecError::invalid(
                        format!("containers[{}].ports.protocol", container.name),
                        format!("unknown protocol {other:?}"),
                    ));
                }
            };
            mappings.push(PortMapping {
                protocol: protocol as i32,
                container_port: port.container_port,
                host_port,
                host_ip: port.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    Ok(mappings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::NamespaceMode;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "prod", "uid": "u-9",
                         "labels": {"app": "web"}, "annotations": {"note": "n"}},
            "spec": spec
        }))
        .unwrap()
    }

    fn node() -> NodeContext {
        NodeContext {
            node_name: "edge".into(),
            cluster_dns: vec!["198.19.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sandbox_basics() {
        let p = pod(serde_json::json!({
            "containers": [{"name": "c", "ports": [
                {"containerPort": 80, "hostPort": 8080},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "198.18.255.1"},
                {"containerPort": 9000}
            ]}],
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
        }));
        let config = sandbox_config_with(&p, &node(), 2, &ResolvConf::default()).unwrap();
        let meta = config.metadata.unwrap();
        assert_eq!(
            (
                meta.name.as_str(),
                meta.namespace.as_str(),
                meta.uid.as_str(),
                meta.attempt
            ),
            ("web-0", "prod", "u-9", 2)
        );
        assert_eq!(config.hostname, "web-0");
        assert_eq!(config.log_directory, "/var/log/pods/prod_web-0_u-9");
        assert_eq!(config.labels[labels::POD_UID], "u-9");
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.annotations["note"], "n");
        assert_eq!(config.dns_config.unwrap().servers, ["198.19.0.10"]);
        let ports: Vec<_> = config
            .port_mappings
            .iter()
            .map(|p| (p.protocol, p.container_port, p.host_port, p.host_ip.as_str()))
            .collect();
        assert_eq!(
            ports,
            [
                (Protocol::Tcp as i32, 80, 8080, ""),
                (Protocol::Udp as i32, 53, 5353, "198.18.255.1")
            ]
        );
        let linux = config.linux.unwrap();
        assert_eq!(linux.sysctls["net.ipv4.ip_unprivileged_port_start"], "0");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, NamespaceMode::Pod as i32);
    }

    #[test]
    fn hostnames() {
        let long = "a".repeat(62) + "-b";
        let cases = [
            ("pod name", serde_json::json!({}), "web-0"),
            ("spec hostname", serde_json::json!({"hostname": "h1"}), "h1"),
            (
                "subdomain does not change the hostname",
                serde_json::json!({"hostname": "h1", "subdomain": "s"}),
                "h1",
            ),
            (
                "setHostnameAsFQDN",
                serde_json::json!({"hostname": "h1", "subdomain": "s", "setHostnameAsFQDN": true}),
                "h1.s.prod.svc.cluster.local",
            ),
            (
                "host network keeps the node's",
                serde_json::json!({"hostNetwork": true}),
                "",
            ),
        ];
        for (desc, mut spec, want) in cases {
            spec["containers"] = serde_json::json!([{"name": "c"}]);
            let config = sandbox_config_with(&pod(spec), &node(), 0, &ResolvConf::default()).unwrap();
            assert_eq!(config.hostname, want, "{desc}");
        }
        assert_eq!(
            truncate_hostname(&long),
            "a".repeat(62),
            "cut to 63 without the trailing dash"
        );
    }

    #[test]
    fn missing_uid_is_an_error() {
        let p: Pod =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": []}})).unwrap();
        assert!(matches!(
            sandbox_config(&p, &node(), 0),
            Err(SpecError::MissingField("metadata.uid"))
        ));
    }
}
