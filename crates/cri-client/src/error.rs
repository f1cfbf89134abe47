//! The client's error: a bad endpoint, a failed connection, or a gRPC status from the
//! runtime, one variant per status code a caller acts on, each keeping the runtime's
//! message verbatim.

use std::error::Error as StdError;
use std::time::Duration;

use tonic::{Code, Status};

use crate::endpoint::EndpointError;

/// What can go wrong talking to a CRI runtime.
///
/// The variants that carry a `String` are gRPC statuses; the string is the runtime's own
/// message (or, when the connection failed, what broke). [`Error::code`] gives the gRPC
/// code of any of them, so callers can either match (`Err(Error::NotFound(_)) => ...`) or
/// ask (`err.is_not_found()`).
///
/// Failures of the connection itself (the runtime is down or restarting, the connection
/// broke mid-call) are reported as [`Error::Unavailable`], whatever tonic called them, so
/// "retry later" is one check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint string is not one the client understands.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// [`Client::connect`](crate::Client::connect) could not reach the runtime.
    #[error("cannot connect to {endpoint}: {}", root_cause(.source))]
    Connect {
        /// The endpoint, as written by [`Endpoint`](crate::Endpoint)'s `Display`.
        endpoint: String,
        /// The transport's error; its chain holds the I/O error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The object (container, sandbox, image...) does not exist.
    #[error("not found{}", colon(.0))]
    NotFound(String),
    /// The request was malformed or named something the runtime does not accept.
    #[error("invalid argument{}", colon(.0))]
    InvalidArgument(String),
    /// The name or id is already taken.
    #[error("already exists{}", colon(.0))]
    AlreadyExists(String),
    /// The object is not in a state that allows the operation.
    #[error("failed precondition{}", colon(.0))]
    FailedPrecondition(String),
    /// The runtime cannot be reached right now; retrying later may succeed.
    #[error("unavailable{}", colon(.0))]
    Unavailable(String),
    /// The call's deadline passed, on the runtime's side or on ours.
    #[error("deadline exceeded{}", colon(.0))]
    DeadlineExceeded(String),
    /// The runtime does not implement this RPC (or this part of it).
    #[error("unimplemented{}", colon(.0))]
    Unimplemented(String),
    /// The runtime refused the caller.
    #[error("permission denied{}", colon(.0))]
    PermissionDenied(String),
    /// Any other gRPC status: cancelled, unknown, resource exhausted, aborted, out of range,
    /// internal, data loss, unauthenticated.
    #[error("{}{}", code_name(*.code), colon(.message))]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The runtime's message.
        message: String,
    },
}

impl Error {
    /// The gRPC status code of an RPC error; `None` for endpoint and connect errors.
    pub fn code(&self) -> Option<Code> {
        Some(match self {
            Error::Endpoint(_) | Error::Connect { .. } => return None,
            Error::NotFound(_) => Code::NotFound,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::Status { code, .. } => *code,
        })
    }

    /// The runtime's message of an RPC error; `None` for endpoint and connect errors.
    pub fn message(&self) -> Option<&str> {
        match self {
            Error::Endpoint(_) | Error::Connect { .. } => None,
            Error::NotFound(m)
            | Error::InvalidArgument(m)
            | Error::AlreadyExists(m)
            | Error::FailedPrecondition(m)
            | Error::Unavailable(m)
            | Error::DeadlineExceeded(m)
            | Error::Unimplemented(m)
            | Error::PermissionDenied(m)
            | Error::Status { message: m, .. } => Some(m),
        }
    }

