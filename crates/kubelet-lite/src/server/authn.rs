//! Authentication: who is calling. As the kubelet's delegating authenticator, in order:
//!
//! 1. a client certificate (already verified against `--client-ca-file` by the TLS layer):
//!    the user is the subject's common name, the groups its organizations;
//! 2. a bearer token (`Authorization: Bearer ...`), reviewed by the apiserver through the
//!    TokenReview API (`authentication.k8s.io/v1`), answers cached for a short while;
//! 3. anonymous (`system:anonymous` in `system:unauthenticated`), only if enabled.
//!
//! Anything else is refused: 401.
//!
//! A flood of random tokens must not become a flood of TokenReviews (each one an
//! apiserver call made with the node's credentials). Caching the failures (10 s, as the
//! apiserver's webhook token authenticator does) stops a repeated bad token only, so
//! failed reviews are also budgeted ([`ReviewBudget`], a token bucket): per client
//! address and in all. A review is charged before it is sent and refunded if the token
//! turns out valid, so valid tokens cost nothing and at most `burst + elapsed / refill`
//! reviews fail per client address (and in all); a request over the budget is answered
//! 429 with `Retry-After`, without a review. Accepted and rejected tokens are cached
//! apart, so a flood of bad tokens never evicts a good one; at most
//! [`MAX_IN_FLIGHT_REVIEWS`] reviews are in flight at once.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::HeaderMap;
use http::header::AUTHORIZATION;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::cache::TtlCache;
use super::client_address;

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of anonymous requests.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";

/// The kubelet's default for how long a TokenReview answer is kept.
pub const DEFAULT_TOKEN_CACHE_TTL: Duration = Duration::from_secs(120);

/// How long a failed token review is kept (the failure TTL of the apiserver's webhook
/// token authenticator), so a bad token sent again costs no review.
pub const FAILED_TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

/// The most tokens kept in each cache (accepted, rejected); past it the entry closest
/// to expiry goes.
pub const TOKEN_CACHE_ENTRIES: usize = 4096;

/// The most TokenReviews in flight at once; more requests wait for one to finish.
pub const MAX_IN_FLIGHT_REVIEWS: usize = 16;

/// The default budget of failed reviews per client address: 20 at once, then one more
/// per second.
pub const DEFAULT_FAILED_REVIEWS_PER_ADDRESS: ReviewBudget = ReviewBudget {
    burst: 20,
    refill: Duration::from_secs(1),
};

/// The default budget of failed reviews of all clients together: 100 at once, then ten
/// more per second (what one node may ask of the apiserver for strangers).
pub const DEFAULT_FAILED_REVIEWS_IN_ALL: ReviewBudget = ReviewBudget {
    burst: 100,
    refill: Duration::from_millis(100),
};

/// How many client addresses the per-address budgets track; when all are in use, a new
/// address is held to the budget in all only.
const MAX_TRACKED_ADDRESSES: usize = 4096;

/// A token bucket of failed token reviews: `burst` may fail at once, and one more is
/// allowed every `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewBudget {
    /// How many reviews may fail in a burst.
    pub burst: u32,
    /// How long it takes to earn one more.
    pub refill: Duration,
}

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
    /// How many reviews may fail per client address (IPv6: per /64).
    pub failed_reviews_per_address: ReviewBudget,
    /// How many reviews may fail, all clients together.
    pub failed_reviews_in_all: ReviewBudget,
}

