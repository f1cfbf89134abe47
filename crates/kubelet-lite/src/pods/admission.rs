//! Pod admission: what the node checks before it runs anything of a pod. A refused pod
//! is never handed to the runtime; it ends in phase `Failed` with the reason and message
//! of the check that refused it, as the kubelet's admit handlers do.
//!
//! The check made here is the kubelet's sysctl allowlist: a pod may set the *safe*
//! sysctls, which are namespaced and cannot affect other pods or the node, and only the
//! unsafe ones the node's operator allowed with `--allowed-unsafe-sysctls`
//! (`allowedUnsafeSysctls`), by name or by a pattern ending in `*`.

use k8s_openapi::api::core::v1::Pod;

/// The waiting reason and pod status reason of a pod refused for its sysctls.
pub const SYSCTL_FORBIDDEN: &str = "SysctlForbidden";

/// The sysctls every pod may set: namespaced, and isolated from other pods and the node
/// (the kubelet's safe set).
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// The namespace a sysctl belongs to, which decides whether host namespaces forbid it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Ipc,
    Net,
}

impl Namespace {
    /// The namespace of a (dotted) sysctl name, or of the names a pattern prefix covers;
    /// `None` when it is not namespaced.
    fn of(name: &str) -> Option<Namespace> {
        const IPC_PREFIXES: &[&str] = &["kernel.shm", "kernel.msg", "fs.mqueue."];
        if name == "kernel.sem" || IPC_PREFIXES.iter().any(|p| name.starts_with(p)) {
            Some(Namespace::Ipc)
        } else if name.starts_with("net.") {
            Some(Namespace::Net)
        } else {
            None
        }
    }

    fn host_flag(self) -> &'static str {
        match self {
            Namespace::Ipc => "ipc",
            Namespace::Net => "net",
        }
    }
}

/// An unusable `--allowed-unsafe-sysctls` entry.
#[derive(Debug, thiserror::Error)]
#[error("allowed unsafe sysctl {pattern:?}: {reason}")]
pub struct AllowlistError {
    /// The entry as given.
    pub pattern: String,
    /// Why it cannot be used.
    pub reason: &'static str,
}

/// Which sysctls pods may set on this node: the safe ones and the allowed unsafe ones.
/// The default allows the safe ones only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlAllowlist {
    /// Allowed by full name (the safe set included).
    names: Vec<String>,
    /// Allowed by prefix (a pattern `prefix*`).
    prefixes: Vec<String>,
}

impl Default for SysctlAllowlist {
    fn default() -> SysctlAllowlist {
        SysctlAllowlist {
            names: SAFE_SYSCTLS.iter().map(|s| (*s).to_owned()).collect(),
            prefixes: Vec::new(),
        }
    }
}

impl SysctlAllowlist {
    /// The safe sysctls and `unsafe_patterns` (names, or prefixes ending in `*`). Each
    /// pattern must name namespaced sysctls, as the kubelet requires; slashes may
    /// separate the parts of a name instead of dots.
    pub fn new<S: AsRef<str>>(unsafe_patterns: &[S]) -> Result<SysctlAllowlist, AllowlistError> {
        let mut list = SysctlAllowlist::default();
        for pattern in unsafe_patterns {
            let pattern = pattern.as_ref();
            let refuse = |reason| AllowlistError {
                pattern: pattern.to_owned(),
                reason,
            };
            let dotted = dotted(pattern);
            if let Some(prefix) = dotted.strip_suffix('*') {
                if prefix.contains('*') {
                    return Err(refuse("only a trailing '*' is allowed"));
                }
                if Namespace::of(prefix).is_none() {
                    return Err(refuse("it does not name namespaced sysctls"));
                }
                list.prefixes.push(prefix.to_owned());
            } else {
                if dotted.is_empty() || dotted.contains('*') {
                    return Err(refuse("only a trailing '*' is allowed"));
                }
                if Namespace::of(&dotted).is_none() {
                    return Err(refuse("it is not a namespaced sysctl"));
                }
                list.names.push(dotted);
            }
        }
        Ok(list)
    }

    /// Checks one sysctl of a pod: allowed, and not in a namespace the pod shares with
    /// the host. `Err` is the kubelet's message.
    fn check(&self, name: &str, host_network: bool, host_ipc: bool) -> Result<(), String> {
        let dotted = dotted(name);
        let allowed = self.names.contains(&dotted) || self.prefixes.iter().any(|p| dotted.starts_with(p.as_str()));
        if !allowed {
            return Err(format!("{name:?} not allowlisted"));
        }
        match Namespace::of(&dotted) {
            Some(ns @ Namespace::Net) if host_network => {
                Err(format!("{name:?} not allowed with host {} enabled", ns.host_flag()))
            }
            Some(ns @ Namespace::Ipc) if host_ipc => {
                Err(format!("{name:?} not allowed with host {} enabled", ns.host_flag()))
            }
            _ => Ok(()),
        }
    }
}

