//! Attach: the monitor's socket that hands a running container's own stdio to clients
//! (the daemon, serving the CRI Attach call).
//!
//! A client connects to [`ATTACH_SOCKET`](super::ATTACH_SOCKET) in the monitor's state
//! directory. Both directions carry frames: a [`HEADER_LEN`]-byte header, the channel byte
//! and the payload's length (big-endian `u16`, at most [`MAX_PAYLOAD`]), then the payload.
//!
//! | channel          | direction        | payload                                          |
//! |------------------|------------------|--------------------------------------------------|
//! | [`STDIN`]        | client → monitor | bytes for the container's stdin (or terminal)    |
//! | [`STDOUT`]       | monitor → client | the container's stdout (or terminal output)      |
//! | [`STDERR`]       | monitor → client | the container's stderr                           |
//! | [`CLOSE_STDIN`]  | client → monitor | none: close the container's stdin (`stdin_once`) |
//! | [`RESIZE`]       | client → monitor | width and height, big-endian `u16` each          |
//!
//! Every client gets all output written after it connected; the log is written as before.
//! Stdin frames are dropped unless the container was created with stdin, and once its
//! stdin is closed. A client that falls more than [`MAX_BACKLOG`] behind is disconnected,
//! so a stalled client never stalls the container or its log. When the container exits,
//! the monitor closes every connection: clients read end of file.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use rustix::event::PollFlags;
use rustix::io::Errno;

/// Client → monitor: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Monitor → client: the container's stdout (with a terminal, all its output).
pub const STDOUT: u8 = 1;
/// Monitor → client: the container's stderr.
pub const STDERR: u8 = 2;
/// Client → monitor: close the container's stdin (the client's stdin ended and the
/// container is `stdin_once`). No payload.
pub const CLOSE_STDIN: u8 = 3;
/// Client → monitor: resize the container's terminal; width then height, `u16` each.
pub const RESIZE: u8 = 4;

/// The frame header: channel byte and payload length.
pub const HEADER_LEN: usize = 3;
/// The largest payload of one frame.
pub const MAX_PAYLOAD: usize = u16::MAX as usize;
/// How much output may wait for a slow client before it is disconnected.
pub const MAX_BACKLOG: usize = 1024 * 1024;
/// At most this many clients are attached at once; more are turned away.
const MAX_CLIENTS: usize = 64;

/// Appends a frame of `channel` with `payload` (split into several if it is long).
pub fn encode(channel: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut chunks = payload.chunks(MAX_PAYLOAD).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[channel, 0, 0]);
        return;
    }
    for chunk in chunks {
        let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_be_bytes();
        out.extend_from_slice(&[channel, len[0], len[1]]);
        out.extend_from_slice(chunk);
    }
}

/// The payload of a [`RESIZE`] frame.
pub fn resize_payload(width: u16, height: u16) -> [u8; 4] {
    let [w0, w1] = width.to_be_bytes();
    let [h0, h1] = height.to_be_bytes();
    [w0, w1, h0, h1]
}

/// The first complete frame at the start of `buf`: its channel, payload and total length.
pub fn decode(buf: &[u8]) -> Option<(u8, &[u8], usize)> {
    let header = buf.get(..HEADER_LEN)?;
    let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
    let payload = buf.get(HEADER_LEN..HEADER_LEN + len)?;
    Some((header[0], payload, HEADER_LEN + len))
}

/// One attached client, seen from the monitor.
struct Client {
    stream: UnixStream,
    /// Output not yet written to it.
    backlog: Vec<u8>,
    /// Bytes read from it that do not make a whole frame yet.
    partial: Vec<u8>,
}

/// The monitor's side of attach: the listening socket, the clients and the container's
/// input ends.
pub(super) struct AttachServer {
    listener: UnixListener,
    clients: Vec<Client>,
    /// Where stdin frames go: the stdin pipe's write end or the terminal master;
    /// `None` without stdin or once it was closed.
    stdin: Option<OwnedFd>,
    /// The terminal master, for resizing.
    terminal: Option<OwnedFd>,
    /// Stdin bytes the container has not taken yet; while there are any, clients are
    /// not read from (the container's pace is theirs).
    stdin_backlog: Vec<u8>,
}

