//! The pod's DNS configuration by `dnsPolicy`, as the kubelet's `pkg/kubelet/network/dns`
//! computes it: cluster DNS with the namespace's search path, the host's resolv.conf, or
//! nothing, then `dnsConfig` appended.

use cri_api::v1::DnsConfig;
use k8s_openapi::api::core::v1::Pod;

use super::NodeContext;

/// The host's resolver configuration file.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// Search paths beyond this many are dropped (glibc's limit since 2.26, as the kubelet).
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
/// `ndots` of ClusterFirst pods.
const CLUSTER_FIRST_OPTIONS: &[&str] = &["ndots:5"];

/// The parts of a resolv.conf the pod's DNS is built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// `search` (or `domain`) entries.
    pub searches: Vec<String>,
    /// `options` entries.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text; comments (`#`, `;`) and unknown lines are ignored, and the
    /// last `search`/`domain` line wins, as in glibc.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => conf.servers.extend(fields.next().map(str::to_owned)),
                Some("search" | "domain") => conf.searches = fields.map(str::to_owned).collect(),
                Some("options") => conf.options.extend(fields.map(str::to_owned)),
                _ => {}
            }
        }
        conf
    }

    /// The host's resolv.conf; empty if it cannot be read.
    pub fn host() -> Self {
        std::fs::read_to_string(HOST_RESOLV_CONF)
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }
}

/// The DNS config of the pod's sandbox. `host` is the host's resolv.conf.
pub fn dns_config(pod: &Pod, node: &NodeContext, host: &ResolvConf) -> DnsConfig {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec.and_then(|s| s.dns_policy.as_deref()).unwrap_or("ClusterFirst");
    let cluster_first = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    };
    let mut config = if policy == "None" {
        DnsConfig::default()
    } else if cluster_first && !node.cluster_dns.is_empty() {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let domain = &node.cluster_domain;
        let mut searches = Vec::new();
        if !domain.is_empty() {
            searches.push(format!("{namespace}.svc.{domain}"));
            searches.push(format!("svc.{domain}"));
            searches.push(domain.clone());
        }
        searches.extend(host.searches.iter().cloned());
        DnsConfig {
            servers: node.cluster_dns.clone(),
            searches,
            options: CLUSTER_FIRST_OPTIONS.iter().map(|o| (*o).to_owned()).collect(),
        }
    } else {
        // Default, or ClusterFirst on a node without cluster DNS: the host's resolver.
        DnsConfig {
            servers: host.servers.clone(),
            searches: host.searches.clone(),
            options: host.options.clone(),
        }
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        for server in extra.nameservers.iter().flatten() {
            if !config.servers.contains(server) {
                config.servers.push(server.clone());
            }
        }
        for search in extra.searches.iter().flatten() {
            if !config.searches.contains(search) {
                config.searches.push(search.clone());
            }
        }
        for option in extra.options.iter().flatten() {
            let rendered = match &option.value {
                Some(v) => format!("{}:{v}", option.name.as_deref().unwrap_or("")),
                None => option.name.clone().unwrap_or_default(),
            };
            let name = option.name.as_deref().unwrap_or("");
            // A pod option replaces the same-named option from the policy.
            config.options.retain(|o| o.split(':').next() != Some(name));
            config.options.push(rendered);
        }
    }
    config.searches.dedup();
    config.searches.truncate(MAX_DNS_SEARCH_PATHS);
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([{"name": "c"}]);
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})).unwrap()
    }

    #[test]
    fn parses_resolv_conf() {
        let conf = ResolvConf::parse(
            "# comment\nnameserver 198.18.0.53\nnameserver 198.18.0.54 # second\ndomain old.example\nsearch a.example b.example\noptions ndots:2 edns0\nbogus line\n",
        );
        assert_eq!(conf.servers, ["198.18.0.53", "198.18.0.54"]);
        assert_eq!(conf.searches, ["a.example", "b.example"]);
        assert_eq!(conf.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn policies() {
        let host = ResolvConf::parse("nameserver 198.18.0.53\nsearch corp.example\noptions edns0\n");
        let node = NodeContext {
            cluster_dns: vec!["198.19.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let cluster = DnsConfig {
            servers: vec!["198.19.0.10".into()],
            searches: [
                "ns.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
            ]
            .map(String::from)
            .to_vec(),
            options: vec!["ndots:5".into()],
        };
        let from_host = DnsConfig {
            servers: vec!["198.18.0.53".into()],
            searches: vec!["corp.example".into()],
            options: vec!["edns0".into()],
        };
        let cases = [
            (
                "default policy is ClusterFirst",
                serde_json::json!({}),
                &node,
                cluster.clone(),
            ),
            (
                "ClusterFirst with hostNetwork uses the host",
                serde_json::json!({"hostNetwork": true}),
                &node,
                from_host.clone(),
            ),
            (
                "ClusterFirstWithHostNet",
                serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
                &node,
                cluster.clone(),
            ),
            (
                "Default",
                serde_json::json!({"dnsPolicy": "Default"}),
                &node,
                from_host.clone(),
            ),
            (
                "None with dnsConfig",
                serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
                    "nameservers": ["198.18.9.9"], "searches": ["x.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "rotate"}]}}),
                &node,
                DnsConfig {
                    servers: vec!["198.18.9.9".into()],
                    searches: vec!["x.example".into()],
                    options: vec!["ndots:1".into(), "rotate".into()],
                },
            ),
        ];
        for (desc, spec, node, want) in cases {
            assert_eq!(dns_config(&pod(spec), node, &host), want, "{desc}");
        }
        let no_cluster_dns = NodeContext::default();
        assert_eq!(
            dns_config(&pod(serde_json::json!({})), &no_cluster_dns, &host),
            from_host,
            "ClusterFirst without cluster DNS falls back to the host"
        );
        let merged = dns_config(
            &pod(serde_json::json!({"dnsConfig": {"options": [{"name": "ndots", "value": "2"}]}})),
            &node,
            &host,
        );
        assert_eq!(merged.options, ["ndots:2"], "a pod option replaces the policy's");
    }
}
