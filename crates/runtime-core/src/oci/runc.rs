//! runc, or a runc-compatible binary (crun, youki), driven as a child process: the
//! daemon is multi-threaded, and runc's libcontainer must not be forked from it
//! (`docs/ARCHITECTURE.md`).
//!
//! Every command runs as `runc --root ROOT --log-format json [--log FILE] <verb> ...`: with
//! JSON logs, runc's error messages are read back cleanly from its stderr (or from the log
//! file) and carried in [`RuncError::Failed`].
//!
//! The verbs a CRI runtime needs are idempotent where the CRI wants them to be:
//! [`Runc::delete`] of an unknown container and [`Runc::kill`] of one that is not running
//! succeed, [`Runc::state`] of an unknown container is `None`.
//!
//! `runc create` is not here as a method: the per-container monitor runs it, with the
//! container's stdio, from [`Runc::create_args`] (see `crate::monitor`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags, Signal, WaitId, WaitIdOptions};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// What `runc start` reports when the started process and its state were gone before it
/// removed its start fifo (see [`Runc::start`]).
const START_FIFO_GONE: &str = "exec.fifo: no such file or directory";
/// How long [`Runc::exec`] still reads output after the process exited: a background
/// process it started may hold the pipes open forever.
const EXEC_OUTPUT_DRAIN: Duration = Duration::from_secs(1);
/// The most output [`Runc::exec`] keeps per stream (CRI-O's limit for ExecSync); the
/// rest is read and dropped.
const MAX_EXEC_OUTPUT: usize = 16 * 1024 * 1024;
/// Rounds of stopping newly found processes before a timed-out exec's tree is killed.
const MAX_STOP_ROUNDS: usize = 20;
/// How long runc exec has, once its process was killed, to reap it and exit by itself
/// before it is killed too.
const RUNC_EXIT_GRACE: Duration = Duration::from_secs(2);
/// How long the processes of a killed exec have to be gone (SIGKILL is not instant: a
/// process in uninterruptible sleep dies when the call it waits in returns).
const KILLED_EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A runc-compatible OCI runtime binary and its state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runc {
    binary: PathBuf,
    /// runc's `--root`: its state directory (one directory per container).
    root: PathBuf,
    /// runc's `--log`, if set; otherwise it logs (JSON) to stderr.
    log_file: Option<PathBuf>,
    /// Where [`Runc::exec`] puts its pid and log files.
    exec_dir: PathBuf,
}

/// What `runc state` says about a container.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ContainerState {
    /// `created`, `running`, `stopped` or `paused`.
    pub status: String,
    /// The init process (host pid namespace); 0 once stopped.
    pub pid: u32,
}

/// What a process run by [`Runc::exec`] wrote and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its standard output (at most 16 MiB).
    pub stdout: Vec<u8>,
    /// Its standard error (at most 16 MiB).
    pub stderr: Vec<u8>,
    /// Its exit code; 128 + the signal number if a signal killed it.
    pub exit_code: i32,
}

