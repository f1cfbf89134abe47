//! Port-forward sessions (the role of the kubelet's `streaming/portforward`).
//!
//! Over SPDY (`portforward.k8s.io`) the client opens a pair of streams per forwarded
//! connection, both with headers `port` and `requestID`, one with `streamType: error`
//! and one with `streamType: data`; the server connects to the port once both are there.
//! Over WebSocket the ports come from the request, and each port `i` gets channel `2i`
//! for data and `2i + 1` for errors; the server first sends the port number (2 bytes,
//! little-endian) on both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use crate::remotecommand::{STREAM_TYPE_HEADER, Timeouts, stream_type};
use crate::runtime::Runtime;
use crate::spdy::{self, IncomingStream, Limits, Role};
use crate::wsstream::{self, ChannelConn, ChannelType, Protocol};

/// The SPDY port-forward protocol.
pub const PROTOCOL_V1: &str = "portforward.k8s.io";
/// The text variant of [`PROTOCOL_V1`], over WebSocket.
pub const BASE64_PROTOCOL: &str = "base64.portforward.k8s.io";
/// The SPDY protocols offered for port-forward.
pub const SUPPORTED_PROTOCOLS: [&str; 1] = [PROTOCOL_V1];

/// The header with the port to forward to.
const PORT_HEADER: &str = "port";
/// The header pairing a data stream with its error stream.
const REQUEST_ID_HEADER: &str = "requestID";
/// The `streamType` of the stream that carries the connection's bytes.
const STREAM_TYPE_DATA: &str = "data";

/// The WebSocket subprotocols of port-forward.
/// The kubelet's are the unnamed one and the v4 channel protocols; the
/// `portforward.k8s.io` names are accepted too, as some clients send them.
pub(crate) const WEBSOCKET_PROTOCOLS: [Protocol; 5] = [
    Protocol::binary(""),
    Protocol::binary(wsstream::V4_CHANNEL_PROTOCOL),
    Protocol::base64(wsstream::V4_BASE64_CHANNEL_PROTOCOL),
    Protocol::binary(PROTOCOL_V1),
    Protocol::base64(BASE64_PROTOCOL),
];

/// After one direction of a forwarded connection ends, how long the other may go on
/// (containerd gives it a second, as socat does).
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The streams of one forwarded connection as they arrive.
#[derive(Default)]
struct Pair {
    data: Option<spdy::Stream>,
    error: Option<spdy::Stream>,
}

/// Checks a new stream's headers as the kubelet does before accepting it.
fn check_stream(incoming: &IncomingStream) -> Result<u16, String> {
    let headers = incoming.headers();
    let port = headers
        .get(PORT_HEADER)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("{PORT_HEADER:?} header is required"))?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port {port:?} must be > 0"));
    }
    match headers.get(STREAM_TYPE_HEADER) {
        Some(stream_type::ERROR | STREAM_TYPE_DATA) => Ok(port),
        Some("") | None => Err(format!("{STREAM_TYPE_HEADER:?} header is required")),
        Some(other) => Err(format!("invalid stream type {other:?}")),
    }
}

/// The pair a stream belongs to: its `requestID`, or for old clients that send none,
/// derived from the stream id (the error stream is opened first, the data stream next).
fn request_id(incoming: &IncomingStream) -> String {
    if let Some(id) = incoming.headers().get(REQUEST_ID_HEADER).filter(|id| !id.is_empty()) {
        return id.to_owned();
    }
    match incoming.headers().get(STREAM_TYPE_HEADER) {
        Some(stream_type::ERROR) => incoming.id().to_string(),
        _ => incoming.id().saturating_sub(2).to_string(),
    }
}

