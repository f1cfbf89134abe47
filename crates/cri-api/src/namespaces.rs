//! Shortcuts to the namespace options a config carries.
//!
//! The CRI nests a pod's (and a container's) namespace options three optional messages
//! deep: `linux.security_context.namespace_options`, with the user namespace one more
//! level down. These accessors walk that chain once, so runtimes do not spell it out at
//! every use.
//!
//! ```
//! use cri_api::v1::{NamespaceMode, PodSandboxConfig};
//!
//! let config = PodSandboxConfig::default();
//! assert!(config.namespace_options().is_none());
//! assert!(config.userns_options().is_none());
//! // No options at all means a namespace of the pod's own.
//! let mode = config.namespace_options().map_or(NamespaceMode::Pod as i32, |o| o.network);
//! assert_eq!(mode, NamespaceMode::Pod as i32);
//! ```

use crate::v1::{ContainerConfig, NamespaceOption, PodSandboxConfig, UserNamespace};

/// Gives a config type of the CRI (both carry `linux.security_context.namespace_options`)
/// the two accessors.
macro_rules! namespace_accessors {
    ($config:ty, $whose:literal) => {
        impl $config {
            /// `linux.security_context.namespace_options`, if every level is set.
            pub fn namespace_options(&self) -> Option<&NamespaceOption> {
                self.linux
                    .as_ref()
                    .and_then(|linux| linux.security_context.as_ref())
                    .and_then(|context| context.namespace_options.as_ref())
            }

            #[doc = concat!("The ", $whose, " user namespace options (`namespace_options.userns_options`), if set.")]
            pub fn userns_options(&self) -> Option<&UserNamespace> {
                self.namespace_options()
                    .and_then(|options| options.userns_options.as_ref())
            }
        }
    };
}

namespace_accessors!(PodSandboxConfig, "pod's");
namespace_accessors!(ContainerConfig, "container's");
