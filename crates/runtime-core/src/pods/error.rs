//! Why a pod verb failed, in terms of the domain: the service edge maps each kind onto a
//! gRPC status code in one function (`crate::service::status`).

use crate::state::StateError;

/// A failure a cause can be boxed as.
type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a pod verb failed.
#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    /// A sandbox or container record could not be found, reserved or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The request is malformed, or asks for what this runtime cannot do: the caller must
    /// not retry it as it is.
    #[error("{0}")]
    Invalid(String),
    /// Something the request names, besides the sandbox or container it is about, does not
    /// exist (an image, the target of a shared PID namespace).
    #[error("{0}")]
    Missing(String),
    /// The sandbox or container is not in a state that allows the call.
    #[error("{0}")]
    WrongState(String),
    /// A command did not finish in the time it was given, and was killed.
    #[error("{0}")]
    TimedOut(String),
    /// A step on the host failed.
    #[error("{step}: {cause}")]
    Failed {
        /// What was being done.
        step: &'static str,
        /// Why it failed.
        cause: Cause,
    },
}

impl PodsError {
    /// A request the caller must not retry as it is.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// Something the request names is missing.
    pub(crate) fn missing(message: impl Into<String>) -> Self {
        Self::Missing(message.into())
    }

    /// The sandbox or container is in the wrong state.
    pub(crate) fn wrong_state(message: impl Into<String>) -> Self {
        Self::WrongState(message.into())
    }

    /// A failed step, logged.
    pub(crate) fn failed(step: &'static str, cause: impl Into<Cause>) -> Self {
        let cause = cause.into();
        tracing::warn!(error = %cause, step, "runtime call failed");
        Self::Failed { step, cause }
    }
}
