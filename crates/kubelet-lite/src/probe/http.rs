//! An `httpGet` action as the kubelet sends it, for probes and lifecycle hooks: one
//! HTTP/1.1 GET over plain TCP or, with scheme `HTTPS`, over TLS without verifying the
//! server's certificate (the kubelet's probes skip verification too: a pod's serving
//! certificate is rarely issued for its IP).

use std::sync::{Arc, OnceLock};

use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::address::{authority, resolve_port};

/// The User-Agent the kubelet sends with HTTP probes (servers sometimes key on it).
pub const USER_AGENT: &str = "kube-probe/1.20";
/// How much of an HTTP response head is read to find the status line.
const MAX_STATUS_LINE: usize = 4096;

/// Sends the GET `http` describes to the container (the host defaults to `pod_ip`, a
/// named port is the container's) and returns the response's status code; an error says
/// what failed, in the words of Go's HTTP client.
pub(crate) async fn http_get(http: &HTTPGetAction, pod_ip: &str, container: &Container) -> Result<u16, String> {
    let scheme = http.scheme.as_deref().unwrap_or("HTTP").to_ascii_uppercase();
    if scheme != "HTTP" && scheme != "HTTPS" {
        return Err(format!("scheme {scheme} is not supported (HTTP and HTTPS are)"));
    }
    let port = resolve_port(&http.port, container)?;
    let host = http.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    let address = authority(host, port);
    let request = http_request(http, &address);
    let url = format!("{}://{address}{}", scheme.to_ascii_lowercase(), path_of(http));
    let failed = |err: std::io::Error| format!("Get \"{url}\": {err}");
    let tcp = TcpStream::connect(&address).await.map_err(failed)?;
    if scheme == "HTTP" {
        return exchange(tcp, &request).await.map_err(failed);
    }
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
        .map_err(|err| format!("Get \"{url}\": invalid host: {err}"))?;
    let tls = tokio_rustls::TlsConnector::from(insecure_client_config())
        .connect(name, tcp)
        .await
        .map_err(failed)?;
    exchange(tls, &request).await.map_err(failed)
}

/// Writes `request` and reads the response's status code.
async fn exchange(mut stream: impl AsyncRead + AsyncWrite + Unpin, request: &str) -> std::io::Result<u16> {
    stream.write_all(request.as_bytes()).await?;
    stream.flush().await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < MAX_STATUS_LINE {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    parse_status_line(&head)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP response"))
}

fn path_of(http: &HTTPGetAction) -> String {
    match http.path.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    }
}

/// The request bytes: GET with the action's headers; `Host` and `User-Agent` default to
/// the target address and [`USER_AGENT`] unless the action sets them.
pub(crate) fn http_request(http: &HTTPGetAction, address: &str) -> String {
    let headers = http.http_headers.as_deref().unwrap_or(&[]);
    let has = |name: &str| headers.iter().any(|h| h.name.eq_ignore_ascii_case(name));
    let mut request = format!("GET {} HTTP/1.1\r\n", path_of(http));
    if !has("host") {
        request.push_str(&format!("Host: {address}\r\n"));
    }
    if !has("user-agent") {
        request.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        request.push_str("Accept: */*\r\n");
    }
    for header in headers {
        // Header values from the spec must not smuggle extra lines into the request.
        let clean = |s: &str| s.replace(['\r', '\n'], "");
        request.push_str(&format!("{}: {}\r\n", clean(&header.name), clean(&header.value)));
    }
    request.push_str("Connection: close\r\n\r\n");
    request
}

/// The status code of an HTTP/1.x status line at the start of `head`.
pub(crate) fn parse_status_line(head: &[u8]) -> Option<u16> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A TLS client that takes any server certificate, though it still checks that the
/// server holds the certificate's key (the handshake signatures).
fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let verifier = Arc::new(AnyCertificate(provider.signature_verification_algorithms));
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Accepts every certificate chain; verifies handshake signatures with the provider's
/// algorithms.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
