//! A client of the streaming server, speaking what kubectl speaks: exec and attach over
//! SPDY (remote command v1 to v4) or WebSocket (channel, base64, v4, v5), and
//! port-forward over SPDY or WebSocket. Plain `http://` URLs, as the server hands out.
//!
//! ```no_run
//! # async fn run(url: &str) -> Result<(), streaming::client::ClientError> {
//! use streaming::client::{self, ExitStatus, Protocol, RemoteCommand};
//!
//! let output = client::run(url, RemoteCommand::new(Protocol::SpdyV4).stdin_bytes(b"hello".to_vec())).await?;
//! assert_eq!(output.status, ExitStatus::Success);
//! println!("{}", String::from_utf8_lossy(&output.stdout));
//! # Ok(())
//! # }
//! ```

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::runtime::{Input, TerminalSize};
use crate::spdy::{self, Headers, Limits, Role};
use crate::wsstream::{self, ChannelConn, ChannelType};
use crate::{portforward, remotecommand};

pub use crate::wsstream::Channel;

/// The most bytes of an HTTP error response kept for [`ClientError::Upgrade`].
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A remote-command protocol and transport, as a client asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SPDY, `channel.k8s.io`.
    SpdyV1,
    /// SPDY, `v2.channel.k8s.io`.
    SpdyV2,
    /// SPDY, `v3.channel.k8s.io` (resize).
    SpdyV3,
    /// SPDY, `v4.channel.k8s.io` (exit codes): what kubectl uses over SPDY.
    SpdyV4,
    /// WebSocket, `channel.k8s.io`.
    WebSocketChannel,
    /// WebSocket, `base64.channel.k8s.io`.
    WebSocketBase64,
    /// WebSocket, `v4.channel.k8s.io`.
    WebSocketV4,
    /// WebSocket, `v4.base64.channel.k8s.io`.
    WebSocketV4Base64,
    /// WebSocket, `v5.channel.k8s.io` (stdin half-close): what kubectl 1.30+ asks first.
    WebSocketV5,
}

impl Protocol {
    /// The name the client sends.
    pub fn name(self) -> &'static str {
        match self {
            Self::SpdyV1 => remotecommand::STREAM_PROTOCOL_V1,
            Self::SpdyV2 => remotecommand::STREAM_PROTOCOL_V2,
            Self::SpdyV3 => remotecommand::STREAM_PROTOCOL_V3,
            Self::SpdyV4 => remotecommand::STREAM_PROTOCOL_V4,
            Self::WebSocketChannel => wsstream::CHANNEL_PROTOCOL,
            Self::WebSocketBase64 => wsstream::BASE64_CHANNEL_PROTOCOL,
            Self::WebSocketV4 => wsstream::V4_CHANNEL_PROTOCOL,
            Self::WebSocketV4Base64 => wsstream::V4_BASE64_CHANNEL_PROTOCOL,
            Self::WebSocketV5 => wsstream::V5_CHANNEL_PROTOCOL,
        }
    }

    fn is_spdy(self) -> bool {
        matches!(self, Self::SpdyV1 | Self::SpdyV2 | Self::SpdyV3 | Self::SpdyV4)
    }

    /// Whether the error stream carries a JSON `Status` (v4 and later).
    fn json_status(self) -> bool {
        matches!(
            self,
            Self::SpdyV4 | Self::WebSocketV4 | Self::WebSocketV4Base64 | Self::WebSocketV5
        )
    }

    fn websocket(self) -> wsstream::Protocol {
        match self {
            Self::WebSocketBase64 | Self::WebSocketV4Base64 => wsstream::Protocol::base64(self.name()),
            Self::WebSocketV5 => wsstream::Protocol::v5(),
            _ => wsstream::Protocol::binary(self.name()),
        }
    }
}

