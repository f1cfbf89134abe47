//! A small in-process CRI runtime for the transport tests: a tonic server on a unix socket
//! (or TCP) that answers Version, returns 8 MiB from ExecSync, fails ContainerStatus with
//! NotFound, is slow on ListPodSandbox, streams one container event, and records the
//! `:authority` and `grpc-timeout` of every request. Everything else is Unimplemented.
//!
//! It runs on its own thread and tokio runtime, so [`FakeRuntime::kill`] can drop every
//! connection at once, the way a crashing runtime would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cri_api::server::{RuntimeService, RuntimeServiceServer};
use cri_api::v1;
use tokio::sync::oneshot;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

/// How long ListPodSandbox takes, to test deadlines.
pub(crate) const SLOW_CALL: Duration = Duration::from_secs(30);

/// How many bytes of stdout ExecSync returns: more than tonic's default limit of 4 MiB.
pub(crate) const BIG_OUTPUT: usize = 8 << 20;

/// What one request looked like on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// The request path, e.g. `/runtime.v1.RuntimeService/Version`.
    pub(crate) path: String,
    /// The `:authority` pseudo-header.
    pub(crate) authority: Option<String>,
    /// The `grpc-timeout` header, raw.
    pub(crate) grpc_timeout: Option<String>,
}

/// A running fake runtime; killed on drop.
pub(crate) struct FakeRuntime {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Where the fake listens.
enum Listen<'a> {
    Unix(&'a Path),
    Tcp(SocketAddr),
}

impl FakeRuntime {
    /// Serves on a unix socket at `path` (replacing a stale socket file).
    pub(crate) fn unix(path: &Path) -> FakeRuntime {
        FakeRuntime::start(Listen::Unix(path)).0
    }

    /// Serves on 127.0.0.1 on a free port; returns the address.
    pub(crate) fn tcp() -> (FakeRuntime, SocketAddr) {
        let (fake, addr) = FakeRuntime::start(Listen::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))));
        (fake, addr.expect("tcp address"))
    }

    fn start(listen: Listen<'_>) -> (FakeRuntime, Option<SocketAddr>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let path: Option<PathBuf> = match listen {
            Listen::Unix(path) => Some(path.to_owned()),
            Listen::Tcp(_) => None,
        };
        let tcp = match listen {
            Listen::Tcp(addr) => Some(addr),
            Listen::Unix(_) => None,
        };
        let recorder = Arc::clone(&seen);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("fake runtime's tokio runtime");
            rt.block_on(async move {
                let record = tower::ServiceBuilder::new().map_request(move |req: http::Request<tonic::body::Body>| {
                    recorder.lock().expect("lock").push(Seen {
                        path: req.uri().path().to_owned(),
                        authority: req.uri().authority().map(|a| a.to_string()),
                        grpc_timeout: req
                            .headers()
                            .get("grpc-timeout")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    });
                    req
                });
                let router = tonic::transport::Server::builder()
                    .layer(record)
                    .add_service(RuntimeServiceServer::new(Fake));
                // No graceful shutdown: when told to stop, return at once.
                if let Some(path) = path {
                    let _ = std::fs::remove_file(&path);
                    let listener = tokio::net::UnixListener::bind(&path).expect("bind unix socket");
                    ready.send(None).expect("ready");
                    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                    tokio::select! {
                        _ = router.serve_with_incoming(incoming) => {}
                        _ = stopped => {}
                    }
                } else if let Some(addr) = tcp {
                    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind tcp");
                    ready.send(Some(listener.local_addr().expect("addr"))).expect("ready");
                    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    tokio::select! {
                        _ = router.serve_with_incoming(incoming) => {}
                        _ = stopped => {}
                    }
                }
            });
            // Dropping `rt` here cancels every connection task: clients see their
            // connections drop, as when a runtime crashes.
            drop(rt);
        });
        let addr = is_ready.recv().expect("fake runtime started");
        let fake = FakeRuntime {
            stop: Some(stop),
            thread: Some(thread),
            seen,
        };
        (fake, addr)
    }

    /// The requests seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    /// Stops serving and drops every connection.
    pub(crate) fn kill(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// The fake's answers.
struct Fake;

/// The event GetContainerEvents streams.
pub(crate) fn the_event() -> v1::ContainerEventResponse {
    v1::ContainerEventResponse {
        container_id: "c1".to_owned(),
        container_event_type: v1::ContainerEventType::ContainerStartedEvent as i32,
        created_at: 42,
        ..Default::default()
    }
}

/// Only what the tests call; the generated trait answers Unimplemented for the rest.
#[tonic::async_trait]
impl RuntimeService for Fake {
    async fn version(&self, _: Request<v1::VersionRequest>) -> Result<Response<v1::VersionResponse>, Status> {
        Ok(Response::new(v1::VersionResponse {
            version: "0.1.0".to_owned(),
            runtime_name: "fake".to_owned(),
            runtime_version: "1.0.0".to_owned(),
            runtime_api_version: "v1".to_owned(),
        }))
    }

    async fn container_status(
        &self,
        request: Request<v1::ContainerStatusRequest>,
    ) -> Result<Response<v1::ContainerStatusResponse>, Status> {
        let id = &request.get_ref().container_id;
        Err(Status::not_found(format!("container {id:?} does not exist")))
    }

    async fn exec_sync(&self, _: Request<v1::ExecSyncRequest>) -> Result<Response<v1::ExecSyncResponse>, Status> {
        Ok(Response::new(v1::ExecSyncResponse {
            stdout: vec![b'x'; BIG_OUTPUT],
            ..Default::default()
        }))
    }

    async fn list_pod_sandbox(
        &self,
        _: Request<v1::ListPodSandboxRequest>,
    ) -> Result<Response<v1::ListPodSandboxResponse>, Status> {
        tokio::time::sleep(SLOW_CALL).await;
        Ok(Response::new(v1::ListPodSandboxResponse::default()))
    }

    async fn get_container_events(
        &self,
        _: Request<v1::GetEventsRequest>,
    ) -> Result<Response<BoxStream<v1::ContainerEventResponse>>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::iter(vec![Ok(the_event())]))))
    }
}
