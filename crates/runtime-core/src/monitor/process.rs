//! The monitor process itself (`runtime-core-monitor`): std and rustix only, one `poll`
//! loop and a reaper thread, so that a monitor per container costs well under a megabyte.
//!
//! What it does, in order (see the module documentation of [`super`] for the protocol):
//!
//! 1. leaves the daemon's session (`setsid`) and becomes a child subreaper, so the
//!    container's init, once `runc create` has exited, is its child;
//! 2. moves into its state directory, writes [`MONITOR_PID_FILE`], opens the CRI log,
//!    binds [`CONTROL_SOCKET`];
//! 3. makes the container's stdio: pipes for stdout and stderr (and stdin if asked), or
//!    for a terminal a console socket that runc sends the pty master to;
//! 4. runs `runc create`, and reports `created <pid>` or `error <text>` on its stdout,
//!    which is a pipe to the daemon, then points its stdout at `/dev/null`;
//! 5. loops: container output becomes CRI log records, control requests are answered;
//!    meanwhile a thread blocked in `waitpid` reaps every child as it exits;
//! 6. when the container's init exits: drains what is left in the pipes, writes
//!    [`EXIT_FILE`], and exits.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::WaitOptions;

use super::attach::{self, AttachServer, Watch};
use super::console::receive_console;
use super::cri_log::{LineSplitter, Stream};
use super::exit::{ExitRecord, write_atomically};
use super::oom::OomCounter;
use super::{
    ATTACH_SOCKET, CONSOLE_SOCKET, CONTAINER_PID_FILE, CONTROL_SOCKET, EXIT_FILE, MONITOR_PID_FILE, MonitorConfig,
    REPORT_CREATED, REPORT_ERROR, REQUEST_REOPEN, RESPONSE_ERROR, RESPONSE_OK, RUNC_LOG,
};
use crate::oci::runc::Runc;

/// How much is read from a container stream at a time.
const READ_CHUNK: usize = 32 * 1024;
/// The reaper thread's stack: it only waits and writes a byte.
const REAPER_STACK: usize = 64 * 1024;
/// How long a control client may take to send its request or read the answer.
const CONTROL_IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest control request line.
const MAX_REQUEST: usize = 256;
/// After the init exited: at most this much is still read from each stream. A process
/// outside the container's pid namespace that holds the pipe and keeps writing must not
/// keep the monitor from recording the exit.
const MAX_DRAIN: usize = 4 * 1024 * 1024;
/// The longest path a unix socket address holds (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// File mode of the CRI log (containerd's).
const LOG_MODE: u32 = 0o640;

/// Runs the monitor with the process's command line; the whole `main` of
/// `runtime-core-monitor`.
pub fn main() -> ExitCode {
    if std::env::args_os()
        .nth(1)
        .is_some_and(|arg| arg == super::pause::PAUSE_ARG)
    {
        super::pause::run();
    }
    let config = match MonitorConfig::from_args(std::env::args_os().skip(1)) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("runtime-core-monitor: {err}");
            report(&format!("{REPORT_ERROR} {err}\n"));
            return ExitCode::from(2);
        }
    };
    let state_dir = std::path::absolute(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone());
    let mut monitor = match Monitor::create(config) {
        Ok(monitor) => monitor,
        Err(err) => {
            report(&format!("{REPORT_ERROR} {err}\n"));
            for socket in [CONTROL_SOCKET, CONSOLE_SOCKET, ATTACH_SOCKET] {
                let _ = fs::remove_file(state_dir.join(socket));
            }
            return ExitCode::FAILURE;
        }
    };
    report(&format!("{REPORT_CREATED} {}\n", monitor.init_pid));
    // The daemon reads the report until end of file: close our end of its pipe.
    if let Err(err) = File::open("/dev/null").and_then(|null| Ok(rustix::stdio::dup2_stdout(null)?)) {
        eprintln!("runtime-core-monitor: cannot detach stdout: {err}");
    }
    monitor.run();
    ExitCode::SUCCESS
}

