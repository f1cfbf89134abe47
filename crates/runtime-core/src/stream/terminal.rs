//! A terminal's master side as tokio streams: reads are the process's output, writes its
//! input. Reads fail with `EIO` once no process holds the terminal any more, which ends a
//! session's output.
//!
//! The master is used in blocking mode through tokio's blocking pool (`tokio::fs::File`):
//! registering a descriptor with tokio's reactor takes `unsafe` (`AsyncFd::register`),
//! which this crate denies. A blocked read ends when the process exits or is killed.

use std::io;
use std::os::fd::OwnedFd;

use rustix::termios::Winsize;

/// The ASCII end-of-transmission byte (`^D`): a terminal in canonical mode reads it as
/// end of file, which is how a session's closed stdin reaches a process on a terminal.
pub const END_OF_TRANSMISSION: u8 = 0x04;

/// A pty master: its output and input as two tokio files, and its size.
#[derive(Debug)]
pub struct Terminal {
    /// What the process writes on the terminal.
    pub output: tokio::fs::File,
    /// What the process reads from the terminal.
    pub input: tokio::fs::File,
    /// The terminal's size.
    pub size: Resizer,
}

/// Sets a terminal's size.
#[derive(Debug)]
pub struct Resizer(OwnedFd);

impl Terminal {
    /// Takes `master`.
    pub fn new(master: OwnedFd) -> io::Result<Terminal> {
        rustix::io::ioctl_fionbio(&master, false)?;
        Ok(Terminal {
            output: std::fs::File::from(master.try_clone()?).into(),
            input: std::fs::File::from(master.try_clone()?).into(),
            size: Resizer(master),
        })
    }
}

impl Resizer {
    /// Sets the terminal's size (`TIOCSWINSZ`); the process gets `SIGWINCH`.
    pub fn resize(&self, width: u16, height: u16) -> io::Result<()> {
        let size = Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        Ok(rustix::termios::tcsetwinsize(&self.0, size)?)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_cross_the_terminal_and_its_size_is_set() {
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).expect("openpt");
        grantpt(&master).expect("grantpt");
        unlockpt(&master).expect("unlockpt");
        let name = ptsname(&master, Vec::new()).expect("ptsname");
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().expect("utf-8 name"))
            .expect("open the slave");
        let mut terminal = Terminal::new(master).expect("terminal");

        terminal.size.resize(100, 30).expect("resize");
        let size = rustix::termios::tcgetwinsize(slave.as_fd()).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (100, 30));

        rustix::io::write(&slave, b"out").expect("write the slave");
        let mut got = [0u8; 3];
        terminal.output.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"out");
        terminal.input.write_all(b"in\n").await.expect("write");
        terminal.input.flush().await.expect("flush");
        drop(slave);
        let mut rest = Vec::new();
        let end = terminal.output.read_to_end(&mut rest).await;
        assert_eq!(
            end.map_err(|e| e.raw_os_error()),
            Err(Some(rustix::io::Errno::IO.raw_os_error()))
        );
    }
}
