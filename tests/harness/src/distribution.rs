//! A small client of the OCI distribution API over plain HTTP: enough to push images
//! and indexes built by [`crate::image_builder`] and [`crate::image_index`] and to read
//! them back, anonymously or with Basic authentication.
//!
//! Pushing follows the spec's two-step upload: `POST /v2/NAME/blobs/uploads/` opens a
//! session, `PUT <Location>?digest=...` sends the blob. `HEAD /v2/NAME/blobs/DIGEST` first
//! skips blobs the registry already has.

use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use ureq::http::{Response, StatusCode};

use crate::image_builder::{Image, MEDIA_TYPE_MANIFEST};
use crate::image_index::{ImageIndex, MEDIA_TYPE_INDEX};

/// Manifest media types accepted when reading a manifest back.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The `Content-Type` the registry answered with.
    pub media_type: String,
    /// The `Docker-Content-Digest` header, if the registry sent one.
    pub digest: Option<String>,
    /// The manifest bytes.
    pub body: Vec<u8>,
}

/// A client of one registry at `http://ADDR`. Never uses a proxy.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    agent: ureq::Agent,
    /// `Basic <base64>` sent with every request, if set.
    authorization: Option<String>,
}

impl std::fmt::Debug for RegistryClient {
    /// Never prints the credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base)
            .field("authenticated", &self.authorization.is_some())
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// A client of the registry at `addr` (`HOST:PORT`), plain HTTP.
    pub fn new(addr: &str) -> RegistryClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        RegistryClient {
            base: format!("http://{addr}"),
            agent,
            authorization: None,
        }
    }

    /// The same client, sending `user` and `password` with Basic authentication on every
    /// request (what docker-registry's `htpasswd` authentication asks for).
    pub fn with_basic_auth(mut self, user: &str, password: &str) -> RegistryClient {
        self.authorization = Some(basic_authorization(user, password));
        self
    }

    /// Adds the `Authorization` header, if the client has credentials.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /v2/`: succeeds when the registry answers 200.
    pub fn ping(&self) -> anyhow::Result<()> {
        self.ping_with_timeout(Duration::from_secs(10))
    }

    /// `GET /v2/` with a short timeout, for readiness loops.
    pub fn ping_with_timeout(&self, timeout: Duration) -> anyhow::Result<()> {
        let response = self.get_v2(timeout)?;
        expect_status(response, &[StatusCode::OK], "GET /v2/").map(drop)
    }

    /// The status `GET /v2/` answers with: 200, or 401 when the registry wants
    /// credentials this client does not send (or are wrong).
    pub fn v2_status(&self) -> anyhow::Result<u16> {
        Ok(self.get_v2(Duration::from_secs(10))?.status().as_u16())
    }

    fn get_v2(&self, timeout: Duration) -> anyhow::Result<Response<ureq::Body>> {
        self.authorized(self.agent.get(format!("{}/v2/", self.base)))
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .context("GET /v2/")
    }

    /// `HEAD /v2/REPO/blobs/DIGEST`: true if the registry has the blob.
    pub fn has_blob(&self, repository: &str, digest: &str) -> anyhow::Result<bool> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let response = self
            .authorized(self.agent.head(&url))
            .call()
            .with_context(|| format!("HEAD {url}"))?;
        match response.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => bail!("HEAD {url}: unexpected {status}"),
        }
    }

    /// Uploads a blob unless the registry already has it; returns whether it was sent.
    pub fn push_blob(&self, repository: &str, digest: &str, data: &[u8]) -> anyhow::Result<bool> {
        if self.has_blob(repository, digest)? {
            return Ok(false);
        }
        let start = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let response = self
            .authorized(self.agent.post(&start))
            .send_empty()
            .with_context(|| format!("POST {start}"))?;
        let response = expect_status(response, &[StatusCode::ACCEPTED], &format!("POST {start}"))?;
        let location = response
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .with_context(|| format!("POST {start}: no Location header"))?;
        let mut upload = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        upload.push(if upload.contains('?') { '&' } else { '?' });
        upload.push_str("digest=");
        upload.push_str(&digest.replace(':', "%3A"));
        let response = self
            .authorized(self.agent.put(&upload))
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .with_context(|| format!("PUT blob {digest} of {repository}"))?;
        expect_status(
            response,
            &[StatusCode::CREATED],
            &format!("PUT blob {digest} of {repository}"),
        )?;
        Ok(true)
    }

    /// `PUT /v2/REPO/manifests/REFERENCE`; returns the digest the registry reports.
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> anyhow::Result<String> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .authorized(self.agent.put(&url))
            .header("Content-Type", media_type)
            .send(body)
            .with_context(|| format!("PUT {url}"))?;
        let response = expect_status(response, &[StatusCode::CREATED], &format!("PUT {url}"))?;
        Ok(response
            .headers()
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| crate::image_builder::sha256_digest(body)))
    }

    /// Pushes an image's blobs (skipping those already there), then its manifest under
    /// each tag. Returns the manifest digest.
    pub fn push_image(&self, repository: &str, tags: &[&str], image: &Image) -> anyhow::Result<String> {
        self.push_image_blobs(repository, image)?;
        for tag in tags {
            self.push_checked(repository, tag, MEDIA_TYPE_MANIFEST, image.manifest(), image.digest())?;
        }
        Ok(image.digest().to_string())
    }

    /// Pushes every image of an index (blobs, then each manifest by its digest: the
    /// registry refuses an index naming manifests it lacks), then the index under each
    /// tag. Returns the index digest.
    pub fn push_index(&self, repository: &str, tags: &[&str], index: &ImageIndex) -> anyhow::Result<String> {
        for (_, image) in index.entries() {
            self.push_image_blobs(repository, image)?;
            self.push_checked(
                repository,
                image.digest(),
                MEDIA_TYPE_MANIFEST,
                image.manifest(),
                image.digest(),
            )?;
        }
        for tag in tags {
            self.push_checked(repository, tag, MEDIA_TYPE_INDEX, index.manifest(), index.digest())?;
        }
        Ok(index.digest().to_string())
    }

    fn push_image_blobs(&self, repository: &str, image: &Image) -> anyhow::Result<()> {
        for layer in image.layers() {
            self.push_blob(repository, layer.digest(), layer.blob())?;
        }
        self.push_blob(repository, image.config_digest(), image.config_blob())?;
        Ok(())
    }

    /// Pushes a manifest or index and checks that the registry stored it under `expected`.
    fn push_checked(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
        expected: &str,
    ) -> anyhow::Result<()> {
        let digest = self.push_manifest(repository, reference, media_type, body)?;
        if digest != expected {
            bail!("registry stored {repository}:{reference} as {digest}, expected {expected}");
        }
        Ok(())
    }

    /// `GET /v2/REPO/manifests/REFERENCE`; `None` if the registry does not know it.
    pub fn manifest(&self, repository: &str, reference: &str) -> anyhow::Result<Option<FetchedManifest>> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let response = self
            .authorized(self.agent.get(&url))
            .header("Accept", ACCEPT_MANIFESTS)
            .call()
            .with_context(|| format!("GET {url}"))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut response = expect_status(response, &[StatusCode::OK], &format!("GET {url}"))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let media_type = header("Content-Type").unwrap_or_default();
        let digest = header("Docker-Content-Digest");
        let body = response
            .body_mut()
            .read_to_vec()
            .with_context(|| format!("reading {url}"))?;
        Ok(Some(FetchedManifest {
            media_type,
            digest,
            body,
        }))
    }

    /// `GET /v2/REPO/blobs/DIGEST`; `None` if the registry does not have it.
    pub fn blob(&self, repository: &str, digest: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let response = self
            .authorized(self.agent.get(&url))
            .call()
            .with_context(|| format!("GET {url}"))?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let mut response = expect_status(response, &[StatusCode::OK], &format!("GET {url}"))?;
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .with_context(|| format!("reading {url}"))?;
        Ok(Some(body))
    }
}

/// The `Authorization` header value of Basic authentication (RFC 7617).
fn basic_authorization(user: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}

/// Returns the response if its status is one of `expected`, else an error with the
/// registry's error body.
fn expect_status(
    mut response: Response<ureq::Body>,
    expected: &[StatusCode],
    what: &str,
) -> anyhow::Result<Response<ureq::Body>> {
    if expected.contains(&response.status()) {
        return Ok(response);
    }
    let status = response.status();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    bail!("{what}: {status}: {}", body.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_authorization_encodes_user_and_password() {
        // The example of RFC 7617, section 2.
        assert_eq!(
            basic_authorization("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn debug_output_hides_the_credentials() {
        let client = RegistryClient::new("127.0.0.1:5000").with_basic_auth("u", "hunter2");
        let debug = format!("{client:?}");
        assert!(debug.contains("authenticated: true"), "{debug}");
        assert!(!debug.contains("hunter2") && !debug.contains("Basic"), "{debug}");
    }
}
