//! A container's environment: envFrom, then env in order, with `$(VAR)` expansion of
//! values from the variables defined before them (the kubelet's
//! `makeEnvironmentVariables`). Service environment variables are not generated.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::downward::{Addresses, field_value, resource_value};
use super::expand::expand;
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

/// The environment of `container`: envFrom (config maps and secrets, with prefix), then
/// env (value with expansion, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef).
pub(crate) fn container_env(
    pod: &Pod,
    container: &Container,
    objects: &ApiObjects,
    addresses: Addresses<'_>,
) -> Result<Env, SpecError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut env = Env::default();
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