/// Writes the creation report to stdout (the daemon's pipe). A daemon that died in the
/// meantime is no reason to stop: errors are ignored (SIGPIPE is ignored by Rust).
fn report(line: &str) {
    let mut stdout = io::stdout().lock();
    let _ = stdout.write_all(line.as_bytes());
    let _ = stdout.flush();
}

/// One container output stream being copied into the log.
struct Output {
    fd: OwnedFd,
    splitter: LineSplitter,
}

/// A monitor whose container has been created.
struct Monitor {
    config: MonitorConfig,
    init_pid: u32,
    /// Readable once the reaper thread has seen the init exit.
    reaped: OwnedFd,
    /// What the reaper thread saw.
    init_exit: Arc<OnceLock<InitExit>>,
    /// stdout and stderr (or the terminal, as stdout); `None` once at end of file.
    outputs: [Option<Output>; 2],
    log: Option<File>,
    /// Set after a failed log write, so a full disk is reported once, not per line.
    log_failing: bool,
    control: UnixListener,
    /// Attach clients, and the container's stdin (or terminal master), kept open so the
    /// container does not see end of file.
    attach: AttachServer,
    oom: Option<OomCounter>,
    /// How the init ended, once reaped.
    exit: Option<InitExit>,
    buf: Vec<u8>,
    records: Vec<u8>,
}

/// Why creating the container failed; the text goes to the daemon.
#[derive(Debug)]
struct CreateError(String);

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Adds what was being done to an I/O error.
fn context<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> CreateError {
    move |err| CreateError(format!("{what}: {err}"))
}

impl Monitor {
    /// Steps 1 to 4 of the module documentation, up to a created container.
    fn create(mut config: MonitorConfig) -> Result<Monitor, CreateError> {
        // Already a session leader only if started by hand that way: not an error.
        let _ = rustix::process::setsid();
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .map_err(context("becoming a child subreaper"))?;

        // Paths are resolved before we leave the daemon's working directory; a bare
        // runtime name stays a name, looked up in PATH.
        let bare_runc = config.runc_binary.components().count() == 1 && config.runc_binary.is_relative();
        let mut paths = vec![&mut config.bundle, &mut config.runc_root, &mut config.state_dir];
        if !bare_runc {
            paths.push(&mut config.runc_binary);
        }
        for path in paths {
            *path = std::path::absolute(&*path).map_err(context(format_args!("resolving {}", path.display())))?;
        }
        if let Some(log_path) = &mut config.log_path {
            *log_path = std::path::absolute(&*log_path).map_err(context("resolving the log path"))?;
        }
        fs::create_dir_all(&config.state_dir)
            .map_err(context(format_args!("creating {}", config.state_dir.display())))?;
        std::env::set_current_dir(&config.state_dir)
            .map_err(context(format_args!("entering {}", config.state_dir.display())))?;
        for stale in [
            EXIT_FILE,
            CONTROL_SOCKET,
            CONSOLE_SOCKET,
            ATTACH_SOCKET,
            CONTAINER_PID_FILE,
        ] {
            match fs::remove_file(stale) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => {
                    return Err(CreateError(format!("removing stale {stale}: {err}")));
                }
                _ => {}
            }
        }
        write_atomically(
            Path::new(MONITOR_PID_FILE),
            format!("{}\n", std::process::id()).as_bytes(),
        )
        .map_err(context(format_args!("writing {MONITOR_PID_FILE}")))?;

        let log = match &config.log_path {
            Some(path) => Some(open_log(path).map_err(context(format_args!("opening log {}", path.display())))?),
            None => None,
        };
        // Relative to the state directory, our working directory: short whatever the
        // state directory's length.
        let control = UnixListener::bind(CONTROL_SOCKET).map_err(context("binding the control socket"))?;
        control
            .set_nonblocking(true)
            .map_err(context("configuring the control socket"))?;
        let attach = UnixListener::bind(ATTACH_SOCKET).map_err(context("binding the attach socket"))?;

