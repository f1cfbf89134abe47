//! An OCI distribution client: resolves references to manifests and fetches blobs, through
//! the mirrors a [`RegistryHosts`] configuration lists, with anonymous, Basic and Bearer
//! (token) authentication.
//!
//! Each operation tries the endpoints of the reference's registry in order (mirrors, then
//! the upstream), skipping those without the needed capability (`resolve` for tags, `pull`
//! for digests and blobs) and falling through to the next on any failure: connection
//! errors, 404, 5xx, refused credentials, content that does not match its digest. When all
//! fail, the error says what each one answered.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use runtime_core::image::hosts::RegistryHosts;
//! use runtime_core::image::reference::Reference;
//! use runtime_core::image::registry::{Credentials, RegistryClient};
//!
//! let client = RegistryClient::new(RegistryHosts::load("/etc/containerd/certs.d".as_ref())?);
//! let reference: Reference = "registry.k8s.io/pause:3.9".parse()?;
//! let resolved = client.resolve(&reference, &Credentials::Anonymous).await?;
//! println!("{} is {} ({})", reference, resolved.digest, resolved.media_type);
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::StreamReader;

pub use auth::{Credentials, CredentialsError};

use crate::image::digest::Digest;
use crate::image::hosts::{Endpoint, RegistryHosts};
use crate::image::oci::{
    self, Capped, Descriptor, MEDIA_TYPE_DOCKER_SCHEMA1, MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED, ManifestDocument,
    ManifestError, TooLarge,
};
use crate::image::reference::Reference;
use auth::{AuthCache, AuthMethod, TokenResponse};
use client::{HttpClients, TlsError};

/// Token endpoint answers larger than this are refused.
const MAX_TOKEN_RESPONSE_SIZE: u64 = 1 << 20;
/// How much of an error body is read for the message.
const MAX_ERROR_BODY: u64 = 4 << 10;
/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("runtime-core/", env!("CARGO_PKG_VERSION"));
/// The header a registry puts the digest of a manifest in.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// The query parameter that tells a mirror which registry a request is for (containerd
/// sends it; pull-through caches use it).
pub const NAMESPACE_PARAM: &str = "ns";
/// How many times one request is sent while authenticating (anonymous, then with a
/// token, then with a fresh token if the cached one was refused).
const AUTH_ROUNDS: usize = 3;

/// An error talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry does not know the manifest (tag or digest).
    #[error("manifest unknown: {reference} not found")]
    NotFound {
        /// The reference asked for.
        reference: String,
    },
    /// The registry does not have the blob.
    #[error("blob unknown: {digest} not found in {repository}")]
    BlobNotFound {
        /// The repository asked.
        repository: String,
        /// The blob.
        digest: Digest,
    },
    /// The registry refused access (401/403, or credentials it needs were not given).
    #[error("unauthorized: {url}: {reason}")]
    Unauthorized {
        /// The URL that refused.
        url: String,
        /// What the registry or the token endpoint said.
        reason: String,
    },
    /// Content did not hash to the digest it was asked for or announced with.
    #[error("digest mismatch for {url}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// Where the content came from.
        url: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of what was received.
        actual: Digest,
    },
    /// A blob's announced length differs from the size its descriptor gives.
    #[error("size mismatch for {url}: expected {expected} bytes, registry announces {actual}")]
    SizeMismatch {
        /// Where the content came from.
        url: String,
        /// The size from the descriptor.
        expected: u64,
        /// The `Content-Length` of the response.
        actual: u64,
    },
    /// A manifest or index larger than [`oci::MAX_MANIFEST_SIZE`], by its
    /// `Content-Length` or by what arrived; named by its URL.
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    /// A manifest of a type this runtime does not handle.
    #[error("{url}: {source}")]
    Manifest {
        /// Where it came from.
        url: String,
        /// What is wrong with it.
        source: ManifestError,
    },
    /// The request could not be sent or its answer not read.
    #[error("request to {url} failed: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// The cause, with its chain of sources.
        reason: String,
    },
    /// The registry answered with an unexpected status.
    #[error("unexpected status {status} from {url}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error message, if it sent one.
        message: Option<String>,
    },
    /// Fetching a bearer token failed.
    #[error("token request to {realm} failed: {reason}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// What went wrong.
        reason: String,
    },
    /// An endpoint's TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// An endpoint URL could not be formed.
    #[error("invalid url {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// No endpoint of the registry may be asked for this.
    #[error("no endpoint of {domain} has the {capability} capability")]
    NoEndpoints {
        /// The registry.
        domain: String,
        /// `resolve` or `pull`.
        capability: &'static str,
    },
    /// Every endpoint failed, in different ways.
    #[error("all endpoints failed for {reference}: {}", format_failures(failures))]
    AllEndpointsFailed {
        /// The reference (or blob) asked for.
        reference: String,
        /// Each endpoint and its error, in the order tried.
        failures: Vec<EndpointFailure>,
    },
}

