//! Serving a fake runtime on a unix socket, on a thread and tokio runtime of its own: the
//! fake answers whatever runtime the test runs on (or none), and stopping it drops every
//! connection at once, as a crashing runtime would.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tonic::body::Body;
use tonic::codegen::http;

use super::FakeRuntime;
use super::rpc::Authority;
use crate::client::{Client, Result};

/// A [`FakeRuntime`] serving on a unix socket; made by [`FakeRuntime::serve`].
///
/// Dropping it (or [`FakeServer::stop`]) stops serving at once and breaks every open
/// connection, as when a runtime crashes. The socket file stays, as it would then. The
/// fake's state survives: serve it again on the same path to play a runtime restart.
#[derive(Debug)]
pub struct FakeServer {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRuntime {
    /// Serves the fake's `RuntimeService` and `ImageService` on a unix socket at `path`,
    /// and returns once it listens.
    ///
    /// Missing parent directories are created and a stale socket is replaced, as
    /// [`cri_api::unix::bind`] does; clients that send the socket path as `:authority`
    /// are served too. Callable with or without a tokio runtime.
    pub fn serve(&self, path: impl AsRef<Path>) -> io::Result<FakeServer> {
        let path = path.as_ref().to_owned();
        let (ready, is_ready) = mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new().name("fake-cri-runtime".to_owned()).spawn({
            let fake = self.clone();
            let path = path.clone();
            move || serve_until_stopped(&fake, &path, &ready, stopped)
        })?;
        let server = FakeServer {
            path,
            stop: Some(stop),
            thread: Some(thread),
        };
        match is_ready.recv() {
            Ok(Ok(())) => Ok(server),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(io::Error::other("the fake runtime's thread ended before listening")),
        }
    }
}

impl FakeServer {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The endpoint to give [`Client::connect`]: `unix://` and the path.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// A client connected to this server with the default options.
    pub async fn connect(&self) -> Result<Client> {
        Client::connect(&self.endpoint()).await
    }

    /// Stops serving and breaks every connection; the same as dropping it.
    pub fn stop(self) {}
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may be gone already; then there is nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic on that thread was reported there; nothing to add here.
            let _ = thread.join();
        }
    }
}

/// The server thread: binds, reports on `ready`, serves until `stopped`.
fn serve_until_stopped(
    fake: &FakeRuntime,
    path: &Path,
    ready: &mpsc::Sender<io::Result<()>>,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async {
        let incoming = match cri_api::unix::bind(path) {
            Ok(incoming) => incoming,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let router = tonic::transport::Server::builder()
            .layer(tower::ServiceBuilder::new().map_request(keep_authority))
            .add_service(fake.runtime_service())
            .add_service(fake.image_service());
        tokio::select! {
            served = router.serve_with_incoming(incoming) => {
                if let Err(error) = served {
                    tracing::warn!(%error, path = %path.display(), "fake runtime stopped serving");
                }
            }
            _ = stopped => {}
        }
    });
    // Dropping the runtime cancels the task of every connection: clients see their
    // connections break.
    drop(runtime);
}

/// Puts the request's `:authority` in its extensions, for [`Call::authority`](super::Call::authority).
fn keep_authority(mut request: http::Request<Body>) -> http::Request<Body> {
    if let Some(authority) = request.uri().authority() {
        let authority = Authority(authority.to_string());
        request.extensions_mut().insert(authority);
    }
    request
}
