//! The smallest configs the fake accepts, for tests that care about little else.

use crate::v1::{ContainerConfig, ContainerMetadata, ImageSpec, PodSandboxConfig, PodSandboxMetadata};

/// A sandbox config with only its metadata: `namespace`, `name`, the uid `<name>-uid`,
/// attempt 0. Add labels, a log directory or security settings with struct update syntax.
///
/// ```
/// # use cri_client::testing::sandbox_config;
/// let config = cri_client::v1::PodSandboxConfig {
///     log_directory: "/var/log/pods/default_web_web-uid".into(),
///     ..sandbox_config("default", "web")
/// };
/// assert_eq!(config.metadata.unwrap().uid, "web-uid");
/// ```
pub fn sandbox_config(namespace: &str, name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_owned(),
            uid: format!("{name}-uid"),
            namespace: namespace.to_owned(),
            attempt: 0,
        }),
        ..Default::default()
    }
}

/// A container config with only its name (attempt 0) and image.
pub fn container_config(name: &str, image: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.to_owned(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}
