//! Authentication: who is calling. As the kubelet's delegating authenticator, in order:
//!
//! 1. a client certificate (already verified against `--client-ca-file` by the TLS layer):
//!    the user is the subject's common name, the groups its organizations;
//! 2. a bearer token (`Authorization: Bearer ...`), reviewed by the apiserver through the
//!    TokenReview API (`authentication.k8s.io/v1`), answers cached for a short while;
//! 3. anonymous (`system:anonymous` in `system:unauthenticated`), only if enabled.
//!
//! Anything else is refused: 401.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::cache::TtlCache;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The kubelet's default for how long a TokenReview answer is kept.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(120);

/// How long a failed token review is kept (so a flood of bad tokens costs little).
const FAILED_TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The user's UID, if the authenticator knows one.
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes (from TokenReview).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    fn with_authenticated_group(mut self) -> UserInfo {
        if !self.groups.iter().any(|group| group == AUTHENTICATED_GROUP) {
            self.groups.push(AUTHENTICATED_GROUP.to_owned());
        }
        self
    }
}

/// How requests are authenticated (the kubelet's `authentication` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationConfig {
    /// Let requests with no credentials in as `system:anonymous` (default: no).
    pub anonymous: bool,
    /// Review bearer tokens through the TokenReview API (default: yes).
    pub webhook: bool,
    /// How long a token's review is kept.
    pub webhook_cache_ttl: Duration,
}

impl Default for AuthenticationConfig {
    fn default() -> AuthenticationConfig {
        AuthenticationConfig {
            anonymous: false,
            webhook: true,
            webhook_cache_ttl: DEFAULT_TOKEN_CACHE_TTL,
        }
    }
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthnError {
    /// No credentials, and anonymous requests are off.
    #[error("no credentials")]
    NoCredentials,
    /// The client certificate has no usable subject.
    #[error("client certificate: {0}")]
    Certificate(String),
    /// The apiserver said the token is not valid.
    #[error("token not authenticated{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    TokenRejected(String),
    /// The TokenReview call itself failed.
    #[error("reviewing the token: {0}")]
    Review(String),
}

/// Authenticates requests; see the module documentation.
pub(crate) struct Authenticator {
    config: AuthenticationConfig,
    api: Option<Api<TokenReview>>,
    cache: TtlCache<[u8; 32], Result<UserInfo, AuthnError>>,
}

impl Authenticator {
    /// An authenticator; `client` is needed for token reviews.
    pub(crate) fn new(config: AuthenticationConfig, client: Option<kube::Client>) -> Authenticator {
        Authenticator {
            api: client.filter(|_| config.webhook).map(Api::all),
            config,
            cache: TtlCache::new(),
        }
    }

    /// The user making a request with this (verified) client certificate and headers.
    pub(crate) async fn authenticate(
        &self,
        certificate: Option<&CertificateDer<'_>>,
        headers: &HeaderMap,
    ) -> Result<UserInfo, AuthnError> {
        if let Some(certificate) = certificate {
            return certificate_user(certificate).map(UserInfo::with_authenticated_group);
        }
        if let Some(token) = bearer_token(headers)
            && let Some(api) = &self.api
        {
            return self.review(api, token).await.map(UserInfo::with_authenticated_group);
        }
        if self.config.anonymous {
            return Ok(UserInfo {
                name: ANONYMOUS_USER.into(),
                groups: vec![UNAUTHENTICATED_GROUP.into()],
                ..UserInfo::default()
            });
        }
        Err(AuthnError::NoCredentials)
    }

    async fn review(&self, api: &Api<TokenReview>, token: &str) -> Result<UserInfo, AuthnError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cache.get(&key) {
            return answer;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthnError::Review(err.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let result = match (status.authenticated, status.user) {
            (Some(true), Some(user)) => Ok(UserInfo {
                name: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default().into_iter().collect(),
            }),
            _ => Err(AuthnError::TokenRejected(status.error.unwrap_or_default())),
        };
        let ttl = if result.is_ok() {
            self.config.webhook_cache_ttl
        } else {
            FAILED_TOKEN_CACHE_TTL.min(self.config.webhook_cache_ttl)
        };
        self.cache.insert(key, result.clone(), ttl);
        result
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The user of a client certificate: common name and organizations, as Kubernetes reads
/// them.
pub(crate) fn certificate_user(certificate: &CertificateDer<'_>) -> Result<UserInfo, AuthnError> {
    let (_, parsed) =
        X509Certificate::from_der(certificate.as_ref()).map_err(|err| AuthnError::Certificate(err.to_string()))?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or_else(|| AuthnError::Certificate("no common name".into()))?;
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    Ok(UserInfo {
        name: name.to_owned(),
        groups,
        ..UserInfo::default()
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name.push(rcgen::DnType::OrganizationName, "dev");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let user = certificate_user(certificate.der()).unwrap();
        assert_eq!((user.name.as_str(), user.groups), ("alice", vec!["dev".to_owned()]));
        assert!(certificate_user(&CertificateDer::from(vec![1, 2, 3])).is_err());
    }

    #[test]
    fn only_bearer_tokens_are_tokens() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        assert_eq!(bearer_token(&headers), None);
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc.def"));
        assert_eq!(bearer_token(&headers), Some("abc.def"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  "));
        assert_eq!(bearer_token(&headers), None);
    }

    #[tokio::test]
    async fn without_credentials_only_anonymous_mode_lets_a_request_in() {
        let refused = Authenticator::new(AuthenticationConfig::default(), None);
        assert_eq!(
            refused.authenticate(None, &HeaderMap::new()).await,
            Err(AuthnError::NoCredentials)
        );
        let config = AuthenticationConfig {
            anonymous: true,
            ..AuthenticationConfig::default()
        };
        let user = Authenticator::new(config, None)
            .authenticate(None, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(user.name, ANONYMOUS_USER);
    }
}
