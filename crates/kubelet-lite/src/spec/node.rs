//! What the translation needs to know about the node, and where a pod's files live on it.

use std::path::PathBuf;

/// The node a pod runs on, as the translation needs it.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The node's name (`spec.nodeName` of its pods).
    pub node_name: String,
    /// The node's IP (`status.hostIP` of its pods).
    pub host_ip: String,
    /// Cluster DNS servers for `ClusterFirst` pods (`--cluster-dns`); empty falls back to
    /// the host's resolv.conf, as the kubelet does.
    pub cluster_dns: Vec<String>,
    /// The cluster domain (`--cluster-domain`, e.g. `cluster.local`).
    pub cluster_domain: String,
    /// kubelet-lite's root directory (`--root-dir`): pods live in `root_dir/pods/<uid>`.
    pub root_dir: PathBuf,
    /// Where the runtime writes pod logs, one directory per pod: [`POD_LOGS_ROOT`], as
    /// the kubelet's `podLogsDir`; tests point it at a directory of their own.
    pub pod_logs_dir: PathBuf,
}

impl Default for NodeContext {
    fn default() -> NodeContext {
        NodeContext {
            node_name: String::new(),
            host_ip: String::new(),
            cluster_dns: Vec::new(),
            cluster_domain: String::new(),
            root_dir: PathBuf::new(),
            pod_logs_dir: PathBuf::from(POD_LOGS_ROOT),
        }
    }
}

/// The directory that holds every pod's files.
pub const PODS_DIR: &str = "pods";
/// Where the CRI runtime is told to put pod logs.
pub const POD_LOGS_ROOT: &str = "/var/log/pods";

impl NodeContext {
    /// `root_dir/pods/<uid>`: everything kubelet-lite keeps for one pod.
    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.root_dir.join(PODS_DIR).join(pod_uid)
    }

    /// `root_dir/pods/<uid>/volumes`: the pod's volumes, one directory per plugin.
    pub fn volumes_dir(&self, pod_uid: &str) -> PathBuf {
        self.pod_dir(pod_uid).join("volumes")
    }

    /// `root_dir/pods/<uid>/volumes/<plugin>/<name>`, where the plugin is spelt as the
    /// kubelet does (`kubernetes.io~empty-dir`, `kubernetes.io~configmap`...).
    pub fn volume_dir(&self, pod_uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.volumes_dir(pod_uid).join(plugin).join(name)
    }

    /// `root_dir/pods/<uid>/volume-subpaths/<volume>/<container>/<index>`: where the
    /// sub path of the container's `index`th volume mount is bind-mounted, as the kubelet
    /// lays them out.
    pub fn sub_path_mount(&self, pod_uid: &str, volume: &str, container: &str, index: usize) -> PathBuf {
        self.pod_dir(pod_uid)
            .join("volume-subpaths")
            .join(volume)
            .join(container)
            .join(index.to_string())
    }

    /// `root_dir/pods/<uid>/etc-hosts`: the /etc/hosts file of non-hostNetwork pods.
    pub fn etc_hosts_path(&self, pod_uid: &str) -> PathBuf {
        self.pod_dir(pod_uid).join("etc-hosts")
    }

    /// `root_dir/pods/<uid>/containers/<container>/<file>`: per-container files such as the
    /// termination log (one per restart, as the kubelet names them).
    pub fn container_file(&self, pod_uid: &str, container: &str, file: &str) -> PathBuf {
        self.pod_dir(pod_uid).join("containers").join(container).join(file)
    }

    /// `<pod_logs_dir>/<namespace>_<name>_<uid>` (`/var/log/pods/...` on a node): the
    /// sandbox's log directory, as the kubelet names it (`kubectl logs` tooling and log
    /// shippers expect this layout).
    pub fn pod_log_directory(&self, namespace: &str, name: &str, uid: &str) -> PathBuf {
        self.pod_logs_dir.join(format!("{namespace}_{name}_{uid}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let node = NodeContext {
            root_dir: "/var/lib/kubelet-lite".into(),
            ..Default::default()
        };
        assert_eq!(
            node.volume_dir("u1", "kubernetes.io~secret", "token"),
            PathBuf::from("/var/lib/kubelet-lite/pods/u1/volumes/kubernetes.io~secret/token")
        );
        assert_eq!(
            node.container_file("u1", "web", "3"),
            PathBuf::from("/var/lib/kubelet-lite/pods/u1/containers/web/3")
        );
        assert_eq!(
            node.pod_log_directory("ns", "p", "u1"),
            PathBuf::from("/var/log/pods/ns_p_u1")
        );
    }
}
