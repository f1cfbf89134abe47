//! Repairing the `:authority` of HTTP/2 requests before h2 sees them.
//!
//! The repair works on the client-to-server byte stream of one connection:
//!
//! - the client preface passes through unchanged;
//! - every frame but `HEADERS` and `CONTINUATION` passes through unchanged, its payload
//!   streamed without buffering;
//! - every header block (a `HEADERS` frame and its `CONTINUATION`s) is decoded with HPACK,
//!   an `:authority` that is not a valid URI authority is replaced by `localhost`, and the
//!   block is encoded again as literals that never touch the dynamic table.
//!
//! Every block is re-encoded, not only the repaired ones: the client's encoder refers to its
//! dynamic table, which this module's decoder mirrors, while the server's decoder then only
//! ever sees literals and static-table names, so the two tables can never disagree.
//!
//! Anything this module cannot parse (not HTTP/2, a malformed or oversized header block)
//! switches the connection to plain pass-through, so the server reports the error itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BufMut, BytesMut};
use loona_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// What every HTTP/2 client sends first (RFC 9113, section 3.4).
const CLIENT_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header: 24-bit length, type, flags, 31-bit stream id.
const FRAME_HEADER_LEN: usize = 9;
/// Frame type `HEADERS`.
const TYPE_HEADERS: u8 = 0x1;
/// Frame type `CONTINUATION`.
const TYPE_CONTINUATION: u8 = 0x9;
/// `HEADERS` flag: the last frame the client sends on this stream.
const FLAG_END_STREAM: u8 = 0x1;
/// `HEADERS`/`CONTINUATION` flag: the header block is complete.
const FLAG_END_HEADERS: u8 = 0x4;
/// `HEADERS` flag: a pad-length byte leads the payload and padding ends it.
const FLAG_PADDED: u8 = 0x8;
/// `HEADERS` flag: a 5-byte stream dependency and weight lead the fragment.
const FLAG_PRIORITY: u8 = 0x20;
/// Length of the priority fields of a `HEADERS` frame.
const PRIORITY_LEN: usize = 5;
/// The largest frame payload every peer must accept (the minimum `SETTINGS_MAX_FRAME_SIZE`).
const MAX_FRAME_PAYLOAD: usize = 16_384;
/// The largest header block this module buffers; bigger ones pass through untouched.
const MAX_HEADER_BLOCK: usize = 1 << 20;
/// The largest HPACK dynamic table a client may ask the decoder for.
const MAX_DYNAMIC_TABLE: usize = 1 << 16;
/// HPACK representation "literal header field without indexing, new name" (RFC 7541, 6.2.2).
const LITERAL_WITHOUT_INDEXING: u8 = 0x00;
/// The authority that replaces one h2 would refuse, as well-behaved clients send it.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 8 * 1024;

/// A server-side connection whose incoming HTTP/2 requests carry a valid `:authority`.
///
/// On reads, every request header block is decoded and encoded again with an invalid
/// `:authority` replaced by `localhost`; frames other than headers pass through unchanged,
/// and so does a connection that does not speak HTTP/2. Writes go straight to the inner
/// stream.
#[derive(Debug)]
pub struct TolerantStream<S> {
    inner: S,
    rewriter: HeaderRewriter,
    /// Repaired bytes not yet handed to the reader.
    ready: BytesMut,
    eof: bool,
}

impl<S> TolerantStream<S> {
    /// Wraps the server side of a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            rewriter: HeaderRewriter::default(),
            ready: BytesMut::new(),
            eof: false,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TolerantStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            if this.rewriter.is_pass_through() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; READ_CHUNK];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf))?;
            if chunk_buf.filled().is_empty() {
                this.eof = true;
                this.rewriter.finish(&mut this.ready);
            } else {
                this.rewriter.feed(chunk_buf.filled(), &mut this.ready);
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TolerantStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for TolerantStream<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Where the rewriter is in the client's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Inside the client preface; the number of its bytes seen so far.
    Preface(usize),
    /// Between or inside frames.
    Frames,
    /// Gave up parsing: everything passes through as it is.
    PassThrough,
}

/// A header block being collected from a `HEADERS` frame and its `CONTINUATION`s.
struct PendingBlock {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; PRIORITY_LEN]>,
    fragments: Vec<u8>,
    /// The frames as received, replayed if the block cannot be repaired.
    original: Vec<u8>,
}

