//! A SPDY session over one upgraded connection: many streams, each a pair of byte pipes.
//!
//! Two tasks own the socket: the reader dispatches frames to streams, the writer sends what
//! the streams queue, in order, so a stream's data always follows its SYN_REPLY and
//! precedes its FIN.
//!
//! Flow control (SPDY/3.1, 64 KiB initial windows): the session gives window back with
//! WINDOW_UPDATE as each stream's consumer reads, and holds its writers to the peer's
//! windows once the peer shows it keeps them (it sends WINDOW_UPDATE or an initial-window
//! SETTINGS). Kubernetes' own peers (spdystream, in kubectl and the apiserver) never do,
//! and never grant window, so with them output is bounded only by a byte budget per
//! connection. Input is never buffered past the receive window a stream starts with: a
//! peer that announced flow control (an initial-window SETTINGS) and overruns it has the
//! stream reset with `FLOW_CONTROL_ERROR`; from any other peer the reader waits for the
//! stream's consumer before it buffers more (the same head-of-line wait as spdystream).
//!
//! What a peer can make the connection hold is bounded: streams open at once
//! ([`Limits::max_concurrent_streams`], beyond which they are refused), bytes and frames
//! buffered per stream, and frames queued for a peer that does not read its replies
//! ([`Limits::max_queued_control_frames`], beyond which the connection is dropped: a PING
//! or RST_STREAM flood).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::{CancellationToken, PollSemaphore};

use super::frame::{Codec, FLAG_FIN, Frame, FrameError, Headers, Limits, goaway_status, rst_status};
use crate::idle::Activity;
use crate::pipe::Incoming;

/// The most bytes one DATA frame carries (what Go's `io.Copy` writes at a time).
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Bytes of DATA a connection may have queued for the socket before writers wait.
const WRITE_BUDGET: usize = 512 * 1024;
/// DATA frames buffered per stream before the reader waits for the stream's consumer.
const STREAM_INPUT_FRAMES: usize = 16;
/// The receive window SPDY/3 starts every stream and the session with (section 2.6.8).
const INITIAL_WINDOW: usize = 64 * 1024;
/// Bytes of DATA buffered per stream before the reader waits for the stream's consumer:
/// the window the stream was granted, which a peer that keeps flow control never exceeds.
/// A single larger frame is let through once the buffer is empty.
const STREAM_INPUT_BYTES: usize = INITIAL_WINDOW;
/// The SETTINGS id of the initial window size (section 2.6.4).
const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// Consumed bytes after which the window is re-opened with WINDOW_UPDATE: half of it.
const WINDOW_UPDATE_THRESHOLD: usize = INITIAL_WINDOW / 2;
/// Streams opened by the peer and not yet taken by [`Connection::accept`].
const ACCEPT_BACKLOG: usize = 16;
/// How long a closing connection waits for the peer to read what was sent and hang up,
/// before it drops the socket (dropping it with unread input would reset the connection
/// and could destroy the last frames in the peer's receive buffer).
const LINGER: Duration = Duration::from_secs(5);

/// Which end of the connection this is: stream ids are odd from the client, even from
/// the server (section 2.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Opens streams with odd ids.
    Client,
    /// Accepts streams with odd ids.
    Server,
}

/// Why a stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The peer answered with RST_STREAM.
    #[error("the peer refused the stream")]
    Refused,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

enum Command {
    /// A frame outside the byte budget (control frames and FINs), counted against
    /// [`Limits::max_queued_control_frames`] until written.
    Control(Frame),
    /// A DATA frame; the permit returns its bytes to the budget once written.
    Data(Frame, OwnedSemaphorePermit),
    /// Flush, then end the socket's write side.
    Shutdown,
}

#[derive(Debug)]
struct StreamState {
    /// The stream was reset by either side.
    reset: AtomicBool,
    /// Our handle is gone: nothing more will be read or written locally.
    local_done: AtomicBool,
    /// Bytes the peer will still accept on this stream (negative when it does not
    /// enforce flow control and we sent more).
    send_window: AtomicI64,
    /// A writer waiting for `send_window`.
    window_waker: AtomicWaker,
    /// Bytes the peer may still send on this stream: the window we granted, less what
    /// it sent, plus what our WINDOW_UPDATEs gave back.
    receive_window: AtomicI64,
    /// Bytes received and not yet read by the stream's consumer.
    buffered: AtomicUsize,
    /// The consumer read some of `buffered`.
    drained: Notify,
}

impl StreamState {
    fn new(send_window: i64) -> Self {
        Self {
            reset: AtomicBool::new(false),
            local_done: AtomicBool::new(false),
            send_window: AtomicI64::new(send_window),
            window_waker: AtomicWaker::new(),
            receive_window: AtomicI64::new(INITIAL_WINDOW as i64),
            buffered: AtomicUsize::new(0),
            drained: Notify::new(),
        }
    }
}

