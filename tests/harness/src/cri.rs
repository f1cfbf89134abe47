//! Raw tonic channels to a CRI endpoint on a unix socket, and small CRI helpers.
//!
//! These sit below `cri-client` on purpose: the harness must not depend on the client it
//! helps to test. The channel sends `localhost` as the HTTP/2 `:authority`, as kubelet
//! 1.26+ does (ENVIRONMENT.md explains why a socket path there breaks tonic servers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cri_api::client::{ImageServiceClient, RuntimeServiceClient};
use cri_api::v1;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::service_fn;

/// The endpoint every connection claims to reach; the connector ignores it.
const AUTHORITY_URI: &str = "http://localhost";

fn endpoint() -> Endpoint {
    Endpoint::from_static(AUTHORITY_URI).connect_timeout(Duration::from_secs(5))
}

fn connector(
    path: PathBuf,
) -> impl tower::Service<Uri, Response = TokioIo<UnixStream>, Error = std::io::Error, Future: Send> + Clone {
    service_fn(move |_: Uri| {
        let path = path.clone();
        async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
    })
}

/// Connects to a gRPC server on the unix socket at `path`.
pub async fn connect_unix(path: impl AsRef<Path>) -> Result<Channel, tonic::transport::Error> {
    endpoint()
        .connect_with_connector(connector(path.as_ref().to_path_buf()))
        .await
}

/// A channel to the unix socket at `path` that connects on first use and reconnects after
/// the server restarts. Must be called inside a tokio runtime (its background task lives
/// there); the channel may then be used from any runtime.
pub fn lazy_unix_channel(path: impl AsRef<Path>) -> Channel {
    endpoint().connect_with_connector_lazy(connector(path.as_ref().to_path_buf()))
}

/// The socket path of a `unix://` endpoint (`unix:///run/x.sock` or `unix:/run/x.sock`).
pub fn socket_path(endpoint: &str) -> Option<&Path> {
    let path = endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))?;
    path.starts_with('/').then(|| Path::new(path))
}

/// Asks the runtime on `channel` for its version, within `timeout`.
pub async fn version(channel: Channel, timeout: Duration) -> anyhow::Result<v1::VersionResponse> {
    let mut client = RuntimeServiceClient::new(channel);
    within(timeout, client.version(v1::VersionRequest::default())).await
}

/// Stops and removes every pod sandbox (which removes their containers, and makes the
/// runtime tear down their networks) and then any container left outside a sandbox.
/// Each call gets `per_call` to answer. Returns how many sandboxes it removed.
pub async fn remove_all_pods(channel: Channel, per_call: Duration) -> anyhow::Result<usize> {
    let mut client = RuntimeServiceClient::new(channel);
    let sandboxes = within(per_call, client.list_pod_sandbox(v1::ListPodSandboxRequest::default()))
        .await?
        .items;
    let mut errors = Vec::new();
    for sandbox in &sandboxes {
        let pod_sandbox_id = sandbox.id.clone();
        let stop = v1::StopPodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.clone(),
        };
        if let Err(err) = within(per_call, client.stop_pod_sandbox(stop)).await {
            errors.push(format!("StopPodSandbox {pod_sandbox_id}: {err:#}"));
        }
        let remove = v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod_sandbox_id.clone(),
        };
        if let Err(err) = within(per_call, client.remove_pod_sandbox(remove)).await {
            errors.push(format!("RemovePodSandbox {pod_sandbox_id}: {err:#}"));
        }
    }
    let containers = within(per_call, client.list_containers(v1::ListContainersRequest::default()))
        .await?
        .containers;
    for container in containers {
        let container_id = container.id;
        let stop = v1::StopContainerRequest {
            container_id: container_id.clone(),
            timeout: 0,
        };
        let _ = within(per_call, client.stop_container(stop)).await;
        let remove = v1::RemoveContainerRequest {
            container_id: container_id.clone(),
        };
        if let Err(err) = within(per_call, client.remove_container(remove)).await {
            errors.push(format!("RemoveContainer {container_id}: {err:#}"));
        }
    }
    if errors.is_empty() {
        Ok(sandboxes.len())
    } else {
        anyhow::bail!("{}", errors.join("; "))
    }
}

/// Awaits one gRPC call for at most `timeout` and unwraps its message.
pub async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(anyhow::anyhow!("{}: {}", status.code(), status.message())),
        Err(_) => Err(anyhow::anyhow!("no answer within {timeout:?}")),
    }
}

/// An image service client on `channel`.
pub fn image_client(channel: Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(channel)
}

/// A runtime service client on `channel`.
pub fn runtime_client(channel: Channel) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_their_socket() {
        assert_eq!(socket_path("unix:///run/c.sock"), Some(Path::new("/run/c.sock")));
        assert_eq!(socket_path("unix:/run/c.sock"), Some(Path::new("/run/c.sock")));
        assert_eq!(socket_path("tcp://127.0.0.1:1"), None);
        assert_eq!(socket_path("unix://relative"), None);
    }
}
