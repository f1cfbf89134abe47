//! Serving CRI on a unix socket so that every real CRI client can call it.
//!
//! Many gRPC clients put the socket *path* in the HTTP/2 `:authority` pseudo-header:
//! grpc-go before about 1.52 (crictl and critest 1.26, the kubelet up to 1.25), grpc-java,
//! and Python grpcio 1.57 and newer. The HTTP/2 layer under tonic (h2) refuses such a
//! request with `RST_STREAM(PROTOCOL_ERROR)` because a path is not a valid URI authority,
//! so a plain tonic server cannot be called by them. [`bind`] returns an incoming stream of
//! connections whose request headers are repaired on the way in (see [`TolerantStream`]);
//! clients that send a valid authority see no difference.
//!
//! Kubelets up to 1.22 speak `runtime.v1alpha2`, whose messages are wire-compatible with
//! `runtime.v1`. [`V1Alpha2AliasLayer`] routes those calls to the `v1` services.
//!
//! ```no_run
//! # use cri_api::server::{ImageService, ImageServiceServer};
//! # async fn run(images: impl ImageService) -> Result<(), Box<dyn std::error::Error>> {
//! let incoming = cri_api::unix::bind("/run/my-runtime/cri.sock")?;
//! tonic::transport::Server::builder()
//!     .layer(cri_api::unix::V1Alpha2AliasLayer)
//!     .add_service(ImageServiceServer::new(images))
//!     .serve_with_incoming_shutdown(incoming, async { /* wait for a signal */ })
//!     .await?;
//! # Ok(()) }
//! ```

mod authority;
mod v1alpha2;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::net::{UnixListener, UnixStream};
use tokio_stream::Stream;

pub use authority::TolerantStream;
pub use v1alpha2::{V1Alpha2Alias, V1Alpha2AliasLayer};

/// Permissions of the socket file: the owner and its group may connect.
const SOCKET_MODE: u32 = 0o660;

/// Binds a unix socket at `path` and returns the stream of its connections, ready for
/// `tonic::transport::Server::serve_with_incoming`.
///
/// Missing parent directories are created. A stale socket file left by a previous
/// process is replaced, but a socket some process still answers on is not: that is an
/// [`io::ErrorKind::AddrInUse`] error, as is a path that exists and is not a socket.
pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixIncoming> {
    let path = path.as_ref();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    remove_stale_socket(path)?;
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    Ok(UnixIncoming { listener })
}

/// Removes a socket file nobody listens on; refuses anything else that exists at `path`.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !metadata.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server is listening on {}", path.display()),
        ));
    }
    std::fs::remove_file(path)
}

/// The connections accepted on a CRI unix socket, each wrapped in a [`TolerantStream`].
#[derive(Debug)]
pub struct UnixIncoming {
    listener: UnixListener,
}

impl UnixIncoming {
    /// The listener the connections come from (for its local address, say).
    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }
}

impl Stream for UnixIncoming {
    type Item = io::Result<TolerantStream<UnixStream>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let accepted = ready!(self.listener.poll_accept(cx));
        Poll::Ready(Some(accepted.map(|(stream, _)| TolerantStream::new(stream))))
    }
}
