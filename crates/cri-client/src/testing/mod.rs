//! A fake CRI runtime for tests: test code that talks CRI without root, containerd or a
//! real runtime (enable the `testing` feature).
//!
//! [`FakeRuntime`] is what the kubelet's `fakeremote` is to Go: an in-memory
//! `RuntimeService` and `ImageService`, served on a unix socket by one call
//! ([`FakeRuntime::serve`]), that keeps the CRI's rules:
//!
//! - a container is created in an existing, ready sandbox, from an image the runtime
//!   holds, and goes CREATED → RUNNING → EXITED (`state/container.rs` draws it);
//! - StopPodSandbox, RemovePodSandbox, StopContainer, RemoveContainer and RemoveImage are
//!   idempotent, also for unknown ids, as api.proto requires; other calls about an unknown
//!   id answer `NotFound`, calls in the wrong state `FailedPrecondition`, a second sandbox
//!   or container with the same metadata `AlreadyExists`;
//! - List calls filter by id, state, sandbox and labels;
//! - images are pulled, listed, inspected (with their `uid` and `username`) and removed,
//!   found by id, tag, digest or short name (`busybox`);
//! - GetContainerEvents streams every container and sandbox transition.
//!
//! A test seeds it ([`FakeRuntime::add_image`], [`add_sandbox`](FakeRuntime::add_sandbox),
//! [`add_container`](FakeRuntime::add_container),
//! [`start_container`](FakeRuntime::start_container)), makes things happen that only a
//! runtime can ([`exit_container`](FakeRuntime::exit_container): the process ended), reads
//! the calls it received ([`FakeRuntime::calls`]) and injects an error or a delay into an
//! RPC ([`FakeRuntime::inject`]). [`sandbox_config`] and [`container_config`] are the
//! smallest configs it accepts.
//!
//! It is for unit tests of code that uses CRI. It runs nothing and measures nothing: what
//! a real runtime does is tested against a real runtime.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use cri_client::testing::{FakeRuntime, Fault, Rpc, Status, container_config, sandbox_config};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let fake = FakeRuntime::new();
//! let pod = fake.add_sandbox(sandbox_config("default", "web"), "")?;
//!
//! let dir = tempfile::tempdir()?;
//! let server = fake.serve(dir.path().join("cri.sock"))?;
//! let client = server.connect().await?;
//!
//! // The CRI's rules: no container from an image the runtime does not hold.
//! let config = container_config("nginx", "nginx:1.27");
//! let pod_config = sandbox_config("default", "web");
//! let err = client.create_container(&pod, config.clone(), pod_config.clone()).await.unwrap_err();
//! assert!(err.is_not_found());
//! client.pull_image("nginx:1.27", None, None).await?;
//! let id = client.create_container(&pod, config, pod_config).await?;
//!
//! // A fault: the next StartContainer fails, the one after succeeds.
//! fake.inject(Rpc::StartContainer, Fault::error(Status::unavailable("restarting")));
//! assert!(client.start_container(&id).await.unwrap_err().is_unavailable());
//! client.start_container(&id).await?;
//! assert_eq!(fake.calls_to(Rpc::StartContainer).len(), 2);
//!
//! // What only the runtime sees: the container's process ends.
//! fake.exit_container(&id, 1, "Error")?;
//! let status = client.container_status(&id, false).await?.status.unwrap();
//! assert_eq!(status.exit_code, 1);
//! # Ok(()) }
//! ```
//!
//! `examples/testing_with_the_fake.rs` tests a small program of its own this way.

mod config;
mod error;
mod fault;
mod rpc;
mod server;
mod service;
mod state;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cri_api::server::{ImageService, ImageServiceServer, RuntimeService, RuntimeServiceServer};

use crate::client::MAX_MESSAGE_SIZE;
use crate::v1::{
    ContainerConfig, ContainerStatus, ExecSyncRequest, ExecSyncResponse, Image, PodSandboxConfig, PodSandboxStatus,
    RuntimeCondition,
};

pub use config::{container_config, sandbox_config};
pub use error::{FakeError, Kind};
pub use fault::Fault;
pub use rpc::{Call, Rpc};
pub use server::FakeServer;
/// The gRPC status a [`Fault`] fails a call with.
pub use tonic::Status;

use fault::Faults;
use service::Service;
use state::State;

/// The `runtime_name` the fake reports in VersionResponse.
pub const RUNTIME_NAME: &str = "fake";

/// The `runtime_version` the fake reports in VersionResponse: this crate's version.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The exit code of a container killed by StopContainer or StopPodSandbox: 128 + SIGKILL,
/// with the reason `Error`.
pub const STOPPED_EXIT_CODE: i32 = 137;

/// The start of every URL Exec, Attach and PortForward return (a name that never
/// resolves): `…/exec/<container id>`, `…/attach/<container id>`,
/// `…/portforward/<sandbox id>`.
pub const STREAMING_URL: &str = "http://fake-runtime.invalid";

/// What ExecSync answers, given the request; see [`FakeRuntime::on_exec_sync`].
type ExecSyncHandler = dyn Fn(&ExecSyncRequest) -> ExecSyncResponse + Send + Sync;