impl RegistryError {
    /// Whether the registry said the content does not exist (every endpoint, if several).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. } | Self::BlobNotFound { .. })
    }
}

/// What one endpoint answered.
#[derive(Debug)]
pub struct EndpointFailure {
    /// The endpoint's API root URL.
    pub endpoint: String,
    /// Its error.
    pub error: RegistryError,
}

fn format_failures(failures: &[EndpointFailure]) -> String {
    let parts: Vec<String> = failures
        .iter()
        .map(|f| format!("[{}: {}]", f.endpoint, f.error))
        .collect();
    parts.join(", ")
}

/// A manifest or index, fetched and verified.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The reference that was resolved.
    pub reference: Reference,
    /// The digest of [`Self::bytes`].
    pub digest: Digest,
    /// The media type: one of [`oci::MANIFEST_MEDIA_TYPES`].
    pub media_type: String,
    /// The document as served (its digest is over these exact bytes).
    pub bytes: Bytes,
    /// The endpoint that served it.
    pub endpoint: Endpoint,
}

impl Resolved {
    /// The document, parsed.
    pub fn document(&self) -> Result<ManifestDocument, ManifestError> {
        ManifestDocument::parse(&self.media_type, &self.bytes)
    }

    /// A descriptor of the document.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            urls: Vec::new(),
            annotations: Default::default(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// A blob download in progress: read it to the end. The bytes are not verified here (the
/// content store hashes them as it writes); the reader only refuses to go past the
/// expected size, so a misbehaving server cannot fill the disk.
pub struct Blob {
    reader: Pin<Box<dyn AsyncRead + Send>>,
    size: Option<u64>,
    endpoint: Endpoint,
}

impl Blob {
    /// The size announced by the registry (`Content-Length`), if any.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The endpoint serving the blob.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .field("endpoint", &self.endpoint.base_url())
            .finish()
    }
}

impl AsyncRead for Blob {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.reader.as_mut().poll_read(cx, buf)
    }
}

/// What an operation needs of an endpoint.
#[derive(Debug, Clone, Copy)]
enum Capability {
    Resolve,
    Pull,
}

impl Capability {
    fn name(self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::Pull => "pull",
        }
    }

    fn allows(self, endpoint: &Endpoint) -> bool {
        match self {
            Self::Resolve => endpoint.capabilities.resolve,
            Self::Pull => endpoint.capabilities.pull,
        }
    }
}

/// Which credentials went with a request, to judge a 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Nothing,
    Basic,
    CachedToken,
    FreshToken,
    RegistryToken,
}

/// The registry client. Cheap to share behind an `Arc`; keeps HTTP clients (one per TLS
/// configuration), the auth method of each host and bearer tokens until they expire.
#[derive(Debug)]
pub struct RegistryClient {
    hosts: RegistryHosts,
    http: HttpClients,
    auth: AuthCache,
}

impl RegistryClient {
    /// A client using `hosts` to find each registry's endpoints.
    pub fn new(hosts: RegistryHosts) -> Self {
        Self {
            hosts,
            http: HttpClients::new(USER_AGENT),
            auth: AuthCache::default(),
        }
    }

    /// The hosts configuration.
    pub fn hosts(&self) -> &RegistryHosts {
        &self.hosts
    }