/// Why a pod was refused: its status reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The pod's `status.reason` (e.g. [`SYSCTL_FORBIDDEN`]).
    pub reason: &'static str,
    /// The pod's `status.message`.
    pub message: String,
}

/// Admits `pod` or says why not.
pub fn admit(pod: &Pod, sysctls: &SysctlAllowlist) -> Result<(), Rejection> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let host_network = spec.host_network.unwrap_or(false);
    let host_ipc = spec.host_ipc.unwrap_or(false);
    let requested = spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.sysctls.as_deref())
        .unwrap_or_default();
    for sysctl in requested {
        sysctls
            .check(&sysctl.name, host_network, host_ipc)
            .map_err(|why| Rejection {
                reason: SYSCTL_FORBIDDEN,
                message: format!("Pod forbidden sysctl: {why}"),
            })?;
    }
    Ok(())
}

/// A sysctl name with dots between its parts: `net/ipv4/conf/eth0.1/rp_filter` becomes
/// `net.ipv4.conf.eth0/1.rp_filter`, as the kubelet converts slash-separated names.
fn dotted(name: &str) -> String {
    if !name.contains('/') {
        return name.to_owned();
    }
    name.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn with_sysctls(names: &[&str], extra: serde_json::Value) -> Pod {
        let sysctls: Vec<_> = names
            .iter()
            .map(|n| serde_json::json!({"name": n, "value": "1"}))
            .collect();
        let mut spec = serde_json::json!({"containers": [], "securityContext": {"sysctls": sysctls}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        pod(spec)
    }

    #[test]
    fn safe_sysctls_are_admitted_and_unsafe_ones_only_when_allowed() {
        let default = SysctlAllowlist::default();
        let allowing = SysctlAllowlist::new(&["kernel.msg*", "net.core.somaxconn"]).unwrap();
        let cases = [
            ("no sysctls", vec![], &default, true),
            (
                "a safe sysctl",
                vec!["net.ipv4.ip_unprivileged_port_start"],
                &default,
                true,
            ),
            (
                "a safe sysctl with slashes",
                vec!["kernel/shm_rmid_forced"],
                &default,
                true,
            ),
            ("an unsafe sysctl", vec!["kernel.msgmax"], &default, false),
            (
                "an unsafe sysctl allowed by pattern",
                vec!["kernel.msgmax"],
                &allowing,
                true,
            ),
            (
                "an unsafe sysctl allowed by name",
                vec!["net.core.somaxconn"],
                &allowing,
                true,
            ),
            ("another unsafe sysctl", vec!["kernel.sem"], &allowing, false),
            ("a node-wide sysctl", vec!["kernel.panic"], &allowing, false),
        ];
        for (desc, names, list, ok) in cases {
            let result = admit(&with_sysctls(&names, serde_json::json!({})), list);
            assert_eq!(result.is_ok(), ok, "{desc}: {result:?}");
            if let Err(rejection) = result {
                assert_eq!(rejection.reason, SYSCTL_FORBIDDEN);
                assert_eq!(
                    rejection.message,
                    format!("Pod forbidden sysctl: {:?} not allowlisted", names[0]),
                    "{desc}"
                );
            }
        }
    }

    #[test]
    fn host_namespaces_forbid_their_sysctls() {
        let list = SysctlAllowlist::new(&["kernel.shm*"]).unwrap();
        let net = admit(
            &with_sysctls(&["net.ipv4.tcp_syncookies"], serde_json::json!({"hostNetwork": true})),
            &list,
        );
        assert_eq!(
            net.unwrap_err().message,
            "Pod forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled"
        );
        let ipc = admit(
            &with_sysctls(&["kernel.shmmax"], serde_json::json!({"hostIPC": true})),
            &list,
        );
        assert_eq!(
            ipc.unwrap_err().message,
            "Pod forbidden sysctl: \"kernel.shmmax\" not allowed with host ipc enabled"
        );
        assert!(
            admit(
                &with_sysctls(&["kernel.shmmax"], serde_json::json!({"hostNetwork": true})),
                &list
            )
            .is_ok()
        );
    }

    #[test]
    fn unusable_patterns_are_refused() {
        for pattern in ["kernel.panic", "kernel.*", "*", "net.*.x", "vm.*", ""] {
            assert!(SysctlAllowlist::new(&[pattern]).is_err(), "{pattern:?}");
        }
        assert!(SysctlAllowlist::new(&["net.*", "fs.mqueue.*", "kernel.sem", "net/core/somaxconn"]).is_ok());
    }

    #[test]
    fn slashes_and_dots_swap() {
        assert_eq!(
            dotted("net/ipv4/conf/eth0.1/rp_filter"),
            "net.ipv4.conf.eth0/1.rp_filter"
        );
        assert_eq!(dotted("net.ipv4.tcp_syncookies"), "net.ipv4.tcp_syncookies");
    }
}
