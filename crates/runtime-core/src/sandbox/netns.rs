//! Work done inside a pod's network namespace from the daemon: connecting to a port on
//! the pod's loopback (port-forward), reading its interfaces' counters (stats).
//!
//! Only the calling thread can switch network namespaces, so each call runs on a fresh
//! thread that joins the namespace, runs its closure and ends. Sockets opened there stay
//! in that namespace, and can be used from any thread afterwards.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

/// Runs `work` on a new thread inside the network namespace pinned at `netns`, and
/// returns what it returned.
pub async fn run_in<T, F>(netns: &Path, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> io::Result<T> + Send + 'static,
{
    let netns: PathBuf = netns.to_owned();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("netns".into()).spawn(move || {
        let outcome = join(&netns).and_then(|()| work());
        let _ = done.send(outcome);
    })?;
    result
        .await
        .unwrap_or_else(|_| Err(io::Error::other("the network namespace thread panicked")))
}

/// Moves the calling thread into the network namespace pinned at `netns`.
fn join(netns: &Path) -> io::Result<()> {
    let file = File::open(netns)?;
    move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(LinkNameSpaceType::Network))?;
    Ok(())
}
