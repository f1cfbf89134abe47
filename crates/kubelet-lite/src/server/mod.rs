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
//! use kubelet_lite::metrics::Metrics;
//! use kubelet_lite::server::{Server, ServerConfig, Services};
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
pub mod names;
mod proxy;
pub mod routes;
pub mod stats;
mod streams;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::RETRY_AFTER;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use k8s_openapi::api::core::v1::Pod;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

pub use authn::{AuthenticationConfig, ReviewBudget, TokenReviewCounts, UserInfo};
pub use authz::{AuthorizationMode, Decision};
pub use error::{ApiError, CertificateRole, ServerError, X509V1Certificate};
pub use tls::ServingCertificate;

use crate::metrics::Metrics;
use crate::pods::PodSnapshot;
use authn::{Authenticator, AuthnError};
use authz::{Attributes, Authorizer};
use body::Body;
use routes::Route;
use stats::StatsProvider;

/// The kubelet's port for this API.
pub const DEFAULT_PORT: u16 = 10250;

/// How long a client has to finish the TLS handshake after connecting (a connection
/// that sends nothing, or its ClientHello a byte at a time, is closed then).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a whole request head (request line and headers) once
/// the connection waits for one: against slowloris clients that send a header a byte
/// at a time. hyper starts this clock whenever the connection waits for the next
/// request, so it is also how long a kept-alive connection may sit idle between
/// requests (the role of Go's `IdleTimeout`, 90 s in the kubelet; shorter here: a
/// client reconnecting costs one handshake, an idle connection a file descriptor).
/// Upgraded streams (exec, attach, port-forward) and responses being sent (`logs -f`)
/// are not requests being read, and are not cut.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The most connections served at once; past it a new connection is closed at once.
/// The real kubelet has no cap (Go serves until file descriptors run out, then fails
/// to accept anything); the cap is lowered at start-up to leave [`FD_RESERVE`] file
/// descriptors of the process's limit for everything else.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// The most connections served at once for one client address (IPv6: one /64, what
/// one host usually holds); past it, that client's new connections are closed at once.
/// High enough for an apiserver proxying many `kubectl exec` and `logs -f` streams (each
/// is a connection of its own), low enough that one client cannot take every slot.
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: usize = 1024;

/// The most bytes of a request head (and of what a client sends before the server
/// reads it, such as the first bytes of an upgraded stream) buffered per connection.
/// Go's `http.DefaultMaxHeaderBytes` is 1 MiB; no kubelet request comes near 64 KiB.
/// Once upgraded, a stream is copied through fixed buffers of 8 KiB each way.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 64 * 1024;

/// File descriptors of the process's limit (`RLIMIT_NOFILE`) left for what is not a
/// connection of this server: the CRI connection, log files, the runtime's sockets.
pub const FD_RESERVE: usize = 256;

/// The least [`ConnectionLimits::max_buffer_bytes`] hyper accepts.
const MIN_BUFFER_BYTES: usize = 8192;

/// The limits that keep the server serving under abuse: slow or idle clients and floods
/// of connections cost bounded time, memory and file descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// See [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_MAX_CONNECTIONS_PER_ADDRESS`].
    pub max_connections_per_address: usize,
    /// See [`DEFAULT_MAX_BUFFER_BYTES`] (at least 8 KiB).
    pub max_buffer_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
        }
    }
}

/// The pods of this node, as the node agent knows them: what `/pods` lists. The pod
/// workers' [`PodSnapshot`] implements it; a closure returning the pods does too.
pub trait PodDirectory: Send + Sync {
    /// The pods bound to this node (static pods included), with their current status.
    fn pods(&self) -> Vec<Pod>;
}

impl PodDirectory for PodSnapshot {
    fn pods(&self) -> Vec<Pod> {
        PodSnapshot::pods(self)
    }
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
    /// Timeouts and caps on connections.
    pub limits: ConnectionLimits,
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
            limits: ConnectionLimits::default(),
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
    limits: ConnectionLimits,
    slots: Arc<ConnectionSlots>,
    state: Arc<State>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("address", &self.listener.local_addr().ok())
            .field("node_name", &self.state.node_name)
            .field("limits", &self.limits)
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
        let mut limits = config.limits;
        limits.max_buffer_bytes = limits.max_buffer_bytes.max(MIN_BUFFER_BYTES);
        if let Some(room) = connection_room() {
            if room < limits.max_connections {
                tracing::warn!(
                    configured = limits.max_connections,
                    cap = room,
                    "the file descriptor limit (RLIMIT_NOFILE) leaves room for fewer connections than configured"
                );
            }
            limits.max_connections = limits.max_connections.min(room);
        }
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
            slots: Arc::new(ConnectionSlots::new(&limits)),
            limits,
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

