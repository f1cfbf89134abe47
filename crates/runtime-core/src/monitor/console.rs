//! The terminal a runc-compatible runtime hands over on a console socket
//! (`--console-socket`): the pty master arrives as `SCM_RIGHTS` on a unix stream
//! connection. The monitor takes a container's terminal this way, the daemon an exec's.

use std::io::{self, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

/// The longest terminal name runc sends along with the descriptor.
const MAX_NAME: usize = 4096;

/// Accepts the runtime's connection on `listener` and takes the pty master it sends.
///
/// Call it once the runtime has exited (its message then waits in the socket): the
/// listener is made non-blocking, so a runtime that never connected is an error
/// (`WouldBlock`), not a hang.
pub fn receive_console(listener: &UnixListener) -> io::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    let (stream, _) = listener.accept()?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut name = [0u8; MAX_NAME];
    recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut master = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                master.get_or_insert(fd);
            }
        }
    }
    master.ok_or_else(|| io::Error::other("the runtime sent no file descriptor"))
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

    use super::*;

    #[test]
    fn the_descriptor_sent_on_the_socket_is_received() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        let (reader, writer) = rustix::pipe::pipe().expect("pipe");
        let sender = UnixStream::connect(&path).expect("connect");
        let fds = [writer.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        sendmsg(
            &sender,
            &[IoSlice::new(b"/dev/pts/9")],
            &mut control,
            SendFlags::empty(),
        )
        .expect("sendmsg");
        drop(writer);

        let received = receive_console(&listener).expect("receive");
        rustix::io::write(&received, b"x").expect("write through the received descriptor");
        let mut byte = [0u8; 1];
        assert_eq!(rustix::io::read(&reader, &mut byte).expect("read"), 1);
        assert_eq!(&byte, b"x");
    }

    #[test]
    fn a_runtime_that_never_connected_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = UnixListener::bind(dir.path().join("console.sock")).expect("bind");
        assert_eq!(
            receive_console(&listener).map(drop).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
    }
}