/// What a remote command session sends and wants back.
pub struct RemoteCommand {
    /// The protocol to ask for.
    pub protocol: Protocol,
    /// Bytes for the process's stdin, ended (half-closed) at end of input; `None` opens
    /// no stdin stream.
    pub stdin: Option<Input>,
    /// Open a stdout stream.
    pub stdout: bool,
    /// Open a stderr stream (not with `tty`).
    pub stderr: bool,
    /// The process runs on a terminal.
    pub tty: bool,
    /// Terminal sizes to send (with `tty`, protocols that resize).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

impl RemoteCommand {
    /// Stdout and stderr, no stdin, no terminal.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            stdin: None,
            stdout: true,
            stderr: true,
            tty: false,
            resize: None,
        }
    }

    /// Sends `bytes` as stdin, then ends it.
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(Box::pin(io::Cursor::new(bytes)));
        self
    }

    /// Runs on a terminal (which merges stderr into stdout), with sizes from `resize`.
    pub fn tty(mut self, resize: Option<mpsc::Receiver<TerminalSize>>) -> Self {
        self.tty = true;
        self.stderr = false;
        self.resize = resize;
        self
    }
}

impl std::fmt::Debug for RemoteCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCommand")
            .field("protocol", &self.protocol)
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout)
            .field("stderr", &self.stderr)
            .field("tty", &self.tty)
            .finish()
    }
}

/// How a session ended, as the error stream reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exit code 0, or an attachment that ended normally (or, before v4, no error).
    Success,
    /// A non-zero exit code (v4 and later).
    ExitCode(i32),
    /// The server's failure message.
    Failure(String),
}

/// What a remote command session produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything read from stdout.
    pub stdout: Vec<u8>,
    /// Everything read from stderr.
    pub stderr: Vec<u8>,
    /// How it ended.
    pub status: ExitStatus,
}

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://host:port/path`.
    #[error("invalid url {0:?}")]
    Url(String),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The server answered the upgrade with something other than 101.
    #[error("upgrade refused with status {status}: {body}")]
    Upgrade {
        /// The HTTP status code.
        status: u16,
        /// The response body.
        body: String,
    },
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server refused a stream.
    #[error(transparent)]
    Open(#[from] spdy::OpenError),
    /// The WebSocket handshake or connection failed.
    #[error(transparent)]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
}

/// Runs an exec or attach session at `url` (which the URL's kind decides).
pub async fn run(url: &str, command: RemoteCommand) -> Result<Output, ClientError> {
    if command.protocol.is_spdy() {
        run_spdy(url, command).await
    } else {
        run_websocket(url, command).await
    }
}

struct Target {
    authority: String,
    path_and_query: String,
}

fn parse_url(url: &str) -> Result<Target, ClientError> {
    let uri: http::Uri = url.parse().map_err(|_| ClientError::Url(url.to_owned()))?;
    if uri.scheme_str() != Some("http") {
        return Err(ClientError::Url(url.to_owned()));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| ClientError::Url(url.to_owned()))?
        .to_string();
    let path_and_query = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    Ok(Target {
        authority,
        path_and_query,
    })
}

