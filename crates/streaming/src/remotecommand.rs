//! Exec and attach sessions (the role of the kubelet's `streaming/remotecommand`): set up
//! the client's streams over SPDY or WebSocket, hand them to the runtime, and report how
//! the session ended on the error stream.
//!
//! Protocol versions, named in `X-Stream-Protocol-Version` (SPDY) or
//! `Sec-WebSocket-Protocol` (WebSocket):
//!
//! | version | SPDY name | adds |
//! | --- | --- | --- |
//! | 1 | `channel.k8s.io` | stdin, stdout, stderr and an error stream with the failure's text |
//! | 2 | `v2.channel.k8s.io` | fixes for stream ordering (same server behaviour as 1 here) |
//! | 3 | `v3.channel.k8s.io` | a `resize` stream of JSON terminal sizes |
//! | 4 | `v4.channel.k8s.io` | the error stream carries a JSON `Status`, with the exit code |
//! | 5 | (WebSocket only) `v5.channel.k8s.io` | a CLOSE signal to half-close stdin |

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;

use crate::runtime::{Input, Output, Streams, TerminalSize};
use crate::spdy::{self, Limits, Role};
use crate::status::Outcome;
use crate::wsstream::{self, ChannelConn, ChannelType, Protocol};

/// SPDY protocol version 1.
pub const STREAM_PROTOCOL_V1: &str = "channel.k8s.io";
/// SPDY protocol version 2.
pub const STREAM_PROTOCOL_V2: &str = "v2.channel.k8s.io";
/// SPDY protocol version 3: terminal resizing.
pub const STREAM_PROTOCOL_V3: &str = "v3.channel.k8s.io";
/// SPDY protocol version 4: a JSON `Status` with the exit code.
pub const STREAM_PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// The SPDY protocols the kubelet offers, most preferred first.
pub const SUPPORTED_STREAM_PROTOCOLS: [&str; 4] = [
    STREAM_PROTOCOL_V4,
    STREAM_PROTOCOL_V3,
    STREAM_PROTOCOL_V2,
    STREAM_PROTOCOL_V1,
];

/// The header naming a stream's role.
pub(crate) const STREAM_TYPE_HEADER: &str = "streamType";
/// Stream types: `streamType` values.
pub(crate) mod stream_type {
    pub(crate) const ERROR: &str = "error";
    pub(crate) const STDIN: &str = "stdin";
    pub(crate) const STDOUT: &str = "stdout";
    pub(crate) const STDERR: &str = "stderr";
    pub(crate) const RESIZE: &str = "resize";
}

/// WebSocket channel numbers.
mod channel {
    pub(super) const STDIN: u8 = 0;
    pub(super) const STDOUT: u8 = 1;
    pub(super) const STDERR: u8 = 2;
    pub(super) const ERROR: u8 = 3;
    pub(super) const RESIZE: u8 = 4;
}

/// The WebSocket subprotocols of exec and attach.
pub(crate) const WEBSOCKET_PROTOCOLS: [Protocol; 6] = [
    Protocol::binary(""),
    Protocol::binary(wsstream::CHANNEL_PROTOCOL),
    Protocol::base64(wsstream::BASE64_CHANNEL_PROTOCOL),
    Protocol::binary(wsstream::V4_CHANNEL_PROTOCOL),
    Protocol::base64(wsstream::V4_BASE64_CHANNEL_PROTOCOL),
    Protocol::v5(),
];

/// Terminal sizes buffered for a runtime that is slow to apply them.
const RESIZE_QUEUE: usize = 4;

/// How long a client may take: to open its streams, and between frames.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) creation: Duration,
    pub(crate) idle: Duration,
}

/// The streams the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
    pub(crate) tty: bool,
}

impl From<&crate::ExecRequest> for Options {
    fn from(exec: &crate::ExecRequest) -> Options {
        Options {
            stdin: exec.stdin,
            stdout: exec.stdout,
            stderr: exec.stderr,
            tty: exec.tty,
        }
    }
}

impl From<&crate::AttachRequest> for Options {
    fn from(attach: &crate::AttachRequest) -> Options {
        Options {
            stdin: attach.stdin,
            stdout: attach.stdout,
            stderr: attach.stderr,
            tty: attach.tty,
        }
    }
}

/// How the error stream reports the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusFormat {
    /// v4 and later: a JSON `Status`.
    Json,
    /// Before v4: the failure's text; nothing on success.
    Text,
}

