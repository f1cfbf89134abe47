//! A container's environment: the services' variables, then envFrom, then env in order,
//! with `$(VAR)` expansion of values from the variables defined before them (the
//! kubelet's `makeEnvironmentVariables`; the services' variables are its
//! `getServiceEnvVarMap` and `envvars.FromServices`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

use super::downward::{Addresses, field_value, resource_value};
use super::expand::expand;
use super::objects::{MASTER_SERVICE, MASTER_SERVICE_NAMESPACE, service_links};
use super::{ApiObjects, SpecError};

/// Environment variables in definition order; a later definition of a name replaces the
/// value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// The value of a variable.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `$(VAR)` expansion of `input` with these variables.
    pub(crate) fn expand(&self, input: &str) -> String {
        expand(input, |name| self.get(name))
    }

    /// The variables in order.
    pub(crate) fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

/// Whether `name` is a valid environment variable name for the API
/// (`[-._a-zA-Z][-._a-zA-Z0-9]*`); envFrom keys that are not are skipped.
pub(crate) fn is_env_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    match chars.next() {
        Some(first) if valid(first) && !first.is_ascii_digit() => chars.all(valid),
        _ => false,
    }
}

/// The environment of `container`: the services' variables ([`service_env`] of
/// `objects.services`), then envFrom (config maps and secrets, with prefix), then env
/// (value with expansion, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef).
/// What envFrom and env define replaces a service variable of the same name, and a
/// service variable can be referred to as `$(NAME)`.
pub(crate) fn container_env(
    pod: &Pod,
    container: &Container,
    objects: &ApiObjects,
    addresses: Addresses<'_>,
) -> Result<Env, SpecError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
    for (name, value) in service_env(&objects.services, &namespace, service_links(pod)) {
        env.set(name, value);
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        if let Some(r) = &from.config_map_ref {
            match objects.config_maps.get(&r.name) {
                Some(cm) => {
                    for (key, value) in cm.data.iter().flatten() {
                        let name = format!("{prefix}{key}");
                        if is_env_var_name(&name) {
                            env.set(name, value.clone());
                        }
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(SpecError::ConfigMapNotFound { name: r.name.clone() }),
            }
        }
        if let Some(r) = &from.secret_ref {
            match objects.secrets.get(&r.name) {
                Some(secret) => {
                    for (key, value) in secret.data.iter().flatten() {
                        let name = format!("{prefix}{key}");
                        if is_env_var_name(&name) {
                            env.set(name, String::from_utf8_lossy(&value.0).into_owned());
                        }
                    }
                }
                None if r.optional.unwrap_or(false) => {}
                None => return Err(SpecError::SecretNotFound { name: r.name.clone() }),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => env.expand(value),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(field) = &from.field_ref {
                    field_value(pod, &field.field_path, Some(addresses))?
                } else if let Some(selector) = &from.resource_field_ref {
                    let target = match selector.container_name.as_deref() {
                        None | Some("") => container,
                        Some(name) => find_container(pod, name)?,
                    };
                    resource_value(target, selector)?
                } else if let Some(r) = &from.config_map_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match (
                        objects.config_maps.contains_key(&r.name),
                        objects.config_map_value(&r.name, &r.key),
                    ) {
                        (_, Some(v)) => v,
                        (false, None) if optional => continue,
                        (false, None) => return Err(SpecError::ConfigMapNotFound { name: r.name.clone() }),
                        (true, None) if optional => continue,
                        (true, None) => {
                            return Err(SpecError::ConfigMapKeyNotFound {
                                namespace,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    let optional = r.optional.unwrap_or(false);
                    match (
                        objects.secrets.contains_key(&r.name),
                        objects.secret_value(&r.name, &r.key),
                    ) {
                        (_, Some(v)) => v,
                        (false, None) if optional => continue,
                        (false, None) => return Err(SpecError::SecretNotFound { name: r.name.clone() }),
                        (true, None) if optional => continue,
                        (true, None) => {
                            return Err(SpecError::SecretKeyNotFound {
                                namespace,
                                name: r.name.clone(),
                                key: r.key.clone(),
                            });
                        }
                    }
                } else {
                    String::new()
                }
            }
        };
        env.set(var.name.clone(), value);
    }
    Ok(env)
}

/// The variables of the services a container of a pod in `namespace` sees: the
/// `kubernetes` service of `default` always, and with `links` (`enableServiceLinks`)
/// every service of `namespace`, which wins over the former where names are the same.
/// Services without a cluster IP (headless: `None` or empty) have none. Services come
/// in name order, each with the variables of [`service_vars`].
pub(crate) fn service_env(services: &[Service], namespace: &str, links: bool) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services.iter().filter(|s| cluster_ip(s).is_some()) {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let service_namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        if links && service_namespace == namespace {
            chosen.insert(name, service);
        } else if service_namespace == MASTER_SERVICE_NAMESPACE && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(service);
        }
    }
    chosen.into_values().flat_map(service_vars).collect()
}

/// A service's cluster IP, unless it has none (headless or ExternalName).
fn cluster_ip(service: &Service) -> Option<&str> {
    let ip = service.spec.as_ref()?.cluster_ip.as_deref()?;
    (!ip.is_empty() && ip != "None").then_some(ip)
}

/// The variables of one service (the kubelet's `envvars.FromServices`), for service
/// `redis-main` at 10.0.0.11 with ports 6379 (named `db`) and 53/UDP:
/// `REDIS_MAIN_SERVICE_HOST=10.0.0.11`, `REDIS_MAIN_SERVICE_PORT=6379` (the first port),
/// `REDIS_MAIN_SERVICE_PORT_DB=6379` (each named port), then Docker's link variables:
/// `REDIS_MAIN_PORT=tcp://10.0.0.11:6379` (the first port) and for each port
/// `REDIS_MAIN_PORT_6379_TCP=tcp://10.0.0.11:6379`, `..._TCP_PROTO=tcp`,
/// `..._TCP_PORT=6379`, `..._TCP_ADDR=10.0.0.11`.
pub(crate) fn service_vars(service: &Service) -> Vec<(String, String)> {
    let Some(ip) = cluster_ip(service) else {
        return Vec::new();
    };
    let prefix = env_var_name(service.metadata.name.as_deref().unwrap_or_default());
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or(&[]);
    let mut vars = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_owned())];
    let Some(first) = ports.first() else {
        return vars;
    };
    vars.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    for port in ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!("{prefix}_SERVICE_PORT_{}", env_var_name(name)),
                port.port.to_string(),
            ));
        }
    }
    // An IPv6 address is bracketed before its port, as Go's net.JoinHostPort does.
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_owned()
    };
    for (index, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().filter(|p| !p.is_empty()).unwrap_or("TCP");
        let scheme = protocol.to_lowercase();
        let url = format!("{scheme}://{host}:{}", port.port);
        if index == 0 {
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        vars.push((port_prefix.clone(), url));
        vars.push((format!("{port_prefix}_PROTO"), scheme));
        vars.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        vars.push((format!("{port_prefix}_ADDR"), ip.to_owned()));
    }
    vars
}

