//! The config maps and secrets a pod refers to, fetched once per pod start (those of its
//! volumes read again while it runs, [`ApiObjects::refresh_volume_objects`]), and the
//! services whose variables its containers get, listed again before each container is
//! created.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, Volume};
use kube::Api;
use kube::api::ListParams;

use super::SpecError;

/// The namespace of the services every container gets variables for (the kubelet's
/// `masterServiceNamespace`).
pub(crate) const MASTER_SERVICE_NAMESPACE: &str = "default";
/// The service of [`MASTER_SERVICE_NAMESPACE`] every container gets variables for (the
/// kubelet's `masterServices`): the apiserver's, which in-cluster clients find by
/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT`.
pub(crate) const MASTER_SERVICE: &str = "kubernetes";

/// The config maps and secrets of the pod's namespace that the pod names, by name.
/// Optional references that do not exist are simply absent.
#[derive(Debug, Clone, Default)]
pub struct ApiObjects {
    /// Config maps by name.
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// The services whose environment variables the pod's containers get: those of the
    /// pod's namespace (with `enableServiceLinks`, the default), and the `kubernetes`
    /// service of `default`. Set by [`ApiObjects::refresh_services`].
    pub services: Vec<Service>,
}

impl ApiObjects {
    /// The value of a config map key (`data`, then `binaryData` as UTF-8, lossy).
    pub fn config_map_value(&self, name: &str, key: &str) -> Option<String> {
        let cm = self.config_maps.get(name)?;
        if let Some(v) = cm.data.as_ref().and_then(|d| d.get(key)) {
            return Some(v.clone());
        }
        cm.binary_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    }

    /// The value of a secret key (`data`, then `stringData`), as UTF-8 (lossy).
    pub fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let secret = self.secrets.get(name)?;
        if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
            return Some(String::from_utf8_lossy(&v.0).into_owned());
        }
        secret.string_data.as_ref().and_then(|d| d.get(key)).cloned()
    }

    /// Reads again the config maps and secrets the pod's volumes name, so that the
    /// volumes follow them. What exists now replaces what was read before. An object
    /// found gone is dropped, optional or not: an optional one's files then disappear,
    /// and a volume that needs a required one fails to update and keeps its content, as
    /// on the kubelet. One that cannot be read now (the apiserver unreachable) stays as
    /// it was. A node without an apiserver has nothing to read.
    pub async fn refresh_volume_objects(&mut self, client: Option<&kube::Client>, pod: &Pod) {
        let Some(client) = client else { return };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (config_maps, secrets) = volume_references(pod);
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for r in config_maps {
            let found = cm_api.get_opt(&r.name).await;
            if let Err(err) = &found {
                tracing::warn!(error = %err, configmap = %r.name, "reading a volume's configmap failed: keeping the last one read");
            }
            replace_with(&mut self.config_maps, r.name, found.ok());
        }
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for r in secrets {
            let found = secret_api.get_opt(&r.name).await;
            if let Err(err) = &found {
                tracing::warn!(error = %err, secret = %r.name, "reading a volume's secret failed: keeping the last one read");
            }
            replace_with(&mut self.secrets, r.name, found.ok());
        }
    }

    /// Lists the services whose variables a container of `pod` gets (see
    /// [`ApiObjects::services`]), as they are now: called before each container is
    /// created, as the kubelet reads them from its service informer then. A node without
    /// an apiserver gives none, as the kubelet does.
    pub async fn refresh_services(&mut self, client: Option<&kube::Client>, pod: &Pod) -> Result<(), SpecError> {
        self.services = match client {
            Some(client) => list_services(client, pod).await?,
            None => Vec::new(),
        };
        Ok(())
    }
}

/// Updates the object `name` of `objects` with what reading it gave: `Some(Some(_))` found,
/// `Some(None)` gone, `None` unknown (the read failed: what was there stays).
fn replace_with<T>(objects: &mut BTreeMap<String, T>, name: String, read: Option<Option<T>>) {
    match read {
        Some(Some(object)) => {
            objects.insert(name, object);
        }
        Some(None) => {
            objects.remove(&name);
        }
        None => {}
    }
}

/// The services of the pod's namespace (with `enableServiceLinks`), then the master
/// service (when the namespace's list did not hold it already). The selection itself
/// (which wins, headless services left out) is `env::service_env`'s.
async fn list_services(client: &kube::Client, pod: &Pod) -> Result<Vec<Service>, SpecError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or(MASTER_SERVICE_NAMESPACE);
    let links = service_links(pod);
    let mut services = Vec::new();
    if links {
        let api: Api<Service> = Api::namespaced(client.clone(), namespace);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| SpecError::Api {
                what: format!("list services in {namespace}"),
                source,
            })?;
        services = list.items;
    }
    if !links || namespace != MASTER_SERVICE_NAMESPACE {
        let api: Api<Service> = Api::namespaced(client.clone(), MASTER_SERVICE_NAMESPACE);
        let master = api.get_opt(MASTER_SERVICE).await.map_err(|source| SpecError::Api {
            what: format!("get service {MASTER_SERVICE_NAMESPACE}/{MASTER_SERVICE}"),
            source,
        })?;
        services.extend(master);
    }
    Ok(services)
}

/// `spec.enableServiceLinks`: true unless the pod says false (the apiserver defaults it
/// to true; a static pod may leave it out).
pub(crate) fn service_links(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.enable_service_links).unwrap_or(true)
}

/// A reference from the pod to a config map or secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Reference {
    /// The object's name.
    pub(crate) name: String,
    /// Whether the pod may start without it.
    pub(crate) optional: bool,
}

/// Every config map and secret the pod names in env, envFrom, volumes (configMap, secret,
/// projected sources) and imagePullSecrets (always optional: the kubelet pulls without
/// a missing one).
pub(crate) fn references(pod: &Pod) -> (BTreeSet<Reference>, BTreeSet<Reference>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return (config_maps, secrets);
    };
    let opt = |o: Option<bool>| o.unwrap_or(false);
    for container in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
        for env in container.env.iter().flatten() {
            let Some(from) = &env.value_from else { continue };
            if let Some(r) = &from.config_map_key_ref {
                config_maps.insert(Reference {
                    name: r.name.clone(),
                    optional: opt(r.optional),
                });
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.insert(Reference {
                    name: r.name.clone(),
                    optional: opt(r.optional),
                });
            }
        }
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                config_maps.insert(Reference {
                    name: r.name.clone(),
                    optional: opt(r.optional),
                });
            }
            if let Some(r) = &from.secret_ref {
                secrets.insert(Reference {
                    name: r.name.clone(),
                    optional: opt(r.optional),
                });
            }
        }
    }
    volume_sources(spec.volumes.iter().flatten(), &mut config_maps, &mut secrets);
    for r in spec.image_pull_secrets.iter().flatten() {
        secrets.insert(Reference {
            name: r.name.clone(),
            optional: true,
        });
    }
    (dedupe(config_maps), dedupe(secrets))
}

/// The config maps and secrets the pod's volumes name (configMap, secret, projected
/// sources).
pub(crate) fn volume_references(pod: &Pod) -> (BTreeSet<Reference>, BTreeSet<Reference>) {
    let mut config_maps = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    volume_sources(volumes, &mut config_maps, &mut secrets);
    (dedupe(config_maps), dedupe(secrets))
}

/// Adds the config maps and secrets `volumes` name to the sets.
fn volume_sources<'a>(
    volumes: impl Iterator<Item = &'a Volume>,
    config_maps: &mut BTreeSet<Reference>,
    secrets: &mut BTreeSet<Reference>,
) {
    let opt = |o: Option<bool>| o.unwrap_or(false);
    for volume in volumes {
        if let Some(cm) = &volume.config_map {
            config_maps.insert(Reference {
                name: cm.name.clone(),
                optional: opt(cm.optional),
            });
        }
        if let Some(s) = &volume.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            secrets.insert(Reference {
                name,
                optional: opt(s.optional),
            });
        }
        for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &source.config_map {
                config_maps.insert(Reference {
                    name: cm.name.clone(),
                    optional: opt(cm.optional),
                });
            }
            if let Some(s) = &source.secret {
                secrets.insert(Reference {
                    name: s.name.clone(),
                    optional: opt(s.optional),
                });
            }
        }
    }
}

/// One entry per name; required wins over optional.
fn dedupe(refs: BTreeSet<Reference>) -> BTreeSet<Reference> {
    let mut by_name: BTreeMap<String, bool> = BTreeMap::new();
    for r in refs {
        let optional = by_name.entry(r.name).or_insert(true);
        *optional &= r.optional;
    }
    by_name
        .into_iter()
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, optional)| Reference { name, optional })
        .collect()
}

/// Fetches every config map and secret `pod` names, from the pod's namespace.
///
/// Without a client (a standalone node), only a pod that names no required object
/// succeeds. A required object that does not exist is [`SpecError::ConfigMapNotFound`] or
/// [`SpecError::SecretNotFound`]; an optional one is left out.
pub async fn fetch_objects(client: Option<&kube::Client>, pod: &Pod) -> Result<ApiObjects, SpecError> {
    let (config_maps, secrets) = references(pod);
    let mut objects = ApiObjects::default();
    let Some(client) = client else {
        if let Some(r) = config_maps.iter().find(|r| !r.optional) {
            return Err(SpecError::NoApiServer(format!("configmap \"{}\"", r.name)));
        }
        if let Some(r) = secrets.iter().find(|r| !r.optional) {
            return Err(SpecError::NoApiServer(format!("secret \"{}\"", r.name)));
        }
        return Ok(objects);
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    for r in config_maps {
        let found = cm_api.get_opt(&r.name).await.map_err(|source| SpecError::Api {
            what: format!("get configmap {namespace}/{}", r.name),
            source,
        })?;
        match found {
            Some(cm) => {
                objects.config_maps.insert(r.name, cm);
            }
            None if r.optional => {}
            None => return Err(SpecError::ConfigMapNotFound { name: r.name }),
        }
    }
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for r in secrets {
        let found = secret_api.get_opt(&r.name).await.map_err(|source| SpecError::Api {
            what: format!("get secret {namespace}/{}", r.name),
            source,
        })?;
        match found {
            Some(s) => {
                objects.secrets.insert(r.name, s);
            }
            None if r.optional => {}
            None => return Err(SpecError::SecretNotFound { name: r.name }),
        }
    }
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_collect_every_source_and_required_wins() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{
                    "name": "c",
                    "env": [
                        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm1", "key": "k", "optional": true}}},
                        {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}
                    ],
                    "envFrom": [{"configMapRef": {"name": "cm1"}}, {"secretRef": {"name": "s2", "optional": true}}]
                }],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "cm2", "optional": true}},
                    {"name": "v2", "secret": {"secretName": "s3"}},
                    {"name": "v3", "projected": {"sources": [
                        {"configMap": {"name": "kube-root-ca.crt"}},
                        {"secret": {"name": "s4", "optional": true}}
                    ]}}
                ],
                "imagePullSecrets": [{"name": "pull"}]
            }
        }))
        .unwrap();
        let (cms, secrets) = references(&pod);
        let cms: Vec<_> = cms.into_iter().map(|r| (r.name, r.optional)).collect();
        assert_eq!(
            cms,
            [
                ("cm1".to_owned(), false),
                ("cm2".to_owned(), true),
                ("kube-root-ca.crt".to_owned(), false)
            ]
        );
        let secrets: Vec<_> = secrets.into_iter().map(|r| (r.name, r.optional)).collect();
        assert_eq!(
            secrets,
            [
                ("pull".to_owned(), true),
                ("s1".to_owned(), false),
                ("s2".to_owned(), true),
                ("s3".to_owned(), false),
                ("s4".to_owned(), true)
            ]
        );
    }

    #[test]
    fn a_read_object_replaces_a_gone_one_is_dropped_an_unread_one_stays() {
        let mut objects: BTreeMap<String, u32> = [("a".to_owned(), 1), ("b".to_owned(), 1), ("c".to_owned(), 1)].into();
        replace_with(&mut objects, "a".into(), Some(Some(2)));
        replace_with(&mut objects, "b".into(), Some(None));
        replace_with(&mut objects, "c".into(), None);
        replace_with(&mut objects, "d".into(), Some(Some(1)));
        assert_eq!(
            objects,
            [("a".to_owned(), 2), ("c".to_owned(), 1), ("d".to_owned(), 1)].into()
        );
    }

    #[test]
    fn volume_references_leave_env_and_pull_secrets_out() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "env-cm"}}]}],
                "volumes": [
                    {"name": "v1", "configMap": {"name": "cm", "optional": true}},
                    {"name": "v2", "projected": {"sources": [{"secret": {"name": "s"}}, {"configMap": {"name": "cm"}}]}}
                ],
                "imagePullSecrets": [{"name": "pull"}]
            }
        }))
        .unwrap();
        let (cms, secrets) = volume_references(&pod);
        let names = |refs: BTreeSet<Reference>| refs.into_iter().map(|r| r.name).collect::<Vec<_>>();
        assert_eq!(names(cms), ["cm"]);
        assert_eq!(names(secrets), ["s"]);
    }

    #[tokio::test]
    async fn standalone_node_refuses_required_objects() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}]}]}
        }))
        .unwrap();
        assert!(matches!(
            fetch_objects(None, &pod).await,
            Err(SpecError::NoApiServer(_))
        ));
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "cm", "optional": true}}]}]}
        }))
        .unwrap();
        assert!(fetch_objects(None, &pod).await.unwrap().config_maps.is_empty());
    }
}