/// The server's end of a session once the runtime has its streams.
pub(crate) struct Ending {
    transport: Transport,
    format: StatusFormat,
}

enum Transport {
    Spdy {
        conn: Arc<spdy::Connection>,
        error: Option<spdy::Stream>,
    },
    WebSocket {
        conn: ChannelConn,
    },
}

impl Ending {
    /// Resolves when the client goes away.
    pub(crate) async fn closed(&self) {
        match &self.transport {
            Transport::Spdy { conn, .. } => conn.closed().await,
            Transport::WebSocket { conn } => conn.closed().await,
        }
    }

    /// Reports `outcome` on the error stream and closes the connection.
    pub(crate) async fn finish(self, outcome: Outcome) {
        let report = match self.format {
            StatusFormat::Json => Some(outcome.to_v4_json()),
            StatusFormat::Text => outcome.to_text(),
        };
        match self.transport {
            Transport::Spdy { conn, error } => {
                if let (Some(mut error), Some(report)) = (error, report) {
                    let _ = error.write_all(&report).await;
                }
                conn.close().await;
            }
            Transport::WebSocket { conn } => {
                if let Some(report) = report {
                    conn.send(channel::ERROR, Bytes::from(report));
                }
                conn.close().await;
            }
        }
    }
}

/// Accepts the client's SPDY streams for `protocol` (already negotiated) and returns them
/// for the runtime; `None` if the client did not open them within `creation_timeout`.
pub(crate) async fn spdy_session<T>(
    io: T,
    protocol: &str,
    options: Options,
    timeouts: Timeouts,
    limits: Limits,
) -> Option<(Streams, Ending)>
where
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    let conn = Arc::new(spdy::Connection::new(io, Role::Server, timeouts.idle, limits));
    let resizes = options.tty && !matches!(protocol, STREAM_PROTOCOL_V1 | STREAM_PROTOCOL_V2);
    let expected = 1
        + usize::from(options.stdin)
        + usize::from(options.stdout)
        + usize::from(options.stderr)
        + usize::from(resizes);
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let accepted = tokio::time::timeout(timeouts.creation, async {
        let mut received = 0;
        while received < expected {
            let incoming = conn.accept().await?;
            let slot = match incoming.headers().get(STREAM_TYPE_HEADER).unwrap_or_default() {
                stream_type::ERROR => &mut error,
                stream_type::STDIN => &mut stdin,
                stream_type::STDOUT => &mut stdout,
                stream_type::STDERR => &mut stderr,
                stream_type::RESIZE if resizes => &mut resize,
                other => {
                    tracing::debug!(stream_type = other, "rejecting a stream of unexpected type");
                    incoming.reject();
                    continue;
                }
            };
            *slot = Some(incoming.accept());
            received += 1;
        }
        Some(())
    })
    .await;
    match accepted {
        Ok(Some(())) => {}
        Ok(None) => {
            tracing::debug!("client went away before opening its streams");
            return None;
        }
        Err(_) => {
            tracing::info!("timed out waiting for client to create streams");
            conn.close().await;
            return None;
        }
    }
    // Streams beyond those expected are refused, not left waiting for a reply.
    let extra = conn.clone();
    tokio::spawn(async move {
        while let Some(incoming) = extra.accept().await {
            tracing::debug!(
                stream_type = incoming.headers().get(STREAM_TYPE_HEADER),
                "rejecting an unexpected stream"
            );
            incoming.reject();
        }
    });
    if protocol == STREAM_PROTOCOL_V1
        && let Some(stdin) = stdin.as_mut()
    {
        // Version 1 clients expect the server's side of stdin closed at once.
        let _ = stdin.shutdown().await;
    }
    let streams = Streams {
        stdin: stdin.map(|s| Box::pin(s) as Input),
        stdout: stdout.map(|s| Box::pin(s) as Output),
        stderr: stderr.map(|s| Box::pin(s) as Output),
        tty: options.tty,
        resize: resize.map(watch_resizes),
    };
    let format = if protocol == STREAM_PROTOCOL_V4 {
        StatusFormat::Json
    } else {
        StatusFormat::Text
    };
    Some((
        streams,
        Ending {
            transport: Transport::Spdy { conn, error },
            format,
        },
    ))
}