        let stdio = ContainerStdio::new(&config)?;
        let pid_file = config.state_dir.join(CONTAINER_PID_FILE);
        let console_socket = stdio
            .console
            .as_ref()
            .map(|_| console_socket_address(&config.state_dir));
        let runc = Runc::new(&config.runc_binary, &config.runc_root).with_log_file(config.state_dir.join(RUNC_LOG));
        let args = runc.create_args(&config.id, &config.bundle, &pid_file, console_socket.as_deref());
        let (stdin, stdout, stderr, console, readers) = stdio.into_parts();
        // The command owns the container's ends of the pipes: it must be gone once runc
        // has them, or we would never see end of file.
        let status = Command::new(&config.runc_binary)
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(stderr)
            .status()
            .map_err(context(format_args!("running {}", config.runc_binary.display())))?;
        if !status.success() {
            return Err(CreateError(create_failure_text(&readers, &config.state_dir, status)));
        }

        let init_pid = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
            .filter(|&pid| pid > 0)
            .ok_or_else(|| CreateError(format!("runc create left no valid {CONTAINER_PID_FILE}")))?;
        let outputs = match console {
            Some(listener) => {
                let master = receive_console(&listener).map_err(context("receiving the terminal from runc"))?;
                let _ = fs::remove_file(CONSOLE_SOCKET);
                let reader = master.try_clone().map_err(context("duplicating the terminal"))?;
                rustix::io::ioctl_fionbio(&reader, true).map_err(context("configuring the terminal"))?;
                let output = Output {
                    fd: reader,
                    splitter: LineSplitter::new(Stream::Stdout, config.log_max_line),
                };
                let stdin = match config.stdin {
                    true => Some(master.try_clone().map_err(context("duplicating the terminal"))?),
                    false => None,
                };
                let attach = AttachServer::new(attach, stdin, Some(master)).map_err(context("serving attach"))?;
                return Monitor::new(config, init_pid, [Some(output), None], log, control, attach);
            }
            None => readers.outputs,
        };
        let attach = AttachServer::new(attach, readers.stdin_writer, None).map_err(context("serving attach"))?;
        Monitor::new(config, init_pid, outputs, log, control, attach)
    }

    fn new(
        config: MonitorConfig,
        init_pid: u32,
        outputs: [Option<Output>; 2],
        log: Option<File>,
        control: UnixListener,
        attach: AttachServer,
    ) -> Result<Monitor, CreateError> {
        let (reaped, init_exit) = spawn_reaper(init_pid).map_err(context("starting the reaper thread"))?;
        Ok(Monitor {
            oom: OomCounter::open(init_pid),
            config,
            init_pid,
            reaped,
            init_exit,
            outputs,
            log,
            log_failing: false,
            control,
            attach,
            exit: None,
            buf: Vec::new(),
            records: Vec::new(),
        })
    }

    /// Steps 5 and 6: copies output and answers requests until the init has exited,
    /// then records the exit.
    fn run(&mut self) {
        self.buf = vec![0; READ_CHUNK];
        while self.exit.is_none() {
            if self.wait_for_events() {
                self.exit = self.init_exit.get().copied();
            }
        }
        // Everything the container's processes wrote is in the pipes by now (a pid
        // namespace's init exits only after the kernel killed the rest): read what is
        // there without waiting for end of file, which a process outside the container
        // holding the pipe could delay forever.
        for index in 0..self.outputs.len() {
            let mut drained = 0;
            while drained < MAX_DRAIN && self.outputs[index].is_some() {
                match self.read_output(index) {
                    Some(0) | None => break,
                    Some(read) => drained += read,
                }
            }
        }
        let now = SystemTime::now();
        for output in self.outputs.iter_mut().flatten() {
            output.splitter.finish(now, &mut self.records);
        }
        self.write_records();

        let InitExit { exit_status, signal } = self.exit.unwrap_or_default();
        let finished_at_nanos = now
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|since| i64::try_from(since.as_nanos()).ok())
            .unwrap_or(0);
        let record = ExitRecord {
            oom_killed: self.oom.as_ref().is_some_and(OomCounter::fired),
            ..ExitRecord::from_wait_status(exit_status, signal, finished_at_nanos)
        };
        // As containerd deletes the task before it reports the exit: runc's state and the
        // container's cgroup go first (after the OOM check above read the cgroup), so a
        // RemoveContainer that follows the exit needs no runc call.
        let _ = Command::new(&self.config.runc_binary)
            .arg("--root")
            .arg(&self.config.runc_root)
            .arg("delete")
            .arg(&self.config.id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(err) = write_atomically(Path::new(EXIT_FILE), record.to_json().as_bytes()) {
            eprintln!("runtime-core-monitor: {}: writing {EXIT_FILE}: {err}", self.config.id);
        }
        let _ = fs::remove_file(ATTACH_SOCKET);
        self.attach.close();
        let _ = fs::remove_file(CONTROL_SOCKET);
    }

    /// One `poll` round: reads the streams that have data, answers a control request,
    /// serves attach clients. Returns true if the reaper thread says the init has exited.
    fn wait_for_events(&mut self) -> bool {
        /// What each polled descriptor is.
        enum Slot {
            Output(usize),
            Control,
            Init,
            Attach(Watch),
        }
        let mut ready = Vec::new();
        {
            let mut fds = Vec::with_capacity(8);
            let mut slots = Vec::with_capacity(8);
            for (index, output) in self.outputs.iter().enumerate() {
                if let Some(output) = output {
                    fds.push(PollFd::new(&output.fd, PollFlags::IN));
                    slots.push(Slot::Output(index));
                }
            }
            fds.push(PollFd::new(&self.control, PollFlags::IN));
            slots.push(Slot::Control);
            fds.push(PollFd::new(&self.reaped, PollFlags::IN));
            slots.push(Slot::Init);
            for (fd, flags, watch) in self.attach.watches() {
                fds.push(PollFd::from_borrowed_fd(fd, flags));
                slots.push(Slot::Attach(watch));
            }
            // No timeout: every event has a descriptor, children included (the reaper).
            match poll(&mut fds, None) {
                Ok(_) => {
                    for (fd, slot) in fds.iter().zip(slots) {
                        if !fd.revents().is_empty() {
                            ready.push((slot, fd.revents()));
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(err) => {
                    eprintln!("runtime-core-monitor: {}: poll: {err}", self.config.id);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let mut init_exited = false;
        let mut attach_events = Vec::new();
        for (slot, events) in ready {
            match slot {
                Slot::Output(index) => {
                    self.read_output(index);
                }
                Slot::Control => self.accept_control(),
                Slot::Init => init_exited = true,
                Slot::Attach(watch) => attach_events.push((watch, events)),
            }
        }
        if !attach_events.is_empty() {
            self.attach.handle(attach_events);
        }
        init_exited
    }

    /// Reads once from stream `index` into the log. Returns the bytes read (0 at end of
    /// file, which closes the stream), or `None` if nothing was there.
    fn read_output(&mut self, index: usize) -> Option<usize> {
        let output = self.outputs[index].as_mut()?;
        let read = loop {
            match rustix::io::read(&output.fd, &mut self.buf[..]) {
                Ok(read) => break Ok(read),
                Err(Errno::INTR) => continue,
                Err(err) => break Err(err),
            }
        };
        match read {
            Ok(0) | Err(Errno::IO) => {
                // End of file; for a terminal, EIO once no process holds its other side.
                output.splitter.finish(SystemTime::now(), &mut self.records);
                self.outputs[index] = None;
                self.write_records();
                Some(0)
            }
            Ok(read) => {
                output
                    .splitter
                    .feed(&self.buf[..read], SystemTime::now(), &mut self.records);
                let channel = if index == 0 { attach::STDOUT } else { attach::STDERR };
                self.attach.broadcast(channel, &self.buf[..read]);
                self.write_records();
                Some(read)
            }
            Err(Errno::AGAIN) => None,
            Err(err) => {
                eprintln!(
                    "runtime-core-monitor: {}: reading container output: {err}",
                    self.config.id
                );
                self.outputs[index] = None;
                None
            }
        }
    }

    /// Appends the records made so far to the log (dropped if there is none).
    fn write_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        if let Some(log) = &mut self.log {
            match log.write_all(&self.records) {
                Ok(()) => self.log_failing = false,
                Err(err) => {
                    if !self.log_failing {
                        eprintln!("runtime-core-monitor: {}: writing the log: {err}", self.config.id);
                    }
                    self.log_failing = true;
                }
            }
        }
        self.records.clear();
        if self.records.capacity() > 4 * READ_CHUNK {
            self.records = Vec::new();
        }
    }

    /// Answers one control request, if a client is waiting.
    fn accept_control(&mut self) {
        let stream = match self.control.accept() {
            Ok((stream, _)) => stream,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) => {
                eprintln!(
                    "runtime-core-monitor: {}: accepting a control client: {err}",
                    self.config.id
                );
                return;
            }
        };
        let answer = match read_request(&stream) {
            Ok(request) if request == REQUEST_REOPEN => match self.reopen_log() {
                Ok(()) => format!("{RESPONSE_OK}\n"),
                Err(err) => format!("{RESPONSE_ERROR} {err}\n"),
            },
            Ok(request) => format!("{RESPONSE_ERROR} unknown request {request:?}\n"),
            Err(err) => {
                eprintln!(
                    "runtime-core-monitor: {}: reading a control request: {err}",
                    self.config.id
                );
                return;
            }
        };
        let _ = (&stream).write_all(answer.as_bytes());
    }

    /// Opens the log file again (after the kubelet renamed it for rotation); the old file
    /// is kept if the new one cannot be opened.
    fn reopen_log(&mut self) -> io::Result<()> {
        let Some(path) = &self.config.log_path else {
            return Ok(());
        };
        self.log = Some(open_log(path)?);
        self.log_failing = false;
        Ok(())
    }
}

/// Reads one request line from a control client.
fn read_request(stream: &UnixStream) -> io::Result<String> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CONTROL_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_IO_TIMEOUT))?;
    let mut request = Vec::with_capacity(32);
    let mut byte = [0u8; 64];
    let mut reader = stream;
    while !request.contains(&b'\n') && request.len() < MAX_REQUEST {
        match reader.read(&mut byte)? {
            0 => break,
            read => request.extend_from_slice(&byte[..read]),
        }
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(line).trim().to_owned())
}

