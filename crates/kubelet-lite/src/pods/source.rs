//! Where pods come from: the apiserver (a watch of the pods bound to this node) and the
//! static manifest directory. Both send [`PodEvent`]s to the pod manager.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use crate::retry::{RetryBackoff, RetryPolicy};

/// Annotation: the source of a pod (`api` or `file`).
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
/// Annotation: the hash that names a static pod's version (its UID here).
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
/// Annotation: on a mirror pod, the hash of the static pod it mirrors.
pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";

/// How often the manifest directory is read again.
pub const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// Which source a pod came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The apiserver.
    Api,
    /// A static manifest.
    File,
}

/// What a source tells the pod manager.
#[derive(Debug, Clone)]
pub enum PodEvent {
    /// A pod is new or changed.
    Upsert(Source, Box<Pod>),
    /// The pod with this UID is gone from its source.
    Remove(String),
    /// The source's complete set of pods is these UIDs: others of this source are gone.
    Resync(Source, HashSet<String>),
    /// A mirror pod exists in the apiserver (its static pod may be gone).
    Mirror(Box<Pod>),
    /// A mirror pod was deleted from the apiserver.
    MirrorGone(Box<Pod>),
}

/// Whether `pod` is a mirror pod (the apiserver's copy of a static pod).
pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// Watches the pods bound to `node_name` and forwards them (mirror pods as
/// [`PodEvent::Mirror`]). The watcher re-lists after errors, each after a growing,
/// jittered back-off ([`RetryPolicy::WATCH`], as client-go's reflector), and sends a
/// [`PodEvent::Resync`] after each list.
pub async fn watch_api(client: kube::Client, node_name: String, events: mpsc::UnboundedSender<PodEvent>) {
    let pods: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node_name}"));
    let mut stream = watcher(pods, config).boxed();
    let mut listed: HashSet<String> = HashSet::new();
    let mut backoff = RetryBackoff::new(RetryPolicy::WATCH);
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %err, retry_in = ?delay, "watching pods");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let sent = match event {
            watcher::Event::Init => {
                listed.clear();
                Ok(())
            }
            watcher::Event::InitApply(pod) => {
                if is_mirror(&pod) {
                    if events.send(PodEvent::Mirror(Box::new(pod))).is_err() {
                        return;
                    }
                    continue;
                }
                listed.insert(pod.metadata.uid.clone().unwrap_or_default());
                events.send(PodEvent::Upsert(Source::Api, Box::new(pod)))
            }
            watcher::Event::InitDone => events.send(PodEvent::Resync(Source::Api, std::mem::take(&mut listed))),
            watcher::Event::Apply(pod) if !is_mirror(&pod) => events.send(PodEvent::Upsert(Source::Api, Box::new(pod))),
            watcher::Event::Delete(pod) if !is_mirror(&pod) => {
                events.send(PodEvent::Remove(pod.metadata.uid.unwrap_or_default()))
            }
            watcher::Event::Apply(pod) => events.send(PodEvent::Mirror(Box::new(pod))),
            watcher::Event::Delete(pod) => events.send(PodEvent::MirrorGone(Box::new(pod))),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Reads the manifests in `dir` every [`FILE_CHECK_INTERVAL`] and sends the pods they
/// describe (named `NAME-NODE`, with a UID hashed from the manifest and the node).
pub async fn watch_dir(dir: PathBuf, node_name: String, events: mpsc::UnboundedSender<PodEvent>) {
    let mut known: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        let pods = read_manifests(&dir, &node_name);
        let uids: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
        for pod in pods {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            if known.get(&uid) != Some(&pod) {
                known.insert(uid, pod.clone());
                if events.send(PodEvent::Upsert(Source::File, Box::new(pod))).is_err() {
                    return;
                }
            }
        }
        known.retain(|uid, _| uids.contains(uid));
        if events.send(PodEvent::Resync(Source::File, uids)).is_err() {
            return;
        }
        tokio::time::sleep(FILE_CHECK_INTERVAL).await;
    }
}

/// The pods of the manifest files in `dir` (`*.yaml`, `*.yml`, `*.json`; others and
/// unreadable ones are skipped with a warning).
pub fn read_manifests(dir: &Path, node_name: &str) -> Vec<Pod> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
        .collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).ok()?;
            match static_pod(&text, node_name) {
                Ok(pod) => Some(pod),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "skipping static pod manifest");
                    None
                }
            }
        })
        .collect()
}

/// The static pod a manifest describes, as the kubelet makes it: name `NAME-NODE`,
/// namespace `default` unless given, UID and `config.hash` from the manifest and the
/// node, `config.source: file`, bound to the node.
pub fn static_pod(text: &str, node_name: &str) -> Result<Pod, String> {
    let mut pod: Pod = serde_saphyr::from_str(text).map_err(|err| err.to_string())?;
    let name = pod.metadata.name.clone().ok_or("the manifest has no metadata.name")?;
    let uid = manifest_hash(text, node_name);
    pod.metadata.name = Some(format!("{name}-{node_name}"));
    pod.metadata.namespace.get_or_insert_with(|| "default".into());
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_HASH.into(), uid);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_owned());
    Ok(pod)
}

/// 32 hex digits from the manifest and the node name (two FNV-1a halves).
fn manifest_hash(text: &str, node_name: &str) -> String {
    let fnv = |seed: u64| {
        text.bytes()
            .chain([0])
            .chain(node_name.bytes())
            .fold(seed, |hash, byte| {
                (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    };
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn static_pods_are_named_for_the_node_and_hashed() {
        let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let pod = static_pod(manifest, "n1").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("web-n1"));
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let uid = pod.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        assert_eq!(pod.metadata.annotations.as_ref().unwrap()[CONFIG_HASH], uid);
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some("n1"));
        assert_ne!(static_pod(manifest, "n2").unwrap().metadata.uid, Some(uid));
        assert!(static_pod("kind: Pod\n", "n1").is_err());
    }

    /// An apiserver that closes every connection at once: each list or watch the loop
    /// tries fails, and the listener counts the tries.
    #[tokio::test]
    async fn a_failing_pod_watch_is_retried_with_a_growing_back_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tries = Arc::new(AtomicUsize::new(0));
        let counted = tries.clone();
        let server = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(connection);
            }
        });
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let (events, _received) = mpsc::unbounded_channel();
        let watch = tokio::spawn(watch_api(client, "n1".into(), events));
        // Back-off from 0.8 s (±25 %): tries at 0, 0.6-1 s and 1.8-3 s, the next one not
        // before 4.4 s. A retry every second would have tried 4 or 5 times.
        tokio::time::sleep(Duration::from_secs(4)).await;
        watch.abort();
        server.abort();
        let tries = tries.load(Ordering::SeqCst);
        assert!((2..=3).contains(&tries), "{tries} tries in 4 s");
    }
}
