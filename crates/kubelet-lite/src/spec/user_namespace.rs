//! Host id ranges for pods with `hostUsers: false`, as the kubelet's user namespace
//! manager gives them out.
//!
//! Such a pod gets a user namespace of its own in which ids 0..65536 are the host ids of
//! one block of 65536: block N is ids `N * 65536 ..`, N from 1 (block 0, the host's own
//! users, is never given out) to below 2^31 / 65536 (ids from 2^31 up trip many tools).
//! The pod's block is recorded in its directory (`userns`), so a restarted node gives a
//! running pod the same one; it is free again once the pod's directory is gone. The CRI
//! runtime creates the namespace and maps the containers' files into it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use cri_api::v1::{IdMapping, NamespaceMode, UserNamespace};
use k8s_openapi::api::core::v1::Pod;

use super::SpecError;
use super::identity::pod_identity;
use super::node::{NodeContext, PODS_DIR};

/// How many uids and gids a pod gets.
pub const IDS_PER_POD: u32 = 65_536;
/// The first block past the last one given out.
const END_BLOCK: u32 = (1 << 31) / IDS_PER_POD;
/// The file in a pod's directory that records its first host id.
const RECORD: &str = "userns";

/// Held while a block is chosen and recorded, so two pods never get the same one.
static ALLOCATING: Mutex<()> = Mutex::new(());

/// The CRI user namespace options of `pod`: its own namespace with its block of ids
/// (allocated on first use) for `hostUsers: false`, else `None` (the node's).
pub fn user_namespace(pod: &Pod, node: &NodeContext) -> Result<Option<UserNamespace>, SpecError> {
    if pod.spec.as_ref().and_then(|spec| spec.host_users) != Some(false) {
        return Ok(None);
    }
    let (_, _, uid) = pod_identity(pod)?;
    let host_id = host_range(node, uid)?;
    let ranges = vec![IdMapping {
        host_id,
        container_id: 0,
        length: IDS_PER_POD,
    }];
    Ok(Some(UserNamespace {
        mode: NamespaceMode::Pod as i32,
        uids: ranges.clone(),
        gids: ranges,
    }))
}

/// The first host id of pod `uid`'s block: the recorded one, or the lowest free block,
/// recorded now.
fn host_range(node: &NodeContext, uid: &str) -> Result<u32, SpecError> {
    let _allocating = ALLOCATING.lock().unwrap_or_else(PoisonError::into_inner);
    let record = node.pod_dir(uid).join(RECORD);
    if let Some(host_id) = read_record(&record)? {
        return Ok(host_id);
    }
    let taken = taken_ranges(&node.root_dir.join(PODS_DIR))?;
    let host_id = (1..END_BLOCK)
        .map(|block| block * IDS_PER_POD)
        .find(|id| !taken.contains(id))
        .ok_or_else(|| SpecError::invalid("hostUsers", "every range of host ids is in use"))?;
    let dir = node.pod_dir(uid);
    std::fs::create_dir_all(&dir).map_err(SpecError::io("creating", &dir))?;
    let partial = dir.join(format!("{RECORD}.partial"));
    std::fs::write(&partial, format!("{host_id}\n")).map_err(SpecError::io("writing", &partial))?;
    std::fs::rename(&partial, &record).map_err(SpecError::io("recording", &record))?;
    Ok(host_id)
}

/// The host id recorded in `record`, if the file exists.
fn read_record(record: &Path) -> Result<Option<u32>, SpecError> {
    match std::fs::read_to_string(record) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| SpecError::invalid("hostUsers", format!("{} holds no host id", record.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(SpecError::io("reading", record)(err)),
    }
}

/// The first host ids recorded by the pods in `pods_dir`.
fn taken_ranges(pods_dir: &Path) -> Result<BTreeSet<u32>, SpecError> {
    let entries = match std::fs::read_dir(pods_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(err) => return Err(SpecError::io("listing", pods_dir)(err)),
    };
    let mut taken = BTreeSet::new();
    for entry in entries.flatten() {
        // A record that cannot be read keeps nothing: its pod reports the error itself.
        if let Ok(Some(host_id)) = read_record(&entry.path().join(RECORD)) {
            taken.insert(host_id);
        }
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(uid: &str, host_users: Option<bool>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": uid, "uid": uid},
            "spec": {"containers": [{"name": "c"}], "hostUsers": host_users},
        }))
        .unwrap()
    }

    fn first_host_id(options: Option<UserNamespace>) -> u32 {
        let options = options.expect("a user namespace");
        assert_eq!(options.mode, NamespaceMode::Pod as i32);
        assert_eq!(options.uids, options.gids);
        assert_eq!((options.uids[0].container_id, options.uids[0].length), (0, IDS_PER_POD));
        options.uids[0].host_id
    }

    #[test]
    fn pods_get_blocks_of_their_own_kept_across_calls_and_freed_with_their_directory() {
        let root = tempfile::tempdir().unwrap();
        let node = NodeContext {
            root_dir: root.path().to_path_buf(),
            ..NodeContext::default()
        };
        assert_eq!(user_namespace(&pod("host", None), &node).unwrap(), None);
        assert_eq!(user_namespace(&pod("host", Some(true)), &node).unwrap(), None);
        let a = first_host_id(user_namespace(&pod("a", Some(false)), &node).unwrap());
        let b = first_host_id(user_namespace(&pod("b", Some(false)), &node).unwrap());
        assert_eq!((a, b), (65_536, 131_072));
        // The same pod again (its containers, a restarted node): the same block.
        assert_eq!(first_host_id(user_namespace(&pod("a", Some(false)), &node).unwrap()), a);
        // Pod a is gone: its block goes to the next pod.
        std::fs::remove_dir_all(node.pod_dir("a")).unwrap();
        assert_eq!(first_host_id(user_namespace(&pod("c", Some(false)), &node).unwrap()), a);
    }
}
