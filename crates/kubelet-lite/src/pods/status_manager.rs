//! The status manager: pod workers hand it the status they computed; it patches the
//! status subresource in batches, only when a status changed since it was last sent.
//!
//! Static pods report through their mirror pod (same namespace and name, another UID).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::{mpsc, oneshot};

/// How long updates gather before a batch is sent.
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Which pod object a status belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl PodKey {
    /// The key of `pod`.
    pub fn of(pod: &Pod) -> PodKey {
        PodKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            name: pod.metadata.name.clone().unwrap_or_default(),
        }
    }
}

enum Message {
    Set(PodKey, Box<PodStatus>),
    Forget(PodKey),
    Flush(PodKey, oneshot::Sender<bool>),
}

/// A handle to the status manager task; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusManager {
    tx: mpsc::UnboundedSender<Message>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Set(key, _) => write!(f, "Set({key:?})"),
            Message::Forget(key) => write!(f, "Forget({key:?})"),
            Message::Flush(key, _) => write!(f, "Flush({key:?})"),
        }
    }
}

impl StatusManager {
    /// Starts the manager; without a client (standalone) statuses are only logged.
    pub fn spawn(client: Option<kube::Client>) -> StatusManager {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(client, rx));
        StatusManager { tx }
    }

    /// Records the latest status of the pod `key`; it is sent with the next batch if it
    /// differs from what was sent last.
    pub fn set(&self, key: PodKey, status: PodStatus) {
        let _ = self.tx.send(Message::Set(key, Box::new(status)));
    }

    /// Forgets the pod (it is gone).
    pub fn forget(&self, key: PodKey) {
        let _ = self.tx.send(Message::Forget(key));
    }

    /// Sends everything pending now and waits until it was tried. Returns whether the
    /// status of `key` reached the apiserver (or had nothing to send); one that did not
    /// stays pending, and is tried again with the next batch.
    pub async fn flush(&self, key: PodKey) -> bool {
        let (done, wait) = oneshot::channel();
        self.tx.send(Message::Flush(key, done)).is_ok() && wait.await.unwrap_or(false)
    }
}

async fn run(client: Option<kube::Client>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut sent: HashMap<PodKey, serde_json::Value> = HashMap::new();
    let mut pending: HashMap<PodKey, Box<PodStatus>> = HashMap::new();
    let mut waiters: Vec<(PodKey, oneshot::Sender<bool>)> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut handle = |message: Message| match message {
            Message::Set(key, status) => {
                pending.insert(key, status);
            }
            Message::Forget(key) => {
                pending.remove(&key);
                sent.remove(&key);
            }
            Message::Flush(key, done) => waiters.push((key, done)),
        };
        handle(first);
        tokio::time::sleep(BATCH_WINDOW).await;
        while let Ok(message) = rx.try_recv() {
            handle(message);
        }
        let batch: Vec<(PodKey, Box<PodStatus>, serde_json::Value)> = pending
            .drain()
            .filter_map(|(key, status)| {
                let value = serde_json::to_value(&*status).ok()?;
                (sent.get(&key) != Some(&value)).then_some((key, status, value))
            })
            .collect();
        let results = futures_util::future::join_all(batch.into_iter().map(|(key, status, value)| {
            let client = client.clone();
            async move {
                let ok = send(client, &key, &value).await;
                (key, status, value, ok)
            }
        }))
        .await;
        for (key, status, value, ok) in results {
            if ok {
                sent.insert(key, value);
            } else {
                pending.insert(key, status);
            }
        }
        for (key, done) in waiters.drain(..) {
            let _ = done.send(!pending.contains_key(&key));
        }
    }
}

/// Patches one pod's status (a JSON merge patch of the status subresource).
async fn send(client: Option<kube::Client>, key: &PodKey, status: &serde_json::Value) -> bool {
    let Some(client) = client else {
        tracing::debug!(pod = %key.name, namespace = %key.namespace, phase = ?status.get("phase"), "pod status");
        return true;
    };
    let pods: Api<Pod> = Api::namespaced(client, &key.namespace);
    let patch = serde_json::json!({ "status": status });
    match pods
        .patch_status(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.is_not_found() => true,
        Err(err) => {
            tracing::warn!(pod = %key.name, namespace = %key.namespace, error = %err, "patching the pod status");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> PodKey {
        PodKey {
            namespace: "default".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn a_status_the_apiserver_did_not_take_stays_pending_and_flush_says_so() {
        // An apiserver that closes every connection at once.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { while listener.accept().await.is_ok() {} });
        let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
        let manager = StatusManager::spawn(Some(client));
        let running = PodStatus {
            phase: Some("Running".into()),
            ..PodStatus::default()
        };
        manager.set(key("web"), running);
        assert!(!manager.flush(key("web")).await, "not sent");
        assert!(!manager.flush(key("web")).await, "still pending, tried again, not sent");
        assert!(manager.flush(key("other")).await, "nothing of it to send");
        server.abort();

        let standalone = StatusManager::spawn(None);
        standalone.set(key("web"), PodStatus::default());
        assert!(standalone.flush(key("web")).await, "logged is sent");
    }
}
