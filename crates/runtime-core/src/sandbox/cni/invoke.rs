//! Running one plugin: its stdin (the network configuration as libcni builds it), its
//! environment (`CNI_*`), and its exit.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tracing::debug;

use super::config::{NetworkConfigList, PluginConfig};
use super::result::plugin_error;
use super::{Attachment, CniError};
use crate::sandbox::command::{self, RunError};

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Attach the container to the network.
    Add,
    /// Detach it; must succeed when there is nothing to undo.
    Del,
    /// Verify the attachment is as ADD made it (spec 0.4.0 and later).
    Check,
}

impl Operation {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Add => "ADD",
            Operation::Del => "DEL",
            Operation::Check => "CHECK",
        }
    }
}

/// The configuration one plugin reads on stdin, as libcni's `buildOneConfig` makes it:
/// the plugin's own keys, the network's `name` and `cniVersion`, `prevResult` when there
/// is one, and `runtimeConfig` holding the capability arguments the plugin declares in
/// `capabilities` (only those, and only if the runtime has them).
pub fn plugin_stdin(
    list: &NetworkConfigList,
    plugin: &PluginConfig,
    prev_result: Option<&Value>,
    capability_args: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.conf.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev_result {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime_config: Map<String, Value> = plugin
        .capabilities
        .iter()
        .filter_map(|capability| Some((capability.clone(), capability_args.get(capability)?.clone())))
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(conf)
}

/// The capability arguments of an attachment: `portMappings` (the conventions' shape:
/// `hostPort`, `containerPort`, `protocol`, and `hostIP` when one is set), if it maps any
/// port.
pub fn capability_args(attachment: &Attachment) -> Map<String, Value> {
    let mut args = Map::new();
    if !attachment.port_mappings.is_empty() {
        let mappings = attachment
            .port_mappings
            .iter()
            .map(|mapping| {
                let mut entry = json!({
                    "hostPort": mapping.host_port,
                    "containerPort": mapping.container_port,
                    "protocol": mapping.protocol,
                });
                if !mapping.host_ip.is_empty() {
                    entry["hostIP"] = Value::String(mapping.host_ip.clone());
                }
                entry
            })
            .collect();
        args.insert("portMappings".into(), Value::Array(mappings));
    }
    args
}

/// `CNI_ARGS` for a pod, as the kubelet's runtimes pass it.
pub fn cni_args(attachment: &Attachment) -> String {
    format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        attachment.pod_namespace, attachment.pod_name, attachment.container_id, attachment.pod_uid
    )
}

/// Everything but the configuration that one plugin run needs.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// ADD, DEL or CHECK.
    pub operation: Operation,
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`; empty when the namespace is gone (DEL).
    pub netns: &'a Path,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS`.
    pub args: &'a str,
    /// The plugin directories (`CNI_PATH`, joined with `:`).
    pub bin_dirs: &'a [PathBuf],
    /// How long the plugin may run.
    pub timeout: Duration,
}

impl Invocation<'_> {
    /// The `CNI_*` environment variables.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        let mut cni_path = OsString::new();
        for (i, dir) in self.bin_dirs.iter().enumerate() {
            if i > 0 {
                cni_path.push(":");
            }
            cni_path.push(dir);
        }
        vec![
            ("CNI_COMMAND", self.operation.as_str().into()),
            ("CNI_CONTAINERID", self.container_id.into()),
            ("CNI_NETNS", self.netns.as_os_str().to_owned()),
            ("CNI_IFNAME", self.ifname.into()),
            ("CNI_ARGS", self.args.into()),
            ("CNI_PATH", cni_path),
        ]
    }

    /// Runs `plugin` with `stdin`: its result (`None` if it printed nothing, as DEL and
    /// CHECK do) or its error.
    pub async fn run(&self, plugin: &str, stdin: &Value) -> Result<Option<Value>, CniError> {
        let path = find_plugin(plugin, self.bin_dirs).ok_or_else(|| CniError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: self.bin_dirs.to_vec(),
        })?;
        let input = serde_json::to_vec(stdin).map_err(|err| CniError::Result {
            plugin: plugin.to_string(),
            reason: format!("cannot encode the configuration: {err}"),
        })?;
        let env = self.env();
        let env: Vec<(&str, &OsStr)> = env.iter().map(|(key, value)| (*key, value.as_os_str())).collect();
        let started = Instant::now();
        let output = command::run(&path, std::iter::empty::<&str>(), &env, Some(&input), self.timeout)
            .await
            .map_err(|err| match err {
                RunError::Spawn(source) | RunError::Wait(source) => CniError::Exec {
                    plugin: plugin.to_string(),
                    source,
                },
                RunError::Timeout => CniError::Timeout {
                    plugin: plugin.to_string(),
                    operation: self.operation.as_str(),
                    timeout: self.timeout,
                },
            })?;
        debug!(
            plugin,
            operation = self.operation.as_str(),
            container_id = self.container_id,
            elapsed = ?started.elapsed(),
            status = %output.status,
            stderr = %output.stderr_text(),
            "cni plugin ran"
        );
        if !output.status.success() {
            let (code, message) = plugin_error(&output.stdout, &output.stderr, output.status);
            return Err(CniError::Plugin {
                plugin: plugin.to_string(),
                operation: self.operation.as_str(),
                code,
                message,
            });
        }
        if output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|err| CniError::Result {
                plugin: plugin.to_string(),
                reason: format!("not JSON: {err}"),
            })
    }
}

