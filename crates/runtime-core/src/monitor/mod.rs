//! The per-container monitor: one small process per container (the role of conmon, or of
//! containerd's shim) that holds the container's stdio, writes its CRI log, reopens the
//! log on request, waits for the container's init to exit and records how it ended, so
//! containers and their exit codes survive a restart (or a crash) of the daemon.
//!
//! The daemon side is this module's functions ([`start`], [`exit_status`],
//! [`wait_for_exit`], [`monitor_running`], [`reopen_log`]); the monitor process is
//! [`process`], run by the `runtime-core-monitor` binary, std and rustix only.
//!
//! # Protocol
//!
//! The daemon starts `runtime-core-monitor` with the command line of [`args`], stdin on
//! `/dev/null`, stdout a pipe to the daemon and stderr appended to [`MONITOR_LOG`]. The
//! monitor leaves the daemon's session at once (`setsid`): killing the daemon, even with
//! SIGKILL, leaves it and its container running.
//!
//! Everything else goes through the monitor's state directory, one per container:
//!
//! | file                   | written by | what                                              |
//! |------------------------|------------|---------------------------------------------------|
//! | [`MONITOR_PID_FILE`]   | monitor    | its pid (atomically), before it runs runc         |
//! | [`CONTAINER_PID_FILE`] | runc       | the container's init pid (`runc create --pid-file`)|
//! | [`RUNC_LOG`]           | runc       | runc's JSON log (`runc --log`)                    |
//! | [`MONITOR_LOG`]        | monitor    | its own errors (its stderr)                       |
//! | [`CONTROL_SOCKET`]     | monitor    | unix stream socket for requests, while it runs    |
//! | [`CONSOLE_SOCKET`]     | monitor    | for a terminal: where runc sends the pty master   |
//! | [`ATTACH_SOCKET`]      | monitor    | unix stream socket for attach clients ([`attach`])|
//! | [`EXIT_FILE`]          | monitor    | the [`ExitRecord`] (temporary file + rename)      |
//!
//! 1. **Creation report.** The monitor runs `runc create` and writes one report to its
//!    stdout, then closes it: `created <init pid>\n` ([`REPORT_CREATED`]), or
//!    `error <text>` ([`REPORT_ERROR`]; runc's error message) after which it exits. End of
//!    file without a report means the monitor died. [`start`] returns on the report.
//! 2. **Control requests.** A client connects to [`CONTROL_SOCKET`], writes one request
//!    line, and reads one answer line: `ok` ([`RESPONSE_OK`]) or `error <text>`
//!    ([`RESPONSE_ERROR`]). The only request so far is `reopen` ([`REQUEST_REOPEN`]): the
//!    monitor opens its log path again (after the kubelet renamed the file to rotate it),
//!    and answers once output goes to the new file. Socket paths longer than a socket
//!    address holds are reached through `/proc/self/fd/<dir fd>/`.
//! 3. **Attach.** A client connects to [`ATTACH_SOCKET`] (see [`connect_attach`]) and
//!    exchanges frames ([`attach`] has the table): it receives the container's output,
//!    stdout and stderr apart, from then on, and may send stdin (if the container was
//!    created with stdin), close it (`stdin_once`) and resize the terminal.
//! 4. **Exit.** When the container's init has exited, the monitor reads what is left in
//!    the pipes, writes [`EXIT_FILE`], removes [`ATTACH_SOCKET`] (closing every attach
//!    connection) and [`CONTROL_SOCKET`], and exits.
//!
//! The monitor is a child subreaper: once `runc create` has exited, the container's init
//! is its child, so it learns the exit status with `waitpid` (a thread blocked in it), and
//! it reaps any other orphan handed to it the moment it exits (no zombies).
//!
//! # Not yet
//!
//! - OOM detection is best effort (see [`oom`]).

pub mod args;
pub mod attach;
pub mod console;
pub mod cri_log;
pub mod exit;
pub mod oom;
pub mod pause;
pub mod process;
pub mod runtime;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

pub use exit::ExitRecord;
pub use runtime::MonitoredRunc;

/// The monitor's pid, in its state directory.
pub const MONITOR_PID_FILE: &str = "monitor.pid";
/// The container init's pid, written by `runc create --pid-file`.
pub const CONTAINER_PID_FILE: &str = "container.pid";
/// The exit record ([`ExitRecord`] as JSON).
pub const EXIT_FILE: &str = "exit.json";
/// The control socket.
pub const CONTROL_SOCKET: &str = "ctl.sock";
/// The attach socket (see [`attach`]).
pub const ATTACH_SOCKET: &str = "attach.sock";
/// The socket runc sends a terminal's master to (`runc create --console-socket`).
pub const CONSOLE_SOCKET: &str = "console.sock";
/// runc's log (`runc --log ... --log-format json`) for the runc commands the monitor runs.
pub const RUNC_LOG: &str = "runc.log";
/// The monitor's stderr: its own error messages.
pub const MONITOR_LOG: &str = "monitor.log";