/// The byte-level state machine of [`TolerantStream`], free of I/O so it can be tested
/// frame by frame.
struct HeaderRewriter {
    phase: Phase,
    /// Received bytes not yet processed.
    input: BytesMut,
    /// Payload bytes of the current pass-through frame still to copy.
    payload_left: usize,
    pending: Option<PendingBlock>,
    decoder: Decoder<'static>,
}

impl std::fmt::Debug for HeaderRewriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeaderRewriter")
            .field("phase", &self.phase)
            .field("buffered", &self.input.len())
            .finish_non_exhaustive()
    }
}

impl Default for HeaderRewriter {
    fn default() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(MAX_DYNAMIC_TABLE);
        Self {
            phase: Phase::Preface(0),
            input: BytesMut::new(),
            payload_left: 0,
            pending: None,
            decoder,
        }
    }
}

impl HeaderRewriter {
    fn is_pass_through(&self) -> bool {
        self.phase == Phase::PassThrough && self.input.is_empty()
    }

    /// Takes bytes from the client and appends what the server should read to `out`.
    fn feed(&mut self, bytes: &[u8], out: &mut BytesMut) {
        self.input.extend_from_slice(bytes);
        self.process(out);
    }

    /// The client closed its side: whatever is still held goes out as it came.
    fn finish(&mut self, out: &mut BytesMut) {
        self.give_up(out);
        out.extend_from_slice(&self.input.split());
    }

    fn process(&mut self, out: &mut BytesMut) {
        loop {
            match self.phase {
                Phase::PassThrough => {
                    out.extend_from_slice(&self.input.split());
                    return;
                }
                Phase::Preface(seen) => {
                    let n = self.input.len().min(CLIENT_PREFACE.len() - seen);
                    if self.input[..n] != CLIENT_PREFACE[seen..seen + n] {
                        self.phase = Phase::PassThrough;
                        continue;
                    }
                    out.extend_from_slice(&self.input.split_to(n));
                    if seen + n < CLIENT_PREFACE.len() {
                        self.phase = Phase::Preface(seen + n);
                        return;
                    }
                    self.phase = Phase::Frames;
                }
                Phase::Frames => {
                    if !self.process_frame(out) {
                        return;
                    }
                }
            }
        }
    }

    /// Handles the next frame, or the next part of a pass-through payload; returns false
    /// when more input is needed.
    fn process_frame(&mut self, out: &mut BytesMut) -> bool {
        if self.payload_left > 0 {
            let n = self.payload_left.min(self.input.len());
            if n == 0 {
                return false;
            }
            out.extend_from_slice(&self.input.split_to(n));
            self.payload_left -= n;
            return true;
        }
        if self.input.len() < FRAME_HEADER_LEN {
            return false;
        }
        let header = &self.input[..FRAME_HEADER_LEN];
        let length = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
        let frame_type = header[3];
        if frame_type != TYPE_HEADERS && frame_type != TYPE_CONTINUATION {
            if self.pending.is_some() {
                // Only CONTINUATION may follow an unfinished header block.
                self.give_up(out);
                return true;
            }
            out.extend_from_slice(&self.input.split_to(FRAME_HEADER_LEN));
            self.payload_left = length;
            return true;
        }
        let collected = self.pending.as_ref().map_or(0, |p| p.original.len());
        if collected + length > MAX_HEADER_BLOCK {
            self.give_up(out);
            return true;
        }
        if self.input.len() < FRAME_HEADER_LEN + length {
            return false;
        }
        let frame = self.input.split_to(FRAME_HEADER_LEN + length);
        if self.collect(&frame).is_none() {
            self.give_up(out);
            out.extend_from_slice(&frame);
            return true;
        }
        let complete = frame[4] & FLAG_END_HEADERS != 0;
        if complete && let Some(block) = self.pending.take() {
            self.emit(block, out);
        }
        true
    }

