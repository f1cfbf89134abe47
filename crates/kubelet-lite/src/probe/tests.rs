//! Probes against real servers on 127.0.0.1.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerPort, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::address::resolve_port;
use super::http::{http_request, parse_status_line};
use super::*;

/// An HTTP server answering every request with `status`, sending each request head to
/// the returned channel.
async fn http_server(status: u16) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                let response = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    (port, rx)
}

fn target(container: Container) -> ProbeTarget {
    ProbeTarget {
        runtime: cri_client::Client::connect_lazy("unix:///nonexistent/cri.sock", cri_client::Options::default())
            .unwrap(),
        container_id: "c1".into(),
        pod_ip: "127.0.0.1".into(),
        container,
    }
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn http_get_status_codes() {
    for (desc, status, success) in [
        ("200 is success", 200, true),
        ("redirect is success", 302, true),
        ("399 is success", 399, true),
        ("404 is failure", 404, false),
        ("500 is failure", 500, false),
    ] {
        let (port, mut requests) = http_server(status).await;
        let outcome = run_once(
            &http_probe(IntOrString::Int(i32::from(port)), "/healthz"),
            &target(Container::default()),
        )
        .await;
        assert_eq!(outcome.is_success(), success, "{desc}: {outcome:?}");
        let head = requests.recv().await.unwrap();
        assert!(head.starts_with("GET /healthz HTTP/1.1\r\n"), "{desc}: {head}");
        assert!(
            head.contains("X-Probe: yes\r\n") && head.contains("User-Agent: kube-probe/"),
            "{head}"
        );
    }
}

#[tokio::test]
async fn http_get_named_port_and_refused_connection() {
    let (port, _requests) = http_server(200).await;
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(port),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let probe = http_probe(IntOrString::String("http".into()), "ready");
    assert_eq!(run_once(&probe, &target(container)).await, ProbeOutcome::Success);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let outcome = run_once(
        &http_probe(IntOrString::Int(i32::from(closed_port)), "/"),
        &target(Container::default()),
    )
    .await;
    assert!(
        matches!(outcome, ProbeOutcome::Failure(ref m) if m.contains("refused")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn http_get_times_out() {
    // A server that accepts and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut probe = http_probe(IntOrString::Int(i32::from(port)), "/");
    probe.timeout_seconds = Some(1);
    let started = std::time::Instant::now();
    let outcome = run_once(&probe, &target(Container::default())).await;
    assert!(
        matches!(outcome, ProbeOutcome::Failure(ref m) if m.contains("timed out")),
        "{outcome:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn tcp_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = |port: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        run_once(&probe(port), &target(Container::default())).await,
        ProbeOutcome::Success
    );
    drop(listener);
    assert!(!run_once(&probe(port), &target(Container::default())).await.is_success());
}

#[tokio::test]
async fn no_handler_and_unsupported_scheme() {
    assert!(
        !run_once(&Probe::default(), &target(Container::default()))
            .await
            .is_success()
    );
    let mut probe = http_probe(IntOrString::Int(1), "/");
    if let Some(h) = probe.http_get.as_mut() {
        h.scheme = Some("FTP".into());
    }
    let outcome = run_once(&probe, &target(Container::default())).await;
    assert!(
        matches!(outcome, ProbeOutcome::Failure(ref m) if m.contains("FTP")),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn https_probes_take_any_certificate_as_the_kubelet_does() {
    // A self-signed certificate for another name: the probe connects all the same.
    let serving = crate::server::tls::ServingCertificate::SelfSigned {
        dns_names: vec!["elsewhere.example".into()],
        ips: Vec::new(),
    };
    let config = crate::server::tls::server_config(&serving, None).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before its request ended");
            head.extend_from_slice(&buf[..n]);
        }
        tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        tls.shutdown().await.unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    let mut probe = http_probe(IntOrString::Int(i32::from(port)), "/secure");
    if let Some(h) = probe.http_get.as_mut() {
        h.scheme = Some("HTTPS".into());
    }
    let outcome = run_once(&probe, &target(Container::default())).await;
    assert!(outcome.is_success(), "{outcome:?}");
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /secure HTTP/1.1\r\n"), "{request}");
}

#[test]
fn ports_and_request_format() {
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: 8080,
            ..Default::default()
        }]),
        ..Default::default()
    };
    let cases = [
        ("number", IntOrString::Int(80), Ok(80)),
        ("numeric string", IntOrString::String("81".into()), Ok(81)),
        ("named port", IntOrString::String("web".into()), Ok(8080)),
        ("unknown name", IntOrString::String("db".into()), Err(())),
        ("out of range", IntOrString::Int(70000), Err(())),
        ("zero", IntOrString::Int(0), Err(())),
    ];
    for (desc, port, want) in cases {
        assert_eq!(resolve_port(&port, &container).map_err(|_| ()), want, "{desc}");
    }
    let action = HTTPGetAction {
        path: Some("/x".into()),
        http_headers: Some(vec![HTTPHeader {
            name: "Host".into(),
            value: "example.test\r\nEvil: 1".into(),
        }]),
        ..Default::default()
    };
    let request = http_request(&action, "198.18.0.2:80");
    assert!(request.starts_with("GET /x HTTP/1.1\r\n"));
    assert!(
        request.contains("Host: example.testEvil: 1\r\n"),
        "no header injection: {request}"
    );
    assert!(!request.contains("Host: 198.18.0.2:80"), "the probe's Host wins");
    assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Some(204));
    assert_eq!(parse_status_line(b"SSH-2.0\r\n"), None);
}

#[tokio::test]
async fn spawned_probe_publishes_and_stops_on_drop() {
    let (port, mut requests) = http_server(200).await;
    let mut probe = http_probe(IntOrString::Int(i32::from(port)), "/");
    probe.period_seconds = Some(1);
    let handle = spawn(ProbeKind::Readiness, probe, target(Container::default()));
    let mut results = handle.subscribe();
    assert_eq!(*results.borrow(), None, "no result before the first attempt");
    tokio::time::timeout(Duration::from_secs(30), results.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*results.borrow(), Some(ProbeOutcome::Success));
    assert_eq!(handle.current(), Some(ProbeOutcome::Success));
    requests.recv().await.unwrap();
    drop(handle);
    assert!(results.changed().await.is_err(), "the task ends with the handle");
}

#[tokio::test]
async fn grpc_probes_ask_the_standard_health_check() {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("ready", tonic_health::ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("draining", tonic_health::ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let grpc = |service: Option<&str>, port: u16| Probe {
        grpc: Some(k8s_openapi::api::core::v1::GRPCAction {
            port: i32::from(port),
            service: service.map(Into::into),
        }),
        ..Default::default()
    };
    // The server as a whole (the empty service name) serves once anything is set.
    for (service, healthy, reason) in [
        (None, true, ""),
        (Some("ready"), true, ""),
        (Some("draining"), false, "NOT_SERVING"),
        (Some("unknown"), false, "NotFound"),
    ] {
        let outcome = run_once(&grpc(service, port), &target(Container::default())).await;
        assert_eq!(outcome.is_success(), healthy, "{service:?}: {outcome:?}");
        if let ProbeOutcome::Failure(message) = outcome {
            assert!(message.contains(reason), "{service:?}: {message}");
        }
    }
    // Nothing listening: a failure, not a hang.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(
        !run_once(&grpc(None, closed_port), &target(Container::default()))
            .await
            .is_success()
    );
}
