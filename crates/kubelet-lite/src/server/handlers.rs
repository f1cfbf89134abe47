//! One request, once authenticated and authorized: dispatched on its [`Route`] to the
//! handler of that endpoint.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use jiff::Timestamp;
use tokio::sync::mpsc;

use super::body::{self, Body, json, respond, text};
use super::error::ApiError;
use super::logs::{LogFile, LogOptions, copy_log, log_body};
use super::routes::{ContainerRef, Route};
use super::streams::ContainerStream::{Attach, Exec};
use super::{State, locate, streams};

/// How many chunks of a log (each about one 64 KiB block of the file) wait for a slow
/// client: the copy reads on only as the client takes them.
const LOG_CHANNEL_DEPTH: usize = 4;

/// Answers `request` for `route`.
pub(crate) async fn dispatch(
    state: &Arc<State>,
    request: Request<Incoming>,
    route: Route,
) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    let streaming = matches!(route, Route::Exec(_) | Route::Attach(_) | Route::PortForward(_));
    let allowed = if streaming {
        method == Method::GET || method == Method::POST
    } else if matches!(route, Route::Run(_)) {
        method == Method::POST
    } else {
        method == Method::GET || method == Method::HEAD
    };
    if !allowed {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here"),
        ));
    }
    match route {
        Route::Healthz => Ok(text("ok")),
        Route::Pods => {
            let list = k8s_openapi::List {
                items: state.pods.pods(),
                metadata: Default::default(),
            };
            json(&list)
        }
        Route::StatsSummary => json(&state.stats.summary(&state.node_name, state.cri.as_ref()).await?),
        Route::Metrics => Ok(respond(
            StatusCode::OK,
            crate::metrics::CONTENT_TYPE,
            body::full(state.metrics.render()),
        )),
        Route::Exec(container) => streams::container_stream(cri(state)?, request, &container, Exec).await,
        Route::Attach(container) => streams::container_stream(cri(state)?, request, &container, Attach).await,
        Route::PortForward(pod) => streams::port_forward(cri(state)?, request, &pod).await,
        Route::Run(container) => streams::run(cri(state)?, &request, &container).await,
        Route::ContainerLogs(container) => container_logs(state, &request, container).await,
    }
}

fn cri(state: &State) -> Result<&cri_client::Client, ApiError> {
    state
        .cri
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no container runtime"))
}

/// `/containerLogs`: the log of the container's current (or previous) instance, streamed
/// from its file as the client reads.
async fn container_logs(
    state: &Arc<State>,
    request: &Request<Incoming>,
    container: ContainerRef,
) -> Result<Response<Body>, ApiError> {
    let options = LogOptions::from_query(request.uri().query().unwrap_or_default(), Timestamp::now())?;
    let cri = cri(state)?.clone();
    let (id, path) = locate::log_file(&cri, &container, options.previous).await?;
    // Fail before the 200 if the file cannot be opened at all.
    let log = LogFile::open(path.clone())
        .await
        .map_err(|err| ApiError::internal(format!("reading {}: {err}", path.display())))?;
    let (sender, receiver) = mpsc::channel::<Bytes>(LOG_CHANNEL_DEPTH);
    tokio::spawn(async move {
        let running = || {
            let (cri, id) = (cri.clone(), id.clone());
            async move { locate::is_running(&cri, &id).await }
        };
        if let Err(err) = copy_log(log, &options, sender, running).await {
            tracing::debug!(path = %path.display(), error = %err, "copying a log ended");
        }
    });
    Ok(respond(StatusCode::OK, "text/plain; charset=utf-8", log_body(receiver)))
}
