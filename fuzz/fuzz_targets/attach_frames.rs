//! The monitor's attach framing, both ways: frames a client (or a monitor) sends, read in
//! any pieces the way the monitor reassembles them from its socket, give the same frames
//! as when read whole; written frames read back as the payload they carry, split at the
//! frame size; a resize payload reads back as its size.

#![no_main]

use arbitrary::Arbitrary;
use kubelet_lite_fuzz::pieces;
use libfuzzer_sys::fuzz_target;
use runtime_core::monitor::attach::{HEADER_LEN, MAX_PAYLOAD, decode, encode, resize_payload};

#[derive(Debug, Arbitrary)]
struct Input {
    sizes: Vec<u8>,
    wire: Vec<u8>,
    channel: u8,
    payload: Vec<u8>,
    repeat: u8,
    width: u16,
    height: u16,
}

/// The frames at the start of `buf` and how many bytes they take.
fn frames(buf: &[u8]) -> (Vec<(u8, Vec<u8>)>, usize) {
    let mut out = Vec::new();
    let mut used = 0;
    while let Some((channel, payload, len)) = decode(&buf[used..]) {
        assert_eq!(len, HEADER_LEN + payload.len());
        assert!(payload.len() <= MAX_PAYLOAD);
        out.push((channel, payload.to_vec()));
        used += len;
    }
    (out, used)
}

fuzz_target!(|input: Input| {
    // Reassembly as the monitor does it: what does not make a whole frame waits for more.
    let (whole, used) = frames(&input.wire);
    let mut partial = Vec::new();
    let mut reassembled = Vec::new();
    for piece in pieces(&input.wire, &input.sizes) {
        partial.extend_from_slice(piece);
        let (got, taken) = frames(&partial);
        reassembled.extend(got);
        partial.drain(..taken);
    }
    assert_eq!(reassembled, whole);
    assert_eq!(partial.len(), input.wire.len() - used);

    // A long payload (the fuzzer's bytes repeated past the frame size) is cut into frames.
    let mut payload = input.payload.clone();
    for _ in 0..input.repeat % 4 {
        payload.extend_from_within(..);
        if payload.len() > 3 * MAX_PAYLOAD {
            break;
        }
    }
    let mut wire = Vec::new();
    encode(input.channel, &payload, &mut wire);
    let (written, used) = frames(&wire);
    assert_eq!(used, wire.len());
    assert!(written.iter().all(|(channel, _)| *channel == input.channel));
    assert_eq!(
        written.iter().flat_map(|(_, p)| p.iter().copied()).collect::<Vec<_>>(),
        payload
    );
    assert_eq!(written.len(), payload.len().div_ceil(MAX_PAYLOAD).max(1));

    let resize = resize_payload(input.width, input.height);
    assert_eq!(u16::from_be_bytes([resize[0], resize[1]]), input.width);
    assert_eq!(u16::from_be_bytes([resize[2], resize[3]]), input.height);
});
