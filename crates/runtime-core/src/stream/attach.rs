//! Attach sessions: the client's streams joined to a running container's own stdio,
//! through its monitor's attach socket (see [`crate::monitor::attach`] for the frames).

use streaming::{Input, Output, Streams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::StreamError;
use crate::monitor::{self, attach};
use crate::pods::AttachTarget;

/// Attaches `streams` to the container until its output ends (it exited) or the client
/// goes away.
pub(crate) async fn run(target: AttachTarget, streams: Streams) -> Result<(), StreamError> {
    let io_error = |what| move |source| StreamError::Io { what, source };
    let dir = target.monitor_dir.clone();
    let socket = tokio::task::spawn_blocking(move || monitor::connect_attach(&dir))
        .await
        .map_err(|err| StreamError::Io {
            what: "connecting to the monitor",
            source: std::io::Error::other(err),
        })?
        .map_err(|_| StreamError::NotRunning)?;
    socket
        .set_nonblocking(true)
        .map_err(io_error("connecting to the monitor"))?;
    let socket = UnixStream::from_std(socket).map_err(io_error("connecting to the monitor"))?;
    let (mut from_monitor, to_monitor) = socket.into_split();

    let stdin = streams.stdin.filter(|_| target.stdin);
    let sending = send(to_monitor, stdin, target.stdin_once, streams.resize);
    let receiving = async {
        let mut outputs = [streams.stdout, streams.stderr];
        let mut header = [0u8; attach::HEADER_LEN];
        let mut payload = vec![0u8; attach::MAX_PAYLOAD];
        loop {
            if from_monitor.read_exact(&mut header).await.is_err() {
                // The container exited: the monitor closed the connection.
                return Ok(());
            }
            let len = usize::from(u16::from_be_bytes([header[1], header[2]]));
            if from_monitor.read_exact(&mut payload[..len]).await.is_err() {
                return Ok(());
            }
            let output = match header[0] {
                attach::STDOUT => outputs[0].as_mut(),
                attach::STDERR => outputs[1].as_mut(),
                _ => None,
            };
            if let Some(output) = output {
                write(output, &payload[..len]).await?;
            }
        }
    };
    tokio::select! {
        result = receiving => result,
        () = sending => Ok(()),
    }
}

/// Writes to the client; an error means it went away.
async fn write(output: &mut Output, data: &[u8]) -> Result<(), StreamError> {
    let written = async {
        output.write_all(data).await?;
        output.flush().await
    };
    written.await.map_err(|_| StreamError::ClientGone)
}

/// Sends the client's stdin and terminal sizes to the monitor. Returns only if the
/// monitor's socket fails; otherwise runs until the session ends.
async fn send(
    mut to_monitor: OwnedWriteHalf,
    mut stdin: Option<Input>,
    stdin_once: bool,
    mut sizes: Option<mpsc::Receiver<TerminalSize>>,
) {
    let mut buf = vec![0u8; attach::MAX_PAYLOAD];
    let mut frame = Vec::with_capacity(attach::MAX_PAYLOAD + attach::HEADER_LEN);
    loop {
        frame.clear();
        tokio::select! {
            read = async { stdin.as_mut()?.read(&mut buf).await.ok() }, if stdin.is_some() => match read {
                Some(read) if read > 0 => attach::encode(attach::STDIN, &buf[..read], &mut frame),
                _ => {
                    stdin = None;
                    if stdin_once {
                        attach::encode(attach::CLOSE_STDIN, &[], &mut frame);
                    }
                }
            },
            size = async { sizes.as_mut()?.recv().await }, if sizes.is_some() => match size {
                Some(size) => attach::encode(attach::RESIZE, &attach::resize_payload(size.width, size.height), &mut frame),
                None => sizes = None,
            },
            () = std::future::pending::<()>(), if stdin.is_none() && sizes.is_none() => {}
        }
        if !frame.is_empty() && to_monitor.write_all(&frame).await.is_err() {
            return;
        }
    }
}
