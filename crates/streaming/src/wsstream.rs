//! The Kubernetes channel protocol over one WebSocket (the role of apimachinery's
//! `wsstream`): every message starts with a channel number, the rest is that channel's
//! bytes.
//!
//! ```text
//! binary subprotocols:  [channel byte][payload ...]               e.g. 0x01 "hello"
//! base64 subprotocols:  ['0' + channel][base64(payload)] as text   e.g. "1aGVsbG8="
//! v5 CLOSE signal:      [255][channel]   the client will send nothing more on channel
//! ```

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::{CancellationToken, PollSemaphore};

use crate::idle::Activity;
use crate::pipe::Incoming;

/// The binary channel subprotocol (also what a client naming no subprotocol gets).
pub const CHANNEL_PROTOCOL: &str = "channel.k8s.io";
/// The text subprotocol: channel as an ASCII digit, payload in base64.
pub const BASE64_CHANNEL_PROTOCOL: &str = "base64.channel.k8s.io";
/// Version 4 of the binary subprotocol: the error channel carries a JSON `Status`.
pub const V4_CHANNEL_PROTOCOL: &str = "v4.channel.k8s.io";
/// Version 4 of the text subprotocol.
pub const V4_BASE64_CHANNEL_PROTOCOL: &str = "v4.base64.channel.k8s.io";
/// Version 5 (Kubernetes 1.29+, what kubectl asks for first): v4 plus the CLOSE signal,
/// with which a client half-closes stdin.
pub const V5_CHANNEL_PROTOCOL: &str = "v5.channel.k8s.io";

/// The channel byte of a v5 CLOSE signal; the byte after it names the closed channel.
const CLOSE_SIGNAL: u8 = 255;
/// Data messages buffered per channel before the reader waits for the channel's consumer.
const CHANNEL_INPUT_MESSAGES: usize = 16;
/// Bytes of output a connection may have queued before writers wait.
const WRITE_BUDGET: usize = 512 * 1024;
/// The most bytes one message carries.
const MAX_MESSAGE_PAYLOAD: usize = 32 * 1024;
/// The WebSocket limits matching the SPDY ones: a message or frame above the frame-size
/// limit closes the connection.
pub(crate) fn websocket_config(limits: &crate::spdy::Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(limits.max_frame_size))
        .max_frame_size(Some(limits.max_frame_size))
}

/// How long a closing connection waits for the client's close reply.
const LINGER: Duration = Duration::from_secs(5);

/// A subprotocol the server offers on one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protocol {
    /// Its `Sec-WebSocket-Protocol` name; empty for a client that names none.
    pub(crate) name: &'static str,
    /// Text messages with base64 payloads instead of binary ones.
    pub(crate) base64: bool,
    /// The v5 CLOSE signal is understood.
    pub(crate) close_signal: bool,
}

impl Protocol {
    pub(crate) const fn binary(name: &'static str) -> Self {
        Self {
            name,
            base64: false,
            close_signal: false,
        }
    }

    pub(crate) const fn base64(name: &'static str) -> Self {
        Self {
            name,
            base64: true,
            close_signal: false,
        }
    }

    pub(crate) const fn v5() -> Self {
        Self {
            name: V5_CHANNEL_PROTOCOL,
            base64: false,
            close_signal: true,
        }
    }
}

/// Picks the first subprotocol the client lists that the server offers, or the unnamed
/// one when the client lists none (as x/net/websocket's handshake does).
pub(crate) fn negotiate(requested: &[String], offered: &[Protocol]) -> Option<Protocol> {
    if requested.is_empty() {
        return offered.iter().find(|p| p.name.is_empty()).copied();
    }
    requested
        .iter()
        .find_map(|r| offered.iter().find(|p| !p.name.is_empty() && p.name == r).copied())
}

/// What a channel carries, seen from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelType {
    /// Nothing: input is dropped, output discarded.
    Ignore,
    /// Client to server.
    Read,
    /// Server to client.
    Write,
    /// Both ways.
    ReadWrite,
}

impl ChannelType {
    fn reads(self) -> bool {
        matches!(self, Self::Read | Self::ReadWrite)
    }

    fn writes(self) -> bool {
        matches!(self, Self::Write | Self::ReadWrite)
    }
}

enum Command {
    Data(u8, Bytes, Option<OwnedSemaphorePermit>),
    Raw(Message),
    Close,
}

/// One WebSocket carrying numbered channels.
pub(crate) struct ChannelConn {
    commands: mpsc::UnboundedSender<Command>,
    gone: CancellationToken,
    read_done: CancellationToken,
}