/// What the poll loop watches for attach, and how to find its answer again.
pub(super) enum Watch {
    /// The listening socket.
    Listener,
    /// Client `index`.
    Client(usize),
    /// The container's stdin, while input waits for it.
    Stdin,
}

impl AttachServer {
    /// Serves attach on `listener` (bound by the caller) with the container's input ends.
    pub(super) fn new(listener: UnixListener, stdin: Option<OwnedFd>, terminal: Option<OwnedFd>) -> io::Result<Self> {
        listener.set_nonblocking(true)?;
        if let Some(stdin) = &stdin {
            rustix::io::ioctl_fionbio(stdin, true)?;
        }
        Ok(AttachServer {
            listener,
            clients: Vec::new(),
            stdin,
            terminal,
            stdin_backlog: Vec::new(),
        })
    }

    /// The descriptors to poll and the events wanted, each with what it is.
    pub(super) fn watches(&self) -> Vec<(BorrowedFd<'_>, PollFlags, Watch)> {
        let mut watches = vec![(self.listener.as_fd(), PollFlags::IN, Watch::Listener)];
        for (index, client) in self.clients.iter().enumerate() {
            let mut flags = PollFlags::empty();
            if self.stdin_backlog.is_empty() {
                flags |= PollFlags::IN;
            }
            if !client.backlog.is_empty() {
                flags |= PollFlags::OUT;
            }
            watches.push((client.stream.as_fd(), flags, Watch::Client(index)));
        }
        if let (Some(stdin), false) = (&self.stdin, self.stdin_backlog.is_empty()) {
            watches.push((stdin.as_fd(), PollFlags::OUT, Watch::Stdin));
        }
        watches
    }

    /// Handles the events `poll` reported, given as (what, events) pairs.
    pub(super) fn handle(&mut self, ready: Vec<(Watch, PollFlags)>) {
        let mut gone = Vec::new();
        for (watch, events) in ready {
            match watch {
                Watch::Listener => self.accept(),
                Watch::Stdin => self.flush_stdin(),
                Watch::Client(index) => {
                    let keep = (!events.intersects(PollFlags::OUT) || self.flush_client(index))
                        && (!events.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
                            || self.read_client(index));
                    if !keep {
                        gone.push(index);
                    }
                }
            }
        }
        // Highest index first, so the others stay valid.
        gone.sort_unstable();
        for index in gone.into_iter().rev() {
            self.clients.swap_remove(index);
        }
    }

