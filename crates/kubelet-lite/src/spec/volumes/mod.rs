//! The pod's volumes on the node: `root_dir/pods/<uid>/volumes/<plugin>/<name>`.
//!
//! [`prepare_volumes`] is idempotent: it runs at every pod start and again when
//! kubelet-lite restarts, and only rewrites what changed (a tmpfs already mounted stays).
//! While the pod runs, [`Volumes::refresh`] keeps its configMap, secret, downwardAPI and
//! projected volumes current, as the kubelet remounts them at each sync of the pod: their
//! files are computed again from the objects and the pod as they are now and swapped in
//! atomically when they differ. A volume whose files cannot be computed (a required object
//! or key gone) keeps what it holds. Sub paths bind-mounted from such a volume keep the
//! file they were made from, as on the kubelet.

mod atomic;
mod host_path;
mod projection;
mod sub_path;
mod token;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Pod, Volume};

use self::atomic::{FileContent, Files, write_files};
use self::projection::{DEFAULT_MODE, KeySource, config_map_files, downward_files, secret_files};
use self::token::ServiceAccountTokens;
use super::quantity::Amount;
use super::{ApiObjects, NodeContext, SpecError};

pub(crate) use self::atomic::check_relative_path;
pub(crate) use self::sub_path::mount_sub_path;

/// Plugin directory names, as the kubelet spells them.
const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
const CONFIG_MAP: &str = "kubernetes.io~configmap";
const SECRET: &str = "kubernetes.io~secret";
const DOWNWARD_API: &str = "kubernetes.io~downward-api";
const PROJECTED: &str = "kubernetes.io~projected";

/// One prepared volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeEntry {
    /// Where the volume is on the host.
    pub host_path: PathBuf,
    /// Whether containers always get it read-only (configMap, secret, downwardAPI,
    /// projected).
    pub read_only: bool,
}

/// The pod's prepared volumes by name, and the service account tokens written in them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Volumes {
    /// Volumes by name.
    pub entries: BTreeMap<String, VolumeEntry>,
    /// The tokens of projected volumes, kept until they are due for renewal.
    tokens: ServiceAccountTokens,
}

impl Volumes {
    /// The prepared volume of that name.
    pub fn get(&self, name: &str) -> Option<&VolumeEntry> {
        self.entries.get(name)
    }

    /// Writes the pod's configMap, secret, downwardAPI and projected volumes again from
    /// `objects` and `pod` as they are now (see the module docs); emptyDir and hostPath
    /// volumes are left alone. Only what changed is rewritten, and a service account
    /// token is asked for only when the kept one is due for renewal.
    ///
    /// Returns the volumes that kept their content, with why.
    pub async fn refresh(
        &mut self,
        client: Option<&kube::Client>,
        pod: &Pod,
        node: &NodeContext,
        objects: &ApiObjects,
    ) -> Vec<(String, SpecError)> {
        let mut failed = Vec::new();
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return failed;
        };
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if !is_refreshed(volume) || !self.entries.contains_key(&volume.name) {
                continue;
            }
            let written = match volume_files(client, pod, objects, &mut self.tokens, volume).await {
                Ok(Some((plugin, files))) => write_volume(node, uid, plugin, &volume.name, &files, fs_group(pod)),
                Ok(None) => continue,
                Err(err) => Err(err),
            };
            if let Err(err) = written {
                failed.push((volume.name.clone(), err));
            }
        }
        failed
    }
}

/// Whether the volume's content follows its objects and the pod while the pod runs:
/// configMap, secret, downwardAPI and projected volumes (the kubelet's plugins that ask to
/// be remounted), not emptyDir or hostPath.
pub(crate) fn is_refreshed(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// Prepares every volume of the pod on the node: emptyDir (a directory, or a tmpfs for
/// `medium: Memory`), hostPath (with its type check), configMap, secret, downwardAPI and
/// projected (service account token, configMap, secret, downwardAPI) files.
pub async fn prepare_volumes(
    client: Option<&kube::Client>,
    pod: &Pod,
    node: &NodeContext,
    objects: &ApiObjects,
) -> Result<Volumes, SpecError> {
    let uid = pod
        .metadata
        .uid
        .as_deref()
        .ok_or(SpecError::MissingField("metadata.uid"))?;
    let mut volumes = Volumes::default();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let entry = prepare_volume(client, pod, node, uid, objects, &mut volumes.tokens, volume).await?;
        volumes.entries.insert(volume.name.clone(), entry);
    }
    Ok(volumes)
}

fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

async fn prepare_volume(
    client: Option<&kube::Client>,
    pod: &Pod,
    node: &NodeContext,
    uid: &str,
    objects: &ApiObjects,
    tokens: &mut ServiceAccountTokens,
    volume: &Volume,
) -> Result<VolumeEntry, SpecError> {
    let name = &volume.name;
    let group = fs_group(pod);
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        host_path::check_host_path(&path, host.type_.as_deref())?;
        return Ok(VolumeEntry {
            host_path: path,
            read_only: false,
        });
    }
    if let Some(empty) = &volume.empty_dir {
        let dir = node.volume_dir(uid, EMPTY_DIR, name);
        prepare_empty_dir(
            &dir,
            empty.medium.as_deref(),
            empty.size_limit.as_ref().map(|q| q.0.as_str()),
        )?;
        if let Some(gid) = group {
            let _ = std::os::unix::fs::chown(&dir, None, Some(gid));
        }
        return Ok(VolumeEntry {
            host_path: dir,
            read_only: false,
        });
    }
    match volume_files(client, pod, objects, tokens, volume).await? {
        Some((plugin, files)) => Ok(VolumeEntry {
            host_path: write_volume(node, uid, plugin, name, &files, group)?,
            read_only: true,
        }),
        None => Err(SpecError::UnsupportedVolume {
            volume: name.clone(),
            kind: volume_kind(volume),
        }),
    }
}

/// Makes the directory of volume `name` of `plugin` hold `files`; returns its path.
fn write_volume(
    node: &NodeContext,
    uid: &str,
    plugin: &str,
    name: &str,
    files: &Files,
    group: Option<u32>,
) -> Result<PathBuf, SpecError> {
    let dir = node.volume_dir(uid, plugin, name);
    write_files(&dir, files, group)?;
    Ok(dir)
}

/// The plugin directory and files of a configMap, secret, downwardAPI or projected
/// volume, from `objects` and `pod` as they are; `None` for other kinds.
async fn volume_files(
    client: Option<&kube::Client>,
    pod: &Pod,
    objects: &ApiObjects,
    tokens: &mut ServiceAccountTokens,
    volume: &Volume,
) -> Result<Option<(&'static str, Files)>, SpecError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut files = Files::new();
    if let Some(cm) = &volume.config_map {
        let source = KeySource {
            namespace,
            name: &cm.name,
            items: cm.items.as_ref(),
            default_mode: cm.default_mode.unwrap_or(DEFAULT_MODE),
            optional: cm.optional.unwrap_or(false),
        };
        config_map_files(&mut files, objects, &source)?;
        return Ok(Some((CONFIG_MAP, files)));
    }
    if let Some(secret) = &volume.secret {
        let source = KeySource {
            namespace,
            name: secret.secret_name.as_deref().unwrap_or(""),
            items: secret.items.as_ref(),
            default_mode: secret.default_mode.unwrap_or(DEFAULT_MODE),
            optional: secret.optional.unwrap_or(false),
        };
        secret_files(&mut files, objects, &source)?;
        return Ok(Some((SECRET, files)));
    }
    if let Some(downward) = &volume.downward_api {
        let mode = downward.default_mode.unwrap_or(DEFAULT_MODE);
        downward_files(&mut files, pod, downward.items.as_deref().unwrap_or(&[]), mode)?;
        return Ok(Some((DOWNWARD_API, files)));
    }
    let Some(projected) = &volume.projected else {
        return Ok(None);
    };
    let mode = projected.default_mode.unwrap_or(DEFAULT_MODE);
    for source in projected.sources.iter().flatten() {
        let key_source = |name, items, optional: Option<bool>| KeySource {
            namespace,
            name,
            items,
            default_mode: mode,
            optional: optional.unwrap_or(false),
        };
        if let Some(cm) = &source.config_map {
            config_map_files(
                &mut files,
                objects,
                &key_source(&cm.name, cm.items.as_ref(), cm.optional),
            )?;
        }
        if let Some(secret) = &source.secret {
            secret_files(
                &mut files,
                objects,
                &key_source(&secret.name, secret.items.as_ref(), secret.optional),
            )?;
        }
        if let Some(downward) = &source.downward_api {
            downward_files(&mut files, pod, downward.items.as_deref().unwrap_or(&[]), mode)?;
        }
        if let Some(projection) = &source.service_account_token {
            check_relative_path(&projection.path)?;
            let token = tokens.token(client, pod, projection).await?;
            files.insert(
                projection.path.clone(),
                FileContent {
                    data: token.into_bytes(),
                    mode: u32::try_from(mode).unwrap_or(0o644) & 0o7777,
                },
            );
        }
    }
    Ok(Some((PROJECTED, files)))
}

