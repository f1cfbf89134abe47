//! The results cache: what each successful ADD ran with and returned, so that DEL and
//! CHECK use the same configuration and result, even after a restart and after the
//! configuration directory changed (libcni keeps the same in `/var/lib/cni/results`).
//!
//! One JSON file per attachment: `CACHE_DIR/NETWORK/CONTAINER_ID-IFNAME.json`, written to
//! a temporary name and renamed into place.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::warn;

/// The `kind` of the cache files this module writes.
pub const CACHE_KIND: &str = "runtime-core/cni-cache/v1";

/// One attachment's cached ADD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheEntry {
    /// [`CACHE_KIND`].
    pub kind: String,
    /// The network's name.
    pub network_name: String,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_IFNAME`.
    pub if_name: String,
    /// The namespace path ADD configured.
    pub netns: PathBuf,
    /// `CNI_ARGS`.
    pub cni_args: String,
    /// The capability arguments (`portMappings`, ...).
    pub capability_args: Map<String, Value>,
    /// The network configuration list ADD ran with.
    pub config: Value,
    /// The final result of ADD.
    pub result: Value,
}

/// Where the entry of (`network`, `container_id`, `ifname`) lives.
pub fn entry_path(cache_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    cache_dir.join(network).join(format!("{container_id}-{ifname}.json"))
}

/// Writes an entry (creating its directory).
pub fn write(path: &Path, entry: &CacheEntry) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let bytes = serde_json::to_vec_pretty(entry).map_err(io::Error::other)?;
    let temp = path.with_extension("json.tmp");
    let written = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Finds the entry of (`container_id`, `ifname`): under `network` first, then under any
/// network (the configuration may have changed since ADD). An unreadable entry is
/// reported and skipped.
pub fn find(
    cache_dir: &Path,
    network: Option<&str>,
    container_id: &str,
    ifname: &str,
) -> io::Result<Option<(PathBuf, CacheEntry)>> {
    if let Some(network) = network
        && let Some(found) = read(&entry_path(cache_dir, network, container_id, ifname))
    {
        return Ok(Some(found));
    }
    let networks = match fs::read_dir(cache_dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let mut names: Vec<String> = networks
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| Some(name.as_str()) != network)
        .collect();
    names.sort();
    Ok(names
        .iter()
        .find_map(|name| read(&entry_path(cache_dir, name, container_id, ifname))))
}

fn read(path: &Path) -> Option<(PathBuf, CacheEntry)> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
        Err(err) => {
            warn!(path = %path.display(), error = %err, "cannot read a cni cache entry");
            return None;
        }
    };
    match serde_json::from_slice::<CacheEntry>(&bytes) {
        Ok(entry) if entry.kind == CACHE_KIND => Some((path.to_path_buf(), entry)),
        Ok(entry) => {
            warn!(path = %path.display(), kind = %entry.kind, "ignoring a cni cache entry of another kind");
            None
        }
        Err(err) => {
            warn!(path = %path.display(), error = %err, "ignoring a corrupt cni cache entry");
            None
        }
    }
}

/// Removes an entry and, if it is now empty, its network's directory.
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    if let Some(dir) = path.parent() {
        // Fails while other entries remain, which is fine.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(network: &str) -> CacheEntry {
        CacheEntry {
            kind: CACHE_KIND.into(),
            network_name: network.into(),
            container_id: "abc".into(),
            if_name: "eth0".into(),
            netns: "/run/p/ns/net".into(),
            cni_args: "IgnoreUnknown=1".into(),
            capability_args: Map::new(),
            config: json!({"name": network, "plugins": [{"type": "bridge"}]}),
            result: json!({"ips": []}),
        }
    }

    #[test]
    fn entries_round_trip_and_are_found_under_any_network() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_path(dir.path(), "old", "abc", "eth0");
        assert_eq!(path, dir.path().join("old/abc-eth0.json"));
        write(&path, &entry("old")).unwrap();
        let (found, read) = find(dir.path(), Some("new"), "abc", "eth0").unwrap().unwrap();
        assert_eq!((found.as_path(), read), (path.as_path(), entry("old")));
        assert!(find(dir.path(), Some("old"), "abc", "eth1").unwrap().is_none());
        assert!(find(dir.path(), None, "other", "eth0").unwrap().is_none());
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!dir.path().join("old").exists());
        assert!(find(&dir.path().join("absent"), None, "abc", "eth0").unwrap().is_none());
    }

    #[test]
    fn corrupt_entries_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = entry_path(dir.path(), "n", "abc", "eth0");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "{").unwrap();
        assert!(find(dir.path(), Some("n"), "abc", "eth0").unwrap().is_none());
    }
}
