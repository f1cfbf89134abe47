//! The pods of this node: where they come from ([`source`]), one worker per pod driving
//! it through CRI ([`worker`]), and the status manager batching status patches
//! ([`status_manager`]).
//!
//! [`run_manager`] takes the sources' events, starts a worker per pod UID, forwards
//! updates and removals to it, removes from the runtime what belongs to no pod, and
//! keeps [`KnownPods`] (what housekeeping asks to tell a pod's leftovers) up to date.

pub mod admission;
pub mod backoff;
pub mod context;
pub mod deadline;
pub mod directory;
pub(crate) mod hooks;
pub mod image;
pub mod instances;
pub mod known;
pub mod mirror;
pub mod phase;
pub mod pleg;
pub(crate) mod probes;
pub mod source;
pub mod status_manager;
pub mod termination;
pub(crate) mod volume_refresh;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use context::PodContext;
pub use directory::PodSnapshot;
pub use known::KnownPods;
pub use pleg::Pleg;
pub use source::{PodEvent, Source};
pub use status_manager::StatusManager;
use worker::Desired;

/// How often sandboxes that belong to no pod are looked for.
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

struct Entry {
    desired: watch::Sender<Desired>,
    task: JoinHandle<()>,
    source: Source,
}

/// Runs the pod manager until `events` closes. `sources` are the sources that must have
/// listed their pods once before sandboxes of unknown pods are removed.
pub async fn run_manager(
    ctx: Arc<PodContext>,
    mut events: mpsc::UnboundedReceiver<PodEvent>,
    sources: HashSet<Source>,
) {
    let mut workers: HashMap<String, Entry> = HashMap::new();
    let mut mirrors: HashMap<(String, String), Pod> = HashMap::new();
    let mut synced: HashSet<Source> = HashSet::new();
    let mut sweep = tokio::time::interval(ORPHAN_SWEEP_INTERVAL);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                match event {
                    PodEvent::Resync(source, uids) => {
                        let first = synced.insert(source);
                        handle(&ctx, &mut workers, PodEvent::Resync(source, uids));
                        if first && sources.is_subset(&synced) {
                            ctx.known.mark_complete();
                            sweep_orphans(&ctx, &workers).await;
                            sweep_mirrors(&ctx, &workers, &mirrors).await;
                        }
                    }
                    PodEvent::Mirror(pod) => {
                        // Being deleted (by hand, say): its static pod's worker replaces it.
                        if pod.metadata.deletion_timestamp.is_some() {
                            mirror_lost(&workers, &pod);
                        }
                        mirrors.insert(mirror_key(&pod), *pod);
                    }
                    PodEvent::MirrorGone(pod) => {
                        mirrors.remove(&mirror_key(&pod));
                        mirror_lost(&workers, &pod);
                    }
                    event => handle(&ctx, &mut workers, event),
                }
                count_workers(&ctx, &workers);
            }
            _ = sweep.tick() => {
                workers.retain(|_, entry| !entry.task.is_finished());
                ctx.known.retain(|uid| workers.contains_key(uid));
                count_workers(&ctx, &workers);
                if sources.is_subset(&synced) {
                    ctx.known.mark_complete();
                    sweep_orphans(&ctx, &workers).await;
                    sweep_mirrors(&ctx, &workers, &mirrors).await;
                }
            }
        }
    }
}

fn handle(ctx: &Arc<PodContext>, workers: &mut HashMap<String, Entry>, event: PodEvent) {
    match event {
        PodEvent::Upsert(source, pod) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let desired = Desired {
                pod: *pod,
                source,
                removed: false,
                mirror_losses: 0,
            };
            match workers.get(&uid) {
                Some(entry) if !entry.task.is_finished() => {
                    entry.desired.send_modify(|current| {
                        *current = Desired {
                            mirror_losses: current.mirror_losses,
                            ..desired
                        }
                    });
                }
                Some(_) => {}
                None => {
                    // Known before its worker can make anything for it.
                    ctx.known.insert(&uid);
                    let (tx, rx) = watch::channel(desired);
                    let task = worker::spawn(ctx.clone(), rx);
                    workers.insert(
                        uid,
                        Entry {
                            desired: tx,
                            task,
                            source,
                        },
                    );
                }
            }
        }
        PodEvent::Remove(uid) => {
            if let Some(entry) = workers.get(&uid) {
                entry.desired.send_modify(|d| d.removed = true);
            }
        }
        PodEvent::Resync(source, uids) => {
            for (uid, entry) in workers.iter() {
                if entry.source == source && !uids.contains(uid) {
                    entry.desired.send_modify(|d| d.removed = true);
                }
            }
        }
        PodEvent::Mirror(_) | PodEvent::MirrorGone(_) => {}
    }
}

/// Tells the worker of the static pod that `mirror` mirrors that its mirror pod is gone
/// or going, so that it makes it again.
fn mirror_lost(workers: &HashMap<String, Entry>, mirror: &Pod) {
    let key = mirror_key(mirror);
    for entry in workers.values().filter(|entry| entry.source == Source::File) {
        if mirror_key(&entry.desired.borrow().pod) == key {
            entry.desired.send_modify(|desired| desired.mirror_losses += 1);
        }
    }
}

/// Reports how many pod workers are alive.
fn count_workers(ctx: &PodContext, workers: &HashMap<String, Entry>) {
    let alive = workers.values().filter(|entry| !entry.task.is_finished()).count();
    ctx.metrics.set_pod_workers(alive);
}

fn mirror_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
    )
}

/// Deletes mirror pods whose static pod this node does not run (its manifest went away
/// while kubelet-lite was down, say).
async fn sweep_mirrors(
    ctx: &Arc<PodContext>,
    workers: &HashMap<String, Entry>,
    mirrors: &HashMap<(String, String), Pod>,
) {
    let Some(client) = &ctx.client else {
        return;
    };
    for pod in mirrors.values() {
        let hash = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(source::CONFIG_MIRROR))
            .cloned()
            .unwrap_or_default();
        let running = workers
            .get(&hash)
            .is_some_and(|entry| entry.source == Source::File && !entry.task.is_finished());
        if !running && pod.metadata.deletion_timestamp.is_none() {
            tracing::info!(pod = ?mirror_key(pod), "deleting a mirror pod whose static pod is gone");
            mirror::delete(client, pod, pod.metadata.uid.as_deref()).await;
        }
    }
}

/// Stops and removes sandboxes (and so their containers) of pods this node does not
/// run: leftovers of pods deleted while kubelet-lite was down. Their directories and
/// logs go with housekeeping's sweep of orphaned pod directories, once no sandbox is left
/// (`housekeeping::pod_dirs`).
async fn sweep_orphans(ctx: &Arc<PodContext>, workers: &HashMap<String, Entry>) {
    let Ok(sandboxes) = ctx.runtime.list_pod_sandbox(None).await else {
        return;
    };
    for sandbox in sandboxes {
        let Some(uid) = sandbox.labels.get(crate::spec::labels::POD_UID) else {
            continue;
        };
        if workers.contains_key(uid) {
            continue;
        }
        tracing::info!(sandbox = %sandbox.id, pod_uid = %uid, "removing the sandbox of a pod this node no longer runs");
        let _ = ctx.runtime.stop_pod_sandbox(&sandbox.id).await;
        let _ = ctx.runtime.remove_pod_sandbox(&sandbox.id).await;
    }
}
