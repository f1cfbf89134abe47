//! The body of a `/containerLogs` answer: the chunks of the copy as they come, and the
//! end of the body only after the last chunk went out on its own.
//!
//! Why: the kube-apiserver serves `pods/log` to a WebSocket client (`binary.k8s.io`,
//! `base64.binary.k8s.io`) by reading the kubelet's answer in a loop that stops at the
//! first read returning `io.EOF` without sending what that read returned
//! (`wsstream.messageCopy`, 1.20 and later). Go's chunked reader returns the last data
//! together with `io.EOF` when the terminating chunk (`0\r\n\r\n`) is already buffered
//! behind it, that is when both came in one TLS record. hyper writes what the body gives
//! until the body waits, then flushes: a body that gives its last chunk and its end at
//! once puts both in one write, so one record, and a WebSocket client got an empty log.
//! The kubelet flushes each write of a log (`flushwriter`) before its handler returns and
//! the terminating chunk follows, so the two never share a record; so here, the body
//! waits once between its last chunk and its end, which makes hyper flush the chunk first.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::server::body::Body;

/// The body streaming `receiver`'s chunks; it ends once every sender is gone, after the
/// last chunk was flushed on its own.
pub(crate) fn log_body(receiver: mpsc::Receiver<Bytes>) -> Body {
    LogBody {
        receiver,
        unflushed: false,
    }
    .boxed()
}

struct LogBody {
    receiver: mpsc::Receiver<Bytes>,
    /// Whether a chunk was given since the connection last had to wait (and so flushed
    /// what it held).
    unflushed: bool,
}

impl hyper::body::Body for LogBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => {
                self.unflushed = true;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(None) if self.unflushed => {
                // Wait once, woken at once: hyper flushes the last chunk, then asks again.
                self.unflushed = false;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                self.unflushed = false;
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use http::Response;
    use http_body_util::StreamBody;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream, ReadBuf};
    use tokio_stream::StreamExt as _;
    use tokio_stream::wrappers::ReceiverStream;

    use super::*;

    /// A connection that records each write the server makes (what becomes one TLS
    /// record behind a TLS stream).
    struct Recorder {
        inner: DuplexStream,
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    impl AsyncRead for Recorder {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
            let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
            writes.push(buf[..written].to_vec());
            Poll::Ready(Ok(written))
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// The writes of a hyper server answering one GET with `body(chunks)`, whose chunks
    /// are all sent (and the sender gone) before the server runs.
    async fn writes_of(chunks: &[&'static str], body: fn(mpsc::Receiver<Bytes>) -> Body) -> Vec<String> {
        let (server_end, mut client) = tokio::io::duplex(1 << 16);
        let writes = Arc::new(Mutex::new(Vec::new()));
        let io = Recorder {
            inner: server_end,
            writes: writes.clone(),
        };
        let (sender, receiver) = mpsc::channel(chunks.len().max(1));
        for chunk in chunks {
            sender.try_send(Bytes::from_static(chunk.as_bytes())).unwrap();
        }
        drop(sender);
        let receiver = Mutex::new(Some(receiver));
        let service = service_fn(move |_request| {
            let receiver = receiver.lock().unwrap().take().expect("one request");
            async move { Ok::<_, Infallible>(Response::new(body(receiver))) }
        });
        let server =
            tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), service));
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        server.await.unwrap().unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.ends_with("0\r\n\r\n"), "{answer:?}");
        let writes = writes.lock().unwrap();
        writes.iter().map(|w| String::from_utf8_lossy(w).into_owned()).collect()
    }

    #[tokio::test]
    async fn the_end_of_a_log_goes_out_after_its_last_chunk() {
        let writes = writes_of(&["container is alive\n"], log_body).await;
        let last_data = writes.iter().rposition(|w| w.contains("container is alive")).unwrap();
        let end = writes.iter().position(|w| w.contains("0\r\n\r\n")).unwrap();
        assert!(
            last_data < end && !writes[last_data].contains("0\r\n\r\n"),
            "the log and the end of the body in one write: {writes:?}"
        );
        // The same with more chunks, and with none.
        let writes = writes_of(&["one\n", "two\n", "three\n"], log_body).await;
        let end = writes.iter().position(|w| w.contains("0\r\n\r\n")).unwrap();
        assert!(!writes[end].contains("three"), "{writes:?}");
        let writes = writes_of(&[], log_body).await;
        assert!(writes.concat().ends_with("0\r\n\r\n"), "{writes:?}");
    }

    #[tokio::test]
    async fn a_plain_streamed_body_would_end_in_the_same_write() {
        // What the test above guards against: hyper writes a body's last chunk and its
        // end together when the body gives both at once.
        let plain = |receiver| {
            let frames = ReceiverStream::new(receiver).map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
            StreamBody::new(frames).boxed()
        };
        let writes = writes_of(&["container is alive\n"], plain).await;
        let last_data = writes.iter().rposition(|w| w.contains("container is alive")).unwrap();
        assert!(writes[last_data].contains("0\r\n\r\n"), "{writes:?}");
    }
}
