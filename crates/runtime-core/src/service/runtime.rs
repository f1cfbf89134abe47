//! The CRI `RuntimeService`. For now it identifies the runtime (Version) and reports its
//! conditions (Status); pod sandboxes and containers answer Unimplemented until they land.

use cri_api::server::RuntimeService;
use cri_api::v1::{RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse, VersionRequest, VersionResponse};
use tonic::{Request, Response, Status};

/// The runtime's name in `Version`.
pub const RUNTIME_NAME: &str = "runtime-core";
/// The CRI version served.
pub const RUNTIME_API_VERSION: &str = "v1";
/// The kubelet-facing version of the CRI protocol (`VersionResponse.version`).
const KUBELET_API_VERSION: &str = "0.1.0";

/// The `RuntimeService` of runtime-core.
#[derive(Debug, Clone, Default)]
pub struct RuntimeServiceImpl;

#[tonic::async_trait]
impl RuntimeService for RuntimeServiceImpl {
    async fn version(&self, _: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: KUBELET_API_VERSION.into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: RUNTIME_API_VERSION.into(),
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let conditions = vec![
            RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                ..Default::default()
            },
            RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkNotImplemented".into(),
                message: "pod networking is not implemented yet".into(),
            },
        ];
        Ok(Response::new(StatusResponse {
            status: Some(RuntimeStatus { conditions }),
            ..Default::default()
        }))
    }
}
