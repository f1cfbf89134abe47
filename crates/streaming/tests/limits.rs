//! What one client can hold on the server is bounded: the time to send a request head,
//! connections, streams per connection, bytes past a stream's window, and sessions per
//! container. A client at a limit is refused or disconnected; the others go on.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{closed_by_server, echo_server, raw_spdy, raw_spdy_with, server_with, sh, still_serves, syn_stream};
use futures_util::{SinkExt, StreamExt};
use streaming::client::{self, ClientError, Protocol, RemoteCommand};
use streaming::spdy::frame::{Codec, Frame, rst_status};
use streaming::spdy::{Headers, Limits};
use streaming::{AttachRequest, Config, ExecRequest, PortForwardRequest, Server};
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};

/// The SETTINGS id of the initial window size (SPDY/3 section 2.6.4).
const SETTINGS_INITIAL_WINDOW_SIZE: u32 = 7;
/// The window SPDY/3 starts streams with.
const INITIAL_WINDOW: u32 = 64 * 1024;

/// The next frame the server sends, within 5 s.
async fn next_frame(frames: &mut FramedRead<OwnedReadHalf, Codec>) -> Frame {
    tokio::time::timeout(Duration::from_secs(5), frames.next())
        .await
        .expect("a frame within 5 s")
        .expect("the connection is open")
        .expect("a valid frame")
}

