//! Keeping a running pod's configMap, secret, downwardAPI and projected volumes current.
//!
//! The kubelet remounts those volumes at every sync of a pod: when the pod changes, and
//! at each resync of its pod worker (`syncFrequency`, a minute, plus up to half of it of
//! jitter), reading the objects from its caches. Here the pod worker asks
//! [`VolumeRefresh::keep_current`] at each of its passes, and the volumes are rewritten:
//!
//! - when the pod's labels or annotations changed (what downwardAPI files show);
//! - every [`RESYNC_INTERVAL`] plus up to half of it (random, so that the pods of a node
//!   spread their reads), with the config maps and secrets of the volumes read again.
//!
//! The interval is the kubelet's, so a change reaches the files as soon as there (the
//! upstream e2e specs allow 240 s for an object, 180 s for labels): each read is a GET to
//! the apiserver per object and pod, where the kubelet has watches, so polling more often
//! would multiply the load of a full node for little gain. What a volume does when its
//! object changes, appears or goes is `spec::Volumes::refresh`'s and
//! `spec::ApiObjects::refresh_volume_objects`'s.

use std::collections::BTreeMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::spec::{ApiObjects, NodeContext, Volumes};

/// How often the objects of a pod's volumes are read again (the kubelet's default
/// `syncFrequency`), before jitter.
pub(crate) const RESYNC_INTERVAL: Duration = Duration::from_secs(60);
/// The most a resync comes later than [`RESYNC_INTERVAL`], as a fraction of it (the
/// kubelet's `workerResyncIntervalJitterFactor`).
const JITTER_FACTOR: f64 = 0.5;
/// How long one refresh may wait for the apiserver before the volumes stay as they are
/// until the next one.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);

/// The pod's labels and annotations: what its downwardAPI files may show that can change.
type Metadata = (Option<BTreeMap<String, String>>, Option<BTreeMap<String, String>>);

/// When one pod's volumes are next refreshed.
#[derive(Debug, Default)]
pub(crate) struct VolumeRefresh {
    /// When the next resync is due; `None` before the first pass.
    next_resync: Option<Instant>,
    /// The labels and annotations the volumes were last written from.
    written_from: Option<Metadata>,
}

impl VolumeRefresh {
    /// Refreshes the pod's volumes if it is time (see the module docs): reads the
    /// objects of its volumes again into `objects`, then rewrites `volumes`. The first
    /// call, right after the volumes were prepared, only starts the clock.
    pub(crate) async fn keep_current(
        &mut self,
        client: Option<&kube::Client>,
        pod: &Pod,
        node: &NodeContext,
        objects: &mut ApiObjects,
        volumes: &mut Volumes,
    ) {
        let now = Instant::now();
        let Some(why) = self.due(pod, now) else {
            return;
        };
        tracing::debug!(why, "refreshing the pod's volumes");
        let refreshing = async {
            objects.refresh_volume_objects(client, pod).await;
            volumes.refresh(client, pod, node, objects).await
        };
        match tokio::time::timeout(REFRESH_TIMEOUT, refreshing).await {
            Ok(failed) => {
                for (volume, err) in failed {
                    tracing::warn!(volume = %volume, error = %err, "volume not updated: it keeps its content");
                }
            }
            Err(_) => tracing::warn!(timeout = ?REFRESH_TIMEOUT, "refreshing the pod's volumes took too long"),
        }
        self.refreshed(pod, now, random_fraction());
    }

    /// When the next resync is due, once the clock started.
    pub(crate) fn next_resync(&self) -> Option<Instant> {
        self.next_resync
    }

    /// Why the volumes must be refreshed at `now`, if they must. The first call
    /// starts the clock and says no.
    fn due(&mut self, pod: &Pod, now: Instant) -> Option<&'static str> {
        let Some(next) = self.next_resync else {
            self.refreshed(pod, now, random_fraction());
            return None;
        };
        if self.written_from.as_ref() != Some(&metadata(pod)) {
            Some("the pod's labels or annotations changed")
        } else if now >= next {
            Some("resync")
        } else {
            None
        }
    }

    /// Notes a refresh from `pod` at `now`; the next resync is `fraction` (in `[0, 1)`)
    /// of the jitter after the interval.
    fn refreshed(&mut self, pod: &Pod, now: Instant, fraction: f64) {
        self.written_from = Some(metadata(pod));
        self.next_resync = Some(now + jittered(RESYNC_INTERVAL, fraction));
    }
}

fn metadata(pod: &Pod) -> Metadata {
    (pod.metadata.labels.clone(), pod.metadata.annotations.clone())
}

/// `interval` plus `fraction` of [`JITTER_FACTOR`] of it.
fn jittered(interval: Duration, fraction: f64) -> Duration {
    interval + interval.mul_f64(JITTER_FACTOR * fraction.clamp(0.0, 1.0))
}

/// A number in `[0, 1)`, different at each call (the standard library's random hasher
/// keys are enough for spreading resyncs).
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    // The top 53 bits, as a float mantissa.
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "uid": "u", "labels": labels, "annotations": annotations},
            "spec": {"containers": [{"name": "c"}]}
        }))
        .unwrap()
    }

    #[test]
    fn refreshes_on_labels_annotations_and_resync() {
        let start = Instant::now();
        let first = pod(serde_json::json!({"a": "1"}), serde_json::json!({"n": "1"}));
        let mut refresh = VolumeRefresh::default();
        assert_eq!(
            refresh.due(&first, start),
            None,
            "the first pass follows the preparation"
        );
        let next = refresh.next_resync.unwrap();
        assert!(next >= start + RESYNC_INTERVAL && next <= start + RESYNC_INTERVAL.mul_f64(1.5));
        assert_eq!(refresh.due(&first, start + Duration::from_secs(59)), None);
        assert_eq!(refresh.due(&first, next), Some("resync"));

        refresh.refreshed(&first, start, 0.0);
        let relabelled = pod(serde_json::json!({"a": "2"}), serde_json::json!({"n": "1"}));
        let annotated = pod(serde_json::json!({"a": "1"}), serde_json::json!({"n": "2"}));
        for changed in [&relabelled, &annotated] {
            assert_eq!(
                refresh.due(changed, start),
                Some("the pod's labels or annotations changed")
            );
        }
        refresh.refreshed(&relabelled, start, 0.0);
        assert_eq!(refresh.due(&relabelled, start), None, "written from these labels");
        let mut status_only = relabelled.clone();
        status_only.status = Some(Default::default());
        assert_eq!(
            refresh.due(&status_only, start),
            None,
            "a status change rewrites nothing"
        );
    }

    #[test]
    fn resyncs_spread_over_half_an_interval() {
        assert_eq!(jittered(RESYNC_INTERVAL, 0.0), Duration::from_secs(60));
        assert_eq!(jittered(RESYNC_INTERVAL, 0.5), Duration::from_secs(75));
        assert_eq!(jittered(RESYNC_INTERVAL, 7.0), Duration::from_secs(90));
        let fractions: Vec<f64> = (0..32).map(|_| random_fraction()).collect();
        assert!(fractions.iter().all(|f| (0.0..1.0).contains(f)));
        assert!(fractions.iter().any(|f| *f != fractions[0]), "not constant");
    }
}
