//! The read side shared by SPDY streams and WebSocket channels: chunks the connection's
//! reader hands over through a bounded queue, read out as a byte stream.

use std::io;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::ReadBuf;
use tokio::sync::mpsc;

/// Received chunks; end of stream once the sender is gone and the chunks are read.
#[derive(Debug)]
pub(crate) struct Incoming {
    chunks: Option<mpsc::Receiver<Bytes>>,
    pending: Bytes,
}

impl Incoming {
    /// Reads from `chunks`, or nothing (end of stream at once) for `None`.
    pub(crate) fn new(chunks: Option<mpsc::Receiver<Bytes>>) -> Self {
        Self {
            chunks,
            pending: Bytes::new(),
        }
    }

    /// `AsyncRead::poll_read`, returning how many bytes it put in `buf` (0 at the end).
    pub(crate) fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<usize>> {
        if self.pending.is_empty() {
            let Some(chunks) = self.chunks.as_mut() else {
                return Poll::Ready(Ok(0));
            };
            match ready!(chunks.poll_recv(cx)) {
                Some(chunk) => self.pending = chunk,
                None => {
                    self.chunks = None;
                    return Poll::Ready(Ok(0));
                }
            }
        }
        let n = buf.remaining().min(self.pending.len());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(n))
    }
}
