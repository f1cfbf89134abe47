//! runtime-core: a CRI runtime that pulls images and runs pod sandboxes and containers
//! with runc and CNI.
//!
//! Where to start:
//! - [`daemon::Runtime`] opens the stores a [`config::Config`] names and serves CRI on a
//!   unix socket (what the `runtime-core` binary does; [`cli`] is its command line;
//!   `examples/embedded.rs` runs it in-process);
//! - [`service`]: the CRI gRPC services, thin: they call the domain and map its errors
//!   onto status codes;
//! - [`pods`]: the domain of sandboxes and containers, one file per CRI verb, apart from
//!   gRPC; it reaches the host through small seams ([`oci::OciRuntime`],
//!   [`sandbox::PodNetwork`], [`sandbox::NamespacePinner`],
//!   [`container::rootfs::RootfsMounter`]), so its rollback is tested without root;
//! - [`image`]: references, registry pulls through mirrors, the content store, layer
//!   unpacking into snapshot directories, image records;
//! - [`sandbox`]: a pod's pinned namespaces (no process per pod), CNI and /etc files;
//! - [`container`]: the OCI spec built from CRI and image config, the user, the overlay
//!   rootfs;
//! - [`oci`]: the [`oci::OciRuntime`] seam and the runc-compatible runtime driven as a
//!   child process;
//! - [`monitor`]: the small per-container process (`runtime-core-monitor`) that holds a
//!   container's stdio, writes its CRI log and records its exit, surviving the daemon;
//! - [`state`] and [`store`]: sandbox, container and image records, durable in redb;
//! - [`stats`]: cgroup v1 and v2 readers, CPU rates, writable layer and network usage;
//! - [`stream`]: exec, attach and port-forward sessions for the `streaming` server.

pub mod atomic_file;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod image;
pub mod keyed_lock;
pub mod monitor;
pub mod oci;
pub mod pods;
pub mod sandbox;
pub mod service;
pub mod state;
pub mod stats;
pub mod store;
pub mod stream;

/// What the crate's unit tests share.
#[cfg(test)]
mod test_support {
    /// Whether this process may do what needs root (`what`): false, with a note, when it
    /// is not root; under `CI=true` a test that needs root fails instead of skipping.
    pub(crate) fn is_root(what: &str) -> bool {
        if rustix::process::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} needs root, and CI runs as root"
        );
        eprintln!("skipped: {what} needs root");
        false
    }
}