/// A runc command that failed.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    /// The binary could not be run.
    #[error("running {binary}: {source}")]
    Spawn {
        /// The runtime binary.
        binary: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// runc ran and failed; `message` is what it said.
    #[error("runc {command} {id}: {message}")]
    Failed {
        /// The verb (`start`, `kill`, ...).
        command: &'static str,
        /// The container id (empty for `list`).
        id: String,
        /// runc's error messages (from its JSON log), or its exit status.
        message: String,
    },
    /// runc printed something that is not the JSON it should be.
    #[error("runc {command} {id}: unexpected output: {source}")]
    Output {
        /// The verb.
        command: &'static str,
        /// The container id (empty for `list`).
        id: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// [`Runc::exec`]'s timeout passed; the process and everything it started were killed
    /// and are gone.
    #[error("exec in {id} timed out after {timeout:?}")]
    Timeout {
        /// The container id.
        id: String,
        /// The timeout.
        timeout: Duration,
    },
    /// [`Runc::exec`] was given no command.
    #[error("exec in {id}: no command given")]
    EmptyCommand {
        /// The container id.
        id: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl Runc {
    /// The runtime at `binary` keeping its state under `root` (`runc --root`). Exec pid
    /// files go to the sibling directory `<root>-exec` (see [`Runc::with_exec_dir`]).
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Runc {
        let root = root.into();
        let exec_dir = match root.file_name() {
            Some(name) => {
                let mut name = name.to_owned();
                name.push("-exec");
                root.with_file_name(name)
            }
            None => std::env::temp_dir().join("runc-exec"),
        };
        Runc {
            binary: binary.into(),
            root,
            log_file: None,
            exec_dir,
        }
    }

    /// Makes runc log (JSON) to `path` instead of its stderr.
    pub fn with_log_file(mut self, path: impl Into<PathBuf>) -> Runc {
        self.log_file = Some(path.into());
        self
    }

    /// Puts [`Runc::exec`]'s pid and log files in `dir` (created 0700 when needed).
    pub fn with_exec_dir(mut self, dir: impl Into<PathBuf>) -> Runc {
        self.exec_dir = dir.into();
        self
    }

    /// The runtime binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The runtime's state directory (`--root`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether runc still keeps state for container `id` (without running runc).
    pub fn knows(&self, id: &str) -> bool {
        self.root.join(id).exists()
    }

    /// The arguments (without the program) of `runc create` for container `id` from
    /// `bundle`, writing the init's pid to `pid_file`, and for a terminal sending the pty
    /// master to `console_socket`. runc gives the container its own stdio when there is
    /// no terminal. Paths should be absolute: runc changes into the bundle.
    pub fn create_args(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
    ) -> Vec<OsString> {
        let mut args = self.global_args(self.log_file.as_deref());
        args.extend(["create".into(), "--bundle".into(), bundle.into()]);
        args.extend(["--pid-file".into(), pid_file.into()]);
        if let Some(socket) = console_socket {
            args.extend(["--console-socket".into(), socket.into()]);
        }
        args.push(id.into());
        args
    }

    /// `runc start`: runs the user process of a created container.
    ///
    /// A process that exits at once may be gone, and its state deleted by its monitor,
    /// before runc removes the start fifo it opened to release the process; runc then
    /// reports the missing fifo although the process started. That counts as started.
    pub async fn start(&self, id: &str) -> Result<(), RuncError> {
        let output = self.run("start", id, &[], None).await?;
        match self.check("start", id, &output) {
            Err(RuncError::Failed { message, .. }) if message.contains(START_FIFO_GONE) => Ok(()),
            other => other,
        }
    }

    /// `runc state`; `None` if runc does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<ContainerState>, RuncError> {
        let output = self.run("state", id, &[], None).await?;
        if !output.status.success() {
            let message = error_message(&output.stderr, output.status);
            if is_unknown_container(&message) {
                return Ok(None);
            }
            return Err(failed("state", id, message));
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|source| RuncError::Output {
                command: "state",
                id: id.into(),
                source,
            })
    }

    /// `runc kill [--all] ID SIGNAL`: sends `signal` to the init (or with `all`, to every
    /// process of the container). A container that is not running, or not known, is not
    /// an error: the caller wanted it to stop, and it has.
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), RuncError> {
        let signal = signal.to_string();
        let mut args: Vec<&str> = Vec::with_capacity(2);
        if all {
            args.push("--all");
        }
        args.push(id);
        args.push(&signal);
        let output = self.run("kill", "", &args, None).await?;
        if output.status.success() {
            return Ok(());
        }
        let message = error_message(&output.stderr, output.status);
        if is_unknown_container(&message) || is_not_running(&message) {
            return Ok(());
        }
        Err(failed("kill", id, message))
    }

    /// `runc delete [--force]`: removes the container (with `force`, killing it first).
    /// Idempotent: an unknown container is already deleted.
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuncError> {
        let args: &[&str] = if force { &["--force", id] } else { &[id] };
        let output = self.run("delete", "", args, None).await?;
        if output.status.success() {
            return Ok(());
        }
        let message = error_message(&output.stderr, output.status);
        if is_unknown_container(&message) {
            return Ok(());
        }
        Err(failed("delete", id, message))
    }

    /// `runc update --resources -`: applies `resources_json`, an OCI `LinuxResources`
    /// object, to the container's cgroups.
    pub async fn update(&self, id: &str, resources_json: &[u8]) -> Result<(), RuncError> {
        let output = self
            .run("update", "", &["--resources", "-", id], Some(resources_json))
            .await?;
        self.check("update", id, &output)
    }

    /// `runc checkpoint --leave-running`: CRIU dumps the running container's processes
    /// into `image_dir` (using `work_dir` for its logs); the container keeps running.
    pub async fn checkpoint(&self, id: &str, image_dir: &Path, work_dir: &Path) -> Result<(), RuncError> {
        let (image, work) = (image_dir.to_string_lossy(), work_dir.to_string_lossy());
        let args = ["--leave-running", "--image-path", &*image, "--work-path", &*work];
        let output = self.run("checkpoint", "", &[&args[..], &[id]].concat(), None).await?;
        self.check("checkpoint", id, &output)
    }

    /// `runc list`: every container runc knows, as (id, status, init pid).
    pub async fn list(&self) -> Result<Vec<(String, String, u32)>, RuncError> {
        #[derive(Deserialize)]
        struct Listed {
            id: String,
            status: String,
            pid: u32,
        }
        let output = self.run("list", "", &["--format", "json"], None).await?;
        self.check("list", "", &output)?;
        // An empty list is `null`.
        let listed: Option<Vec<Listed>> =
            serde_json::from_slice(&output.stdout).map_err(|source| RuncError::Output {
                command: "list",
                id: String::new(),
                source,
            })?;
        Ok(listed
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.id, c.status, c.pid))
            .collect())
    }

    /// `runc exec`: runs `cmd` in the container with the container's environment, user and
    /// working directory (from its spec), no terminal, stdin empty, and collects its output.
    ///
    /// With a `timeout`, a process still running when it passes is killed (SIGKILL) with
    /// everything it started, and [`RuncError::Timeout`] returned once they have all
    /// exited and runc, or this process when runc is gone, has reaped them: a `ps` in the
    /// container right after sees none of them. (An orphan whose parent died is the
    /// container init's to reap, as any orphan in the container; it is dead all the same.)
    /// If the process never started (no such command, stopped container), runc's error is
    /// returned as [`RuncError::Failed`]. Dropping the future also kills the process tree.
    pub async fn exec(&self, id: &str, cmd: &[String], timeout: Option<Duration>) -> Result<ExecOutput, RuncError> {
        if cmd.is_empty() {
            return Err(RuncError::EmptyCommand { id: id.into() });
        }
        let files = ExecFiles::create(&self.exec_dir)?;
        let mut args = self.global_args(Some(&files.log));
        args.extend(["exec".into(), "--pid-file".into(), files.pid.clone().into(), id.into()]);
        args.extend(cmd.iter().map(OsString::from));
        let mut child = Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| RuncError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        let mut guard = ExecGuard::new(child.id(), files.pid.clone());
        let stdout = OutputReader::spawn(child.stdout.take());
        let stderr = OutputReader::spawn(child.stderr.take());

        let status = match timeout {
            None => child.wait().await,
            Some(timeout) => match tokio::time::timeout(timeout, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    let killed = guard.kill_now();
                    // runc sees its process die, reaps it and exits; if it does not, it is
                    // killed (and what it had not reaped is handed to this process).
                    if tokio::time::timeout(RUNC_EXIT_GRACE, child.wait()).await.is_err() {
                        let _ = child.kill().await;
                    }
                    killed.reap(KILLED_EXIT_TIMEOUT).await;
                    stdout.abort();
                    stderr.abort();
                    return Err(RuncError::Timeout { id: id.into(), timeout });
                }
            },
        };
        guard.disarm();
        let status = status.map_err(|source| RuncError::Io {
            what: "waiting for runc exec".into(),
            source,
        })?;
        let deadline = tokio::time::Instant::now() + EXEC_OUTPUT_DRAIN;
        let stdout = stdout.finish(deadline).await;
        let stderr = stderr.finish(deadline).await;
        if !status.success() && !files.pid.exists() {
            // runc writes the pid file once the process runs: it never did.
            let log = std::fs::read(&files.log).unwrap_or_default();
            let mut message = error_message(&log, status);
            if log.is_empty() {
                message = error_message(&stderr, status);
            }
            return Err(failed("exec", id, message));
        }
        Ok(ExecOutput {
            stdout,
            stderr,
            exit_code: exit_code(status),
        })
    }

    /// The arguments (without the program) of `runc exec` for a streaming session of `cmd`
    /// in container `id`: the process's host pid goes to `files.pid` (so it can be killed
    /// when the session ends early), runc's log to `files.log`. With `tty`, runc detaches
    /// and sends the terminal's master to `console_socket` (runc hands a terminal over
    /// only when it detaches); otherwise the process gets runc's stdio and runc waits for
    /// it, exiting with its exit code.
    pub fn exec_args(
        &self,
        id: &str,
        cmd: &[String],
        files: &ExecFiles,
        console_socket: Option<&Path>,
    ) -> Vec<OsString> {
        let mut args = self.global_args(Some(&files.log));
        args.push("exec".into());
        if let Some(socket) = console_socket {
            args.extend([
                "--tty".into(),
                "--detach".into(),
                "--console-socket".into(),
                socket.into(),
            ]);
        }
        args.extend(["--pid-file".into(), files.pid.clone().into(), id.into()]);
        args.extend(cmd.iter().map(OsString::from));
        args
    }

    /// Fresh pid and log file names for one `runc exec` (see [`Runc::exec_args`]).
    pub fn exec_files(&self) -> Result<ExecFiles, RuncError> {
        ExecFiles::create(&self.exec_dir)
    }

    /// `--root ROOT --log-format json [--log FILE]`.
    fn global_args(&self, log_file: Option<&Path>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["--root".into(), self.root.clone().into()];
        if let Some(log_file) = log_file {
            args.extend(["--log".into(), log_file.into()]);
        }
        args.extend(["--log-format".into(), "json".into()]);
        args
    }

    /// Runs `runc <global args> <command> <args...>` (with `id` appended if not empty),
    /// feeding `stdin` if given, and collects its output.
    async fn run(
        &self,
        command: &'static str,
        id: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, RuncError> {
        let mut full = self.global_args(self.log_file.as_deref());
        full.push(command.into());
        full.extend(args.iter().map(OsString::from));
        if !id.is_empty() {
            full.push(id.into());
        }
        let spawn_error = |source| RuncError::Spawn {
            binary: self.binary.clone(),
            source,
        };
        let mut child = Command::new(&self.binary)
            .args(full)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // runc reads all of stdin before acting; a write error shows in its status.
            let _ = pipe.write_all(data).await;
            drop(pipe);
        }
        child.wait_with_output().await.map_err(spawn_error)
    }

    /// Ok if runc succeeded, its error otherwise.
    fn check(&self, command: &'static str, id: &str, output: &Output) -> Result<(), RuncError> {
        if output.status.success() {
            Ok(())
        } else {
            Err(failed(command, id, error_message(&output.stderr, output.status)))
        }
    }
}