/// The report of a created container: `created <init pid>`.
pub const REPORT_CREATED: &str = "created";
/// The report of a failure: `error <text>`.
pub const REPORT_ERROR: &str = "error";
/// The control request to reopen the log file.
pub const REQUEST_REOPEN: &str = "reopen";
/// The answer to a request that was carried out.
pub const RESPONSE_OK: &str = "ok";
/// The answer to a request that failed: `error <text>`.
pub const RESPONSE_ERROR: &str = "error";

/// The longest path a unix socket address holds (`sun_path` without its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long a control request may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest creation report read from a monitor.
const MAX_REPORT: u64 = 64 * 1024;

/// What a monitor is to do for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorConfig {
    /// The container id (runc's id).
    pub id: String,
    /// The OCI bundle (`config.json`, and the rootfs it names).
    pub bundle: PathBuf,
    /// The runc-compatible binary.
    pub runc_binary: PathBuf,
    /// runc's `--root` state directory.
    pub runc_root: PathBuf,
    /// The monitor's own directory, one per container (see the module documentation).
    pub state_dir: PathBuf,
    /// The CRI log file; `None` discards the container's output.
    pub log_path: Option<PathBuf>,
    /// Lines longer than this are split into partial records (`0` means the default,
    /// [`MonitorConfig::DEFAULT_LOG_MAX_LINE`]).
    pub log_max_line: usize,
    /// Keep the container's stdin open (for attach) instead of `/dev/null`.
    pub stdin: bool,
    /// Give the container a terminal; its output is logged as stdout.
    pub tty: bool,
}

impl MonitorConfig {
    /// containerd's default `max_container_log_line_size`: 16 KiB.
    pub const DEFAULT_LOG_MAX_LINE: usize = 16 * 1024;
}

/// A monitor whose container runc has created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// The container's init process (host pid namespace).
    pub container_pid: u32,
    /// The monitor process.
    pub monitor_pid: u32,
}

