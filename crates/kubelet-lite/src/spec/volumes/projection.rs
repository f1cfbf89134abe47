//! The files of configMap, secret, downwardAPI and projected volumes, computed from the
//! API objects (the service account token comes from [`super::token`]).

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod};

use super::atomic::{FileContent, Files};
use crate::spec::downward::{field_value, resource_value};
use crate::spec::env::find_container;
use crate::spec::{ApiObjects, SpecError};

/// The default mode of projected files (`0644`, the API's default).
pub(crate) const DEFAULT_MODE: i32 = 0o644;

fn mode_bits(mode: Option<i32>, default: i32) -> u32 {
    u32::try_from(mode.unwrap_or(default)).unwrap_or(0o644) & 0o7777
}

/// Adds the entries of a key/value source with optional `items` to `files`.
fn add_keys(
    files: &mut Files,
    entries: &[(String, Vec<u8>)],
    items: Option<&Vec<KeyToPath>>,
    default_mode: i32,
    missing_key: impl Fn(&str) -> Option<SpecError>,
) -> Result<(), SpecError> {
    match items {
        None => {
            for (key, data) in entries {
                files.insert(
                    key.clone(),
                    FileContent {
                        data: data.clone(),
                        mode: mode_bits(None, default_mode),
                    },
                );
            }
        }
        Some(items) => {
            for item in items {
                match entries.iter().find(|(k, _)| *k == item.key) {
                    Some((_, data)) => {
                        files.insert(
                            item.path.clone(),
                            FileContent {
                                data: data.clone(),
                                mode: mode_bits(item.mode, default_mode),
                            },
                        );
                    }
                    None => {
                        if let Some(err) = missing_key(&item.key) {
                            return Err(err);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// A config map or secret as a volume source: which object, which keys, which modes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeySource<'a> {
    /// The pod's namespace (for messages).
    pub(crate) namespace: &'a str,
    /// The object's name.
    pub(crate) name: &'a str,
    /// The keys to project and where; all keys when absent.
    pub(crate) items: Option<&'a Vec<KeyToPath>>,
    /// The mode of files without their own.
    pub(crate) default_mode: i32,
    /// Whether a missing object or key is fine.
    pub(crate) optional: bool,
}

/// Config map or secret, for the not-found errors.
#[derive(Debug, Clone, Copy)]
enum ObjectKind {
    ConfigMap,
    Secret,
}

/// The files of a config map (data and binaryData); a missing optional one gives none.
pub(crate) fn config_map_files(
    files: &mut Files,
    objects: &ApiObjects,
    source: &KeySource<'_>,
) -> Result<(), SpecError> {
    let entries = objects.config_maps.get(source.name).map(|cm| {
        let mut entries: Vec<(String, Vec<u8>)> = cm
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
            .collect();
        entries.extend(cm.binary_data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())));
        entries
    });
    key_files(files, entries, source, ObjectKind::ConfigMap)
}

/// The files of a secret (data, then stringData); a missing optional one gives none.
pub(crate) fn secret_files(files: &mut Files, objects: &ApiObjects, source: &KeySource<'_>) -> Result<(), SpecError> {
    let entries = objects.secrets.get(source.name).map(|secret| {
        let mut entries: Vec<(String, Vec<u8>)> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        for (k, v) in secret.string_data.iter().flatten() {
            if !entries.iter().any(|(key, _)| key == k) {
                entries.push((k.clone(), v.clone().into_bytes()));
            }
        }
        entries
    });
    key_files(files, entries, source, ObjectKind::Secret)
}

/// Adds an object's entries (`None`: the object does not exist) per `source`.
fn key_files(
    files: &mut Files,
    entries: Option<Vec<(String, Vec<u8>)>>,
    source: &KeySource<'_>,
    kind: ObjectKind,
) -> Result<(), SpecError> {
    let name = source.name.to_owned();
    let Some(entries) = entries else {
        return match (source.optional, kind) {
            (true, _) => Ok(()),
            (false, ObjectKind::ConfigMap) => Err(SpecError::ConfigMapNotFound { name }),
            (false, ObjectKind::Secret) => Err(SpecError::SecretNotFound { name }),
        };
    };
    add_keys(files, &entries, source.items, source.default_mode, |key| {
        let (namespace, name, key) = (source.namespace.to_owned(), name.clone(), key.to_owned());
        (!source.optional).then(|| match kind {
            ObjectKind::ConfigMap => SpecError::ConfigMapKeyNotFound { namespace, name, key },
            ObjectKind::Secret => SpecError::SecretKeyNotFound { namespace, name, key },
        })
    })
}

/// The files of downwardAPI items: pod metadata (`fieldRef`) and container resources
/// (`resourceFieldRef`, which must name its container).
pub(crate) fn downward_files(
    files: &mut Files,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> Result<(), SpecError> {
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            field_value(pod, &field.field_path, None)?
        } else if let Some(selector) = &item.resource_field_ref {
            let name = selector.container_name.as_deref().unwrap_or("");
            resource_value(find_container(pod, name)?, selector)?
        } else {
            String::new()
        };
        files.insert(
            item.path.clone(),
            FileContent {
                data: value.into_bytes(),
                mode: mode_bits(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn objects() -> ApiObjects {
        let mut o = ApiObjects::default();
        o.config_maps.insert(
            "cm".into(),
            ConfigMap {
                data: Some([("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())].into()),
                binary_data: Some([("bin".to_owned(), ByteString(vec![0, 1]))].into()),
                ..Default::default()
            },
        );
        o.secrets.insert(
            "s".into(),
            Secret {
                data: Some([("token".to_owned(), ByteString(b"t0k".to_vec()))].into()),
                ..Default::default()
            },
        );
        o
    }

    fn src<'a>(name: &'a str, items: Option<&'a Vec<KeyToPath>>, default_mode: i32, optional: bool) -> KeySource<'a> {
        KeySource {
            namespace: "ns",
            name,
            items,
            default_mode,
            optional,
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn config_map_and_secret_files() {
        let o = objects();
        let mut files = Files::new();
        config_map_files(&mut files, &o, &src("cm", None, 0o600, false)).unwrap();
        let names: Vec<_> = files.keys().cloned().collect();
        assert_eq!(names, ["a", "b", "bin"], "all keys, binary included");
        assert_eq!(files["a"].mode, 0o600, "defaultMode");

        let mut files = Files::new();
        let items = vec![item("a", "conf/a.txt", Some(0o400))];
        config_map_files(&mut files, &o, &src("cm", Some(&items), 0o644, false)).unwrap();
        assert_eq!(
            files["conf/a.txt"],
            FileContent {
                data: b"1".to_vec(),
                mode: 0o400
            }
        );
        assert_eq!(files.len(), 1);

        let missing = vec![item("nope", "x", None)];
        let err = config_map_files(&mut Files::new(), &o, &src("cm", Some(&missing), 0o644, false)).unwrap_err();
        assert_eq!(err.to_string(), "couldn't find key nope in ConfigMap ns/cm");
        config_map_files(&mut Files::new(), &o, &src("cm", Some(&missing), 0o644, true)).unwrap();
        assert!(config_map_files(&mut Files::new(), &o, &src("gone", None, 0o644, false)).is_err());
        config_map_files(&mut Files::new(), &o, &src("gone", None, 0o644, true)).unwrap();

        let mut files = Files::new();
        secret_files(&mut files, &o, &src("s", None, 0o644, false)).unwrap();
        assert_eq!(files["token"].data, b"t0k");
        assert!(matches!(
            secret_files(&mut Files::new(), &o, &src("gone", None, 0o644, false)),
            Err(SpecError::SecretNotFound { .. })
        ));
    }

    #[test]
    fn downward_api_files() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}]}
        }))
        .unwrap();
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(serde_json::json!([
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}
        ]))
        .unwrap();
        let mut files = Files::new();
        downward_files(&mut files, &pod, &items, DEFAULT_MODE).unwrap();
        assert_eq!(files["name"].data, b"p");
        assert_eq!(files["labels"].data, b"a=\"1\"\nb=\"2\"");
        assert_eq!(files["mem"].data, b"64");
    }
}