fn failed(command: &'static str, id: &str, message: String) -> RuncError {
    RuncError::Failed {
        command,
        id: id.into(),
        message,
    }
}

/// The exit code of a process: its code, or 128 + the signal that killed it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => -1,
    }
}

/// runc's error messages from its stderr or JSON log: the `msg` of each JSON line at
/// level error (or any level if there is no error), other lines as they are; the exit
/// status if there is nothing.
pub fn error_message(output: &[u8], status: ExitStatus) -> String {
    #[derive(Deserialize)]
    struct LogLine {
        #[serde(default)]
        level: String,
        msg: String,
    }
    let text = String::from_utf8_lossy(output);
    let mut errors = Vec::new();
    let mut others = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        match serde_json::from_str::<LogLine>(line) {
            Ok(log) if log.level == "error" || log.level == "fatal" => errors.push(log.msg),
            Ok(log) => others.push(log.msg),
            Err(_) => errors.push(line.to_owned()),
        }
    }
    let mut messages = if errors.is_empty() { others } else { errors };
    messages.dedup();
    if messages.is_empty() {
        format!("exited with {status}")
    } else {
        messages.join("; ")
    }
}

/// runc's "no such container" (`container does not exist`); crun's says "does not exist"
/// or "No such file or directory" opening its state.
fn is_unknown_container(message: &str) -> bool {
    message.contains("does not exist") || message.contains("No such file or directory")
}

