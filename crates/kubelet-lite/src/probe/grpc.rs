//! A `grpc` probe as the kubelet sends it: the standard health check
//! (`grpc.health.v1.Health/Check`, from gRPC's `health.proto`) over plain HTTP/2 to the
//! pod's IP, for the probe's service (empty: the server as a whole). Success is an answer
//! of SERVING.

use k8s_openapi::api::core::v1::GRPCAction;
use tonic::codegen::http::uri::PathAndQuery;

use super::address::authority;

/// The method every gRPC health server serves.
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

/// Calls the health check `grpc` names on the pod at `pod_ip`; `Err` says why it is not
/// healthy, in the kubelet's words.
pub(crate) async fn health_check(grpc: &GRPCAction, pod_ip: &str) -> Result<(), String> {
    let port = u16::try_from(grpc.port)
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| format!("invalid port {}", grpc.port))?;
    let address = authority(pod_ip, port);
    let failed =
        |err: &dyn std::fmt::Display| format!("failed to connect service \"{address}\" within the timeout: {err}");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|err| failed(&err))?
        .connect()
        .await
        .map_err(|err| failed(&err))?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|err| failed(&err))?;
    let request = tonic::Request::new(HealthCheckRequest {
        service: grpc.service.clone().unwrap_or_default(),
    });
    let response: tonic::Response<HealthCheckResponse> = client
        .unary(
            request,
            PathAndQuery::from_static(CHECK),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map_err(|status| format!("health rpc probe failed: {:?}: {}", status.code(), status.message()))?;
    match ServingStatus::try_from(response.into_inner().status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(status) => Err(format!(
            "service unhealthy (responded with \"{}\")",
            status_name(status)
        )),
        Err(_) => Err("service unhealthy (responded with an unknown status)".to_owned()),
    }
}

/// The status as the proto names it.
fn status_name(status: ServingStatus) -> &'static str {
    match status {
        ServingStatus::Unknown => "UNKNOWN",
        ServingStatus::Serving => "SERVING",
        ServingStatus::NotServing => "NOT_SERVING",
        ServingStatus::ServiceUnknown => "SERVICE_UNKNOWN",
    }
}
