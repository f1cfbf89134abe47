//! The HTTP/2 `:authority` repair in front of the CRI server (`cri_api::unix::TolerantStream`):
//! any client byte stream, read in any pieces. The output must not depend on how the
//! input was split, and must be the input itself when it is not HTTP/2. A connection of
//! well-formed header blocks (a real HPACK encoder's, with the dynamic table, padding and
//! priority) reads on the server side, with a fresh decoder, as the client's headers with
//! every `:authority` h2 would refuse replaced by `localhost`.

#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use arbitrary::Arbitrary;
use cri_api::unix::TolerantStream;
use kubelet_lite_fuzz::pieces;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A connection that hands out its bytes in the given pieces.
struct Chunked<'a> {
    pieces: std::collections::VecDeque<&'a [u8]>,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if let Some(piece) = self.pieces.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                self.pieces.push_front(&piece[n..]);
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn repair(data: &[u8], sizes: &[u8]) -> Vec<u8> {
    let inner = Chunked {
        pieces: pieces(data, sizes).into(),
    };
    let mut stream = TolerantStream::new(inner);
    let mut out = Vec::new();
    futures_util::FutureExt::now_or_never(stream.read_to_end(&mut out))
        .expect("reads from memory never wait")
        .expect("reads from memory never fail");
    out
}

#[derive(Debug, Arbitrary)]
enum Block {
    /// A header block the client's HPACK encoder writes (dynamic table, Huffman).
    Encoded {
        stream: u8,
        flags: u8,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// A frame of the fuzzer's own.
    Frame {
        frame_type: u8,
        flags: u8,
        stream: u8,
        payload: Vec<u8>,
    },
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Input {
    Bytes { sizes: Vec<u8>, data: Vec<u8> },
    Http2 { sizes: Vec<u8>, blocks: Vec<Block> },
}

fn frame_header(len: usize, frame_type: u8, flags: u8, stream: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(len as u32).to_be_bytes()[1..]);
    out.push(frame_type);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// The connection's bytes, and the header blocks it sends when it is well-formed: only
/// complete encoded blocks.
fn build(blocks: Vec<Block>) -> (Vec<u8>, Option<Vec<Headers>>) {
    let mut encoder = loona_hpack::Encoder::new();
    let mut out = PREFACE.to_vec();
    let mut sent = Some(Vec::new());
    for block in blocks.into_iter().take(32) {
        match block {
            Block::Encoded { stream, flags, headers } => {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = headers.into_iter().take(16).collect();
                if flags & 0x80 != 0 {
                    pairs.insert(0, (b":authority".to_vec(), b"/run/cri.sock".to_vec()));
                }
                let encoded = encoder.encode(pairs.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
                if encoded.len() >= 1 << 24 {
                    return (out, None);
                }
                if flags & 0x40 == 0 {
                    if let Some(sent) = &mut sent {
                        sent.push(pairs);
                    }
                } else {
                    sent = None;
                }
                // END_HEADERS unless the fuzzer drops it; PADDED and PRIORITY as it says.
                let flags = (flags & 0x29) | if flags & 0x40 == 0 { 0x4 } else { 0 };
                let mut payload = Vec::new();
                if flags & 0x8 != 0 {
                    payload.push(1);
                }
                if flags & 0x20 != 0 {
                    payload.extend_from_slice(&[0, 0, 0, 0, 16]);
                }
                payload.extend_from_slice(&encoded);
                if flags & 0x8 != 0 {
                    payload.push(0);
                }
                frame_header(payload.len(), 0x1, flags, u32::from(stream), &mut out);
                out.extend_from_slice(&payload);
            }
            Block::Frame {
                frame_type,
                flags,
                stream,
                payload,
            } => {
                sent = None;
                frame_header(payload.len(), frame_type % 11, flags, u32::from(stream), &mut out);
                out.extend_from_slice(&payload);
            }
            Block::Raw(bytes) => {
                sent = None;
                out.extend_from_slice(&bytes);
            }
        }
    }
    (out, sent)
}

/// The header blocks of `bytes` (a repaired connection) as h2 decodes them.
fn server_view(bytes: &[u8]) -> Vec<Headers> {
    let mut decoder = loona_hpack::Decoder::new();
    let mut rest = bytes.strip_prefix(PREFACE).expect("the preface is kept");
    let mut blocks = Vec::new();
    let mut fragment = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= 9, "a truncated frame header");
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (frame_type, flags) = (rest[3], rest[4]);
        let payload = &rest[9..9 + len];
        assert!(frame_type == 0x1 || frame_type == 0x9, "frame type {frame_type}");
        assert_eq!(flags & 0x8, 0, "a repaired block is not padded");
        let skip = if frame_type == 0x1 && flags & 0x20 != 0 { 5 } else { 0 };
        fragment.extend_from_slice(&payload[skip..]);
        if flags & 0x4 != 0 {
            let headers = decoder
                .decode(&fragment)
                .expect("a repaired block decodes with a fresh decoder");
            blocks.push(headers);
            fragment.clear();
        }
        rest = &rest[9 + len..];
    }
    assert!(fragment.is_empty(), "an unfinished block");
    blocks
}

fuzz_target!(|input: Input| {
    let (data, sizes, sent) = match input {
        Input::Bytes { sizes, data } => (data, sizes, None),
        Input::Http2 { sizes, blocks } => {
            let (data, sent) = build(blocks);
            (data, sizes, sent)
        }
    };
    let whole = repair(&data, &[]);
    let split = repair(&data, &sizes);
    assert_eq!(whole, split, "the output depends on how the input was read");
    if !data.starts_with(&PREFACE[..data.len().min(PREFACE.len())]) {
        assert_eq!(whole, data, "a stream that is not HTTP/2 passes through untouched");
    }
    if let Some(sent) = sent {
        let expected: Vec<Headers> = sent
            .into_iter()
            .map(|block| {
                block
                    .into_iter()
                    .map(|(name, value)| {
                        if name == b":authority" && http::uri::Authority::try_from(value.as_slice()).is_err() {
                            (name, b"localhost".to_vec())
                        } else {
                            (name, value)
                        }
                    })
                    .collect()
            })
            .collect();
        assert_eq!(server_view(&whole), expected);
    }
});
