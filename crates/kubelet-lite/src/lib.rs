//! kubelet-lite: a small node agent that registers a Node with a kube-apiserver, runs the
//! pods scheduled to it through any CRI runtime (via `cri-client`) and serves the kubelet
//! API.
//!
//! This crate is at its start; see `DESIGN.md` for the plan of modules (`node/`, `pods/`,
//! `spec/`, `server/`).
