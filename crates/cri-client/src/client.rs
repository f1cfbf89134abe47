//! The [`Client`]: one connection to a runtime, shared by its two services, and the one
//! function every unary call goes through (deadline, tracing, error mapping).
//!
//! The RPCs themselves live in files named for what they act on: `runtime.rs`,
//! `sandbox.rs`, `container.rs`, `exec.rs`, `stats.rs`, `events.rs` and `image.rs`.

use std::future::Future;
use std::time::{Duration, Instant};

use cri_api::client::{ImageServiceClient, RuntimeServiceClient};
use tonic::transport::Channel;
use tracing::Instrument;

use crate::connect;
use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::options::Options;

/// The result of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The largest message sent or accepted: 16 MiB, the kubelet's `maxMsgSize` (tonic's
/// default of 4 MiB is too small for ExecSync output, which containerd caps at 16 MiB, or
/// for listing thousands of containers).
pub const MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;

/// An async client for a CRI runtime's `RuntimeService` and `ImageService`.
///
/// Cloning is cheap and clones share the connection; every method takes `&self`, so one
/// client can serve many tasks at once. The connection is re-established by itself after
/// the runtime restarts (calls during the outage fail with [`Error::Unavailable`]).
#[derive(Debug, Clone)]
pub struct Client {
    runtime: RuntimeServiceClient<Channel>,
    image: ImageServiceClient<Channel>,
    options: Options,
}

/// How long one call may take.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deadline {
    /// [`Options::call_timeout`].
    Default,
    /// The runtime's own timeout for the operation, plus [`Options::call_timeout`].
    AfterDefault(Duration),
    /// Exactly this long, or no deadline at all.
    Exactly(Option<Duration>),
}

impl Client {
    /// Connects to `endpoint` (see [`Endpoint`] for the forms) with the default
    /// [`Options`], waiting for the connection to be established.
    pub async fn connect(endpoint: &str) -> Result<Client> {
        Client::connect_with(endpoint, Options::default()).await
    }

    /// Connects to `endpoint` with these options, waiting up to
    /// [`Options::connect_timeout`] for the connection.
    pub async fn connect_with(endpoint: &str, options: Options) -> Result<Client> {
        let endpoint = Endpoint::parse(endpoint)?;
        let channel = connect::connect(&endpoint, &options).await?;
        tracing::debug!(%endpoint, "connected to cri runtime");
        Ok(Client::from_channel(channel, options))
    }

    /// A client for `endpoint` that connects on its first call; only a malformed endpoint
    /// is an error here. Must be called within a tokio runtime.
    pub fn connect_lazy(endpoint: &str, options: Options) -> Result<Client> {
        let endpoint = Endpoint::parse(endpoint)?;
        let channel = connect::connect_lazy(&endpoint, &options)?;
        Ok(Client::from_channel(channel, options))
    }

    /// A client over a channel built elsewhere, e.g. an in-process one for an embedded
    /// runtime.
    pub fn from_channel(channel: Channel, options: Options) -> Client {
        Client {
            runtime: RuntimeServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            image: ImageServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_SIZE)
                .max_encoding_message_size(MAX_MESSAGE_SIZE),
            options,
        }
    }

    /// A clone of this client (sharing its connection) with `timeout` as its
    /// [`Options::call_timeout`]: the deadline of ordinary calls and the margin added to
    /// the timeouts of ExecSync, StopContainer and CheckpointContainer.
    ///
    /// ```no_run
    /// # async fn f(client: &cri_client::Client) -> cri_client::Result<()> {
    /// use std::time::Duration;
    /// let quick = client.with_call_timeout(Duration::from_secs(2));
    /// let pods = quick.list_pod_sandbox(None).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_call_timeout(&self, timeout: Duration) -> Client {
        Client {
            options: self.options.clone().call_timeout(timeout),
            ..self.clone()
        }
    }

    /// The options this client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The generated tonic client of `RuntimeService`, for what this crate does not wrap.
    pub fn runtime_service(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    /// The generated tonic client of `ImageService`, for what this crate does not wrap.
    pub fn image_service(&self) -> ImageServiceClient<Channel> {
        self.image.clone()
    }

    /// The deadline a call gets.
    pub(crate) fn timeout(&self, deadline: Deadline) -> Option<Duration> {
        match deadline {
            Deadline::Default => Some(self.options.get_call_timeout()),
            Deadline::AfterDefault(own) => Some(own.saturating_add(self.options.get_call_timeout())),
            Deadline::Exactly(timeout) => timeout,
        }
    }

    /// Sends one unary call of either service: `call` is the generated client's method
    /// (`RuntimeServiceClient::version`, `ImageServiceClient::pull_image`...), which also
    /// picks the service.
    ///
    /// `rpc` names the call in traces, `subject` is the id or image it is about (empty if
    /// none). The deadline goes in the request's `grpc-timeout`, so the runtime sees it too.
    pub(crate) async fn call<Service, Req, Resp>(
        &self,
        rpc: &'static str,
        subject: &str,
        deadline: Deadline,
        request: Req,
        call: impl AsyncFnOnce(&mut Service, tonic::Request<Req>) -> Result<tonic::Response<Resp>, tonic::Status>,
    ) -> Result<Resp>
    where
        Service: ServiceClient,
    {
        let timeout = self.timeout(deadline);
        let mut client = Service::of(self);
        let response = call(&mut client, request_with(request, timeout));
        unary(rpc, subject, timeout, response).await
    }
}

/// One of the client's two generated service clients; [`Client::call`] picks it from the
/// method it is given.
pub(crate) trait ServiceClient {
    /// This service's client of `client`'s connection.
    fn of(client: &Client) -> Self;
}

impl ServiceClient for RuntimeServiceClient<Channel> {
    fn of(client: &Client) -> Self {
        client.runtime.clone()
    }
}

impl ServiceClient for ImageServiceClient<Channel> {
    fn of(client: &Client) -> Self {
        client.image.clone()
    }
}

/// A request carrying `timeout` as its gRPC deadline.
fn request_with<Req>(message: Req, timeout: Option<Duration>) -> tonic::Request<Req> {
    let mut request = tonic::Request::new(message);
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Awaits `call` in a span named for the RPC and maps its status to an [`Error`].
async fn unary<Resp>(
    rpc: &'static str,
    subject: &str,
    timeout: Option<Duration>,
    call: impl Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
) -> Result<Resp> {
    let span = tracing::debug_span!("cri", rpc, id = subject);
    async move {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        match result {
            Ok(response) => {
                tracing::trace!(?elapsed, "ok");
                Ok(response.into_inner())
            }
            Err(status) => {
                let error = Error::from_status(status, timeout, elapsed);
                tracing::debug!(?elapsed, %error, "failed");
                Err(error)
            }
        }
    }
    .instrument(span)
    .await
}
