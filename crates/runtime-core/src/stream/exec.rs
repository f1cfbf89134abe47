//! Exec sessions: a command run in a container with the client's streams, until it exits.
//!
//! - **Without a terminal**, `runc exec` runs in the foreground with pipes for the
//!   process's stdio and exits with its exit code.
//! - **With a terminal**, runc only hands the terminal over when it detaches: `runc exec
//!   --tty --detach --console-socket` sends the pty master over the socket
//!   ([`receive_console`], shared with the monitor) and exits, leaving the process to the
//!   daemon, its child subreaper ([`Orphan`]), which waits for it through a pidfd.
//!   Resizes set the master's size (`TIOCSWINSZ`).
//!
//! Either way runc writes the process's pid to a pid file, so a session that ends early
//! (the client went away, the server dropped the session) kills the process and all it
//! started, and reaps what is handed to the daemon ([`ExecGuard`]): nothing is left
//! behind in the container.

use std::ffi::OsString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use streaming::{Input, Output, Streams, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use super::StreamError;
use super::orphan::Orphan;
use super::terminal::{END_OF_TRANSMISSION, Resizer, Terminal};
use crate::monitor::console::receive_console;
use crate::oci::runc::{ExecFiles, ExecGuard, Runc, RuncError, error_message, exit_code};

/// How long output is still read after the process exited: a background process it
/// started may hold the pipes or the terminal open forever.
const OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// How much is copied at a time.
const CHUNK: usize = 32 * 1024;
/// The longest path a unix socket address holds (`sun_path` without its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Runs `cmd` in container `id` with `streams`; returns its exit code.
pub(crate) async fn run(runc: &Runc, id: &str, cmd: &[String], streams: Streams) -> Result<i32, StreamError> {
    if cmd.is_empty() {
        return Err(RuncError::EmptyCommand { id: id.into() }.into());
    }
    if streams.tty {
        with_terminal(runc, id, cmd, streams).await
    } else {
        with_pipes(runc, id, cmd, streams).await
    }
}

/// The foreground `runc exec` with the process's stdio on pipes.
async fn with_pipes(runc: &Runc, id: &str, cmd: &[String], streams: Streams) -> Result<i32, StreamError> {
    let files = runc.exec_files()?;
    let piped = [
        streams.stdin.is_some(),
        streams.stdout.is_some(),
        streams.stderr.is_some(),
    ];
    let (mut child, mut guard) = spawn(runc, runc.exec_args(id, cmd, &files, None), piped, &files)?;
    let _feeding = match (streams.stdin, child.stdin.take()) {
        (Some(input), Some(stdin)) => Some(AbortOnDrop(tokio::spawn(feed(input, stdin, None)))),
        _ => None,
    };
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let outputs = async {
        let (out, err) = tokio::join!(
            forward_some(stdout, streams.stdout),
            forward_some(stderr, streams.stderr)
        );
        out.and(err)
    };
    tokio::pin!(outputs);
    let mut outputs_done = false;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            result = &mut outputs, if !outputs_done => {
                outputs_done = true;
                result?;
            }
        }
    };
    // runc is reaped: its pid must not be killed any more, even if reused.
    guard.disarm();
    let status = status.map_err(|source| StreamError::Io {
        what: "waiting for runc exec",
        source,
    })?;
    if !outputs_done {
        drain(outputs).await?;
    }
    if !status.success() && !files.pid.exists() {
        // runc writes the pid file once the process runs: it never did.
        return Err(runc_failure(id, &files, status));
    }
    Ok(exit_code(status))
}

/// `runc exec --tty --detach`, then the session on the terminal until the process exits.
async fn with_terminal(runc: &Runc, id: &str, cmd: &[String], streams: Streams) -> Result<i32, StreamError> {
    let files = runc.exec_files()?;
    let console = ConsoleSocket::bind(files.pid.with_extension("sock"))?;
    let args = runc.exec_args(id, cmd, &files, Some(&console.address));
    let (child, mut runc_guard) = spawn(runc, args, [false; 3], &files)?;
    let output = child.wait_with_output().await.map_err(|source| StreamError::Io {
        what: "waiting for runc exec",
        source,
    })?;
    runc_guard.disarm();
    if !output.status.success() {
        // A process that started is killed by this guard (runc is gone: no runc pid).
        let _guard = ExecGuard::new(None, files.pid.clone());
        return Err(runc_failure(id, &files, output.status));
    }
    // Declared before the guard, so dropped after it: killed first, then reaped.
    let mut process = adopt(&files.pid)?;
    let mut guard = ExecGuard::new(None, files.pid.clone());
    let master = receive_console(&console.listener).map_err(|source| StreamError::Io {
        what: "receiving the terminal from runc",
        source,
    })?;
    drop(console);
    let terminal = Terminal::new(master).map_err(|source| StreamError::Io {
        what: "registering the terminal",
        source,
    })?;

    let Terminal { output, input, size } = terminal;
    let feeding = async {
        if let Some(from) = streams.stdin {
            // A terminal has no end of file of its own: ^D is how it says so.
            feed(from, input, Some(END_OF_TRANSMISSION)).await;
        }
        std::future::pending::<()>().await;
    };
    let resizing = resize(&size, streams.resize);
    // Output nobody asked for is read all the same: a full terminal would stop the process.
    let stdout = streams.stdout.unwrap_or_else(|| Box::pin(tokio::io::sink()));
    let outputs = forward_some(Some(output), Some(stdout));
    tokio::pin!(outputs, feeding, resizing);
    let mut outputs_done = false;
    // Any error below returns with the guard armed: the process is killed.
    let code = loop {
        tokio::select! {
            code = process.wait() => break code.map_err(|source| StreamError::Io {
                what: "waiting for the exec'd process",
                source,
            })?,
            result = &mut outputs, if !outputs_done => {
                outputs_done = true;
                result?;
            }
            () = &mut feeding => {}
            () = &mut resizing => {}
        }
    };
    guard.disarm();
    if !outputs_done {
        drain(outputs).await?;
    }
    Ok(code)
}

