//! runtime-core: a CRI runtime that pulls images and runs pod sandboxes and containers
//! with runc and CNI.
//!
//! Where to start:
//! - [`image`]: image references, registry pulls through mirrors, the content store,
//!   layer unpacking into snapshot directories, and the image metadata.
//!
//! Pod sandboxes, containers, the per-container monitor, durable state and stats follow
//! the plan in `DESIGN.md` (`service/`, `sandbox/`, `container/`, `oci/`, `monitor/`,
//! `store/`, `stats/`).

pub mod image;
