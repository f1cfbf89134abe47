//! Proxying exec, attach and port-forward to the runtime's streaming server, as the
//! kubelet does with the URL its CRI call returned: the client's request goes on to that
//! URL with the headers of the upgrade, the runtime's answer comes back, and after a
//! `101 Switching Protocols` the bytes are copied both ways until either side closes.
//! Nothing is decoded, so SPDY/3.1 and WebSocket (any subprotocol) pass alike.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::{Body, full};
use super::error::ApiError;

/// The request headers that carry the upgrade and its protocol negotiation; no other
/// header (credentials in particular) goes to the runtime.
const FORWARDED_HEADERS: &[HeaderName] = &[
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::ORIGIN,
];

/// The header of the Kubernetes SPDY protocol versions, one value per version.
const STREAM_PROTOCOL_VERSION: &str = "x-stream-protocol-version";

/// How long the runtime has to answer the request.
const RUNTIME_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a non-upgrade answer of the runtime passed back.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Forwards `request` (already authorized) to the runtime's streaming `url`, with
/// `query` (the client's stream options) added to the URL's own, and answers with the
/// runtime's answer; on a 101, the connections are joined in a task of their own.
pub(crate) async fn proxy_stream(
    mut request: Request<Incoming>,
    url: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let target: Uri = url
        .parse()
        .map_err(|err| ApiError::internal(format!("the runtime's streaming URL {url:?}: {err}")))?;
    if target.scheme_str() != Some("http") {
        return Err(ApiError::internal(format!(
            "the runtime's streaming URL {url:?} is not http://"
        )));
    }
    let authority = target
        .authority()
        .ok_or_else(|| ApiError::internal(format!("the runtime's streaming URL {url:?} has no host")))?
        .clone();
    let address = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:80", authority.host()),
    };
    let path_and_query = match (target.query(), query.is_empty()) {
        (Some(own), false) => format!("{}?{own}&{query}", target.path()),
        (Some(own), true) => format!("{}?{own}", target.path()),
        (None, false) => format!("{}?{query}", target.path()),
        (None, true) => target.path().to_owned(),
    };

    let mut forwarded = Request::builder()
        .method(request.method().clone())
        .uri(path_and_query)
        .header(header::HOST, authority.as_str());
    for name in FORWARDED_HEADERS
        .iter()
        .chain([&HeaderName::from_static(STREAM_PROTOCOL_VERSION)])
    {
        for value in request.headers().get_all(name) {
            forwarded = forwarded.header(name, value);
        }
    }
    let forwarded = forwarded
        .body(Empty::<Bytes>::new())
        .map_err(|err| ApiError::internal(format!("building the runtime request: {err}")))?;
    let client_upgrade: OnUpgrade = hyper::upgrade::on(&mut request);

    let unreachable = |err: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the runtime's streaming server at {address}: {err}"),
        )
    };
    let exchange = async {
        let stream = TcpStream::connect(&address).await.map_err(|err| unreachable(&err))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| unreachable(&err))?;
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "runtime streaming connection");
            }
        });
        sender.send_request(forwarded).await.map_err(|err| unreachable(&err))
    };
    let mut answer = tokio::time::timeout(RUNTIME_ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(&"no answer in time"))??;

    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = answer.status();
        let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
        let body = Limited::new(answer.into_body(), MAX_ERROR_BODY)
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .unwrap_or_default();
        let mut response = Response::new(full(body));
        *response.status_mut() = status;
        if let Some(content_type) = content_type {
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
        }
        return Ok(response);
    }

    let runtime_upgrade = hyper::upgrade::on(&mut answer);
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in answer.headers() {
        response.headers_mut().append(name, value.clone());
    }
    if !response.headers().contains_key(header::CONNECTION) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    tokio::spawn(async move {
        let (client, runtime) = tokio::join!(client_upgrade, runtime_upgrade);
        match (client, runtime) {
            (Ok(client), Ok(runtime)) => {
                let (mut client, mut runtime) = (TokioIo::new(client), TokioIo::new(runtime));
                if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut runtime).await {
                    tracing::debug!(error = %err, "stream proxy ended");
                }
            }
            (client, runtime) => {
                tracing::warn!(client = ?client.err(), runtime = ?runtime.err(), "stream upgrade failed");
            }
        }
    });
    Ok(response)
}
