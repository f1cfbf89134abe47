//! The HTTP server: hands out single-use URLs for the CRI's Exec, Attach and PortForward
//! calls, and serves them (`/exec/{token}`, `/attach/{token}`, `/portforward/{token}`,
//! GET or POST) by upgrading to SPDY or WebSocket.
//!
//! It holds under abuse: a client has [`Config::header_read_timeout`] to send its request
//! head (a slow or silent one is disconnected), at most [`Config::max_connections`]
//! connections are served at once (upgraded sessions included; more wait to be accepted),
//! each connection buffers at most [`MAX_CONNECTION_BUFFER`] bytes of HTTP, and a container
//! has at most [`Config::max_sessions_per_container`] exec and attach sessions at once.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::remotecommand::{self, Options};
use crate::request::{AttachRequest, ExecRequest, PortForwardRequest, RequestError};
use crate::request_cache::{self, Cached, RequestCache};
use crate::runtime::Runtime;
use crate::sessions::{self, SessionLimit, SessionSlot};
use crate::spdy::Limits;
use crate::status::{Outcome, exit_code_message};
use crate::wsstream::{self, Protocol};
use crate::{portforward, spdy};

/// The SPDY handshake header: the protocols a client speaks, and the one the server chose.
const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
/// Sent with a 403 when no protocol matched: the ones the server speaks.
const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";
const SEC_WEBSOCKET_KEY: &str = "Sec-WebSocket-Key";
const SEC_WEBSOCKET_VERSION: &str = "Sec-WebSocket-Version";
const SEC_WEBSOCKET_PROTOCOL: &str = "Sec-WebSocket-Protocol";
const SEC_WEBSOCKET_ACCEPT: &str = "Sec-WebSocket-Accept";

/// How long a client has to send a request head, from the connection's start or the end
/// of its previous request: the kubelet proxying to this server sends it at once, so a
/// client that trickles it (slowloris) or sends nothing is cut off early.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by default, upgraded sessions included; more wait in the
/// listen backlog, as behind Go's `netutil.LimitListener`. Well under the usual limit of
/// 1024 open files per process, with room for the processes the sessions run.
pub const MAX_CONNECTIONS: usize = 512;
/// hyper's read and write buffers per connection: a request head larger than this is
/// refused (431), and an upgrade carries over at most this many bytes already read.
pub const MAX_CONNECTION_BUFFER: usize = 64 * 1024;
/// How long accepting pauses after an error that is not one connection's (out of file
/// descriptors, say), so the loop neither spins nor gives up.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The streaming server's settings; [`Config::default`] has the kubelet's values.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where [`Server::start`] listens. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// The URLs' base (`scheme://host:port/prefix`), when it is not `http://` plus the
    /// bound address: behind a proxy, or with TLS in front.
    pub base_url: Option<http::Uri>,
    /// An upgraded connection with no frame in either direction for this long is closed
    /// (zero: never).
    pub stream_idle_timeout: Duration,
    /// How long a SPDY client has to open its streams.
    pub stream_creation_timeout: Duration,
    /// How long a URL stays usable.
    pub token_ttl: Duration,
    /// How many unused URLs may exist at once.
    pub max_pending_tokens: usize,
    /// Frame and header sizes beyond which a client is disconnected.
    pub limits: Limits,
    /// The SPDY exec/attach protocols offered, most preferred first.
    pub supported_remote_command_protocols: Vec<String>,
    /// The SPDY port-forward protocols offered.
    pub supported_port_forward_protocols: Vec<String>,
    /// How long a client has to send a request head (zero: no limit).
    pub header_read_timeout: Duration,
    /// Connections [`Server::serve`] serves at once, upgraded sessions included.
    pub max_connections: usize,
    /// Exec and attach sessions one container may have at once; one more is answered
    /// with 429 Too Many Requests.
    pub max_sessions_per_container: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            base_url: None,
            stream_idle_timeout: Duration::from_secs(4 * 60 * 60),
            stream_creation_timeout: Duration::from_secs(30),
            token_ttl: request_cache::TOKEN_TTL,
            max_pending_tokens: request_cache::MAX_IN_FLIGHT,
            limits: Limits::default(),
            supported_remote_command_protocols: remotecommand::SUPPORTED_STREAM_PROTOCOLS
                .iter()
                .map(|p| p.to_string())
                .collect(),
            supported_port_forward_protocols: portforward::SUPPORTED_PROTOCOLS.iter().map(|p| p.to_string()).collect(),
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_sessions_per_container: sessions::MAX_SESSIONS_PER_CONTAINER,
        }
    }
}