struct Entry {
    /// Where the peer's DATA goes; `None` once the peer finished the stream.
    input: Option<mpsc::Sender<Bytes>>,
    /// For streams we opened: the peer's SYN_REPLY (or RST_STREAM).
    reply: Option<oneshot::Sender<Option<Headers>>>,
    state: Arc<StreamState>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u32, Entry>,
    next_local_id: u32,
    last_remote_id: u32,
    /// We sent GOAWAY: refuse new streams.
    going_away: bool,
}

struct Shared {
    role: Role,
    limits: Limits,
    /// Unbounded as a channel, bounded by `queued_control` and `budget`.
    commands: mpsc::UnboundedSender<Command>,
    /// [`Command::Control`] frames queued and not yet written.
    queued_control: AtomicUsize,
    budget: Arc<Semaphore>,
    table: Mutex<Table>,
    /// The connection can no longer be used: a write failed, it idled out, or it was dropped.
    gone: CancellationToken,
    /// The peer will send nothing more: end of input, a read error, or its GOAWAY.
    read_done: CancellationToken,
    activity: Activity,
    /// SPDY/3.1 flow control, which only binds once the peer shows it speaks it (a
    /// WINDOW_UPDATE or an initial-window SETTINGS): spdystream, kubectl's SPDY, never
    /// sends either and never grants more window, so enforcing it from the start would
    /// stall every kubectl session after 64 KiB.
    flow_control: AtomicBool,
    /// The peer announced an initial window (SETTINGS), as SPDY/3.1 peers do before they
    /// send: it keeps ours, and overrunning a stream's window is its error. A WINDOW_UPDATE
    /// alone does not tell (this crate's own client grants window before it keeps ours).
    peer_keeps_our_window: AtomicBool,
    /// Bytes the peer will still accept on the whole session.
    session_window: AtomicI64,
    /// The send window a new stream starts with.
    initial_window: AtomicI64,
    /// Writers waiting for `session_window`.
    session_waiters: Mutex<Vec<Waker>>,
}

impl Shared {
    fn new_stream_state(&self) -> Arc<StreamState> {
        Arc::new(StreamState::new(self.initial_window.load(Ordering::Acquire)))
    }

    fn wake_session_waiters(&self) {
        for waker in std::mem::take(&mut *self.session_waiters.lock().unwrap_or_else(PoisonError::into_inner)) {
            waker.wake();
        }
    }

    fn on_window_update(&self, stream_id: u32, delta: u32) {
        self.flow_control.store(true, Ordering::Release);
        if stream_id == 0 {
            self.session_window.fetch_add(i64::from(delta), Ordering::AcqRel);
            self.wake_session_waiters();
        } else if let Some(entry) = self.table().entries.get(&stream_id) {
            entry.state.send_window.fetch_add(i64::from(delta), Ordering::AcqRel);
            entry.state.window_waker.wake();
        }
    }

