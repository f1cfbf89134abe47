//! The pod sandbox's host side: its namespaces, its network and its `/etc` files.
//!
//! There is no sandbox ("pause") process, save the init of a shared PID namespace
//! ([`pid_holder`]). As CRI-O does, the pod's network, IPC and UTS
//! namespaces are pinned by bind mounts of their namespace files ([`namespaces`]); the
//! containers join them by path, and CNI attaches the network namespace to the node's
//! network ([`cni`]). The files every container mounts (`resolv.conf`, `hostname`,
//! `hosts`) come from [`files`].
//!
//! A RunPodSandbox does, in order (and undoes in reverse when a step fails):
//! 1. [`namespaces::pin_with`] (with [`namespaces::PinRequest::from_cri`], which carries
//!    the pod's sysctls and the ranges of its own user namespace, if it asks for one:
//!    [`user_namespace`]) or [`namespaces::pin`], into the sandbox's own directory;
//! 2. [`cni::Cni::add`] on the network namespace, unless the pod uses the host network
//!    (ADD undoes itself when it fails);
//! 3. [`files::write_resolv_conf`], [`files::write_hostname`] and [`files::write_hosts`]
//!    with the primary IP.
//!
//! A pod whose PID namespace is shared (PID mode POD) also gets the one process a PID
//! namespace needs, its init: [`pid_holder::start`] after pinning, [`pid_holder::stop`]
//! when it stops.
//!
//! The pods domain reaches namespaces and the network through two seams,
//! [`namespaces::NamespacePinner`] and [`network::PodNetwork`], so that its rollback is
//! tested without root.
//!
//! StopPodSandbox runs [`cni::Cni::del`] then [`namespaces::unpin`]; both are idempotent,
//! as the CRI requires of StopPodSandbox, and both work after a restart from what is on
//! disk ([`namespaces::PinnedNamespaces::all_in`] names a directory's namespace files,
//! [`namespaces::is_pinned`] tells which still hold a namespace).

mod command;

pub mod cni;
pub mod files;
pub mod namespaces;
pub mod netns;
pub mod network;
pub mod pid_holder;
pub mod user_namespace;

pub use cni::{Attachment, Cni, CniConfig, CniError, NetworkStatus, PortMapping};
pub use namespaces::{
    NamespaceError, NamespacePinner, PinRequest, PinnedNamespaces, UnsharePinner, is_pinned, pin, pin_with, unpin,
};
pub use network::PodNetwork;
