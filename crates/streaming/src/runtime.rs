//! What a container runtime provides to the streaming server: exec, attach and
//! port-forward on an id. The server owns the protocols; the runtime only moves bytes.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Bytes from the client to the process (its stdin). End of stream: the client closed stdin.
pub type Input = Pin<Box<dyn AsyncRead + Send>>;
/// Bytes from the process to the client (its stdout or stderr).
pub type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// A terminal's size, as the client's resize stream sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// The client's side of one exec or attach session, as the runtime sees it.
///
/// A stream is `None` when the client did not ask for it. With `tty`, output comes on
/// `stdout` only (a terminal merges the two) and `resize` carries the terminal's sizes,
/// the first one as soon as the client sends it.
pub struct Streams {
    /// The process's stdin, when requested.
    pub stdin: Option<Input>,
    /// Where the process's stdout goes, when requested.
    pub stdout: Option<Output>,
    /// Where the process's stderr goes, when requested (never with `tty`).
    pub stderr: Option<Output>,
    /// Whether the process runs on a terminal.
    pub tty: bool,
    /// Terminal sizes (with `tty`); closed when the client goes away.
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("tty", &self.tty)
            .field("resize", &self.resize.is_some())
            .finish()
    }
}

/// A connection to a port inside a pod.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// Why a runtime could not serve a session; its text reaches the client on the error stream.
pub type RuntimeError = Box<dyn std::error::Error + Send + Sync>;

/// The runtime behind the streaming server.
///
/// Every method runs for the whole session: it returns when the process has exited
/// (exec), when the container's output ended or the client went away (attach), or once
/// the connection is made (port-forward; the server then copies the bytes). The server
/// drops the [`Streams`] when the client goes away, so writes fail and reads end.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `cmd` in container `container_id` with `streams`; returns its exit code.
    fn exec(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        streams: Streams,
    ) -> impl Future<Output = Result<i32, RuntimeError>> + Send;

    /// Attaches `streams` to the running container `container_id`'s own stdio.
    fn attach(&self, container_id: &str, streams: Streams) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Opens a connection to TCP `port` on the loopback of pod sandbox `pod_sandbox_id`'s
    /// network namespace.
    fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
    ) -> impl Future<Output = Result<Box<dyn Connection>, RuntimeError>> + Send;
}