    /// Adds a `HEADERS` or `CONTINUATION` frame to the pending block; `None` if it is
    /// malformed or out of order (the frame is then not recorded).
    fn collect(&mut self, frame: &[u8]) -> Option<()> {
        let (frame_type, flags) = (frame[3], frame[4]);
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER_LEN..];
        if frame_type == TYPE_CONTINUATION {
            let pending = self.pending.as_mut().filter(|p| p.stream_id == stream_id)?;
            pending.fragments.extend_from_slice(payload);
            pending.original.extend_from_slice(frame);
            return Some(());
        }
        if self.pending.is_some() {
            return None;
        }
        let mut start = 0;
        let mut end = payload.len();
        if flags & FLAG_PADDED != 0 {
            let pad = usize::from(*payload.first()?);
            start = 1;
            end = end.checked_sub(pad)?;
        }
        let priority = if flags & FLAG_PRIORITY != 0 {
            let fields: [u8; PRIORITY_LEN] = payload.get(start..start + PRIORITY_LEN)?.try_into().ok()?;
            start += PRIORITY_LEN;
            Some(fields)
        } else {
            None
        };
        self.pending = Some(PendingBlock {
            stream_id,
            end_stream: flags & FLAG_END_STREAM != 0,
            priority,
            fragments: payload.get(start..end)?.to_vec(),
            original: frame.to_vec(),
        });
        Some(())
    }

    /// Decodes a complete block, repairs it and writes it out as fresh frames.
    fn emit(&mut self, block: PendingBlock, out: &mut BytesMut) {
        let headers = match self.decoder.decode(&block.fragments) {
            Ok(headers) => headers,
            Err(_) => {
                self.pending = Some(block);
                self.give_up(out);
                return;
            }
        };
        let mut encoded = Vec::with_capacity(block.fragments.len() + 64);
        for (name, value) in &headers {
            let value = if name == b":authority" && !is_valid_authority(value) {
                REPLACEMENT_AUTHORITY
            } else {
                value.as_slice()
            };
            encode_literal(name, value, &mut encoded);
        }
        write_header_frames(&block, &encoded, out);
    }

    /// Stops parsing: replays the frames of the pending block as received and lets
    /// everything after them pass through.
    fn give_up(&mut self, out: &mut BytesMut) {
        if let Some(pending) = self.pending.take() {
            out.extend_from_slice(&pending.original);
        }
        self.phase = Phase::PassThrough;
    }
}

/// Whether h2 accepts `value` as a request's authority.
fn is_valid_authority(value: &[u8]) -> bool {
    http::uri::Authority::try_from(value).is_ok()
}

/// Appends a header as an HPACK literal without indexing, with a literal name and no
/// Huffman coding.
fn encode_literal(name: &[u8], value: &[u8], out: &mut Vec<u8>) {
    out.push(LITERAL_WITHOUT_INDEXING);
    encode_string(name, out);
    encode_string(value, out);
}

/// Appends an HPACK string literal (RFC 7541, 5.2) without Huffman coding.
fn encode_string(bytes: &[u8], out: &mut Vec<u8>) {
    encode_integer(bytes.len(), 7, out);
    out.extend_from_slice(bytes);
}

/// Appends an HPACK integer (RFC 7541, 5.1) with a `prefix_bits`-bit prefix and the other
/// bits of the first byte zero.
fn encode_integer(mut value: usize, prefix_bits: u32, out: &mut Vec<u8>) {
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        out.push(value as u8);
        return;
    }
    out.push(max_prefix as u8);
    value -= max_prefix;
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes `block` as a `HEADERS` frame and as many `CONTINUATION` frames as it needs.
fn write_header_frames(pending: &PendingBlock, block: &[u8], out: &mut BytesMut) {
    let priority_len = if pending.priority.is_some() { PRIORITY_LEN } else { 0 };
    let first_len = block.len().min(MAX_FRAME_PAYLOAD - priority_len);
    let (first, mut rest) = block.split_at(first_len);

    let mut flags = 0;
    if pending.end_stream {
        flags |= FLAG_END_STREAM;
    }
    if pending.priority.is_some() {
        flags |= FLAG_PRIORITY;
    }
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    write_frame_header(priority_len + first.len(), TYPE_HEADERS, flags, pending.stream_id, out);
    if let Some(priority) = &pending.priority {
        out.extend_from_slice(priority);
    }
    out.extend_from_slice(first);

    while !rest.is_empty() {
        let (chunk, remaining) = rest.split_at(rest.len().min(MAX_FRAME_PAYLOAD));
        let flags = if remaining.is_empty() { FLAG_END_HEADERS } else { 0 };
        write_frame_header(chunk.len(), TYPE_CONTINUATION, flags, pending.stream_id, out);
        out.extend_from_slice(chunk);
        rest = remaining;
    }
}

