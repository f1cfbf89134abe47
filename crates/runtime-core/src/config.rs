//! The daemon's configuration: a TOML file whose every key has a default.
//!
//! ```toml
//! root = "/var/lib/runtime-core"          # images, metadata
//! state = "/run/runtime-core"             # sockets and other runtime state
//! socket = "/run/runtime-core/runtime-core.sock"
//! registry_config_path = "/etc/runtime-core/certs.d"   # containerd-style hosts.toml dirs
//! ```

use std::path::{Path, PathBuf};

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root: PathBuf::from("/var/lib/runtime-core"),
            state: PathBuf::from("/run/runtime-core"),
            socket: PathBuf::from("/run/runtime-core/runtime-core.sock"),
            registry_config_path: PathBuf::from("/etc/runtime-core/certs.d"),
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
    }
}
