//! The kubelet HTTPS API (port 10250): what the kube-apiserver reaches for `kubectl exec`,
//! `attach`, `logs` and `port-forward`, and what metrics-server and Prometheus read.
//!
//! Every request goes through, in order:
//!
//! 1. TLS ([`tls`]): the serving certificate, and client certificates verified against
//!    the client CA;
//! 2. authentication ([`authn`]): client certificate, bearer token (TokenReview), or
//!    anonymous when allowed, else 401;
//! 3. authorization ([`authz`]): SubjectAccessReview on `nodes/<subresource>` of this
//!    node, or AlwaysAllow, else 403;
//! 4. the path ([`routes`]): names checked (traversal is a 400), then the handler:
//!    `/healthz`, `/pods` ([`PodDirectory`]), `/stats/summary` ([`stats`]), `/metrics`
//!    ([`Metrics`]), `/containerLogs` ([`logs`]), and `/exec`, `/attach`,
//!    `/portForward` proxied to the CRI runtime's streaming server, `/run`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use kubelet_lite::server::{Metrics, Server, ServerConfig, Services};
//!
//! # async fn f(kube: kube::Client, cri: cri_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let config = ServerConfig::new("node-1", "0.0.0.0:10250".parse()?);
//! let services = Services {
//!     kube: Some(kube),
//!     cri: Some(cri),
//!     pods: Arc::new(Vec::new),
//!     metrics: Metrics::default(),
//! };
//! let server = Server::bind(config, services).await?;
//! server.serve(std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod authn;
pub mod authz;
mod body;
mod cache;
mod error;
mod handlers;
mod locate;
pub mod logs;
pub mod metrics;
pub mod names;
mod proxy;
pub mod routes;
pub mod stats;
mod streams;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use authn::{AuthenticationConfig, UserInfo};
pub use authz::{AuthorizationMode, Decision};
pub use error::{ApiError, ServerError};
pub use metrics::Metrics;
pub use tls::ServingCertificate;

use authn::Authenticator;
use authz::{Attributes, Authorizer};
use body::Body;
use routes::Route;
use stats::StatsProvider;

/// The kubelet's port for this API.
pub const DEFAULT_PORT: u16 = 10250;

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pods of this node, as the node agent knows them: what `/pods` lists. The pod
/// workers implement it; a closure returning the pods does too.
pub trait PodDirectory: Send + Sync {
    /// The pods bound to this node (static pods included), with their current status.
    fn pods(&self) -> Vec<Pod>;
}

impl<F> PodDirectory for F
where
    F: Fn() -> Vec<Pod> + Send + Sync,
{
    fn pods(&self) -> Vec<Pod> {
        self()
    }
}

/// How the server is set up: the kubelet flags and `KubeletConfiguration` fields of the
/// same names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Where to listen (`--address` and `--port`).
    pub address: SocketAddr,
    /// The node's name: the `nodes` object authorization asks about.
    pub node_name: String,
    /// `--tls-cert-file` and `--tls-private-key-file`, or a self-signed certificate.
    pub serving_certificate: ServingCertificate,
    /// `--client-ca-file`: the CA of client certificates; without it, client
    /// certificates are not asked for.
    pub client_ca_file: Option<PathBuf>,
    /// `authentication`.
    pub authentication: AuthenticationConfig,
    /// `authorization.mode`.
    pub authorization: AuthorizationMode,
}

impl ServerConfig {
    /// The kubelet's defaults for node `node_name` on `address`: a self-signed
    /// certificate for the node's name (and the address, unless unspecified), no client
    /// CA, token reviews, no anonymous requests, Webhook authorization.
    pub fn new(node_name: &str, address: SocketAddr) -> ServerConfig {
        let ips = if address.ip().is_unspecified() {
            Vec::new()
        } else {
            vec![address.ip()]
        };
        ServerConfig {
            address,
            node_name: node_name.to_owned(),
            serving_certificate: ServingCertificate::SelfSigned {
                dns_names: vec![node_name.to_owned()],
                ips,
            },
            client_ca_file: None,
            authentication: AuthenticationConfig::default(),
            authorization: AuthorizationMode::default(),
        }
    }
}

