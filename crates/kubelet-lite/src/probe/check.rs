//! One probe attempt: exec (ExecSync), httpGet (HTTP/1.1 GET over HTTP or HTTPS, 200..400
//! is success: [`super::http`]), tcpSocket (a connection opens) or grpc (the standard
//! health check answers SERVING: [`super::grpc`]), bounded by `timeoutSeconds`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, Probe, TCPSocketAction};
use tokio::net::TcpStream;

use super::address::{authority, resolve_port};
use super::grpc::health_check;
use super::http::http_get;
use super::{ProbeOutcome, ProbeTarget, settings::ProbeSettings};

/// How much of an exec probe's output is kept in the failure message.
const MAX_OUTPUT: usize = 10 * 1024;

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
    if let Some(grpc) = &probe.grpc {
        let attempt = async {
            match health_check(grpc, &target.pod_ip).await {
                Ok(()) => ProbeOutcome::Success,
                Err(message) => ProbeOutcome::Failure(message),
            }
        };
        return with_timeout(timeout, attempt).await;
    }
    ProbeOutcome::Failure("the probe has no handler (exec, httpGet, tcpSocket or grpc)".to_owned())
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
    match http_get(http, pod_ip, container).await {
        Ok(code) if (200..400).contains(&code) => ProbeOutcome::Success,
        Ok(code) => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Err(message) => ProbeOutcome::Failure(message),
    }
}