    /// Fetches the manifest or index `reference` names (by digest if it has one, else by
    /// tag) and verifies it: its digest must match the reference's digest and the
    /// registry's `Docker-Content-Digest`, when present.
    #[tracing::instrument(level = "debug", skip_all, fields(reference = %reference))]
    pub async fn resolve(&self, reference: &Reference, credentials: &Credentials) -> Result<Resolved, RegistryError> {
        let capability = if reference.digest.is_some() {
            Capability::Pull
        } else {
            Capability::Resolve
        };
        let endpoints = self.endpoints(reference, capability)?;
        let suffix = format!("{}/manifests/{}", reference.path, reference.manifest_reference());
        let mut failures = Vec::new();
        for endpoint in endpoints {
            match self.manifest_from(&endpoint, reference, &suffix, credentials).await {
                Ok(resolved) => {
                    tracing::debug!(endpoint = %endpoint.base_url(), digest = %resolved.digest, "resolved");
                    return Ok(resolved);
                }
                Err(error) => {
                    tracing::info!(endpoint = %endpoint.base_url(), %error, "endpoint failed, trying the next");
                    failures.push(EndpointFailure {
                        endpoint: endpoint.base_url(),
                        error,
                    });
                }
            }
        }
        Err(summarize(reference.to_string(), failures))
    }

    /// Fetches the manifest `digest` of `reference`'s repository (a platform manifest
    /// named by an index), verified against `digest`.
    pub async fn fetch_manifest_by_digest(
        &self,
        reference: &Reference,
        digest: &Digest,
        credentials: &Credentials,
    ) -> Result<Resolved, RegistryError> {
        self.resolve(&reference.with_digest(digest.clone()), credentials).await
    }

