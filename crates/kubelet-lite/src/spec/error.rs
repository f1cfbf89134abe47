//! The errors of the PodSpec translation.
//!
//! Each message says what is wrong with the pod, in the user's words (the field, the key,
//! the object), because the node agent shows it as the container's waiting message with
//! the reason `CreateContainerConfigError`.

use std::path::PathBuf;

/// What can go wrong while turning a pod into CRI configs and volumes.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The pod lacks something every pod has (metadata.name, uid, a spec).
    #[error("pod is missing {0}")]
    MissingField(&'static str),
    /// A config map the pod needs (not optional) does not exist.
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound {
        /// Name of the config map.
        name: String,
    },
    /// A secret the pod needs (not optional) does not exist.
    #[error("secret \"{name}\" not found")]
    SecretNotFound {
        /// Name of the secret.
        name: String,
    },
    /// A key of a config map the pod needs (not optional) does not exist.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// Namespace of the config map.
        namespace: String,
        /// Name of the config map.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A key of a secret the pod needs (not optional) does not exist.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// Namespace of the secret.
        namespace: String,
        /// Name of the secret.
        name: String,
        /// The missing key.
        key: String,
    },
    /// A fieldRef or resourceFieldRef names a field that is not supported.
    #[error("unsupported {kind} \"{path}\"")]
    UnsupportedField {
        /// `fieldRef` or `resourceFieldRef`.
        kind: &'static str,
        /// The field path or resource name.
        path: String,
    },
    /// A volume mount names a volume the pod does not declare (or one not prepared).
    #[error("volume mount {mount:?} refers to unknown volume \"{volume}\"")]
    UnknownVolume {
        /// The name of the volume.
        volume: String,
        /// The mount path in the container.
        mount: String,
    },
    /// A volume type kubelet-lite does not support.
    #[error("volume \"{volume}\": unsupported volume type {kind}")]
    UnsupportedVolume {
        /// The name of the volume.
        volume: String,
        /// What kind of volume it is (e.g. `persistentVolumeClaim`).
        kind: String,
    },
    /// A hostPath volume whose path does not match its declared type.
    #[error("hostPath type check failed: {path} is not a {expected}")]
    HostPathType {
        /// The host path.
        path: PathBuf,
        /// The declared type (`Directory`, `File`, `Socket`...).
        expected: String,
    },
    /// A subPath or projection path that is absolute or escapes its volume with `..`.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A quantity (cpu, memory, sizeLimit, divisor) that cannot be parsed.
    #[error("invalid quantity {0:?}")]
    InvalidQuantity(String),
    /// A subPath (or subPathExpr) that cannot be mounted safely: it leads outside its
    /// volume, or does not exist in a read-only one.
    #[error("volume \"{volume}\": subPath {sub_path:?} refused: {reason}")]
    SubPath {
        /// The volume's name.
        volume: String,
        /// The sub path, expanded.
        sub_path: String,
        /// Why it was refused.
        #[source]
        reason: SubPathError,
    },
    /// The container must not run as root but would.
    #[error("container has runAsNonRoot and {0}")]
    RunAsNonRoot(String),
    /// A value the API allows but that is invalid for this pod (bad port, bad mode...).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A call to the API server failed (fetching objects, requesting a token).
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The pod needs the API server (config maps, secrets, tokens) but the node runs without one.
    #[error("{0} needs an API server, and this node runs without one")]
    NoApiServer(String),
    /// A file system operation on the node failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl SpecError {
    /// Wraps an I/O error with what was done to which path.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| SpecError::Io { what, path, source }
    }

    /// An invalid value of a field.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SpecError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why a sub path was refused; shown with the volume and sub path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    /// The path goes above the volume's directory (by `..` or through a link).
    #[error("it leads outside the volume{}", through.as_ref().map(|link| format!(" (through the symbolic link {link:?})")).unwrap_or_default())]
    Escapes {
        /// The link whose target leaves the volume, if a link did.
        through: Option<String>,
    },
    /// More links on the way than the kernel itself follows (40).
    #[error("too many levels of symbolic links")]
    TooManyLinks,
    /// A component before the last is not a directory.
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    /// A component does not exist (and the volume is read-only, so it was not created).
    #[error("{0:?} does not exist")]
    Missing(String),
    /// A system call failed.
    #[error("{what} {path}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The path or component involved.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}
