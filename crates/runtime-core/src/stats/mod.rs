//! Resource usage: cgroup v1 and v2 readers, CPU rates from successive samples, the size
//! of writable layers and a pod's network counters.
//!
//! - [`hierarchy`]: [`hierarchy::Hierarchy`] picks [`v1`] (also on hybrid hosts) or [`v2`]
//!   to read a cgroup into [`cgroup::CgroupStats`];
//! - [`cpu`]: `usage_nano_cores` from the previous sample of each container or pod;
//! - [`writable_layer`]: bytes and inodes of an overlay upper directory, bounded and
//!   cached;
//! - [`network`]: per-interface counters inside a pod's network namespace;
//! - [`parse`]: the text formats, as pure functions.
//!
//! ```
//! use runtime_core::stats::hierarchy::Hierarchy;
//!
//! // A container's cgroup, as its OCI `cgroupsPath` names it; it is gone once runc
//! // deleted the container.
//! let stats = Hierarchy::detect().read("/runtime-core/no-such-container");
//! assert!(stats.is_err());
//! ```

pub mod cgroup;
pub mod cpu;
pub mod hierarchy;
pub mod network;
pub mod parse;
pub mod v1;
pub mod v2;
pub mod writable_layer;
