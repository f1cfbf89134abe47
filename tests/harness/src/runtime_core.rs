//! runtime-core, the workspace's own CRI runtime, as a daemon private to one test
//! environment.
//!
//! Everything it touches is its own, as for [`crate::Containerd`]: root, state, socket and
//! log in a scratch directory, a CNI network on its own bridge and subnet (host-local
//! reservations in the scratch directory too), runc state under `state/runc/HANDLER`,
//! pulls of `docker.io` and `registry.k8s.io` sent to the local [`Registry`] through
//! `hosts.toml` mirrors. Its containers run under `runtime-core-monitor` processes whose
//! command lines name the state directory, which is how cleanup (and a later run's reaper)
//! finds them after the daemon is gone.
//!
//! ```no_run
//! use test_harness::{Registry, RuntimeCore, RuntimeCoreOptions};
//!
//! # fn f(binary: &std::path::Path) -> anyhow::Result<()> {
//! let registry = Registry::start()?;
//! test_harness::push_test_images(&registry)?;
//! let options = RuntimeCoreOptions {
//!     log_max_line: Some(64),
//!     ..RuntimeCoreOptions::with_network("kltrc0", "198.18.1.0/24")
//! };
//! // In a test of the runtime-core crate: env!("CARGO_BIN_EXE_runtime-core").
//! let mut runtime = RuntimeCore::start(binary, &registry, options)?;
//! runtime.kill()?; // a crash: monitors and containers keep running
//! runtime.start_again()?;
//! # Ok(()) }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::bail;

use crate::daemon::{ConfigInputs, Daemon, DaemonKind, DaemonOptions, Layout, toml_string};
use crate::{Registry, process};

/// The host tools runtime-core itself needs (it pins pod namespaces with `unshare`);
/// [`RuntimeCore::start`] also needs [`NETWORK_TOOLS`](crate::daemon::NETWORK_TOOLS).
pub const RUNTIME_CORE_TOOLS: &[&str] = &["runc", "unshare"];

/// The runtime handler the configuration names (and makes the default): runc.
pub const RUNTIME_HANDLER: &str = "runc";

/// The log filter the daemon runs with unless `RUST_LOG` is set: enough to tell what it
/// did from [`Daemon::log_tail`] when a test fails.
const DEFAULT_LOG_FILTER: &str = "info,runtime_core=debug";

/// What may differ between two runtime-core environments on one machine. Name a network
/// of its own ([`DaemonOptions::with_network`]): the default is containerd's.
pub type RuntimeCoreOptions = DaemonOptions;

/// A running runtime-core daemon serving CRI. Dropping it removes every pod through CRI,
/// stops the daemon, kills leftover monitors and containers, and removes its mounts,
/// bridge, iptables rules and files. Its methods are [`Daemon`]'s.
pub type RuntimeCore = Daemon<RuntimeCoreKind>;

/// runtime-core as a [`DaemonKind`]: its config file and command line.
#[derive(Debug, Clone)]
pub struct RuntimeCoreKind {
    binary: PathBuf,
}

impl DaemonKind for RuntimeCoreKind {
    const NAME: &'static str = "runtime-core";

    fn tools(&self) -> &[&str] {
        RUNTIME_CORE_TOOLS
    }

    fn config_file(&self, inputs: &ConfigInputs<'_>) -> String {
        config_toml(inputs)
    }

    fn command(&self, layout: &Layout) -> Command {
        let mut command = process::daemon_command(&self.binary);
        command
            .arg("--config")
            .arg(&layout.config)
            .arg("serve")
            .env("TMPDIR", &layout.tmp);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", DEFAULT_LOG_FILTER);
        }
        command
    }
}

