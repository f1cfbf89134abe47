//! A process the daemon did not start but inherits: a detached `runc exec` hands its
//! process over when it exits, to the daemon as its child subreaper. A pidfd
//! (`pidfd_open`) names it for good; a blocking `waitid` on it, on tokio's blocking pool,
//! learns its exit status and reaps it, whether or not anyone still waits for it.

use std::io;
use std::os::fd::AsFd;

use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions, pidfd_open, waitid};
use tokio::task::JoinHandle;

/// Makes this process the child subreaper of its descendants: processes whose parent
/// exits (a detached `runc exec`'s) become its children. The daemon calls it once, at
/// start; streaming execs with a terminal need it.
pub fn become_subreaper() -> io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?)
}

/// An inherited child process, reaped when it exits.
#[derive(Debug)]
pub struct Orphan {
    pid: u32,
    exit: JoinHandle<io::Result<i32>>,
}

impl Orphan {
    /// Takes process `pid`, which must be this process's child by now (else an error:
    /// someone else would reap it, and its pid could be reused).
    pub fn adopt(pid: u32) -> io::Result<Orphan> {
        let raw = i32::try_from(pid).ok().and_then(Pid::from_raw);
        let raw = raw.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("invalid pid {pid}")))?;
        let pidfd = pidfd_open(raw, PidfdFlags::empty())?;
        // Once the pidfd is open it names this process whatever happens to the pid; the
        // parent check is made after, so a reused pid cannot slip through.
        let parent = parent_of(pid)?;
        if parent != std::process::id() {
            return Err(io::Error::other(format!(
                "process {pid} is a child of {parent}, not of this daemon (is it a child subreaper?)"
            )));
        }
        let exit = tokio::task::spawn_blocking(move || {
            loop {
                match waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
                    Ok(Some(status)) => {
                        return Ok(match (status.exit_status(), status.terminating_signal()) {
                            (Some(code), _) => code,
                            (None, Some(signal)) => 128 + signal,
                            (None, None) => -1,
                        });
                    }
                    Ok(None) | Err(rustix::io::Errno::INTR) => {}
                    Err(err) => return Err(err.into()),
                }
            }
        });
        Ok(Orphan { pid, exit })
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the process to exit; returns its exit code (128 + the signal if one
    /// killed it). Cancel-safe: dropping the future (or the orphan) leaves the reaping to
    /// the blocking task.
    pub async fn wait(&mut self) -> io::Result<i32> {
        (&mut self.exit).await.map_err(io::Error::other)?
    }
}

/// The parent pid in `/proc/<pid>/stat`.
fn parent_of(pid: u32) -> io::Result<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    crate::oci::runc::parse_stat(&stat)
        .map(|stat| stat.ppid)
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The children are reaped by the orphan, not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    #[tokio::test]
    async fn a_child_is_waited_for_through_its_pidfd() {
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .expect("spawn");
        let mut orphan = Orphan::adopt(child.id()).expect("adopt");
        assert_eq!(orphan.wait().await.expect("wait"), 7);
        let killed = std::process::Command::new("sleep").arg("60").spawn().expect("spawn");
        let mut orphan = Orphan::adopt(killed.id()).expect("adopt");
        let pid = Pid::from_raw(i32::try_from(killed.id()).expect("pid")).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).expect("kill");
        assert_eq!(orphan.wait().await.expect("wait"), 137);
    }

    #[tokio::test]
    async fn a_process_that_is_not_a_child_is_refused() {
        assert!(Orphan::adopt(1).is_err());
    }
}