/// Starts `runc` with `args`, with pipes for the stdin, stdout and stderr that `piped`
/// asks for (`/dev/null` for the others), guarded so that dropping the session kills it
/// and its process.
fn spawn(
    runc: &Runc,
    args: Vec<OsString>,
    piped: [bool; 3],
    files: &ExecFiles,
) -> Result<(Child, ExecGuard), StreamError> {
    let stdio = |wanted: bool| if wanted { Stdio::piped() } else { Stdio::null() };
    let child = Command::new(runc.binary())
        .args(args)
        .stdin(stdio(piped[0]))
        .stdout(stdio(piped[1]))
        .stderr(stdio(piped[2]))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| RuncError::Spawn {
            binary: runc.binary().to_path_buf(),
            source,
        })?;
    let guard = ExecGuard::new(child.id(), files.pid.clone());
    Ok((child, guard))
}

/// Waits up to [`OUTPUT_DRAIN`] for the output streams to end after the process exited.
async fn drain(outputs: impl Future<Output = Result<(), StreamError>>) -> Result<(), StreamError> {
    match tokio::time::timeout(OUTPUT_DRAIN, outputs).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

/// The exec'd process, whose pid runc wrote to `pid_file`, as the daemon's child.
fn adopt(pid_file: &Path) -> Result<Orphan, StreamError> {
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .ok_or_else(|| StreamError::Io {
            what: "reading the exec pid file",
            source: io::Error::other(format!("{} holds no pid", pid_file.display())),
        })?;
    Orphan::adopt(pid).map_err(|source| StreamError::Io {
        what: "taking over the exec'd process",
        source,
    })
}

/// runc's error for an exec that never ran its process.
fn runc_failure(id: &str, files: &ExecFiles, status: std::process::ExitStatus) -> StreamError {
    let log = std::fs::read(&files.log).unwrap_or_default();
    RuncError::Failed {
        command: "exec",
        id: id.into(),
        message: error_message(&log, status),
    }
    .into()
}

/// Copies the client's stdin to the process until it ends, then closes the process's
/// stdin (dropping `to`), or writes `end` first if given.
async fn feed(mut from: Input, mut to: impl AsyncWrite + Unpin, end: Option<u8>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if to.write_all(&buf[..read]).await.is_err() {
                    return;
                }
            }
        }
    }
    if let Some(end) = end {
        let _ = to.write_all(&[end]).await;
    }
    let _ = to.shutdown().await;
}

/// Copies process output `from` to the client's `to` until end of file; an error writing
/// to the client means it went away ([`StreamError::ClientGone`]).
async fn forward_some(from: Option<impl AsyncRead + Unpin>, to: Option<Output>) -> Result<(), StreamError> {
    let (Some(mut from), Some(mut to)) = (from, to) else {
        return Ok(());
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let written = async {
            to.write_all(&buf[..read]).await?;
            to.flush().await
        };
        written.await.map_err(|_| StreamError::ClientGone)?;
    }
    let _ = to.shutdown().await;
    Ok(())
}

/// Applies the client's terminal sizes until it stops sending them; then waits forever.
async fn resize(terminal: &Resizer, sizes: Option<mpsc::Receiver<TerminalSize>>) {
    if let Some(mut sizes) = sizes {
        while let Some(size) = sizes.recv().await {
            if let Err(err) = terminal.resize(size.width, size.height) {
                tracing::debug!(%err, "resizing an exec terminal");
            }
        }
    }
    std::future::pending::<()>().await;
}

/// The socket runc sends an exec's terminal to, removed on drop.
struct ConsoleSocket {
    listener: UnixListener,
    /// The path runc is given.
    address: PathBuf,
    path: PathBuf,
    /// Holds the directory open while its `/proc/<pid>/fd` path is the address.
    _dir: Option<std::fs::File>,
}

impl ConsoleSocket {
    /// Binds at `path`; if that is too long for a socket address, through the directory's
    /// descriptor (`/proc/<pid>/fd/<dir fd>/<name>`, which runc can open too).
    fn bind(path: PathBuf) -> Result<ConsoleSocket, StreamError> {
        let io_error = |source| StreamError::Io {
            what: "binding the exec console socket",
            source,
        };
        let _ = std::fs::remove_file(&path);
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            let listener = UnixListener::bind(&path).map_err(io_error)?;
            return Ok(ConsoleSocket {
                listener,
                address: path.clone(),
                path,
                _dir: None,
            });
        }
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(io_error(io::Error::other("the socket path has no directory")));
        };
        let dir = std::fs::File::open(dir).map_err(io_error)?;
        let through = |pid: &str| PathBuf::from(format!("/proc/{pid}/fd/{}", dir.as_raw_fd())).join(name);
        let listener = UnixListener::bind(through("self")).map_err(io_error)?;
        Ok(ConsoleSocket {
            listener,
            address: through(&std::process::id().to_string()),
            path,
            _dir: Some(dir),
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A spawned task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
