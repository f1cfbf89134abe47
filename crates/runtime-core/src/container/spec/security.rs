//! The seccomp filter and AppArmor profile a security context asks for.
//!
//! Both come from the structured `SecurityProfile` field, else from the deprecated string
//! (`runtime/default`, `docker/default`, `unconfined`, `localhost/<ref>`); neither set
//! means unconfined, as with containerd (the kubelet sends `RuntimeDefault` when the pod
//! or its `SeccompDefault` asks for it).
//!
//! - **seccomp**: `RuntimeDefault` is the built-in profile of [`super::seccomp`], made
//!   for the container's capabilities; `Localhost` reads the JSON file the reference
//!   names (an OCI `LinuxSeccomp` object, as containerd reads it); `Unconfined` sets no
//!   filter.
//! - **AppArmor**, where the kernel has it (`/sys/module/apparmor/parameters/enabled` is
//!   `Y`): `Localhost` names a profile that must be loaded on the host; `RuntimeDefault`
//!   uses `docker-default` when it is loaded and runs unconfined (with a warning)
//!   otherwise, as this runtime loads no profile of its own. Without AppArmor in the kernel
//!   `RuntimeDefault` is skipped silently, as containerd does, and `Localhost` is refused:
//!   a profile the pod requires cannot be enforced.

use std::fs;

use cri_api::v1::{LinuxContainerSecurityContext, SecurityProfile, security_profile::ProfileType};

use super::{SpecError, host_path_error, seccomp};

/// Where the kernel says whether AppArmor is enabled.
pub(super) const APPARMOR_ENABLED_FILE: &str = "/sys/module/apparmor/parameters/enabled";
/// The profiles the kernel has loaded, one `name (mode)` per line.
const APPARMOR_PROFILES_FILE: &str = "/sys/kernel/security/apparmor/profiles";
/// The profile `RuntimeDefault` uses where the host has it loaded.
const APPARMOR_DEFAULT_PROFILE: &str = "docker-default";

/// Whether this kernel enforces AppArmor profiles.
pub(super) fn apparmor_enabled() -> bool {
    fs::read_to_string(APPARMOR_ENABLED_FILE).is_ok_and(|text| text.trim().eq_ignore_ascii_case("Y"))
}

/// The security profile a context asks for: the structured field, else the deprecated
/// string (`runtime/default`, `docker/default`, `unconfined`, `localhost/<ref>`).
fn requested_profile(
    kind: &'static str,
    profile: Option<&SecurityProfile>,
    deprecated: &str,
) -> Result<Option<(ProfileType, String)>, SpecError> {
    let invalid = |reason: String| SpecError::SecurityProfile { kind, reason };
    if let Some(profile) = profile {
        let profile_type = ProfileType::try_from(profile.profile_type)
            .map_err(|_| invalid(format!("unknown profile type {}", profile.profile_type)))?;
        if profile_type != ProfileType::Localhost && !profile.localhost_ref.is_empty() {
            return Err(invalid(
                "localhost_ref is set but the profile type is not Localhost".to_string(),
            ));
        }
        return Ok(Some((profile_type, profile.localhost_ref.clone())));
    }
    Ok(match deprecated {
        "" => None,
        "runtime/default" | "docker/default" => Some((ProfileType::RuntimeDefault, String::new())),
        "unconfined" => Some((ProfileType::Unconfined, String::new())),
        other => match other.strip_prefix("localhost/") {
            Some(reference) => Some((ProfileType::Localhost, reference.to_string())),
            None => {
                return Err(invalid(format!(
                    "{other:?} is not runtime/default, docker/default, unconfined or localhost/<name>"
                )));
            }
        },
    })
}

/// The seccomp filter of an unprivileged container whose capabilities are
/// `capabilities`: the built-in profile for `RuntimeDefault`, the file's for `Localhost`,
/// none for `Unconfined` or nothing asked.
pub(super) fn seccomp_profile(
    sc: &LinuxContainerSecurityContext,
    capabilities: &[String],
) -> Result<Option<serde_json::Value>, SpecError> {
    #[allow(deprecated)]
    let deprecated = sc.seccomp_profile_path.as_str();
    let reference = match requested_profile("seccomp", sc.seccomp.as_ref(), deprecated)? {
        None | Some((ProfileType::Unconfined, _)) => return Ok(None),
        Some((ProfileType::RuntimeDefault, _)) => return Ok(Some(seccomp::runtime_default(capabilities))),
        Some((ProfileType::Localhost, reference)) => reference,
    };
    let path = reference.strip_prefix("localhost/").unwrap_or(&reference);
    if !path.starts_with('/') {
        return Err(SpecError::RelativePath {
            what: "seccomp profile",
            path: path.to_string(),
        });
    }
    let text = fs::read(path).map_err(|err| host_path_error(path, err))?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|err| SpecError::SecurityProfile {
        kind: "seccomp",
        reason: format!("{path}: {err}"),
    })?;
    if !value.is_object() {
        return Err(SpecError::SecurityProfile {
            kind: "seccomp",
            reason: format!("{path}: not a JSON object"),
        });
    }
    Ok(Some(value))
}

/// The AppArmor profile of an unprivileged container on a host where AppArmor is
/// `enabled` or not (see the module doc).
pub(super) fn apparmor_profile(sc: &LinuxContainerSecurityContext, enabled: bool) -> Result<Option<String>, SpecError> {
    #[allow(deprecated)]
    let deprecated = sc.apparmor_profile.as_str();
    let invalid = |reason: String| SpecError::SecurityProfile {
        kind: "apparmor",
        reason,
    };
    match requested_profile("apparmor", sc.apparmor.as_ref(), deprecated)? {
        None | Some((ProfileType::Unconfined, _)) => Ok(None),
        Some((ProfileType::RuntimeDefault, _)) if !enabled => Ok(None),
        Some((ProfileType::RuntimeDefault, _)) => {
            if apparmor_loaded(APPARMOR_DEFAULT_PROFILE) {
                Ok(Some(APPARMOR_DEFAULT_PROFILE.to_string()))
            } else {
                tracing::warn!(
                    profile = APPARMOR_DEFAULT_PROFILE,
                    "AppArmor RuntimeDefault asked for but the default profile is not loaded; running unconfined"
                );
                Ok(None)
            }
        }
        Some((ProfileType::Localhost, reference)) => {
            let name = reference.strip_prefix("localhost/").unwrap_or(&reference);
            if name.is_empty() {
                return Err(invalid("empty Localhost profile name".to_string()));
            }
            if !enabled {
                return Err(invalid(format!(
                    "profile {name:?} is required but AppArmor is not enabled in this kernel ({APPARMOR_ENABLED_FILE})"
                )));
            }
            Ok(Some(name.to_string()))
        }
    }
}

/// Whether the kernel has loaded the AppArmor profile `name`.
fn apparmor_loaded(name: &str) -> bool {
    fs::read_to_string(APPARMOR_PROFILES_FILE).is_ok_and(|text| {
        text.lines()
            .any(|line| line.rsplit_once(" (").map_or(line, |(profile, _)| profile) == name)
    })
}
