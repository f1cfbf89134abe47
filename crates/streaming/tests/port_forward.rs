//! Port-forward sessions carrying real TCP connections to an echo server.

mod common;

use std::time::Duration;

use common::{echo_server, server};
use streaming::PortForwardRequest;
use streaming::client;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const TEN_MB: usize = 10 * 1024 * 1024;

fn payload(seed: u32) -> Vec<u8> {
    (0..TEN_MB as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 24) as u8)
        .collect()
}

/// Writes `data` while reading the echo back, and checks it whole. With `half_close`,
/// the write side is then shut and the echo server's own end must arrive as end of
/// stream (WebSocket port-forward has no half-close).
async fn echo_through<S: AsyncRead + AsyncWrite + Unpin>(stream: S, data: Vec<u8>, half_close: bool) {
    let (mut read, mut write) = tokio::io::split(stream);
    let expected = data.clone();
    let writer = async move {
        write.write_all(&data).await.unwrap();
        if half_close {
            write.shutdown().await.unwrap();
        }
        write
    };
    let reader = async move {
        let mut back = vec![0; expected.len()];
        read.read_exact(&mut back).await.unwrap();
        assert!(back == expected, "echoed bytes differ");
        if half_close {
            assert_eq!(
                read.read(&mut [0u8; 16]).await.unwrap(),
                0,
                "end of stream after the echo"
            );
        }
    };
    tokio::time::timeout(Duration::from_secs(60), async { tokio::join!(writer, reader) })
        .await
        .expect("echo completes");
}

#[tokio::test]
async fn spdy_forwards_ten_megabytes_each_way_on_concurrent_connections() {
    let (server, _) = server().await;
    let port = echo_server().await;
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![],
        })
        .unwrap();
    let forwarder = client::port_forward(&url).await.unwrap();
    let first = forwarder.connect(port).await.unwrap();
    let second = forwarder.connect(port).await.unwrap();
    tokio::join!(
        echo_through(first, payload(1), true),
        echo_through(second, payload(2), true)
    );
    // Nothing listens on port 1: the error stream says so, and the session goes on.
    let refused = forwarder.connect(1).await.unwrap();
    let message = refused.error().await.expect("an error report");
    assert!(
        message.starts_with("error forwarding port 1 to pod pod1, uid : "),
        "{message}"
    );
    let again = forwarder.connect(port).await.unwrap();
    echo_through(again, b"still forwarding".repeat(10), true).await;
    forwarder.close().await;
}

#[tokio::test]
async fn websocket_forwards_ten_megabytes_each_way() {
    let (server, _) = server().await;
    let port = echo_server().await;
    for base64 in [false, true] {
        // Ports from the CRI request.
        let url = server
            .get_port_forward(PortForwardRequest {
                pod_sandbox_id: "pod1".into(),
                port: vec![i32::from(port)],
            })
            .unwrap();
        let mut session = client::port_forward_websocket(&url, &[port], base64).await.unwrap();
        let forwarded = session.ports.remove(0);
        echo_through(forwarded, payload(3), false).await;
        session.close().await;
    }
    // Ports from the query, when the CRI request names none.
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "pod1".into(),
            port: vec![],
        })
        .unwrap();
    let mut session = client::port_forward_websocket(&url, &[port, 1], false).await.unwrap();
    let refused = session.ports.remove(1);
    let message = refused.error().await.expect("an error report");
    assert!(message.starts_with("error forwarding port 1 to pod pod1"), "{message}");
    echo_through(session.ports.remove(0), b"hello".to_vec(), false).await;
}