impl RuntimeCore {
    /// Starts the runtime-core daemon `binary` (a test passes
    /// `env!("CARGO_BIN_EXE_runtime-core")`; `runtime-core-monitor` must be beside it) with
    /// `options`, pulling through mirrors onto `registry`, and waits until Version answers
    /// and Status reports RuntimeReady and NetworkReady.
    ///
    /// Fails with [`crate::Missing`] in the chain if a tool is absent or not root.
    pub fn start(binary: &Path, registry: &Registry, options: RuntimeCoreOptions) -> anyhow::Result<RuntimeCore> {
        if !binary.is_file() {
            bail!("the runtime-core binary {} does not exist", binary.display());
        }
        let kind = RuntimeCoreKind {
            binary: binary.to_path_buf(),
        };
        Daemon::launch(kind, registry, options)
    }

    /// The runc `--root` of the runtime handler (`state/runc/runc`): `runc --root DIR list`
    /// shows the containers runc knows.
    pub fn runc_handler_root(&self) -> PathBuf {
        self.runc_root().join(RUNTIME_HANDLER)
    }
}

/// runtime-core's config: private paths, the socket, mirrors, the CNI network, runc as the
/// only and default runtime handler.
fn config_toml(inputs: &ConfigInputs<'_>) -> String {
    let p = inputs.layout;
    let path = |path: &Path| toml_string(&path.to_string_lossy());
    let log_max_line = (inputs.options.log_max_line)
        .map(|bytes| format!("log_max_line = {bytes}\n"))
        .unwrap_or_default();
    let events_buffer = (inputs.options.container_events_buffer)
        .map(|events| format!("container_events_buffer = {events}\n"))
        .unwrap_or_default();
    let template = if inputs.options.network_template {
        format!("cni_conf_template = {}\n", path(&p.cni_template))
    } else {
        String::new()
    };
    format!(
        "# Written by kubelet-lite's test harness.\n\
         root = {root}\n\
         state = {state}\n\
         socket = {socket}\n\
         registry_config_path = {certs_d}\n\
         cni_conf_dir = {cni_conf}\n\
         cni_bin_dirs = [{cni_bin_dir}]\n\
         {template}\
         {log_max_line}\
         {events_buffer}\
         default_runtime = {handler}\n\
         \n\
         [runtimes.{RUNTIME_HANDLER}]\n\
         binary = {runc}\n",
        root = path(&p.root),
        state = path(&p.state),
        socket = path(&p.socket),
        certs_d = path(&p.certs_d),
        cni_conf = path(&p.cni_conf),
        cni_bin_dir = path(&inputs.cni_bin_dir),
        handler = toml_string(RUNTIME_HANDLER),
        runc = path(&inputs.runc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_private_paths_runc_and_the_line_limit() {
        let layout = Layout::new(Path::new("/t/rc-1"), RuntimeCoreKind::NAME);
        let default = RuntimeCoreOptions::with_network("kltrc9", "198.18.9.0/24");
        let limited = RuntimeCoreOptions {
            log_max_line: Some(64),
            ..default.clone()
        };
        let mut inputs = ConfigInputs {
            layout: &layout,
            options: &default,
            cni_bin_dir: "/usr/lib/cni".into(),
            runc: "/usr/sbin/runc".into(),
        };
        assert!(!config_toml(&inputs).contains("log_max_line"));
        assert!(!config_toml(&inputs).contains("cni_conf_template"));
        let templated = RuntimeCoreOptions {
            network_template: true,
            ..default.clone()
        };
        inputs.options = &templated;
        assert!(config_toml(&inputs).contains("\ncni_conf_template = \"/t/rc-1/cni/template.json\"\n"));
        inputs.options = &limited;
        assert_eq!(
            config_toml(&inputs),
            r#"# Written by kubelet-lite's test harness.
root = "/t/rc-1/root"
state = "/t/rc-1/state"
socket = "/t/rc-1/runtime-core.sock"
registry_config_path = "/t/rc-1/certs.d"
cni_conf_dir = "/t/rc-1/cni/net.d"
cni_bin_dirs = ["/usr/lib/cni"]
log_max_line = 64
default_runtime = "runc"

[runtimes.runc]
binary = "/usr/sbin/runc"
"#
        );
    }
}
