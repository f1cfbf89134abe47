//! The embedded default runtime: runtime-core started in this process, serving CRI on a
//! socket of its own under the root directory, and still driven through `cri-client` like
//! any other runtime (no private shortcut).
//!
//! Its configuration is a runtime-core TOML file (`--runtime-config`) or, without one, a
//! default a user can run as is: its root, state and socket under
//! `ROOT_DIR/runtime`, and a CNI bridge network on `--pod-cidr` written there.

use std::path::{Path, PathBuf};

use runtime_core::config::Config;
use runtime_core::daemon::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The CNI network name of the default configuration.
pub const DEFAULT_NETWORK_NAME: &str = "kubelet-lite";

/// Why the embedded runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The configuration file could not be used.
    #[error(transparent)]
    Config(#[from] runtime_core::config::ConfigError),
    /// The runtime could not open its stores.
    #[error("opening the embedded runtime: {0}")]
    Open(#[from] runtime_core::daemon::DaemonError),
    /// A default file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The pod CIDR is not an IPv4 network.
    #[error("invalid pod CIDR {0:?}")]
    PodCidr(String),
}

/// runtime-core serving CRI in this process. Dropping it does not stop it; call
/// [`EmbeddedRuntime::shutdown`]. Containers keep running either way.
#[derive(Debug)]
pub struct EmbeddedRuntime {
    endpoint: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl EmbeddedRuntime {
    /// Opens runtime-core with the configuration at `config_file`, or the default one
    /// under `root_dir` with a bridge network on `pod_cidr`, and serves CRI on its socket.
    pub fn start(config_file: Option<&Path>, root_dir: &Path, pod_cidr: &str) -> Result<Self, EmbeddedError> {
        let config = match config_file {
            Some(path) => Config::load(path)?,
            None => default_config(root_dir, pod_cidr)?,
        };
        let endpoint = format!("unix://{}", config.socket.display());
        if let Some(parent) = config.socket.parent() {
            create_dir(parent)?;
        }
        let runtime = Runtime::open(config)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(err) = runtime.serve(shutdown).await {
                tracing::error!(error = %err, "the embedded runtime stopped");
            }
        });
        tracing::info!(%endpoint, "embedded runtime-core started");
        Ok(EmbeddedRuntime {
            endpoint,
            stop: Some(stop),
            task,
        })
    }

    /// The CRI endpoint (`unix:///...`) it serves.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stops serving CRI (containers keep running) and waits for the server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The default configuration: everything under `ROOT/runtime`, a bridge network named
/// [`DEFAULT_NETWORK_NAME`] on [`crate::config::DEFAULT_POD_BRIDGE`] with host-local
/// addresses from `pod_cidr`.
pub fn default_config(root_dir: &Path, pod_cidr: &str) -> Result<Config, EmbeddedError> {
    let base = root_dir.join("runtime");
    let cni_conf_dir = base.join("net.d");
    create_dir(&cni_conf_dir)?;
    let conflist = default_conflist(pod_cidr, &base.join("ipam"))?;
    let path = cni_conf_dir.join("10-kubelet-lite.conflist");
    std::fs::write(&path, conflist).map_err(|source| EmbeddedError::Io { path, source })?;
    Ok(Config {
        root: base.join("root"),
        state: base.join("state"),
        socket: base.join("runtime-core.sock"),
        registry_config_path: base.join("certs.d"),
        cni_conf_dir,
        ..Config::default()
    })
}

/// A CNI bridge + portmap network list on `pod_cidr`, the gateway at its first address.
pub fn default_conflist(pod_cidr: &str, ipam_dir: &Path) -> Result<String, EmbeddedError> {
    let bad = || EmbeddedError::PodCidr(pod_cidr.to_owned());
    let (address, prefix) = pod_cidr.split_once('/').ok_or_else(bad)?;
    let address: std::net::Ipv4Addr = address.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&prefix) {
        return Err(bad());
    }
    let mask = u32::MAX << (32 - prefix);
    let network = u32::from(address) & mask;
    let gateway = std::net::Ipv4Addr::from(network + 1);
    let subnet = format!("{}/{prefix}", std::net::Ipv4Addr::from(network));
    let json = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": DEFAULT_NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": crate::config::DEFAULT_POD_BRIDGE,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.to_string_lossy(),
                    "ranges": [[{"subnet": subnet, "gateway": gateway.to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    });
    Ok(serde_json::to_string_pretty(&json).unwrap_or_default())
}

fn create_dir(path: &Path) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(path).map_err(|source| EmbeddedError::Io {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_network_uses_the_pod_cidr() {
        let text = default_conflist("198.18.100.7/24", Path::new("/r/ipam")).unwrap();
        assert!(text.contains("\"198.18.100.0/24\""), "{text}");
        assert!(text.contains("\"198.18.100.1\""), "{text}");
        assert!(default_conflist("nonsense", Path::new("/r")).is_err());
    }
}
