//! Opening a tonic [`Channel`] to an [`Endpoint`].
//!
//! Over a unix socket the channel's URI is `http://localhost`, so every request carries
//! `:authority: localhost`, as the kubelet does since 1.26. Older clients sent the socket
//! path there, which is not a valid authority and which tonic/h2 servers refuse
//! (ENVIRONMENT.md, "the :authority trap").
//!
//! A channel reconnects by itself: when the runtime goes away, calls fail with
//! `Unavailable` until it is back, and the first call after that dials again.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint as TonicEndpoint, Uri};

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::options::Options;

/// The URI of a unix-socket channel: only its authority matters, and it is `localhost`.
const UNIX_URI: &str = "http://localhost";

/// Connects to `endpoint`, waiting up to the connect timeout for the first connection.
pub(crate) async fn connect(endpoint: &Endpoint, options: &Options) -> Result<Channel, Error> {
    let connect_error = |source| Error::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    let tonic_endpoint = tonic_endpoint(endpoint, options)?;
    match endpoint {
        Endpoint::Unix(path) => tonic_endpoint
            .connect_with_connector(unix_connector(path.clone()))
            .await
            .map_err(connect_error),
        Endpoint::Tcp { .. } => tonic_endpoint.connect().await.map_err(connect_error),
    }
}

/// A channel to `endpoint` that dials on its first call.
///
/// Must be called within a tokio runtime (the channel spawns its worker task).
pub(crate) fn connect_lazy(endpoint: &Endpoint, options: &Options) -> Result<Channel, Error> {
    let tonic_endpoint = tonic_endpoint(endpoint, options)?;
    Ok(match endpoint {
        Endpoint::Unix(path) => tonic_endpoint.connect_with_connector_lazy(unix_connector(path.clone())),
        Endpoint::Tcp { .. } => tonic_endpoint.connect_lazy(),
    })
}

/// The tonic endpoint: its URI and the connect timeout.
fn tonic_endpoint(endpoint: &Endpoint, options: &Options) -> Result<TonicEndpoint, Error> {
    let tonic_endpoint = match endpoint {
        Endpoint::Unix(_) => TonicEndpoint::from_static(UNIX_URI),
        Endpoint::Tcp { .. } => {
            let uri = endpoint.to_string().replacen("tcp://", "http://", 1);
            TonicEndpoint::from_shared(uri).map_err(|source| Error::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?
        }
    };
    Ok(tonic_endpoint.connect_timeout(options.get_connect_timeout()))
}

/// A connector that ignores the URI and dials the socket at `path`.
fn unix_connector(
    path: PathBuf,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<UnixStream>,
    Error = io::Error,
    Future = impl Future<Output = io::Result<TokioIo<UnixStream>>> + Send,
> + Send
+ 'static {
    let path = Arc::new(path);
    tower::service_fn(move |_: Uri| {
        let path = Arc::clone(&path);
        async move { Ok(TokioIo::new(UnixStream::connect(&*path).await?)) }
    })
}
