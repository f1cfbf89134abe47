//! Container garbage collection: which dead containers and sandboxes go, as the kubelet's
//! `kuberuntime_gc.go` decides.
//!
//! A container is *evictable* once it is not running and was created at least
//! [`ContainerGcPolicy::min_age`] ago. Evictable containers are grouped by (pod UID,
//! container name), an *evict unit*:
//!
//! 1. every evictable container of a pod that no longer exists goes;
//! 2. in each unit, the oldest go beyond [`ContainerGcPolicy::max_per_pod_container`];
//! 3. if more than [`ContainerGcPolicy::max_containers`] remain in all, each unit is cut to
//!    an equal share (at least one), then the oldest go across units.
//!
//! A sandbox is *active* while it is ready or holds a container. Inactive sandboxes of a
//! pod that no longer exists all go; of an existing pod, all but its newest sandbox.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cri_client::v1::{ContainerState, PodSandboxState};

use super::HousekeepingError;

/// The label the kubelet puts on containers with their pod's UID: the pod of a container
/// whose sandbox is already gone.
const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// Which dead containers are kept (the kubelet's `ContainerGCPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerGcPolicy {
    /// A dead container younger than this stays. Default 0 (the kubelet's
    /// `--minimum-container-ttl-duration`).
    pub min_age: Duration,
    /// How many dead containers of one (pod, container name) stay; `None` for no limit.
    /// Default 1 (`--maximum-dead-containers-per-container`).
    pub max_per_pod_container: Option<usize>,
    /// How many dead containers stay on the node in all; `None` for no limit. Default
    /// `None` (`--maximum-dead-containers -1`).
    pub max_containers: Option<usize>,
}

impl Default for ContainerGcPolicy {
    fn default() -> ContainerGcPolicy {
        ContainerGcPolicy {
            min_age: Duration::ZERO,
            max_per_pod_container: Some(1),
            max_containers: None,
        }
    }
}

/// A container that is not running, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadContainer {
    /// The runtime's container id.
    pub id: String,
    /// The UID of its pod.
    pub pod_uid: String,
    /// Its name in the pod spec.
    pub name: String,
    /// When it was created, in nanoseconds since the epoch (CRI `created_at`).
    pub created_at: i64,
}

/// A sandbox, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRecord {
    /// The runtime's sandbox id.
    pub id: String,
    /// The UID of its pod.
    pub pod_uid: String,
    /// When it was created, in nanoseconds since the epoch.
    pub created_at: i64,
    /// Ready, or holding a container: never removed.
    pub active: bool,
}

/// The ids of the dead containers `policy` removes, given the time `now` (nanoseconds
/// since the epoch) and which pods still exist. Oldest first within each step.
pub fn containers_to_remove(
    dead: &[DeadContainer],
    policy: &ContainerGcPolicy,
    now: i64,
    pod_exists: &(dyn Fn(&str) -> bool + Sync),
) -> Vec<String> {
    let newest_evictable = now.saturating_sub(i64::try_from(policy.min_age.as_nanos()).unwrap_or(i64::MAX));
    // Evict units, each sorted newest first. A BTreeMap keeps the result deterministic.
    let mut units: BTreeMap<(&str, &str), Vec<&DeadContainer>> = BTreeMap::new();
    for container in dead.iter().filter(|c| c.created_at <= newest_evictable) {
        units
            .entry((container.pod_uid.as_str(), container.name.as_str()))
            .or_default()
            .push(container);
    }
    for unit in units.values_mut() {
        unit.sort_by_key(|c| Reverse(c.created_at));
    }
    let mut removed: Vec<String> = Vec::new();
    let keep_newest = |unit: &mut Vec<&DeadContainer>, keep: usize, removed: &mut Vec<String>| {
        if unit.len() > keep {
            removed.extend(unit.drain(keep..).rev().map(|c| c.id.clone()));
        }
    };
    // 1. Pods that no longer exist lose every dead container.
    units.retain(|(uid, _), unit| {
        if pod_exists(uid) {
            return true;
        }
        keep_newest(unit, 0, &mut removed);
        false
    });
    // 2. A count per (pod, container name).
    if let Some(max) = policy.max_per_pod_container {
        for unit in units.values_mut() {
            keep_newest(unit, max, &mut removed);
        }
    }
    // 3. A count for the node.
    if let Some(max) = policy.max_containers {
        let total = |units: &BTreeMap<_, Vec<&DeadContainer>>| units.values().map(Vec::len).sum::<usize>();
        if total(&units) > max && !units.is_empty() {
            let share = (max / units.len()).max(1);
            for unit in units.values_mut() {
                keep_newest(unit, share, &mut removed);
            }
            let mut all: Vec<&DeadContainer> = units.values().flatten().copied().collect();
            all.sort_by_key(|c| Reverse(c.created_at));
            keep_newest(&mut all, max, &mut removed);
        }
    }
    removed
}

