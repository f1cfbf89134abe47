//! Port-forward connections: TCP to a port on the loopback of a pod's network namespace
//! (the host's, for a host-network pod).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use tokio::net::TcpStream;

use super::StreamError;
use crate::sandbox::netns;

/// Connects to `port` on the pod's loopback: `127.0.0.1`, then `::1`, as a client inside
/// the pod reaching `localhost` would.
pub(crate) async fn connect(netns: Option<PathBuf>, port: u16) -> Result<TcpStream, StreamError> {
    let addresses = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ];
    let stream = match netns {
        Some(netns) => netns::run_in(&netns, move || connect_first(&addresses)).await,
        None => connect_first(&addresses),
    };
    let stream = stream.map_err(|source| StreamError::Connect { port, source })?;
    TcpStream::from_std(stream).map_err(|source| StreamError::Connect { port, source })
}

/// The first address that accepts a connection (non-blocking once connected); the first
/// address's error if none does.
fn connect_first(addresses: &[SocketAddr]) -> io::Result<std::net::TcpStream> {
    let mut first_error = None;
    for address in addresses {
        match std::net::TcpStream::connect(address) {
            Ok(stream) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| io::Error::other("no address to connect to")))
}
