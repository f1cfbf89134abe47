//! A client that floods a SPDY connection with frames that ask for replies (PINGs, streams
//! the server must refuse) and never reads the replies does not grow the server's memory:
//! the server drops that connection and goes on serving. The server runs in this process,
//! alone in this test binary, so the process's resident set is the server's.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{raw_spdy, server, sh, still_serves, syn_stream};
use streaming::ExecRequest;
use streaming::spdy::frame::{Codec, Frame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Encoder;

/// PINGs a flooding client writes.
const PINGS: usize = 1_000_000;
/// Streams with ids the server must refuse a flooding client opens.
const BAD_STREAMS: usize = 1_000_000;
/// Frames encoded per write.
const FRAMES_PER_WRITE: usize = 1000;
/// The most the server's resident set may grow by under one flood.
const MAX_GROWTH: u64 = 4 << 20;

/// Writes `count` frames made by `frame` without reading anything; returns how many were
/// written before the server closed the connection.
async fn flood(session: &mut Session, count: usize, frame: impl Fn(usize) -> Frame) -> usize {
    let Session { tcp, codec } = session;
    let mut written = 0;
    while written < count {
        let mut batch = BytesMut::new();
        for i in written..(written + FRAMES_PER_WRITE).min(count) {
            codec.encode(frame(i), &mut batch).unwrap();
        }
        let n = (written + FRAMES_PER_WRITE).min(count) - written;
        let sent = tokio::time::timeout(Duration::from_secs(10), tcp.write_all(&batch)).await;
        match sent {
            Ok(Ok(())) => written += n,
            Ok(Err(_)) => break,
            Err(_) => panic!("the server neither read the flood nor closed the connection ({written} written)"),
        }
    }
    written
}

/// A raw SPDY connection and the codec that keeps its header compression.
struct Session {
    tcp: TcpStream,
    codec: Codec,
}

/// A raw SPDY exec session whose process waits, its streams open.
async fn session(server: &streaming::Server<common::HostRuntime>) -> Session {
    let url = server
        .get_exec(ExecRequest {
            stderr: false,
            ..sh("sleep 30")
        })
        .unwrap();
    let mut tcp = raw_spdy(&url).await;
    let mut codec = Codec::default();
    let mut opening = BytesMut::new();
    for (stream_id, stream_type) in [(1, "error"), (3, "stdout")] {
        codec.encode(syn_stream(stream_id, stream_type), &mut opening).unwrap();
    }
    tcp.write_all(&opening).await.unwrap();
    Session { tcp, codec }
}

#[tokio::test]
async fn ping_and_refused_stream_floods_do_not_grow_the_servers_memory() {
    let (server, _) = server().await;
    // Everything a session needs once, before measuring.
    still_serves(&server).await;
    drop(session(&server).await);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut flooding = session(&server).await;
    let before = common::rss_bytes();
    // Odd ids: pings the server must answer.
    let pings = flood(&mut flooding, PINGS, |i| Frame::Ping { id: 2 * i as u32 + 1 }).await;
    let after = common::rss_bytes();
    eprintln!(
        "ping flood: {pings} of {PINGS} pings written, resident set {} KiB -> {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH,
        "the resident set grew by {} KiB",
        (after - before) / 1024
    );
    still_serves(&server).await;

    let mut flooding = session(&server).await;
    let before = common::rss_bytes();
    // Even ids are the server's own: each SYN_STREAM is answered with RST_STREAM.
    let refused = flood(&mut flooding, BAD_STREAMS, |i| syn_stream(2 * i as u32 + 2, "stdin")).await;
    let after = common::rss_bytes();
    eprintln!(
        "refused-stream flood: {refused} of {BAD_STREAMS} streams written, resident set {} KiB -> {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        after.saturating_sub(before) < MAX_GROWTH,
        "the resident set grew by {} KiB",
        (after - before) / 1024
    );
    still_serves(&server).await;
}
