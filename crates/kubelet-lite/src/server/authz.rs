//! Authorization: may this user do this to the node? As the kubelet, every request is
//! checked as an action on the `nodes` resource named after the node, with:
//!
//! - the verb from the HTTP method (GET and HEAD `get`, POST `create`, PUT `update`,
//!   PATCH `patch`, DELETE `delete`), so `kubectl exec` (a POST) needs `create`;
//! - the subresource from the path (the kubelet's `pkg/kubelet/server/auth.go`): `/stats`
//!   is `stats`, `/metrics` is `metrics`, `/logs` is `log`, `/spec` is `spec`, everything
//!   else (exec, attach, portForward, containerLogs, run, pods, healthz) `proxy`.
//!
//! In Webhook mode the apiserver decides through a SubjectAccessReview
//! (`authorization.k8s.io/v1`); answers are cached (allowed 5 minutes, denied 30 seconds,
//! the kubelet's defaults). AlwaysAllow allows everything and is only for when it is
//! configured so.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::{Api, PostParams};

use super::authn::UserInfo;
use super::cache::TtlCache;

/// The kubelet's default for how long an "allowed" answer is kept.
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(300);
/// The kubelet's default for how long a "denied" answer is kept.
pub const DEFAULT_DENIED_TTL: Duration = Duration::from_secs(30);

/// How requests are authorized (the kubelet's `authorization.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Every authenticated request is allowed.
    AlwaysAllow,
    /// The apiserver decides through SubjectAccessReview.
    Webhook {
        /// How long an "allowed" answer is kept.
        allowed_ttl: Duration,
        /// How long a "denied" answer is kept.
        denied_ttl: Duration,
    },
}

impl Default for AuthorizationMode {
    fn default() -> AuthorizationMode {
        AuthorizationMode::Webhook {
            allowed_ttl: DEFAULT_ALLOWED_TTL,
            denied_ttl: DEFAULT_DENIED_TTL,
        }
    }
}

/// What a request does, as authorization sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// The API verb.
    pub verb: &'static str,
    /// The subresource of `nodes`.
    pub subresource: &'static str,
    /// The node's name.
    pub node: String,
}

impl Attributes {
    /// The attributes of `method` on `path` of node `node`.
    pub fn of(method: &Method, path: &str, node: &str) -> Attributes {
        let verb = match *method {
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "get",
        };
        let under =
            |prefix: &str| path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/'));
        let subresource = if under("/stats") {
            "stats"
        } else if under("/metrics") {
            "metrics"
        } else if under("/logs") {
            "log"
        } else if under("/spec") {
            "spec"
        } else {
            "proxy"
        };
        Attributes {
            verb,
            subresource,
            node: node.to_owned(),
        }
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allowed,
    /// Refused, with the authorizer's reason (may be empty).
    Denied(String),
}

/// Why a check could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subject access review failed: {0}")]
pub struct AuthzError(pub String);

/// The most decisions kept; past it the one closest to expiry goes.
const DECISION_CACHE_ENTRIES: usize = 4096;

/// What a decision is cached under: everything the SubjectAccessReview is asked about
/// (the whole user, not only its name: two users of one name with other groups, uid or
/// extra attributes may be answered differently), as the kubelet's webhook authorizer
/// keys its cache on the whole review spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DecisionKey {
    user: String,
    uid: String,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
    attributes: Attributes,
}

/// Authorizes requests; see the module documentation.
pub(crate) struct Authorizer {
    mode: AuthorizationMode,
    api: Option<Api<SubjectAccessReview>>,
    cache: TtlCache<DecisionKey, Decision>,
}

impl Authorizer {
    /// An authorizer; `client` is needed in Webhook mode.
    pub(crate) fn new(mode: AuthorizationMode, client: Option<kube::Client>) -> Authorizer {
        Authorizer {
            api: client.map(Api::all),
            mode,
            cache: TtlCache::new(DECISION_CACHE_ENTRIES),
        }
    }

