//! Image pulls per `imagePullPolicy`, with the pod's `imagePullSecrets` as CRI auth, and
//! the kubelet's back-off after a failed pull (`ErrImagePull`, then `ImagePullBackOff`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cri_api::v1::AuthConfig;
use k8s_openapi::api::core::v1::{Container, Secret};

/// The wait after a first failed pull of an image; each further failure doubles it.
pub const PULL_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// The longest wait between pulls of an image.
pub const PULL_BACKOFF_MAX: Duration = Duration::from_secs(300);

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

/// The user image `image` (a reference or ID the runtime knows) runs as, from ImageStatus.
pub async fn image_user(runtime: &cri_client::Client, image: &str) -> Result<crate::spec::ImageUser, String> {
    match runtime.image_status(image, false).await {
        Ok(status) => status
            .image
            .as_ref()
            .map(crate::spec::ImageUser::from_status)
            .ok_or_else(|| format!("image {image:?} is gone from the runtime")),
        Err(err) => Err(format!("image status of {image:?}: {err}")),
    }
}

/// Makes sure the container's image is present, pulling it as its policy says; returns
/// the runtime's image reference.
pub async fn ensure_image(
    runtime: &cri_client::Client,
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

/// When each image of one pod may be pulled again after failed pulls.
#[derive(Debug, Default, Clone)]
pub struct PullBackoff {
    /// Per image: when the last pull failed, and the wait after it.
    failures: HashMap<String, (Instant, Duration)>,
}

impl PullBackoff {
    /// How long pulls of `image` must still wait at `now`; `None` when one may start.
    pub fn remaining(&self, image: &str, now: Instant) -> Option<Duration> {
        let (failed_at, delay) = self.failures.get(image)?;
        delay
            .checked_sub(now.saturating_duration_since(*failed_at))
            .filter(|left| !left.is_zero())
    }

    /// Records a failed pull of `image` at `now`: the first waits
    /// [`PULL_BACKOFF_INITIAL`], each next one twice the last, up to [`PULL_BACKOFF_MAX`].
    pub fn failed(&mut self, image: &str, now: Instant) {
        let delay = self
            .failures
            .get(image)
            .map_or(PULL_BACKOFF_INITIAL, |(_, last)| (*last * 2).min(PULL_BACKOFF_MAX));
        self.failures.insert(image.to_owned(), (now, delay));
    }

    /// Forgets the failures of `image` after it was pulled.
    pub fn succeeded(&mut self, image: &str) {
        self.failures.remove(image);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_pulls_wait_ten_seconds_doubling_to_five_minutes_until_one_succeeds() {
        let mut backoff = PullBackoff::default();
        let start = Instant::now();
        assert_eq!(backoff.remaining("a", start), None);
        backoff.failed("a", start);
        assert_eq!(backoff.remaining("a", start), Some(Duration::from_secs(10)));
        assert_eq!(
            backoff.remaining("a", start + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(backoff.remaining("a", start + Duration::from_secs(10)), None);
        assert_eq!(backoff.remaining("b", start), None, "images back off apart");
        let mut at = start;
        for want in [20, 40, 80, 160, 300, 300] {
            at += Duration::from_secs(400);
            backoff.failed("a", at);
            assert_eq!(backoff.remaining("a", at), Some(Duration::from_secs(want)));
        }
        backoff.succeeded("a");
        assert_eq!(backoff.remaining("a", at), None);
        backoff.failed("a", at);
        assert_eq!(
            backoff.remaining("a", at),
            Some(PULL_BACKOFF_INITIAL),
            "a success starts over"
        );
    }

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
