//! The exit watcher: a container's exit is recorded (and announced to the subscribers of
//! container events) as soon as its monitor writes the exit record, with no call in
//! flight and no polling. One inotify instance watches the monitor directory of every
//! running container for the record being renamed into place ([`monitor::EXIT_FILE`]).
//!
//! A watch is added when a container starts and, at start-up, for every container that
//! runs; an exit that came before its watch is caught by a look at the directory right
//! after adding it. A directory that goes (the container removed) drops its watch.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rustix::event::{PollFd, PollFlags};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::pipe::PipeFlags;

use super::Pods;
use crate::monitor;
use crate::state::container::ContainerRecord;

/// The inotify instance and which container each of its watches is for.
#[derive(Debug)]
pub(super) struct ExitWatcher {
    fd: OwnedFd,
    containers: Mutex<HashMap<i32, String>>,
}

impl ExitWatcher {
    /// A new inotify instance without watches.
    pub(super) fn new() -> std::io::Result<ExitWatcher> {
        let fd = inotify::init(CreateFlags::NONBLOCK | CreateFlags::CLOEXEC)?;
        Ok(ExitWatcher {
            fd,
            containers: Mutex::default(),
        })
    }

    /// Watches `monitor_dir` for the exit record of container `id`.
    fn watch(&self, id: &str, monitor_dir: &Path) -> std::io::Result<()> {
        let wd = inotify::add_watch(&self.fd, monitor_dir, WatchFlags::MOVED_TO | WatchFlags::CLOSE_WRITE)?;
        let mut containers = self.containers.lock().unwrap_or_else(PoisonError::into_inner);
        containers.insert(wd, id.to_owned());
        Ok(())
    }

    /// Removes watch `wd` (gone already if the kernel dropped it); returns its container.
    fn forget(&self, wd: i32) -> Option<String> {
        let mut containers = self.containers.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = inotify::remove_watch(&self.fd, wd);
        containers.remove(&wd)
    }
}

impl Pods {
    /// Watches a running container's monitor directory for its exit; records the exit at
    /// once if it came already.
    pub(super) fn watch_exit(&self, container: &ContainerRecord) {
        let Some(watcher) = &self.exits else { return };
        if let Err(error) = watcher.watch(&container.id, &container.monitor_dir) {
            tracing::warn!(container = %container.id, %error, "cannot watch for the container's exit");
            return;
        }
        if monitor::exit_status(&container.monitor_dir).is_some()
            && let Err(error) = self.refresh_container(&container.id)
        {
            tracing::warn!(container = %container.id, %error, "recording an exit");
        }
    }

    /// Watches every running container, then records each exit as its record appears, on
    /// a thread of its own (blocked in `poll`, never waking without an event) until the
    /// returned handle is dropped. Without inotify, does nothing: exits are then found by
    /// the calls that look at containers.
    pub fn watch_exits(self: Arc<Self>) -> std::io::Result<ExitWatching> {
        if self.exits.is_none() {
            return Ok(ExitWatching::default());
        }
        for container in self.registry.containers() {
            if container.status.is_running() {
                self.watch_exit(&container);
            }
        }
        let (stop_read, stop_write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC)?;
        let thread = std::thread::Builder::new()
            .name("exit-watch".into())
            .spawn(move || self.record_exits_until(&stop_read))?;
        Ok(ExitWatching {
            stop: Some(stop_write),
            thread: Some(thread),
        })
    }

    /// Records the exits the watches report until `stop` closes.
    fn record_exits_until(&self, stop: &OwnedFd) {
        let Some(watcher) = &self.exits else { return };
        let mut buffer = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let mut fds = [
                PollFd::new(&watcher.fd, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, None) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "waiting for inotify events: container exits are found by calls only");
                    return;
                }
            }
            if !fds[1].revents().is_empty() {
                return;
            }
            let mut exited = Vec::new();
            let mut reader = inotify::Reader::new(&watcher.fd, &mut buffer);
            loop {
                match reader.next() {
                    Ok(event) => {
                        let is_exit = event
                            .file_name()
                            .is_some_and(|name| name.to_bytes() == monitor::EXIT_FILE.as_bytes());
                        if event.events().contains(ReadFlags::IGNORED) {
                            watcher.forget(event.wd());
                        } else if is_exit && let Some(id) = watcher.forget(event.wd()) {
                            exited.push(id);
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => break,
                    Err(error) => {
                        tracing::warn!(%error, "reading inotify events");
                        break;
                    }
                }
            }
            for id in exited {
                if let Err(error) = self.refresh_container(&id) {
                    tracing::debug!(container = %id, %error, "recording an exit");
                }
            }
        }
    }
}

/// The exit watcher's thread; dropping it stops the thread and waits for it.
#[derive(Debug, Default)]
pub struct ExitWatching {
    stop: Option<OwnedFd>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ExitWatching {
    fn drop(&mut self) {
        // Closing the pipe's write end wakes the thread's poll.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
