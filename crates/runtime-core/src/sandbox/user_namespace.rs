//! A pod's own user namespace: CRI `userns_options` mode POD (Kubernetes
//! `hostUsers: false`), with the uid and gid ranges the kubelet chose for the pod.
//!
//! The user namespace is created together with the pod's network, IPC and UTS
//! namespaces, so that it owns them: a container in it can then mount `sysfs` and
//! `mqueue`, and `runc exec`, which joins the user namespace first, may still enter the
//! others. This module says what the ranges are ([`IdMappings`]); pinning
//! ([`super::namespaces::pin_with`]) creates the namespaces with them.
//!
//! The containers join the namespace by path with the same mappings in their spec (runc
//! 1.1 needs them to know the host ids of the container's root); their root filesystem
//! and bind mounts are id-mapped through it ([`crate::container::idmap`]).

use std::fmt::Write as _;

use cri_api::v1::{IdMapping as CriIdMapping, NamespaceMode, PodSandboxConfig, UserNamespace};

/// The most ranges a `uid_map` or `gid_map` takes (Linux 4.15 and later).
const MAX_RANGES: usize = 340;

/// One range of ids: `size` ids from `container_id` inside are `host_id`... outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    /// The first id inside the namespace.
    pub container_id: u32,
    /// The id it is on the host.
    pub host_id: u32,
    /// How many ids the range holds.
    pub size: u32,
}

/// The uid and gid ranges of a pod's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMappings {
    /// User ids.
    pub uids: Vec<IdMapping>,
    /// Group ids.
    pub gids: Vec<IdMapping>,
}

impl IdMappings {
    /// The mappings a pod config asks for: `None` for the host's user namespace (mode
    /// NODE, or no `userns_options`); an error naming what is wrong for a mode this
    /// runtime does not offer (CONTAINER, TARGET) or ranges the kernel would refuse.
    pub fn of_pod(config: &PodSandboxConfig) -> Result<Option<IdMappings>, String> {
        config.userns_options().map_or(Ok(None), IdMappings::from_cri)
    }

    /// The mappings of a CRI `UserNamespace` (see [`IdMappings::of_pod`]).
    pub fn from_cri(userns: &UserNamespace) -> Result<Option<IdMappings>, String> {
        match NamespaceMode::try_from(userns.mode) {
            Ok(NamespaceMode::Node) => Ok(None),
            Ok(NamespaceMode::Pod) => Ok(Some(IdMappings {
                uids: ranges("uid", &userns.uids)?,
                gids: ranges("gid", &userns.gids)?,
            })),
            Ok(mode) => Err(format!(
                "mode {} is not supported (POD and NODE are)",
                mode.as_str_name()
            )),
            Err(_) => Err(format!("unknown mode {}", userns.mode)),
        }
    }

    /// The host uid and gid of the container's root (both map id 0: [`IdMappings::from_cri`]
    /// checks it).
    pub fn host_root(&self) -> (u32, u32) {
        (host_id_of_root(&self.uids), host_id_of_root(&self.gids))
    }

    /// The text written to `/proc/PID/uid_map`.
    pub fn uid_map(&self) -> String {
        map_text(&self.uids)
    }

    /// The text written to `/proc/PID/gid_map`.
    pub fn gid_map(&self) -> String {
        map_text(&self.gids)
    }
}