    /// Whether `user` may do `attributes`.
    pub(crate) async fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Result<Decision, AuthzError> {
        let (allowed_ttl, denied_ttl) = match self.mode {
            AuthorizationMode::AlwaysAllow => return Ok(Decision::Allowed),
            AuthorizationMode::Webhook {
                allowed_ttl,
                denied_ttl,
            } => (allowed_ttl, denied_ttl),
        };
        let key = DecisionKey {
            user: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            attributes: attributes.clone(),
        };
        if let Some(decision) = self.cache.get(&key) {
            return Ok(decision);
        }
        let api = self
            .api
            .as_ref()
            .ok_or_else(|| AuthzError("no Kubernetes API client".into()))?;
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                uid: Some(user.uid.clone()).filter(|uid| !uid.is_empty()),
                groups: Some(user.groups.clone()),
                extra: Some(user.extra.clone().into_iter().collect())
                    .filter(|extra: &BTreeMap<_, _>| !extra.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(attributes.verb.to_owned()),
                    group: Some(String::new()),
                    version: Some("v1".to_owned()),
                    resource: Some("nodes".to_owned()),
                    subresource: Some(attributes.subresource.to_owned()),
                    name: Some(attributes.node.clone()),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: None,
            },
            ..SubjectAccessReview::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthzError(err.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let (decision, ttl) = if status.allowed {
            (Decision::Allowed, allowed_ttl)
        } else {
            (Decision::Denied(status.reason.unwrap_or_default()), denied_ttl)
        };
        self.cache.insert(key, decision.clone(), ttl);
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn decisions_are_cached_per_whole_user_and_attributes() {
        let authorizer = Authorizer::new(AuthorizationMode::default(), None);
        let alice = UserInfo {
            name: "alice".into(),
            uid: "1".into(),
            groups: vec!["dev".into()],
            extra: BTreeMap::from([("scopes".to_owned(), vec!["read".to_owned()])]),
        };
        let attributes = Attributes::of(&Method::POST, "/exec/default/web/app", "node-1");
        let key = |user: &UserInfo| DecisionKey {
            user: user.name.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            attributes: attributes.clone(),
        };
        authorizer
            .cache
            .insert(key(&alice), Decision::Allowed, DEFAULT_ALLOWED_TTL);
        assert_eq!(authorizer.authorize(&alice, &attributes).await, Ok(Decision::Allowed));
        // The same name with another uid, other groups or other extra is asked about anew
        // (here: there is no apiserver to ask).
        let others = [
            UserInfo {
                uid: "2".into(),
                ..alice.clone()
            },
            UserInfo {
                groups: vec!["dev".into(), "ops".into()],
                ..alice.clone()
            },
            UserInfo {
                extra: BTreeMap::new(),
                ..alice.clone()
            },
        ];
        for other in others {
            assert!(authorizer.authorize(&other, &attributes).await.is_err(), "{other:?}");
        }
    }

    #[test]
    fn paths_map_to_the_kubelets_subresources_and_methods_to_verbs() {
        let cases = [
            (Method::POST, "/exec/default/web/app", "create", "proxy"),
            (Method::GET, "/exec/default/web/app", "get", "proxy"),
            (Method::POST, "/portForward/default/web", "create", "proxy"),
            (Method::GET, "/containerLogs/default/web/app", "get", "proxy"),
            (Method::GET, "/logs/", "get", "log"),
            (Method::GET, "/stats/summary", "get", "stats"),
            (Method::GET, "/metrics", "get", "metrics"),
            (Method::GET, "/metricsfoo", "get", "proxy"),
            (Method::GET, "/pods", "get", "proxy"),
            (Method::PUT, "/healthz", "update", "proxy"),
            (Method::PATCH, "/healthz", "patch", "proxy"),
            (Method::DELETE, "/healthz", "delete", "proxy"),
            (Method::HEAD, "/healthz", "get", "proxy"),
        ];
        for (method, path, verb, subresource) in cases {
            let attributes = Attributes::of(&method, path, "node-1");
            assert_eq!(
                (attributes.verb, attributes.subresource),
                (verb, subresource),
                "{method} {path}"
            );
            assert_eq!(attributes.node, "node-1");
        }
    }
}
