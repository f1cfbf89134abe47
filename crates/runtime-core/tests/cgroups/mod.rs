//! What the stats and resources tests share: the daemon's network (bridge `kltstat0`,
//! `198.18.42.0/24`), a pod cgroup parent made and removed as the kubelet would, and the
//! cgroup v1 files of a container read from the host.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use cri_client::v1::LinuxPodSandboxConfig;

use crate::common::{Env, Pod};

/// The pod network of the stats and resources daemons (one binary runs at a time).
pub(crate) const BRIDGE: &str = "kltstat0";
/// The subnet of [`BRIDGE`].
pub(crate) const SUBNET: &str = "198.18.42.0/24";

/// Where the cgroup v1 hierarchies are mounted.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers a container gets a directory in.
pub(crate) const CONTROLLERS: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids"];

/// The environment of the stats and resources tests: [`Env`] on [`BRIDGE`], once
/// [`require_cgroup_v1`] passed.
pub(crate) fn setup() -> anyhow::Result<Env> {
    require_cgroup_v1()?;
    Env::setup(BRIDGE, SUBNET)
}

/// Fails (as a missing prerequisite) unless the host has cgroup v1 resource controllers,
/// which these tests read (pure v2 is covered by the unit tests on fixtures).
pub(crate) fn require_cgroup_v1() -> anyhow::Result<()> {
    if Path::new(CGROUP_ROOT).join("memory/memory.limit_in_bytes").exists() {
        Ok(())
    } else {
        Err(test_harness::Missing::new(["cgroup v1 memory controller at /sys/fs/cgroup/memory"]).into())
    }
}

/// A pod-level cgroup (`/klt-<name>-<pid>`) in every v1 controller, as the kubelet makes
/// one per pod before RunPodSandbox; removed (with what runc left in it) on drop.
pub(crate) struct PodCgroup {
    /// The cgroup parent to give the pod.
    pub(crate) path: String,
}

impl PodCgroup {
    /// Makes `/klt-<name>-<pid>` in each controller of [`CONTROLLERS`].
    pub(crate) fn create(name: &str) -> anyhow::Result<PodCgroup> {
        let pod = PodCgroup {
            path: format!("/klt-{name}-{}", std::process::id()),
        };
        for controller in CONTROLLERS {
            let dir = pod.dir(controller);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // A new cpuset cgroup starts with no CPUs and no memory nodes: inherit them.
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = std::fs::read_to_string(Path::new(CGROUP_ROOT).join("cpuset").join(file))?;
            std::fs::write(pod.dir("cpuset").join(file), parent.trim())?;
        }
        Ok(pod)
    }

    /// The pod cgroup's directory in `controller`.
    pub(crate) fn dir(&self, controller: &str) -> PathBuf {
        Path::new(CGROUP_ROOT)
            .join(controller)
            .join(self.path.trim_start_matches('/'))
    }

    /// RunPodSandbox of a pod for `test` whose cgroup parent is this cgroup.
    pub(crate) async fn run_pod(&self, env: &Env, test: &str) -> anyhow::Result<Pod> {
        let mut config = env.pod_config(test)?;
        config.linux = Some(LinuxPodSandboxConfig {
            cgroup_parent: self.path.clone(),
            ..config.linux.unwrap_or_default()
        });
        env.run_pod_with(config).await
    }

    /// Writes `value` to `file` of the pod cgroup in `controller`.
    pub(crate) fn set(&self, controller: &str, file: &str, value: &str) -> anyhow::Result<()> {
        let path = self.dir(controller).join(file);
        std::fs::write(&path, value).with_context(|| format!("writing {value} to {}", path.display()))
    }
}

impl Drop for PodCgroup {
    fn drop(&mut self) {
        for controller in CONTROLLERS {
            let dir = self.dir(controller);
            // Children first: runc removes a container's cgroup on delete, but a failed
            // test may leave one behind.
            if let Ok(children) = std::fs::read_dir(&dir) {
                for child in children.flatten() {
                    if child.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(child.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

/// The trimmed text of a container's cgroup v1 `file` in `controller`, read on the host;
/// the container's cgroup is `<parent>/<container id>` (the runtime's default parent is
/// `/runtime-core`).
pub(crate) fn container_file(parent: &str, container_id: &str, controller: &str, file: &str) -> anyhow::Result<String> {
    let path = Path::new(CGROUP_ROOT)
        .join(controller)
        .join(parent.trim_start_matches('/'))
        .join(container_id)
        .join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}