/// An in-memory CRI runtime for tests; see the [module documentation](self).
///
/// Cloning is cheap: clones share the same sandboxes, containers, images, records and
/// faults, so a test keeps one clone while the server answers through another.
#[derive(Clone, Default)]
pub struct FakeRuntime {
    shared: Arc<Shared>,
}

/// What clones of a [`FakeRuntime`] share.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    calls: Mutex<Vec<Call>>,
    faults: Mutex<Faults>,
    exec_sync: Mutex<Option<Arc<ExecSyncHandler>>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("state", &*lock(&self.shared.state))
            .field("calls", &lock(&self.shared.calls).len())
            .finish_non_exhaustive()
    }
}

impl FakeRuntime {
    /// An empty runtime: no sandboxes, containers or images; ready, with its network ready.
    pub fn new() -> FakeRuntime {
        FakeRuntime::default()
    }

    /// Adds an image as if it had been pulled, with whatever `uid`, `username`, tags and
    /// size it has, and returns its id (a fresh one if `image.id` is empty). An image with
    /// the same id is replaced.
    pub fn add_image(&self, image: Image) -> String {
        lock(&self.shared.state).add_image(image)
    }

    /// Adds a ready sandbox, as RunPodSandbox does, and returns its id.
    pub fn add_sandbox(&self, config: PodSandboxConfig, runtime_handler: &str) -> Result<String, FakeError> {
        lock(&self.shared.state).run_pod_sandbox(Some(config), runtime_handler)
    }

    /// Adds a CREATED container to a ready sandbox, as CreateContainer does, and returns
    /// its id. Its image must be held (see [`FakeRuntime::add_image`]).
    pub fn add_container(&self, sandbox_id: &str, config: ContainerConfig) -> Result<String, FakeError> {
        lock(&self.shared.state).create_container(sandbox_id, Some(config))
    }

    /// Starts a CREATED container, as StartContainer does.
    pub fn start_container(&self, container_id: &str) -> Result<(), FakeError> {
        lock(&self.shared.state).start_container(container_id)
    }

    /// The container's process ends by itself with `exit_code`: RUNNING → EXITED, with
    /// `reason` (such as `Completed`, `Error` or `OOMKilled`) in its status.
    pub fn exit_container(&self, container_id: &str, exit_code: i32, reason: &str) -> Result<(), FakeError> {
        lock(&self.shared.state).exit_container(container_id, exit_code, reason)
    }

    /// The status of every sandbox, in creation order.
    pub fn sandboxes(&self) -> Vec<PodSandboxStatus> {
        lock(&self.shared.state).sandbox_statuses()
    }

    /// The status of every container, in creation order.
    pub fn containers(&self) -> Vec<ContainerStatus> {
        lock(&self.shared.state).container_statuses()
    }

    /// Every image, in the order they were added or pulled.
    pub fn images(&self) -> Vec<Image> {
        lock(&self.shared.state).images()
    }

    /// The conditions Status reports from now on (`RuntimeReady` and `NetworkReady`, both
    /// true, at first).
    pub fn set_conditions(&self, conditions: Vec<RuntimeCondition>) {
        lock(&self.shared.state).conditions = conditions;
    }

    /// What ExecSync in a running container answers from now on (at first: exit code 0,
    /// no output).
    ///
    /// ```
    /// # let fake = cri_client::testing::FakeRuntime::new();
    /// use cri_client::v1::ExecSyncResponse;
    /// fake.on_exec_sync(|request| ExecSyncResponse {
    ///     stdout: request.cmd.join(" ").into_bytes(),
    ///     exit_code: if request.cmd.first().is_some_and(|c| c == "false") { 1 } else { 0 },
    ///     ..Default::default()
    /// });
    /// ```
    pub fn on_exec_sync(&self, handler: impl Fn(&ExecSyncRequest) -> ExecSyncResponse + Send + Sync + 'static) {
        *lock(&self.shared.exec_sync) = Some(Arc::new(handler));
    }

    /// Makes the next calls of `rpc` (or all of them) slow or failing; see [`Fault`].
    /// Faults injected into the same RPC apply one after the other.
    pub fn inject(&self, rpc: Rpc, fault: Fault) {
        lock(&self.shared.faults).push(rpc, fault);
    }

    /// Forgets every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.shared.calls).clone()
    }

    /// The calls of `rpc` received, in order.
    pub fn calls_to(&self, rpc: Rpc) -> Vec<Call> {
        lock(&self.shared.calls)
            .iter()
            .filter(|call| call.rpc == rpc)
            .cloned()
            .collect()
    }

    /// Forgets the calls received so far.
    pub fn clear_calls(&self) {
        lock(&self.shared.calls).clear();
    }

    /// The fake's `RuntimeService`, to serve it some other way than
    /// [`FakeRuntime::serve`] (over TCP, say).
    pub fn runtime_service(&self) -> RuntimeServiceServer<impl RuntimeService> {
        RuntimeServiceServer::new(Service(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// The fake's `ImageService`; see [`FakeRuntime::runtime_service`].
    pub fn image_service(&self) -> ImageServiceServer<impl ImageService> {
        ImageServiceServer::new(Service(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
    }
}

/// Locks `mutex`, even if a test panicked while holding it (the data is still usable for
/// the assertions that follow).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
