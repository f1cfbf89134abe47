//! Child daemons that die with the test process, and finding and stopping processes.
//!
//! # Why daemons are spawned from one dedicated thread
//!
//! A daemon is started as `setpriv --pdeathsig KILL -- PROGRAM ARGS...`: the kernel sends
//! it SIGKILL when its parent dies, so a test process killed by Ctrl-C or a timeout does
//! not leave a registry or a containerd behind (the workspace denies `unsafe_code`, so no
//! `pre_exec` + `prctl` here). The catch (prctl(2)): the "parent" is the *thread* that
//! forked the child, not the process. Tests run on worker threads that end before the
//! process does, and a daemon forked by one of them (say, by `Containerd::restart`) would
//! be killed as soon as that test's thread finished. [`spawn_daemon`] therefore forks
//! every daemon from one thread that lives as long as the process.

use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Proxy variables removed from every daemon's environment: test traffic stays on this
/// machine even when the developer's shell sets a proxy.
const PROXY_VARIABLES: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
];

/// How often process and readiness checks poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A command that runs `program` under `setpriv --pdeathsig KILL`, without proxy
/// variables in its environment. Add arguments, environment and stdio, then start it
/// with [`spawn_daemon`].
pub fn daemon_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    for variable in PROXY_VARIABLES {
        command.env_remove(variable);
    }
    command
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the harness's long-lived spawner thread (see the module
/// documentation for why), and returns the child.
///
/// Since `setpriv` execs the program, the child's pid is the daemon's pid.
pub fn spawn_daemon(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Result<mpsc::Sender<SpawnJob>, String>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, receiver) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-harness-spawner".into())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            })
            .map(|_| jobs)
            .map_err(|err| format!("cannot start the daemon spawner thread: {err}"))
    });
    let jobs = spawner.as_ref().map_err(|err| io::Error::other(err.clone()))?;
    let (reply, result) = mpsc::channel();
    jobs.send((command, reply))
        .map_err(|_| io::Error::other("the daemon spawner thread is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the daemon spawner thread is gone"))?
}

/// Sends `signal` to a process; a process that is already gone is not an error.
pub fn signal(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::other(format!("pid {pid} out of range")))?;
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(errno) => Err(io::Error::from(errno)),
    }
}

/// Stops a child: SIGTERM, then SIGKILL if it has not exited after `grace`. Reaps it and
/// returns its exit status. Stopping a child that already exited just reaps it.
pub fn stop_child(child: &mut Child, grace: Duration) -> io::Result<ExitStatus> {
    if let Some(status) = child.try_wait()? {
        return Ok(status);
    }
    signal(child.id(), Signal::SIGTERM)?;
    if let Some(status) = wait_child(child, grace)? {
        return Ok(status);
    }
    child.kill()?;
    child.wait()
}

/// Waits up to `timeout` for a child to exit; `None` if it still runs.
pub fn wait_child(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// True if the process exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may hold spaces.
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// The command line of a process, arguments joined by spaces (empty for kernel threads
/// and processes that are gone).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&byte| byte == 0)
                .filter(|arg| !arg.is_empty())
                .map(String::from_utf8_lossy)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Every live process (other than this one) whose command line contains `needle`.
pub fn pids_with_cmdline_containing(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && is_alive(pid) && cmdline(pid).contains(needle))
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends SIGKILL to each process and waits up to `timeout` for all of them to be gone.
/// Returns the pids still alive at the deadline (empty when all are gone).
pub fn kill_and_wait(pids: &[u32], timeout: Duration) -> Vec<u32> {
    for &pid in pids {
        let _ = signal(pid, Signal::SIGKILL);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&pid| is_alive(pid)).collect();
        if alive.is_empty() || Instant::now() >= deadline {
            return alive;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// True if process `pid` holds the TCP socket listening on 127.0.0.1:`port` (or on any
/// address at that port). Used to make sure a readiness probe reached *our* daemon and not
/// another one that got the port first.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| socket_inode(&target))
        .any(|inode| inodes.contains(&inode))
}

fn socket_inode(link: &Path) -> Option<u64> {
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Inodes of IPv4 sockets in LISTEN state on `port`, from /proc/net/tcp.
fn listening_inodes(port: u16) -> Vec<u64> {
    const TCP_LISTEN: &str = "0A";
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    parse_listening_inodes(&table, port, TCP_LISTEN)
}

fn parse_listening_inodes(table: &str, port: u16, listen_state: &str) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let (_, local_port) = local.split_once(':')?;
            let local_port = u16::from_str_radix(local_port, 16).ok()?;
            (local_port == port && *fields.get(3)? == listen_state).then(|| fields.get(9)?.parse().ok())?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_inodes_come_from_the_listen_rows_of_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1388 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
";
        assert_eq!(parse_listening_inodes(table, 5000, "0A"), vec![4242]);
        assert_eq!(parse_listening_inodes(table, 2024, "0A"), vec![4444]);
        assert!(parse_listening_inodes(table, 80, "0A").is_empty());
    }

    #[test]
    fn this_process_is_alive_and_found_by_its_cmdline() {
        assert!(is_alive(std::process::id()));
        assert!(!cmdline(std::process::id()).is_empty());
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn daemons_are_spawned_and_stopped() {
        let mut command = daemon_command("sleep");
        command.arg("30");
        let mut child = spawn_daemon(command).expect("spawn sleep");
        assert!(is_alive(child.id()));
        let status = stop_child(&mut child, Duration::from_secs(5)).expect("stop");
        assert!(!status.success());
        assert!(!is_alive(child.id()));
    }
}

/// Environment variables a restartable process gets at each start, on top of what its
/// command sets: arming a crash point for the next start, say.
#[derive(Debug, Clone, Default)]
pub struct EnvOverrides(Vec<(String, String)>);

impl EnvOverrides {
    /// Sets (`Some`) or unsets (`None`) `key` for the next starts.
    pub fn set(&mut self, key: &str, value: Option<&str>) {
        self.0.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.0.push((key.to_string(), value.to_string()));
        }
    }

    /// Adds the variables to `command`.
    pub fn apply(&self, command: &mut Command) {
        command.envs(self.0.iter().map(|(k, v)| (k, v)));
    }
}

/// Waits up to `timeout` for `child` to end by itself (a crash point, say) and reaps it,
/// leaving `None`; its exit status, or `None` if it still runs or there was none.
pub fn wait_exit(child: &mut Option<Child>, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    while let Some(running) = child.as_mut() {
        if let Some(status) = running.try_wait()? {
            *child = None;
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(None)
}
