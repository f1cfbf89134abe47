//! Mapping domain errors onto gRPC status codes, in one place.

use tonic::Status;

use crate::image::manager::ImageError;
use crate::image::registry::RegistryError;
use crate::pods::PodsError;
use crate::state::StateError;

/// The status a CRI caller gets for a pod error: NotFound for an unknown sandbox or
/// container (or anything else the request names that is missing), AlreadyExists for a
/// name in use, InvalidArgument for a bad request or an ambiguous id prefix,
/// FailedPrecondition for a sandbox or container in the wrong state, DeadlineExceeded for
/// a command that ran out of time, Internal for a failed step or the store.
pub(crate) fn pods_status(error: &PodsError) -> Status {
    let message = error.to_string();
    match error {
        PodsError::State(StateError::NotFound { .. }) | PodsError::Missing(_) => Status::not_found(message),
        PodsError::State(StateError::NameReserved { .. }) => Status::already_exists(message),
        PodsError::State(StateError::Ambiguous { .. }) | PodsError::Invalid(_) => Status::invalid_argument(message),
        PodsError::WrongState(_) => Status::failed_precondition(message),
        PodsError::TimedOut(_) => Status::deadline_exceeded(message),
        PodsError::State(StateError::Store(_)) | PodsError::Failed { .. } => Status::internal(message),
    }
}

/// The status a CRI caller gets for an image error: InvalidArgument for a bad name,
/// NotFound for an image the registry does not have, Unauthenticated when credentials are
/// missing or refused, Unavailable when no registry endpoint answered, Internal otherwise.
pub(crate) fn image_status(error: &ImageError) -> Status {
    let message = error.to_string();
    match error {
        ImageError::InvalidReference(_) => Status::invalid_argument(message),
        ImageError::Registry(registry) if registry.is_not_found() => Status::not_found(message),
        ImageError::Registry(RegistryError::Unauthorized { .. }) => Status::unauthenticated(message),
        ImageError::Registry(_) => Status::unavailable(message),
        ImageError::Manifest(_) | ImageError::Config { .. } | ImageError::Malformed { .. } => {
            Status::failed_precondition(message)
        }
        ImageError::Content(_) | ImageError::Snapshot(_) | ImageError::Store(_) => Status::internal(message),
    }
}
