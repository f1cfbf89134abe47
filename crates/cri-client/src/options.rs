//! How long the client waits: for a connection, and for each kind of call.

use std::time::Duration;

/// The kubelet's default `--runtime-request-timeout`.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2 * 60);

/// How long [`Client::connect`](crate::Client::connect) waits for a connection by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Timeouts of a [`Client`](crate::Client).
///
/// The defaults are the kubelet's: `--runtime-request-timeout` is 2 minutes, image pulls
/// have no deadline, and ExecSync, StopContainer and CheckpointContainer get their own
/// timeout plus the call timeout, "to leave some time for the runtime to do cleanup"
/// (`remote_runtime.go`). GetContainerEvents, a stream, never has a deadline. Every
/// deadline is sent to the runtime as the request's `grpc-timeout`, and enforced on the
/// client's side as well.
///
/// ```
/// use std::time::Duration;
/// let options = cri_client::Options::new()
///     .call_timeout(Duration::from_secs(30))
///     .pull_image_timeout(Some(Duration::from_secs(600)));
/// assert_eq!(options.get_call_timeout(), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    connect_timeout: Duration,
    call_timeout: Duration,
    pull_image_timeout: Option<Duration>,
}

impl Options {
    /// The defaults: connect within 10 s, calls within 2 min, image pulls without deadline.
    pub fn new() -> Self {
        Options {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            pull_image_timeout: None,
        }
    }

    /// How long to wait for the connection (also on each reconnection).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The deadline of every call that has no deadline of its own. It is also the margin
    /// added to the timeouts of ExecSync, StopContainer and CheckpointContainer.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// The deadline of PullImage; `None` (the default) waits as long as the pull takes.
    pub fn pull_image_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pull_image_timeout = timeout;
        self
    }

    /// See [`Options::connect_timeout`].
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// See [`Options::call_timeout`].
    pub fn get_call_timeout(&self) -> Duration {
        self.call_timeout
    }

    /// See [`Options::pull_image_timeout`].
    pub fn get_pull_image_timeout(&self) -> Option<Duration> {
        self.pull_image_timeout
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}