/// Opens the channels of a WebSocket session with the negotiated `protocol`.
pub(crate) async fn websocket_session<T>(
    ws: WebSocketStream<T>,
    protocol: Protocol,
    options: Options,
    idle_timeout: Duration,
) -> (Streams, Ending)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let kind = |wanted: bool, kind: ChannelType| if wanted { kind } else { ChannelType::Ignore };
    let mut layout = [ChannelType::Ignore; 5];
    layout[usize::from(channel::STDIN)] = kind(options.stdin, ChannelType::Read);
    layout[usize::from(channel::STDOUT)] = kind(options.stdout, ChannelType::Write);
    layout[usize::from(channel::STDERR)] = kind(options.stderr, ChannelType::Write);
    layout[usize::from(channel::ERROR)] = ChannelType::Write;
    layout[usize::from(channel::RESIZE)] = ChannelType::Read;
    let (conn, channels) = ChannelConn::open(ws, protocol, &layout, idle_timeout);
    // An empty message on the first output channel tells the client the session is open.
    let first = if options.stdout {
        channel::STDOUT
    } else if options.stderr {
        channel::STDERR
    } else {
        channel::ERROR
    };
    conn.send(first, Bytes::new());
    let mut channels = channels.into_iter();
    let mut next = || channels.next();
    let (stdin, stdout, stderr, _error, resize) = (next(), next(), next(), next(), next());
    let streams = Streams {
        stdin: stdin.filter(|_| options.stdin).map(|c| Box::pin(c) as Input),
        stdout: stdout.filter(|_| options.stdout).map(|c| Box::pin(c) as Output),
        stderr: stderr.filter(|_| options.stderr).map(|c| Box::pin(c) as Output),
        tty: options.tty,
        resize: resize.filter(|_| options.tty).map(watch_resizes),
    };
    let format = if matches!(
        protocol.name,
        wsstream::V4_CHANNEL_PROTOCOL | wsstream::V4_BASE64_CHANNEL_PROTOCOL | wsstream::V5_CHANNEL_PROTOCOL
    ) {
        StatusFormat::Json
    } else {
        StatusFormat::Text
    };
    (
        streams,
        Ending {
            transport: Transport::WebSocket { conn },
            format,
        },
    )
}

/// A terminal size as clients send it: `{"Width":80,"Height":24}`. Go's decoder matches
/// field names without regard to case; so does this one for the two spellings seen.
#[derive(Deserialize)]
struct WireSize {
    #[serde(alias = "width")]
    #[serde(rename = "Width")]
    width: u16,
    #[serde(alias = "height")]
    #[serde(rename = "Height")]
    height: u16,
}

/// Decodes the resize stream (concatenated JSON objects) into terminal sizes; the
/// receiver closes when the stream ends or carries something that is not a size.
fn watch_resizes<S>(stream: S) -> mpsc::Receiver<TerminalSize>
where
    S: AsyncRead + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(RESIZE_QUEUE);
    tokio::spawn(decode_resizes(stream, tx));
    rx
}

async fn decode_resizes<S: AsyncRead + Unpin>(mut stream: S, sizes: mpsc::Sender<TerminalSize>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        let mut values = serde_json::Deserializer::from_slice(&buffer).into_iter::<WireSize>();
        let mut used = 0;
        loop {
            match values.next() {
                Some(Ok(size)) => {
                    used = values.byte_offset();
                    if sizes
                        .send(TerminalSize {
                            width: size.width,
                            height: size.height,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Some(Err(e)) if e.is_eof() => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "ending resizes at a value that is not a terminal size");
                    return;
                }
                None => break,
            }
        }
        buffer.drain(..used);
        if buffer.len() > 64 * 1024 {
            return;
        }
    }
}

/// Runs `session` for the runtime, unless the client goes away first: then the session's
/// future is dropped (with the streams it holds), which ends an exec's process.
pub(crate) async fn until_client_leaves<F, T>(ending: &Ending, session: F) -> Option<T>
where
    F: Future<Output = T>,
{
    tokio::select! {
        result = session => Some(result),
        _ = ending.closed() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resizes_decode_across_reads_and_stop_at_garbage() {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut sizes = watch_resizes(server);
        client
            .write_all(br#"{"Width":80,"Height":24}{"Width":1"#)
            .await
            .unwrap();
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 80, height: 24 }));
        client.write_all(br#"20,"Height":40}"#).await.unwrap();
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 120, height: 40 }));
        client
            .write_all(b"\n{\"width\":7,\"height\":9} not json")
            .await
            .unwrap();
        assert_eq!(sizes.recv().await, Some(TerminalSize { width: 7, height: 9 }));
        assert_eq!(sizes.recv().await, None);
    }
}
