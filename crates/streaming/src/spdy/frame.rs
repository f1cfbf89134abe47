//! SPDY/3 frames on the wire (SPDY draft 3, section 2.2), and the codec that reads and
//! writes them with the compressed header blocks of section 2.6.10.
//!
//! ```text
//! control frame:  |1| version (15) | type (16) | flags (8) | length (24) | payload ...
//! data frame:     |0| stream id (31)           | flags (8) | length (24) | payload ...
//! ```
//!
//! Header blocks are compressed with one zlib stream per direction for the whole
//! connection, primed with the SPDY/3 dictionary and sync-flushed after each block, so the codec
//! keeps its compressor and decompressor between frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio_util::codec::{Decoder, Encoder};

use super::dictionary::DICTIONARY;

/// The protocol version in every control frame. Kubernetes names the upgrade `SPDY/3.1`
/// but its peers (spdystream) write version 3 frames, as 3.1 did not change the number.
pub const VERSION: u16 = 3;

/// The largest payload a frame can carry: its length field has 24 bits.
pub const MAX_FRAME_PAYLOAD: usize = (1 << 24) - 1;

/// The most name/value pairs accepted in one header block.
const MAX_HEADER_PAIRS: u32 = 1024;

/// Bytes before any frame's payload.
const FRAME_HEADER_LEN: usize = 8;

/// The bit that marks a control frame (and the high bit of a data frame's stream id).
const CONTROL_BIT: u32 = 0x8000_0000;

/// Control frame types (section 2.6).
mod frame_type {
    pub(super) const SYN_STREAM: u16 = 1;
    pub(super) const SYN_REPLY: u16 = 2;
    pub(super) const RST_STREAM: u16 = 3;
    pub(super) const SETTINGS: u16 = 4;
    pub(super) const PING: u16 = 6;
    pub(super) const GOAWAY: u16 = 7;
    pub(super) const HEADERS: u16 = 8;
    pub(super) const WINDOW_UPDATE: u16 = 9;
}

/// FLAG_FIN: the sender will send nothing more on this stream (control and data frames).
pub const FLAG_FIN: u8 = 0x01;
/// FLAG_UNIDIRECTIONAL on SYN_STREAM: the receiver must not send on this stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes (section 2.6.3).
pub mod rst_status {
    /// A generic error that a more specific code does not describe.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not active.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed.
    pub const CANCEL: u32 = 5;
    /// An error internal to the sender.
    pub const INTERNAL_ERROR: u32 = 6;
    /// The sender overran the receiver's flow-control window.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
}

/// GOAWAY status codes (section 2.6.6).
pub mod goaway_status {
    /// A normal session teardown.
    pub const OK: u32 = 0;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u32 = 1;
}

/// Streams a peer may have open at once by default: the minimum HTTP/2 recommends for its
/// equivalent setting (RFC 9113 section 6.5.2). An exec uses at most five, a port-forward
/// two per forwarded connection.
pub const MAX_CONCURRENT_STREAMS: usize = 100;

/// Frames queued for the socket without a byte budget (PING replies, RST_STREAM,
/// WINDOW_UPDATE, SYN_REPLY, FIN) beyond which the peer is taken to be flooding: it sends
/// what asks for replies and does not read them. Go's HTTP/2 server closes such a
/// connection at the same count (its fix for the ping flood, CVE-2019-9512, and the reset
/// flood, CVE-2019-9514).
pub const MAX_QUEUED_CONTROL_FRAMES: usize = 10_000;

/// Sizes and counts beyond which a peer is refused, so a hostile or broken peer cannot
/// make the server buffer, inflate or queue without bound. A frame beyond the sizes closes
/// the connection; a stream beyond the count is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest frame payload; the protocol's own limit is 16 MiB - 1.
    pub max_frame_size: usize,
    /// The largest compressed header block (in SYN_STREAM, SYN_REPLY and HEADERS).
    pub max_header_block_size: usize,
    /// The largest header block once inflated: a "zlib bomb" stops here.
    pub max_inflated_header_size: usize,
    /// Streams the peer may have open at once; one more is refused with RST_STREAM
    /// `REFUSED_STREAM`.
    pub max_concurrent_streams: usize,
    /// Frames queued for a peer that does not read them before the connection is dropped
    /// (see [`MAX_QUEUED_CONTROL_FRAMES`]).
    pub max_queued_control_frames: usize,
}

