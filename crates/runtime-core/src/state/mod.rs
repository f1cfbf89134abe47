//! The runtime's pod sandboxes and containers: what was asked for (immutable metadata:
//! ids, names, the CRI config as the kubelet sent it) kept apart from what happened to it
//! (mutable status), both written to the metadata store before a call is acknowledged.
//!
//! A sandbox:
//!
//! ```text
//!   RunPodSandbox ──▶ Ready ──StopPodSandbox──▶ NotReady ──RemovePodSandbox──▶ (gone)
//!                       │                                        ▲
//!                       └───────RemovePodSandbox (stops first)───┘
//! ```
//!
//! A container: see [`container`], which draws its states and keeps their transitions and
//! the guards the verbs ask (`can_start`, `is_running`) in one place.
//!
//! [`Registry`] holds the records in memory, persists every change and reserves
//! names, so a second sandbox or container with a name in use is refused.

pub mod container;
pub mod ids;
pub mod registry;
pub mod sandbox;

pub use container::{ContainerRecord, ContainerState, ContainerStatus};
pub use registry::{Registry, StateError};
pub use sandbox::{SandboxRecord, SandboxState};