/// The body of every response the server writes itself.
pub type Body = Full<Bytes>;

/// The streaming server. Cloning it is cheap; clones share the pending URLs.
pub struct Server<R> {
    inner: Arc<Inner<R>>,
}

impl<R> Clone for Server<R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<R> std::fmt::Debug for Server<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("base", &self.inner.base)
            .field("prefix", &self.inner.prefix)
            .finish()
    }
}

struct Inner<R> {
    config: Config,
    /// `scheme://authority` of the URLs handed out.
    base: String,
    /// The path before `/exec/...`: the directory of the base URL's path, without a
    /// trailing slash (as the kubelet joins the base URL with `exec/{token}`).
    prefix: String,
    runtime: Arc<R>,
    cache: RequestCache,
    /// Free connection slots of [`Server::serve`].
    connections: Arc<Semaphore>,
    /// Open exec and attach sessions per container.
    sessions: SessionLimit,
    /// Cancelled by [`Server::shutdown`]: ends the accept loop and every session.
    shutdown: CancellationToken,
}

/// A connection's place among [`Config::max_connections`], shared by the requests it
/// carries and held by the session it is upgraded to.
#[derive(Clone)]
struct ConnectionSlot {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// An exec or attach session about to start: its container, streams, connection slot and
/// tracing span.
struct Session {
    container_id: String,
    options: Options,
    connection: Option<ConnectionSlot>,
    span: tracing::Span,
}

/// What a session holds until it ends: its connection's slot and its container's.
struct Held {
    _connection: Option<ConnectionSlot>,
    _session: Option<SessionSlot>,
}

impl<R: Runtime> Server<R> {
    /// A server whose URLs start with `config.base_url`, or `http://` and `config.addr`;
    /// it serves what [`Server::serve`], [`Server::serve_connection`] or
    /// [`Server::handle`] give it. [`Server::start`] also binds and serves.
    pub fn new(config: Config, runtime: Arc<R>) -> Self {
        let (base, prefix) = match &config.base_url {
            Some(url) => {
                let scheme = url.scheme_str().unwrap_or("http");
                let authority = url.authority().map(|a| a.as_str()).unwrap_or_default();
                let path = url.path();
                let prefix = path.rfind('/').map(|i| &path[..i]).unwrap_or_default();
                (format!("{scheme}://{authority}"), prefix.to_owned())
            }
            None => (format!("http://{}", config.addr), String::new()),
        };
        let cache = RequestCache::new(config.token_ttl, config.max_pending_tokens);
        let connections = Arc::new(Semaphore::new(config.max_connections.min(Semaphore::MAX_PERMITS)));
        let sessions = SessionLimit::new(config.max_sessions_per_container);
        Self {
            inner: Arc::new(Inner {
                config,
                base,
                prefix,
                runtime,
                cache,
                connections,
                sessions,
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Binds `config.addr` and serves it in a spawned task until [`Server::shutdown`]; the
    /// URLs name the bound address (unless `config.base_url` is set).
    pub async fn start(mut config: Config, runtime: Arc<R>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.addr).await?;
        config.addr = listener.local_addr()?;
        let server = Self::new(config, runtime);
        tokio::spawn(server.clone().serve(listener));
        Ok(server)
    }

    /// The address served: the bound one after [`Server::start`].
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.config.addr
    }

    /// Stops accepting connections and ends every open session (their runtime calls
    /// are dropped).
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
    }

    /// The URL for a CRI `Exec` call.
    pub fn get_exec(&self, request: ExecRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.url("exec", Cached::Exec(request))
    }

    /// The URL for a CRI `Attach` call.
    pub fn get_attach(&self, request: AttachRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.url("attach", Cached::Attach(request))
    }

    /// The URL for a CRI `PortForward` call.
    pub fn get_port_forward(&self, request: PortForwardRequest) -> Result<String, RequestError> {
        request.validate()?;
        self.url("portforward", Cached::PortForward(request))
    }

    fn url(&self, method: &str, request: Cached) -> Result<String, RequestError> {
        let token = self.inner.cache.insert(request)?;
        Ok(format!("{}{}/{method}/{token}", self.inner.base, self.inner.prefix))
    }

    /// Accepts connections on `listener` and serves each, at most
    /// [`Config::max_connections`] at once, until the server shuts down. Errors accepting
    /// (a connection reset before it was accepted, no file descriptor left) pause it
    /// briefly instead of ending it.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        loop {
            // A slot first: beyond the cap, connections wait in the listen backlog instead
            // of taking file descriptors and memory.
            let permit = tokio::select! {
                permit = self.inner.connections.clone().acquire_owned() => permit,
                _ = self.inner.shutdown.cancelled() => return Ok(()),
            };
            // The semaphore is never closed.
            let Ok(permit) = permit else { return Ok(()) };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = self.inner.shutdown.cancelled() => return Ok(()),
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a streaming connection failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            let slot = ConnectionSlot {
                _permit: Arc::new(permit),
            };
            tokio::spawn(async move {
                if let Err(e) = server.serve_http(stream, Some(slot)).await {
                    tracing::debug!(%peer, error = %e, "streaming connection failed");
                }
            });
        }
    }

