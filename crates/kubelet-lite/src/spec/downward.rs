//! The downward API: pod fields (`fieldRef`) and container resources
//! (`resourceFieldRef`) as strings, for env vars and downwardAPI volume files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceFieldSelector};

use super::SpecError;
use super::quantity::Amount;
use super::resources::{Kind, node_memory_capacity, node_milli_cpu, resource_amount};

/// The pod's runtime addresses, known once its sandbox runs (absent for volumes, which
/// are prepared before).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Addresses<'a> {
    /// `status.podIP`.
    pub(crate) pod_ip: &'a str,
    /// `status.podIPs`.
    pub(crate) pod_ips: &'a [String],
    /// `status.hostIP`.
    pub(crate) host_ip: &'a str,
}

/// The value of a `fieldRef.fieldPath` of `pod`. `addresses` is `None` where only
/// metadata may be referenced (downwardAPI volumes).
pub(crate) fn field_value(pod: &Pod, path: &str, addresses: Option<Addresses<'_>>) -> Result<String, SpecError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let unsupported = || SpecError::UnsupportedField {
        kind: "fieldRef",
        path: path.to_owned(),
    };
    if let Some(key) = subscript(path, "metadata.labels") {
        return Ok(lookup(meta.labels.as_ref(), key));
    }
    if let Some(key) = subscript(path, "metadata.annotations") {
        return Ok(lookup(meta.annotations.as_ref(), key));
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        other => {
            let addresses = addresses.ok_or_else(unsupported)?;
            match other {
                "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
                "spec.serviceAccountName" => spec
                    .and_then(|s| s.service_account_name.clone().or_else(|| s.service_account.clone()))
                    .unwrap_or_default(),
                "status.podIP" => addresses.pod_ip.to_owned(),
                "status.podIPs" => addresses.pod_ips.join(","),
                "status.hostIP" => addresses.host_ip.to_owned(),
                "status.hostIPs" => addresses.host_ip.to_owned(),
                _ => return Err(unsupported()),
            }
        }
    };
    Ok(value)
}

/// `metadata.labels['key']` -> `key`.
fn subscript<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?.strip_prefix('[')?.strip_suffix(']')?;
    rest.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .or_else(|| rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
}

fn lookup(map: Option<&BTreeMap<String, String>>, key: &str) -> String {
    map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
}

/// All labels or annotations as `key="value"` lines, sorted by key, values quoted as Go's
/// `%q` does (the kubelet's `fieldpath.FormatMap`).
pub(crate) fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A double-quoted string with Go's escapes for quotes, backslashes and control characters.
fn go_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The value of a `resourceFieldRef` for `container`: `limits.cpu`, `limits.memory`,
/// `limits.ephemeral-storage`, `requests.*`, divided by the divisor (default 1) and
/// rounded up. A limit the container does not set is the node's capacity, as the kubelet
/// reports allocatable.
pub(crate) fn resource_value(container: &Container, selector: &ResourceFieldSelector) -> Result<String, SpecError> {
    let divisor = match &selector.divisor {
        Some(q) => Amount::of(q)?,
        None => Amount::from_units(1),
    };
    let (kind, name) = match selector.resource.split_once('.') {
        Some(("limits", name)) => (Kind::Limits, name),
        Some(("requests", name)) => (Kind::Requests, name),
        _ => (Kind::Limits, ""),
    };
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") && !name.starts_with("hugepages-") {
        return Err(SpecError::UnsupportedField {
            kind: "resourceFieldRef",
            path: selector.resource.clone(),
        });
    }
    let amount = resource_amount(container, kind, name).or_else(|| match (kind, name) {
        (Kind::Limits, "cpu") => Some(Amount::parse(&format!("{}m", node_milli_cpu())).unwrap_or_default()),
        (Kind::Limits, "memory") => Some(Amount::from_units(node_memory_capacity())),
        _ => None,
    });
    let amount = amount.unwrap_or_default();
    Ok(amount.div_ceil_by(divisor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-1", "namespace": "prod", "uid": "u-1",
                "labels": {"app": "web", "tier": "front\"end"},
                "annotations": {"note": "a\nb"}
            },
            "spec": {"nodeName": "edge-1", "serviceAccountName": "robot", "containers": [{
                "name": "c",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
            }]}
        }))
        .unwrap()
    }

    #[test]
    fn field_paths() {
        let ips = ["198.18.0.5".to_owned(), "fd00::5".to_owned()];
        let addresses = Addresses {
            pod_ip: "198.18.0.5",
            pod_ips: &ips,
            host_ip: "198.18.255.1",
        };
        let p = pod();
        let cases = [
            ("name", "metadata.name", "web-1"),
            ("namespace", "metadata.namespace", "prod"),
            ("uid", "metadata.uid", "u-1"),
            ("one label", "metadata.labels['app']", "web"),
            ("missing label", "metadata.labels['nope']", ""),
            ("one annotation", "metadata.annotations['note']", "a\nb"),
            ("all labels", "metadata.labels", "app=\"web\"\ntier=\"front\\\"end\""),
            ("all annotations", "metadata.annotations", "note=\"a\\nb\""),
            ("node name", "spec.nodeName", "edge-1"),
            ("service account", "spec.serviceAccountName", "robot"),
            ("pod ip", "status.podIP", "198.18.0.5"),
            ("pod ips", "status.podIPs", "198.18.0.5,fd00::5"),
            ("host ip", "status.hostIP", "198.18.255.1"),
        ];
        for (desc, path, want) in cases {
            let got = field_value(&p, path, Some(addresses)).unwrap_or_else(|e| panic!("{desc}: {e}"));
            assert_eq!(got, want, "{desc}");
        }
        assert!(field_value(&p, "spec.bogus", Some(addresses)).is_err());
        assert!(
            field_value(&p, "status.podIP", None).is_err(),
            "volumes take metadata only"
        );
    }

    #[test]
    fn resource_fields() {
        let p = pod();
        let c = &p.spec.as_ref().unwrap().containers[0];
        let cases = [
            ("cpu request in cores rounds up", "requests.cpu", None, "1"),
            ("cpu request in millicores", "requests.cpu", Some("1m"), "250"),
            ("memory request in bytes", "requests.memory", None, "67108864"),
            ("memory limit in Mi", "limits.memory", Some("1Mi"), "128"),
            ("unset request is zero", "requests.ephemeral-storage", None, "0"),
        ];
        for (desc, resource, divisor, want) in cases {
            let selector = ResourceFieldSelector {
                resource: resource.to_owned(),
                divisor: divisor.map(|d| Quantity(d.to_owned())),
                container_name: None,
            };
            assert_eq!(resource_value(c, &selector).unwrap(), want, "{desc}");
        }
        let unset_cpu_limit = ResourceFieldSelector {
            resource: "limits.cpu".into(),
            divisor: Some(Quantity("1m".into())),
            container_name: None,
        };
        assert_eq!(
            resource_value(c, &unset_cpu_limit).unwrap(),
            node_milli_cpu().to_string(),
            "an unset limit is the node's capacity"
        );
        let bad = ResourceFieldSelector {
            resource: "limits.gpu".into(),
            ..Default::default()
        };
        assert!(resource_value(c, &bad).is_err());
    }
}
