//! Images: from a reference to unpacked layers an overlay rootfs can be built from.
//!
//! - [`reference`] parses and normalizes image references as the kubelet and containerd do;
//! - [`hosts`] reads registry hosts configuration (containerd's `certs.d/<host>/hosts.toml`);
//! - [`registry`] speaks the OCI distribution API with anonymous, basic and bearer auth;
//! - [`oci`] holds the manifest, index and config documents and platform selection;
//! - [`digest`] names and verifies content by its sha256;
//! - [`unpack`] turns a layer tarball into a snapshot directory without letting it escape.

pub mod digest;
pub mod hosts;
pub mod oci;
pub mod reference;
pub mod registry;
pub mod unpack;
