//! Orphaned pod directories: `<root-dir>/pods/<uid>` of a pod that no longer exists and
//! that the runtime holds nothing of (no sandbox, no container) goes, with its log
//! directory `<pod logs dir>/<namespace>_<name>_<uid>`, as the kubelet's
//! `cleanupOrphanedPodDirs` and container GC's removal of pod log directories do. What is
//! left after kubelet-lite was down while pods were deleted, or after a termination that
//! did not finish.
//!
//! Mounts under an orphan (tmpfs emptyDirs, bind-mounted sub paths) are unmounted first,
//! deepest first and never through a symbolic link (`UMOUNT_NOFOLLOW`). A directory that
//! still has a mount under it after that is left, logged, and tried again at the next
//! pass: removing it would remove what the mount shows. Removal never follows symbolic
//! links (std's `remove_dir_all` unlinks them), so a link out of the directory leaves its
//! target alone. A log directory goes only with a pod directory of the same pod in
//! `<root-dir>/pods` (another node agent on the host may share the logs directory).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::HousekeepingError;
use crate::spec::labels::POD_UID;

/// Where the node keeps what it makes per pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDirs {
    /// `<root-dir>/pods`: one directory per pod UID.
    pub pods: PathBuf,
    /// The pod logs directory (`/var/log/pods`): one `<namespace>_<name>_<uid>` per pod.
    pub logs: PathBuf,
}

/// What one sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// The directories removed.
    pub removed: Vec<PathBuf>,
    /// The orphaned directories left, each with why (tried again at the next pass).
    pub kept: Vec<(PathBuf, HousekeepingError)>,
}

/// Removes the pod and log directories of pods for which `pod_exists` says no and that
/// `runtime` holds no sandbox or container of. Fails only if the runtime cannot be asked
/// (then nothing is removed); a directory that cannot be removed is in [`Swept::kept`].
pub async fn sweep(
    runtime: &cri_client::Client,
    dirs: &PodDirs,
    pod_exists: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Swept, HousekeepingError> {
    let in_runtime = runtime_pods(runtime).await?;
    let orphans: Vec<String> = pod_uids(&dirs.pods)?
        .into_iter()
        .filter(|uid| !pod_exists(uid) && !in_runtime.contains(uid))
        .collect();
    if orphans.is_empty() {
        return Ok(Swept::default());
    }
    let dirs = dirs.clone();
    tokio::task::spawn_blocking(move || remove_orphans(&dirs, &orphans))
        .await
        .map_err(|join| HousekeepingError::io("sweeping", "pod directories")(std::io::Error::other(join)))
}

/// The UIDs of the pods the runtime holds a sandbox or a container of.
async fn runtime_pods(runtime: &cri_client::Client) -> Result<HashSet<String>, HousekeepingError> {
    let sandboxes = (runtime.list_pod_sandbox(None).await).map_err(HousekeepingError::cri("ListPodSandbox"))?;
    let containers = (runtime.list_containers(None).await).map_err(HousekeepingError::cri("ListContainers"))?;
    let sandbox_uids = sandboxes.into_iter().flat_map(|sandbox| {
        let label = sandbox.labels.get(POD_UID).cloned();
        label.into_iter().chain(sandbox.metadata.map(|m| m.uid))
    });
    let container_uids = containers
        .into_iter()
        .filter_map(|container| container.labels.get(POD_UID).cloned());
    Ok(sandbox_uids
        .chain(container_uids)
        .filter(|uid| !uid.is_empty())
        .collect())
}

/// The names of the directories (not links) in `pods`; none if it does not exist.
fn pod_uids(pods: &Path) -> Result<Vec<String>, HousekeepingError> {
    let entries = match std::fs::read_dir(pods) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(HousekeepingError::io("listing", pods)(err)),
    };
    Ok(entries
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect())
}

/// Removes the log directories, then the pod directories, of the pods `uids`.
fn remove_orphans(dirs: &PodDirs, uids: &[String]) -> Swept {
    // Mount points are read from mountinfo, where paths have no links: compare them with
    // real paths.
    let real = |dir: &Path| std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let pods = real(&dirs.pods);
    let logs: Vec<(String, PathBuf)> = std::fs::read_dir(real(&dirs.logs))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let (_, uid) = name.rsplit_once('_')?;
            Some((uid.to_owned(), entry.path()))
        })
        .collect();
    let mut swept = Swept::default();
    for uid in uids {
        // The pod directory last: while it stays, the pod's logs are known to be this
        // node's and are tried again.
        let pod_logs = logs.iter().filter(|(of, _)| of == uid).map(|(_, dir)| dir.clone());
        for dir in pod_logs.chain([pods.join(uid)]) {
            match remove_unmounted(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), pod_uid = %uid, "removed the directory of a pod that is gone");
                    swept.removed.push(dir);
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "left the directory of a pod that is gone");
                    swept.kept.push((dir, err));
                    break;
                }
            }
        }
    }
    swept
}

