//! OCI runtimes: the runtime configuration of a bundle ([`spec`]) and the runc-compatible
//! binaries that run it ([`runc`]).

pub mod runc;
pub mod spec;
