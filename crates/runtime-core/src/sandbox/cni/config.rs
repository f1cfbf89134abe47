//! Network configuration files: which one the runtime uses and what it says.
//!
//! As containerd (go-cni over libcni) does: the candidates are the files of the
//! configuration directory ending in `.conflist`, `.conf` or `.json`, in lexical order of
//! their names, and the first one is the network. A `.conflist` holds a list of plugins;
//! the others hold one plugin's configuration, which is wrapped into a list of one. If
//! that first file is not a usable configuration, the network is not ready (with the
//! reason), rather than silently being another file's network.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// The file name endings of network configuration files.
pub const CONFIG_EXTENSIONS: &[&str] = &["conflist", "conf", "json"];

/// The spec version a configuration without `cniVersion` means (libcni's reading).
const DEFAULT_CNI_VERSION: &str = "0.1.0";

/// A network: its name, spec version and plugin chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    /// The network's name (plugins tag their iptables rules and IPAM reservations with it).
    pub name: String,
    /// The CNI spec version every plugin is told.
    pub cni_version: String,
    /// `disableCheck`: CHECK is a no-op for this network.
    pub disable_check: bool,
    /// The plugins, in ADD order.
    pub plugins: Vec<PluginConfig>,
    /// The whole list as JSON (a `.conf` file wrapped into a list): what the result cache
    /// keeps, so that DEL runs with the configuration ADD ran with.
    pub raw: Value,
}

/// One plugin of a network.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfig {
    /// `type`: the plugin binary's name.
    pub plugin_type: String,
    /// The capabilities it declares true (`capabilities: {"portMappings": true}`): it gets
    /// the runtime's arguments for those in `runtimeConfig`.
    pub capabilities: BTreeSet<String>,
    /// Its configuration object as written.
    pub conf: Map<String, Value>,
}

/// The network configuration of directory `dir`: the first candidate file, parsed.
/// `Err` says why there is no usable network (for `NetworkReady=false`).
pub fn load_dir(dir: &Path) -> Result<(PathBuf, NetworkConfigList), String> {
    let files = candidate_files(dir).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => format!("no network config found in {}", dir.display()),
        _ => format!("reading {}: {err}", dir.display()),
    })?;
    let Some(path) = files.into_iter().next() else {
        return Err(format!("no network config found in {}", dir.display()));
    };
    let bytes = fs::read(&path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let parsed = if path.extension().is_some_and(|ext| ext == "conflist") {
        parse_conflist(&bytes)
    } else {
        parse_conf(&bytes)
    };
    let list = parsed.map_err(|reason| format!("network config {}: {reason}", path.display()))?;
    Ok((path, list))
}

/// The candidate files of `dir` (by name ending), sorted by name.
pub fn candidate_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.extension()
                .and_then(|ext| ext.to_str())
                .is_some_and(|ext| CONFIG_EXTENSIONS.contains(&ext))
                && !path.is_dir()
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Parses a configuration list (`.conflist`).
pub fn parse_conflist(bytes: &[u8]) -> Result<NetworkConfigList, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| format!("not JSON: {err}"))?;
    list_from_value(value)
}

/// Reads a configuration list already parsed as JSON (as the result cache keeps it).
pub fn list_from_value(value: Value) -> Result<NetworkConfigList, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let name = network_name(object)?;
    let cni_version = cni_version(object)?;
    let disable_check = match object.get("disableCheck") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        // libcni also takes the string forms.
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(other) => return Err(format!("disableCheck {other} is not a boolean")),
    };
    let plugins = object
        .get("plugins")
        .and_then(Value::as_array)
        .ok_or("no \"plugins\" list (is it a single plugin's .conf?)")?;
    if plugins.is_empty() {
        return Err("the plugins list is empty".into());
    }
    let plugins = plugins
        .iter()
        .enumerate()
        .map(|(i, plugin)| plugin_config(plugin).map_err(|reason| format!("plugin {i}: {reason}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(NetworkConfigList {
        name,
        cni_version,
        disable_check,
        plugins,
        raw: value,
    })
}

/// Parses a single plugin's configuration (`.conf`, `.json`) as a list of one.
pub fn parse_conf(bytes: &[u8]) -> Result<NetworkConfigList, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|err| format!("not JSON: {err}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    if object.contains_key("plugins") && !object.contains_key("type") {
        return Err("holds a plugins list: name it .conflist".into());
    }
    let name = network_name(object)?;
    let cni_version = cni_version(object)?;
    let plugin = plugin_config(&value)?;
    Ok(NetworkConfigList {
        raw: json!({ "cniVersion": cni_version, "name": name, "plugins": [value] }),
        name,
        cni_version,
        disable_check: false,
        plugins: vec![plugin],
    })
}

fn network_name(object: &Map<String, Value>) -> Result<String, String> {
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .ok_or("no network \"name\"")?;
    // libcni's rule; the name also names a directory of the result cache.
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid {
        return Err(format!("network name {name:?} must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"));
    }
    Ok(name.to_string())
}

fn cni_version(object: &Map<String, Value>) -> Result<String, String> {
    match object.get("cniVersion") {
        None | Some(Value::Null) => Ok(DEFAULT_CNI_VERSION.to_string()),
        Some(Value::String(version)) if version.is_empty() => Ok(DEFAULT_CNI_VERSION.to_string()),
        Some(Value::String(version)) => Ok(version.clone()),
        Some(other) => Err(format!("cniVersion {other} is not a string")),
    }
}