/// runc's "the container's process is gone" messages.
fn is_not_running(message: &str) -> bool {
    [
        "not running",
        "process already finished",
        "no such process",
        "is stopped",
    ]
    .iter()
    .any(|phrase| message.contains(phrase))
}

/// The pid and log files of one `runc exec`, removed on drop.
#[derive(Debug)]
pub struct ExecFiles {
    /// Where runc writes the exec'd process's pid.
    pub pid: PathBuf,
    /// runc's JSON log.
    pub log: PathBuf,
}

impl ExecFiles {
    fn create(dir: &Path) -> Result<ExecFiles, RuncError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| RuncError::Io {
                what: format!("creating {}", dir.display()),
                source,
            })?;
        let name = format!("exec-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        Ok(ExecFiles {
            pid: dir.join(format!("{name}.pid")),
            log: dir.join(format!("{name}.log")),
        })
    }
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid);
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Kills what an exec started unless disarmed: on a timeout, and when the exec future is
/// dropped half-way (tokio's `kill_on_drop` only kills runc, not the process in the
/// container).
#[derive(Debug)]
pub struct ExecGuard {
    runc_pid: Option<u32>,
    pid_file: PathBuf,
    armed: bool,
}

impl ExecGuard {
    /// Guards the exec whose runc process is `runc_pid` (if it still runs: not yet
    /// reaped) and whose process's pid runc writes to `pid_file`.
    pub fn new(runc_pid: Option<u32>, pid_file: PathBuf) -> ExecGuard {
        ExecGuard {
            runc_pid,
            pid_file,
            armed: true,
        }
    }