/// Opens (creating) the CRI log for appending.
fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(LOG_MODE).open(path)
}

/// The address runc is given for the console socket: the socket's absolute path, or if
/// that is too long for a socket address, the same file through our working directory
/// (`/proc/<pid>/cwd/...`; runc changes into the bundle, so a relative path would not do).
fn console_socket_address(state_dir: &Path) -> PathBuf {
    let direct = state_dir.join(CONSOLE_SOCKET);
    if direct.as_os_str().len() <= MAX_SOCKET_PATH {
        direct
    } else {
        PathBuf::from(format!("/proc/{}/cwd", std::process::id())).join(CONSOLE_SOCKET)
    }
}

/// The container's standard streams before `runc create` takes its ends.
struct ContainerStdio {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    /// For a terminal: the socket runc sends the pty master to.
    console: Option<UnixListener>,
    readers: Readers,
}

/// Our ends of the container's streams.
struct Readers {
    /// stdout and stderr; for a terminal, stderr carries only runc's own messages.
    outputs: [Option<Output>; 2],
    stdin_writer: Option<OwnedFd>,
}

impl ContainerStdio {
    fn new(config: &MonitorConfig) -> Result<ContainerStdio, CreateError> {
        let (err_reader, err_writer) = output_pipe()?;
        let stderr_output = Output {
            fd: err_reader,
            splitter: LineSplitter::new(Stream::Stderr, config.log_max_line),
        };
        if config.tty {
            // The container gets the pty; runc's own stdio only carries its errors.
            let console = UnixListener::bind(CONSOLE_SOCKET).map_err(context("binding the console socket"))?;
            return Ok(ContainerStdio {
                stdin: Stdio::null(),
                stdout: Stdio::null(),
                stderr: err_writer.into(),
                console: Some(console),
                readers: Readers {
                    outputs: [None, Some(stderr_output)],
                    stdin_writer: None,
                },
            });
        }
        let (out_reader, out_writer) = output_pipe()?;
        let (stdin, stdin_writer) = if config.stdin {
            let (reader, writer) = pipe_with(PipeFlags::CLOEXEC).map_err(context("creating the stdin pipe"))?;
            (Stdio::from(reader), Some(writer))
        } else {
            (Stdio::null(), None)
        };
        Ok(ContainerStdio {
            stdin,
            stdout: out_writer.into(),
            stderr: err_writer.into(),
            console: None,
            readers: Readers {
                outputs: [
                    Some(Output {
                        fd: out_reader,
                        splitter: LineSplitter::new(Stream::Stdout, config.log_max_line),
                    }),
                    Some(stderr_output),
                ],
                stdin_writer,
            },
        })
    }