/// The JSON name of the volume's source, for the error message.
fn volume_kind(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().find(|k| *k != "name").cloned()))
        .flatten()
        .unwrap_or_else(|| "unknown".to_owned())
}

/// An emptyDir: a world-writable directory (as the kubelet makes it), with a tmpfs mounted
/// on it for `medium: Memory` (size-limited by `sizeLimit`).
fn prepare_empty_dir(dir: &Path, medium: Option<&str>, size_limit: Option<&str>) -> Result<(), SpecError> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).map_err(SpecError::io("create emptyDir", dir))?;
    match medium.unwrap_or("") {
        "" => {}
        "Memory" => {
            if !mount_points().iter().any(|m| m == dir) {
                let mut options = String::from("mode=0777");
                if let Some(limit) = size_limit {
                    let bytes = Amount::parse(limit)?.units();
                    if bytes > 0 {
                        options.push_str(&format!(",size={bytes}"));
                    }
                }
                nix::mount::mount(
                    Some("tmpfs"),
                    dir,
                    Some("tmpfs"),
                    nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                    Some(options.as_str()),
                )
                .map_err(|errno| SpecError::Io {
                    what: "mount tmpfs on",
                    path: dir.to_owned(),
                    source: errno.into(),
                })?;
            }
        }
        other => {
            return Err(SpecError::invalid(
                "emptyDir.medium",
                format!("unsupported medium {other:?}"),
            ));
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
        .map_err(SpecError::io("set mode of emptyDir", dir))?;
    Ok(())
}

/// The mount points of this process's mount namespace.
pub(crate) fn mount_points() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse_mount_points(&text))
        .unwrap_or_default()
}