impl Default for Limits {
    /// Kubernetes sends a few short headers per stream and DATA frames of up to the size of
    /// one write (which Go may make large): frames up to the protocol's limit, header blocks
    /// of 64 KiB that inflate to at most 256 KiB; [`MAX_CONCURRENT_STREAMS`] and
    /// [`MAX_QUEUED_CONTROL_FRAMES`].
    fn default() -> Self {
        Self {
            max_frame_size: MAX_FRAME_PAYLOAD,
            max_header_block_size: 64 * 1024,
            max_inflated_header_size: 256 * 1024,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS,
            max_queued_control_frames: MAX_QUEUED_CONTROL_FRAMES,
        }
    }
}

/// A header block: names are lower-case (SPDY requires it); a name may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `name` (lower-cased).
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    /// Adds `value` under `name` and returns the headers, for building them in one go.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.push(name, value);
        self
    }

    /// The first value under `name`, compared without regard to case (Kubernetes clients
    /// write `streamType`, SPDY sends it as `streamtype`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every (name, value) pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The block before compression: a count, then length-prefixed names and values; the
    /// values of a repeated name are joined by NUL (section 2.6.10).
    fn encode(&self, out: &mut Vec<u8>) {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.0 {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        out.put_u32(names.len() as u32);
        for name in names {
            let joined = self
                .0
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join("\0");
            out.put_u32(name.len() as u32);
            out.put_slice(name.as_bytes());
            out.put_u32(joined.len() as u32);
            out.put_slice(joined.as_bytes());
        }
    }

    fn decode(mut block: &[u8]) -> Result<Self, FrameError> {
        fn take<'a>(block: &mut &'a [u8], n: usize) -> Result<&'a [u8], FrameError> {
            if block.len() < n {
                return Err(FrameError::Protocol("truncated header block"));
            }
            let (head, rest) = block.split_at(n);
            *block = rest;
            Ok(head)
        }
        fn take_u32(block: &mut &[u8]) -> Result<u32, FrameError> {
            let bytes = take(block, 4)?;
            Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        }
        let count = take_u32(&mut block)?;
        if count > MAX_HEADER_PAIRS {
            return Err(FrameError::Protocol("too many headers"));
        }
        let mut headers = Headers::new();
        for _ in 0..count {
            let len = take_u32(&mut block)? as usize;
            let name = std::str::from_utf8(take(&mut block, len)?)
                .map_err(|_| FrameError::Protocol("header name is not UTF-8"))?;
            let len = take_u32(&mut block)? as usize;
            let value = std::str::from_utf8(take(&mut block, len)?)
                .map_err(|_| FrameError::Protocol("header value is not UTF-8"))?;
            for part in value.split('\0') {
                headers.push(name, part);
            }
        }
        Ok(headers)
    }
}

/// One SPDY/3 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes on a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// Whether the sender has finished the stream.
        fin: bool,
        /// The payload.
        data: Bytes,
    },
    /// Opens a stream.
    SynStream {
        /// The new stream's id: odd from the client, even from the server.
        stream_id: u32,
        /// The stream this one is associated with, or 0.
        associated_to: u32,
        /// Priority, 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`] and [`FLAG_UNIDIRECTIONAL`].
        flags: u8,
        /// The stream's headers (Kubernetes puts `streamType`, `port`, `requestID` here).
        headers: Headers,
    },
    /// Accepts a stream the peer opened.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// Whether the replier will send nothing on the stream.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// One of [`rst_status`].
        status: u32,
    },
    /// Session settings; (flags, id, value) triples.
    Settings {
        /// The settings.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check, echoed by the receiver when the peer started it.
    Ping {
        /// Odd from the client, even from the server.
        id: u32,
    },
    /// The sender will accept no new streams.
    GoAway {
        /// The last stream the sender accepted.
        last_good_stream_id: u32,
        /// One of [`goaway_status`].
        status: u32,
    },
    /// More headers on a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// Whether the sender has finished the stream.
        fin: bool,
        /// The headers.
        headers: Headers,
    },
    /// Flow-control credit (SPDY/3.1; stream 0 means the session).
    WindowUpdate {
        /// The stream, or 0.
        stream_id: u32,
        /// Extra bytes the receiver may now accept.
        delta: u32,
    },
    /// A control frame of a type this codec does not know; the specification says to ignore it.
    Unknown {
        /// Its type.
        frame_type: u16,
    },
}