fn plugin_config(value: &Value) -> Result<PluginConfig, String> {
    let conf = value.as_object().ok_or("not a JSON object")?;
    let plugin_type = conf.get("type").and_then(Value::as_str).ok_or("no plugin \"type\"")?;
    // The type is joined to the plugin directories: a plain file name only.
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return Err(format!("plugin type {plugin_type:?} is not a file name"));
    }
    let capabilities = conf
        .get("capabilities")
        .and_then(Value::as_object)
        .map(|caps| {
            caps.iter()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(PluginConfig {
        plugin_type: plugin_type.to_string(),
        capabilities,
        conf: conf.clone(),
    })
}

/// A CNI spec version as numbers (`0.4.0` is `(0, 4, 0)`); unparsable parts count as 0.
pub fn version_tuple(version: &str) -> (u64, u64, u64) {
    let mut parts = version.split('.').map(|part| part.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// True for versions whose plugins know CHECK and take the cached result as
/// `prevResult` on DEL (0.4.0 and later).
pub fn supports_check(version: &str) -> bool {
    version_tuple(version) >= (0, 4, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE_CONFLIST: &str = r#"{
        "cniVersion": "1.0.0",
        "name": "kltrc",
        "plugins": [
            {"type": "bridge", "bridge": "kltrc0", "ipam": {"type": "host-local"}},
            {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}},
            {"type": "loopback"}
        ]
    }"#;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn a_conflist_gives_its_plugins_in_order_with_their_true_capabilities() {
        let list = parse_conflist(BRIDGE_CONFLIST.as_bytes()).unwrap();
        assert_eq!(list.name, "kltrc");
        assert_eq!(list.cni_version, "1.0.0");
        assert!(!list.disable_check);
        let types: Vec<&str> = list.plugins.iter().map(|p| p.plugin_type.as_str()).collect();
        assert_eq!(types, ["bridge", "portmap", "loopback"]);
        assert_eq!(
            list.plugins[1].capabilities.iter().collect::<Vec<_>>(),
            ["portMappings"]
        );
        assert!(list.plugins[0].capabilities.is_empty());
        assert_eq!(list.plugins[0].conf["bridge"], "kltrc0");
    }

    #[test]
    fn a_single_conf_is_wrapped_into_a_list() {
        let list = parse_conf(br#"{"cniVersion": "0.4.0", "name": "n", "type": "bridge", "bridge": "b0"}"#).unwrap();
        assert_eq!(list.plugins.len(), 1);
        assert_eq!(list.plugins[0].plugin_type, "bridge");
        assert_eq!(list.raw["plugins"][0]["bridge"], "b0");
        assert_eq!(list.raw["name"], "n");
        assert_eq!(list.raw["cniVersion"], "0.4.0");
    }

    #[test]
    fn malformed_configs_say_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            ("[]", "not a JSON object"),
            (r#"{"name": "n", "plugins": []}"#, "empty"),
            (r#"{"name": "n"}"#, "no \"plugins\""),
            (r#"{"plugins": [{"type": "bridge"}]}"#, "no network \"name\""),
            (r#"{"name": "../x", "plugins": [{"type": "bridge"}]}"#, "must match"),
            (
                r#"{"name": "n", "plugins": [{"bridge": "b"}]}"#,
                "plugin 0: no plugin \"type\"",
            ),
            (
                r#"{"name": "n", "plugins": [{"type": "../../bin/sh"}]}"#,
                "not a file name",
            ),
            (
                r#"{"name": "n", "cniVersion": 1, "plugins": [{"type": "x"}]}"#,
                "not a string",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_conflist(text.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        assert!(
            parse_conf(br#"{"name": "n", "plugins": [{"type": "x"}]}"#)
                .unwrap_err()
                .contains(".conflist")
        );
    }

    #[test]
    fn disable_check_and_a_missing_version_read_as_libcni_reads_them() {
        let list = parse_conflist(br#"{"name": "n", "disableCheck": "true", "plugins": [{"type": "x"}]}"#).unwrap();
        assert!(list.disable_check);
        assert_eq!(list.cni_version, "0.1.0");
    }

    #[test]
    fn the_first_candidate_in_lexical_order_is_the_network() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "20-b.conflist", &BRIDGE_CONFLIST.replace("kltrc", "b"));
        write(
            dir.path(),
            "10-a.conf",
            r#"{"cniVersion": "1.0.0", "name": "a", "type": "bridge"}"#,
        );
        write(dir.path(), "05-ignored.txt", "not a config");
        fs::create_dir(dir.path().join("00-dir.conflist")).unwrap();
        let (path, list) = load_dir(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("10-a.conf"));
        assert_eq!(list.name, "a");
        assert_eq!(
            candidate_files(dir.path()).unwrap(),
            [dir.path().join("10-a.conf"), dir.path().join("20-b.conflist")]
        );
    }

    #[test]
    fn a_broken_first_file_makes_the_network_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "10-broken.conflist", "{");
        write(dir.path(), "20-good.conflist", BRIDGE_CONFLIST);
        let reason = load_dir(dir.path()).unwrap_err();
        assert!(
            reason.contains("10-broken.conflist") && reason.contains("not JSON"),
            "{reason}"
        );
    }

    #[test]
    fn an_empty_or_missing_directory_has_no_network() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_dir(dir.path()).unwrap_err().contains("no network config found"));
        assert!(
            load_dir(&dir.path().join("absent"))
                .unwrap_err()
                .contains("no network config found")
        );
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(supports_check("0.4.0"));
        assert!(supports_check("1.0.0"));
        assert!(supports_check("1.1.0"));
        assert!(!supports_check("0.3.1"));
        assert!(version_tuple("0.10.0") > version_tuple("0.9.0"));
    }
}
