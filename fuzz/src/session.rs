//! What the two whole-session targets (`spdy_connection`, `websocket`) share: the session
//! the fuzzer asks the streaming server for, the client's end of an in-memory connection
//! to it, and the client leaving.

use std::time::Duration;

use arbitrary::Arbitrary;
use streaming::{AttachRequest, ExecRequest, PortForwardRequest, Server};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

use crate::{FakeRuntime, must_end, url_path};

/// A session as the runtime's Exec, Attach or PortForward answer registers it.
#[derive(Debug, Arbitrary)]
pub enum Session {
    /// `kubectl exec` of one of the fake runtime's commands.
    Exec {
        /// Picks `echo`, `exit`, `fail` or `sleep`.
        command: u8,
        /// A terminal.
        tty: bool,
        /// The streams asked for.
        stdin: bool,
        /// See `stdin`.
        stdout: bool,
        /// See `stdin`.
        stderr: bool,
    },
    /// `kubectl attach`.
    Attach {
        /// A terminal.
        tty: bool,
        /// The streams asked for.
        stdin: bool,
        /// See `stdin`.
        stdout: bool,
        /// See `stdin`.
        stderr: bool,
    },
    /// `kubectl port-forward` of these ports (at most 4 are asked for).
    PortForward {
        /// The ports.
        ports: Vec<u16>,
    },
}

/// A session the server accepted: where to upgrade, and what it forwards.
#[derive(Debug)]
pub struct Registered {
    /// The path of its URL (`/exec/<token>`).
    pub path: String,
    /// For a port forward, how many ports it asked for; `None` for exec and attach.
    pub ports: Option<usize>,
}

impl Session {
    /// Registers the session with `server`; `None` if the server refuses it.
    pub fn register(self, server: &Server<FakeRuntime>) -> Option<Registered> {
        let (url, ports) = match self {
            Session::Exec {
                command,
                tty,
                stdin,
                stdout,
                stderr,
            } => {
                let cmd = ["echo", "exit", "fail", "sleep"][usize::from(command) % 4];
                let request = ExecRequest {
                    container_id: "c".into(),
                    cmd: vec![cmd.into()],
                    tty,
                    stdin,
                    stdout,
                    stderr,
                };
                (server.get_exec(request).ok()?, None)
            }
            Session::Attach {
                tty,
                stdin,
                stdout,
                stderr,
            } => {
                let request = AttachRequest {
                    container_id: "c".into(),
                    tty,
                    stdin,
                    stdout,
                    stderr,
                };
                (server.get_attach(request).ok()?, None)
            }
            Session::PortForward { ports } => {
                let port: Vec<i32> = ports.into_iter().take(4).map(i32::from).collect();
                let count = port.len();
                let request = PortForwardRequest {
                    pod_sandbox_id: "p".into(),
                    port,
                };
                (server.get_port_forward(request).ok()?, Some(count))
            }
        };
        Some(Registered {
            path: url_path(&url),
            ports,
        })
    }
}

/// The client's end of a connection that `server` serves on a task of its own.
pub struct Client {
    /// What the server writes.
    pub read: ReadHalf<DuplexStream>,
    /// What the client sends.
    pub write: WriteHalf<DuplexStream>,
    /// The task serving the connection.
    pub serving: JoinHandle<()>,
}

impl Client {
    /// Connects to `server` over an in-memory duplex.
    pub fn connect(server: &Server<FakeRuntime>) -> Client {
        let (client, server_io) = tokio::io::duplex(64 * 1024);
        let server = server.clone();
        let serving = tokio::spawn(async move {
            let _ = server.serve_connection(server_io).await;
        });
        let (read, write) = tokio::io::split(client);
        Client { read, write, serving }
    }
}

/// Waits `tenths` tenths of a second (of the paused clock) between two sends.
pub async fn pause(tenths: u8) {
    tokio::time::sleep(Duration::from_millis(100 * u64::from(tenths))).await;
}

/// The client leaves: it closes its side, and the session must end, with its reader of
/// the server's output and the serving task, within [`crate::SESSION_DEADLINE`]. Then the
/// server shuts down.
pub async fn leave(
    server: &Server<FakeRuntime>,
    mut write: WriteHalf<DuplexStream>,
    reading: JoinHandle<()>,
    serving: JoinHandle<()>,
) {
    let _ = write.shutdown().await;
    must_end(async {
        let _ = reading.await;
        let _ = serving.await;
    })
    .await;
    server.shutdown();
}