/// A frame the codec could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer broke the protocol.
    #[error("spdy protocol error: {0}")]
    Protocol(&'static str),
    /// Header (de)compression failed.
    #[error("spdy header compression: {0}")]
    Compression(String),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads and writes frames, keeping the connection's two header-compression streams.
pub struct Codec {
    inflate: Decompress,
    deflate: Compress,
    limits: Limits,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl Codec {
    /// A codec for a new connection, refusing frames beyond `limits`.
    pub fn new(limits: Limits) -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // Priming must come before the first byte is compressed; it cannot fail then.
        let _ = deflate.set_dictionary(DICTIONARY);
        Self {
            inflate: Decompress::new(true),
            deflate,
            limits,
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        if input.len() > self.limits.max_header_block_size {
            return Err(FrameError::Protocol("header block too large"));
        }
        let limit = self.limits.max_inflated_header_size;
        let mut out = Vec::with_capacity((input.len() * 4 + 64).min(limit + 1));
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                // Never allocate past the limit: a block that inflates beyond it is refused.
                if out.len() > limit {
                    return Err(FrameError::Protocol("inflated header block too large"));
                }
                out.reserve_exact(out.capacity().max(256).min(limit + 1 - out.len()));
            }
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - in_before) as usize;
            let progressed = self.inflate.total_in() != in_before || self.inflate.total_out() != out_before;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| FrameError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(FrameError::Compression(e.to_string())),
            }
            if out.len() > limit {
                return Err(FrameError::Protocol("inflated header block too large"));
            }
            if out.len() == out.capacity() {
                continue;
            }
            if consumed == input.len() || !progressed {
                break;
            }
        }
        if consumed != input.len() {
            return Err(FrameError::Compression("header block has trailing bytes".into()));
        }
        Ok(out)
    }

    fn deflate(&mut self, input: &[u8]) -> Result<Vec<u8>, FrameError> {
        let mut out = Vec::with_capacity(input.len() + 64);
        let mut consumed = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| FrameError::Compression(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // A sync flush is complete once it returns with room to spare in the output.
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            out.reserve(out.capacity().max(256));
        }
    }

    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, FrameError> {
        let mut raw = Vec::new();
        headers.encode(&mut raw);
        self.deflate(&raw)
    }

    fn parse_control(&mut self, frame_type: u16, flags: u8, mut payload: Bytes) -> Result<Frame, FrameError> {
        fn need(payload: &Bytes, n: usize) -> Result<(), FrameError> {
            if payload.len() < n {
                Err(FrameError::Protocol("control frame too short"))
            } else {
                Ok(())
            }
        }
        let fin = flags & FLAG_FIN != 0;
        Ok(match frame_type {
            frame_type::SYN_STREAM => {
                need(&payload, 10)?;
                let stream_id = payload.get_u32() & !CONTROL_BIT;
                let associated_to = payload.get_u32() & !CONTROL_BIT;
                let priority = payload.get_u8() >> 5;
                let _slot = payload.get_u8();
                let headers = Headers::decode(&self.inflate(&payload)?)?;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers,
                }
            }
            frame_type::SYN_REPLY => {
                need(&payload, 4)?;
                let stream_id = payload.get_u32() & !CONTROL_BIT;
                let headers = Headers::decode(&self.inflate(&payload)?)?;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            }
            frame_type::HEADERS => {
                need(&payload, 4)?;
                let stream_id = payload.get_u32() & !CONTROL_BIT;
                let headers = Headers::decode(&self.inflate(&payload)?)?;
                Frame::Headers {
                    stream_id,
                    fin,
                    headers,
                }
            }
            frame_type::RST_STREAM => {
                need(&payload, 8)?;
                Frame::RstStream {
                    stream_id: payload.get_u32() & !CONTROL_BIT,
                    status: payload.get_u32(),
                }
            }
            frame_type::SETTINGS => {
                need(&payload, 4)?;
                let count = payload.get_u32() as usize;
                if payload.len() / 8 < count {
                    return Err(FrameError::Protocol("settings frame too short"));
                }
                let entries = (0..count)
                    .map(|_| {
                        let flags_and_id = payload.get_u32();
                        (
                            (flags_and_id >> 24) as u8,
                            flags_and_id & 0x00ff_ffff,
                            payload.get_u32(),
                        )
                    })
                    .collect();
                Frame::Settings { entries }
            }
            frame_type::PING => {
                need(&payload, 4)?;
                Frame::Ping { id: payload.get_u32() }
            }
            frame_type::GOAWAY => {
                need(&payload, 8)?;
                Frame::GoAway {
                    last_good_stream_id: payload.get_u32() & !CONTROL_BIT,
                    status: payload.get_u32(),
                }
            }
            frame_type::WINDOW_UPDATE => {
                need(&payload, 8)?;
                Frame::WindowUpdate {
                    stream_id: payload.get_u32() & !CONTROL_BIT,
                    delta: payload.get_u32() & !CONTROL_BIT,
                }
            }
            other => Frame::Unknown { frame_type: other },
        })
    }
}