    fn on_settings(&self, entries: &[(u8, u32, u32)]) {
        for &(_, id, value) in entries {
            if id == SETTINGS_INITIAL_WINDOW_SIZE {
                self.flow_control.store(true, Ordering::Release);
                self.peer_keeps_our_window.store(true, Ordering::Release);
                // A new initial window moves every open stream's window by the difference
                // (section 2.6.8).
                let change = i64::from(value) - self.initial_window.swap(i64::from(value), Ordering::AcqRel);
                for entry in self.table().entries.values() {
                    entry.state.send_window.fetch_add(change, Ordering::AcqRel);
                    entry.state.window_waker.wake();
                }
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame outside the byte budget. A peer that makes more of them pile up than
    /// [`Limits::max_queued_control_frames`] (it floods PINGs or bad streams and does not
    /// read the replies) loses the connection: a GOAWAY would queue behind the rest.
    fn send(&self, frame: Frame) {
        let queued = self.queued_control.fetch_add(1, Ordering::AcqRel) + 1;
        if queued > self.limits.max_queued_control_frames {
            if !self.gone.is_cancelled() {
                tracing::info!(queued, "closing a spdy connection whose peer does not read its replies");
            }
            self.gone.cancel();
            return;
        }
        // A closed writer means the connection is gone; the frame has nowhere to go.
        let _ = self.commands.send(Command::Control(frame));
    }

    fn is_local(&self, stream_id: u32) -> bool {
        (stream_id % 2 == 1) == (self.role == Role::Client)
    }

    /// The stream is finished on our side; forget it if the peer's side is finished too.
    fn local_done(&self, stream_id: u32, state: &StreamState) {
        state.local_done.store(true, Ordering::Release);
        let mut table = self.table();
        if table.entries.get(&stream_id).is_some_and(|e| e.input.is_none()) {
            table.entries.remove(&stream_id);
        }
    }

    /// The peer finished the stream (FIN); forget it if our side is finished too.
    fn remote_done(&self, stream_id: u32) {
        let mut table = self.table();
        if let Some(entry) = table.entries.get_mut(&stream_id) {
            entry.input = None;
            if entry.state.local_done.load(Ordering::Acquire) {
                table.entries.remove(&stream_id);
            }
        }
    }

    /// Ends a stream on our side with RST_STREAM `status`; the peer's later frames on it
    /// are ignored.
    fn reset_locally(&self, stream_id: u32, state: &StreamState, status: u32) {
        self.table().entries.remove(&stream_id);
        if !state.reset.swap(true, Ordering::AcqRel) {
            self.send(Frame::RstStream { stream_id, status });
        }
        state.window_waker.wake();
    }

    fn reset_by_peer(&self, stream_id: u32) {
        if let Some(entry) = self.table().entries.remove(&stream_id) {
            entry.state.reset.store(true, Ordering::Release);
            if let Some(reply) = entry.reply {
                let _ = reply.send(None);
            }
        }
    }

    async fn on_syn_stream(
        self: &Arc<Self>,
        stream_id: u32,
        flags: u8,
        headers: Headers,
        incoming: &mut Option<mpsc::Sender<IncomingStream>>,
    ) {
        let stream = {
            let mut table = self.table();
            if self.is_local(stream_id) || stream_id <= table.last_remote_id {
                drop(table);
                self.send(Frame::RstStream {
                    stream_id,
                    status: rst_status::PROTOCOL_ERROR,
                });
                return;
            }
            table.last_remote_id = stream_id;
            let open = table.entries.keys().filter(|&&id| !self.is_local(id)).count();
            let full = open >= self.limits.max_concurrent_streams;
            if full {
                tracing::debug!(open, "refusing a stream beyond the limit");
            }
            if table.going_away || incoming.is_none() || full {
                drop(table);
                self.send(Frame::RstStream {
                    stream_id,
                    status: rst_status::REFUSED_STREAM,
                });
                return;
            }
            let state = self.new_stream_state();
            let (input, rx) = if flags & FLAG_FIN != 0 {
                (None, None)
            } else {
                let (tx, rx) = mpsc::channel(STREAM_INPUT_FRAMES);
                (Some(tx), Some(rx))
            };
            table.entries.insert(
                stream_id,
                Entry {
                    input,
                    reply: None,
                    state: state.clone(),
                },
            );
            Stream::new(stream_id, headers, rx, state, self.clone())
        };
        let Some(queue) = incoming else { return };
        tokio::select! {
            // A refused send hands the stream back, and dropping it resets it.
            _ = queue.send(IncomingStream::new(stream)) => {}
            _ = self.gone.cancelled() => {}
        }
    }

    async fn on_data(&self, stream_id: u32, fin: bool, data: Bytes) {
        let target = self
            .table()
            .entries
            .get(&stream_id)
            .and_then(|e| Some((e.input.clone()?, e.state.clone())));
        if let Some((input, state)) = target
            && !data.is_empty()
        {
            let len = data.len();
            let window = state.receive_window.fetch_sub(len as i64, Ordering::AcqRel) - len as i64;
            if window < 0 && self.peer_keeps_our_window.load(Ordering::Acquire) {
                tracing::debug!(stream_id, window, "the peer overran a stream's window");
                return self.reset_locally(stream_id, &state, rst_status::FLOW_CONTROL_ERROR);
            }
            if !self.room_for(&state, &input, len).await {
                return;
            }
            state.buffered.fetch_add(len, Ordering::AcqRel);
            tokio::select! {
                // A consumer that went away drops what it would have read.
                _ = input.send(data) => {}
                _ = self.gone.cancelled() => {}
            }
        }
        if fin {
            self.remote_done(stream_id);
        }
    }

    /// Waits until the stream's buffer has room for `len` more bytes (or is empty);
    /// false if the consumer or the connection went away meanwhile.
    async fn room_for(&self, state: &StreamState, input: &mpsc::Sender<Bytes>, len: usize) -> bool {
        loop {
            let buffered = state.buffered.load(Ordering::Acquire);
            if buffered == 0 || buffered + len <= STREAM_INPUT_BYTES {
                return true;
            }
            tokio::select! {
                _ = state.drained.notified() => {}
                _ = input.closed() => return false,
                _ = self.gone.cancelled() => return false,
            }
        }
    }

    fn on_syn_reply(&self, stream_id: u32, fin: bool, headers: Headers) {
        let reply = self.table().entries.get_mut(&stream_id).and_then(|e| e.reply.take());
        if let Some(reply) = reply {
            let _ = reply.send(Some(headers));
        }
        if fin {
            self.remote_done(stream_id);
        }
    }

    /// The peer will send nothing more: every stream's input ends.
    fn end_of_input(&self) {
        self.read_done.cancel();
        let mut table = self.table();
        for entry in table.entries.values_mut() {
            entry.input = None;
            if let Some(reply) = entry.reply.take() {
                let _ = reply.send(None);
            }
        }
        table.entries.retain(|_, e| !e.state.local_done.load(Ordering::Acquire));
    }
}

/// A stream the peer opened, to accept (SYN_REPLY) or reject (RST_STREAM). Dropping it
/// rejects it.
pub struct IncomingStream {
    id: u32,
    headers: Headers,
    /// Taken by `accept` or `reject`; still here on drop means neither was called.
    stream: Option<Stream>,
}

impl IncomingStream {
    fn new(stream: Stream) -> Self {
        Self {
            id: stream.id,
            headers: stream.headers.clone(),
            stream: Some(stream),
        }
    }

    /// The headers the peer opened the stream with.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Replies to the peer and returns the stream.
    pub fn accept(mut self) -> Stream {
        let stream = self
            .stream
            .take()
            .expect("an IncomingStream holds its stream until accepted or rejected");
        stream.shared.send(Frame::SynReply {
            stream_id: stream.id,
            fin: false,
            headers: Headers::new(),
        });
        stream
    }

    /// Refuses the stream.
    pub fn reject(mut self) {
        if let Some(stream) = self.stream.take() {
            stream.reset();
        }
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.reset();
        }
    }
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

/// One SPDY stream: reads return the peer's DATA until its FIN; writes send DATA;
/// shutting down (or dropping) sends FIN.
pub struct Stream {
    id: u32,
    headers: Headers,
    input: Incoming,
    /// Bytes read since the last WINDOW_UPDATE.
    unacked: usize,
    state: Arc<StreamState>,
    shared: Arc<Shared>,
    budget: PollSemaphore,
    fin_sent: bool,
}

impl Stream {
    fn new(
        id: u32,
        headers: Headers,
        input: Option<mpsc::Receiver<Bytes>>,
        state: Arc<StreamState>,
        shared: Arc<Shared>,
    ) -> Self {
        let budget = PollSemaphore::new(shared.budget.clone());
        Self {
            id,
            headers,
            input: Incoming::new(input),
            unacked: 0,
            state,
            shared,
            budget,
            fin_sent: false,
        }
    }

    /// The stream's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the SYN_STREAM that opened it.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// Ends the stream abnormally (RST_STREAM CANCEL), as spdystream's `Reset` does.
    pub fn reset(mut self) {
        self.shared.reset_locally(self.id, &self.state, rst_status::CANCEL);
        self.fin_sent = true;
    }

    fn write_closed(&self) -> bool {
        self.fin_sent || self.state.reset.load(Ordering::Acquire) || self.shared.gone.is_cancelled()
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let n = ready!(this.input.poll_read(cx, buf))?;
        if n > 0 {
            this.state.buffered.fetch_sub(n, Ordering::AcqRel);
            this.state.drained.notify_one();
        }
        // Give the window back as the consumer reads, for the stream and the session
        // (spdystream ignores these; a SPDY/3.1 peer waits for them).
        this.unacked += n;
        if this.unacked >= WINDOW_UPDATE_THRESHOLD {
            let delta = std::mem::take(&mut this.unacked) as u32;
            this.state.receive_window.fetch_add(i64::from(delta), Ordering::AcqRel);
            this.shared.send(Frame::WindowUpdate {
                stream_id: this.id,
                delta,
            });
            this.shared.send(Frame::WindowUpdate { stream_id: 0, delta });
        }
        Poll::Ready(Ok(()))
    }
}

fn broken_pipe() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "spdy stream closed")
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if self.write_closed() {
            return Poll::Ready(Err(broken_pipe()));
        }
        let mut n = buf.len().min(MAX_DATA_CHUNK);
        if self.shared.flow_control.load(Ordering::Acquire) {
            let window = || {
                self.state
                    .send_window
                    .load(Ordering::Acquire)
                    .min(self.shared.session_window.load(Ordering::Acquire))
            };
            if window() <= 0 {
                self.state.window_waker.register(cx.waker());
                self.shared
                    .session_waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(cx.waker().clone());
                // A WINDOW_UPDATE may have come in between.
                if window() <= 0 {
                    return Poll::Pending;
                }
            }
            n = n.min(window() as usize);
        }
        let Some(permit) = ready!(self.budget.poll_acquire_many(cx, n as u32)) else {
            return Poll::Ready(Err(broken_pipe()));
        };
        // Windows are counted even while not enforced, so they are right once they are.
        self.state.send_window.fetch_sub(n as i64, Ordering::AcqRel);
        self.shared.session_window.fetch_sub(n as i64, Ordering::AcqRel);
        let frame = Frame::Data {
            stream_id: self.id,
            fin: false,
            data: Bytes::copy_from_slice(&buf[..n]),
        };
        match self.shared.commands.send(Command::Data(frame, permit)) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(broken_pipe())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.write_closed() {
            self.shared.send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            });
        }
        self.fin_sent = true;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if !self.write_closed() {
            self.shared.send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            });
        }
        self.shared.local_done(self.id, &self.state);
    }
}

