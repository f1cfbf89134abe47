//! What the fuzz targets share: a paused-clock runtime, a fake container runtime behind
//! the streaming server, input splitting, and (in [`session`]) a whole streaming session's
//! client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub mod session;

use streaming::{Config, Connection, Runtime, RuntimeError, Server, Streams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long (on the paused clock) a session may take once the client has sent everything
/// and closed its side; longer is a hang: something waits for a peer that is gone.
pub const SESSION_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// A single-threaded runtime whose clock only moves when every task waits, so idle and
/// linger timeouts elapse at once.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
}

/// Runs `future` to its end on a [`paused_runtime`].
pub fn run_paused<F: Future>(future: F) -> F::Output {
    paused_runtime().block_on(future)
}

/// Waits for `future`, the end of a session whose client has left, panicking if it has
/// not ended within [`SESSION_DEADLINE`].
pub async fn must_end<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(SESSION_DEADLINE, future)
        .await
        .expect("the session hung: it did not end after the client left")
}

/// Splits `data` into pieces whose lengths cycle through `sizes` (plus one), the way reads
/// return arbitrary parts of a byte stream; no `sizes`, one piece.
pub fn pieces<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(rest.len(), |s| usize::from(*s) + 1);
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
        i += 1;
    }
    out
}

/// The container runtime behind the streaming server in the network targets. What an
/// exec does depends on its command:
///
/// - `echo`: copies stdin to stdout (at most 1 MiB), writes a line to stderr, exits 0;
/// - `exit`: exits 3 at once;
/// - `fail`: the runtime fails;
/// - anything else: reads stdin to its end without answering, exits 0.
///
/// Attach behaves as `echo`. Port-forward connects to an in-memory echo server, except
/// on port 1, which refuses.
#[derive(Debug, Default)]
pub struct FakeRuntime;

const ECHO_LIMIT: u64 = 1 << 20;

async fn echo(mut streams: Streams) {
    if let Some(mut resize) = streams.resize.take() {
        tokio::spawn(async move { while resize.recv().await.is_some() {} });
    }
    if let Some(stderr) = streams.stderr.as_mut() {
        let _ = stderr.write_all(b"to stderr\n").await;
    }
    match (streams.stdin.take(), streams.stdout.as_mut()) {
        (Some(stdin), Some(stdout)) => {
            let _ = tokio::io::copy(&mut stdin.take(ECHO_LIMIT), stdout).await;
        }
        (Some(mut stdin), None) => {
            let _ = tokio::io::copy(&mut stdin, &mut tokio::io::sink()).await;
        }
        (None, Some(stdout)) => {
            let _ = stdout.write_all(b"no stdin\n").await;
        }
        (None, None) => {}
    }
}

impl Runtime for FakeRuntime {
    async fn exec(&self, _container_id: &str, cmd: Vec<String>, mut streams: Streams) -> Result<i32, RuntimeError> {
        match cmd.first().map(String::as_str) {
            Some("echo") => {
                echo(streams).await;
                Ok(0)
            }
            Some("exit") => Ok(3),
            Some("fail") => Err("the fake runtime fails".into()),
            _ => {
                if let Some(mut stdin) = streams.stdin.take() {
                    let mut buf = Vec::new();
                    let _ = stdin.read_to_end(&mut buf).await;
                }
                Ok(0)
            }
        }
    }

    async fn attach(&self, _container_id: &str, streams: Streams) -> Result<(), RuntimeError> {
        echo(streams).await;
        Ok(())
    }

    async fn port_forward(&self, _pod_sandbox_id: &str, port: u16) -> Result<Box<dyn Connection>, RuntimeError> {
        if port == 1 {
            return Err("connection refused".into());
        }
        let (ours, theirs) = tokio::io::duplex(16 * 1024);
        tokio::spawn(async move {
            let (mut read, mut write) = tokio::io::split(theirs);
            let _ = tokio::io::copy(&mut (&mut read).take(ECHO_LIMIT), &mut write).await;
        });
        Ok(Box::new(ours))
    }
}

/// A streaming server on the fake runtime with short timeouts (they cost nothing on the
/// paused clock, and the defaults are hours).
pub fn streaming_server() -> Server<FakeRuntime> {
    let config = Config {
        stream_idle_timeout: Duration::from_secs(60),
        stream_creation_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    Server::new(config, Arc::new(FakeRuntime))
}

/// The path of a stream URL (`/exec/<token>`), without scheme and host.
pub fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme
        .find('/')
        .map_or_else(|| "/".to_string(), |i| after_scheme[i..].to_string())
}

/// Splits what a server wrote into its HTTP response head and what followed it; `None`
/// while the head is incomplete.
pub fn split_response(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&bytes[..end + 4], &bytes[end + 4..]))
}