/// Unmounts what is mounted under `dir`, deepest first, then removes it, unless a mount
/// is left.
fn remove_unmounted(dir: &Path) -> Result<(), HousekeepingError> {
    let mounted = || -> Vec<PathBuf> {
        let mut mounts: Vec<PathBuf> = (crate::spec::mount_points().into_iter())
            .filter(|mount| mount.starts_with(dir))
            .collect();
        mounts.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
        mounts.dedup();
        mounts
    };
    for mount in mounted() {
        if let Err(errno) = nix::mount::umount2(&mount, nix::mount::MntFlags::UMOUNT_NOFOLLOW) {
            tracing::warn!(mount = %mount.display(), %errno, "unmounting in the directory of a pod that is gone");
        }
    }
    if let Some(mount) = mounted().into_iter().next() {
        return Err(HousekeepingError::StillMounted { path: mount });
    }
    match std::fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(HousekeepingError::io("removing", dir)(err)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use cri_client::testing::{FakeRuntime, sandbox_config};

    use super::*;

    /// Whether the test can mount: root. Without root it is skipped, saying so, but with
    /// `CI=true` it fails.
    fn can_mount() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the orphaned pod directory sweep test needs root to mount a tmpfs (CI=true)"
        );
        eprintln!("skipped: the orphaned pod directory sweep test needs root to mount a tmpfs");
        false
    }

    fn mount_tmpfs(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
    }

    fn mounted_under(dir: &Path) -> bool {
        crate::spec::mount_points().iter().any(|mount| mount.starts_with(dir))
    }

    #[tokio::test]
    async fn orphaned_pod_directories_are_unmounted_and_removed_and_nothing_else() {
        if !can_mount() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        let dirs = PodDirs {
            pods: root_path.join("pods"),
            logs: root_path.join("logs"),
        };
        let empty_dir = |uid: &str| (dirs.pods.join(uid)).join("volumes/kubernetes.io~empty-dir/cache");
        // The orphan: a memory emptyDir with a file in it, links to a file and a directory
        // outside, and its log directory.
        let outside = root_path.join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("sentinel"), "stays").unwrap();
        std::fs::write(outside.join("dir/inner"), "stays").unwrap();
        mount_tmpfs(&empty_dir("gone"));
        std::fs::write(empty_dir("gone").join("data"), "in memory").unwrap();
        symlink(outside.join("sentinel"), dirs.pods.join("gone/escape")).unwrap();
        symlink(outside.join("dir"), empty_dir("gone").join("escape-dir")).unwrap();
        std::fs::create_dir_all(dirs.logs.join("default_web_gone/app")).unwrap();
        std::fs::write(dirs.logs.join("default_web_gone/app/0.log"), "log").unwrap();
        // A pod the pod manager knows, one the runtime still runs, another agent's logs.
        std::fs::create_dir_all(dirs.pods.join("known/volumes")).unwrap();
        std::fs::create_dir_all(dirs.logs.join("default_known_known")).unwrap();
        std::fs::create_dir_all(dirs.pods.join("running-uid/volumes")).unwrap();
        std::fs::create_dir_all(dirs.logs.join("default_other_elsewhere")).unwrap();
        // A second orphan whose tmpfs is busy (a file open in it): it cannot be unmounted.
        mount_tmpfs(&empty_dir("busy"));
        let open = std::fs::File::create(empty_dir("busy").join("open")).unwrap();

        let fake = FakeRuntime::new();
        let mut config = sandbox_config("default", "running");
        config.labels.insert(POD_UID.into(), "running-uid".into());
        fake.add_sandbox(config, "").unwrap();
        let server = fake.serve(root_path.join("cri.sock")).unwrap();
        let runtime = server.connect().await.unwrap();
        let exists = |uid: &str| uid == "known";

        let swept = sweep(&runtime, &dirs, &exists).await.unwrap();
        assert!(
            !mounted_under(&dirs.pods.join("gone")),
            "the orphan's tmpfs is unmounted"
        );
        assert!(!dirs.pods.join("gone").exists(), "the orphan is removed");
        assert!(!dirs.logs.join("default_web_gone").exists(), "its logs too");
        assert_eq!(
            std::fs::read_to_string(outside.join("sentinel")).unwrap(),
            "stays",
            "a link's target outside stays"
        );
        assert_eq!(std::fs::read_to_string(outside.join("dir/inner")).unwrap(), "stays");
        assert!(
            dirs.pods.join("known/volumes").exists(),
            "a known pod's directory stays"
        );
        assert!(dirs.logs.join("default_known_known").exists());
        assert!(dirs.pods.join("running-uid/volumes").exists(), "a running pod's stays");
        assert!(
            dirs.logs.join("default_other_elsewhere").exists(),
            "logs of no pod here stay"
        );
        assert!(
            empty_dir("busy").join("open").exists() && mounted_under(&dirs.pods.join("busy")),
            "a directory still mounted stays"
        );
        assert_eq!(swept.kept.len(), 1, "{swept:?}");
        assert!(matches!(&swept.kept[0].1, HousekeepingError::StillMounted { .. }));
        assert_eq!(swept.removed.len(), 2, "{swept:?}");

        // Once its mount is free, the next pass removes it.
        drop(open);
        let swept = sweep(&runtime, &dirs, &exists).await.unwrap();
        assert!(!dirs.pods.join("busy").exists(), "{swept:?}");
        assert!(!mounted_under(&dirs.pods.join("busy")));
        assert!(dirs.pods.join("known").exists() && dirs.pods.join("running-uid").exists());
    }
}