    /// Starts downloading blob `digest` of `reference`'s repository from the first
    /// endpoint with the `pull` capability that has it, following redirects. When
    /// `expected_size` is given, a different `Content-Length` fails the endpoint and the
    /// reader stops with an error past that many bytes.
    #[tracing::instrument(level = "debug", skip_all, fields(repository = %reference.repository(), %digest))]
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        digest: &Digest,
        expected_size: Option<u64>,
        credentials: &Credentials,
    ) -> Result<Blob, RegistryError> {
        let endpoints = self.endpoints(reference, Capability::Pull)?;
        let suffix = format!("{}/blobs/{digest}", reference.path);
        let mut failures = Vec::new();
        for endpoint in endpoints {
            match self
                .blob_from(&endpoint, reference, &suffix, digest, expected_size, credentials)
                .await
            {
                Ok(blob) => return Ok(blob),
                Err(error) => {
                    tracing::info!(endpoint = %endpoint.base_url(), %error, "endpoint failed, trying the next");
                    failures.push(EndpointFailure {
                        endpoint: endpoint.base_url(),
                        error,
                    });
                }
            }
        }
        Err(summarize(format!("{}@{digest}", reference.repository()), failures))
    }

    /// The endpoints of `reference`'s registry that may be asked for `capability`.
    fn endpoints(&self, reference: &Reference, capability: Capability) -> Result<Vec<Endpoint>, RegistryError> {
        let endpoints: Vec<Endpoint> = self
            .hosts
            .endpoints(&reference.domain)
            .into_iter()
            .filter(|e| capability.allows(e))
            .collect();
        if endpoints.is_empty() {
            return Err(RegistryError::NoEndpoints {
                domain: reference.domain.clone(),
                capability: capability.name(),
            });
        }
        Ok(endpoints)
    }

    async fn manifest_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        suffix: &str,
        credentials: &Credentials,
    ) -> Result<Resolved, RegistryError> {
        let url = request_url(endpoint, reference, suffix)?;
        let accept = oci::MANIFEST_MEDIA_TYPES.join(", ");
        let response = self.send(endpoint, reference, &url, Some(&accept), credentials).await?;
        let url = url.to_string();
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    reference: reference.to_string(),
                });
            }
            _ => return Err(status_error(&url, response).await),
        }
        // Refused on its announced length before any of it is read, and cut off at the cap
        // when the length is missing or lies (a chunked or endless body).
        if let Some(length) = content_length(&response) {
            Capped::Manifest.check(&url, length)?;
        }
        let content_type = header_str(&response, CONTENT_TYPE.as_str());
        let announced = header_str(&response, DOCKER_CONTENT_DIGEST);
        let bytes = read_limited(response, Capped::Manifest.limit())
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => Capped::Manifest.too_large(&url, None).into(),
                ReadError::Io(source) => RegistryError::Http {
                    url: url.clone(),
                    reason: source.to_string(),
                },
            })?;

        let digest = Digest::of(&bytes);
        if let Some(expected) = &reference.digest
            && expected != &digest
        {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: expected.clone(),
                actual: digest,
            });
        }
        // Registries may announce digests of other algorithms; only sha256 can be checked.
        if let Some(announced) = announced.and_then(|d| d.parse::<Digest>().ok())
            && announced != digest
        {
            return Err(RegistryError::DigestMismatch {
                url,
                expected: announced,
                actual: digest,
            });
        }
        let media_type =
            manifest_media_type(content_type.as_deref(), &bytes).map_err(|source| RegistryError::Manifest {
                url: url.clone(),
                source,
            })?;
        Ok(Resolved {
            reference: reference.clone(),
            digest,
            media_type,
            bytes,
            endpoint: endpoint.clone(),
        })
    }

    async fn blob_from(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        suffix: &str,
        digest: &Digest,
        expected_size: Option<u64>,
        credentials: &Credentials,
    ) -> Result<Blob, RegistryError> {
        let url = request_url(endpoint, reference, suffix)?;
        let response = self.send(endpoint, reference, &url, None, credentials).await?;
        let url = url.to_string();
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::BlobNotFound {
                    repository: reference.repository(),
                    digest: digest.clone(),
                });
            }
            _ => return Err(status_error(&url, response).await),
        }
        let announced = content_length(&response);
        if let (Some(expected), Some(actual)) = (expected_size, announced)
            && expected != actual
        {
            return Err(RegistryError::SizeMismatch { url, expected, actual });
        }
        let limit = expected_size.or(announced);
        let mut seen = 0u64;
        let stream = response.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(|e| io::Error::other(error_chain(&e.without_url())))?;
            seen += chunk.len() as u64;
            match limit {
                Some(limit) if seen > limit => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob is larger than the expected {limit} bytes"),
                )),
                _ => Ok(chunk),
            }
        });
        tracing::debug!(url = %url, size = ?announced, "downloading blob");
        Ok(Blob {
            reader: Box::pin(StreamReader::new(stream)),
            size: announced,
            endpoint: endpoint.clone(),
        })
    }

    /// Sends a GET to `url` on `endpoint`, authenticating as the registry asks: with the
    /// remembered method of the host first, then answering a 401's challenge (Basic with
    /// the credentials, or a bearer token fetched for the repository's pull scope).
    async fn send(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        url: &Url,
        accept: Option<&str>,
        credentials: &Credentials,
    ) -> Result<reqwest::Response, RegistryError> {
        let client = self.http.for_endpoint(endpoint)?;
        let scope = auth::pull_scope(&reference.path);
        let host = endpoint.host.as_str();
        let url_text = url.to_string();
        // The authorization for the next round, when answering a challenge produced it.
        let mut next = None;
        for _ in 0..AUTH_ROUNDS {
            let (authorization, sent) = match next.take() {
                Some(next) => next,
                None => self.authorization(&client, host, &scope, credentials, None).await?,
            };
            let mut request = client.request(Method::GET, url.clone());
            for (name, value) in &endpoint.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(authorization) = &authorization {
                request = request.header(AUTHORIZATION, authorization.as_str());
            }
            tracing::trace!(url = %url_text, ?sent, "sending request");
            let response = request.send().await.map_err(|e| http_error(&url_text, e))?;
            match response.status() {
                StatusCode::UNAUTHORIZED => {}
                StatusCode::FORBIDDEN => {
                    let reason = error_message(response)
                        .await
                        .unwrap_or_else(|| "access denied".to_string());
                    return Err(RegistryError::Unauthorized { url: url_text, reason });
                }
                _ => return Ok(response),
            }

            let challenges: Vec<auth::Challenge> = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(auth::parse_www_authenticate)
                .collect();
            let unauthorized = |reason: &str| RegistryError::Unauthorized {
                url: url_text.clone(),
                reason: reason.to_string(),
            };
            let Some((method, challenge_scopes)) = AuthMethod::from_challenges(&challenges) else {
                return Err(unauthorized(
                    "the registry asks for authentication this client does not support",
                ));
            };
            match (sent, &method) {
                (Sent::RegistryToken, _) => {
                    return Err(unauthorized("the registry token was refused"));
                }
                (Sent::Basic, AuthMethod::Basic) => {
                    return Err(unauthorized("the credentials were refused"));
                }
                (Sent::FreshToken, AuthMethod::Bearer { .. }) => {
                    self.auth.forget_token(host, &scope, credentials);
                    return Err(unauthorized("the bearer token was refused"));
                }
                (Sent::CachedToken, _) => self.auth.forget_token(host, &scope, credentials),
                _ => {}
            }
            if method == AuthMethod::Basic && credentials.basic_header().is_none() {
                return Err(unauthorized(
                    "the registry asks for a user name and password and none were given",
                ));
            }
            let bearer = matches!(method, AuthMethod::Bearer { .. });
            self.auth.set_method(host, method);
            if bearer {
                // A fresh token, also covering any scope the challenge names.
                next = Some(
                    self.authorization(&client, host, &scope, credentials, Some(&challenge_scopes))
                        .await?,
                );
            }
        }
        Err(RegistryError::Unauthorized {
            url: url_text,
            reason: "authentication did not succeed".to_string(),
        })
    }

    /// The `Authorization` value to send to `host`, from what it asked for before: Basic
    /// credentials, or a bearer token (cached, or fetched now). `extra_scopes` forces a
    /// fresh token that also covers them.
    async fn authorization(
        &self,
        client: &reqwest::Client,
        host: &str,
        scope: &str,
        credentials: &Credentials,
        extra_scopes: Option<&[String]>,
    ) -> Result<(Option<String>, Sent), RegistryError> {
        if let Credentials::RegistryToken(token) = credentials {
            return Ok((Some(format!("Bearer {token}")), Sent::RegistryToken));
        }
        match self.auth.method(host) {
            None => Ok((None, Sent::Nothing)),
            Some(AuthMethod::Basic) => match credentials.basic_header() {
                Some(header) => Ok((Some(header), Sent::Basic)),
                None => Ok((None, Sent::Nothing)),
            },
            Some(AuthMethod::Bearer { realm, service }) => {
                if extra_scopes.is_none()
                    && let Some(token) = self.auth.token(host, scope, credentials, Instant::now())
                {
                    return Ok((Some(format!("Bearer {token}")), Sent::CachedToken));
                }
                let mut scopes = vec![scope.to_string()];
                for extra in extra_scopes.unwrap_or_default() {
                    if !scopes.contains(extra) {
                        scopes.push(extra.clone());
                    }
                }
                let (token, lifetime) = fetch_token(client, &realm, service.as_deref(), &scopes, credentials).await?;
                self.auth
                    .store_token(host, scope, credentials, token.clone(), lifetime, Instant::now());
                Ok((Some(format!("Bearer {token}")), Sent::FreshToken))
            }
        }
    }
}

