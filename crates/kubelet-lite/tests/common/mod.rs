//! What the integration tests share: a client that calls the kubelet API over TLS as a
//! given identity, the way the apiserver, kubectl or metrics-server would, and the
//! runtime-core daemon to drive through CRI.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, ensure};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use kubelet_lite::server::tls;
use rustls::pki_types::ServerName;
use test_harness::pki::KeyPair;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Who a request claims to be.
pub(crate) enum Identity<'a> {
    /// No credentials at all.
    Nobody,
    /// A client certificate.
    Certificate(&'a KeyPair),
    /// A bearer token.
    Token(&'a str),
}

/// A TLS connection to the API at `address` (a certificate for 127.0.0.1 of `ca`),
/// presenting `identity`'s certificate if it has one.
pub(crate) async fn connect(
    address: SocketAddr,
    ca: &Path,
    identity: &Identity<'_>,
) -> anyhow::Result<TlsStream<TcpStream>> {
    let client_files = match identity {
        Identity::Certificate(pair) => Some((pair.cert.as_path(), pair.key.as_path())),
        _ => None,
    };
    let tls = tls::client_config(ca, client_files)?;
    let stream = TcpStream::connect(address).await?;
    let server_name = ServerName::try_from("127.0.0.1")?.to_owned();
    Ok(TlsConnector::from(Arc::new(tls)).connect(server_name, stream).await?)
}

/// Sends `method path` as `identity` and returns the status and the whole body.
pub(crate) async fn call(
    address: SocketAddr,
    ca: &Path,
    identity: &Identity<'_>,
    method: Method,
    path: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let stream = connect(address, ca, identity).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string());
    if let Identity::Token(token) = identity {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender.send_request(request.body(Empty::<Bytes>::new())?).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The runtime-core daemon, with `runtime-core-monitor` beside it, built (a no-op when up
/// to date) by the cargo running this test, with its profile, into its target directory:
/// a test of another package has no `CARGO_BIN_EXE_runtime-core`.
pub(crate) fn runtime_core_binary() -> anyhow::Result<PathBuf> {
    // This test runs as TARGET/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().context("finding the test executable")?;
    let mut up = exe.ancestors().skip(2);
    let (Some(profile_dir), Some(target_dir)) = (up.next(), up.next()) else {
        anyhow::bail!("{} is not in a cargo target directory", exe.display());
    };
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => anyhow::bail!("cannot tell the cargo profile of {}", exe.display()),
    };
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--package",
            "runtime-core",
            "--bins",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    ensure!(status.success(), "cargo build --package runtime-core --bins: {status}");
    Ok(profile_dir.join("runtime-core"))
}
