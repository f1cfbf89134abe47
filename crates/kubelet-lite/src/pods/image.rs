//! Image pulls per `imagePullPolicy`, with the pod's `imagePullSecrets` as CRI auth.

use cri_api::v1::AuthConfig;
use k8s_openapi::api::core::v1::{Container, Pod, Secret};

/// Why an image is not there: the waiting reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    /// `ErrImagePull` or `ErrImageNeverPull`.
    pub reason: &'static str,
    /// What the runtime said.
    pub message: String,
}

/// The effective pull policy: the container's, else `Always` for `:latest` or untagged
/// images and `IfNotPresent` for the rest (the apiserver's defaulting, for static pods).
pub fn pull_policy(container: &Container) -> String {
    if let Some(policy) = &container.image_pull_policy {
        return policy.clone();
    }
    let image = container.image.as_deref().unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or(image);
    let tagged = last.contains(':') && !last.ends_with(":latest");
    if tagged || image.contains('@') {
        "IfNotPresent".into()
    } else {
        "Always".into()
    }
}

/// Makes sure the container's image is present, pulling it as its policy says; returns
/// the runtime's image reference.
pub async fn ensure_image(
    runtime: &cri_client::Client,
    pod: &Pod,
    container: &Container,
    secrets: &[Secret],
) -> Result<String, PullFailure> {
    let image = container.image.clone().unwrap_or_default();
    let policy = pull_policy(container);
    if policy != "Always" {
        match runtime.image_status(image.as_str(), false).await {
            Ok(status) => {
                if let Some(found) = status.image {
                    return Ok(found.id);
                }
            }
            Err(err) => {
                return Err(PullFailure {
                    reason: "ErrImagePull",
                    message: err.to_string(),
                });
            }
        }
        if policy == "Never" {
            return Err(PullFailure {
                reason: "ErrImageNeverPull",
                message: format!("Container image \"{image}\" is not present with pull policy of Never"),
            });
        }
    }
    let _ = pod;
    let auths: Vec<AuthConfig> = crate::spec::image_auths(secrets, &image);
    let mut last_error = String::new();
    for auth in auths.into_iter().map(Some).chain(std::iter::once(None)) {
        match runtime.pull_image(image.as_str(), auth, None).await {
            Ok(reference) => return Ok(reference),
            Err(err) => last_error = err.to_string(),
        }
    }
    Err(PullFailure {
        reason: "ErrImagePull",
        message: last_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Container::default()
        }
    }

    #[test]
    fn default_policies_follow_the_tag() {
        assert_eq!(pull_policy(&container("busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:latest", None)), "Always");
        assert_eq!(pull_policy(&container("busybox:1.36", None)), "IfNotPresent");
        assert_eq!(pull_policy(&container("127.0.0.1:5000/busybox", None)), "Always");
        assert_eq!(pull_policy(&container("busybox@sha256:ab", None)), "IfNotPresent");
        assert_eq!(pull_policy(&container("busybox", Some("Never"))), "Never");
    }
}
