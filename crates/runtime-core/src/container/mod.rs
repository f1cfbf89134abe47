//! Containers: the OCI spec built from a CRI `ContainerConfig` and the image config
//! ([`spec`]), the user a container runs as, resolved inside its rootfs ([`user`]), and the
//! overlay rootfs over the image's layers ([`rootfs`]), id-mapped for a pod with its own
//! user namespace ([`idmap`]); [`mounts`] takes down what is mounted under a bundle.

pub mod idmap;
pub mod mounts;
pub mod rootfs;
pub mod spec;
pub mod user;
