//! Prerequisites of a test environment: tools on the host, root, and whether this is CI.

use std::error::Error;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Directories searched after `PATH`: a non-login root shell often lacks the sbin
/// directories.
const EXTRA_TOOL_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where CNI plugins are installed: Debian's `/usr/lib/cni` first, then the upstream
/// default.
pub const CNI_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"];

/// The reference CNI plugins. Their names are looked up in [`CNI_PLUGIN_DIRS`] only:
/// `bridge` in `PATH` is iproute2's tool, not the plugin.
pub const CNI_PLUGINS: &[&str] = &[
    "bandwidth",
    "bridge",
    "dhcp",
    "firewall",
    "host-device",
    "host-local",
    "ipvlan",
    "loopback",
    "macvlan",
    "portmap",
    "ptp",
    "sbr",
    "static",
    "tuning",
    "vlan",
    "vrf",
];

/// Returns true when this run is CI: the `CI` environment variable is `true`.
///
/// In CI a missing prerequisite is a failure; elsewhere the tests that need it are
/// reported as ignored (see [`crate::suite::run`]).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"))
}

/// Prerequisites that are absent from this machine: tools, privileges, kernel features.
///
/// A setup function returns it (usually inside an `anyhow::Error`, possibly under
/// context) so that [`crate::suite::run`] can tell "this machine cannot run these tests"
/// from "the tests failed".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    items: Vec<String>,
}

impl Missing {
    /// Missing prerequisites, each named as a user would look for it (a binary name such
    /// as `containerd`, or a phrase such as `root privileges`).
    pub fn new<I, S>(items: I) -> Missing
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Missing {
            items: items.into_iter().map(Into::into).collect(),
        }
    }

    /// What is missing, in the order it was found.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Finds a `Missing` anywhere in an error's chain of causes.
    pub fn find(error: &anyhow::Error) -> Option<&Missing> {
        error.chain().find_map(|cause| cause.downcast_ref::<Missing>())
    }

    /// One line per missing item, with the Debian package that provides it when known.
    pub fn explain(&self) -> String {
        self.items
            .iter()
            .map(|item| match debian_package(item) {
                Some(package) => format!("  - {item} (apt-get install {package})"),
                None => format!("  - {item}"),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "missing prerequisites: ")?;
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            match debian_package(item) {
                Some(package) => write!(f, "{item} (apt-get install {package})")?,
                None => write!(f, "{item}")?,
            }
        }
        Ok(())
    }
}

impl Error for Missing {}

/// The Debian package that provides a tool the harness uses, for error messages.
pub fn debian_package(tool: &str) -> Option<&'static str> {
    let name = Path::new(tool).file_name()?.to_str()?;
    Some(match name {
        "docker-registry" => "docker-registry",
        "containerd" | "containerd-shim-runc-v2" | "ctr" => "containerd",
        "runc" => "runc",
        "busybox" => "busybox-static",
        "bridge" | "host-local" | "loopback" | "portmap" | "firewall" | "tuning" => "containernetworking-plugins",
        "iptables" | "iptables-save" | "iptables-restore" => "iptables",
        "ip" => "iproute2",
        "setpriv" | "umount" | "mount" => "util-linux",
        "etcd" => "etcd-server",
        "openssl" => "openssl",
        _ => return None,
    })
}

/// Finds an executable: a path containing `/` is taken as is; the name of a CNI plugin
/// ([`CNI_PLUGINS`]) is looked up in [`CNI_PLUGIN_DIRS`]; any other name in `PATH`, then
/// in the usual bin and sbin directories.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    if CNI_PLUGINS.contains(&name) {
        return CNI_PLUGIN_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| is_executable(path));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(EXTRA_TOOL_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The directory holding the CNI plugins (the one with `bridge`), if any.
pub fn cni_bin_dir() -> Option<PathBuf> {
    Some(find_tool("bridge")?.parent()?.to_path_buf())
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Checks that every tool is installed (see [`find_tool`] for where it looks), and
/// returns all the absent ones at once.
pub fn require_tools(tools: &[&str]) -> Result<(), Missing> {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| find_tool(tool).is_none()).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Missing::new(missing))
    }
}

/// Checks that the process runs as root (containerd, mounts, bridges and iptables need it).
pub fn require_root() -> Result<(), Missing> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Missing::new(["root privileges (run the tests as root)"]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_names_each_item_with_its_package() {
        let missing = Missing::new(["containerd", "bridge", "root privileges"]);
        assert_eq!(
            missing.to_string(),
            "missing prerequisites: containerd (apt-get install containerd), \
             bridge (apt-get install containernetworking-plugins), root privileges"
        );
        assert!(
            missing
                .explain()
                .contains("  - bridge (apt-get install containernetworking-plugins)")
        );
    }

    #[test]
    fn missing_is_found_under_context() {
        let error = anyhow::Error::new(Missing::new(["runc"])).context("starting containerd");
        assert_eq!(
            Missing::find(&error).map(Missing::items),
            Some(&["runc".to_string()][..])
        );
        assert!(Missing::find(&anyhow::anyhow!("other")).is_none());
    }

    #[test]
    fn require_tools_lists_only_the_absent() {
        let err = require_tools(&["sh", "surely-not-a-tool-x1", "surely-not-a-tool-x2"]).unwrap_err();
        assert_eq!(err.items(), ["surely-not-a-tool-x1", "surely-not-a-tool-x2"]);
        assert!(require_tools(&["sh"]).is_ok());
    }
}
