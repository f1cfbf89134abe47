//! SPDY/3 frames as a peer sends them: the codec reads any bytes, in any pieces, without
//! panicking or inflating past its limits; every frame it reads is written back and read
//! again the same (header names and repeated values normalized as SPDY joins them).

#![no_main]

use bytes::BytesMut;
use kubelet_lite_fuzz::pieces;
use libfuzzer_sys::fuzz_target;
use streaming::spdy::Limits;
use streaming::spdy::frame::{Codec, Frame, Headers};
use tokio_util::codec::{Decoder, Encoder};

/// Limits small enough that the fuzzer reaches them.
fn limits() -> Limits {
    Limits {
        max_frame_size: 64 * 1024,
        max_header_block_size: 4 * 1024,
        max_inflated_header_size: 16 * 1024,
        ..Limits::default()
    }
}

/// Headers as SPDY carries them: one entry per name, in first-seen order, the values of a
/// repeated name joined. The codec writes a repeated name that way, so a block read from
/// the wire may come back reordered.
fn canonical(headers: &Headers) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers.iter() {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some((_, values)) => values.push(value.to_string()),
            None => out.push((name.to_string(), vec![value.to_string()])),
        }
    }
    out
}

fn normalize(frame: &Frame) -> Frame {
    let canon = |h: &Headers| {
        let mut out = Headers::new();
        for (name, values) in canonical(h) {
            for value in values {
                out.push(&name, &value);
            }
        }
        out
    };
    match frame.clone() {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers,
        } => Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers: canon(&headers),
        },
        Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => Frame::SynReply {
            stream_id,
            fin,
            headers: canon(&headers),
        },
        Frame::Headers {
            stream_id,
            fin,
            headers,
        } => Frame::Headers {
            stream_id,
            fin,
            headers: canon(&headers),
        },
        other => other,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&split, data)) = input.split_first() else {
        return;
    };
    let mut reader = Codec::new(limits());
    let mut wire = BytesMut::new();
    let mut frames = Vec::new();
    'read: for piece in pieces(data, &[split, split.rotate_left(3), 1]) {
        wire.extend_from_slice(piece);
        loop {
            match reader.decode(&mut wire) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                // A broken peer: the connection is closed, nothing more is read.
                Err(_) => break 'read,
            }
        }
    }

    let mut writer = Codec::new(limits());
    let mut rewritten = BytesMut::new();
    let mut expected = Vec::new();
    for frame in &frames {
        if matches!(frame, Frame::Unknown { .. }) {
            continue;
        }
        // A frame read within the limits can be written; only a header block that
        // compresses worse than it came (a peer's odd zlib) may exceed the frame size.
        if writer.encode(frame.clone(), &mut rewritten).is_ok() {
            expected.push(normalize(frame));
        }
    }
    let mut again = Codec::new(Limits::default());
    let mut read_back = Vec::new();
    while let Some(frame) = again
        .decode(&mut rewritten)
        .expect("a frame the codec wrote reads back")
    {
        read_back.push(normalize(&frame));
    }
    assert!(rewritten.is_empty(), "the codec wrote a partial frame");
    assert_eq!(read_back, expected);
});