impl ChannelConn {
    /// Starts the channel protocol on a WebSocket (either end's); returns the connection
    /// and one [`Channel`] per entry of `channels`.
    pub(crate) fn open<T>(
        ws: WebSocketStream<T>,
        protocol: Protocol,
        channels: &[ChannelType],
        idle_timeout: Duration,
    ) -> (Self, Vec<Channel>)
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sink, stream) = ws.split();
        let (commands, command_rx) = mpsc::unbounded_channel();
        let budget = Arc::new(Semaphore::new(WRITE_BUDGET));
        let gone = CancellationToken::new();
        let read_done = CancellationToken::new();
        let activity = Activity::new();
        let mut inputs = Vec::with_capacity(channels.len());
        let mut handles = Vec::with_capacity(channels.len());
        for (num, &kind) in channels.iter().enumerate() {
            let (tx, rx) = if kind.reads() {
                let (tx, rx) = mpsc::channel(CHANNEL_INPUT_MESSAGES);
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            inputs.push(tx);
            let output = kind.writes().then(|| Output {
                budget: PollSemaphore::new(budget.clone()),
                commands: commands.clone(),
            });
            handles.push(Channel {
                num: num as u8,
                input: Incoming::new(rx),
                output,
            });
        }
        tokio::spawn(activity.clone().watch(idle_timeout, gone.clone()));
        tokio::spawn(write_loop(sink, command_rx, protocol, gone.clone(), activity.clone()));
        tokio::spawn(read_loop(
            stream,
            inputs,
            protocol,
            gone.clone(),
            read_done.clone(),
            activity,
        ));
        (
            Self {
                commands,
                gone,
                read_done,
            },
            handles,
        )
    }

    /// Sends one message on `channel`, even an empty one (the server announces the open
    /// connection with an empty message, and port-forward channels with their port).
    pub(crate) fn send(&self, channel: u8, data: Bytes) {
        let _ = self.commands.send(Command::Data(channel, data, None));
    }

    /// Resolves when the client will send nothing more or the connection is gone.
    pub(crate) async fn closed(&self) {
        tokio::select! {
            _ = self.gone.cancelled() => {}
            _ = self.read_done.cancelled() => {}
        }
    }

    /// Sends the v5 CLOSE signal for `channel` (a client's half-close).
    pub(crate) fn send_close_signal(&self, channel: u8) {
        let _ = self
            .commands
            .send(Command::Raw(Message::Binary(Bytes::copy_from_slice(&[
                CLOSE_SIGNAL,
                channel,
            ]))));
    }

    /// Sends what is queued, then a normal close, and waits a little for the client's reply.
    pub(crate) async fn close(&self) {
        let _ = self.commands.send(Command::Close);
        let _ = tokio::time::timeout(LINGER, self.read_done.cancelled()).await;
        self.gone.cancel();
    }
}

impl Drop for ChannelConn {
    fn drop(&mut self) {
        self.gone.cancel();
    }
}

pub(crate) fn encode(protocol: Protocol, channel: u8, data: &[u8]) -> Message {
    if protocol.base64 {
        let mut text = String::with_capacity(1 + data.len().div_ceil(3) * 4);
        text.push(char::from(b'0' + channel));
        BASE64.encode_string(data, &mut text);
        Message::Text(Utf8Bytes::from(text))
    } else {
        let mut frame = Vec::with_capacity(1 + data.len());
        frame.push(channel);
        frame.extend_from_slice(data);
        Message::Binary(Bytes::from(frame))
    }
}

