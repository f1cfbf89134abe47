//! containerd 1.6 with its CRI plugin, private to one test environment.
//!
//! Everything it touches is its own: root, state, sockets and logs in a scratch
//! directory, a CNI network on its own bridge and subnet, runc state under its own root,
//! image pulls for `docker.io` and `registry.k8s.io` sent to the local [`Registry`]
//! through `hosts.toml` mirrors. Dropping it removes all of that, and a later run reaps it
//! if the test process died first (see [`crate::scratch`]).
//!
//! A [`crate::KubeletLite`] node drives it through
//! [`KubeletLiteOptions::runtime_endpoint`](crate::KubeletLiteOptions::runtime_endpoint)
//! set to its [`endpoint`](Daemon::endpoint).

use std::process::Command;

use crate::daemon::{ConfigInputs, Daemon, DaemonKind, DaemonOptions, Layout};
use crate::{Registry, TestImages, process};

/// The tools containerd itself needs; [`Containerd::start`] also needs
/// [`NETWORK_TOOLS`](crate::daemon::NETWORK_TOOLS).
pub const CONTAINERD_TOOLS: &[&str] = &["containerd", "containerd-shim-runc-v2", "runc"];

/// The CRI namespace of containerd (where CRI keeps pods, containers and images).
pub const CRI_NAMESPACE: &str = "k8s.io";

/// What may differ between two containerd environments on one machine; the defaults are
/// bridge `kltctr0` on `198.18.0.0/24`.
pub type ContainerdOptions = DaemonOptions;

/// A running containerd with the CRI plugin. Dropping it stops every pod, the daemon and
/// its shims, and removes its mounts, bridge, iptables rules and files.
///
/// It holds a tokio runtime: tests (plain sync functions) run their async CRI calls with
/// [`Daemon::block_on`]. Do not drop it or call `block_on` from inside async code. Its
/// methods are [`Daemon`]'s.
pub type Containerd = Daemon<ContainerdKind>;

/// containerd as a [`DaemonKind`]: its config file and command line.
#[derive(Debug, Clone)]
pub struct ContainerdKind {
    sandbox_image: String,
}

impl DaemonKind for ContainerdKind {
    const NAME: &'static str = "containerd";
    const CONTAINERD_SHIMS: bool = true;

    fn tools(&self) -> &[&str] {
        CONTAINERD_TOOLS
    }

    fn config_file(&self, inputs: &ConfigInputs<'_>) -> String {
        config_toml(inputs, &self.sandbox_image)
    }

    fn command(&self, layout: &Layout) -> Command {
        let mut command =
            process::daemon_command(crate::find_tool("containerd").unwrap_or_else(|| "containerd".into()));
        command.arg("--config").arg(&layout.config).env("TMPDIR", &layout.tmp);
        command
    }
}

impl Containerd {
    /// Starts containerd with the default options (bridge `kltctr0`, `198.18.0.0/24`),
    /// pulling through mirrors onto `registry`, with `images.pause` as sandbox image.
    ///
    /// Fails with [`crate::Missing`] in the chain if a tool is absent or not root.
    pub fn start(registry: &Registry, images: &TestImages) -> anyhow::Result<Containerd> {
        Containerd::start_with(registry, images, ContainerdOptions::default())
    }

    /// Starts containerd with `options` (see [`Containerd::start`]).
    pub fn start_with(
        registry: &Registry,
        images: &TestImages,
        options: ContainerdOptions,
    ) -> anyhow::Result<Containerd> {
        let kind = ContainerdKind {
            sandbox_image: images.pause.clone(),
        };
        Daemon::launch(kind, registry, options)
    }
}

/// containerd's config (version 2): private paths and sockets, no debug or metrics
/// listener, the CRI plugin with runc, overlayfs, CNI from `cni_bin_dir` and the
/// mirrors in `certs.d`.
fn config_toml(inputs: &ConfigInputs<'_>, sandbox_image: &str) -> String {
    let p = inputs.layout;
    let cri = r#"plugins."io.containerd.grpc.v1.cri""#;
    let log_max_line = (inputs.options.log_max_line)
        .map(|bytes| format!("  max_container_log_line_size = {bytes}\n"))
        .unwrap_or_default();
    let template = if inputs.options.network_template {
        format!("    conf_template = \"{}\"\n", p.cni_template.display())
    } else {
        String::new()
    };
    format!(
        r#"# Written by kubelet-lite's test harness.
version = 2
root = "{root}"
state = "{state}"
temp = "{temp}"
oom_score = 0
# Snapshotters that cannot work here and only slow start-up down.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

# No debug socket and no metrics listener: they would collide with another containerd.
[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[{cri}]
  sandbox_image = "{sandbox_image}"
  # oom_score_adj cannot be lowered below ours here (ENVIRONMENT.md).
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
{log_max_line}
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false

  [{cri}.cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
{template}
  [{cri}.registry]
    config_path = "{certs_d}"
"#,
        root = p.root.display(),
        state = p.state.display(),
        temp = p.tmp.display(),
        socket = p.socket.display(),
        opt = p.dir.join("opt").display(),
        runc = inputs.runc.display(),
        runc_root = p.runc_root.display(),
        cni_bin_dir = inputs.cni_bin_dir.display(),
        cni_conf = p.cni_conf.display(),
        certs_d = p.certs_d.display(),
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn config_keeps_everything_private() {
        let layout = Layout::new(Path::new("/t/c-1"), ContainerdKind::NAME);
        let options = DaemonOptions {
            log_max_line: Some(64),
            ..DaemonOptions::default()
        };
        let inputs = ConfigInputs {
            layout: &layout,
            options: &options,
            cni_bin_dir: "/usr/lib/cni".into(),
            runc: "/usr/sbin/runc".into(),
        };
        let toml = config_toml(&inputs, "registry.k8s.io/pause:3.9");
        for line in [
            "version = 2",
            r#"root = "/t/c-1/root""#,
            r#"state = "/t/c-1/state""#,
            "oom_score = 0",
            r#"  address = "/t/c-1/containerd.sock""#,
            r#"  address = "/t/c-1/containerd.sock.ttrpc""#,
            r#"  sandbox_image = "registry.k8s.io/pause:3.9""#,
            "  restrict_oom_score_adj = true",
            r#"      runtime_type = "io.containerd.runc.v2""#,
            "        SystemdCgroup = false",
            r#"        Root = "/t/c-1/state/runc""#,
            r#"    snapshotter = "overlayfs""#,
            r#"    bin_dir = "/usr/lib/cni""#,
            r#"    conf_dir = "/t/c-1/cni/net.d""#,
            r#"    config_path = "/t/c-1/certs.d""#,
            "  max_container_log_line_size = 64",
        ] {
            assert!(toml.lines().any(|l| l == line), "missing {line:?} in\n{toml}");
        }
        assert_eq!(
            toml.matches("address = \"\"").count(),
            2,
            "debug and metrics listeners stay off"
        );
    }
}