    fn into_parts(self) -> (Stdio, Stdio, Stdio, Option<UnixListener>, Readers) {
        (self.stdin, self.stdout, self.stderr, self.console, self.readers)
    }
}

/// A pipe for a container output stream: our end non-blocking, both close-on-exec
/// (the container's end is dup'ed onto its stdio by `Command`).
fn output_pipe() -> Result<(OwnedFd, OwnedFd), CreateError> {
    let (reader, writer) = pipe_with(PipeFlags::CLOEXEC).map_err(context("creating an output pipe"))?;
    rustix::io::ioctl_fionbio(&reader, true).map_err(context("configuring an output pipe"))?;
    Ok((reader, writer))
}

/// What runc said when `runc create` failed: its error is on the container's stderr
/// pipe (runc's stderr), the JSON log has the details.
fn create_failure_text(readers: &Readers, state_dir: &Path, status: std::process::ExitStatus) -> String {
    let mut text = Vec::new();
    if let Some(stderr) = &readers.outputs[1] {
        let mut buf = [0u8; 4096];
        while text.len() < 64 * 1024 {
            match rustix::io::read(&stderr.fd, &mut buf[..]) {
                Ok(0) => break,
                Ok(read) => text.extend_from_slice(&buf[..read]),
                Err(Errno::INTR) => continue,
                Err(_) => break,
            }
        }
    }
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    if !text.is_empty() {
        return text;
    }
    let log = fs::read(state_dir.join(RUNC_LOG)).unwrap_or_default();
    let log = String::from_utf8_lossy(&log);
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if tail.is_empty() {
        format!("runc create failed ({status})")
    } else {
        format!("runc create failed ({status}): {}", tail.join("; "))
    }
}