/// The first executable named `plugin` in `bin_dirs`.
pub fn find_plugin(plugin: &str, bin_dirs: &[PathBuf]) -> Option<PathBuf> {
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin))
        .find(|path| command::is_executable(path))
}

#[cfg(test)]
mod tests {
    use super::super::PortMapping;
    use super::super::config::parse_conflist;
    use super::*;

    fn list() -> NetworkConfigList {
        parse_conflist(
            br#"{
                "cniVersion": "1.0.0",
                "name": "kltrc",
                "plugins": [
                    {"type": "bridge", "bridge": "kltrc0", "runtimeConfig": {"stale": true}},
                    {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": true}, "snat": true},
                    {"type": "loopback", "capabilities": {"portMappings": false}}
                ]
            }"#,
        )
        .unwrap()
    }

    fn attachment() -> Attachment {
        Attachment {
            container_id: "0123abcd".into(),
            netns: "/run/runtime-core/sandboxes/0123abcd/ns/net".into(),
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: "web-0".into(),
            pod_uid: "5f0c-11".into(),
            port_mappings: vec![
                PortMapping {
                    host_port: 8080,
                    container_port: 80,
                    protocol: "tcp".into(),
                    host_ip: String::new(),
                },
                PortMapping {
                    host_port: 5353,
                    container_port: 53,
                    protocol: "udp".into(),
                    host_ip: "127.0.0.1".into(),
                },
            ],
        }
    }

    #[test]
    fn the_first_plugin_gets_name_and_version_and_no_prev_result() {
        let list = list();
        let stdin = plugin_stdin(&list, &list.plugins[0], None, &capability_args(&attachment()));
        assert_eq!(stdin["name"], "kltrc");
        assert_eq!(stdin["cniVersion"], "1.0.0");
        assert_eq!(stdin["type"], "bridge");
        assert_eq!(stdin["bridge"], "kltrc0");
        assert!(stdin.get("prevResult").is_none());
        // Declaring no capability, it gets none, and its own runtimeConfig stays.
        assert_eq!(stdin["runtimeConfig"], json!({"stale": true}));
    }

    #[test]
    fn later_plugins_get_the_previous_result() {
        let list = list();
        let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "198.18.11.2/24"}]});
        let stdin = plugin_stdin(&list, &list.plugins[2], Some(&prev), &Map::new());
        assert_eq!(stdin["prevResult"], prev);
        assert!(stdin.get("runtimeConfig").is_none());
    }

    #[test]
    fn capability_args_go_only_to_plugins_declaring_them() {
        let list = list();
        let args = capability_args(&attachment());
        let portmap = plugin_stdin(&list, &list.plugins[1], None, &args);
        assert_eq!(
            portmap["runtimeConfig"],
            json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
            ]})
        );
        assert_eq!(portmap["snat"], true);
        // loopback declares portMappings false: nothing.
        let loopback = plugin_stdin(&list, &list.plugins[2], None, &args);
        assert!(loopback.get("runtimeConfig").is_none());
    }

    #[test]
    fn without_port_mappings_there_are_no_capability_args() {
        let mut attachment = attachment();
        attachment.port_mappings.clear();
        let list = list();
        let args = capability_args(&attachment);
        assert!(args.is_empty());
        assert!(
            plugin_stdin(&list, &list.plugins[1], None, &args)
                .get("runtimeConfig")
                .is_none()
        );
    }

    #[test]
    fn cni_args_name_the_pod() {
        assert_eq!(
            cni_args(&attachment()),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;\
             K8S_POD_INFRA_CONTAINER_ID=0123abcd;K8S_POD_UID=5f0c-11"
        );
    }

    #[test]
    fn the_environment_has_every_cni_variable() {
        let bin_dirs = [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")];
        let invocation = Invocation {
            operation: Operation::Del,
            container_id: "abc",
            netns: Path::new(""),
            ifname: "eth0",
            args: "IgnoreUnknown=1",
            bin_dirs: &bin_dirs,
            timeout: Duration::from_secs(1),
        };
        let env: Vec<(&str, String)> = invocation
            .env()
            .into_iter()
            .map(|(k, v)| (k, v.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(
            env,
            [
                ("CNI_COMMAND", "DEL".to_string()),
                ("CNI_CONTAINERID", "abc".to_string()),
                ("CNI_NETNS", String::new()),
                ("CNI_IFNAME", "eth0".to_string()),
                ("CNI_ARGS", "IgnoreUnknown=1".to_string()),
                ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni".to_string()),
            ]
        );
    }
}