/// A service or port name as a variable name: upper case, `-` as `_`.
fn env_var_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

/// A container of the pod by name (regular or init).
pub(crate) fn find_container<'p>(pod: &'p Pod, name: &str) -> Result<&'p Container, SpecError> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter().chain(s.init_containers.iter().flatten()))
        .find(|c| c.name == name)
        .ok_or_else(|| SpecError::invalid("resourceFieldRef.containerName", format!("no container \"{name}\"")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn objects() -> ApiObjects {
        let mut objects = ApiObjects::default();
        objects.config_maps.insert(
            "cfg".into(),
            ConfigMap {
                metadata: ObjectMeta::default(),
                data: Some(
                    [("MODE", "fast"), ("BAD KEY", "skipped"), ("LEVEL", "3")]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
        );
        objects.secrets.insert(
            "creds".into(),
            Secret {
                data: Some([("password".to_owned(), ByteString(b"hunter2".to_vec()))].into()),
                ..Default::default()
            },
        );
        objects
    }

    fn pod_with_env(env: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "a"}},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "c",
                "resources": {"limits": {"memory": "32Mi"}},
                "envFrom": [
                    {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "missing", "optional": true}}
                ],
                "env": env
            }]}
        }))
        .unwrap()
    }

    fn resolve(env: serde_json::Value) -> Result<Vec<(String, String)>, SpecError> {
        let pod = pod_with_env(env);
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let ips = ["198.18.0.9".to_owned()];
        let addresses = Addresses {
            pod_ip: "198.18.0.9",
            pod_ips: &ips,
            host_ip: "198.18.255.1",
        };
        container_env(&pod, &container, &objects(), addresses).map(Env::into_pairs)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn env_sources() {
        // Config map data is sorted by key; "BAD KEY" is no variable name and is skipped.
        let from_cfg = [("CFG_LEVEL", "3"), ("CFG_MODE", "fast")];
        let cases = [
            ("envFrom alone, with prefix", serde_json::json!([]), vec![]),
            (
                "plain value expands earlier variables",
                serde_json::json!([{"name": "A", "value": "x"}, {"name": "B", "value": "$(A)-$(CFG_MODE)-$(LATER)"}, {"name": "LATER", "value": "z"}]),
                vec![("A", "x"), ("B", "x-fast-$(LATER)"), ("LATER", "z")],
            ),
            (
                "escaped reference",
                serde_json::json!([{"name": "A", "value": "$$(CFG_MODE)"}]),
                vec![("A", "$(CFG_MODE)")],
            ),
            (
                "env overrides envFrom in place",
                serde_json::json!([{"name": "CFG_MODE", "value": "slow"}]),
                vec![],
            ),
            (
                "field refs",
                serde_json::json!([
                    {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
                ]),
                vec![
                    ("NAME", "p"),
                    ("APP", "a"),
                    ("NODE", "n1"),
                    ("IP", "198.18.0.9"),
                    ("HOST", "198.18.255.1"),
                ],
            ),
            (
                "resource ref with divisor",
                serde_json::json!([{"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}]),
                vec![("MEM", "32")],
            ),
            (
                "key refs, optional missing ones skipped",
                serde_json::json!([
                    {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
                    {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                    {"name": "NO1", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope", "optional": true}}},
                    {"name": "NO2", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}}
                ]),
                vec![("LVL", "3"), ("PW", "hunter2")],
            ),
        ];
        for (desc, env, extra) in cases {
            let got = resolve(env).unwrap_or_else(|e| panic!("{desc}: {e}"));
            let mut want = pairs(&from_cfg);
            if desc.starts_with("env overrides") {
                want[1].1 = "slow".into();
            }
            want.extend(pairs(&extra));
            assert_eq!(got, want, "{desc}");
        }
    }

    #[test]
    fn env_errors() {
        let cases = [
            (
                "missing config map key",
                serde_json::json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]),
                "couldn't find key nope in ConfigMap ns/cfg",
            ),
            (
                "missing secret",
                serde_json::json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k"}}}]),
                "secret \"gone\" not found",
            ),
            (
                "missing secret key",
                serde_json::json!([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "user"}}}]),
                "couldn't find key user in Secret ns/creds",
            ),
            (
                "unsupported field path",
                serde_json::json!([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]),
                "unsupported fieldRef \"spec.bogus\"",
            ),
        ];
        for (desc, env, message) in cases {
            let err = resolve(env).expect_err(desc);
            assert_eq!(err.to_string(), message, "{desc}");
        }
    }

    fn service(namespace: &str, name: &str, cluster_ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"clusterIP": cluster_ip, "ports": ports}
        }))
        .unwrap()
    }

    #[test]
    fn service_variables_are_named_as_the_kubelet_names_them() {
        let redis = service(
            "ns",
            "redis-main",
            "10.0.0.11",
            serde_json::json!([{"port": 6379, "name": "db-port"}, {"port": 53, "protocol": "UDP", "name": "dns"}]),
        );
        assert_eq!(
            service_vars(&redis),
            pairs(&[
                ("REDIS_MAIN_SERVICE_HOST", "10.0.0.11"),
                ("REDIS_MAIN_SERVICE_PORT", "6379"),
                ("REDIS_MAIN_SERVICE_PORT_DB_PORT", "6379"),
                ("REDIS_MAIN_SERVICE_PORT_DNS", "53"),
                ("REDIS_MAIN_PORT", "tcp://10.0.0.11:6379"),
                ("REDIS_MAIN_PORT_6379_TCP", "tcp://10.0.0.11:6379"),
                ("REDIS_MAIN_PORT_6379_TCP_PROTO", "tcp"),
                ("REDIS_MAIN_PORT_6379_TCP_PORT", "6379"),
                ("REDIS_MAIN_PORT_6379_TCP_ADDR", "10.0.0.11"),
                ("REDIS_MAIN_PORT_53_UDP", "udp://10.0.0.11:53"),
                ("REDIS_MAIN_PORT_53_UDP_PROTO", "udp"),
                ("REDIS_MAIN_PORT_53_UDP_PORT", "53"),
                ("REDIS_MAIN_PORT_53_UDP_ADDR", "10.0.0.11"),
            ])
        );
        // An unnamed first port; IPv6 is bracketed in the URLs only.
        let v6 = service("ns", "web", "fd00::10", serde_json::json!([{"port": 80}]));
        assert_eq!(
            service_vars(&v6),
            pairs(&[
                ("WEB_SERVICE_HOST", "fd00::10"),
                ("WEB_SERVICE_PORT", "80"),
                ("WEB_PORT", "tcp://[fd00::10]:80"),
                ("WEB_PORT_80_TCP", "tcp://[fd00::10]:80"),
                ("WEB_PORT_80_TCP_PROTO", "tcp"),
                ("WEB_PORT_80_TCP_PORT", "80"),
                ("WEB_PORT_80_TCP_ADDR", "fd00::10"),
            ])
        );
    }

    #[test]
    fn which_services_a_container_sees() {
        let port = serde_json::json!([{"port": 443}]);
        let master = service("default", "kubernetes", "10.0.0.1", port.clone());
        let services = [
            service("ns", "b-svc", "10.0.0.3", port.clone()),
            service("ns", "a-svc", "10.0.0.2", port.clone()),
            service("ns", "headless", "None", port.clone()),
            service("ns", "external", "", serde_json::json!([])),
            service("other", "elsewhere", "10.0.0.9", port.clone()),
            service("default", "not-master", "10.0.0.8", port.clone()),
            master.clone(),
        ];
        let hosts = |env: Vec<(String, String)>| -> Vec<(String, String)> {
            env.into_iter()
                .filter(|(name, _)| name.ends_with("_SERVICE_HOST"))
                .collect()
        };
        assert_eq!(
            hosts(service_env(&services, "ns", true)),
            pairs(&[
                ("A_SVC_SERVICE_HOST", "10.0.0.2"),
                ("B_SVC_SERVICE_HOST", "10.0.0.3"),
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
            ]),
            "the namespace's services with a cluster IP, and the master service"
        );
        assert_eq!(
            hosts(service_env(&services, "ns", false)),
            pairs(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")]),
            "without enableServiceLinks, the master service only"
        );
        assert_eq!(
            hosts(service_env(&services, "default", true)),
            pairs(&[
                ("KUBERNETES_SERVICE_HOST", "10.0.0.1"),
                ("NOT_MASTER_SERVICE_HOST", "10.0.0.8"),
            ]),
        );
        // A service of the namespace named like the master service wins, in any order.
        let own = service("ns", "kubernetes", "10.0.0.5", port);
        for list in [vec![master.clone(), own.clone()], vec![own.clone(), master.clone()]] {
            assert_eq!(
                hosts(service_env(&list, "ns", true)),
                pairs(&[("KUBERNETES_SERVICE_HOST", "10.0.0.5")])
            );
            assert_eq!(
                hosts(service_env(&list, "ns", false)),
                pairs(&[("KUBERNETES_SERVICE_HOST", "10.0.0.1")])
            );
        }
    }

    #[test]
    fn service_variables_come_first_and_the_container_overrides_them() {
        let mut objects = objects();
        objects.config_maps.get_mut("cfg").unwrap().data =
            Some([("FOOSERVICE_PORT".to_owned(), "from-config-map".to_owned())].into());
        objects.services = vec![service(
            "ns",
            "fooservice",
            "10.0.0.7",
            serde_json::json!([{"port": 8765}]),
        )];
        let pod = pod_with_env(serde_json::json!([
            {"name": "FOOSERVICE_SERVICE_HOST", "value": "overridden"},
            {"name": "URL", "value": "http://$(FOOSERVICE_PORT_8765_TCP_ADDR):$(FOOSERVICE_SERVICE_PORT)"}
        ]));
        let mut pod = pod;
        pod.spec.as_mut().unwrap().containers[0].env_from.as_mut().unwrap()[0].prefix = None;
        let container = pod.spec.as_ref().unwrap().containers[0].clone();
        let ips = ["198.18.0.9".to_owned()];
        let addresses = Addresses {
            pod_ip: "198.18.0.9",
            pod_ips: &ips,
            host_ip: "198.18.255.1",
        };
        let env = container_env(&pod, &container, &objects, addresses)
            .unwrap()
            .into_pairs();
        assert_eq!(
            env,
            pairs(&[
                ("FOOSERVICE_SERVICE_HOST", "overridden"),
                ("FOOSERVICE_SERVICE_PORT", "8765"),
                ("FOOSERVICE_PORT", "from-config-map"),
                ("FOOSERVICE_PORT_8765_TCP", "tcp://10.0.0.7:8765"),
                ("FOOSERVICE_PORT_8765_TCP_PROTO", "tcp"),
                ("FOOSERVICE_PORT_8765_TCP_PORT", "8765"),
                ("FOOSERVICE_PORT_8765_TCP_ADDR", "10.0.0.7"),
                ("URL", "http://10.0.0.7:8765"),
            ])
        );
        // enableServiceLinks: false leaves them out (no master service listed here).
        pod.spec.as_mut().unwrap().enable_service_links = Some(false);
        let env = container_env(&pod, &container, &objects, addresses)
            .unwrap()
            .into_pairs();
        assert!(env.iter().all(|(name, _)| !name.contains("_PORT_8765")), "{env:?}");
    }

    #[test]
    fn env_var_names() {
        for (name, ok) in [
            ("A", true),
            ("_a.b-c9", true),
            ("9A", false),
            ("", false),
            ("A B", false),
        ] {
            assert_eq!(is_env_var_name(name), ok, "{name:?}");
        }
    }
}