/// How the container's init ended (`waitpid`): its exit status, or the signal that
/// killed it; neither if it could not be known.
#[derive(Debug, Clone, Copy, Default)]
struct InitExit {
    exit_status: Option<i32>,
    signal: Option<i32>,
}

/// Starts the reaper: a thread blocked in `waitpid(-1)` that reaps every child the
/// moment it exits (the container's orphans come to us: we are a subreaper), so no zombie
/// lingers and the loop needs no timer or signal handler. When the container's init is
/// among them, it records how the init ended and writes a byte to the returned pipe.
///
/// Started only once `runc create` has been waited for: it would steal that status.
fn spawn_reaper(init_pid: u32) -> io::Result<(OwnedFd, Arc<OnceLock<InitExit>>)> {
    let (wake_reader, wake_writer) = pipe_with(PipeFlags::CLOEXEC)?;
    let init_exit = Arc::new(OnceLock::new());
    let shared = Arc::clone(&init_exit);
    std::thread::Builder::new()
        .name("reaper".into())
        .stack_size(REAPER_STACK)
        .spawn(move || {
            let _ = shared.set(reap_until_exit_of(init_pid));
            let _ = rustix::io::write(&wake_writer, b"x");
        })?;
    Ok((wake_reader, init_exit))
}

/// Reaps children until `init_pid` is among them, and returns how it ended.
fn reap_until_exit_of(init_pid: u32) -> InitExit {
    loop {
        match rustix::process::wait(WaitOptions::empty()) {
            Ok(Some((pid, status))) if u32::try_from(pid.as_raw_pid()).ok() == Some(init_pid) => {
                return InitExit {
                    exit_status: status.exit_status(),
                    signal: status.terminating_signal(),
                };
            }
            // An orphan of the container: reaped, that is all it needed.
            Ok(_) | Err(Errno::INTR) => {}
            // ECHILD: the init is not our child (it should be), its status is lost.
            Err(err) => {
                eprintln!("runtime-core-monitor: waiting for the container's init {init_pid}: {err}");
                return InitExit::default();
            }
        }
    }
}
