//! A CRI server built with `cri_api::unix` answers Python grpcio, a client that sends the
//! socket path (plain or %-encoded) as the HTTP/2 `:authority`.
//!
//! Needs `python3` with the `grpcio` package (PyPI). Outside CI a missing one skips the
//! tests with a message; with `CI=true` it fails them.

use std::path::{Path, PathBuf};
use std::process::Command;

use cri_api::server::{RuntimeService, RuntimeServiceServer};
use cri_api::v1::{VersionRequest, VersionResponse};
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

/// The runtime name the test server reports.
const RUNTIME_NAME: &str = "grpcio-test-runtime";

/// A runtime that only answers Version; every other RPC is Unimplemented.
struct VersionOnly;

#[tonic::async_trait]
impl RuntimeService for VersionOnly {
    async fn version(&self, _: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "0.1.0".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: "0.1.0".into(),
            runtime_api_version: "v1".into(),
        }))
    }
}

/// Serves [`VersionOnly`] on `socket` through the serving helper.
fn serve_with_helper(socket: &Path) -> JoinHandle<()> {
    let incoming = cri_api::unix::bind(socket).expect("bind the socket");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(cri_api::unix::V1Alpha2AliasLayer)
            .add_service(RuntimeServiceServer::new(VersionOnly))
            .serve_with_incoming(incoming)
            .await
            .expect("serve");
    })
}

/// Serves [`VersionOnly`] on `socket` with plain tonic, as a runtime without the helper.
fn serve_plain(socket: &Path) -> JoinHandle<()> {
    let listener = tokio::net::UnixListener::bind(socket).expect("bind the socket");
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(RuntimeServiceServer::new(VersionOnly))
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener))
            .await
            .expect("serve");
    })
}

/// Whether python3 with grpcio is here; with CI=true its absence is a failure.
fn grpcio_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import grpc"])
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with grpcio is required in CI (pip install grpcio)"
        );
        eprintln!("skipped: python3 with grpcio is not installed (pip install grpcio)");
    }
    found
}

/// Runs the grpcio client; returns its output line and whether the call succeeded.
async fn call_with_grpcio(socket: &Path, method: &str, authority: Option<&str>) -> (bool, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpcio_client.py");
    let mut command = Command::new("python3");
    command.arg(script).arg(socket).arg(method).args(authority);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (output.status.success(), format!("{stdout} {stderr}").trim().to_string())
}

fn percent_encode_path(path: &Path) -> String {
    path.to_string_lossy().replace('/', "%2F")
}

const VERSION: &str = "/runtime.v1.RuntimeService/Version";

#[tokio::test]
async fn grpcio_calls_succeed_whatever_authority_they_send() {
    if !grpcio_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let server = serve_with_helper(&socket);

    let path_authority = socket.to_string_lossy().into_owned();
    let encoded_authority = percent_encode_path(&socket);
    let cases = [
        ("grpcio's own default authority", None),
        ("the socket path as authority", Some(path_authority.as_str())),
        (
            "the %-encoded socket path as authority",
            Some(encoded_authority.as_str()),
        ),
        ("a well-formed authority", Some("localhost")),
    ];
    for (desc, authority) in cases {
        let (ok, output) = call_with_grpcio(&socket, VERSION, authority).await;
        assert!(ok, "{desc}: {output}");
        assert_eq!(output, RUNTIME_NAME, "{desc}");
    }
    server.abort();
}

#[tokio::test]
async fn v1alpha2_calls_reach_the_v1_service() {
    if !grpcio_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let server = serve_with_helper(&socket);

    let authority = socket.to_string_lossy().into_owned();
    let (ok, output) = call_with_grpcio(&socket, "/runtime.v1alpha2.RuntimeService/Version", Some(&authority)).await;
    assert!(ok, "{output}");
    assert_eq!(output, RUNTIME_NAME);

    let (ok, output) = call_with_grpcio(&socket, "/runtime.v1.RuntimeService/RuntimeConfig", None).await;
    assert!(!ok, "an RPC the runtime does not implement fails");
    assert!(output.contains("UNIMPLEMENTED"), "{output}");
    server.abort();
}

#[tokio::test]
async fn plain_tonic_refuses_a_path_authority_which_is_why_the_helper_exists() {
    if !grpcio_available() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("cri.sock");
    let server = serve_plain(&socket);

    let authority = socket.to_string_lossy().into_owned();
    let (ok, output) = call_with_grpcio(&socket, VERSION, Some(&authority)).await;
    assert!(
        !ok,
        "h2 accepted a path authority; the helper may no longer be needed: {output}"
    );

    let (ok, output) = call_with_grpcio(&socket, VERSION, Some("localhost")).await;
    assert!(ok, "{output}");
    server.abort();
}

#[tokio::test]
async fn binding_refuses_a_live_socket_and_replaces_a_stale_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nested/dir/cri.sock");
    let server = serve_with_helper(&socket);
    tokio::task::yield_now().await;

    let err = cri_api::unix::bind(&socket).expect_err("a live socket is not taken over");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);

    server.abort();
    let _ = server.await;
    // The listener is gone; its socket file is stale and may be replaced.
    cri_api::unix::bind(&socket).expect("a stale socket is replaced");

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"data").expect("write");
    let err = cri_api::unix::bind(&file).expect_err("a regular file is never removed");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(file.exists());
}
