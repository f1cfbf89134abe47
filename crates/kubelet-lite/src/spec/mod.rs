//! The translation of a PodSpec into CRI configs: env, volumes, resources, security.
//!
//! The node agent calls, per pod: [`fetch_objects`] (config maps and secrets the pod
//! names), [`prepare_volumes`] (the pod's volumes on the node), [`sandbox_config`]; then
//! per container [`container_config`]; [`remove_volumes`] once the pod is gone.
//! [`labels`] holds the keys put on sandboxes and containers, so a restarted agent can
//! adopt them. Every error is a [`SpecError`] whose message is meant for the user.

pub mod auth;
mod container;
pub mod dns;
mod downward;
mod env;
mod error;
mod expand;
mod identity;
pub mod labels;
pub mod node;
mod objects;
pub mod quantity;
pub mod resources;
mod sandbox;
pub mod security;
pub mod user_namespace;
mod volumes;

pub use auth::image_auths;
pub use container::{ContainerContext, container_config, container_log_path, hosts_file_content};
pub use dns::{ResolvConf, dns_config};
pub use error::{SpecError, SubPathError};
pub use labels::container_hash;
pub use node::NodeContext;
pub use objects::{ApiObjects, fetch_objects};
pub use resources::{
    QosClass, container_resources, milli_cpu_to_quota, milli_cpu_to_shares, node_memory_capacity, oom_score_adj,
    qos_class,
};
pub use sandbox::{hostname_and_domain, sandbox_config, sandbox_config_with};
pub use security::{
    ImageUser, container_security_context, namespace_options, sandbox_security_context, verify_run_as_non_root,
};
pub(crate) use volumes::mount_points;
pub use volumes::{VolumeEntry, Volumes, prepare_volumes, remove_volumes};
