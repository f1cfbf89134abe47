//! The translation of a PodSpec into CRI configs: env, volumes, resources, security.