/// Serves a SPDY port-forward connection until the client hangs up.
pub(crate) async fn serve_spdy<T, R>(io: T, runtime: Arc<R>, pod_sandbox_id: String, timeouts: Timeouts, limits: Limits)
where
    T: AsyncRead + AsyncWrite + Send + 'static,
    R: Runtime,
{
    let conn = spdy::Connection::new(io, Role::Server, timeouts.idle, limits);
    let creation_timeout = timeouts.creation;
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = JoinSet::new();
    let (expired_tx, mut expired_rx) = mpsc::unbounded_channel::<String>();
    loop {
        let incoming = tokio::select! {
            incoming = conn.accept() => incoming,
            Some(request_id) = expired_rx.recv() => {
                if let Some(mut pair) = pairs.remove(&request_id) {
                    let message = format!("timed out waiting for streams of request {request_id}");
                    tracing::info!("{message}");
                    if let Some(error) = pair.error.as_mut() {
                        let _ = error.write_all(message.as_bytes()).await;
                    }
                }
                continue;
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => continue,
        };
        let Some(incoming) = incoming else { break };
        let port = match check_stream(&incoming) {
            Ok(port) => port,
            Err(message) => {
                tracing::info!(stream = incoming.id(), "rejecting port-forward stream: {message}");
                incoming.reject();
                continue;
            }
        };
        let request_id = request_id(&incoming);
        let is_error = incoming.headers().get(STREAM_TYPE_HEADER) == Some(stream_type::ERROR);
        let stream = incoming.accept();
        let pair = pairs.entry(request_id.clone()).or_insert_with(|| {
            let expired = expired_tx.clone();
            let request_id = request_id.clone();
            tokio::spawn(async move {
                tokio::time::sleep(creation_timeout).await;
                let _ = expired.send(request_id);
            });
            Pair::default()
        });
        let slot = if is_error { &mut pair.error } else { &mut pair.data };
        if slot.is_some() {
            let message = format!(
                "error processing stream for request {request_id}: {} stream already assigned",
                if is_error { "error" } else { "data" }
            );
            tracing::info!("{message}");
            if let Some(error) = pair.error.as_mut() {
                let _ = error.write_all(message.as_bytes()).await;
            }
            stream.reset();
            continue;
        }
        *slot = Some(stream);
        if let Pair {
            data: Some(_),
            error: Some(_),
        } = pair
            && let Some(Pair {
                data: Some(data),
                error: Some(error),
            }) = pairs.remove(&request_id)
        {
            let span =
                tracing::info_span!("port_forward", pod_sandbox_id = %pod_sandbox_id, port, request_id = %request_id);
            forwards.spawn(forward(runtime.clone(), pod_sandbox_id.clone(), port, data, error).instrument(span));
        }
    }
    // The client hung up: forwarded connections end with it, as the kubelet resets
    // every stream when the connection closes.
    forwards.shutdown().await;
    conn.close().await;
}

/// Serves a WebSocket port-forward connection for `ports`.
pub(crate) async fn serve_websocket<T, R>(
    ws: WebSocketStream<T>,
    protocol: Protocol,
    runtime: Arc<R>,
    pod_sandbox_id: String,
    ports: Vec<u16>,
    idle_timeout: Duration,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Runtime,
{
    let layout: Vec<ChannelType> = ports
        .iter()
        .flat_map(|_| [ChannelType::ReadWrite, ChannelType::Write])
        .collect();
    let (conn, channels) = ChannelConn::open(ws, protocol, &layout, idle_timeout);
    let mut channels = channels.into_iter();
    let mut forwards = JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        conn.send(2 * i as u8, prefix.clone());
        conn.send(2 * i as u8 + 1, prefix);
        let (Some(data), Some(error)) = (channels.next(), channels.next()) else {
            break;
        };
        let span = tracing::info_span!("port_forward", pod_sandbox_id = %pod_sandbox_id, port);
        forwards.spawn(forward(runtime.clone(), pod_sandbox_id.clone(), port, data, error).instrument(span));
    }
    forwards.join_all().await;
    conn.close().await;
}

/// Connects to `port` in the pod and copies both ways until both directions end (or one
/// ends and the other does not follow within a second); failures go to `error`.
async fn forward<R, D, E>(runtime: Arc<R>, pod_sandbox_id: String, port: u16, data: D, mut error: E)
where
    R: Runtime,
    D: AsyncRead + AsyncWrite + Send + 'static,
    E: AsyncWrite + Unpin,
{
    let result = match runtime.port_forward(&pod_sandbox_id, port).await {
        Ok(connection) => copy_both_ways(data, connection).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = result {
        let message = format!("error forwarding port {port} to pod {pod_sandbox_id}, uid : {e}");
        tracing::info!("{message}");
        let _ = error.write_all(message.as_bytes()).await;
    }
}

async fn copy_both_ways<A, B>(a: A, b: B) -> Result<(), String>
where
    A: AsyncRead + AsyncWrite,
    B: AsyncRead + AsyncWrite,
{
    let (mut a_read, mut a_write) = tokio::io::split(a);
    let (mut b_read, mut b_write) = tokio::io::split(b);
    let to_pod = async {
        let copied = tokio::io::copy(&mut a_read, &mut b_write).await;
        let _ = b_write.shutdown().await;
        copied
    };
    let from_pod = async {
        let copied = tokio::io::copy(&mut b_read, &mut a_write).await;
        let _ = a_write.shutdown().await;
        copied
    };
    tokio::pin!(to_pod, from_pod);
    let (first, rest) = tokio::select! {
        first = &mut to_pod => (first, tokio::time::timeout(HALF_CLOSE_GRACE, &mut from_pod).await),
        first = &mut from_pod => (first, tokio::time::timeout(HALF_CLOSE_GRACE, &mut to_pod).await),
    };
    first.map_err(|e| e.to_string())?;
    if let Ok(Err(e)) = rest {
        return Err(e.to_string());
    }
    Ok(())
}