    /// Serves one HTTP/1.1 connection (for a caller that accepts connections itself, or
    /// wraps them in TLS), with the header deadline and buffer limits of [`Server::serve`]
    /// but outside its connection count.
    pub async fn serve_connection<I>(&self, io: I) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_http(io, None).await
    }

    async fn serve_http<I>(&self, io: I, slot: Option<ConnectionSlot>) -> Result<(), hyper::Error>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let server = self.clone();
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            if let Some(slot) = &slot {
                request.extensions_mut().insert(slot.clone());
            }
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(request)) }
        });
        let header_read_timeout = Some(self.inner.config.header_read_timeout).filter(|t| !t.is_zero());
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(MAX_CONNECTION_BUFFER)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        tokio::select! {
            served = connection => served,
            _ = self.inner.shutdown.cancelled() => Ok(()),
        }
    }

    /// Runs a session in its own task, ended early by [`Server::shutdown`]; what it holds
    /// is released when it ends.
    fn spawn_session<F>(&self, span: tracing::Span, held: Held, session: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.inner.shutdown.clone();
        tokio::spawn(
            async move {
                let _held = held;
                tokio::select! {
                    _ = session => {}
                    _ = shutdown.cancelled() => tracing::debug!("session ended by shutdown"),
                }
            }
            .instrument(span),
        );
    }

    /// Answers one request: the upgrade response of a valid stream URL (the session then
    /// runs in a task of its own), or an error. For embedding in another hyper server,
    /// which must serve the connection with upgrades enabled.
    pub fn handle<B>(&self, mut request: Request<B>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::POST {
            return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        }
        let on_upgrade = request.extensions_mut().remove::<OnUpgrade>();
        let connection = request.extensions_mut().remove::<ConnectionSlot>();
        let Some(rest) = request.uri().path().strip_prefix(self.inner.prefix.as_str()) else {
            return not_found();
        };
        let Some((kind, token)) = rest.strip_prefix('/').and_then(|r| r.split_once('/')) else {
            return not_found();
        };
        let cached = match kind {
            "exec" | "attach" | "portforward" => self.inner.cache.consume(token),
            _ => None,
        };
        let headers = request.headers();
        match (kind, cached) {
            ("exec", Some(Cached::Exec(exec))) => {
                let span = tracing::info_span!("exec", container_id = %exec.container_id);
                let session = Session {
                    container_id: exec.container_id.clone(),
                    options: Options::from(&exec),
                    connection,
                    span,
                };
                self.remote_command(headers, on_upgrade, session, move |inner, streams, ending| async move {
                    // A client that goes away takes the exec with it: the runtime's future
                    // is dropped, and with it the process.
                    let exec_run = inner.runtime.exec(&exec.container_id, exec.cmd.clone(), streams);
                    let outcome = match remotecommand::until_client_leaves(&ending, exec_run).await {
                        Some(Ok(0)) => Outcome::Success,
                        Some(Ok(code)) => Outcome::ExitCode {
                            code,
                            message: exit_code_message(&exec.cmd, code),
                        },
                        Some(Err(e)) => Outcome::InternalError(format!("error executing command in container: {e}")),
                        None => return tracing::debug!("client went away"),
                    };
                    tracing::debug!(?outcome, "exec finished");
                    ending.finish(outcome).await;
                })
            }
            ("attach", Some(Cached::Attach(attach))) => {
                let span = tracing::info_span!("attach", container_id = %attach.container_id);
                let session = Session {
                    container_id: attach.container_id.clone(),
                    options: Options::from(&attach),
                    connection,
                    span,
                };
                self.remote_command(headers, on_upgrade, session, move |inner, streams, ending| async move {
                    let attached = inner.runtime.attach(&attach.container_id, streams);
                    match remotecommand::until_client_leaves(&ending, attached).await {
                        Some(Ok(())) => ending.finish(Outcome::Success).await,
                        Some(Err(e)) => {
                            ending
                                .finish(Outcome::InternalError(format!("error attaching to container: {e}")))
                                .await
                        }
                        None => tracing::debug!("client went away"),
                    }
                })
            }
            ("portforward", Some(Cached::PortForward(forward))) => {
                let held = Held {
                    _connection: connection,
                    _session: None,
                };
                self.port_forward(headers, request.uri().query(), on_upgrade, held, forward)
            }
            _ => not_found(),
        }
    }

    /// A slot for one more exec or attach session in `container_id`, or the 429 answer.
    fn open_session(
        &self,
        container_id: &str,
        connection: Option<ConnectionSlot>,
    ) -> Result<Held, Box<Response<Body>>> {
        match self.inner.sessions.open(container_id) {
            Ok(session) => Ok(Held {
                _connection: connection,
                _session: Some(session),
            }),
            Err(e) => {
                tracing::info!(container_id, "{e}");
                Err(refused(StatusCode::TOO_MANY_REQUESTS, &e.to_string()))
            }
        }
    }

    fn remote_command<F, Fut>(
        &self,
        headers: &HeaderMap,
        on_upgrade: Option<OnUpgrade>,
        session: Session,
        run: F,
    ) -> Response<Body>
    where
        F: FnOnce(Arc<Inner<R>>, crate::runtime::Streams, remotecommand::Ending) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let held = match self.open_session(&session.container_id, session.connection) {
            Ok(held) => held,
            Err(response) => return *response,
        };
        let (options, span) = (session.options, session.span);
        let inner = self.inner.clone();
        let (timeouts, limits) = (inner.timeouts(), inner.config.limits);
        if is_websocket(headers) {
            let (response, protocol) = match websocket_handshake(headers, &remotecommand::WEBSOCKET_PROTOCOLS) {
                Ok(accepted) => accepted,
                Err(response) => return *response,
            };
            self.spawn_session(span, held, async move {
                let Some(ws) = upgraded_websocket(on_upgrade, &limits).await else {
                    return;
                };
                let (streams, ending) = remotecommand::websocket_session(ws, protocol, options, timeouts.idle).await;
                run(inner, streams, ending).await;
            });
            return response;
        }
        let (response, protocol) = match spdy_handshake(headers, &inner.config.supported_remote_command_protocols) {
            Ok(accepted) => accepted,
            Err(response) => return *response,
        };
        self.spawn_session(span, held, async move {
            let Some(io) = upgraded(on_upgrade).await else { return };
            if let Some((streams, ending)) = remotecommand::spdy_session(io, &protocol, options, timeouts, limits).await
            {
                run(inner, streams, ending).await;
            }
        });
        response
    }

    fn port_forward(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        on_upgrade: Option<OnUpgrade>,
        held: Held,
        forward: PortForwardRequest,
    ) -> Response<Body> {
        let inner = self.inner.clone();
        let (timeouts, limits) = (inner.timeouts(), inner.config.limits);
        let span = tracing::info_span!("port_forward", pod_sandbox_id = %forward.pod_sandbox_id);
        if is_websocket(headers) {
            // The ports of the CRI request (validated when the URL was issued), or else
            // the `port` query parameters, as the kubelet reads them.
            let ports: Vec<u16> = if forward.port.is_empty() {
                match query_ports(query) {
                    Ok(ports) => ports,
                    Err(message) => return text(StatusCode::BAD_REQUEST, &message),
                }
            } else {
                forward.port.iter().filter_map(|&p| u16::try_from(p).ok()).collect()
            };
            let (response, protocol) = match websocket_handshake(headers, &portforward::WEBSOCKET_PROTOCOLS) {
                Ok(accepted) => accepted,
                Err(response) => return *response,
            };
            self.spawn_session(span, held, async move {
                let Some(ws) = upgraded_websocket(on_upgrade, &limits).await else {
                    return;
                };
                portforward::serve_websocket(
                    ws,
                    protocol,
                    inner.runtime.clone(),
                    forward.pod_sandbox_id,
                    ports,
                    timeouts.idle,
                )
                .await;
            });
            return response;
        }
        let (response, _protocol) = match spdy_handshake(headers, &inner.config.supported_port_forward_protocols) {
            Ok(accepted) => accepted,
            Err(response) => return *response,
        };
        self.spawn_session(span, held, async move {
            let Some(io) = upgraded(on_upgrade).await else { return };
            portforward::serve_spdy(io, inner.runtime.clone(), forward.pod_sandbox_id, timeouts, limits).await;
        });
        response
    }
}

