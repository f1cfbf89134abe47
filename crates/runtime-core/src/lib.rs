//! runtime-core: a CRI runtime that pulls images and runs pod sandboxes and containers
//! with runc and CNI.
//!
//! This crate is at its start: the workspace's foundation is in place (the CRI types in
//! `cri-api`, the unix-socket serving helper every CRI client can call, and `cri-client`),
//! and the image service, sandboxes and containers follow (see `DESIGN.md` for the plan
//! of modules: `service/`, `image/`, `sandbox/`, `container/`, `oci/`, `monitor/`,
//! `store/`, `stats/`).