/// A failure to start or talk to a monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The state directory or a file in it could not be made.
    #[error("preparing {path}: {source}")]
    StateDir {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The monitor binary could not be started.
    #[error("starting {binary}: {source}")]
    Spawn {
        /// The monitor binary.
        binary: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The container could not be created; the text is runc's (or the monitor's) error.
    #[error("creating the container: {0}")]
    Create(String),
    /// The monitor exited without a report.
    #[error("the monitor died before reporting ({status}){log}")]
    Died {
        /// Its exit status.
        status: String,
        /// The end of its own log, if it wrote one (with a leading `": "`).
        log: String,
    },
    /// The monitor said something this daemon does not understand.
    #[error("unexpected answer from the monitor: {0:?}")]
    Protocol(String),
    /// No monitor runs for this state directory (the container has exited).
    #[error("the monitor is not running")]
    NotRunning,
    /// Talking to the monitor failed.
    #[error("talking to the monitor: {0}")]
    Control(#[source] io::Error),
    /// The monitor could not carry out the request.
    #[error("the monitor failed: {0}")]
    Refused(String),
}

/// Starts a monitor for `config.id` with `monitor_binary`, which runs `runc create`.
///
/// Returns once the container is created (runc's `created` state), with runc's error
/// text otherwise. The monitor lives on in its own session; this daemon reaps it when it
/// exits (a background task), or, once this daemon is gone, whoever inherits it.
/// Cancelling the future does not stop the monitor.
pub async fn start(monitor_binary: &Path, config: &MonitorConfig) -> Result<Started, MonitorError> {
    let state_dir = &config.state_dir;
    tokio::fs::create_dir_all(state_dir)
        .await
        .map_err(|source| MonitorError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
    let log_path = state_dir.join(MONITOR_LOG);
    let stderr = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| MonitorError::StateDir { path: log_path, source })?;
    let mut child = tokio::process::Command::new(monitor_binary)
        .args(config.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(false)
        .spawn()
        .map_err(|source| MonitorError::Spawn {
            binary: monitor_binary.into(),
            source,
        })?;
    let monitor_pid = child.id().unwrap_or(0);
    let mut report = Vec::new();
    let read = match child.stdout.take() {
        Some(stdout) => stdout.take(MAX_REPORT).read_to_end(&mut report).await,
        None => Ok(0),
    };
    let report = String::from_utf8_lossy(&report).into_owned();
    let parsed = parse_report(&report);

    let status = match &parsed {
        // A monitor that reported nothing has died (or is dying): its status says how.
        Err(ReportError::Empty) => tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .ok()
            .and_then(Result::ok),
        _ => None,
    };
    if status.is_none() {
        // Reap it whenever it exits; tokio also reaps dropped children, this is explicit.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
    }
    match parsed {
        Ok(container_pid) => Ok(Started {
            container_pid,
            monitor_pid,
        }),
        Err(ReportError::Failed(text)) => Err(MonitorError::Create(text)),
        Err(ReportError::Unexpected(text)) => Err(MonitorError::Protocol(text)),
        Err(ReportError::Empty) => {
            let log = std::fs::read_to_string(state_dir.join(MONITOR_LOG)).unwrap_or_default();
            let log = log.trim();
            Err(MonitorError::Died {
                status: match (status, read) {
                    (Some(status), _) => status.to_string(),
                    (None, Err(err)) => format!("reading its report: {err}"),
                    (None, Ok(_)) => "still running".to_owned(),
                },
                log: if log.is_empty() {
                    String::new()
                } else {
                    format!(": {log}")
                },
            })
        }
    }
}

/// A creation report that is not `created <pid>`.
#[derive(Debug, PartialEq, Eq)]
enum ReportError {
    /// Nothing at all.
    Empty,
    /// `error <text>`.
    Failed(String),
    /// Anything else.
    Unexpected(String),
}

/// Parses the monitor's creation report into the container's init pid.
fn parse_report(report: &str) -> Result<u32, ReportError> {
    if report.is_empty() {
        return Err(ReportError::Empty);
    }
    let first_word = report.split_whitespace().next().unwrap_or_default();
    let rest = report.trim_start()[first_word.len()..].trim();
    match first_word {
        REPORT_CREATED => rest
            .parse::<u32>()
            .ok()
            .filter(|&pid| pid > 0)
            .ok_or_else(|| ReportError::Unexpected(report.to_owned())),
        REPORT_ERROR => Err(ReportError::Failed(rest.to_owned())),
        _ => Err(ReportError::Unexpected(report.to_owned())),
    }
}

/// The container's exit record, once its monitor has written it.
pub fn exit_status(state_dir: &Path) -> Option<ExitRecord> {
    let text = std::fs::read(state_dir.join(EXIT_FILE)).ok()?;
    match ExitRecord::from_json(&text) {
        Ok(record) => Some(record),
        Err(err) => {
            tracing::warn!(state_dir = %state_dir.display(), "unreadable exit record: {err}");
            None
        }
    }
}

/// Waits up to `timeout` for the container's exit record. Returns `None` at the deadline,
/// or earlier if the monitor is gone without writing one.
pub async fn wait_for_exit(state_dir: &Path, timeout: Duration) -> Option<ExitRecord> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let mut next_liveness_check = Instant::now() + Duration::from_millis(100);
    loop {
        if let Some(record) = exit_status(state_dir) {
            return Some(record);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        if now >= next_liveness_check {
            if !monitor_running(state_dir) {
                // It may have written the record just before exiting.
                return exit_status(state_dir);
            }
            next_liveness_check = now + Duration::from_millis(100);
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The monitor's pid from its pid file, if it is running (see [`monitor_running`]).
pub fn monitor_pid(state_dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(state_dir.join(MONITOR_PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The monitor works in its state directory: a process with that pid and another
    // working directory is not our monitor but a reused pid, and a zombie has none.
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let state_dir = std::fs::canonicalize(state_dir).ok()?;
    (cwd == state_dir).then_some(pid)
}

/// True if the monitor of this state directory is alive (from its pid file and /proc).
pub fn monitor_running(state_dir: &Path) -> bool {
    monitor_pid(state_dir).is_some()
}

/// Asks the monitor to reopen its log file (after the kubelet rotated it) and returns
/// once it has: output written after this goes to a file at the log path.
///
/// Blocking (a local socket round trip of well under a millisecond, at most a few
/// seconds for a stuck monitor); async callers may want `spawn_blocking`.
pub fn reopen_log(state_dir: &Path) -> Result<(), MonitorError> {
    let answer = request(state_dir, REQUEST_REOPEN)?;
    let first_word = answer.split_whitespace().next().unwrap_or_default();
    match first_word {
        RESPONSE_OK => Ok(()),
        RESPONSE_ERROR => Err(MonitorError::Refused(answer[first_word.len()..].trim().to_owned())),
        _ => Err(MonitorError::Protocol(answer)),
    }
}

/// Sends one control request and returns the answer line.
fn request(state_dir: &Path, request: &str) -> Result<String, MonitorError> {
    let mut stream = match connect_control(state_dir) {
        Ok(stream) => stream,
        Err(err)
            if matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused)
                || !monitor_running(state_dir) =>
        {
            return Err(MonitorError::NotRunning);
        }
        Err(err) => return Err(MonitorError::Control(err)),
    };
    stream
        .set_read_timeout(Some(CONTROL_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CONTROL_TIMEOUT)))
        .and_then(|()| stream.write_all(format!("{request}\n").as_bytes()))
        .map_err(MonitorError::Control)?;
    let mut answer = Vec::new();
    let mut reader = (&mut stream).take(4096);
    let mut chunk = [0u8; 256];
    while !answer.contains(&b'\n') {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(MonitorError::Control(err)),
        }
    }
    if answer.is_empty() {
        // The monitor closed the connection: it is exiting.
        return Err(MonitorError::NotRunning);
    }
    let line = answer.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim().to_owned())
}

/// Connects to the control socket.
fn connect_control(state_dir: &Path) -> io::Result<UnixStream> {
    connect_socket(state_dir, CONTROL_SOCKET)
}

/// Connects to the monitor's attach socket (blocking; a local connect). Fails with
/// `NotFound` or `ConnectionRefused` once the container has exited.
pub fn connect_attach(state_dir: &Path) -> io::Result<UnixStream> {
    connect_socket(state_dir, ATTACH_SOCKET)
}

/// Connects to socket `name` of a state directory, through `/proc/self/fd` if its path is
/// too long for a socket address (container ids alone are 64 characters).
fn connect_socket(state_dir: &Path, name: &str) -> io::Result<UnixStream> {
    let direct = state_dir.join(name);
    if direct.as_os_str().len() <= MAX_SOCKET_PATH {
        return UnixStream::connect(direct);
    }
    let dir = File::open(state_dir)?;
    UnixStream::connect(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_parsed() {
        assert_eq!(parse_report("created 4242\n"), Ok(4242));
        assert_eq!(parse_report(""), Err(ReportError::Empty));
        assert_eq!(
            parse_report("error container_linux.go:380: starting container process caused: no such file\n"),
            Err(ReportError::Failed(
                "container_linux.go:380: starting container process caused: no such file".into()
            ))
        );
        assert_eq!(parse_report("error\n"), Err(ReportError::Failed(String::new())));
        assert_eq!(
            parse_report("created zero\n"),
            Err(ReportError::Unexpected("created zero\n".into()))
        );
        assert_eq!(
            parse_report("created 0\n"),
            Err(ReportError::Unexpected("created 0\n".into()))
        );
        assert_eq!(parse_report("hello\n"), Err(ReportError::Unexpected("hello\n".into())));
    }

    #[test]
    fn no_monitor_runs_without_a_pid_file_or_with_a_foreign_pid() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!monitor_running(dir.path()));
        // Our own pid: alive, but its working directory is not the state directory.
        std::fs::write(dir.path().join(MONITOR_PID_FILE), format!("{}\n", std::process::id())).expect("write");
        assert!(!monitor_running(dir.path()));
        assert!(matches!(reopen_log(dir.path()), Err(MonitorError::NotRunning)));
        assert_eq!(exit_status(dir.path()), None);
    }

    #[test]
    fn long_state_directories_are_reached_through_proc() {
        let dir = tempfile::tempdir().expect("temp dir");
        let long = dir.path().join("c".repeat(64)).join("d".repeat(64));
        std::fs::create_dir_all(&long).expect("mkdir");
        // Bound through /proc, as `connect_control` connects.
        let dir_fd = File::open(&long).expect("open");
        let through_proc = PathBuf::from(format!("/proc/self/fd/{}", dir_fd.as_raw_fd())).join(CONTROL_SOCKET);
        let listener = std::os::unix::net::UnixListener::bind(through_proc).expect("bind");
        assert!(long.join(CONTROL_SOCKET).as_os_str().len() > MAX_SOCKET_PATH);
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = [0u8; 7];
            stream.read_exact(&mut request).expect("read");
            assert_eq!(&request, b"reopen\n");
            stream.write_all(b"ok\n").expect("write");
        });
        assert_eq!(request(&long, REQUEST_REOPEN).expect("request"), "ok");
        server.join().expect("server thread");
    }
}
