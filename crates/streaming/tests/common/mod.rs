//! A runtime for the tests that does real work on the host: exec runs the command as a
//! real process (so exit codes, stdin and stderr are real), attach echoes stdin back,
//! port-forward connects to 127.0.0.1.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streaming::client::{self, ExitStatus, Protocol, RemoteCommand};
use streaming::spdy::Headers;
use streaming::spdy::frame::Frame;
use streaming::{Config, Connection, Runtime, RuntimeError, Server, Streams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// What the runtime saw, for the tests to check.
#[derive(Debug, Default)]
pub struct Seen {
    /// Terminal sizes delivered to exec sessions.
    pub resizes: Mutex<Vec<TerminalSize>>,
    /// Pids of exec'd processes, in start order.
    pub pids: Mutex<Vec<u32>>,
    /// Exec calls whose future was dropped before the process exited.
    pub abandoned: AtomicUsize,
    /// Exec calls that ran to the end.
    pub finished: AtomicUsize,
}

#[derive(Debug, Default, Clone)]
pub struct HostRuntime {
    pub seen: Arc<Seen>,
}

/// Counts an exec as abandoned unless it is disarmed at the end.
struct AbandonGuard(Option<Arc<Seen>>);

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if let Some(seen) = self.0.take() {
            seen.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Runtime for HostRuntime {
    async fn exec(&self, _container_id: &str, cmd: Vec<String>, streams: Streams) -> Result<i32, RuntimeError> {
        let mut guard = AbandonGuard(Some(self.seen.clone()));
        let Streams {
            stdin,
            stdout,
            stderr,
            resize,
            ..
        } = streams;
        let (program, args) = cmd.split_first().ok_or("empty command")?;
        let mut command = Command::new(program);
        command.args(args).kill_on_drop(true);
        command.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        command.stdout(if stdout.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        command.stderr(if stderr.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        let mut child = command.spawn()?;
        if let Some(pid) = child.id() {
            self.seen.pids.lock().unwrap().push(pid);
        }
        if let Some(mut sizes) = resize {
            let seen = self.seen.clone();
            tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    seen.resizes.lock().unwrap().push(size);
                }
            });
        }
        let feed = match (stdin, child.stdin.take()) {
            (Some(mut from), Some(mut to)) => Some(tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from, &mut to).await;
                // Dropping `to` closes the process's stdin.
            })),
            _ => None,
        };
        let out = copy_output(child.stdout.take(), stdout);
        let err = copy_output(child.stderr.take(), stderr);
        let (status, _, _) = tokio::join!(child.wait(), out, err);
        if let Some(feed) = feed {
            feed.abort();
        }
        guard.0 = None;
        self.seen.finished.fetch_add(1, Ordering::SeqCst);
        Ok(status?.code().unwrap_or(128))
    }

    async fn attach(&self, container_id: &str, streams: Streams) -> Result<(), RuntimeError> {
        if container_id == "missing" {
            return Err("no such container".into());
        }
        let Streams { stdin, stdout, .. } = streams;
        if let (Some(mut stdin), Some(mut stdout)) = (stdin, stdout) {
            tokio::io::copy(&mut stdin, &mut stdout).await?;
        }
        Ok(())
    }

    async fn port_forward(&self, _pod_sandbox_id: &str, port: u16) -> Result<Box<dyn Connection>, RuntimeError> {
        Ok(Box::new(tokio::net::TcpStream::connect(("127.0.0.1", port)).await?))
    }
}

async fn copy_output<R, W>(from: Option<R>, to: Option<W>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    if let (Some(mut from), Some(mut to)) = (from, to) {
        let _ = tokio::io::copy(&mut from, &mut to).await;
        let _ = to.shutdown().await;
    }
}

/// A server on 127.0.0.1 with the host runtime.
pub async fn server() -> (Server<HostRuntime>, Arc<Seen>) {
    server_with(Config::default()).await
}

pub async fn server_with(config: Config) -> (Server<HostRuntime>, Arc<Seen>) {
    let runtime = HostRuntime::default();
    let seen = runtime.seen.clone();
    (Server::start(config, Arc::new(runtime)).await.unwrap(), seen)
}

/// A TCP server on 127.0.0.1 that echoes every connection back.
pub async fn echo_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.shutdown().await;
            });
        }
    });
    port
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Waits up to `timeout` for `condition`.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

/// A request for `sh -c script` with stdout and stderr.
pub fn sh(script: &str) -> streaming::ExecRequest {
    streaming::ExecRequest {
        container_id: "c1".into(),
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        stdout: true,
        stderr: true,
        ..Default::default()
    }
}

/// Reads exactly `n` bytes or fails.
pub async fn read_n<R: tokio::io::AsyncRead + Unpin>(reader: &mut R, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    reader.read_exact(&mut buf).await.unwrap();
    buf
}

/// Upgrades a raw connection to SPDY for an exec or attach `url`.
pub async fn raw_spdy(url: &str) -> TcpStream {
    raw_spdy_with(url, "v4.channel.k8s.io").await
}

/// Upgrades a raw connection to SPDY for `url`, offering `protocol`.
pub async fn raw_spdy_with(url: &str, protocol: &str) -> TcpStream {
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = TcpStream::connect(authority).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// Reads until the server closes the connection.
pub async fn closed_by_server<R: tokio::io::AsyncRead + Unpin>(tcp: &mut R) {
    let mut sink = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

/// A new exec on the server works.
pub async fn still_serves(server: &Server<HostRuntime>) {
    let url = server.get_exec(sh("echo alive")).unwrap();
    let output = client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await.unwrap();
    assert_eq!(
        (output.stdout.as_slice(), output.status),
        (&b"alive\n"[..], ExitStatus::Success)
    );
}

/// A SYN_STREAM opening a stream of `stream_type`.
pub fn syn_stream(stream_id: u32, stream_type: &str) -> Frame {
    syn_stream_with(stream_id, Headers::new().with("streamType", stream_type))
}

/// A SYN_STREAM opening a stream with `headers`.
pub fn syn_stream_with(stream_id: u32, headers: Headers) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers,
    }
}

/// The resident set of this process, from `/proc/self/status`, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}