fn write_frame_header(length: usize, frame_type: u8, flags: u8, stream_id: u32, out: &mut BytesMut) {
    out.put_uint(length as u64, 3);
    out.put_u8(frame_type);
    out.put_u8(flags);
    out.put_u32(stream_id);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one frame as a client would.
    fn frame(frame_type: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame_header(payload.len(), frame_type, flags, stream_id, &mut out);
        out.extend_from_slice(payload);
        out.to_vec()
    }

    /// Encodes headers the way clients do: with the dynamic table and Huffman coding.
    fn client_block(encoder: &mut loona_hpack::Encoder<'_>, headers: &[(&str, &str)]) -> Vec<u8> {
        encoder.encode(headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn request_headers(authority: &str) -> Vec<(&'static str, String)> {
        vec![
            (":method", "POST".to_string()),
            (":scheme", "http".to_string()),
            (":path", "/runtime.v1.RuntimeService/Version".to_string()),
            (":authority", authority.to_string()),
            ("content-type", "application/grpc".to_string()),
            ("te", "trailers".to_string()),
        ]
    }

    /// A frame as the server sees it: type, flags, stream id, and the decoded headers when
    /// it ends a header block.
    type SeenFrame = (u8, u8, u32, Vec<(String, String)>);

    /// Parses the frames the rewriter wrote and decodes each header block.
    fn server_view(bytes: &[u8]) -> Vec<SeenFrame> {
        let mut decoder = Decoder::new();
        let mut frames = Vec::new();
        let mut rest = &bytes[CLIENT_PREFACE.len()..];
        let mut block = Vec::new();
        while !rest.is_empty() {
            let length = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
            let (frame_type, flags) = (rest[3], rest[4]);
            let stream_id = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
            let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + length];
            let mut headers = Vec::new();
            if frame_type == TYPE_HEADERS || frame_type == TYPE_CONTINUATION {
                let skip = if flags & FLAG_PRIORITY != 0 { PRIORITY_LEN } else { 0 };
                block.extend_from_slice(&payload[skip..]);
                if flags & FLAG_END_HEADERS != 0 {
                    headers = decoder
                        .decode(&block)
                        .expect("rewritten block decodes")
                        .into_iter()
                        .map(|(n, v)| (String::from_utf8_lossy(&n).into(), String::from_utf8_lossy(&v).into()))
                        .collect();
                    block.clear();
                }
            }
            frames.push((frame_type, flags, stream_id, headers));
            rest = &rest[FRAME_HEADER_LEN + length..];
        }
        frames
    }

    fn authority_of(headers: &[(String, String)]) -> &str {
        headers
            .iter()
            .find(|(n, _)| n == ":authority")
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    }

    fn rewrite(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut rewriter = HeaderRewriter::default();
        let mut out = BytesMut::new();
        for piece in input.chunks(chunk) {
            rewriter.feed(piece, &mut out);
        }
        rewriter.finish(&mut out);
        out.to_vec()
    }

    fn connection(requests: &[&str]) -> Vec<u8> {
        let mut encoder = loona_hpack::Encoder::new();
        let mut input = CLIENT_PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[])); // SETTINGS
        for (i, authority) in requests.iter().enumerate() {
            let stream_id = 2 * i as u32 + 1;
            let headers = request_headers(authority);
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let block = client_block(&mut encoder, &pairs);
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream_id, &block));
            input.extend(frame(0x0, FLAG_END_STREAM, stream_id, b"\0\0\0\0\0"));
        }
        input
    }

    #[test]
    fn socket_path_authority_becomes_localhost() {
        let output = rewrite(&connection(&["/run/cri/cri.sock"]), 4096);
        let frames = server_view(&output);
        assert_eq!(frames.len(), 3, "SETTINGS, HEADERS, DATA");
        assert_eq!(authority_of(&frames[1].3), "localhost");
        assert_eq!(frames[1].3.len(), 6, "other headers are kept");
    }

    #[test]
    fn percent_encoded_path_authority_is_judged_like_h2_does() {
        let output = rewrite(&connection(&["%2Frun%2Fcri%2Fcri.sock"]), 4096);
        let frames = server_view(&output);
        let expected = if is_valid_authority(b"%2Frun%2Fcri%2Fcri.sock") {
            "%2Frun%2Fcri%2Fcri.sock"
        } else {
            "localhost"
        };
        assert_eq!(authority_of(&frames[1].3), expected);
    }

    #[test]
    fn valid_authority_is_kept() {
        let output = rewrite(&connection(&["localhost", "runtime.example:1234"]), 4096);
        let frames = server_view(&output);
        assert_eq!(authority_of(&frames[1].3), "localhost");
        assert_eq!(authority_of(&frames[3].3), "runtime.example:1234");
    }

    #[test]
    fn dynamic_table_references_across_requests_are_resolved() {
        // The second request's headers come from the client's dynamic table.
        let output = rewrite(&connection(&["/a.sock", "/a.sock", "/a.sock"]), 4096);
        let frames = server_view(&output);
        for index in [1, 3, 5] {
            assert_eq!(authority_of(&frames[index].3), "localhost");
            assert!(
                frames[index]
                    .3
                    .iter()
                    .any(|(n, v)| n == ":path" && v.ends_with("/Version"))
            );
        }
    }

    #[test]
    fn input_split_at_every_byte_gives_the_same_output() {
        let input = connection(&["/run/x.sock", "/run/x.sock"]);
        assert_eq!(rewrite(&input, 1), rewrite(&input, input.len()));
    }

    #[test]
    fn padded_prioritized_and_continued_blocks_are_reassembled() {
        let mut encoder = loona_hpack::Encoder::new();
        let headers = request_headers("/run/y.sock");
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let block = client_block(&mut encoder, &pairs);
        let (head, tail) = block.split_at(block.len() / 2);
        let mut payload = vec![2u8];
        payload.extend_from_slice(&[0, 0, 0, 0, 15]);
        payload.extend_from_slice(head);
        payload.extend_from_slice(&[0, 0]);
        let mut input = CLIENT_PREFACE.to_vec();
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM,
            1,
            &payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, tail));

        let frames = server_view(&rewrite(&input, 7));
        assert_eq!(frames.len(), 1);
        let (frame_type, flags, stream_id, headers) = &frames[0];
        assert_eq!((*frame_type, *stream_id), (TYPE_HEADERS, 1));
        assert_eq!(*flags, FLAG_PRIORITY | FLAG_END_STREAM | FLAG_END_HEADERS);
        assert_eq!(authority_of(headers), "localhost");
    }

    #[test]
    fn large_blocks_are_split_into_continuations() {
        let big = "x".repeat(3 * MAX_FRAME_PAYLOAD);
        let mut encoder = loona_hpack::Encoder::new();
        let block = client_block(&mut encoder, &[(":authority", "/z.sock"), ("x-big", &big)]);
        let mut input = CLIENT_PREFACE.to_vec();
        for chunk in block.chunks(MAX_FRAME_PAYLOAD).enumerate() {
            let last = (chunk.0 + 1) * MAX_FRAME_PAYLOAD >= block.len();
            let frame_type = if chunk.0 == 0 { TYPE_HEADERS } else { TYPE_CONTINUATION };
            input.extend(frame(frame_type, if last { FLAG_END_HEADERS } else { 0 }, 1, chunk.1));
        }
        let frames = server_view(&rewrite(&input, 1000));
        assert!(frames.len() >= 4);
        assert!(frames.iter().all(|f| f.0 == TYPE_HEADERS || f.0 == TYPE_CONTINUATION));
        let headers = &frames.last().expect("frames").3;
        assert_eq!(authority_of(headers), "localhost");
        assert_eq!(headers[1].1.len(), big.len());
    }

    #[test]
    fn data_frames_pass_through_unchanged() {
        let payload: Vec<u8> = (0..=255).cycle().take(40_000).collect();
        let mut input = CLIENT_PREFACE.to_vec();
        input.extend(frame(0x0, 0, 1, &payload));
        assert_eq!(rewrite(&input, 999), input);
    }

    #[test]
    fn garbage_passes_through_untouched() {
        let http1 = b"GET / HTTP/1.1\r\nHost: /x.sock\r\n\r\n".to_vec();
        assert_eq!(rewrite(&http1, 5), http1);

        let mut bad_block = CLIENT_PREFACE.to_vec();
        bad_block.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 1, &[0xff, 0xff, 0xff, 0xff]));
        bad_block.extend(frame(0x0, 0, 1, b"after"));
        assert_eq!(rewrite(&bad_block, 3), bad_block);
    }

    #[test]
    fn integers_use_continuation_bytes_past_the_prefix() {
        let mut out = Vec::new();
        encode_integer(10, 5, &mut out);
        encode_integer(1337, 5, &mut out);
        assert_eq!(out, [10, 31, 154, 10], "RFC 7541 C.1.1 and C.1.2");
    }
}
