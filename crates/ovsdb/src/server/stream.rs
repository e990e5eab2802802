//! A connected non-blocking socket, unix or TCP, behind one type.

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};

/// A client connection (non-blocking, registered with the server's event loop).
#[derive(Debug)]
pub enum Stream {
    /// Unix domain socket.
    Unix(UnixStream),
    /// TCP (loopback) socket.
    Tcp(TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }

    /// Registers for both directions (edge-triggered).
    pub(crate) fn register(&mut self, r: &Registry, t: Token) -> io::Result<()> {
        r.register(self.source(), t, Interest::READABLE | Interest::WRITABLE)
    }

    /// Stops delivering events for this socket.
    pub(crate) fn deregister(&mut self, r: &Registry) {
        let _ = r.deregister(self.source());
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}