/// Connects and upgrades to SPDY, offering `protocols`; returns the connection and the
/// protocol the server chose.
async fn spdy_upgrade(url: &str, protocols: &[&str]) -> Result<(TcpStream, String), ClientError> {
    let target = parse_url(url)?;
    let mut tcp = TcpStream::connect(target.authority.as_str()).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: {}\r\nContent-Length: 0\r\n",
        target.path_and_query,
        target.authority,
        spdy::UPGRADE
    );
    for protocol in protocols {
        request.push_str(&format!("X-Stream-Protocol-Version: {protocol}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    // Byte by byte: the SPDY session starts right after the head, and must not be
    // swallowed by a read-ahead buffer.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(ClientError::Protocol("response head too long".into()));
        }
        head.push(tcp.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol("malformed status line".into()))?;
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    };
    if status != 101 {
        let length = header("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_ERROR_BODY);
        let mut body = vec![0; length];
        let _ = tcp.read_exact(&mut body).await;
        return Err(ClientError::Upgrade {
            status,
            body: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    let chosen = header("x-stream-protocol-version").unwrap_or_default();
    Ok((tcp, chosen))
}

async fn read_all<R: AsyncRead + Unpin>(reader: Option<R>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut reader) = reader {
        let _ = reader.read_to_end(&mut out).await;
    }
    out
}

/// Copies stdin to its stream in a task of `tasks` (which ends it when the session is
/// dropped), then half-closes the stream and calls `on_end`.
fn pump_stdin<W>(
    tasks: &mut JoinSet<()>,
    input: Option<Input>,
    stream: Option<W>,
    on_end: impl FnOnce(W) + Send + 'static,
) where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (Some(mut input), Some(mut stream)) = (input, stream) else {
        return;
    };
    tasks.spawn(async move {
        let _ = tokio::io::copy(&mut input, &mut stream).await;
        let _ = stream.shutdown().await;
        on_end(stream);
    });
}

/// Sends terminal sizes as JSON on the resize stream, in a task of `tasks`.
fn pump_resizes<W>(tasks: &mut JoinSet<()>, resize: Option<mpsc::Receiver<TerminalSize>>, stream: Option<W>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (Some(mut sizes), Some(mut stream)) = (resize, stream) else {
        return;
    };
    tasks.spawn(async move {
        while let Some(size) = sizes.recv().await {
            let json = format!(r#"{{"Width":{},"Height":{}}}"#, size.width, size.height);
            if stream.write_all(json.as_bytes()).await.is_err() {
                return;
            }
        }
    });
}

async fn run_spdy(url: &str, command: RemoteCommand) -> Result<Output, ClientError> {
    let (tcp, chosen) = spdy_upgrade(url, &[command.protocol.name()]).await?;
    if chosen != command.protocol.name() {
        return Err(ClientError::Protocol(format!("server chose protocol {chosen:?}")));
    }
    let conn = spdy::Connection::new(tcp, Role::Client, std::time::Duration::ZERO, Limits::default());
    let open = |kind: &str| conn.open_stream(Headers::new().with(remotecommand::STREAM_TYPE_HEADER, kind));
    // kubectl's order: error, stdin, stdout, stderr, resize.
    let error = open(remotecommand::stream_type::ERROR).await?;
    let stdin = match command.stdin.is_some() {
        true => Some(open(remotecommand::stream_type::STDIN).await?),
        false => None,
    };
    let stdout = match command.stdout {
        true => Some(open(remotecommand::stream_type::STDOUT).await?),
        false => None,
    };
    let stderr = match command.stderr && !command.tty {
        true => Some(open(remotecommand::stream_type::STDERR).await?),
        false => None,
    };
    let resizes = command.tty && matches!(command.protocol, Protocol::SpdyV3 | Protocol::SpdyV4);
    let resize = match resizes {
        true => Some(open(remotecommand::stream_type::RESIZE).await?),
        false => None,
    };
    let mut pumps = JoinSet::new();
    pump_stdin(&mut pumps, command.stdin, stdin, drop);
    pump_resizes(&mut pumps, command.resize, resize);
    let (stdout, stderr, report) = tokio::join!(read_all(stdout), read_all(stderr), read_all(Some(error)));
    pumps.abort_all();
    conn.close().await;
    Ok(Output {
        stdout,
        stderr,
        status: decode_status(command.protocol, &report)?,
    })
}

async fn run_websocket(url: &str, command: RemoteCommand) -> Result<Output, ClientError> {
    let protocol = command.protocol.websocket();
    let ws = websocket_connect(url, protocol.name).await?;
    let layout = [
        ChannelType::Write,
        ChannelType::Read,
        ChannelType::Read,
        ChannelType::Read,
        ChannelType::Write,
    ];
    let (conn, channels) = ChannelConn::open(ws, protocol, &layout, std::time::Duration::ZERO);
    let conn = std::sync::Arc::new(conn);
    let mut channels = channels.into_iter();
    let mut next = || channels.next();
    let (stdin, stdout, stderr, error, resize) = (next(), next(), next(), next(), next());
    let closer = conn.clone();
    let close_signal = protocol.close_signal;
    let mut pumps = JoinSet::new();
    pump_stdin(&mut pumps, command.stdin, stdin, move |_| {
        if close_signal {
            closer.send_close_signal(0);
        }
    });
    pump_resizes(&mut pumps, command.resize, resize.filter(|_| command.tty));
    let (stdout, stderr, report) = tokio::join!(read_all(stdout), read_all(stderr), read_all(error));
    pumps.abort_all();
    conn.close().await;
    Ok(Output {
        stdout,
        stderr,
        status: decode_status(command.protocol, &report)?,
    })
}

async fn websocket_connect(
    url: &str,
    protocol: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, ClientError> {
    let target = parse_url(url)?;
    let tcp = TcpStream::connect(target.authority.as_str()).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!("ws://{}{}", target.authority, target.path_and_query).into_client_request()?;
    if !protocol.is_empty() {
        let value = HeaderValue::from_str(protocol)
            .map_err(|_| ClientError::Protocol(format!("bad protocol name {protocol:?}")))?;
        request.headers_mut().insert("Sec-WebSocket-Protocol", value);
    }
    let config = wsstream::websocket_config(&Limits::default());
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => ClientError::Upgrade {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .trim()
                    .to_owned(),
            },
            other => ClientError::WebSocket(other),
        })?;
    Ok(ws)
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    causes: Vec<Cause>,
}

#[derive(Deserialize)]
struct Cause {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

/// Reads the error stream as client-go does.
fn decode_status(protocol: Protocol, report: &[u8]) -> Result<ExitStatus, ClientError> {
    if !protocol.json_status() {
        return Ok(match report.is_empty() {
            true => ExitStatus::Success,
            false => ExitStatus::Failure(String::from_utf8_lossy(report).into_owned()),
        });
    }
    let status: Status = serde_json::from_slice(report)
        .map_err(|e| ClientError::Protocol(format!("error stream: {e} in {:?}", String::from_utf8_lossy(report))))?;
    match status.status.as_str() {
        "Success" => Ok(ExitStatus::Success),
        "Failure" if status.reason == "NonZeroExitCode" => {
            let code = status
                .details
                .iter()
                .flat_map(|d| &d.causes)
                .find(|c| c.reason == "ExitCode")
                .and_then(|c| c.message.parse().ok())
                .ok_or_else(|| ClientError::Protocol(format!("no exit code in {:?}", status.message)))?;
            Ok(ExitStatus::ExitCode(code))
        }
        "Failure" => Ok(ExitStatus::Failure(status.message)),
        other => Err(ClientError::Protocol(format!("unknown status {other:?}"))),
    }
}

/// A SPDY port-forward session: each [`PortForwarder::connect`] is one forwarded
/// connection, like each local connection of `kubectl port-forward`.
pub struct PortForwarder {
    conn: spdy::Connection,
    next_request_id: AtomicU32,
}

impl std::fmt::Debug for PortForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortForwarder").finish_non_exhaustive()
    }
}

/// Starts a SPDY port-forward session at `url`.
pub async fn port_forward(url: &str) -> Result<PortForwarder, ClientError> {
    let (tcp, chosen) = spdy_upgrade(url, &[portforward::PROTOCOL_V1]).await?;
    if chosen != portforward::PROTOCOL_V1 {
        return Err(ClientError::Protocol(format!("server chose protocol {chosen:?}")));
    }
    let conn = spdy::Connection::new(tcp, Role::Client, std::time::Duration::ZERO, Limits::default());
    Ok(PortForwarder {
        conn,
        next_request_id: AtomicU32::new(0),
    })
}

impl PortForwarder {
    /// Opens a connection to `port` in the pod: an error stream, then a data stream.
    pub async fn connect(&self, port: u16) -> Result<Forwarded<spdy::Stream>, ClientError> {
        let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed).to_string();
        let headers = |kind: &str| {
            Headers::new()
                .with(remotecommand::STREAM_TYPE_HEADER, kind)
                .with("port", &port.to_string())
                .with("requestID", &request_id)
        };
        let mut error = self
            .conn
            .open_stream(headers(remotecommand::stream_type::ERROR))
            .await?;
        // As kubectl: nothing is ever written on the error stream.
        error.shutdown().await?;
        let data = self.conn.open_stream(headers("data")).await?;
        Ok(Forwarded {
            data,
            error: tokio::spawn(read_all(Some(error))),
        })
    }

    /// Ends the session and every connection in it.
    pub async fn close(self) {
        self.conn.close().await;
    }
}