    /// Sends container output on `channel` ([`STDOUT`] or [`STDERR`]) to every client.
    pub(super) fn broadcast(&mut self, channel: u8, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + HEADER_LEN);
        encode(channel, data, &mut frame);
        self.clients.retain_mut(|client| {
            client.backlog.extend_from_slice(&frame);
            write_backlog(client) && client.backlog.len() <= MAX_BACKLOG
        });
    }

    /// Gives every client what output is still waiting for it (without waiting), then
    /// closes the connections and the socket: the container has exited.
    pub(super) fn close(&mut self) {
        for client in &mut self.clients {
            let _ = write_backlog(client);
        }
        self.clients.clear();
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) if self.clients.len() < MAX_CLIENTS && stream.set_nonblocking(true).is_ok() => {
                    self.clients.push(Client {
                        stream,
                        backlog: Vec::new(),
                        partial: Vec::new(),
                    });
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    eprintln!("runtime-core-monitor: accepting an attach client: {err}");
                    return;
                }
            }
        }
    }

    /// Writes what waits for client `index`; false if the client is gone.
    fn flush_client(&mut self, index: usize) -> bool {
        self.clients.get_mut(index).is_some_and(write_backlog)
    }

    /// Reads and carries out what client `index` sent; false if it is gone.
    fn read_client(&mut self, index: usize) -> bool {
        let mut chunk = [0u8; 8 * 1024];
        let Some(client) = self.clients.get_mut(index) else {
            return false;
        };
        let read = match client.stream.read(&mut chunk) {
            Ok(0) => return false,
            Ok(read) => read,
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => return true,
            Err(_) => return false,
        };
        client.partial.extend_from_slice(&chunk[..read]);
        let partial = std::mem::take(&mut client.partial);
        let mut used = 0;
        while let Some((channel, payload, len)) = decode(&partial[used..]) {
            self.carry_out(channel, payload);
            used += len;
        }
        if let Some(client) = self.clients.get_mut(index) {
            client.partial = partial[used..].to_vec();
        }
        true
    }

    /// Acts on one frame from a client.
    fn carry_out(&mut self, channel: u8, payload: &[u8]) {
        match channel {
            STDIN if self.stdin.is_some() => {
                self.stdin_backlog.extend_from_slice(payload);
                self.flush_stdin();
            }
            CLOSE_STDIN => {
                // What is already accepted still reaches the container, if it can take
                // it now; then end of file.
                self.flush_stdin();
                self.stdin_backlog.clear();
                self.stdin = None;
            }
            RESIZE => {
                if let (Some(terminal), [w0, w1, h0, h1]) = (&self.terminal, payload) {
                    let size = rustix::termios::Winsize {
                        ws_col: u16::from_be_bytes([*w0, *w1]),
                        ws_row: u16::from_be_bytes([*h0, *h1]),
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    let _ = rustix::termios::tcsetwinsize(terminal, size);
                }
            }
            // Stdin without stdin, or a channel from a newer daemon: dropped.
            _ => {}
        }
    }

    /// Writes waiting stdin bytes as far as the container takes them.
    fn flush_stdin(&mut self) {
        let Some(stdin) = &self.stdin else {
            self.stdin_backlog.clear();
            return;
        };
        while !self.stdin_backlog.is_empty() {
            match rustix::io::write(stdin, &self.stdin_backlog) {
                Ok(written) => {
                    self.stdin_backlog.drain(..written);
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => {
                    // The container closed its stdin: nothing will take input again.
                    self.stdin_backlog.clear();
                    self.stdin = None;
                    return;
                }
            }
        }
    }
}

/// Writes as much of a client's backlog as its socket takes; false if the client is gone.
fn write_backlog(client: &mut Client) -> bool {
    while !client.backlog.is_empty() {
        match client.stream.write(&client.backlog) {
            Ok(0) => return false,
            Ok(written) => {
                client.backlog.drain(..written);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_long_payloads_are_split() {
        let mut out = Vec::new();
        encode(STDOUT, b"hello", &mut out);
        encode(CLOSE_STDIN, b"", &mut out);
        assert_eq!(decode(&out), Some((STDOUT, &b"hello"[..], 8)));
        assert_eq!(decode(&out[8..]), Some((CLOSE_STDIN, &b""[..], 3)));
        assert_eq!(decode(&out[..7]), None, "an incomplete frame is not decoded");

        let long = vec![7u8; MAX_PAYLOAD + 10];
        let mut out = Vec::new();
        encode(STDERR, &long, &mut out);
        let (channel, first, used) = decode(&out).expect("first frame");
        assert_eq!((channel, first.len()), (STDERR, MAX_PAYLOAD));
        let (_, second, _) = decode(&out[used..]).expect("second frame");
        assert_eq!(second.len(), 10);
    }

    #[test]
    fn resize_payloads_are_width_then_height() {
        assert_eq!(resize_payload(80, 24), [0, 80, 0, 24]);
    }

    #[test]
    fn stdin_reaches_the_container_and_close_ends_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("attach.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (reader, writer) = rustix::pipe::pipe().expect("pipe");
        let mut server = AttachServer::new(listener, Some(writer), None).expect("server");
        let mut client = UnixStream::connect(&path).expect("connect");
        server.handle(vec![(Watch::Listener, PollFlags::IN)]);
        assert_eq!(server.clients.len(), 1);

        let mut frames = Vec::new();
        encode(STDIN, b"typed", &mut frames);
        encode(CLOSE_STDIN, b"", &mut frames);
        client.write_all(&frames).expect("send");
        server.handle(vec![(Watch::Client(0), PollFlags::IN)]);
        let mut got = String::new();
        std::fs::File::from(reader)
            .read_to_string(&mut got)
            .expect("read stdin");
        assert_eq!(got, "typed", "stdin then end of file");

        server.broadcast(STDERR, b"oops");
        server.close();
        let mut output = Vec::new();
        client.read_to_end(&mut output).expect("read output");
        assert_eq!(decode(&output), Some((STDERR, &b"oops"[..], output.len())));
    }
}
