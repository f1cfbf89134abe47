//! A whole SPDY connection to the streaming server, as `kubectl exec`, `attach` or
//! `port-forward` open it (through the HTTP upgrade), over an in-memory duplex: the
//! client's frames are fuzzed (valid frames on stream ids the fuzzer picks, with raw bytes
//! and pauses between them). The server must not panic, must end the session once the
//! client is gone (on the paused clock: no hang), and must only ever write well-formed
//! SPDY frames after its 101 answer.

#![no_main]

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use kubelet_lite_fuzz::session::{Client, Session, leave, pause};
use kubelet_lite_fuzz::{run_paused, split_response, streaming_server};
use libfuzzer_sys::fuzz_target;
use streaming::spdy::frame::{Codec, FLAG_FIN, Frame, Headers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

#[derive(Debug, Arbitrary)]
enum Op {
    /// Opens a stream with the headers kubectl sends.
    Open {
        id: u8,
        kind: u8,
        port: u16,
        request: u8,
        fin: bool,
        unidirectional: bool,
    },
    /// Opens a stream with headers of the fuzzer's own.
    OpenRaw {
        id: u8,
        flags: u8,
        headers: Vec<(String, String)>,
    },
    Data {
        id: u8,
        fin: bool,
        data: Vec<u8>,
    },
    Reply {
        id: u8,
        fin: bool,
    },
    Headers {
        id: u8,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Reset {
        id: u8,
        status: u8,
    },
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last: u8,
        status: u8,
    },
    WindowUpdate {
        id: u8,
        delta: u32,
    },
    Raw(Vec<u8>),
    /// Waits this many tenths of a second before the next frame.
    Pause(u8),
}

#[derive(Debug, Arbitrary)]
struct Input {
    session: Session,
    protocol: u8,
    ops: Vec<Op>,
}

const STREAM_TYPES: [&str; 7] = ["error", "stdin", "stdout", "stderr", "resize", "data", "other"];
const PROTOCOLS: [&str; 5] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "portforward.k8s.io",
];

fn stream_id(id: u8) -> u32 {
    // Mostly the odd ids a client uses, sometimes even ones or 0.
    u32::from(id % 32)
}

fn frame(op: Op) -> Result<Frame, Vec<u8>> {
    Ok(match op {
        Op::Open {
            id,
            kind,
            port,
            request,
            fin,
            unidirectional,
        } => {
            let mut headers = Headers::new().with("streamType", STREAM_TYPES[usize::from(kind) % STREAM_TYPES.len()]);
            if kind & 0x10 == 0 {
                headers.push("port", &port.to_string());
            }
            if kind & 0x20 == 0 {
                headers.push("requestID", &request.to_string());
            }
            let mut flags = 0;
            if fin {
                flags |= FLAG_FIN;
            }
            if unidirectional {
                flags |= streaming::spdy::frame::FLAG_UNIDIRECTIONAL;
            }
            Frame::SynStream {
                stream_id: stream_id(id),
                associated_to: 0,
                priority: 0,
                flags,
                headers,
            }
        }
        Op::OpenRaw { id, flags, headers } => {
            let mut h = Headers::new();
            for (name, value) in headers.iter().take(16) {
                h.push(name, value);
            }
            Frame::SynStream {
                stream_id: stream_id(id),
                associated_to: 0,
                priority: 0,
                flags,
                headers: h,
            }
        }
        Op::Data { id, fin, data } => Frame::Data {
            stream_id: stream_id(id).max(1),
            fin,
            data: Bytes::from(data),
        },
        Op::Reply { id, fin } => Frame::SynReply {
            stream_id: stream_id(id),
            fin,
            headers: Headers::new(),
        },
        Op::Headers { id, fin, headers } => {
            let mut h = Headers::new();
            for (name, value) in headers.iter().take(16) {
                h.push(name, value);
            }
            Frame::Headers {
                stream_id: stream_id(id),
                fin,
                headers: h,
            }
        }
        Op::Reset { id, status } => Frame::RstStream {
            stream_id: stream_id(id),
            status: u32::from(status % 12),
        },
        Op::Settings { entries } => Frame::Settings {
            entries: entries.into_iter().take(8).collect(),
        },
        Op::Ping { id } => Frame::Ping { id },
        Op::GoAway { last, status } => Frame::GoAway {
            last_good_stream_id: stream_id(last),
            status: u32::from(status % 3),
        },
        Op::WindowUpdate { id, delta } => Frame::WindowUpdate {
            stream_id: stream_id(id),
            delta,
        },
        Op::Raw(bytes) => return Err(bytes),
        Op::Pause(_) => unreachable!("pauses are not frames"),
    })
}

/// Reads everything the server writes and checks it: an HTTP head, then SPDY frames.
async fn check_output(mut client_read: tokio::io::ReadHalf<tokio::io::DuplexStream>) {
    let mut bytes = Vec::new();
    let _ = client_read.read_to_end(&mut bytes).await;
    let Some((head, rest)) = split_response(&bytes) else {
        return;
    };
    if !head.starts_with(b"HTTP/1.1 101") {
        return;
    }
    let mut codec = Codec::default();
    let mut wire = BytesMut::from(rest);
    loop {
        match codec.decode(&mut wire) {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => panic!("the server wrote a frame its peer cannot read: {e}"),
        }
    }
    // The server may be cut off mid-frame only if it was still writing when it closed;
    // it closes after flushing, so whatever is left is a bug.
    assert!(
        wire.is_empty(),
        "the server wrote {} bytes of a partial frame",
        wire.len()
    );
}

fuzz_target!(|input: Input| {
    if input.ops.len() > 64 {
        return;
    }
    run_paused(async move {
        let server = streaming_server();
        let Some(session) = input.session.register(&server) else {
            return;
        };
        let protocol = match session.ports {
            None => PROTOCOLS[usize::from(input.protocol) % 4],
            Some(_) => PROTOCOLS[4],
        };
        let Client {
            read,
            write: mut client_write,
            serving,
        } = Client::connect(&server);
        let reading = tokio::spawn(check_output(read));

        let request = format!(
            "POST {} HTTP/1.1\r\nHost: node\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
             X-Stream-Protocol-Version: {protocol}\r\n\r\n",
            session.path
        );
        let mut codec = Codec::default();
        let mut sent_ok = client_write.write_all(request.as_bytes()).await.is_ok();
        for op in input.ops {
            if !sent_ok {
                break;
            }
            if let Op::Pause(tenths) = op {
                pause(tenths).await;
                continue;
            }
            let mut wire = BytesMut::new();
            match frame(op) {
                Ok(frame) => {
                    if codec.encode(frame, &mut wire).is_err() {
                        continue;
                    }
                }
                Err(raw) => wire.extend_from_slice(&raw),
            }
            sent_ok = client_write.write_all(&wire).await.is_ok();
            tokio::task::yield_now().await;
        }
        leave(&server, client_write, reading, serving).await;
    });
});
