//! A client that breaks the protocol loses its connection, never the server, and never
//! leaves a process running.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{closed_by_server, raw_spdy, server, server_with, sh, still_serves, syn_stream};
use futures_util::SinkExt;
use streaming::client::{self, Protocol, RemoteCommand};
use streaming::spdy::frame::{Codec, Frame};
use streaming::spdy::{Headers, Limits};
use streaming::{Config, ExecRequest};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedWrite;

#[tokio::test]
async fn a_malformed_frame_mid_session_ends_the_session_and_its_process() {
    let (server, seen) = server().await;
    let url = server
        .get_exec(ExecRequest {
            stdout: true,
            stderr: false,
            ..sh("sleep 30")
        })
        .unwrap();
    let tcp = raw_spdy(&url).await;
    let mut frames = FramedWrite::new(tcp, Codec::default());
    frames.send(syn_stream(1, "error")).await.unwrap();
    frames.send(syn_stream(3, "stdout")).await.unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || !seen.pids.lock().unwrap().is_empty()).await,
        "the exec started"
    );
    let pid = seen.pids.lock().unwrap()[0];
    // A control frame of SPDY version 2.
    let mut tcp = frames.into_inner();
    tcp.write_all(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1])
        .await
        .unwrap();
    closed_by_server(&mut tcp).await;
    assert!(common::eventually(Duration::from_secs(5), || seen.abandoned.load(Ordering::SeqCst) == 1).await);
    assert!(
        common::eventually(Duration::from_secs(5), || common::process_gone(pid)).await,
        "pid {pid} still runs"
    );
    still_serves(&server).await;
}

#[tokio::test]
async fn a_zlib_bomb_is_refused_without_inflating_it() {
    let (server, seen) = server().await;
    let url = server.get_exec(sh("true")).unwrap();
    let mut tcp = raw_spdy(&url).await;
    // 16 MiB of header bytes in about 16 KiB of zlib (without the dictionary, which a
    // zlib stream may leave out: the server must inflate it, up to its limit).
    let mut deflate = flate2::Compress::new(flate2::Compression::best(), true);
    let mut block = Vec::with_capacity(64 * 1024);
    deflate
        .compress_vec(&vec![b'a'; 16 << 20], &mut block, flate2::FlushCompress::Sync)
        .unwrap();
    let mut frame = BytesMut::new();
    frame.put_u16(0x8003);
    frame.put_u16(1);
    frame.put_u32((10 + block.len()) as u32);
    frame.put_u32(1);
    frame.put_u32(0);
    frame.put_u16(0);
    frame.put_slice(&block);
    tcp.write_all(&frame).await.unwrap();
    closed_by_server(&mut tcp).await;
    assert!(seen.pids.lock().unwrap().is_empty());
    still_serves(&server).await;
}

#[tokio::test]
async fn frames_over_the_limits_close_the_connection() {
    let limits = Limits {
        max_frame_size: 64 * 1024,
        max_header_block_size: 1024,
        ..Limits::default()
    };
    let (server, _) = server_with(Config {
        limits,
        ..Config::default()
    })
    .await;
    // A header block of more than 1 KiB.
    let url = server.get_exec(sh("true")).unwrap();
    let mut frames = FramedWrite::new(raw_spdy(&url).await, Codec::default());
    let mut headers = Headers::new().with("streamType", "error");
    for i in 0..200 {
        headers.push(&format!("x-padding-{i}"), &format!("{i:0>40}").repeat(3));
    }
    frames
        .send(Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers,
        })
        .await
        .unwrap();
    closed_by_server(frames.get_mut()).await;
    // A data frame announcing 1 MiB.
    let url = server
        .get_exec(ExecRequest {
            stdin: true,
            ..sh("cat")
        })
        .unwrap();
    let mut tcp = raw_spdy(&url).await;
    tcp.write_all(&[0, 0, 0, 1, 0, 0x10, 0, 0]).await.unwrap();
    closed_by_server(&mut tcp).await;
    // Garbage instead of frames.
    let url = server.get_exec(sh("true")).unwrap();
    let mut tcp = raw_spdy(&url).await;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: confused\r\n\r\n")
        .await
        .unwrap();
    closed_by_server(&mut tcp).await;
    still_serves(&server).await;
}

#[tokio::test]
async fn a_client_that_never_opens_its_streams_times_out() {
    let config = Config {
        stream_creation_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, seen) = server_with(config).await;
    let url = server.get_exec(sh("true")).unwrap();
    let mut frames = FramedWrite::new(raw_spdy(&url).await, Codec::default());
    frames.send(syn_stream(1, "error")).await.unwrap();
    closed_by_server(frames.get_mut()).await;
    assert!(seen.pids.lock().unwrap().is_empty(), "the runtime was never called");
    still_serves(&server).await;
}

#[tokio::test]
async fn an_idle_session_is_closed() {
    let config = Config {
        stream_idle_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (server, seen) = server_with(config).await;
    let url = server
        .get_exec(ExecRequest {
            stdin: true,
            stdout: true,
            stderr: false,
            ..sh("cat")
        })
        .unwrap();
    let (_stdin_stays_open, stdin) = tokio::io::duplex(16);
    let mut command = RemoteCommand {
        stderr: false,
        ..RemoteCommand::new(Protocol::SpdyV4)
    };
    command.stdin = Some(Box::pin(stdin));
    let session = tokio::time::timeout(Duration::from_secs(5), client::run(&url, command)).await;
    assert!(session.is_ok(), "the idle session was closed");
    assert!(common::eventually(Duration::from_secs(5), || seen.abandoned.load(Ordering::SeqCst) == 1).await);
}