/// A SPDY session on an upgraded connection. Dropping it drops the socket at once;
/// [`Connection::close`] ends it gracefully.
pub struct Connection {
    shared: Arc<Shared>,
    incoming: tokio::sync::Mutex<mpsc::Receiver<IncomingStream>>,
    reader: JoinHandle<()>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("role", &self.shared.role).finish()
    }
}

impl Connection {
    /// Starts a session on `io` as `role`. With a non-zero `idle_timeout` the connection
    /// closes after that long without a frame in either direction; a frame beyond
    /// `limits` closes it at once.
    pub fn new<T>(io: T, role: Role, idle_timeout: Duration, limits: Limits) -> Self
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(ACCEPT_BACKLOG);
        let table = Table {
            next_local_id: if role == Role::Client { 1 } else { 2 },
            ..Table::default()
        };
        let shared = Arc::new(Shared {
            role,
            limits,
            commands,
            queued_control: AtomicUsize::new(0),
            budget: Arc::new(Semaphore::new(WRITE_BUDGET)),
            table: Mutex::new(table),
            gone: CancellationToken::new(),
            read_done: CancellationToken::new(),
            activity: Activity::new(),
            flow_control: AtomicBool::new(false),
            peer_keeps_our_window: AtomicBool::new(false),
            session_window: AtomicI64::new(INITIAL_WINDOW as i64),
            initial_window: AtomicI64::new(INITIAL_WINDOW as i64),
            session_waiters: Mutex::new(Vec::new()),
        });
        tokio::spawn(shared.activity.clone().watch(idle_timeout, shared.gone.clone()));
        let writer = tokio::spawn(write_loop(
            FramedWrite::new(write_half, Codec::new(limits)),
            command_rx,
            shared.clone(),
        ));
        let incoming_tx = (role == Role::Server).then_some(incoming_tx);
        let reader = tokio::spawn(read_loop(
            FramedRead::new(read_half, Codec::new(limits)),
            incoming_tx,
            shared.clone(),
        ));
        Self {
            shared,
            incoming: tokio::sync::Mutex::new(incoming_rx),
            reader,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// The next stream the peer opens; `None` once it will open no more (it hung up, sent
    /// GOAWAY, or the connection is gone).
    pub async fn accept(&self) -> Option<IncomingStream> {
        let mut incoming = self.incoming.lock().await;
        tokio::select! {
            stream = incoming.recv() => stream,
            _ = self.shared.gone.cancelled() => None,
        }
    }

    /// Opens a stream with `headers` and waits for the peer's reply.
    pub async fn open_stream(&self, headers: Headers) -> Result<Stream, OpenError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let (input_tx, input_rx) = mpsc::channel(STREAM_INPUT_FRAMES);
        let state = self.shared.new_stream_state();
        let stream_id = {
            // Ids must reach the wire in increasing order: queue the frame under the lock.
            let mut table = self.shared.table();
            if table.going_away || self.shared.read_done.is_cancelled() || self.shared.gone.is_cancelled() {
                return Err(OpenError::Closed);
            }
            let stream_id = table.next_local_id;
            table.next_local_id += 2;
            table.entries.insert(
                stream_id,
                Entry {
                    input: Some(input_tx),
                    reply: Some(reply_tx),
                    state: state.clone(),
                },
            );
            self.shared.send(Frame::SynStream {
                stream_id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers.clone(),
            });
            stream_id
        };
        let stream = Stream::new(stream_id, headers, Some(input_rx), state, self.shared.clone());
        match reply_rx.await {
            Ok(Some(_)) => Ok(stream),
            Ok(None) => {
                stream.state.reset.store(true, Ordering::Release);
                Err(OpenError::Refused)
            }
            Err(_) => Err(OpenError::Closed),
        }
    }