/// Gets a bearer token from `realm`: an OAuth2 POST with the refresh token for identity
/// tokens, else a GET with Basic auth when there are user credentials, anonymous otherwise.
async fn fetch_token(
    client: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    credentials: &Credentials,
) -> Result<(String, std::time::Duration), RegistryError> {
    let token_error = |reason: String| RegistryError::Token {
        realm: realm.to_string(),
        reason,
    };
    let mut url = Url::parse(realm).map_err(|e| token_error(format!("invalid realm: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(token_error(format!("unsupported realm scheme {:?}", url.scheme())));
    }
    let request = match credentials {
        Credentials::IdentityToken(refresh_token) => {
            let scope = scopes.join(" ");
            let mut form = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.as_str()),
                ("client_id", auth::OAUTH_CLIENT_ID),
                ("scope", scope.as_str()),
            ];
            if let Some(service) = service {
                form.push(("service", service));
            }
            client.post(url.clone()).form(&form)
        }
        _ => {
            {
                let mut query = url.query_pairs_mut();
                if let Some(service) = service {
                    query.append_pair("service", service);
                }
                for scope in scopes {
                    query.append_pair("scope", scope);
                }
            }
            let request = client.get(url.clone());
            match credentials.basic_header() {
                Some(basic) => request.header(AUTHORIZATION, basic),
                None => request,
            }
        }
    };
    tracing::debug!(realm, ?service, ?scopes, "fetching bearer token");
    let response = request
        .send()
        .await
        .map_err(|e| token_error(error_chain(&e.without_url())))?;
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let detail = error_message(response)
            .await
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(RegistryError::Unauthorized {
            url: realm.to_string(),
            reason: format!("the token endpoint refused the credentials ({status}){detail}"),
        });
    }
    if !status.is_success() {
        let detail = error_message(response)
            .await
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return Err(token_error(format!("status {status}{detail}")));
    }
    let body = read_limited(response, MAX_TOKEN_RESPONSE_SIZE)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge => token_error("answer too large".to_string()),
            ReadError::Io(e) => token_error(e.to_string()),
        })?;
    let answer: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| token_error(format!("invalid answer: {e}")))?;
    answer
        .token_and_lifetime()
        .ok_or_else(|| token_error("the answer holds no token".to_string()))
}

