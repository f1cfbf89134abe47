//! The decompressed stream of a layer blob: plain, gzip (all members) or zstd (all frames).

use std::io::{self, BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

use super::Compression;

/// How many leading bytes [`Compression::detect`] needs at most.
pub(super) const MAGIC_LEN: usize = 4;

/// A reader whose first bytes were read ahead and are given back in front of the rest.
pub(super) type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads the first bytes of `reader` (up to [`MAGIC_LEN`]) and gives them back in front of
/// the rest, so the compression can be detected without losing anything.
pub(super) fn sniff<R: Read>(mut reader: R) -> io::Result<(Vec<u8>, Sniffed<R>)> {
    let mut head = vec![0; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(filled);
    Ok((head.clone(), io::Cursor::new(head).chain(reader)))
}

/// A reader giving the uncompressed bytes of a layer blob.
pub(super) enum Decompressor<R: Read> {
    /// An uncompressed tar.
    Plain(R),
    /// gzip; every member is read, as `gzip -d` and Go's `compress/gzip` do.
    Gzip(Box<MultiGzDecoder<R>>),
    /// zstd; every frame is read and skippable frames are skipped.
    Zstd(Box<ZstdFrames<R>>),
}

impl<R: Read> Decompressor<R> {
    /// Wraps `reader` holding data compressed with `compression`.
    pub(super) fn new(compression: Compression, reader: R) -> Self {
        match compression {
            Compression::None => Self::Plain(reader),
            Compression::Gzip => Self::Gzip(Box::new(MultiGzDecoder::new(reader))),
            Compression::Zstd => Self::Zstd(Box::new(ZstdFrames::new(reader))),
        }
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(r) => r.read(buf),
            Self::Gzip(r) => r.read(buf),
            Self::Zstd(r) => r.read(buf),
        }
    }
}

/// A zstd stream of any number of frames (zstd:chunked layers are many frames plus
/// skippable ones), decoded with the pure-Rust `ruzstd`; frame checksums are verified.
pub(super) struct ZstdFrames<R: Read> {
    source: BufReader<R>,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: Read> ZstdFrames<R> {
    fn new(source: R) -> Self {
        Self {
            source: BufReader::new(source),
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    /// Starts the next frame; false at the clean end of the stream.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                return Ok(false);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => return Ok(true),
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame { length, .. })) => {
                    let skipped = io::copy(&mut (&mut self.source).take(u64::from(length)), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "zstd: truncated skippable frame",
                        ));
                    }
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }

    fn check_checksum(&self) -> io::Result<()> {
        match (
            self.decoder.get_checksum_from_data(),
            self.decoder.get_calculated_checksum(),
        ) {
            (Some(stored), Some(computed)) if stored != computed => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("zstd: frame checksum mismatch ({stored:#x} != {computed:#x})"),
            )),
            _ => Ok(()),
        }
    }
}

fn zstd_error(e: FrameDecoderError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: Read> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            // As ruzstd's StreamingDecoder does: decode until enough is collectable.
            while self.decoder.can_collect() < buf.len() && !self.decoder.is_finished() {
                let wanted = buf.len() - self.decoder.can_collect();
                self.decoder
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBytes(wanted))
                    .map_err(zstd_error)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                self.check_checksum()?;
                self.in_frame = false;
            }
        }
    }
}
