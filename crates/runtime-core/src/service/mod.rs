//! The CRI gRPC services: thin layers that validate requests, call the domain code and map
//! its errors onto gRPC status codes.
//!
//! - [`image`]: the `ImageService` (pull, list, status, remove, filesystem usage);
//! - [`runtime`]: the `RuntimeService` (sandboxes and containers).

pub mod image;
pub mod runtime;
mod status;
