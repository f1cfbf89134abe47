//! The fake's error: which CRI rule a request broke. It becomes a gRPC status in one place,
//! [`From<FakeError> for Status`].

use tonic::Status;

/// What the fake refuses, as a real runtime would; each variant is one gRPC code.
///
/// The seeding methods of [`FakeRuntime`](super::FakeRuntime) return it, and the fake
/// answers RPCs with the matching status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FakeError {
    /// No such sandbox, container or image (`NotFound`).
    #[error("{kind} {id:?} does not exist")]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// The id or reference asked for.
        id: String,
    },
    /// The request lacks something the CRI requires (`InvalidArgument`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A sandbox or container with the same metadata exists (`AlreadyExists`).
    #[error("{kind} {name:?} already exists as {id}")]
    AlreadyExists {
        /// What was created twice.
        kind: Kind,
        /// The name, as `namespace/name/uid/attempt` or `name/attempt`.
        name: String,
        /// The id of the existing one.
        id: String,
    },
    /// The object is not in a state that allows the operation (`FailedPrecondition`).
    #[error("{kind} {id} is {state}: cannot {action}")]
    FailedPrecondition {
        /// What the operation was on.
        kind: Kind,
        /// Its id.
        id: String,
        /// Its state, as api.proto names it (`CONTAINER_EXITED`, `SANDBOX_NOTREADY`).
        state: &'static str,
        /// What was refused, e.g. `start`.
        action: &'static str,
    },
}

/// The kinds of object the fake keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A pod sandbox.
    Sandbox,
    /// A container.
    Container,
    /// An image.
    Image,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Sandbox => "pod sandbox",
            Kind::Container => "container",
            Kind::Image => "image",
        })
    }
}

impl FakeError {
    /// No `kind` with this id.
    pub(super) fn not_found(kind: Kind, id: &str) -> FakeError {
        FakeError::NotFound {
            kind,
            id: id.to_owned(),
        }
    }
}

impl From<FakeError> for Status {
    fn from(error: FakeError) -> Status {
        let message = error.to_string();
        match error {
            FakeError::NotFound { .. } => Status::not_found(message),
            FakeError::InvalidArgument(_) => Status::invalid_argument(message),
            FakeError::AlreadyExists { .. } => Status::already_exists(message),
            FakeError::FailedPrecondition { .. } => Status::failed_precondition(message),
        }
    }
}