impl Default for AuthenticationConfig {
    fn default() -> AuthenticationConfig {
        AuthenticationConfig {
            anonymous: false,
            webhook: true,
            webhook_cache_ttl: DEFAULT_TOKEN_CACHE_TTL,
            failed_reviews_per_address: DEFAULT_FAILED_REVIEWS_PER_ADDRESS,
            failed_reviews_in_all: DEFAULT_FAILED_REVIEWS_IN_ALL,
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
    /// The client (or all clients) used up the budget of failed reviews: the token was
    /// not reviewed.
    #[error("too many failed token reviews, retry after {retry_after:?}")]
    Throttled {
        /// When the budget allows a review again.
        retry_after: Duration,
    },
}

/// Counts of the token reviews of a server; clones share them.
#[derive(Debug, Clone, Default)]
pub struct TokenReviewCounts(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    throttled: AtomicU64,
}

impl TokenReviewCounts {
    /// TokenReviews sent to the apiserver.
    pub fn sent(&self) -> u64 {
        self.0.sent.load(Ordering::Relaxed)
    }

    /// Requests whose token was not reviewed because the budget of failed reviews was
    /// used up (answered 429).
    pub fn throttled(&self) -> u64 {
        self.0.throttled.load(Ordering::Relaxed)
    }
}

/// Authenticates requests; see the module documentation.
pub(crate) struct Authenticator {
    config: AuthenticationConfig,
    api: Option<Api<TokenReview>>,
    accepted: TtlCache<[u8; 32], UserInfo>,
    rejected: TtlCache<[u8; 32], AuthnError>,
    budgets: FailureBudgets,
    in_flight: tokio::sync::Semaphore,
    counts: TokenReviewCounts,
}

impl Authenticator {
    /// An authenticator; `client` is needed for token reviews.
    pub(crate) fn new(config: AuthenticationConfig, client: Option<kube::Client>) -> Authenticator {
        Authenticator {
            api: client.filter(|_| config.webhook).map(Api::all),
            accepted: TtlCache::new(TOKEN_CACHE_ENTRIES),
            rejected: TtlCache::new(TOKEN_CACHE_ENTRIES),
            budgets: FailureBudgets::new(config.failed_reviews_per_address, config.failed_reviews_in_all),
            in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT_REVIEWS),
            counts: TokenReviewCounts::default(),
            config,
        }
    }

    /// The counts of token reviews.
    pub(crate) fn counts(&self) -> TokenReviewCounts {
        self.counts.clone()
    }

    /// The user making a request from `peer` with this (verified) client certificate and
    /// headers.
    pub(crate) async fn authenticate(
        &self,
        peer: IpAddr,
        certificate: Option<&CertificateDer<'_>>,
        headers: &HeaderMap,
    ) -> Result<UserInfo, AuthnError> {
        if let Some(certificate) = certificate {
            return certificate_user(certificate).map(UserInfo::with_authenticated_group);
        }
        if let Some(token) = bearer_token(headers)
            && let Some(api) = &self.api
        {
            return self
                .review(api, peer, token)
                .await
                .map(UserInfo::with_authenticated_group);
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

    /// The cached answer for the token of digest `key`, if any.
    fn cached(&self, key: &[u8; 32]) -> Option<Result<UserInfo, AuthnError>> {
        if let Some(user) = self.accepted.get(key) {
            return Some(Ok(user));
        }
        self.rejected.get(key).map(Err)
    }

    async fn review(&self, api: &Api<TokenReview>, peer: IpAddr, token: &str) -> Result<UserInfo, AuthnError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cached(&key) {
            return answer;
        }
        let address = client_address(peer);
        if let Err(retry_after) = self.budgets.charge(address) {
            self.counts.0.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthnError::Throttled { retry_after });
        }
        // The semaphore is never closed; were it, the review would go ahead unbounded.
        let _permit = self.in_flight.acquire().await.ok();
        // Another request may have reviewed the same token while this one waited.
        if let Some(answer) = self.cached(&key) {
            self.budgets.refund(address);
            return answer;
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        self.counts.0.sent.fetch_add(1, Ordering::Relaxed);
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|err| AuthnError::Review(err.to_string()))?;
        let status = answer.status.unwrap_or_default();
        match (status.authenticated, status.user) {
            (Some(true), Some(user)) => {
                self.budgets.refund(address);
                let user = UserInfo {
                    name: user.username.unwrap_or_default(),
                    uid: user.uid.unwrap_or_default(),
                    groups: user.groups.unwrap_or_default(),
                    extra: user.extra.unwrap_or_default().into_iter().collect(),
                };
                self.accepted.insert(key, user.clone(), self.config.webhook_cache_ttl);
                Ok(user)
            }
            _ => {
                let error = AuthnError::TokenRejected(status.error.unwrap_or_default());
                let ttl = FAILED_TOKEN_CACHE_TTL.min(self.config.webhook_cache_ttl);
                self.rejected.insert(key, error.clone(), ttl);
                Err(error)
            }
        }
    }
}

/// A token bucket: its tokens and when they were last counted.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(budget: ReviewBudget, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(budget.burst),
            updated: now,
        }
    }

    /// Adds what was earned since the last update.
    fn refill(&mut self, budget: ReviewBudget, now: Instant) {
        let refill = budget.refill.as_secs_f64();
        let earned = if refill > 0.0 {
            now.saturating_duration_since(self.updated).as_secs_f64() / refill
        } else {
            f64::INFINITY
        };
        self.tokens = (self.tokens + earned).min(f64::from(budget.burst));
        self.updated = now;
    }

    fn is_full(&self, budget: ReviewBudget) -> bool {
        self.tokens >= f64::from(budget.burst)
    }

    /// How long until one token is there.
    fn wait(&self, budget: ReviewBudget) -> Duration {
        budget.refill.mul_f64((1.0 - self.tokens).max(0.0))
    }
}

