//! The daemon's configuration: a TOML file whose every key has a default.
//!
//! ```toml
//! root = "/var/lib/runtime-core"          # images, container bundles, metadata
//! state = "/run/runtime-core"             # sockets, sandboxes, monitors, runc state
//! socket = "/run/runtime-core/runtime-core.sock"
//! registry_config_path = "/etc/runtime-core/certs.d"   # containerd-style hosts.toml dirs
//! cni_conf_dir = "/etc/cni/net.d"
//! cni_bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
//! # cni_conf_template = "/etc/runtime-core/cni.template"  # rendered with the pod CIDR
//! log_max_line = 16384                    # longer output lines become partial (P) log records
//! container_events_buffer = 1024          # GetContainerEvents: a subscriber this far behind is dropped
//! default_runtime = "runc"
//!
//! [runtimes.runc]                         # runtime handlers: OCI runtimes by name
//! binary = "runc"
//!
//! [streaming]                             # the exec/attach/port-forward server
//! address = "127.0.0.1:0"                 # port 0: any free port (the URLs name it)
//! idle_timeout_seconds = 14400            # a session with no traffic this long ends
//! ```

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the daemon keeps its files and listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Persistent data: images (content and unpacked layers) and the metadata database.
    pub root: PathBuf,
    /// Runtime state that does not survive a reboot.
    pub state: PathBuf,
    /// The CRI socket.
    pub socket: PathBuf,
    /// A directory of `<registry>/hosts.toml` files (containerd's `certs.d` format): mirrors,
    /// plain-HTTP and TLS settings per registry. Missing means every registry is contacted
    /// directly over HTTPS.
    pub registry_config_path: PathBuf,
    /// Where CNI network configurations are read from.
    pub cni_conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// A CNI network configuration template (containerd's `conf_template`, a Go template
    /// of `.PodCIDR`, `.PodCIDRRanges` and `.Routes`): while `cni_conf_dir` holds no
    /// network, UpdateRuntimeConfig renders it with the node's pod CIDRs into
    /// `cni_conf_dir/10-runtime-core-net.conflist`. None by default.
    pub cni_conf_template: Option<PathBuf>,
    /// The longest line a container log record holds; longer output is split into partial
    /// (`P`) records.
    pub log_max_line: usize,
    /// How many container events a GetContainerEvents subscriber may fall behind before
    /// its stream ends (it must then relist and subscribe again).
    pub container_events_buffer: usize,
    /// The runtime handler for sandboxes that name none.
    pub default_runtime: String,
    /// Runtime handlers: the OCI runtime (runc-compatible) each name runs.
    pub runtimes: BTreeMap<String, RuntimeHandler>,
    /// The streaming server the Exec, Attach and PortForward URLs point at.
    pub streaming: StreamingConfig,
}

/// The `[streaming]` section: where the exec, attach and port-forward server listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingConfig {
    /// The address to listen on; port 0 picks a free port. Loopback by default, as
    /// containerd's stream server: the kubelet, on the same node, proxies to it.
    pub address: SocketAddr,
    /// A session with no traffic for this many seconds is closed (4 hours by default,
    /// the kubelet's `streamingConnectionIdleTimeout`).
    pub idle_timeout_seconds: u64,
}

impl StreamingConfig {
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_seconds)
    }
}

impl Default for StreamingConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            idle_timeout_seconds: 4 * 60 * 60,
        }
    }
}

/// An OCI runtime a sandbox can ask for by handler name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeHandler {
    /// The runc-compatible binary (a path, or a name looked up in PATH).
    pub binary: PathBuf,
}

/// The runtime handler every configuration has unless it says otherwise.
const DEFAULT_RUNTIME: &str = "runc";

impl Default for Config {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/var/lib/runtime-core"),
            state: PathBuf::from("/run/runtime-core"),
            socket: PathBuf::from("/run/runtime-core/runtime-core.sock"),
            registry_config_path: PathBuf::from("/etc/runtime-core/certs.d"),
            cni_conf_dir: PathBuf::from("/etc/cni/net.d"),
            cni_bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cni_conf_template: None,
            log_max_line: 16 * 1024,
            container_events_buffer: crate::pods::DEFAULT_EVENTS_BUFFER,
            default_runtime: DEFAULT_RUNTIME.to_string(),
            runtimes: BTreeMap::from([(
                DEFAULT_RUNTIME.to_string(),
                RuntimeHandler {
                    binary: PathBuf::from("runc"),
                },
            )]),
            streaming: StreamingConfig::default(),
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("parsing {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The TOML error.
        source: toml::de::Error,
    },
}

impl Config {
    /// Reads the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// The metadata database.
    pub fn metadata_path(&self) -> PathBuf {
        self.root.join("metadata.redb")
    }

    /// The image store (content and unpacked layers).
    pub fn images_path(&self) -> PathBuf {
        self.root.join("images")
    }

    /// Container bundles (config.json, rootfs mount point, writable layer).
    pub fn containers_path(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// Sandbox directories (pinned namespaces, resolv.conf, hostname, hosts).
    pub fn sandboxes_path(&self) -> PathBuf {
        self.state.join("sandboxes")
    }

    /// Monitor directories, one per container.
    pub fn monitors_path(&self) -> PathBuf {
        self.state.join("monitors")
    }

    /// runc's own state (`runc --root`) for the runtime handler `name`.
    pub fn runc_root(&self, name: &str) -> PathBuf {
        self.state.join("runc").join(name)
    }

    /// CNI's cache of attachment results, for DEL after a restart.
    pub fn cni_cache_path(&self) -> PathBuf {
        self.root.join("cni-cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_keys_take_defaults_and_unknown_keys_are_refused() {
        let config: Config = toml::from_str("root = \"/data\"").expect("parse");
        assert_eq!(config.root, PathBuf::from("/data"));
        assert_eq!(config.socket, Config::default().socket);
        assert!(toml::from_str::<Config>("rot = \"/typo\"").is_err());
        let handlers: Config = toml::from_str("[runtimes.crun]\nbinary = \"/usr/bin/crun\"").expect("parse");
        assert_eq!(handlers.runtimes["crun"].binary, PathBuf::from("/usr/bin/crun"));
    }

    #[test]
    fn the_streaming_server_listens_on_a_free_loopback_port_unless_told() {
        let config = Config::default();
        assert_eq!(config.streaming.address, "127.0.0.1:0".parse().expect("address"));
        assert_eq!(config.streaming.idle_timeout(), Duration::from_secs(4 * 3600));
        let set: Config =
            toml::from_str("[streaming]\naddress = \"198.18.40.1:10010\"\nidle_timeout_seconds = 60").expect("parse");
        assert_eq!(set.streaming.address, "198.18.40.1:10010".parse().expect("address"));
        assert_eq!(set.streaming.idle_timeout(), Duration::from_secs(60));
        assert!(toml::from_str::<Config>("[streaming]\nport = 1").is_err());
    }
}
