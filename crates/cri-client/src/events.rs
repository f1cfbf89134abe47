//! GetContainerEvents: the runtime's stream of container lifecycle events (the evented
//! PLEG). The stream has no deadline; it ends when the runtime closes it or the
//! connection breaks.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cri_api::client::RuntimeServiceClient;
use cri_api::v1::{ContainerEventResponse, GetEventsRequest};
use tokio_stream::Stream;

use crate::client::{Client, Deadline, Result};
use crate::error::Error;

/// The stream returned by [`Client::get_container_events`].
///
/// Read it with [`ContainerEvents::message`], or as a [`Stream`] of results. A broken
/// connection ends it with [`Error::Unavailable`]; call `get_container_events` again to
/// resubscribe (events sent in between are lost, so re-list after resubscribing).
#[derive(Debug)]
pub struct ContainerEvents {
    inner: tonic::Streaming<ContainerEventResponse>,
}

impl ContainerEvents {
    /// The next event, or `None` when the runtime ended the stream.
    pub async fn message(&mut self) -> Result<Option<ContainerEventResponse>> {
        self.inner.message().await.map_err(stream_error)
    }
}

impl Stream for ContainerEvents {
    type Item = Result<ContainerEventResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|result| result.map_err(stream_error)))
    }
}

/// The error for a status ending the stream (no deadline applies).
fn stream_error(status: tonic::Status) -> Error {
    Error::from_status(status, None, Duration::ZERO)
}

impl Client {
    /// GetContainerEvents: subscribes to the runtime's container events.
    ///
    /// Returns once the runtime accepted the subscription; runtimes without events (such as
    /// containerd 1.6) answer [`Error::Unimplemented`].
    pub async fn get_container_events(&self) -> Result<ContainerEvents> {
        let deadline = Deadline::Exactly(None);
        self.call(
            "GetContainerEvents",
            "",
            deadline,
            GetEventsRequest {},
            RuntimeServiceClient::get_container_events,
        )
        .await
        .map(|inner| ContainerEvents { inner })
    }
}