    /// Resolves when the peer will send nothing more or the connection is gone: the
    /// client went away.
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.shared.gone.cancelled() => {}
            _ = self.shared.read_done.cancelled() => {}
        }
    }

    /// Ends the session: GOAWAY, everything queued is written, the write side is shut,
    /// then waits a little for the peer to hang up before dropping the socket.
    pub async fn close(&self) {
        let last_good_stream_id = {
            let mut table = self.shared.table();
            table.going_away = true;
            table.last_remote_id
        };
        self.shared.send(Frame::GoAway {
            last_good_stream_id,
            status: goaway_status::OK,
        });
        let _ = self.shared.commands.send(Command::Shutdown);
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(LINGER, writer).await;
        }
        let _ = tokio::time::timeout(LINGER, self.shared.read_done.cancelled()).await;
        self.shared.gone.cancel();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.gone.cancel();
        self.reader.abort();
    }
}

/// Writes what the streams queue until the connection goes away, which also ends a write
/// that waits on a peer that does not read.
async fn write_loop<W>(sink: FramedWrite<W, Codec>, commands: mpsc::UnboundedReceiver<Command>, shared: Arc<Shared>)
where
    W: AsyncWrite + Unpin,
{
    tokio::select! {
        biased;
        _ = shared.gone.cancelled() => {}
        failed = write_commands(sink, commands, &shared) => {
            if let Err(e) = failed {
                tracing::debug!(error = %e, "spdy write failed");
                shared.gone.cancel();
            }
        }
    }
}

