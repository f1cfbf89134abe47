//! CNI network configurations as found in the configuration directory (`.conflist`, or a
//! single plugin's `.conf`), and the result cache entries read back after a restart.
//! Parsing must not panic; a configuration that parses has a network name that is a
//! single path component (it names a directory of the result cache) and plugin types that
//! are plain file names (they are joined to the plugin directories); its raw form reads
//! back the same; and building each plugin's stdin keeps the network's name and version.

#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use runtime_core::sandbox::cni::cache::{CacheEntry, entry_path};
use runtime_core::sandbox::cni::config::{
    NetworkConfigList, list_from_value, parse_conf, parse_conflist, supports_check, version_tuple,
};
use runtime_core::sandbox::cni::invoke::plugin_stdin;
use serde_json::{Map, Value, json};

fn check(list: &NetworkConfigList) {
    let cache = Path::new("/var/lib/cni/results");
    let entry = entry_path(cache, &list.name, "0123abcd", "eth0");
    assert!(entry.starts_with(cache));
    let relative = entry.strip_prefix(cache).expect("under the cache");
    assert!(
        relative.components().all(|c| matches!(c, Component::Normal(_))),
        "{entry:?}"
    );
    assert_eq!(relative.components().count(), 2, "{entry:?}");

    let again = list_from_value(list.raw.clone()).expect("the raw form of a parsed list parses");
    assert_eq!(
        (&again.name, &again.cni_version, again.disable_check),
        (&list.name, &list.cni_version, list.disable_check)
    );
    assert_eq!(again.plugins.len(), list.plugins.len());

    let mut capability_args = Map::new();
    capability_args.insert(
        "portMappings".into(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    let prev = json!({"cniVersion": list.cni_version, "ips": []});
    for (i, plugin) in list.plugins.iter().enumerate() {
        let bin = Path::new("/usr/lib/cni");
        let binary = bin.join(&plugin.plugin_type);
        assert_eq!(
            binary.parent(),
            Some(bin),
            "plugin type {:?} leaves the plugin directory",
            plugin.plugin_type
        );
        assert_eq!(again.plugins[i].plugin_type, plugin.plugin_type);
        let stdin = plugin_stdin(list, plugin, (i > 0).then_some(&prev), &capability_args);
        assert_eq!(stdin["name"], Value::String(list.name.clone()));
        assert_eq!(stdin["cniVersion"], Value::String(list.cni_version.clone()));
    }
    let _ = supports_check(&list.cni_version);
    let _ = version_tuple(&list.cni_version);
}

fuzz_target!(|input: &[u8]| {
    if let Ok(list) = parse_conflist(input) {
        check(&list);
    }
    if let Ok(list) = parse_conf(input) {
        check(&list);
    }
    if let Ok(entry) = serde_json::from_slice::<CacheEntry>(input) {
        let _ = list_from_value(entry.config.clone()).map(|list| check(&list));
        let written = serde_json::to_vec(&entry).expect("an entry serializes");
        let again: CacheEntry = serde_json::from_slice(&written).expect("a written entry parses");
        assert_eq!(again.network_name, entry.network_name);
        assert_eq!(again.result, entry.result);
    }
});
