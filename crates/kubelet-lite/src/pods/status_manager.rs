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
    Flush(oneshot::Sender<()>),
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
            Message::Flush(_) => write!(f, "Flush"),
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

    /// Sends everything pending now and waits until it was sent.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(client: Option<kube::Client>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut sent: HashMap<PodKey, serde_json::Value> = HashMap::new();
    let mut pending: HashMap<PodKey, Box<PodStatus>> = HashMap::new();
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut handle = |message: Message| match message {
            Message::Set(key, status) => {
                pending.insert(key, status);
            }
            Message::Forget(key) => {
                pending.remove(&key);
                sent.remove(&key);
            }
            Message::Flush(done) => waiters.push(done),
        };
        handle(first);
        tokio::time::sleep(BATCH_WINDOW).await;
        while let Ok(message) = rx.try_recv() {
            handle(message);
        }
        let batch: Vec<(PodKey, serde_json::Value)> = pending
            .drain()
            .filter_map(|(key, status)| {
                let value = serde_json::to_value(&*status).ok()?;
                (sent.get(&key) != Some(&value)).then_some((key, value))
            })
            .collect();
        let results = futures_util::future::join_all(batch.into_iter().map(|(key, value)| {
            let client = client.clone();
            async move {
                let ok = send(client, &key, &value).await;
                (key, value, ok)
            }
        }))
        .await;
        for (key, value, ok) in results {
            if ok {
                sent.insert(key, value);
            }
        }
        for done in waiters.drain(..) {
            let _ = done.send(());
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