    /// True for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// True for [`Error::AlreadyExists`].
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists(_))
    }

    /// True when the runtime could not be reached: [`Error::Unavailable`] or
    /// [`Error::Connect`]. Retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::Connect { .. })
    }

    /// True for [`Error::DeadlineExceeded`].
    pub fn is_deadline_exceeded(&self) -> bool {
        matches!(self, Error::DeadlineExceeded(_))
    }

    /// True for [`Error::Unimplemented`].
    pub fn is_unimplemented(&self) -> bool {
        matches!(self, Error::Unimplemented(_))
    }

    /// Builds the error for a status returned by a call that had `deadline` and took
    /// `elapsed`.
    ///
    /// tonic reports an expired deadline as `Cancelled` ("Timeout expired"), on the client
    /// side and, sent over the wire, from tonic servers: `Cancelled` once the deadline has
    /// passed becomes [`Error::DeadlineExceeded`], as a grpc-go runtime would say.
    ///
    /// A status tonic made up locally (it then has a source: the transport's error) is a
    /// failure of the connection, not an answer from the runtime; tonic calls a dropped
    /// connection `Unknown` or `Cancelled`. Those become [`Error::Unavailable`], and so
    /// does containerd's answer while it starts up (see [`CONTAINERD_NOT_INITIALIZED`]).
    pub(crate) fn from_status(status: Status, deadline: Option<Duration>, elapsed: Duration) -> Self {
        if let (Code::Cancelled, Some(deadline)) = (status.code(), deadline.filter(|d| elapsed >= *d)) {
            return Error::DeadlineExceeded(format!("no answer within {deadline:?}"));
        }
        let Some(cause) = status.source() else {
            // An answer from the runtime.
            return match status.code() {
                Code::Unknown if status.message() == CONTAINERD_NOT_INITIALIZED => {
                    Error::Unavailable(status.message().to_owned())
                }
                code => Error::from_code(code, status.message().to_owned()),
            };
        };
        // Made up by tonic: the connection failed.
        let cause = root_cause(cause);
        let message = if status.message().contains(&cause) {
            format!("connection failed: {}", status.message())
        } else {
            format!("connection failed: {}: {cause}", status.message())
        };
        match status.code() {
            Code::Unknown | Code::Cancelled => Error::Unavailable(message),
            code => Error::from_code(code, message),
        }
    }

    /// The variant for `code`.
    fn from_code(code: Code, message: String) -> Self {
        match code {
            Code::NotFound => Error::NotFound(message),
            Code::InvalidArgument => Error::InvalidArgument(message),
            Code::AlreadyExists => Error::AlreadyExists(message),
            Code::FailedPrecondition => Error::FailedPrecondition(message),
            Code::Unavailable => Error::Unavailable(message),
            Code::DeadlineExceeded => Error::DeadlineExceeded(message),
            Code::Unimplemented => Error::Unimplemented(message),
            Code::PermissionDenied => Error::PermissionDenied(message),
            code => Error::Status { code, message },
        }
    }
}

/// What containerd's CRI plugin answers, with code `Unknown`, to every call it receives
/// between opening its socket and finishing its start-up (`checkInitialized` in
/// `pkg/cri/server/instrumented_service.go`, 1.6 and 1.7). Seen here right after a restart:
/// it means "try again shortly", so it is reported as [`Error::Unavailable`].
const CONTAINERD_NOT_INITIALIZED: &str = "server is not initialized yet";