/// The URL of `suffix` on `endpoint`, with `ns=<registry>` for mirrors.
fn request_url(endpoint: &Endpoint, reference: &Reference, suffix: &str) -> Result<Url, RegistryError> {
    let text = endpoint.url(suffix);
    let mut url = Url::parse(&text).map_err(|e| RegistryError::Url {
        url: text.clone(),
        reason: e.to_string(),
    })?;
    if endpoint.mirror {
        url.query_pairs_mut().append_pair(NAMESPACE_PARAM, &reference.domain);
    }
    Ok(url)
}

/// The media type of manifest `bytes`: the `Content-Type` if it names a manifest or
/// index, else what the document says of itself.
fn manifest_media_type(content_type: Option<&str>, bytes: &[u8]) -> Result<String, ManifestError> {
    let declared = content_type
        .map(|ct| ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .filter(|ct| !ct.is_empty());
    let media_type = match declared {
        Some(ct) if oci::is_manifest_media_type(&ct) || oci::is_index_media_type(&ct) => ct,
        Some(ct) if ct == MEDIA_TYPE_DOCKER_SCHEMA1 || ct == MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED => {
            return Err(ManifestError::Schema1);
        }
        declared => oci::detect_media_type(bytes)
            .ok_or_else(|| ManifestError::UnsupportedMediaType(declared.unwrap_or_else(|| "unknown".into())))?,
    };
    if oci::is_manifest_media_type(&media_type) || oci::is_index_media_type(&media_type) {
        Ok(media_type)
    } else if media_type == MEDIA_TYPE_DOCKER_SCHEMA1 || media_type == MEDIA_TYPE_DOCKER_SCHEMA1_SIGNED {
        Err(ManifestError::Schema1)
    } else {
        Err(ManifestError::UnsupportedMediaType(media_type))
    }
}

/// When every endpoint failed: "not found" if all said so, the one error if there was one
/// endpoint, else all of them.
fn summarize(reference: String, mut failures: Vec<EndpointFailure>) -> RegistryError {
    if failures.len() == 1 || failures.iter().all(|f| f.error.is_not_found()) {
        return failures.swap_remove(0).error;
    }
    RegistryError::AllEndpointsFailed { reference, failures }
}

enum ReadError {
    TooLarge,
    Io(io::Error),
}

/// Reads a whole body, refusing more than `limit` bytes: reading stops there, so a body
/// without a length (or with a false one) costs no more memory than that.
async fn read_limited(response: reqwest::Response, limit: u64) -> Result<Bytes, ReadError> {
    match oci::read_at_most(body_reader(response), limit).await {
        Ok(Some(body)) => Ok(Bytes::from(body)),
        Ok(None) => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// The body of `response` as a reader; its errors carry their causes (not the URL).
fn body_reader(response: reqwest::Response) -> impl AsyncRead + Send + Unpin {
    StreamReader::new(
        response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| io::Error::other(error_chain(&e.without_url())))),
    )
}

fn content_length(response: &reqwest::Response) -> Option<u64> {
    header_str(response, CONTENT_LENGTH.as_str())?.trim().parse().ok()
}

fn header_str(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name)?.to_str().ok().map(str::to_string)
}

/// An unexpected status, with the registry's error message when it sent one.
async fn status_error(url: &str, response: reqwest::Response) -> RegistryError {
    let status = response.status().as_u16();
    let message = error_message(response).await;
    RegistryError::Status {
        url: url.to_string(),
        status,
        message,
    }
}

/// The message of a registry error body (`{"errors":[{"code":..,"message":..}]}`), or the
/// start of a plain-text body.
async fn error_message(response: reqwest::Response) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let body = match read_limited(response, MAX_ERROR_BODY).await {
        Ok(body) => body,
        Err(_) => return None,
    };
    if let Ok(errors) = serde_json::from_slice::<Errors>(&body) {
        let parts: Vec<String> = errors
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return Some(parts.join("; "));
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(200).collect())
}

fn http_error(url: &str, error: reqwest::Error) -> RegistryError {
    RegistryError::Http {
        url: url.to_string(),
        reason: error_chain(&error.without_url()),
    }
}

/// An error and its sources, joined by `: ` (reqwest's own message is vague; the cause,
/// such as "connection refused", is in the chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