/// Field 5 of each mountinfo line, with the kernel's octal escapes (`\040`) decoded.
fn parse_mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(v) = bytes
                .get(i + 1..i + 4)
                .and_then(|digits| std::str::from_utf8(digits).ok())
                .and_then(|digits| u8::from_str_radix(digits, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes the pod's directory: unmounts what is mounted under it (tmpfs emptyDirs),
/// deepest first, then deletes it. Succeeds when it is already gone.
pub async fn remove_volumes(pod_uid: &str, node: &NodeContext) -> Result<(), SpecError> {
    if pod_uid.is_empty() || check_relative_path(pod_uid).is_err() || pod_uid.contains('/') {
        return Err(SpecError::invalid(
            "pod uid",
            format!("{pod_uid:?} is no valid directory name"),
        ));
    }
    let dir = node.pod_dir(pod_uid);
    let task_dir = dir.clone();
    tokio::task::spawn_blocking(move || remove_pod_dir(&task_dir))
        .await
        .map_err(|e| SpecError::Io {
            what: "remove",
            path: dir,
            source: std::io::Error::other(e),
        })?
}

/// Unmounts everything under the pod directory `dir`, deepest first, then removes it.
pub(crate) fn remove_pod_dir(dir: &Path) -> Result<(), SpecError> {
    let mut mounts: Vec<PathBuf> = mount_points().into_iter().filter(|m| m.starts_with(dir)).collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    for mount in mounts {
        nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH).map_err(|errno| SpecError::Io {
            what: "unmount",
            path: mount.clone(),
            source: errno.into(),
        })?;
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SpecError::Io {
            what: "remove",
            path: dir.to_owned(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn setup() -> (tempfile::TempDir, NodeContext) {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeContext {
            root_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        (dir, node)
    }

    #[test]
    fn mountinfo_parsing() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(
            parse_mount_points(text),
            [PathBuf::from("/mnt/with space"), PathBuf::from("/proc")]
        );
    }

    #[tokio::test]
    async fn prepares_and_removes_volumes() {
        let (_tmp, node) = setup();
        let host_dir = node.root_dir.join("host-data");
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "labels": {"app": "x"}},
            "spec": {
                "containers": [{"name": "c"}],
                "volumes": [
                    {"name": "scratch", "emptyDir": {}},
                    {"name": "host", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}},
                    {"name": "config", "configMap": {"name": "cm", "items": [{"key": "k", "path": "dir/k.conf"}]}},
                    {"name": "token", "secret": {"secretName": "default-token-abcde", "defaultMode": 0o400}},
                    {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "proj", "projected": {"sources": [
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}
                    ]}}
                ]
            }
        }))
        .unwrap();
        let mut objects = ApiObjects::default();
        objects.config_maps.insert(
            "cm".into(),
            ConfigMap {
                data: Some([("k".to_owned(), "v".to_owned())].into()),
                ..Default::default()
            },
        );
        objects.config_maps.insert(
            "kube-root-ca.crt".into(),
            ConfigMap {
                data: Some([("ca.crt".to_owned(), "PEM".to_owned())].into()),
                ..Default::default()
            },
        );
        objects.secrets.insert(
            "default-token-abcde".into(),
            Secret {
                data: Some([("token".to_owned(), ByteString(b"jwt".to_vec()))].into()),
                ..Default::default()
            },
        );
        let volumes = prepare_volumes(None, &pod, &node, &objects).await.unwrap();
        let path = |name: &str| volumes.get(name).unwrap().host_path.clone();
        assert!(path("scratch").is_dir() && !volumes.get("scratch").unwrap().read_only);
        assert_eq!(path("host"), host_dir);
        assert!(host_dir.is_dir());
        assert_eq!(std::fs::read_to_string(path("config").join("dir/k.conf")).unwrap(), "v");
        assert!(volumes.get("config").unwrap().read_only);
        let token = path("token").join("token");
        assert_eq!(std::fs::read_to_string(&token).unwrap(), "jwt");
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&token).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(
            std::fs::read_to_string(path("info").join("labels")).unwrap(),
            "app=\"x\""
        );
        assert_eq!(std::fs::read_to_string(path("proj").join("ca.crt")).unwrap(), "PEM");
        assert_eq!(std::fs::read_to_string(path("proj").join("namespace")).unwrap(), "ns");
        assert_eq!(
            path("config"),
            node.root_dir.join("pods/uid-1/volumes/kubernetes.io~configmap/config")
        );

        // Again, as after a restart of kubelet-lite: same result.
        let again = prepare_volumes(None, &pod, &node, &objects).await.unwrap();
        assert_eq!(again, volumes);

        remove_volumes("uid-1", &node).await.unwrap();
        assert!(!node.pod_dir("uid-1").exists());
        remove_volumes("uid-1", &node).await.unwrap();
        assert!(remove_volumes("../x", &node).await.is_err());
    }

    fn config_map(pairs: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            data: Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn which_volumes_follow_their_objects() {
        let kinds = [
            (serde_json::json!({"name": "v", "configMap": {"name": "cm"}}), true),
            (serde_json::json!({"name": "v", "secret": {"secretName": "s"}}), true),
            (serde_json::json!({"name": "v", "downwardAPI": {"items": []}}), true),
            (serde_json::json!({"name": "v", "projected": {"sources": []}}), true),
            (serde_json::json!({"name": "v", "emptyDir": {}}), false),
            (serde_json::json!({"name": "v", "hostPath": {"path": "/tmp"}}), false),
        ];
        for (volume, refreshed) in kinds {
            let volume: Volume = serde_json::from_value(volume.clone()).unwrap();
            assert_eq!(is_refreshed(&volume), refreshed, "{volume:?}");
        }
    }

    #[tokio::test]
    async fn refresh_follows_objects_and_pod() {
        let (_tmp, node) = setup();
        let pod_json = |labels: serde_json::Value| {
            serde_json::json!({
                "metadata": {"name": "p", "namespace": "ns", "uid": "uid-r", "labels": labels},
                "spec": {
                    "containers": [{"name": "c"}],
                    "volumes": [
                        {"name": "scratch", "emptyDir": {}},
                        {"name": "config", "configMap": {"name": "cm"}},
                        {"name": "opt", "configMap": {"name": "later", "optional": true}},
                        {"name": "keyed", "configMap": {"name": "cm", "items": [{"key": "k", "path": "k"}]}},
                        {"name": "creds", "secret": {"secretName": "s"}},
                        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                        {"name": "proj", "projected": {"sources": [
                            {"configMap": {"name": "cm"}},
                            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
                        ]}}
                    ]
                }
            })
        };
        let pod: Pod = serde_json::from_value(pod_json(serde_json::json!({"app": "x"}))).unwrap();
        let mut objects = ApiObjects::default();
        objects.config_maps.insert("cm".into(), config_map(&[("k", "1")]));
        objects.secrets.insert(
            "s".into(),
            Secret {
                data: Some([("pw".to_owned(), ByteString(b"old".to_vec()))].into()),
                ..Default::default()
            },
        );
        let mut volumes = prepare_volumes(None, &pod, &node, &objects).await.unwrap();
        let dirs = volumes.clone();
        let path = |name: &str, file: &str| dirs.get(name).unwrap().host_path.join(file);
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        std::fs::write(path("scratch", "mine"), "kept").unwrap();
        assert_eq!(read(path("opt", "x")), None, "an optional object missing: no files");

        // Updated, created, relabelled.
        objects.config_maps.insert("cm".into(), config_map(&[("k", "2")]));
        objects.config_maps.insert("later".into(), config_map(&[("x", "new")]));
        objects.secrets.get_mut("s").unwrap().data = Some([("pw".to_owned(), ByteString(b"new".to_vec()))].into());
        let pod: Pod = serde_json::from_value(pod_json(serde_json::json!({"app": "y"}))).unwrap();
        let failed = volumes.refresh(None, &pod, &node, &objects).await;
        assert!(failed.is_empty(), "{failed:?}");
        assert_eq!(read(path("config", "k")).as_deref(), Some("2"));
        assert_eq!(read(path("keyed", "k")).as_deref(), Some("2"));
        assert_eq!(
            read(path("opt", "x")).as_deref(),
            Some("new"),
            "an optional object that appears"
        );
        assert_eq!(read(path("creds", "pw")).as_deref(), Some("new"));
        assert_eq!(read(path("info", "labels")).as_deref(), Some("app=\"y\""));
        assert_eq!(read(path("proj", "labels")).as_deref(), Some("app=\"y\""));
        assert_eq!(read(path("proj", "k")).as_deref(), Some("2"));
        assert_eq!(
            read(path("scratch", "mine")).as_deref(),
            Some("kept"),
            "emptyDir untouched"
        );

        // The optional object goes: its files go. The required one loses its key, then
        // goes: the volumes that need it keep what they hold.
        objects.config_maps.remove("later");
        objects.config_maps.insert("cm".into(), config_map(&[("other", "3")]));
        let failed = volumes.refresh(None, &pod, &node, &objects).await;
        let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["keyed"], "{failed:?}");
        assert_eq!(read(path("opt", "x")), None, "an optional object that goes");
        assert_eq!(
            read(path("keyed", "k")).as_deref(),
            Some("2"),
            "a required key gone: kept"
        );
        assert_eq!(read(path("config", "other")).as_deref(), Some("3"));
        objects.config_maps.remove("cm");
        let failed = volumes.refresh(None, &pod, &node, &objects).await;
        let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["config", "keyed", "proj"], "{failed:?}");
        assert_eq!(failed[0].1.to_string(), "configmap \"cm\" not found");
        assert_eq!(
            read(path("config", "other")).as_deref(),
            Some("3"),
            "a required object gone: kept"
        );
        assert_eq!(read(path("proj", "other")).as_deref(), Some("3"));
        assert_eq!(
            read(path("creds", "pw")).as_deref(),
            Some("new"),
            "the others still refresh"
        );
    }

    #[tokio::test]
    async fn volume_errors() {
        let (_tmp, node) = setup();
        let cases = [
            (
                "missing secret",
                serde_json::json!({"name": "v", "secret": {"secretName": "nope"}}),
                "secret \"nope\" not found",
            ),
            (
                "token without API server",
                serde_json::json!({"name": "v", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}),
                "a service account token needs an API server, and this node runs without one",
            ),
            (
                "unsupported type",
                serde_json::json!({"name": "v", "nfs": {"server": "s", "path": "/"}}),
                "volume \"v\": unsupported volume type nfs",
            ),
            (
                "hostPath type mismatch",
                serde_json::json!({"name": "v", "hostPath": {"path": "/dev/null", "type": "Directory"}}),
                "hostPath type check failed: /dev/null is not a Directory",
            ),
        ];
        for (desc, volume, message) in cases {
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [{"name": "c"}], "volumes": [volume]}
            }))
            .unwrap();
            let err = prepare_volumes(None, &pod, &node, &ApiObjects::default())
                .await
                .expect_err(desc);
            assert_eq!(err.to_string(), message, "{desc}");
        }
    }
}
