//! A pod's network counters, read from `/proc/thread-self/net/dev` by a thread inside the
//! pod's pinned network namespace ([`crate::sandbox::netns::run_in`]).

use std::io;
use std::path::Path;

pub use super::parse::InterfaceCounters;

/// The interface CNI plugins give a pod (`CNI_IFNAME`), reported as its default one.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// The counters of every interface of the network namespace pinned at `netns`, loopback
/// left out.
pub async fn interfaces(netns: &Path) -> io::Result<Vec<InterfaceCounters>> {
    let text = crate::sandbox::netns::run_in(netns, || std::fs::read_to_string("/proc/thread-self/net/dev")).await?;
    Ok(super::parse::net_dev(&text)
        .into_iter()
        .filter(|interface| interface.name != "lo")
        .collect())
}
