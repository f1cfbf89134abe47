//! One probe attempt: exec (ExecSync), httpGet (HTTP/1.1 GET, 200..400 is success) or
//! tcpSocket (a connection opens), bounded by `timeoutSeconds`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{ProbeOutcome, ProbeTarget, settings::ProbeSettings};

/// The User-Agent the kubelet sends with HTTP probes (servers sometimes key on it).
pub const USER_AGENT: &str = "kube-probe/1.20";
/// How much of an exec probe's output is kept in the failure message.
const MAX_OUTPUT: usize = 10 * 1024;
/// How much of an HTTP response head is read to find the status line.
const MAX_STATUS_LINE: usize = 4096;

/// Runs the probe once against the target and says how it went.
pub async fn run_once(probe: &Probe, target: &ProbeTarget) -> ProbeOutcome {
    let timeout = ProbeSettings::of(probe).timeout;
    if let Some(exec) = &probe.exec {
        return exec_probe(exec, target, timeout).await;
    }
    if let Some(http) = &probe.http_get {
        let attempt = http_probe(http, &target.pod_ip, &target.container);
        return with_timeout(timeout, attempt).await;
    }
    if let Some(tcp) = &probe.tcp_socket {
        let attempt = tcp_probe(tcp, &target.pod_ip, &target.container);
        return with_timeout(timeout, attempt).await;
    }
    if probe.grpc.is_some() {
        return ProbeOutcome::Failure("grpc probes are not supported by kubelet-lite".to_owned());
    }
    ProbeOutcome::Failure("the probe has no handler (exec, httpGet or tcpSocket)".to_owned())
}

async fn with_timeout(timeout: Duration, attempt: impl Future<Output = ProbeOutcome>) -> ProbeOutcome {
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| ProbeOutcome::Failure(format!("probe timed out after {}s", timeout.as_secs_f64())))
}

async fn exec_probe(exec: &ExecAction, target: &ProbeTarget, timeout: Duration) -> ProbeOutcome {
    let command = exec.command.clone().unwrap_or_default();
    if command.is_empty() {
        return ProbeOutcome::Failure("exec probe has no command".to_owned());
    }
    match target.runtime.exec_sync(&target.container_id, command, timeout).await {
        Ok(response) if response.exit_code == 0 => ProbeOutcome::Success,
        Ok(response) => {
            let mut output = response.stdout;
            output.extend_from_slice(&response.stderr);
            output.truncate(MAX_OUTPUT);
            let output = String::from_utf8_lossy(&output);
            ProbeOutcome::Failure(format!(
                "command exited with {}: {}",
                response.exit_code,
                output.trim_end()
            ))
        }
        Err(cri_client::Error::DeadlineExceeded(_)) => {
            ProbeOutcome::Failure(format!("command timed out after {}s", timeout.as_secs_f64()))
        }
        Err(err) => ProbeOutcome::Failure(format!("exec failed: {err}")),
    }
}

/// A port number, or the number of the container's port of that name.
pub(crate) fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("container has no port named {name:?}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port {number}"))
}

/// `host:port`, bracketing IPv6 addresses.
fn authority(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn tcp_probe(tcp: &TCPSocketAction, pod_ip: &str, container: &Container) -> ProbeOutcome {
    let port = match resolve_port(&tcp.port, container) {
        Ok(port) => port,
        Err(message) => return ProbeOutcome::Failure(message),
    };
    let host = tcp.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    let address = authority(host, port);
    match TcpStream::connect(&address).await {
        Ok(_) => ProbeOutcome::Success,
        Err(err) => ProbeOutcome::Failure(format!("dial tcp {address}: {err}")),
    }
}

async fn http_probe(http: &HTTPGetAction, pod_ip: &str, container: &Container) -> ProbeOutcome {
    let scheme = http.scheme.as_deref().unwrap_or("HTTP");
    if !scheme.eq_ignore_ascii_case("HTTP") {
        return ProbeOutcome::Failure(format!("scheme {scheme} is not supported by kubelet-lite (only HTTP)"));
    }
    let port = match resolve_port(&http.port, container) {
        Ok(port) => port,
        Err(message) => return ProbeOutcome::Failure(message),
    };
    let host = http.host.as_deref().filter(|h| !h.is_empty()).unwrap_or(pod_ip);
    let address = authority(host, port);
    let request = http_request(http, &address);
    let result = async {
        let mut stream = TcpStream::connect(&address).await?;
        stream.write_all(request.as_bytes()).await?;
        read_status(&mut stream).await
    }
    .await;
    match result {
        Ok(code) if (200..400).contains(&code) => ProbeOutcome::Success,
        Ok(code) => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(err) => ProbeOutcome::Failure(format!("Get \"http://{address}{}\": {err}", path_of(http))),
    }
}

fn path_of(http: &HTTPGetAction) -> String {
    match http.path.as_deref() {
        None | Some("") => "/".to_owned(),
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
    }
}

/// The request bytes: GET with the probe's headers; `Host` and `User-Agent` default to
/// the target address and [`USER_AGENT`] unless the probe sets them.
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

/// Reads the status line of an HTTP/1.x response and returns its code.
async fn read_status(stream: &mut TcpStream) -> std::io::Result<u16> {
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