    /// Leaves the processes alone when the guard is dropped: the exec ended by itself.
    pub fn disarm(&mut self) {
        self.armed = false;
    }

    /// Stops, then kills, the exec'd process and all it started: the descendants of runc
    /// and of the exec'd process, and the members of the exec'd process's group (runc
    /// makes it a session and group leader), which catches what left the tree. runc
    /// itself is spared, so that it reaps its process and exits: the caller waits for it,
    /// or kills it. Returns the killed processes, to wait for with [`Killed::reap`].
    pub fn kill_now(&mut self) -> Killed {
        self.armed = false;
        let exec_pid = std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        let roots: Vec<u32> = self.runc_pid.into_iter().chain(exec_pid).collect();
        Killed {
            processes: kill_tree(&roots, self.runc_pid),
            runc: self.runc_pid.and_then(|pid| pidfd(pid).ok()),
        }
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        if self.armed {
            let killed = self.kill_now();
            // A drop cannot wait: the killed processes are reaped in the background.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(killed.reap(KILLED_EXIT_TIMEOUT));
            }
        }
    }
}

/// The processes [`ExecGuard::kill_now`] killed, each held by a pidfd (which names its
/// process for good, whatever becomes of the pid), and runc's.
#[derive(Debug)]
pub struct Killed {
    processes: BTreeMap<u32, OwnedFd>,
    runc: Option<OwnedFd>,
}