/// An exec of `cat` on `container_id` whose stdin stays open until the returned end
/// is dropped.
fn held_exec(server: &Server<common::HostRuntime>, container_id: &str) -> (DuplexStream, JoinHandle<()>) {
    let url = server
        .get_exec(ExecRequest {
            container_id: container_id.into(),
            stdin: true,
            ..sh("cat")
        })
        .unwrap();
    let (hold, stdin) = tokio::io::duplex(16);
    let mut command = RemoteCommand::new(Protocol::SpdyV4);
    command.stdin = Some(Box::pin(stdin));
    let session = tokio::spawn(async move {
        client::run(&url, command).await.unwrap();
    });
    (hold, session)
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_at_the_header_deadline_while_execs_go_on() {
    let (server, _) = server_with(Config {
        header_read_timeout: Duration::from_millis(500),
        ..Config::default()
    })
    .await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let mut slow = TcpStream::connect(server.local_addr()).await.unwrap();
    // A request head one byte every 50 ms, never finished: 5 s if nobody stops it.
    let trickle = tokio::spawn(async move {
        let head = format!(
            "GET /exec/token HTTP/1.1\r\nHost: node\r\nX-Padding: {}",
            "x".repeat(60)
        );
        for byte in head.bytes() {
            if slow.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        slow
    });
    still_serves(&server).await;
    closed_by_server(&mut silent).await;
    let mut slow = trickle.await.unwrap();
    closed_by_server(&mut slow).await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(400), "closed after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    still_serves(&server).await;
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_ends() {
    let (server, _) = server_with(Config {
        max_connections: 2,
        ..Config::default()
    })
    .await;
    // One idle connection and one upgraded session take both places.
    let idle = TcpStream::connect(server.local_addr()).await.unwrap();
    let (hold, session) = held_exec(&server, "c1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = server.get_exec(sh("echo third")).unwrap();
    let third = tokio::spawn(async move { client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third connection was served");
    // The session ends: its place goes to the waiting connection.
    drop(hold);
    session.await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the third connection is served once a place is free")
        .unwrap()
        .unwrap();
    assert_eq!(output.stdout, b"third\n");
    drop(idle);
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused() {
    let (server, _) = server_with(Config {
        limits: Limits {
            max_concurrent_streams: 4,
            ..Limits::default()
        },
        ..Config::default()
    })
    .await;
    let port = echo_server().await.to_string();
    let url = server
        .get_port_forward(PortForwardRequest {
            pod_sandbox_id: "p1".into(),
            port: Vec::new(),
        })
        .unwrap();
    let (read, write) = raw_spdy_with(&url, "portforward.k8s.io").await.into_split();
    let (mut input, mut out) = (
        FramedRead::new(read, Codec::default()),
        FramedWrite::new(write, Codec::default()),
    );
    // Five error streams that wait for their data streams: the fifth is one too many.
    for request in 0..5u32 {
        let headers = Headers::new()
            .with("streamType", "error")
            .with("port", &port)
            .with("requestID", &request.to_string());
        out.send(common::syn_stream_with(2 * request + 1, headers))
            .await
            .unwrap();
    }
    let mut answers = Vec::new();
    while answers.len() < 5 {
        match next_frame(&mut input).await {
            Frame::SynReply { stream_id, .. } => answers.push((stream_id, None)),
            Frame::RstStream { stream_id, status } => answers.push((stream_id, Some(status))),
            _ => {}
        }
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            (1, None),
            (3, None),
            (5, None),
            (7, None),
            (9, Some(rst_status::REFUSED_STREAM))
        ]
    );
}

#[tokio::test]
async fn data_past_a_streams_window_is_refused() {
    let (server, seen) = server_with(Config::default()).await;
    let url = server
        .get_exec(ExecRequest {
            stdin: true,
            stderr: false,
            ..sh("sleep 30")
        })
        .unwrap();
    let (read, write) = raw_spdy(&url).await.into_split();
    let (mut input, mut out) = (
        FramedRead::new(read, Codec::default()),
        FramedWrite::new(write, Codec::default()),
    );
    // A peer that keeps SPDY/3.1 flow control says so with its initial window.
    out.send(Frame::Settings {
        entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, INITIAL_WINDOW)],
    })
    .await
    .unwrap();
    for (stream_id, stream_type) in [(1, "error"), (3, "stdin"), (5, "stdout")] {
        out.send(syn_stream(stream_id, stream_type)).await.unwrap();
    }
    assert!(
        common::eventually(Duration::from_secs(5), || !seen.pids.lock().unwrap().is_empty()).await,
        "the exec started"
    );
    // 1 MiB of stdin at once, for a process that reads none of it.
    let flood = tokio::spawn(async move {
        for _ in 0..32 {
            let chunk = Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from(vec![b'x'; 32 * 1024]),
            };
            if out.send(chunk).await.is_err() {
                break;
            }
        }
        out
    });
    let status = loop {
        if let Frame::RstStream { stream_id: 3, status } = next_frame(&mut input).await {
            break status;
        }
    };
    assert_eq!(status, rst_status::FLOW_CONTROL_ERROR);
    let _out = flood.await.unwrap();
    still_serves(&server).await;
}

#[tokio::test]
async fn exec_and_attach_sessions_beyond_the_per_container_cap_are_refused() {
    let (server, seen) = server_with(Config {
        max_sessions_per_container: 2,
        ..Config::default()
    })
    .await;
    let (first, first_session) = held_exec(&server, "c1");
    let (_second, _second_session) = held_exec(&server, "c1");
    assert!(
        common::eventually(Duration::from_secs(5), || seen.pids.lock().unwrap().len() == 2).await,
        "both sessions started"
    );
    let refusal = |result: Result<client::Output, ClientError>| match result {
        Err(ClientError::Upgrade { status, body }) => (status, body),
        other => panic!("not refused: {other:?}"),
    };
    let url = server.get_exec(sh("echo third")).unwrap();
    let (status, body) = refusal(client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await);
    assert_eq!(status, 429);
    assert_eq!(
        body.trim_end(),
        "too many exec and attach sessions in container c1 (at most 2 at once)"
    );
    let url = server
        .get_attach(AttachRequest {
            container_id: "c1".into(),
            stdout: true,
            ..AttachRequest::default()
        })
        .unwrap();
    let (status, _) = refusal(client::run(&url, RemoteCommand::new(Protocol::WebSocketV5)).await);
    assert_eq!(status, 429, "attach counts with exec");
    // Another container has places of its own.
    let url = server
        .get_exec(ExecRequest {
            container_id: "c2".into(),
            ..sh("echo other")
        })
        .unwrap();
    let output = client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await.unwrap();
    assert_eq!(output.stdout, b"other\n");
    // A session that ends frees its place.
    drop(first);
    first_session.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let url = server.get_exec(sh("echo again")).unwrap();
        match client::run(&url, RemoteCommand::new(Protocol::SpdyV4)).await {
            Ok(output) => break assert_eq!(output.stdout, b"again\n"),
            Err(ClientError::Upgrade { status: 429, .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}
