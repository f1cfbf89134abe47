//! Images: from a reference to unpacked layers an overlay rootfs can be built from.
//!
//! - [`reference`](mod@reference) parses and normalizes image references as the kubelet and containerd do;
//! - [`hosts`] reads registry hosts configuration (containerd's `certs.d/<host>/hosts.toml`);
//! - [`registry`] speaks the OCI distribution API with anonymous, basic and bearer auth;
//! - [`import`] records the images of an OCI image layout (directory or archive);
//! - [`manager`] pulls, lists and removes images and collects what none uses;
//! - [`oci`] holds the manifest, index and config documents and platform selection;
//! - [`content`] stores blobs by digest, verified before they become visible;
//! - [`digest`] names and verifies content by its sha256;
//! - [`records`] is what the runtime remembers of each image and how names map onto it;
//! - [`snapshots`] keeps unpacked layers, one overlayfs lower directory each;
//! - [`unpack`] turns a layer tarball into a snapshot directory without letting it escape.

pub mod content;
pub mod digest;
pub mod hosts;
pub mod import;
pub mod manager;
pub mod oci;
pub mod records;
pub mod reference;
pub mod registry;
pub mod snapshots;
pub mod unpack;
