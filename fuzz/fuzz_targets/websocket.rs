//! The Kubernetes channel protocol over WebSocket, as `kubectl exec` (1.29+) and
//! `port-forward` speak it to the streaming server, over an in-memory duplex: an HTTP
//! upgrade with the subprotocol the fuzzer picks, then WebSocket frames it builds (masked
//! or not, fragmented, control frames, reserved bits, any opcode) and raw bytes. The
//! server must not panic, must end the session once the client is gone (no hang on the
//! paused clock), and must only write well-formed server frames: unmasked, with channel
//! bytes its protocol allows and valid base64 in the text protocols.

#![no_main]

use arbitrary::Arbitrary;
use kubelet_lite_fuzz::session::{Client, Session, leave, pause};
use kubelet_lite_fuzz::{run_paused, split_response, streaming_server};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Arbitrary)]
enum Op {
    /// A data message on a channel, as the subprotocol encodes it (base64 in the text ones).
    Channel {
        channel: u8,
        data: Vec<u8>,
    },
    /// The v5 CLOSE signal for a channel.
    CloseSignal(u8),
    /// A resize message for a terminal.
    Resize {
        width: u16,
        height: u16,
    },
    /// A frame of the fuzzer's own.
    Frame {
        fin: bool,
        rsv: u8,
        opcode: u8,
        masked: bool,
        payload: Vec<u8>,
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

const REMOTECOMMAND: [&str; 6] = [
    "",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v5.channel.k8s.io",
];
const PORTFORWARD: [&str; 5] = [
    "",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "portforward.k8s.io",
    "base64.portforward.k8s.io",
];

/// A client frame (RFC 6455 section 5.2).
fn frame(fin: bool, rsv: u8, opcode: u8, masked: bool, payload: &[u8], out: &mut Vec<u8>) {
    out.push(u8::from(fin) << 7 | (rsv & 0x7) << 4 | (opcode & 0xf));
    let mask_bit = u8::from(masked) << 7;
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x37, 0xfa, 0x21, 0x3d];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn is_base64(text: &[u8]) -> bool {
    text.len().is_multiple_of(4)
        && text
            .iter()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/' || (*b == b'=' && i + 2 >= text.len()))
}

/// Reads everything the server writes and checks its frames.
async fn check_output(mut client_read: tokio::io::ReadHalf<tokio::io::DuplexStream>, base64: bool, channels: u8) {
    let mut bytes = Vec::new();
    let _ = client_read.read_to_end(&mut bytes).await;
    let Some((head, mut rest)) = split_response(&bytes) else {
        return;
    };
    if !head.starts_with(b"HTTP/1.1 101") {
        return;
    }
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "a truncated frame header");
        let (b0, b1) = (rest[0], rest[1]);
        assert_eq!(b1 & 0x80, 0, "the server masked a frame");
        assert_eq!(b0 & 0x70, 0, "the server set a reserved bit");
        let (len, header) = match b1 & 0x7f {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (
                u64::from_be_bytes(rest[2..10].try_into().expect("8 bytes")) as usize,
                10,
            ),
            n => (usize::from(n), 2),
        };
        assert!(rest.len() >= header + len, "a truncated frame");
        let payload = &rest[header..header + len];
        match b0 & 0xf {
            0x1 => {
                assert!(base64, "a text frame in a binary protocol");
                if let Some((&channel, encoded)) = payload.split_first() {
                    assert!(channel >= b'0' && channel - b'0' < channels, "text channel {channel}");
                    assert!(is_base64(encoded), "not base64: {:?}", String::from_utf8_lossy(encoded));
                }
            }
            0x2 => {
                assert!(!base64, "a binary frame in a text protocol");
                if let Some(&channel) = payload.first() {
                    assert!(channel < channels, "binary channel {channel}");
                }
            }
            0x8..=0xa => {}
            other => panic!("the server sent opcode {other:#x}"),
        }
        rest = &rest[header + len..];
    }
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
        let (protocol, channels) = match session.ports {
            None => (REMOTECOMMAND[usize::from(input.protocol) % 6], 5),
            Some(ports) => (PORTFORWARD[usize::from(input.protocol) % 5], (2 * ports.max(1)) as u8),
        };
        let base64_protocol = protocol.contains("base64");
        let Client {
            read,
            write: mut client_write,
            serving,
        } = Client::connect(&server);
        let reading = tokio::spawn(check_output(read, base64_protocol, channels));

        let protocol_header = if protocol.is_empty() {
            String::new()
        } else {
            format!("Sec-WebSocket-Protocol: {protocol}\r\n")
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: node\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{protocol_header}\r\n",
            session.path
        );
        let mut sent_ok = client_write.write_all(request.as_bytes()).await.is_ok();
        for op in input.ops {
            if !sent_ok {
                break;
            }
            let mut wire = Vec::new();
            let message = |channel: u8, data: &[u8], wire: &mut Vec<u8>| {
                if base64_protocol {
                    let mut text = vec![b'0'.wrapping_add(channel)];
                    text.extend_from_slice(base64(data).as_bytes());
                    frame(true, 0, 0x1, true, &text, wire);
                } else {
                    let mut binary = vec![channel];
                    binary.extend_from_slice(data);
                    frame(true, 0, 0x2, true, &binary, wire);
                }
            };
            match op {
                Op::Channel { channel, data } => message(channel % 8, &data, &mut wire),
                Op::CloseSignal(channel) => frame(true, 0, 0x2, true, &[255, channel % 8], &mut wire),
                Op::Resize { width, height } => {
                    let json = format!(r#"{{"Width":{width},"Height":{height}}}"#);
                    message(4, json.as_bytes(), &mut wire);
                }
                Op::Frame {
                    fin,
                    rsv,
                    opcode,
                    masked,
                    payload,
                } => frame(fin, rsv, opcode, masked, &payload, &mut wire),
                Op::Raw(bytes) => wire = bytes,
                Op::Pause(tenths) => {
                    pause(tenths).await;
                    continue;
                }
            }
            sent_ok = client_write.write_all(&wire).await.is_ok();
            tokio::task::yield_now().await;
        }
        leave(&server, client_write, reading, serving).await;
    });
});