/// Writes each batch of queued commands and flushes it, until the queue closes or a
/// [`Command::Shutdown`] ends the socket's write side.
async fn write_commands<W>(
    mut sink: FramedWrite<W, Codec>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shared: &Shared,
) -> Result<(), FrameError>
where
    W: AsyncWrite + Unpin,
{
    while let Some(mut command) = commands.recv().await {
        // Write everything queued, then flush once.
        let shutdown = loop {
            match command {
                Command::Control(frame) => {
                    let written = sink.feed(frame).await;
                    shared.queued_control.fetch_sub(1, Ordering::AcqRel);
                    written?;
                }
                Command::Data(frame, _permit) => sink.feed(frame).await?,
                Command::Shutdown => break true,
            }
            match commands.try_recv() {
                Ok(next) => command = next,
                Err(_) => break false,
            }
        };
        sink.flush().await?;
        shared.activity.touch();
        if shutdown {
            let _ = sink.get_mut().shutdown().await;
            break;
        }
    }
    Ok(())
}

async fn read_loop<R>(
    mut frames: FramedRead<R, Codec>,
    mut incoming: Option<mpsc::Sender<IncomingStream>>,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
{
    loop {
        let frame = tokio::select! {
            _ = shared.gone.cancelled() => break,
            frame = frames.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "spdy read failed");
                let last_good_stream_id = shared.table().last_remote_id;
                shared.send(Frame::GoAway {
                    last_good_stream_id,
                    status: goaway_status::PROTOCOL_ERROR,
                });
                break;
            }
            None => break,
        };
        shared.activity.touch();
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => shared.on_syn_stream(stream_id, flags, headers, &mut incoming).await,
            Frame::Data { stream_id, fin, data } => shared.on_data(stream_id, fin, data).await,
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => shared.on_syn_reply(stream_id, fin, headers),
            Frame::Headers {
                stream_id, fin: true, ..
            } => shared.remote_done(stream_id),
            Frame::RstStream { stream_id, .. } => shared.reset_by_peer(stream_id),
            // Echo the peer's pings; ours carry our parity (section 2.6.5).
            Frame::Ping { id } if !shared.is_local(id) => shared.send(Frame::Ping { id }),
            Frame::GoAway { .. } => incoming = None,
            Frame::WindowUpdate { stream_id, delta } => shared.on_window_update(stream_id, delta),
            Frame::Settings { entries } => shared.on_settings(&entries),
            Frame::Ping { .. } | Frame::Headers { .. } | Frame::Unknown { .. } => {}
        }
    }
    shared.end_of_input();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn pair() -> (Connection, Connection) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        (
            Connection::new(a, Role::Client, Duration::ZERO, Limits::default()),
            Connection::new(b, Role::Server, Duration::ZERO, Limits::default()),
        )
    }

    #[tokio::test]
    async fn streams_carry_bytes_both_ways_and_fin_ends_them() {
        let (client, server) = pair();
        let opened = tokio::spawn(async move {
            let mut stream = client
                .open_stream(Headers::new().with("streamType", "stdin"))
                .await
                .unwrap();
            assert_eq!(stream.id(), 1);
            stream.write_all(b"ping").await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            (client, back)
        });
        let incoming = server.accept().await.unwrap();
        assert_eq!(incoming.headers().get("streamtype"), Some("stdin"));
        let mut stream = incoming.accept();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"ping");
        stream.write_all(b"pong").await.unwrap();
        drop(stream);
        let (_client, back) = opened.await.unwrap();
        assert_eq!(back, b"pong");
    }

    #[tokio::test]
    async fn a_rejected_stream_fails_to_open() {
        let (client, server) = pair();
        let opened = tokio::spawn(async move { client.open_stream(Headers::new()).await.map(|_| ()) });
        server.accept().await.unwrap().reject();
        assert!(matches!(opened.await.unwrap(), Err(OpenError::Refused)));
    }

    #[tokio::test]
    async fn large_writes_arrive_whole_and_in_order() {
        let (client, server) = pair();
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let sender = tokio::spawn(async move {
            let mut stream = client.open_stream(Headers::new()).await.unwrap();
            stream.write_all(&payload).await.unwrap();
            drop(stream);
            client
        });
        let mut stream = server.accept().await.unwrap().accept();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert!(got == expected, "{} bytes received", got.len());
        let _client = sender.await.unwrap();
    }

    #[tokio::test]
    async fn close_ends_the_peer_and_its_streams() {
        let (client, server) = pair();
        let opened = tokio::spawn(async move {
            let mut stream = client.open_stream(Headers::new()).await.unwrap();
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.unwrap();
            client.closed().await;
            got
        });
        let mut stream = server.accept().await.unwrap().accept();
        stream.write_all(b"last words").await.unwrap();
        drop(stream);
        let closing = tokio::spawn(async move { server.close().await });
        assert_eq!(opened.await.unwrap(), b"last words");
        closing.await.unwrap();
    }

    #[tokio::test]
    async fn the_server_echoes_client_pings_and_refuses_bad_stream_ids() {
        let (a, b) = tokio::io::duplex(4096);
        let _server = Connection::new(b, Role::Server, Duration::ZERO, Limits::default());
        let (read_half, write_half) = tokio::io::split(a);
        let mut out = FramedWrite::new(write_half, Codec::default());
        let mut input = FramedRead::new(read_half, Codec::default());
        out.send(Frame::Ping { id: 7 }).await.unwrap();
        assert_eq!(input.next().await.unwrap().unwrap(), Frame::Ping { id: 7 });
        // An even id belongs to the server.
        out.send(Frame::SynStream {
            stream_id: 2,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Headers::new(),
        })
        .await
        .unwrap();
        assert_eq!(
            input.next().await.unwrap().unwrap(),
            Frame::RstStream {
                stream_id: 2,
                status: rst_status::PROTOCOL_ERROR
            }
        );
    }

    /// A raw peer that opened stream 1 on a server which writes `total` bytes on it;
    /// returns the DATA bytes that arrive within `wait`.
    async fn data_within(
        input: &mut FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, Codec>,
        wait: Duration,
    ) -> usize {
        let mut received = 0;
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(wait, input.next()).await {
            if let Frame::Data { data, .. } = frame {
                received += data.len();
            }
        }
        received
    }

    #[tokio::test]
    async fn the_send_window_binds_only_a_peer_that_speaks_flow_control() {
        for speaks_flow_control in [false, true] {
            let (a, b) = tokio::io::duplex(1 << 20);
            let server = Connection::new(b, Role::Server, Duration::ZERO, Limits::default());
            let (read_half, write_half) = tokio::io::split(a);
            let mut out = FramedWrite::new(write_half, Codec::default());
            let mut input = FramedRead::new(read_half, Codec::default());
            if speaks_flow_control {
                out.send(Frame::Settings {
                    entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, INITIAL_WINDOW as u32)],
                })
                .await
                .unwrap();
            }
            out.send(Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: Headers::new(),
            })
            .await
            .unwrap();
            let mut stream = server.accept().await.unwrap().accept();
            let writer = tokio::spawn(async move {
                stream.write_all(&vec![7u8; 200 * 1024]).await.unwrap();
                stream
            });
            let first = data_within(&mut input, Duration::from_millis(300)).await;
            if !speaks_flow_control {
                // spdystream never grants window: everything goes through regardless.
                assert_eq!(first, 200 * 1024);
                writer.await.unwrap();
                continue;
            }
            assert_eq!(first, INITIAL_WINDOW, "the peer's window stops the writer");
            out.send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 100 * 1024,
            })
            .await
            .unwrap();
            assert_eq!(
                data_within(&mut input, Duration::from_millis(300)).await,
                0,
                "the session window binds too"
            );
            out.send(Frame::WindowUpdate {
                stream_id: 0,
                delta: 200 * 1024,
            })
            .await
            .unwrap();
            assert_eq!(data_within(&mut input, Duration::from_millis(300)).await, 100 * 1024);
            out.send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 100 * 1024,
            })
            .await
            .unwrap();
            assert_eq!(data_within(&mut input, Duration::from_millis(300)).await, 36 * 1024);
            writer.await.unwrap();
        }
    }

    type RawOut = FramedWrite<tokio::io::WriteHalf<tokio::io::DuplexStream>, Codec>;
    type RawIn = FramedRead<tokio::io::ReadHalf<tokio::io::DuplexStream>, Codec>;

    /// A server connection and the two halves of a raw peer, over a pipe of `buffer` bytes.
    fn raw_peer(limits: Limits, buffer: usize) -> (Connection, RawOut, RawIn) {
        let (a, b) = tokio::io::duplex(buffer);
        let server = Connection::new(b, Role::Server, Duration::ZERO, limits);
        let (read_half, write_half) = tokio::io::split(a);
        (
            server,
            FramedWrite::new(write_half, Codec::default()),
            FramedRead::new(read_half, Codec::default()),
        )
    }

    fn syn(stream_id: u32) -> Frame {
        Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Headers::new(),
        }
    }

    fn data(stream_id: u32, bytes: &[u8]) -> Frame {
        Frame::Data {
            stream_id,
            fin: false,
            data: Bytes::copy_from_slice(bytes),
        }
    }

    async fn next_frame(input: &mut RawIn) -> Frame {
        tokio::time::timeout(Duration::from_secs(5), input.next())
            .await
            .expect("a frame within 5 s")
            .expect("the connection is open")
            .expect("a valid frame")
    }

    #[tokio::test]
    async fn streams_beyond_the_limit_are_refused_until_one_ends() {
        let limits = Limits {
            max_concurrent_streams: 2,
            ..Limits::default()
        };
        let (server, mut out, mut input) = raw_peer(limits, 64 * 1024);
        for stream_id in [1, 3, 5] {
            out.send(syn(stream_id)).await.unwrap();
        }
        let first = server.accept().await.unwrap().accept();
        let _second = server.accept().await.unwrap().accept();
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(next_frame(&mut input).await);
        }
        assert!(
            frames.contains(&Frame::RstStream {
                stream_id: 5,
                status: rst_status::REFUSED_STREAM
            }),
            "{frames:?}"
        );
        // Stream 1 ends both ways: its place is free again.
        out.send(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::new(),
        })
        .await
        .unwrap();
        drop(first);
        out.send(syn(7)).await.unwrap();
        assert_eq!(server.accept().await.map(|s| s.id()), Some(7));
    }

    #[tokio::test]
    async fn a_peer_that_keeps_flow_control_and_overruns_a_window_has_the_stream_reset() {
        let (server, mut out, mut input) = raw_peer(Limits::default(), 1 << 20);
        out.send(Frame::Settings {
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, INITIAL_WINDOW as u32)],
        })
        .await
        .unwrap();
        out.send(syn(1)).await.unwrap();
        let mut stream = server.accept().await.unwrap().accept();
        // 96 KiB on a 64 KiB window nobody reads.
        for _ in 0..3 {
            out.send(data(1, &[7; 32 * 1024])).await.unwrap();
        }
        assert!(matches!(
            next_frame(&mut input).await,
            Frame::SynReply { stream_id: 1, .. }
        ));
        assert_eq!(
            next_frame(&mut input).await,
            Frame::RstStream {
                stream_id: 1,
                status: rst_status::FLOW_CONTROL_ERROR
            }
        );
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), INITIAL_WINDOW, "what the window allowed, nothing more");
    }

    #[tokio::test]
    async fn a_peer_without_flow_control_is_not_read_past_the_window_until_the_consumer_reads() {
        let (server, mut out, mut input) = raw_peer(Limits::default(), 4 << 20);
        out.send(syn(1)).await.unwrap();
        let mut stream = server.accept().await.unwrap().accept();
        assert!(matches!(
            next_frame(&mut input).await,
            Frame::SynReply { stream_id: 1, .. }
        ));
        let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in payload.chunks(MAX_DATA_CHUNK) {
            out.send(data(1, chunk)).await.unwrap();
        }
        out.send(Frame::Ping { id: 1 }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let buffered = stream.state.buffered.load(Ordering::Acquire);
        assert!(buffered <= STREAM_INPUT_BYTES, "{buffered} bytes buffered");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), input.next())
                .await
                .is_err(),
            "the ping waits behind the data"
        );
        let mut got = vec![0; payload.len()];
        stream.read_exact(&mut got).await.unwrap();
        assert!(got == payload, "the data arrives whole once read");
        loop {
            match next_frame(&mut input).await {
                Frame::Ping { id } => break assert_eq!(id, 1),
                Frame::WindowUpdate { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_peer_that_does_not_read_its_pongs_loses_the_connection() {
        let limits = Limits {
            max_queued_control_frames: 100,
            ..Limits::default()
        };
        // The pipe holds a few hundred replies; the rest queue up to the limit.
        let (server, mut out, _input) = raw_peer(limits, 4096);
        let mut sent = 0;
        for id in (1..).step_by(2).take(100_000) {
            if out.send(Frame::Ping { id }).await.is_err() {
                break;
            }
            sent += 1;
        }
        assert!(sent < 100_000, "the server read every ping");
        tokio::time::timeout(Duration::from_secs(1), server.closed())
            .await
            .expect("the connection is closed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_closes() {
        let (a, b) = tokio::io::duplex(4096);
        let server = Connection::new(b, Role::Server, Duration::from_secs(30), Limits::default());
        let started = tokio::time::Instant::now();
        server.closed().await;
        assert!(started.elapsed() >= Duration::from_secs(30));
        drop(a);
    }
}