/// Checks one list of ranges: at least one, at most [`MAX_RANGES`], none empty or past
/// the 32-bit id space, none overlapping another inside or outside, and id 0 mapped
/// (runc finds the container's root through it).
fn ranges(kind: &str, cri: &[CriIdMapping]) -> Result<Vec<IdMapping>, String> {
    if cri.is_empty() {
        return Err(format!("mode POD needs {kind} mappings"));
    }
    if cri.len() > MAX_RANGES {
        return Err(format!(
            "{} {kind} mappings are more than the kernel's {MAX_RANGES}",
            cri.len()
        ));
    }
    let mappings: Vec<IdMapping> = cri
        .iter()
        .map(|m| IdMapping {
            container_id: m.container_id,
            host_id: m.host_id,
            size: m.length,
        })
        .collect();
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, m) in mappings.iter().enumerate() {
        if m.size == 0 {
            return Err(format!("{kind} mapping {i} is empty"));
        }
        if end(m.container_id, m.size) > 1 << 32 || end(m.host_id, m.size) > 1 << 32 {
            return Err(format!("{kind} mapping {i} goes past the largest id"));
        }
        let overlaps = |a: u32, b: u32, size_b: u32| u64::from(a) < end(b, size_b) && u64::from(b) < end(a, m.size);
        if let Some(j) = mappings[..i]
            .iter()
            .position(|o| overlaps(m.container_id, o.container_id, o.size) || overlaps(m.host_id, o.host_id, o.size))
        {
            return Err(format!("{kind} mappings {j} and {i} overlap"));
        }
    }
    if !mappings.iter().any(|m| m.container_id == 0) {
        return Err(format!("the {kind} mappings must map id 0 (the container's root)"));
    }
    Ok(mappings)
}

fn host_id_of_root(mappings: &[IdMapping]) -> u32 {
    mappings.iter().find(|m| m.container_id == 0).map_or(0, |m| m.host_id)
}

fn map_text(mappings: &[IdMapping]) -> String {
    mappings.iter().fold(String::new(), |mut text, m| {
        let _ = writeln!(text, "{} {} {}", m.container_id, m.host_id, m.size);
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cri(container_id: u32, host_id: u32, length: u32) -> CriIdMapping {
        CriIdMapping {
            host_id,
            container_id,
            length,
        }
    }

    fn pod(uids: Vec<CriIdMapping>, gids: Vec<CriIdMapping>) -> UserNamespace {
        UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids,
            gids,
        }
    }

    #[test]
    fn pod_mode_maps_the_ranges_and_node_mode_is_the_hosts() {
        let userns = pod(vec![cri(0, 65536, 65536)], vec![cri(0, 131072, 65536)]);
        let mappings = IdMappings::from_cri(&userns).unwrap().unwrap();
        assert_eq!(mappings.uid_map(), "0 65536 65536\n");
        assert_eq!(mappings.gid_map(), "0 131072 65536\n");
        assert_eq!(mappings.host_root(), (65536, 131072));
        let node = UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..UserNamespace::default()
        };
        assert_eq!(IdMappings::from_cri(&node).unwrap(), None);
        assert_eq!(IdMappings::of_pod(&PodSandboxConfig::default()).unwrap(), None);
    }

    #[test]
    fn ranges_the_kernel_or_runc_would_refuse_are_refused_with_the_reason() {
        let ok = || vec![cri(0, 65536, 65536)];
        let cases: Vec<(UserNamespace, &str)> = vec![
            (pod(vec![], ok()), "needs uid mappings"),
            (pod(ok(), vec![]), "needs gid mappings"),
            (pod(vec![cri(0, 1, 0)], ok()), "empty"),
            (pod(vec![cri(0, u32::MAX, 2)], ok()), "past the largest id"),
            (pod(vec![cri(0, 1000, 10), cri(5, 5000, 10)], ok()), "overlap"),
            (pod(vec![cri(0, 1000, 10), cri(100, 1005, 10)], ok()), "overlap"),
            (pod(vec![cri(1, 1000, 10)], ok()), "must map id 0"),
            (pod(vec![cri(0, 1, 1); MAX_RANGES + 1], ok()), "more than"),
            (
                UserNamespace {
                    mode: NamespaceMode::Container as i32,
                    ..pod(ok(), ok())
                },
                "CONTAINER is not supported",
            ),
            (
                UserNamespace {
                    mode: 42,
                    ..pod(ok(), ok())
                },
                "unknown mode 42",
            ),
        ];
        for (userns, reason) in cases {
            let err = IdMappings::from_cri(&userns).unwrap_err();
            assert!(err.contains(reason), "{err:?} should say {reason:?}");
        }
        let two = pod(vec![cri(0, 1000, 10), cri(10, 5000, 10)], ok());
        assert_eq!(
            IdMappings::from_cri(&two).unwrap().unwrap().uid_map(),
            "0 1000 10\n10 5000 10\n"
        );
    }
}
