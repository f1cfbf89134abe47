//! Service account tokens for projected volumes, from the TokenRequest API
//! (`POST /api/v1/namespaces/NS/serviceaccounts/SA/token`), bound to the pod so they stop
//! working when the pod is gone.

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount, ServiceAccountTokenProjection};
use kube::Api;
use kube::api::PostParams;

use crate::spec::SpecError;

/// The token lifetime when the projection names none (the API's default).
pub(crate) const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime the API accepts.
const MIN_EXPIRATION_SECONDS: i64 = 600;

/// Requests a token for the pod's service account with the projection's audience and
/// lifetime, bound to the pod.
pub(crate) async fn request_token(
    client: Option<&kube::Client>,
    pod: &Pod,
    projection: &ServiceAccountTokenProjection,
) -> Result<String, SpecError> {
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
            expiration_seconds: Some(
                projection
                    .expiration_seconds
                    .unwrap_or(DEFAULT_EXPIRATION_SECONDS)
                    .max(MIN_EXPIRATION_SECONDS),
            ),
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
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| SpecError::invalid("TokenRequest", "the API server returned no token"))
}