impl Killed {
    /// Waits, up to `timeout`, until runc and every killed process have exited, then reaps
    /// those that became this process's children (when runc dies first, its process is
    /// handed to this process, a child subreaper). Those of other parents are reaped by
    /// them: runc, or the container's init. Processes still there at the end are logged.
    ///
    /// The waiting is a `poll` of the pidfds (one turns readable when its process has
    /// exited) in tokio's blocking pool: registering them with tokio's reactor would take
    /// `unsafe`, which this crate denies.
    pub async fn reap(self, timeout: Duration) {
        // The blocking task only ends with an error if the runtime shuts down.
        let _ = tokio::task::spawn_blocking(move || self.reap_blocking(timeout)).await;
    }

    fn reap_blocking(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        // runc exits after the processes it reaps: once it has, nothing more is handed over.
        let mut running: Vec<&OwnedFd> = self.processes.values().chain(&self.runc).collect();
        while !running.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let Ok(left) = Timespec::try_from(left) else {
                break;
            };
            let mut fds: Vec<PollFd<'_>> = running.iter().map(|fd| PollFd::new(*fd, PollFlags::IN)).collect();
            match rustix::event::poll(&mut fds, Some(&left)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(err) => {
                    tracing::warn!(%err, "waiting for killed exec processes");
                    break;
                }
            }
            let exited: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
            running = running
                .into_iter()
                .zip(exited)
                .filter_map(|(fd, exited)| (!exited).then_some(fd))
                .collect();
        }
        if !running.is_empty() {
            let pids: Vec<&u32> = self.processes.keys().collect();
            tracing::warn!(?pids, "killed exec processes have not all exited within {timeout:?}");
        }
        for fd in self.processes.values() {
            // ECHILD: another parent reaps it (or has).
            match rustix::process::waitid(WaitId::PidFd(fd.as_fd()), WaitIdOptions::EXITED | WaitIdOptions::NOHANG) {
                Ok(_) | Err(Errno::CHILD) => {}
                Err(err) => tracing::debug!(%err, "reaping a killed exec process"),
            }
        }
    }
}

/// A pidfd of process `pid`.
fn pidfd(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {pid}")))?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Stops every process of the trees under `roots` but `spare` (repeating until no new
/// process appears, so none can fork away), then kills them all with SIGKILL. Signals go
/// through pidfds, which are returned: a pid that is reused meanwhile is not touched.
fn kill_tree(roots: &[u32], spare: Option<u32>) -> BTreeMap<u32, OwnedFd> {
    let mut stopped = BTreeMap::new();
    for _ in 0..MAX_STOP_ROUNDS {
        let mut tree = process_tree(&process_table(), roots);
        if let Some(spare) = spare {
            tree.remove(&spare);
        }
        let new: Vec<u32> = tree.into_iter().filter(|pid| !stopped.contains_key(pid)).collect();
        if new.is_empty() {
            break;
        }
        for pid in new {
            // A process gone meanwhile has no pidfd and needs no signal.
            if let Ok(fd) = pidfd(pid) {
                let _ = rustix::process::pidfd_send_signal(&fd, Signal::STOP);
                stopped.insert(pid, fd);
            }
        }
    }
    for fd in stopped.values() {
        let _ = rustix::process::pidfd_send_signal(fd, Signal::KILL);
    }
    stopped
}

/// A process's parent and process group, from `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The parent's pid.
    pub(crate) ppid: u32,
    /// The process group's id (its leader's pid).
    pub(crate) pgrp: u32,
}