/// The message of the innermost error of a chain: the one that says what happened
/// (`No such file or directory (os error 2)`), not `transport error`.
fn root_cause(error: &(dyn StdError + 'static)) -> String {
    let mut error = error;
    while let Some(source) = error.source() {
        error = source;
    }
    error.to_string()
}

/// `": message"`, or nothing when the runtime sent no message.
fn colon(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// The lower-case name of a gRPC code, as the error messages spell it.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid argument",
        Code::DeadlineExceeded => "deadline exceeded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::PermissionDenied => "permission denied",
        Code::ResourceExhausted => "resource exhausted",
        Code::FailedPrecondition => "failed precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out of range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_CODES: [Code; 16] = [
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    fn from_runtime(code: Code, message: &str) -> Error {
        Error::from_status(Status::new(code, message), None, Duration::ZERO)
    }

    #[test]
    fn a_status_from_the_runtime_keeps_its_code_and_message() {
        for code in ALL_CODES {
            let err = from_runtime(code, "container \"abc\" in use");
            assert_eq!(err.code(), Some(code), "{code:?}");
            assert_eq!(err.message(), Some("container \"abc\" in use"), "{code:?}");
        }
    }

    #[test]
    fn the_codes_callers_act_on_have_their_own_variant() {
        let cases = [
            ("not found", Code::NotFound, "not found: x"),
            ("invalid argument", Code::InvalidArgument, "invalid argument: x"),
            ("already exists", Code::AlreadyExists, "already exists: x"),
            (
                "failed precondition",
                Code::FailedPrecondition,
                "failed precondition: x",
            ),
            ("unavailable", Code::Unavailable, "unavailable: x"),
            ("deadline exceeded", Code::DeadlineExceeded, "deadline exceeded: x"),
            ("unimplemented", Code::Unimplemented, "unimplemented: x"),
            ("permission denied", Code::PermissionDenied, "permission denied: x"),
            ("any other code", Code::ResourceExhausted, "resource exhausted: x"),
        ];
        for (desc, code, display) in cases {
            let err = from_runtime(code, "x");
            let own_variant = !matches!(err, Error::Status { .. });
            assert_eq!(own_variant, code != Code::ResourceExhausted, "{desc}");
            assert_eq!(err.to_string(), display, "{desc}");
        }
        assert!(from_runtime(Code::NotFound, "").is_not_found());
        assert!(from_runtime(Code::AlreadyExists, "").is_already_exists());
        assert!(from_runtime(Code::Unavailable, "").is_unavailable());
        assert!(from_runtime(Code::DeadlineExceeded, "").is_deadline_exceeded());
        assert!(from_runtime(Code::Unimplemented, "").is_unimplemented());
    }

    #[test]
    fn an_empty_message_leaves_no_dangling_colon() {
        assert_eq!(from_runtime(Code::NotFound, "").to_string(), "not found");
        assert_eq!(from_runtime(Code::Internal, "").to_string(), "internal");
    }

    #[test]
    fn a_dropped_connection_is_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        let status = Status::from_error(Box::new(io));
        assert_eq!(status.code(), Code::Unknown, "tonic's own mapping");
        let err = Error::from_status(status, Some(Duration::from_secs(5)), Duration::from_millis(3));
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.to_string(), "unavailable: connection failed: broken pipe");
    }

    #[test]
    fn containerd_starting_up_is_unavailable() {
        let err = from_runtime(Code::Unknown, "server is not initialized yet");
        assert!(err.is_unavailable(), "{err:?}");
        assert_eq!(err.to_string(), "unavailable: server is not initialized yet");
        assert_eq!(from_runtime(Code::Unknown, "other").code(), Some(Code::Unknown));
    }

    #[test]
    fn tonic_s_own_deadline_becomes_deadline_exceeded() {
        let status = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(status.code(), Code::Cancelled, "tonic's own mapping");
        let deadline = Duration::from_secs(1);
        let err = Error::from_status(status, Some(deadline), Duration::from_millis(1001));
        assert!(err.is_deadline_exceeded(), "{err:?}");
        assert_eq!(err.to_string(), "deadline exceeded: no answer within 1s");
    }

    #[test]
    fn a_tonic_runtime_s_expired_deadline_becomes_deadline_exceeded() {
        let err = Error::from_status(
            Status::cancelled("Timeout expired"),
            Some(Duration::from_secs(1)),
            Duration::from_secs(1),
        );
        assert!(err.is_deadline_exceeded(), "{err:?}");
    }

    #[test]
    fn a_cancelled_status_sent_before_the_deadline_stays_cancelled() {
        let err = Error::from_status(
            Status::cancelled("context canceled"),
            Some(Duration::from_secs(1)),
            Duration::from_millis(2),
        );
        assert_eq!(err.code(), Some(Code::Cancelled));
        assert_eq!(err.to_string(), "cancelled: context canceled");
    }
}
