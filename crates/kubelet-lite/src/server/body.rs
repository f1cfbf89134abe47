//! The body type of every answer, and the few ways answers are made.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};

use super::error::ApiError;

/// The body of an answer: whole, empty or streamed (a log: `logs::log_body`).
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// An answer with `status`, `content_type` and `body`.
pub(crate) fn respond(status: StatusCode, content_type: &str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// A 200 with a plain text body.
pub(crate) fn text(body: impl Into<Bytes>) -> Response<Body> {
    respond(StatusCode::OK, "text/plain; charset=utf-8", full(body))
}

/// A 200 with a JSON body.
pub(crate) fn json(value: &impl serde::Serialize) -> Result<Response<Body>, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|err| ApiError::internal(format!("encoding JSON: {err}")))?;
    Ok(respond(StatusCode::OK, "application/json", full(bytes)))
}

/// The answer for a failed request: its status and message.
pub(crate) fn error(error: &ApiError) -> Response<Body> {
    respond(
        error.status,
        "text/plain; charset=utf-8",
        full(format!("{}\n", error.message)),
    )
}
