//! What the fake records of each call: which RPC ([`Rpc`]), the request, its deadline and
//! its `:authority`.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataMap;

/// Declares [`Rpc`] and its table of names from one list, so the two cannot drift apart.
macro_rules! rpcs {
    ($($(#[$doc:meta])* $rpc:ident,)*) => {
        /// One RPC of the CRI's `RuntimeService` or `ImageService`, named as in api.proto.
        ///
        /// It names a recorded [`Call`](super::Call) and the RPC a
        /// [`Fault`](super::Fault) is injected into.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Rpc {
            $($(#[$doc])* $rpc,)*
        }

        impl Rpc {
            /// Every RPC, in api.proto's order.
            pub const ALL: &'static [Rpc] = &[$(Rpc::$rpc,)*];

            /// The RPC's name as api.proto spells it, e.g. `"RunPodSandbox"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Rpc::$rpc => stringify!($rpc),)*
                }
            }
        }
    };
}

rpcs! {
    /// `RuntimeService/Version`.
    Version,
    /// `RuntimeService/RunPodSandbox`.
    RunPodSandbox,
    /// `RuntimeService/StopPodSandbox`.
    StopPodSandbox,
    /// `RuntimeService/RemovePodSandbox`.
    RemovePodSandbox,
    /// `RuntimeService/PodSandboxStatus`.
    PodSandboxStatus,
    /// `RuntimeService/ListPodSandbox`.
    ListPodSandbox,
    /// `RuntimeService/CreateContainer`.
    CreateContainer,
    /// `RuntimeService/StartContainer`.
    StartContainer,
    /// `RuntimeService/StopContainer`.
    StopContainer,
    /// `RuntimeService/RemoveContainer`.
    RemoveContainer,
    /// `RuntimeService/ListContainers`.
    ListContainers,
    /// `RuntimeService/ContainerStatus`.
    ContainerStatus,
    /// `RuntimeService/UpdateContainerResources`.
    UpdateContainerResources,
    /// `RuntimeService/ReopenContainerLog`.
    ReopenContainerLog,
    /// `RuntimeService/ExecSync`.
    ExecSync,
    /// `RuntimeService/Exec`.
    Exec,
    /// `RuntimeService/Attach`.
    Attach,
    /// `RuntimeService/PortForward`.
    PortForward,
    /// `RuntimeService/ContainerStats`.
    ContainerStats,
    /// `RuntimeService/ListContainerStats`.
    ListContainerStats,
    /// `RuntimeService/PodSandboxStats`.
    PodSandboxStats,
    /// `RuntimeService/ListPodSandboxStats`.
    ListPodSandboxStats,
    /// `RuntimeService/UpdateRuntimeConfig`.
    UpdateRuntimeConfig,
    /// `RuntimeService/Status`.
    Status,
    /// `RuntimeService/CheckpointContainer`.
    CheckpointContainer,
    /// `RuntimeService/GetContainerEvents`.
    GetContainerEvents,
    /// `RuntimeService/ListMetricDescriptors`.
    ListMetricDescriptors,
    /// `RuntimeService/ListPodSandboxMetrics`.
    ListPodSandboxMetrics,
    /// `RuntimeService/RuntimeConfig`.
    RuntimeConfig,
    /// `ImageService/ListImages`.
    ListImages,
    /// `ImageService/ImageStatus`.
    ImageStatus,
    /// `ImageService/PullImage`.
    PullImage,
    /// `ImageService/RemoveImage`.
    RemoveImage,
    /// `ImageService/ImageFsInfo`.
    ImageFsInfo,
}

impl std::fmt::Display for Rpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A request message as the fake keeps it: any generated CRI request.
trait Recorded: Any + Debug + Send + Sync {}

impl<T: Any + Debug + Send + Sync> Recorded for T {}

/// One call the fake received, in the order they arrived.
///
/// ```
/// # use cri_client::testing::{Call, Rpc};
/// # use cri_client::v1::StopContainerRequest;
/// fn grace_of(call: &Call) -> Option<i64> {
///     assert_eq!(call.rpc, Rpc::StopContainer);
///     call.request::<StopContainerRequest>().map(|r| r.timeout)
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Call {
    /// Which RPC.
    pub rpc: Rpc,
    /// The deadline the client sent (`grpc-timeout`), if any.
    pub deadline: Option<Duration>,
    /// The request's `:authority`, when served by [`FakeRuntime::serve`](super::FakeRuntime::serve).
    pub authority: Option<String>,
    request: Arc<dyn Recorded>,
}

impl Call {
    /// Records a call of `rpc` with this request and these headers.
    pub(super) fn new<T: Any + Debug + Send + Sync>(
        rpc: Rpc,
        metadata: &MetadataMap,
        authority: Option<&Authority>,
        request: T,
    ) -> Call {
        let deadline = metadata
            .get(GRPC_TIMEOUT)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_grpc_timeout);
        Call {
            rpc,
            deadline,
            authority: authority.map(|a| a.0.clone()),
            request: Arc::new(request),
        }
    }

    /// The request message, if it is a `T` (the RPC's request type, such as
    /// [`RunPodSandboxRequest`](crate::v1::RunPodSandboxRequest) for
    /// [`Rpc::RunPodSandbox`]).
    pub fn request<T: Any>(&self) -> Option<&T> {
        let request: &dyn Any = &*self.request;
        request.downcast_ref()
    }
}

/// The `:authority` of a request, put in its extensions by the fake's server.
#[derive(Debug, Clone)]
pub(super) struct Authority(pub(super) String);

/// The header carrying a call's deadline.
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (gRPC over HTTP/2 spec).
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let unit_at = value.len().checked_sub(1)?;
    let (digits, unit) = value.split_at_checked(unit_at)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let cases = [
            ("hours", "2H", Some(Duration::from_secs(7200))),
            ("minutes", "3M", Some(Duration::from_secs(180))),
            ("seconds", "7S", Some(Duration::from_secs(7))),
            ("milliseconds", "6999m", Some(Duration::from_millis(6999))),
            ("microseconds", "12u", Some(Duration::from_micros(12))),
            ("nanoseconds", "99999999n", Some(Duration::from_nanos(99_999_999))),
            ("no unit", "12", None),
            ("no digits", "S", None),
            ("too many digits", "123456789S", None),
            ("an unknown unit", "5x", None),
            ("a sign", "-5S", None),
            ("empty", "", None),
        ];
        for (desc, value, want) in cases {
            assert_eq!(parse_grpc_timeout(value), want, "{desc}");
        }
    }

    #[test]
    fn every_rpc_has_its_api_proto_name() {
        assert_eq!(Rpc::ALL.len(), 34);
        assert_eq!(Rpc::RunPodSandbox.name(), "RunPodSandbox");
        assert_eq!(Rpc::ImageFsInfo.to_string(), "ImageFsInfo");
    }

    #[test]
    fn a_call_gives_back_its_request_as_its_own_type_only() {
        let request = crate::v1::StopContainerRequest {
            container_id: "c1".to_owned(),
            timeout: 30,
        };
        let mut metadata = MetadataMap::new();
        metadata.insert(GRPC_TIMEOUT, "37S".parse().expect("ascii"));
        let call = Call::new(Rpc::StopContainer, &metadata, None, request.clone());
        assert_eq!(call.request::<crate::v1::StopContainerRequest>(), Some(&request));
        assert_eq!(call.request::<crate::v1::StartContainerRequest>(), None);
        assert_eq!(call.deadline, Some(Duration::from_secs(37)));
    }
}