/// One forwarded connection: read and write it like a socket.
#[derive(Debug)]
pub struct Forwarded<S> {
    data: S,
    error: JoinHandle<Vec<u8>>,
}

impl<S> Forwarded<S> {
    /// Waits for the server's report on the connection's error stream, if any (e.g. that
    /// nothing listens on the port): over SPDY until the stream ends, over WebSocket
    /// the first message (or the end of the session).
    pub async fn error(self) -> Option<String> {
        drop(self.data);
        let report = self.error.await.ok()?;
        (!report.is_empty()).then(|| String::from_utf8_lossy(&report).into_owned())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Forwarded<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.data).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Forwarded<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.data).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.data).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.data).poll_shutdown(cx)
    }
}

/// A WebSocket port-forward session: one connection per port, opened with it.
pub struct WebSocketPortForward {
    conn: ChannelConn,
    /// One connection per requested port, in order.
    pub ports: Vec<Forwarded<Channel>>,
}

impl std::fmt::Debug for WebSocketPortForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketPortForward")
            .field("ports", &self.ports.len())
            .finish()
    }
}

impl WebSocketPortForward {
    /// Ends the session.
    pub async fn close(self) {
        drop(self.ports);
        self.conn.close().await;
    }
}

/// Starts a WebSocket port-forward session at `url` for `ports` (sent as `port` query
/// parameters too, for servers that read them there), with `base64` text framing or not.
pub async fn port_forward_websocket(
    url: &str,
    ports: &[u16],
    base64: bool,
) -> Result<WebSocketPortForward, ClientError> {
    let separator = if url.contains('?') { '&' } else { '?' };
    let query: Vec<String> = ports.iter().map(|p| format!("port={p}")).collect();
    let url = format!("{url}{separator}{}", query.join("&"));
    let protocol = match base64 {
        true => wsstream::Protocol::base64(wsstream::V4_BASE64_CHANNEL_PROTOCOL),
        false => wsstream::Protocol::binary(wsstream::V4_CHANNEL_PROTOCOL),
    };
    let ws = websocket_connect(&url, protocol.name).await?;
    let layout: Vec<ChannelType> = ports
        .iter()
        .flat_map(|_| [ChannelType::ReadWrite, ChannelType::Read])
        .collect();
    let (conn, channels) = ChannelConn::open(ws, protocol, &layout, std::time::Duration::ZERO);
    let mut channels = channels.into_iter();
    let mut forwarded = Vec::with_capacity(ports.len());
    for &port in ports {
        let (Some(mut data), Some(mut error)) = (channels.next(), channels.next()) else {
            break;
        };
        // Each channel opens with its port, little-endian.
        let announced = data.read_u16_le().await?;
        if announced != port {
            return Err(ClientError::Protocol(format!(
                "data channel announced port {announced}, expected {port}"
            )));
        }
        // A WebSocket channel has no end of its own: the report is the first message.
        let error = tokio::spawn(async move {
            let mut report = vec![0; 64 * 1024];
            match error.read_u16_le().await {
                Ok(_) => {
                    let n = error.read(&mut report).await.unwrap_or(0);
                    report.truncate(n);
                    report
                }
                Err(_) => Vec::new(),
            }
        });
        forwarded.push(Forwarded { data, error });
    }
    Ok(WebSocketPortForward { conn, ports: forwarded })
}
