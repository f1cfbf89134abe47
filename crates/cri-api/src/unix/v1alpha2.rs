//! Serving `runtime.v1alpha2` calls with the `runtime.v1` services.
//!
//! Kubelets up to 1.22 call `/runtime.v1alpha2.RuntimeService/...` and
//! `/runtime.v1alpha2.ImageService/...`. The v1 API started as a copy of v1alpha2 and only
//! added fields since, so a v1alpha2 request decodes as the v1 message and a v1 reply
//! decodes as the v1alpha2 one (unknown fields are skipped). Renaming the path is all it
//! takes.

use std::task::{Context, Poll};

use tower::{Layer, Service};

/// The gRPC path prefix of the old API.
const V1ALPHA2_PREFIX: &str = "/runtime.v1alpha2.";
/// The gRPC path prefix it is routed to.
const V1_PREFIX: &str = "/runtime.v1.";

/// A tower layer for `tonic::transport::Server::layer` that serves `runtime.v1alpha2`
/// calls with the `runtime.v1` services.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Alpha2AliasLayer;

impl<S> Layer<S> for V1Alpha2AliasLayer {
    type Service = V1Alpha2Alias<S>;

    fn layer(&self, inner: S) -> Self::Service {
        V1Alpha2Alias { inner }
    }
}

/// The service made by [`V1Alpha2AliasLayer`]: renames the path, then calls `inner`.
#[derive(Debug, Clone)]
pub struct V1Alpha2Alias<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for V1Alpha2Alias<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(uri) = v1_uri(request.uri()) {
            *request.uri_mut() = uri;
        }
        self.inner.call(request)
    }
}

/// The v1 equivalent of a v1alpha2 request URI, or `None` for any other URI.
fn v1_uri(uri: &http::Uri) -> Option<http::Uri> {
    let method = uri.path().strip_prefix(V1ALPHA2_PREFIX)?;
    let mut parts = uri.clone().into_parts();
    let path = format!("{V1_PREFIX}{method}");
    parts.path_and_query = Some(path.parse().ok()?);
    http::Uri::from_parts(parts).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1alpha2_paths_are_renamed_and_others_kept() {
        let cases = [
            (
                "old runtime call",
                "/runtime.v1alpha2.RuntimeService/Version",
                Some("/runtime.v1.RuntimeService/Version"),
            ),
            (
                "old image call",
                "http://localhost/runtime.v1alpha2.ImageService/ListImages",
                Some("http://localhost/runtime.v1.ImageService/ListImages"),
            ),
            ("v1 call", "/runtime.v1.RuntimeService/Version", None),
            ("unrelated service", "/grpc.health.v1.Health/Check", None),
        ];
        for (desc, input, expected) in cases {
            let uri: http::Uri = input.parse().expect(desc);
            let renamed = v1_uri(&uri).map(|u| u.to_string());
            assert_eq!(renamed.as_deref(), expected, "{desc}");
        }
    }
}