/// The budgets of failed reviews: one per client address, one for all.
#[derive(Debug)]
struct FailureBudgets {
    per_address_budget: ReviewBudget,
    in_all_budget: ReviewBudget,
    buckets: Mutex<(Bucket, HashMap<IpAddr, Bucket>)>,
}

impl FailureBudgets {
    fn new(per_address: ReviewBudget, in_all: ReviewBudget) -> FailureBudgets {
        FailureBudgets {
            per_address_budget: per_address,
            in_all_budget: in_all,
            buckets: Mutex::new((Bucket::full(in_all, Instant::now()), HashMap::new())),
        }
    }

    /// Takes one review from `address`'s budget and from the budget in all, or says how
    /// long until both allow one.
    fn charge(&self, address: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let (per_address_budget, in_all_budget) = (self.per_address_budget, self.in_all_budget);
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (in_all, per_address) = &mut *guard;
        in_all.refill(in_all_budget, now);
        if !per_address.contains_key(&address) && per_address.len() >= MAX_TRACKED_ADDRESSES {
            per_address.retain(|_, bucket| {
                bucket.refill(per_address_budget, now);
                !bucket.is_full(per_address_budget)
            });
        }
        let bucket = if per_address.len() < MAX_TRACKED_ADDRESSES || per_address.contains_key(&address) {
            let bucket = per_address
                .entry(address)
                .or_insert_with(|| Bucket::full(per_address_budget, now));
            bucket.refill(per_address_budget, now);
            Some(bucket)
        } else {
            None
        };
        let own_tokens = bucket.as_ref().map_or(1.0, |bucket| bucket.tokens);
        if in_all.tokens < 1.0 || own_tokens < 1.0 {
            let own_wait = bucket.map_or(Duration::ZERO, |bucket| bucket.wait(per_address_budget));
            return Err(in_all.wait(in_all_budget).max(own_wait));
        }
        in_all.tokens -= 1.0;
        if let Some(bucket) = bucket {
            bucket.tokens -= 1.0;
        }
        Ok(())
    }

    /// Gives back what [`FailureBudgets::charge`] took: the review did not fail.
    fn refund(&self, address: IpAddr) {
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (in_all, per_address) = &mut *guard;
        in_all.tokens = (in_all.tokens + 1.0).min(f64::from(self.in_all_budget.burst));
        if let Some(bucket) = per_address.get_mut(&address) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.per_address_budget.burst));
        }
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

    #[test]
    fn failed_reviews_are_budgeted_per_address_and_in_all() {
        let per_address = ReviewBudget {
            burst: 3,
            refill: Duration::from_secs(3600),
        };
        let in_all = ReviewBudget {
            burst: 5,
            refill: Duration::from_secs(3600),
        };
        let budgets = FailureBudgets::new(per_address, in_all);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        for _ in 0..3 {
            budgets.charge(a).unwrap();
        }
        let wait = budgets.charge(a).unwrap_err();
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        // A refunded review (a valid token) costs nothing.
        budgets.refund(a);
        budgets.charge(a).unwrap();
        // Another address has its own budget, until the budget in all runs out.
        budgets.charge(b).unwrap();
        budgets.charge(b).unwrap();
        assert!(budgets.charge(b).is_err());
    }

    #[test]
    fn a_spent_budget_refills_with_time() {
        let budget = ReviewBudget {
            burst: 1,
            refill: Duration::from_millis(20),
        };
        let budgets = FailureBudgets::new(budget, budget);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        budgets.charge(a).unwrap();
        assert!(budgets.charge(a).is_err());
        std::thread::sleep(Duration::from_millis(30));
        budgets.charge(a).unwrap();
    }

    #[tokio::test]
    async fn without_credentials_only_anonymous_mode_lets_a_request_in() {
        let peer: IpAddr = "198.18.0.1".parse().unwrap();
        let refused = Authenticator::new(AuthenticationConfig::default(), None);
        assert_eq!(
            refused.authenticate(peer, None, &HeaderMap::new()).await,
            Err(AuthnError::NoCredentials)
        );
        let config = AuthenticationConfig {
            anonymous: true,
            ..AuthenticationConfig::default()
        };
        let user = Authenticator::new(config, None)
            .authenticate(peer, None, &HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(user.name, ANONYMOUS_USER);
    }
}