impl<R> Inner<R> {
    fn timeouts(&self) -> remotecommand::Timeouts {
        remotecommand::Timeouts {
            creation: self.config.stream_creation_timeout,
            idle: self.config.stream_idle_timeout,
        }
    }
}

/// An accept error that concerns one connection, not the listener: the next accept may
/// well succeed.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::Interrupted
    )
}

/// The ports of a WebSocket port-forward request's `port` query parameters (each may
/// list several, comma-separated).
fn query_ports(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (name, value) in form_pairs(query.unwrap_or_default()) {
        if name != "port" {
            continue;
        }
        if value.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for port in value.split(',') {
            match port.parse::<u16>() {
                Ok(port) if port > 0 => ports.push(port),
                _ => return Err(format!("unable to parse {value:?} as a port")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// `name=value` pairs of a query string (ports need no percent-decoding).
fn form_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

async fn upgraded_websocket(
    on_upgrade: Option<OnUpgrade>,
    limits: &Limits,
) -> Option<WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>> {
    let io = upgraded(on_upgrade).await?;
    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(wsstream::websocket_config(limits))).await)
}

async fn upgraded(on_upgrade: Option<OnUpgrade>) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
    match on_upgrade?.await {
        Ok(io) => Some(TokioIo::new(io)),
        Err(e) => {
            tracing::debug!(error = %e, "upgrade failed");
            None
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A refused upgrade, boxed: error responses travel in `Err`.
fn refused(status: StatusCode, message: &str) -> Box<Response<Body>> {
    Box::new(text(status, message))
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// Every value of a comma-separated header, over all its lines, trimmed.
fn header_list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `Upgrade: websocket` with `upgrade` among the `Connection` tokens.
fn is_websocket(headers: &HeaderMap) -> bool {
    header_str(headers, UPGRADE.as_str()).eq_ignore_ascii_case("websocket")
        && header_list(headers, CONNECTION.as_str())
            .iter()
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// The SPDY upgrade: negotiates the protocol (the client's first choice the server
/// speaks) and builds the 101 response, or the error response the kubelet gives.
fn spdy_handshake(headers: &HeaderMap, supported: &[String]) -> Result<(Response<Body>, String), Box<Response<Body>>> {
    let offered = header_list(headers, HEADER_PROTOCOL_VERSION);
    if offered.is_empty() {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            &format!("unable to upgrade: {HEADER_PROTOCOL_VERSION} is required"),
        ));
    }
    let Some(protocol) = offered.iter().find(|p| supported.contains(p)).cloned() else {
        let mut response = text(
            StatusCode::FORBIDDEN,
            &format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
            ),
        );
        for p in supported {
            if let Ok(value) = HeaderValue::from_str(p) {
                response.headers_mut().append(HEADER_ACCEPTED_PROTOCOL_VERSIONS, value);
            }
        }
        return Err(Box::new(response));
    };
    let connection_upgrade = headers
        .get_all(CONNECTION)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("upgrade")));
    let spdy_upgrade = header_str(headers, UPGRADE.as_str())
        .to_ascii_lowercase()
        .contains(&spdy::UPGRADE.to_ascii_lowercase());
    if !connection_upgrade || !spdy_upgrade {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        ));
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(UPGRADE, HeaderValue::from_static(spdy::UPGRADE));
    if let Ok(value) = HeaderValue::from_str(&protocol) {
        response_headers.insert(HEADER_PROTOCOL_VERSION, value);
    }
    Ok((response, protocol))
}

/// The WebSocket upgrade (RFC 6455 section 4.2) with subprotocol negotiation.
fn websocket_handshake(
    headers: &HeaderMap,
    offered: &[Protocol],
) -> Result<(Response<Body>, Protocol), Box<Response<Body>>> {
    if header_str(headers, SEC_WEBSOCKET_VERSION) != "13" {
        let mut response = text(StatusCode::BAD_REQUEST, "unsupported websocket version");
        response
            .headers_mut()
            .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        return Err(Box::new(response));
    }
    let key = header_str(headers, SEC_WEBSOCKET_KEY);
    if key.is_empty() {
        return Err(refused(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key"));
    }
    let requested = header_list(headers, SEC_WEBSOCKET_PROTOCOL);
    let Some(protocol) = wsstream::negotiate(&requested, offered) else {
        let names: Vec<&str> = offered.iter().map(|p| p.name).collect();
        return Err(refused(
            StatusCode::FORBIDDEN,
            &format!("requested protocol(s) are not supported: {requested:?}; supports {names:?}"),
        ));
    };
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let response_headers = response.headers_mut();
    response_headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    response_headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if let Ok(value) = HeaderValue::from_str(&accept) {
        response_headers.insert(SEC_WEBSOCKET_ACCEPT, value);
    }
    if !protocol.name.is_empty() {
        response_headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(protocol.name));
    }
    Ok((response, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn supported() -> Vec<String> {
        Config::default().supported_remote_command_protocols
    }

    #[test]
    fn spdy_negotiation_follows_the_clients_order() {
        let request = headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v3.channel.k8s.io"),
            ("x-stream-protocol-version", "v4.channel.k8s.io, v2.channel.k8s.io"),
        ]);
        let (response, protocol) = spdy_handshake(&request, &supported()).unwrap();
        assert_eq!(protocol, "v3.channel.k8s.io");
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["x-stream-protocol-version"], "v3.channel.k8s.io");
        assert_eq!(response.headers()["upgrade"], "SPDY/3.1");
    }

    #[test]
    fn spdy_handshake_failures_answer_as_the_kubelet_does() {
        let cases = [
            (
                "no protocol header",
                headers(&[("connection", "Upgrade"), ("upgrade", "SPDY/3.1")]),
                StatusCode::BAD_REQUEST,
            ),
            (
                "no common protocol",
                headers(&[
                    ("connection", "Upgrade"),
                    ("upgrade", "SPDY/3.1"),
                    ("x-stream-protocol-version", "v9.channel.k8s.io"),
                ]),
                StatusCode::FORBIDDEN,
            ),
            (
                "not an upgrade",
                headers(&[("x-stream-protocol-version", "v4.channel.k8s.io")]),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (desc, request, status) in cases {
            let response = spdy_handshake(&request, &supported()).expect_err(desc);
            assert_eq!(response.status(), status, "{desc}");
        }
        let refused = spdy_handshake(
            &headers(&[
                ("connection", "Upgrade"),
                ("upgrade", "SPDY/3.1"),
                ("x-stream-protocol-version", "v9.channel.k8s.io"),
            ]),
            &supported(),
        )
        .unwrap_err();
        let accepted: Vec<_> = refused
            .headers()
            .get_all("x-accepted-stream-protocol-versions")
            .iter()
            .collect();
        assert_eq!(accepted.len(), 4);
    }

    #[test]
    fn websocket_handshake_answers_with_the_accept_key_and_protocol() {
        // The example of RFC 6455 section 1.3.
        let request = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-protocol", "v5.channel.k8s.io"),
        ]);
        assert!(is_websocket(&request));
        let (response, protocol) = websocket_handshake(&request, &remotecommand::WEBSOCKET_PROTOCOLS).unwrap();
        assert_eq!(protocol, Protocol::v5());
        assert_eq!(
            response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(response.headers()["sec-websocket-protocol"], "v5.channel.k8s.io");
        let mut unknown = request.clone();
        unknown.insert("sec-websocket-protocol", HeaderValue::from_static("v9.channel.k8s.io"));
        assert_eq!(
            websocket_handshake(&unknown, &remotecommand::WEBSOCKET_PROTOCOLS)
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert!(!is_websocket(&headers(&[
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1")
        ])));
    }
}
