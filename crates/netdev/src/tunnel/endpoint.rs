//! The UDP socket shared by every tunnel port on one (local address, port), and the demultiplexer
//! that gives each datagram to the port of its (remote, VNI). Whichever port's poll finds the
//! socket readable reads it; datagrams for another port go to that port's inbox (and wake it).
//! That hand-over copies the frame once (a `Vec` per frame, bounded by `INBOX_LIMIT`); a port
//! reading its own datagrams receives them straight into the batch.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use super::config::TunnelProto;
use crate::error::NetdevError;
use crate::sys;

/// Frames waiting in one port's inbox before further ones are dropped (counted).
const INBOX_LIMIT: usize = 1024;
/// Socket receive buffer asked for: a burst from a fast peer must not overflow a 200 KiB default.
const RCVBUF: libc::c_int = 4 << 20;

/// Which socket: a port's local address (None = any) and UDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    pub local: Option<Ipv4Addr>,
    pub port: u16,
}

/// Who a datagram is for: its sender and VNI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    pub remote: Ipv4Addr,
    pub vni: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Inner frames another port read for this one.
#[derive(Debug)]
pub(crate) struct Inbox {
    frames: Mutex<VecDeque<Vec<u8>>>,
    /// Readable while frames wait.
    pub event: OwnedFd,
    pub dropped: AtomicU64,
}

impl Inbox {
    fn new() -> io::Result<Inbox> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a fresh fd we own.
        let fd = sys::cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fd is valid and owned by nobody else.
        let event = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inbox { frames: Mutex::default(), event, dropped: AtomicU64::new(0) })
    }

    fn push(&self, frame: &[u8]) {
        let mut q = lock(&self.frames);
        if q.len() >= INBOX_LIMIT {
            self.dropped.fetch_add(1, Relaxed);
            return;
        }
        q.push_back(frame.to_vec());
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd.
        unsafe { libc::write(self.event.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Takes the next frame; clears the wakeup once the inbox is empty.
    pub fn pop(&self) -> Option<Vec<u8>> {
        let mut q = lock(&self.frames);
        let f = q.pop_front();
        if q.is_empty() {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64; the eventfd is non-blocking.
            unsafe { libc::read(self.event.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        f
    }
}

/// One bound UDP socket and the ports that receive through it.
#[derive(Debug)]
pub struct Endpoint {
    pub(crate) proto: TunnelProto,
    pub(crate) sock: UdpSocket,
    routes: Mutex<HashMap<Route, Arc<Inbox>>>,
    /// Datagrams that were not a tunnel frame, or for no port (unknown remote or VNI).
    pub(crate) strays: AtomicU64,
}

/// Where a received datagram goes.
pub(crate) enum Delivery {
    Mine,
    Other,
    Stray,
}

impl Endpoint {
    fn open(key: EndpointKey, proto: TunnelProto) -> Result<Endpoint, NetdevError> {
        let addr = SocketAddrV4::new(key.local.unwrap_or(Ipv4Addr::UNSPECIFIED), key.port);
        let what = format!("{} socket {addr}", proto.as_str());
        let sock = UdpSocket::bind(addr).map_err(|e| NetdevError::io("bind", &what, e))?;
        sock.set_nonblocking(true).map_err(|e| NetdevError::io("O_NONBLOCK", &what, e))?;
        let fd = OwnedFd::from(sock);
        // Best effort: without CAP_NET_ADMIN the plain limit applies.
        let _ = sys::setsockopt_int(&fd, libc::SOL_SOCKET, sys::SO_RCVBUFFORCE, RCVBUF)
            .or_else(|_| sys::setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF));
        Ok(Endpoint { proto, sock: UdpSocket::from(fd), routes: Mutex::default(), strays: AtomicU64::new(0) })
    }

    /// Registers a port's route; fails if another port already has it.
    pub(crate) fn join(&self, route: Route) -> Result<Arc<Inbox>, String> {
        let mut routes = lock(&self.routes);
        if routes.contains_key(&route) {
            return Err(format!(
                "another tunnel port already has remote_ip {} key {}",
                route.remote, route.vni
            ));
        }
        let inbox = Arc::new(Inbox::new().map_err(|e| format!("eventfd: {e}"))?);
        routes.insert(route, inbox.clone());
        Ok(inbox)
    }

    pub(crate) fn leave(&self, route: Route) {
        lock(&self.routes).remove(&route);
    }

    /// Hands `frame` (for `route`) to its port unless that is `me`.
    pub(crate) fn deliver(&self, route: Route, me: Route, frame: &[u8]) -> Delivery {
        if route == me {
            return Delivery::Mine;
        }
        match lock(&self.routes).get(&route) {
            Some(inbox) => {
                inbox.push(frame);
                Delivery::Other
            }
            None => {
                self.strays.fetch_add(1, Relaxed);
                Delivery::Stray
            }
        }
    }
}

/// The open sockets, shared by the tunnel ports that use them; a socket closes with its last
/// port.
#[derive(Clone, Debug, Default)]
pub struct TunnelEndpoints {
    open: Arc<Mutex<HashMap<EndpointKey, Weak<Endpoint>>>>,
}

impl TunnelEndpoints {
    /// The socket for `key`, opened if no port holds it yet.
    pub fn get(&self, key: EndpointKey, proto: TunnelProto) -> Result<Arc<Endpoint>, NetdevError> {
        let mut open = lock(&self.open);
        open.retain(|_, w| w.strong_count() > 0);
        if let Some(ep) = open.get(&key).and_then(Weak::upgrade) {
            if ep.proto != proto {
                return Err(NetdevError::Tunnel(format!(
                    "UDP port {} already carries {}, not {}",
                    key.port,
                    ep.proto.as_str(),
                    proto.as_str()
                )));
            }
            return Ok(ep);
        }
        let ep = Arc::new(Endpoint::open(key, proto)?);
        open.insert(key, Arc::downgrade(&ep));
        Ok(ep)
    }

    /// Sockets open now (for tests and status).
    pub fn len(&self) -> usize {
        lock(&self.open).values().filter(|w| w.strong_count() > 0).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