    /// The limits in force: the configured ones, with the connection cap lowered to what
    /// the file descriptor limit leaves room for.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// How many TokenReviews this server has sent and how many it refused to send;
    /// the handle keeps counting after [`Server::serve`] takes the server.
    pub fn token_reviews(&self) -> TokenReviewCounts {
        self.state.authenticator.counts()
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
            let slot = match self.slots.take(peer.ip()) {
                Ok(slot) => slot,
                Err(full) => {
                    // Dropping the stream closes the connection at once.
                    tracing::debug!(%peer, "connection refused: {full}");
                    continue;
                }
            };
            tokio::spawn(serve_connection(
                stream,
                peer,
                slot,
                self.acceptor.clone(),
                self.limits,
                self.state.clone(),
            ));
        }
    }
}

/// Serves one accepted connection: the TLS handshake under its deadline, then HTTP/1.1
/// requests (and upgrades) under the header deadline, holding `slot` until it closes.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: ConnectionSlot,
    acceptor: TlsAcceptor,
    limits: ConnectionLimits,
    state: Arc<State>,
) {
    let _slot = slot;
    let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)).await {
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
        async move { Ok::<_, std::convert::Infallible>(handle(&state, peer.ip(), certificate.as_ref(), request).await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_buffer_bytes)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    if let Err(err) = connection.await {
        tracing::debug!(%peer, error = %err, "connection ended");
    }
}

/// How many connections the file descriptor limit leaves room for: each takes one
/// descriptor, and [`FD_RESERVE`] are kept for the rest of the process. `None` if the
/// limit cannot be read.
fn connection_room() -> Option<usize> {
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok()?;
    let soft = usize::try_from(soft).unwrap_or(usize::MAX);
    Some(soft.saturating_sub(FD_RESERVE).max(1))
}

/// Why a connection was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum SlotsFull {
    /// [`ConnectionLimits::max_connections`] are open.
    #[error("{0} connections open (the cap)")]
    Total(usize),
    /// [`ConnectionLimits::max_connections_per_address`] are open from this client.
    #[error("{0} connections open from this client address (the cap)")]
    Address(usize),
}

/// The connection slots: a count in all and one per client address.
#[derive(Debug)]
struct ConnectionSlots {
    total: Arc<Semaphore>,
    max_total: usize,
    max_per_address: usize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's slot, given back when dropped.
#[derive(Debug)]
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    address: IpAddr,
    slots: Arc<ConnectionSlots>,
}

impl ConnectionSlots {
    fn new(limits: &ConnectionLimits) -> ConnectionSlots {
        let max_total = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionSlots {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            max_per_address: limits.max_connections_per_address.max(1),
            per_address: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a connection from `ip`, if both caps leave one.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, SlotsFull> {
        let address = client_address(ip);
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| SlotsFull::Total(self.max_total))?;
        let mut per_address = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        let open = per_address.entry(address).or_insert(0);
        if *open >= self.max_per_address {
            return Err(SlotsFull::Address(self.max_per_address));
        }
        *open += 1;
        Ok(ConnectionSlot {
            _permit: permit,
            address,
            slots: self.clone(),
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_address = self.slots.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = per_address.get_mut(&self.address) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}

/// The address a client is counted under: IPv4 as it is (an IPv4-mapped IPv6 address
/// as its IPv4 address), IPv6 by its /64 prefix (one host often holds many addresses
/// of its /64).
pub(crate) fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// Authenticates, authorizes and answers one request.
async fn handle(
    state: &Arc<State>,
    peer: IpAddr,
    certificate: Option<&CertificateDer<'_>>,
    request: Request<Incoming>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let user = match state
        .authenticator
        .authenticate(peer, certificate, request.headers())
        .await
    {
        Ok(user) => user,
        Err(AuthnError::Throttled { retry_after }) => {
            tracing::debug!(%method, %path, %peer, "token review refused: too many failed reviews");
            let mut response = body::error(&ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests with tokens that failed review, try again later",
            ));
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
            return response;
        }
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