/// The ids of the sandboxes garbage collection removes; see the module documentation.
pub fn sandboxes_to_remove(sandboxes: &[SandboxRecord], pod_exists: &(dyn Fn(&str) -> bool + Sync)) -> Vec<String> {
    let mut by_pod: BTreeMap<&str, Vec<&SandboxRecord>> = BTreeMap::new();
    for sandbox in sandboxes {
        by_pod.entry(sandbox.pod_uid.as_str()).or_default().push(sandbox);
    }
    let mut removed = Vec::new();
    for (uid, mut sandboxes) in by_pod {
        sandboxes.sort_by_key(|c| Reverse(c.created_at));
        let keep = usize::from(pod_exists(uid));
        removed.extend(
            (sandboxes.iter().skip(keep).rev())
                .filter(|sandbox| !sandbox.active)
                .map(|sandbox| sandbox.id.clone()),
        );
    }
    removed
}

/// What one pass of [`collect`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removed {
    /// The ids of the containers removed.
    pub containers: Vec<String>,
    /// The ids of the sandboxes removed.
    pub sandboxes: Vec<String>,
}

impl Removed {
    /// Whether nothing was removed.
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty() && self.sandboxes.is_empty()
    }
}

/// One pass of container garbage collection on `runtime`: lists its sandboxes and
/// containers, removes the dead containers [`containers_to_remove`] names, then the
/// sandboxes [`sandboxes_to_remove`] names. A removal that fails is logged and left for
/// the next pass; listing failures end the pass.
pub async fn collect(
    runtime: &cri_client::Client,
    policy: &ContainerGcPolicy,
    pod_exists: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Removed, HousekeepingError> {
    let sandboxes = (runtime.list_pod_sandbox(None).await).map_err(HousekeepingError::cri("ListPodSandbox"))?;
    let containers = (runtime.list_containers(None).await).map_err(HousekeepingError::cri("ListContainers"))?;
    let pod_of_sandbox: HashMap<&str, &str> = sandboxes
        .iter()
        .filter_map(|s| Some((s.id.as_str(), s.metadata.as_ref()?.uid.as_str())))
        .collect();
    let dead: Vec<DeadContainer> = containers
        .iter()
        .filter(|c| c.state != ContainerState::ContainerRunning as i32)
        .filter_map(|c| {
            let pod_uid = (pod_of_sandbox.get(c.pod_sandbox_id.as_str()).copied())
                .or_else(|| c.labels.get(POD_UID_LABEL).map(String::as_str))?;
            Some(DeadContainer {
                id: c.id.clone(),
                pod_uid: pod_uid.to_owned(),
                name: c.metadata.as_ref()?.name.clone(),
                created_at: c.created_at,
            })
        })
        .collect();
    let mut removed = Removed::default();
    for id in containers_to_remove(&dead, policy, now_nanos(), pod_exists) {
        match runtime.remove_container(&id).await {
            Ok(()) => removed.containers.push(id),
            Err(err) => tracing::warn!(container = %id, error = %err, "removing a dead container"),
        }
    }
    let holding: HashSet<&str> = (containers.iter())
        .filter(|c| !removed.containers.contains(&c.id))
        .map(|c| c.pod_sandbox_id.as_str())
        .collect();
    let records: Vec<SandboxRecord> = sandboxes
        .iter()
        .filter_map(|s| {
            Some(SandboxRecord {
                id: s.id.clone(),
                pod_uid: s.metadata.as_ref()?.uid.clone(),
                created_at: s.created_at,
                active: s.state == PodSandboxState::SandboxReady as i32 || holding.contains(s.id.as_str()),
            })
        })
        .collect();
    for id in sandboxes_to_remove(&records, pod_exists) {
        match runtime.remove_pod_sandbox(&id).await {
            Ok(()) => removed.sandboxes.push(id),
            Err(err) => tracing::warn!(sandbox = %id, error = %err, "removing a dead sandbox"),
        }
    }
    Ok(removed)
}

/// Now, in nanoseconds since the epoch (as CRI `created_at`).
fn now_nanos() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000_000;

    fn dead(id: &str, pod: &str, name: &str, created_at: i64) -> DeadContainer {
        DeadContainer {
            id: id.into(),
            pod_uid: pod.into(),
            name: name.into(),
            created_at,
        }
    }

    fn sandbox(id: &str, pod: &str, created_at: i64, active: bool) -> SandboxRecord {
        SandboxRecord {
            id: id.into(),
            pod_uid: pod.into(),
            created_at,
            active,
        }
    }

    fn every_pod_exists(_: &str) -> bool {
        true
    }

    #[test]
    fn the_newest_dead_container_of_each_pod_and_name_stays_by_default() {
        let dead = [
            dead("a0", "p", "app", 1),
            dead("a2", "p", "app", 3),
            dead("a1", "p", "app", 2),
            dead("s0", "p", "sidecar", 1),
            dead("b0", "q", "app", 1),
        ];
        let removed = containers_to_remove(&dead, &ContainerGcPolicy::default(), 100, &every_pod_exists);
        assert_eq!(removed, ["a0", "a1"]);
    }

    #[test]
    fn containers_younger_than_the_minimum_age_stay() {
        let policy = ContainerGcPolicy {
            min_age: Duration::from_secs(60),
            max_per_pod_container: Some(0),
            ..ContainerGcPolicy::default()
        };
        let now = 1000 * SECOND;
        let dead = [
            dead("old", "p", "app", now - 61 * SECOND),
            dead("young", "p", "app", now - 59 * SECOND),
        ];
        assert_eq!(containers_to_remove(&dead, &policy, now, &every_pod_exists), ["old"]);
    }

    #[test]
    fn every_dead_container_of_a_pod_that_is_gone_goes() {
        let dead = [
            dead("g1", "gone", "app", 2),
            dead("g0", "gone", "app", 1),
            dead("k0", "kept", "app", 1),
        ];
        let removed = containers_to_remove(&dead, &ContainerGcPolicy::default(), 100, &|uid| uid != "gone");
        assert_eq!(removed, ["g0", "g1"]);
    }

    #[test]
    fn no_count_per_container_keeps_them_all() {
        let policy = ContainerGcPolicy {
            max_per_pod_container: None,
            ..ContainerGcPolicy::default()
        };
        let dead = [dead("a0", "p", "app", 1), dead("a1", "p", "app", 2)];
        assert!(containers_to_remove(&dead, &policy, 100, &every_pod_exists).is_empty());
    }

    #[test]
    fn the_node_limit_shares_out_then_removes_the_oldest() {
        let policy = ContainerGcPolicy {
            max_per_pod_container: None,
            max_containers: Some(3),
            ..ContainerGcPolicy::default()
        };
        // Two units: 3 -> share 1 each leaves 2 <= 3.
        let two_units = [
            dead("a0", "p", "app", 1),
            dead("a1", "p", "app", 2),
            dead("a2", "p", "app", 3),
            dead("b0", "q", "app", 4),
        ];
        assert_eq!(
            containers_to_remove(&two_units, &policy, 100, &every_pod_exists),
            ["a0", "a1"]
        );
        // Five units of one: the share (0 -> 1) removes nothing, then the two oldest go.
        let five_units: Vec<DeadContainer> = (0..5)
            .map(|i| dead(&format!("c{i}"), &format!("p{i}"), "app", i))
            .collect();
        assert_eq!(
            containers_to_remove(&five_units, &policy, 100, &every_pod_exists),
            ["c0", "c1"]
        );
    }

    #[test]
    fn sandboxes_of_gone_pods_go_unless_active_and_existing_pods_keep_their_newest() {
        let sandboxes = [
            sandbox("p-old", "p", 1, false),
            sandbox("p-new", "p", 2, false),
            sandbox("q-old", "q", 1, false),
            sandbox("q-ready", "q", 2, true),
            sandbox("gone-1", "gone", 1, false),
            sandbox("gone-2", "gone", 2, true),
        ];
        let mut removed = sandboxes_to_remove(&sandboxes, &|uid| uid != "gone");
        removed.sort();
        assert_eq!(removed, ["gone-1", "p-old", "q-old"]);
    }
}