/// What the handlers use.
pub struct Services {
    /// The Kubernetes API, for TokenReview and SubjectAccessReview.
    pub kube: Option<kube::Client>,
    /// The CRI runtime, for exec, attach, port-forward, logs and stats; without it those
    /// answer 503.
    pub cri: Option<cri_client::Client>,
    /// The pods of the node, for `/pods`.
    pub pods: Arc<dyn PodDirectory>,
    /// The registry `/metrics` renders.
    pub metrics: Metrics,
}

/// What every request shares.
pub(crate) struct State {
    node_name: String,
    authenticator: Authenticator,
    authorizer: Authorizer,
    cri: Option<cri_client::Client>,
    pods: Arc<dyn PodDirectory>,
    metrics: Metrics,
    stats: StatsProvider,
}

/// The API server, bound and ready to serve.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.listener.local_addr().ok())
            .field("node_name", &self.state.node_name)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the certificates and binds the address.
    pub async fn bind(config: ServerConfig, services: Services) -> Result<Server, ServerError> {
        if config.authentication.webhook && services.kube.is_none() {
            return Err(ServerError::NoApiClient("token review (authentication.webhook)"));
        }
        if matches!(config.authorization, AuthorizationMode::Webhook { .. }) && services.kube.is_none() {
            return Err(ServerError::NoApiClient("Webhook authorization"));
        }
        let tls = tls::server_config(&config.serving_certificate, config.client_ca_file.as_deref())?;
        let listener = TcpListener::bind(config.address)
            .await
            .map_err(|source| ServerError::Listen {
                address: config.address,
                source,
            })?;
        let state = State {
            authenticator: Authenticator::new(config.authentication, services.kube.clone()),
            authorizer: Authorizer::new(config.authorization, services.kube),
            node_name: config.node_name,
            cri: services.cri,
            pods: services.pods,
            metrics: services.metrics,
            stats: StatsProvider::default(),
        };
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state: Arc::new(state),
        })
    }

    /// The address the server listens on (with the port chosen if it was 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(|source| ServerError::Listen {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }

    /// Serves until `shutdown` completes; connections already open (streams in
    /// particular) are left to finish on their own.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %err, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (acceptor, state) = (self.acceptor.clone(), self.state.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let certificate: Option<CertificateDer<'static>> = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|certificate| certificate.clone().into_owned());
                let service = service_fn(move |request| {
                    let (state, certificate) = (state.clone(), certificate.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(&state, certificate.as_ref(), request).await) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .with_upgrades();
                if let Err(err) = connection.await {
                    tracing::debug!(%peer, error = %err, "connection ended");
                }
            });
        }
    }
}

/// Authenticates, authorizes and answers one request.
async fn handle(
    state: &Arc<State>,
    certificate: Option<&CertificateDer<'_>>,
    request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let user = match state.authenticator.authenticate(certificate, request.headers()).await {
        Ok(user) => user,
        Err(err) => {
            tracing::debug!(%method, %path, error = %err, "unauthenticated");
            return body::error(&ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
        }
    };
    let attributes = Attributes::of(&method, &path, &state.node_name);
    let described = || {
        format!(
            "user={}, verb={}, resource=nodes, subresource={}",
            user.name, attributes.verb, attributes.subresource
        )
    };
    match state.authorizer.authorize(&user, &attributes).await {
        Ok(Decision::Allowed) => {}
        Ok(Decision::Denied(reason)) => {
            tracing::debug!(%method, %path, user = %user.name, %reason, "forbidden");
            return body::error(&ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Forbidden ({})", described()),
            ));
        }
        Err(err) => {
            tracing::warn!(%method, %path, user = %user.name, error = %err, "authorization failed");
            return body::error(&ApiError::internal(format!("Authorization error ({})", described())));
        }
    }
    let answer = match Route::parse(&path) {
        Ok(route) => handlers::dispatch(state, request, route).await,
        Err(err) => Err(err),
    };
    let response = answer.unwrap_or_else(|err| body::error(&err));
    tracing::debug!(%method, %path, user = %user.name, status = %response.status(), "request");
    response
}