/// Every process's [`ProcStat`], from `/proc/*/stat`.
fn process_table() -> HashMap<u32, ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parse_stat(&stat)?))
        })
        .collect()
}

/// The parent pid and process group in a `/proc/<pid>/stat` line: the second and third
/// fields after the command name, which is in parentheses and may itself hold spaces and
/// parentheses.
pub(crate) fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(1);
    Some(ProcStat {
        ppid: fields.next()?.parse().ok()?,
        pgrp: fields.next()?.parse().ok()?,
    })
}

/// `roots`, the members of the process groups they lead, and all their descendants, in
/// a process table.
fn process_tree(table: &HashMap<u32, ProcStat>, roots: &[u32]) -> BTreeSet<u32> {
    let mut tree: BTreeSet<u32> = roots.iter().copied().collect();
    tree.extend(
        table
            .iter()
            .filter(|(_, stat)| roots.contains(&stat.pgrp))
            .map(|(&pid, _)| pid),
    );
    loop {
        let before = tree.len();
        for (&child, stat) in table {
            if tree.contains(&stat.ppid) {
                tree.insert(child);
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// A stream of an exec'd process read in the background into a shared buffer, so that
/// what was read is kept even if reading is given up on.
struct OutputReader {
    buffer: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl OutputReader {
    fn spawn(stream: Option<impl AsyncRead + Unpin + Send + 'static>) -> OutputReader {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let task = stream.map(|mut stream| {
            let buffer = Arc::clone(&buffer);
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => {
                            let mut buffer = buffer.lock().unwrap_or_else(PoisonError::into_inner);
                            let room = MAX_EXEC_OUTPUT.saturating_sub(buffer.len());
                            buffer.extend_from_slice(&chunk[..read.min(room)]);
                        }
                    }
                }
            })
        });
        OutputReader { buffer, task }
    }

    /// Waits for end of file until `deadline`, then returns what was read.
    async fn finish(mut self, deadline: tokio::time::Instant) -> Vec<u8> {
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn abort(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl Drop for OutputReader {
    fn drop(&mut self) {
        self.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn create_args_put_global_options_first() {
        let runc = Runc::new("/usr/sbin/runc", "/run/rc/runc").with_log_file("/run/rc/m/c1/runc.log");
        let args = runc.create_args(
            "c1",
            Path::new("/b/c1"),
            Path::new("/run/rc/m/c1/container.pid"),
            Some(Path::new("/run/rc/m/c1/console.sock")),
        );
        let args: Vec<&str> = args.iter().map(|a| a.to_str().expect("utf-8")).collect();
        assert_eq!(
            args,
            [
                "--root",
                "/run/rc/runc",
                "--log",
                "/run/rc/m/c1/runc.log",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/b/c1",
                "--pid-file",
                "/run/rc/m/c1/container.pid",
                "--console-socket",
                "/run/rc/m/c1/console.sock",
                "c1"
            ]
        );
        let plain = Runc::new("runc", "/r").create_args("c2", Path::new("/b"), Path::new("/p"), None);
        assert_eq!(plain.first().and_then(|a| a.to_str()), Some("--root"));
        assert_eq!(plain.last().and_then(|a| a.to_str()), Some("c2"));
        assert!(!plain.iter().any(|a| a == "--console-socket" || a == "--log"));
    }

    #[test]
    fn streaming_exec_detaches_only_with_a_terminal() {
        let runc = Runc::new("runc", "/r");
        let files = ExecFiles {
            pid: "/x/e.pid".into(),
            log: "/x/e.log".into(),
        };
        let cmd = ["sh".to_owned(), "-c".to_owned(), "true".to_owned()];
        let plain = runc.exec_args("c1", &cmd, &files, None);
        let plain: Vec<&str> = plain.iter().filter_map(|a| a.to_str()).collect();
        assert_eq!(
            plain,
            [
                "--root",
                "/r",
                "--log",
                "/x/e.log",
                "--log-format",
                "json",
                "exec",
                "--pid-file",
                "/x/e.pid",
                "c1",
                "sh",
                "-c",
                "true"
            ]
        );
        let tty = runc.exec_args("c1", &cmd, &files, Some(Path::new("/x/e.sock")));
        let tty: Vec<&str> = tty.iter().filter_map(|a| a.to_str()).collect();
        assert_eq!(
            tty[6..12],
            [
                "exec",
                "--tty",
                "--detach",
                "--console-socket",
                "/x/e.sock",
                "--pid-file"
            ]
        );
    }

    #[test]
    fn exec_files_go_next_to_the_root() {
        assert_eq!(
            Runc::new("runc", "/run/rc/runc").exec_dir,
            Path::new("/run/rc/runc-exec")
        );
        assert_eq!(Runc::new("runc", "/").exec_dir, std::env::temp_dir().join("runc-exec"));
    }

    #[test]
    fn error_messages_come_from_runc_json_logs() {
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "json error line",
                br#"{"level":"error","msg":"container does not exist","time":"2024-01-01T00:00:00Z"}"#,
                "container does not exist",
            ),
            (
                "warnings give way to errors, the plain fatal line is deduplicated",
                b"{\"level\":\"warning\",\"msg\":\"cgroup v1 is deprecated\"}\n{\"level\":\"error\",\"msg\":\"exec failed: no such file\"}\nexec failed: no such file\n",
                "exec failed: no such file",
            ),
            ("plain text", b"container not running\n", "container not running"),
            ("only a warning", br#"{"level":"warning","msg":"odd"}"#, "odd"),
            ("nothing", b"", "exited with exit status: 1"),
        ];
        for (desc, output, want) in cases {
            assert_eq!(error_message(output, status(1)), *want, "{desc}");
        }
    }

    #[test]
    fn runc_messages_are_classified() {
        assert!(is_unknown_container("container \"c1\" does not exist"));
        assert!(is_unknown_container("container does not exist"));
        assert!(!is_unknown_container("container not running"));
        assert!(is_not_running("container not running"));
        assert!(is_not_running("os: process already finished"));
        assert!(!is_not_running("permission denied"));
    }

    #[test]
    fn exit_codes_of_signalled_processes_are_128_plus_the_signal() {
        assert_eq!(exit_code(status(3)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    #[test]
    fn parents_and_groups_are_read_past_odd_command_names() {
        let stat = |ppid, pgrp| Some(ProcStat { ppid, pgrp });
        assert_eq!(parse_stat("42 (sleep) S 7 40 42 0 -1"), stat(7, 40));
        assert_eq!(parse_stat("43 (a) b) (c) R 9 43 43 0 -1"), stat(9, 43));
        assert_eq!(parse_stat("44 (short) S 1"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn trees_include_every_descendant_and_the_groups_their_roots_lead() {
        // 1 ← 10 ← 11 ← 12, 10 ← 13; 20 is unrelated; 30 (a child of 1) is in 10's group
        // and 31 is its child.
        let table: HashMap<u32, ProcStat> = [
            (10, 1, 10),
            (11, 10, 10),
            (12, 11, 12),
            (13, 10, 10),
            (20, 1, 20),
            (30, 1, 10),
            (31, 30, 31),
        ]
        .into_iter()
        .map(|(pid, ppid, pgrp)| (pid, ProcStat { ppid, pgrp }))
        .collect();
        assert_eq!(process_tree(&table, &[10]), BTreeSet::from([10, 11, 12, 13, 30, 31]));
        assert_eq!(process_tree(&table, &[12, 20]), BTreeSet::from([12, 20]));
        assert_eq!(process_tree(&table, &[]), BTreeSet::new());
    }
}
