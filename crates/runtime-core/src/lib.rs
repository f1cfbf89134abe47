//! runtime-core: a CRI runtime that pulls images and runs pod sandboxes and containers
//! with runc and CNI.
//!
//! Where to start:
//! - [`daemon::Runtime`] opens the stores a [`config::Config`] names and serves CRI on a
//!   unix socket (what the `runtime-core` binary does; [`cli`] is its command line);
//! - [`service`]: the CRI services, thin over the domain modules;
//! - [`image`]: image references, registry pulls through mirrors, the content store,
//!   layer unpacking into snapshot directories, and the image metadata.
//!
//! Pod sandboxes, containers, the per-container monitor, durable state and stats follow
//! the plan in `DESIGN.md` (`service/`, `sandbox/`, `container/`, `oci/`, `monitor/`,
//! `store/`, `stats/`).

pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod image;
pub mod keyed_lock;
pub mod monitor;
pub mod oci;
pub mod sandbox;
pub mod service;
pub mod state;
pub mod store;
