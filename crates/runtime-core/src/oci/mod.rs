//! OCI runtimes: the runtime configuration of a bundle ([`spec`]), the runc-compatible
//! binaries that run it ([`runc`]), and [`OciRuntime`], the seam through which the pods
//! domain drives a runtime handler's containers (today runc, each container under a
//! monitor: `crate::monitor::MonitoredRunc`). A second OCI runtime is added by
//! implementing the trait; tests put a double behind it.

pub mod runc;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::BoxFuture;

use runc::{ExecOutput, Runc, RuncError};

/// A call to an OCI runtime.
pub type Call<'a, T> = BoxFuture<'a, Result<T, OciError>>;

/// Why an OCI runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// The runtime's command failed or ran out of time.
    #[error(transparent)]
    Runc(#[from] RuncError),
    /// The container could not be created (under its monitor).
    #[error("{0}")]
    Create(Box<dyn std::error::Error + Send + Sync>),
}

/// What [`OciRuntime::create`] needs to create a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Creation {
    /// The container id.
    pub id: String,
    /// The OCI bundle (`config.json`, and the rootfs it names).
    pub bundle: PathBuf,
    /// The directory of the container's monitor: pid, exit record, control channel.
    pub monitor_dir: PathBuf,
    /// The CRI log file; `None` discards the container's output.
    pub log_path: Option<PathBuf>,
    /// Lines longer than this are split into partial log records.
    pub log_max_line: usize,
    /// Keep the container's stdin open (for attach).
    pub stdin: bool,
    /// Give the container a terminal.
    pub tty: bool,
}

/// An OCI runtime as the pods domain uses it: the verbs of the OCI runtime command line,
/// on container ids.
pub trait OciRuntime: std::fmt::Debug + Send + Sync {
    /// Creates the container of a bundle, its process waiting for [`OciRuntime::start`];
    /// returns the pid of the container's init.
    fn create<'a>(&'a self, container: &'a Creation) -> Call<'a, u32>;

    /// Starts the user process of created container `id`.
    fn start<'a>(&'a self, id: &'a str) -> Call<'a, ()>;

    /// Whether the runtime still has state for container `id`.
    fn knows(&self, id: &str) -> bool;

    /// What the runtime says of container `id` (`runc state`): `None` if it does not know it.
    fn state<'a>(&'a self, id: &'a str) -> Call<'a, Option<runc::ContainerState>>;

    /// Sends `signal` to the container's init, or to all its processes.
    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> Call<'a, ()>;

    /// Deletes the container's runtime state (`force` kills it first).
    fn delete<'a>(&'a self, id: &'a str, force: bool) -> Call<'a, ()>;

    /// Runs `cmd` in the container and collects its output; past `timeout` the command is
    /// killed and the call fails with [`RuncError::Timeout`].
    fn exec<'a>(&'a self, id: &'a str, cmd: &'a [String], timeout: Option<Duration>) -> Call<'a, ExecOutput>;

    /// Applies new resources (OCI `linux.resources` as JSON) to a running container.
    fn update<'a>(&'a self, id: &'a str, resources_json: &'a [u8]) -> Call<'a, ()>;

    /// The runc-compatible command line behind the runtime, which interactive exec
    /// sessions drive themselves (a terminal over a console socket); `None` if it has none.
    fn interactive(&self) -> Option<&Runc>;

    /// Dumps running container `id` with CRIU into `image_dir`, leaving it running.
    fn checkpoint<'a>(&'a self, id: &'a str, image_dir: &'a Path, work_dir: &'a Path) -> Call<'a, ()>;
}