async fn write_loop<S>(
    mut sink: S,
    mut commands: mpsc::UnboundedReceiver<Command>,
    protocol: Protocol,
    gone: CancellationToken,
    activity: Activity,
) where
    S: futures_util::Sink<Message> + Unpin,
{
    loop {
        let command = tokio::select! {
            biased;
            _ = gone.cancelled() => return,
            command = commands.recv() => command,
        };
        let Some(mut command) = command else { return };
        let close = loop {
            match command {
                Command::Data(channel, data, _permit) => {
                    if sink.feed(encode(protocol, channel, &data)).await.is_err() {
                        gone.cancel();
                        return;
                    }
                }
                Command::Raw(message) => {
                    if sink.feed(message).await.is_err() {
                        gone.cancel();
                        return;
                    }
                }
                Command::Close => break true,
            }
            match commands.try_recv() {
                Ok(next) => command = next,
                Err(_) => break false,
            }
        };
        if close {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::default(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
        if sink.flush().await.is_err() {
            gone.cancel();
            return;
        }
        activity.touch();
    }
}

async fn read_loop<S, E>(
    mut stream: S,
    mut inputs: Vec<Option<mpsc::Sender<Bytes>>>,
    protocol: Protocol,
    gone: CancellationToken,
    read_done: CancellationToken,
    activity: Activity,
) where
    S: futures_util::Stream<Item = Result<Message, E>> + Unpin,
{
    loop {
        let message = tokio::select! {
            _ = gone.cancelled() => break,
            message = stream.next() => message,
        };
        let data = match message {
            Some(Ok(Message::Binary(data))) => data,
            Some(Ok(Message::Text(text))) => Bytes::from(text),
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            Some(Ok(_)) => continue,
        };
        activity.touch();
        let Some((&first, payload)) = data.split_first() else {
            continue;
        };
        if protocol.close_signal && first == CLOSE_SIGNAL {
            match payload {
                [closed] => {
                    if let Some(input) = inputs.get_mut(usize::from(*closed)) {
                        *input = None;
                    }
                }
                _ => tracing::debug!(len = payload.len(), "close signal must name exactly one channel"),
            }
            continue;
        }
        let channel = if protocol.base64 {
            first.wrapping_sub(b'0')
        } else {
            first
        };
        let Some(Some(input)) = inputs.get(usize::from(channel)) else {
            continue;
        };
        let payload = if protocol.base64 {
            match BASE64.decode(payload) {
                Ok(decoded) => Bytes::from(decoded),
                Err(e) => {
                    tracing::debug!(channel, error = %e, "dropping a message that is not base64");
                    continue;
                }
            }
        } else {
            data.slice(1..)
        };
        if payload.is_empty() {
            continue;
        }
        tokio::select! {
            _ = input.send(payload) => {}
            _ = gone.cancelled() => break,
        }
    }
    read_done.cancel();
}

struct Output {
    budget: PollSemaphore,
    commands: mpsc::UnboundedSender<Command>,
}

/// One channel of a WebSocket in the Kubernetes channel protocol: reads return what the
/// peer sends on it (until it goes away or, with v5, closes the channel); writes become
/// messages on it.
pub struct Channel {
    num: u8,
    input: Incoming,
    output: Option<Output>,
}

impl AsyncRead for Channel {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.input.poll_read(cx, buf).map_ok(|_| ())
    }
}

impl AsyncWrite for Channel {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let num = self.num;
        let Some(output) = self.output.as_mut() else {
            // Like wsstream, a channel the client did not ask for swallows writes.
            return Poll::Ready(Ok(buf.len()));
        };
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_MESSAGE_PAYLOAD);
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "websocket closed");
        let Some(permit) = ready!(output.budget.poll_acquire_many(cx, n as u32)) else {
            return Poll::Ready(Err(closed()));
        };
        match output
            .commands
            .send(Command::Data(num, Bytes::copy_from_slice(&buf[..n]), Some(permit)))
        {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocols() -> Vec<Protocol> {
        vec![
            Protocol::binary(""),
            Protocol::binary(V4_CHANNEL_PROTOCOL),
            Protocol::base64(V4_BASE64_CHANNEL_PROTOCOL),
            Protocol::v5(),
        ]
    }

    #[test]
    fn negotiation_takes_the_clients_first_supported_choice() {
        let ask = |names: &[&str]| {
            negotiate(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &protocols()).map(|p| p.name)
        };
        assert_eq!(ask(&[]), Some(""));
        assert_eq!(
            ask(&["v5.channel.k8s.io", "v4.channel.k8s.io"]),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            ask(&["v9.channel.k8s.io", "v4.base64.channel.k8s.io"]),
            Some("v4.base64.channel.k8s.io")
        );
        assert_eq!(ask(&["v9.channel.k8s.io"]), None);
        // The unnamed protocol is not something a client can ask for by name.
        assert_eq!(ask(&[""]), None);
    }

    #[test]
    fn messages_are_a_channel_byte_then_the_payload() {
        assert_eq!(
            encode(Protocol::binary(V4_CHANNEL_PROTOCOL), 1, b"hi"),
            Message::Binary(Bytes::from_static(b"\x01hi"))
        );
        assert_eq!(
            encode(Protocol::base64(V4_BASE64_CHANNEL_PROTOCOL), 3, b"hi"),
            Message::Text("3aGk=".into())
        );
        assert_eq!(
            encode(Protocol::binary(""), 2, b""),
            Message::Binary(Bytes::from_static(b"\x02"))
        );
    }
}
