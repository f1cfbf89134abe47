//! Mapping domain errors onto gRPC status codes, in one place.

use tonic::Status;

use crate::image::manager::ImageError;
use crate::image::registry::RegistryError;

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
