//! Service account tokens for projected volumes, from the TokenRequest API
//! (`POST /api/v1/namespaces/NS/serviceaccounts/SA/token`), bound to the pod so they stop
//! working when the pod is gone.
//!
//! A token is requested once and kept ([`ServiceAccountTokens`]): the volume is rewritten
//! at every refresh of the pod's volumes, but a new token is asked for only once the kept
//! one has lived 80% of its lifetime or 24 hours, as the kubelet's token manager renews
//! them. A renewal that fails keeps the old token while it is valid.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::Api;
use kube::api::PostParams;

use crate::spec::SpecError;

/// The token lifetime when the projection names none (the API's default).
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest a token is kept, whatever its lifetime (the kubelet's `maxTTL`).
const MAX_KEPT: SignedDuration = SignedDuration::from_hours(24);

/// A token and when it is due for renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issued {
    token: String,
    /// When to ask for a new one: 80% of its lifetime, at most [`MAX_KEPT`], after it was
    /// received.
    renew_at: Timestamp,
    /// When it stops working.
    expires: Timestamp,
}

/// The service account tokens of one pod's projected volumes, by audience and requested
/// lifetime (two projections asking for the same get the same token).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceAccountTokens {
    issued: BTreeMap<(String, i64), Issued>,
}

impl ServiceAccountTokens {
    /// The token for `projection`: the kept one unless it is due for renewal, else a new
    /// one (or, when the request fails, the kept one while it has not expired).
    pub(crate) async fn token(
        &mut self,
        client: Option<&kube::Client>,
        pod: &Pod,
        projection: &ServiceAccountTokenProjection,
    ) -> Result<String, SpecError> {
        let key = (
            projection.audience.clone().unwrap_or_default(),
            expiration_seconds(projection),
        );
        let now = Timestamp::now();
        let kept = self.issued.get(&key).filter(|issued| now < issued.expires);
        if let Some(issued) = kept.filter(|issued| now < issued.renew_at) {
            return Ok(issued.token.clone());
        }
        match request_token(client, pod, projection).await {
            Ok((token, expires)) => {
                let received = Timestamp::now();
                let expires = expires.unwrap_or_else(|| received + SignedDuration::from_secs(key.1));
                let issued = Issued {
                    token: token.clone(),
                    renew_at: renewal_time(received, expires),
                    expires,
                };
                self.issued.insert(key, issued);
                Ok(token)
            }
            Err(err) => match self.issued.get(&key).filter(|issued| now < issued.expires) {
                Some(issued) => {
                    tracing::warn!(error = %err, "renewing a service account token failed: keeping the current one");
                    Ok(issued.token.clone())
                }
                None => Err(err),
            },
        }
    }
}

/// When a token received at `received` and valid until `expires` is renewed: after 80% of
/// its lifetime, and after [`MAX_KEPT`] at the latest.
fn renewal_time(received: Timestamp, expires: Timestamp) -> Timestamp {
    let lifetime = expires.duration_since(received).max(SignedDuration::ZERO);
    let kept = lifetime.mul_f64(0.8).min(MAX_KEPT);
    received + kept
}

/// The lifetime asked for: the projection's, the API's default without one, never below
/// the API's minimum.
fn expiration_seconds(projection: &ServiceAccountTokenProjection) -> i64 {
    projection
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS)
        .max(MIN_EXPIRATION_SECONDS)
}

/// Requests a token for the pod's service account with the projection's audience and
/// lifetime, bound to the pod; returns it with its expiry (when the apiserver says it).
async fn request_token(
    client: Option<&kube::Client>,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<(String, Option<Timestamp>), SpecError> {
    let Some(client) = client else {
        return Err(SpecError::NoApiServer("a service account token".to_owned()));
    };
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone().or_else(|| s.service_account.clone()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: projection.audience.iter().filter(|a| !a.is_empty()).cloned().collect(),
            expiration_seconds: Some(expiration_seconds(projection)),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("Pod".to_owned()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let response: TokenRequest = api
        .create_subresource("token", &account, &PostParams::default(), &request)
        .await
        .map_err(|source| SpecError::Api {
            what: format!("request a token for service account {namespace}/{account}"),
            source,
        })?;
    response
        .status
        .filter(|s| !s.token.is_empty())
        .map(|s| {
            let expires = s.expiration_timestamp.0;
            (s.token, (expires > Timestamp::UNIX_EPOCH).then_some(expires))
        })
        .ok_or_else(|| SpecError::invalid("TokenRequest", "the API server returned no token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_80_percent_of_their_lifetime_or_after_a_day() {
        let received: Timestamp = "2024-01-01T00:00:00Z".parse().unwrap();
        let hour = received + SignedDuration::from_hours(1);
        assert_eq!(renewal_time(received, hour), received + SignedDuration::from_mins(48));
        let year = received + SignedDuration::from_hours(24 * 365);
        assert_eq!(renewal_time(received, year), received + SignedDuration::from_hours(24));
        assert_eq!(renewal_time(received, received), received, "expired: renewed now");
    }

    #[tokio::test]
    async fn a_kept_token_is_reused_until_due() {
        let pod = Pod::default();
        let projection = ServiceAccountTokenProjection {
            path: "token".into(),
            ..Default::default()
        };
        let now = Timestamp::now();
        let mut tokens = ServiceAccountTokens::default();
        let key = (String::new(), DEFAULT_EXPIRATION_SECONDS);
        let kept = |renew_at, expires| Issued {
            token: "kept".into(),
            renew_at,
            expires,
        };
        // Not due: no request (this node has no apiserver, a request would fail).
        let later = now + SignedDuration::from_mins(30);
        tokens.issued.insert(key.clone(), kept(later, later));
        assert_eq!(tokens.token(None, &pod, &projection).await.unwrap(), "kept");
        // Due but still valid: the failed renewal keeps it.
        tokens.issued.insert(key.clone(), kept(now, later));
        assert_eq!(tokens.token(None, &pod, &projection).await.unwrap(), "kept");
        // Expired: the failure shows.
        tokens.issued.insert(key, kept(now, now));
        assert!(tokens.token(None, &pod, &projection).await.is_err());
    }
}