fn put_control_header(dst: &mut BytesMut, frame_type: u16, flags: u8, length: usize) -> Result<(), FrameError> {
    if length > MAX_FRAME_PAYLOAD {
        return Err(FrameError::Protocol("frame too large"));
    }
    dst.reserve(FRAME_HEADER_LEN + length);
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(frame_type);
    dst.put_u32((u32::from(flags) << 24) | length as u32);
    Ok(())
}

impl Decoder for Codec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let first = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let flags = src[4];
        let length = u32::from_be_bytes([0, src[5], src[6], src[7]]) as usize;
        if length > self.limits.max_frame_size {
            return Err(FrameError::Protocol("frame larger than the limit"));
        }
        if src.len() < FRAME_HEADER_LEN + length {
            src.reserve(FRAME_HEADER_LEN + length - src.len());
            return Ok(None);
        }
        src.advance(FRAME_HEADER_LEN);
        let payload = src.split_to(length).freeze();
        if first & CONTROL_BIT == 0 {
            let stream_id = first;
            if stream_id == 0 {
                return Err(FrameError::Protocol("data frame on stream 0"));
            }
            return Ok(Some(Frame::Data {
                stream_id,
                fin: flags & FLAG_FIN != 0,
                data: payload,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(FrameError::Protocol("unsupported spdy version"));
        }
        self.parse_control((first & 0xffff) as u16, flags, payload).map(Some)
    }
}

impl Encoder<Frame> for Codec {
    type Error = FrameError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        match frame {
            Frame::Data { stream_id, fin, data } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(FrameError::Protocol("frame too large"));
                }
                dst.reserve(FRAME_HEADER_LEN + data.len());
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_u32((u32::from(if fin { FLAG_FIN } else { 0 }) << 24) | data.len() as u32);
                dst.put_slice(&data);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.header_block(&headers)?;
                put_control_header(dst, frame_type::SYN_STREAM, flags, 10 + block.len())?;
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_u32(associated_to & !CONTROL_BIT);
                dst.put_u8((priority & 0x7) << 5);
                dst.put_u8(0);
                dst.put_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let block = self.header_block(&headers)?;
                put_control_header(
                    dst,
                    frame_type::SYN_REPLY,
                    if fin { FLAG_FIN } else { 0 },
                    4 + block.len(),
                )?;
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_slice(&block);
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let block = self.header_block(&headers)?;
                put_control_header(
                    dst,
                    frame_type::HEADERS,
                    if fin { FLAG_FIN } else { 0 },
                    4 + block.len(),
                )?;
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                put_control_header(dst, frame_type::RST_STREAM, 0, 8)?;
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_u32(status);
            }
            Frame::Settings { entries } => {
                put_control_header(dst, frame_type::SETTINGS, 0, 4 + 8 * entries.len())?;
                dst.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    dst.put_u32((u32::from(flags) << 24) | (id & 0x00ff_ffff));
                    dst.put_u32(value);
                }
            }
            Frame::Ping { id } => {
                put_control_header(dst, frame_type::PING, 0, 4)?;
                dst.put_u32(id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                put_control_header(dst, frame_type::GOAWAY, 0, 8)?;
                dst.put_u32(last_good_stream_id & !CONTROL_BIT);
                dst.put_u32(status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                put_control_header(dst, frame_type::WINDOW_UPDATE, 0, 8)?;
                dst.put_u32(stream_id & !CONTROL_BIT);
                dst.put_u32(delta & !CONTROL_BIT);
            }
            Frame::Unknown { .. } => return Err(FrameError::Protocol("cannot write a frame of unknown type")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frames: Vec<Frame>) -> Vec<Frame> {
        let (mut writer, mut reader) = (Codec::default(), Codec::default());
        let mut wire = BytesMut::new();
        for frame in frames {
            writer.encode(frame, &mut wire).unwrap();
        }
        let mut out = Vec::new();
        while let Some(frame) = reader.decode(&mut wire).unwrap() {
            out.push(frame);
        }
        assert!(wire.is_empty(), "bytes left over: {wire:?}");
        out
    }

    #[test]
    fn every_frame_type_reads_back_as_written() {
        let headers = Headers::new().with("streamType", "error").with("port", "8080");
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: headers.clone(),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: headers.clone(),
            },
            Frame::Data {
                stream_id: 1,
                fin: false,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 1,
                fin: true,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: rst_status::CANCEL,
            },
            Frame::Settings {
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 2 },
            Frame::GoAway {
                last_good_stream_id: 9,
                status: goaway_status::OK,
            },
            Frame::WindowUpdate {
                stream_id: 0,
                delta: 1 << 20,
            },
        ];
        let mut expected = frames.clone();
        // Names travel lower-case.
        expected[0] = Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 3,
            flags: FLAG_FIN,
            headers: Headers::new().with("streamtype", "error").with("port", "8080"),
        };
        expected[2] = Frame::Headers {
            stream_id: 3,
            fin: true,
            headers: expected_headers(),
        };
        assert_eq!(round_trip(frames), expected);
    }

    fn expected_headers() -> Headers {
        Headers::new().with("streamtype", "error").with("port", "8080")
    }

    #[test]
    fn repeated_names_travel_as_one_nul_joined_value() {
        let headers = Headers::new()
            .with("x-stream-protocol-version", "v4.channel.k8s.io")
            .with("x-stream-protocol-version", "v3.channel.k8s.io");
        let mut raw = Vec::new();
        headers.encode(&mut raw);
        let value = b"v4.channel.k8s.io\0v3.channel.k8s.io";
        assert_eq!(&raw[..4], &1u32.to_be_bytes());
        assert!(raw.windows(value.len()).any(|w| w == value));
        assert_eq!(Headers::decode(&raw).unwrap(), headers);
    }

    #[test]
    fn header_compression_is_shared_across_frames() {
        // The second block compresses against the first: it must be smaller, and a
        // decoder that did not keep its state could not read it.
        let mut codec = Codec::default();
        let headers = Headers::new().with("streamtype", "stdout").with("requestid", "0");
        let first = codec.header_block(&headers).unwrap();
        let second = codec.header_block(&headers).unwrap();
        assert!(second.len() < first.len(), "{} !< {}", second.len(), first.len());
        assert!(first.starts_with(&[0x78]), "zlib stream header");
        assert!(
            first.ends_with(&[0, 0, 0xff, 0xff]),
            "each block ends with a sync flush"
        );
        let mut fresh = Codec::default();
        assert!(fresh.inflate(&second).is_err());
    }

    #[test]
    fn reads_a_header_block_compressed_by_another_zlib() {
        // Bytes as Go's compress/zlib (spdystream) writes them for {"streamtype": "error"}
        // follow the same format; any conforming zlib with the dictionary must produce
        // something we read. Check with flate2's own stream-level writer.
        use flate2::write::ZlibEncoder;
        use std::io::Write;
        let mut raw = Vec::new();
        Headers::new().with("streamtype", "error").encode(&mut raw);
        let mut compress = Compress::new(Compression::best(), true);
        compress.set_dictionary(DICTIONARY).unwrap();
        let mut encoder = ZlibEncoder::new_with_compress(Vec::new(), compress);
        encoder.write_all(&raw).unwrap();
        encoder.flush().unwrap();
        let block = encoder.get_ref().clone();
        let mut codec = Codec::default();
        assert_eq!(
            Headers::decode(&codec.inflate(&block).unwrap()).unwrap(),
            Headers::new().with("streamtype", "error")
        );
    }

    #[test]
    fn a_zlib_bomb_is_refused_without_inflating_it() {
        // 16 MiB of one byte compresses to about 16 KiB: well under the block limit.
        let mut compress = Compress::new(Compression::best(), true);
        compress.set_dictionary(DICTIONARY).unwrap();
        let mut bomb = Vec::with_capacity(64 * 1024);
        let zeros = vec![b'a'; 16 << 20];
        compress.compress_vec(&zeros, &mut bomb, FlushCompress::Sync).unwrap();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let mut wire = BytesMut::new();
        wire.put_u16(0x8000 | VERSION);
        wire.put_u16(frame_type::SYN_STREAM);
        wire.put_u32((10 + bomb.len()) as u32);
        wire.put_u32(1);
        wire.put_u32(0);
        wire.put_u16(0);
        wire.put_slice(&bomb);
        let error = Codec::default().decode(&mut wire).unwrap_err();
        assert_eq!(
            error.to_string(),
            "spdy protocol error: inflated header block too large"
        );
    }

    #[test]
    fn oversized_frames_and_header_blocks_are_refused() {
        let limits = Limits {
            max_frame_size: 1024,
            ..Limits::default()
        };
        let mut wire = BytesMut::from(&[0, 0, 0, 1, 0, 0, 0x10, 0][..]);
        assert!(
            Codec::new(limits).decode(&mut wire).is_err(),
            "a 4 KiB data frame over a 1 KiB limit"
        );
        let mut codec = Codec::new(Limits {
            max_header_block_size: 16,
            ..Limits::default()
        });
        assert!(codec.inflate(&[0u8; 17]).is_err());
    }

    #[test]
    fn partial_input_waits_for_the_rest_of_the_frame() {
        let mut writer = Codec::default();
        let mut wire = BytesMut::new();
        writer
            .encode(
                Frame::Data {
                    stream_id: 3,
                    fin: false,
                    data: Bytes::from_static(b"abcdef"),
                },
                &mut wire,
            )
            .unwrap();
        let mut reader = Codec::default();
        let mut partial = BytesMut::from(&wire[..10]);
        assert_eq!(reader.decode(&mut partial).unwrap(), None);
        partial.extend_from_slice(&wire[10..]);
        assert_eq!(
            reader.decode(&mut partial).unwrap(),
            Some(Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"abcdef")
            })
        );
    }

    #[test]
    fn rejects_other_versions_and_ignores_unknown_types() {
        let mut reader = Codec::default();
        let mut wire = BytesMut::from(&[0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(reader.decode(&mut wire).is_err());
        let mut wire = BytesMut::from(&[0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 2, 0xab, 0xcd][..]);
        assert_eq!(
            reader.decode(&mut wire).unwrap(),
            Some(Frame::Unknown { frame_type: 10 })
        );
    }

    #[test]
    fn data_frame_layout_matches_the_specification() {
        let mut wire = BytesMut::new();
        Codec::default()
            .encode(
                Frame::Data {
                    stream_id: 5,
                    fin: true,
                    data: Bytes::from_static(b"xy"),
                },
                &mut wire,
            )
            .unwrap();
        assert_eq!(&wire[..], &[0, 0, 0, 5, FLAG_FIN, 0, 0, 2, b'x', b'y']);
        let mut wire = BytesMut::new();
        Codec::default()
            .encode(
                Frame::RstStream {
                    stream_id: 7,
                    status: rst_status::REFUSED_STREAM,
                },
                &mut wire,
            )
            .unwrap();
        assert_eq!(&wire[..], &[0x80, 0x03, 0x00, 0x03, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 3]);
    }
}
