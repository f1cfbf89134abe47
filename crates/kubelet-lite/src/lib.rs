//! kubelet-lite: a small node agent that registers a Node with a kube-apiserver, runs the
//! pods scheduled to it through any CRI runtime (via `cri-client`) and serves the kubelet
//! API.
//!
//! Modules, in the order data flows (see `DESIGN.md`):
//! - [`spec`]: a PodSpec translated into CRI configs (env, volumes, resources, security);
//! - [`probe`]: liveness, readiness and startup probes (exec, httpGet, tcpSocket).

pub mod probe;
pub mod spec;
