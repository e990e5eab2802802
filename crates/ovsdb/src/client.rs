//! A small blocking OVSDB client (RFC 7047 JSON-RPC over `unix:PATH` or `tcp:HOST:PORT`), for
//! tools like `rvsctl zones` that talk to the database the way `ovs-vsctl` does — to rvswitchd's
//! embedded server or to Debian's own ovsdb-server alike.
//!
//! One request is in flight at a time. While waiting for its reply the client answers the
//! server's `echo` requests (ovsdb-server's inactivity probe would otherwise drop us) and
//! queues notifications (monitor updates) for [`Client::next_notification`]. Every wait is
//! bounded by the client's timeout.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::OvsdbError;
use crate::jsonrpc::{FrameError, Splitter};

/// Largest message accepted from the server (a full Open_vSwitch dump is far smaller).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Where the database listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Remote {
    /// `unix:PATH`
    Unix(PathBuf),
    /// `tcp:HOST:PORT`
    Tcp(String),
}

impl std::str::FromStr for Remote {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Remote, ClientError> {
        let bad = || ClientError::BadRemote(s.to_string());
        if let Some(p) = s.strip_prefix("unix:") {
            return if p.is_empty() { Err(bad()) } else { Ok(Remote::Unix(p.into())) };
        }
        let addr = s.strip_prefix("tcp:").ok_or_else(bad)?;
        match addr.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Remote::Tcp(addr.into()))
            }
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Remote::Unix(p) => write!(f, "unix:{}", p.display()),
            Remote::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Everything that can go wrong talking to a database.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The remote string is neither `unix:PATH` nor `tcp:HOST:PORT`.
    #[error("invalid database remote \"{0}\": use unix:PATH or tcp:HOST:PORT")]
    BadRemote(String),
    /// Connecting failed (no server there, permission denied...).
    #[error("cannot connect to the database at {remote}: {cause}")]
    Connect {
        /// The remote.
        remote: String,
        /// The OS error (in the message, not chained, so it is printed once).
        cause: std::io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("I/O error talking to the database: {0}")]
    Io(std::io::Error),
    /// No reply within the timeout.
    #[error("no reply from the database within {0:?}")]
    Timeout(Duration),
    /// The server closed the connection.
    #[error("the database closed the connection")]
    Closed,
    /// The byte stream is not JSON-RPC.
    #[error("the database sent a malformed stream: {0}")]
    Frame(FrameError),
    /// A message was not JSON.
    #[error("the database sent invalid JSON: {0}")]
    Json(serde_json::Error),
    /// The server answered a request with an error.
    #[error("{method} failed: {error}")]
    Rpc {
        /// The request's method.
        method: String,
        /// The error member of the reply.
        error: Value,
    },
    /// One operation of a transaction failed; the whole transaction was rolled back.
    #[error("transaction failed at operation {index}: {error}")]
    Transaction {
        /// Index of the failing operation (== number of ops for a commit-time failure).
        index: usize,
        /// The RFC 7047 error object.
        error: OvsdbError,
    },
    /// A reply had an unexpected shape.
    #[error("unexpected reply from the database: {0}")]
    Protocol(String),
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

impl From<serde_json::Error> for ClientError {
    fn from(e: serde_json::Error) -> ClientError {
        ClientError::Json(e)
    }
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        let t = Some(t.max(Duration::from_millis(1)));
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(Some(t)),
            Stream::Tcp(s) => s.set_write_timeout(Some(t)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Unix(s) => s.write_all(buf),
            Stream::Tcp(s) => s.write_all(buf),
        }
    }
}

/// A connection to one OVSDB server.
pub struct Client {
    stream: Stream,
    splitter: Splitter,
    inbox: VecDeque<Value>,
    notifications: VecDeque<Value>,
    next_id: u64,
    timeout: Duration,
}

impl Client {
    /// Connects to `remote` (`unix:PATH` or `tcp:HOST:PORT`); `timeout` bounds every later wait.
    pub fn connect(remote: &str, timeout: Duration) -> Result<Client, ClientError> {
        let r: Remote = remote.parse()?;
        let connect_err = |cause| ClientError::Connect { remote: r.to_string(), cause };
        let stream = match &r {
            Remote::Unix(p) => Stream::Unix(UnixStream::connect(p).map_err(connect_err)?),
            Remote::Tcp(a) => Stream::Tcp(connect_tcp(a, timeout).map_err(connect_err)?),
        };
        stream.set_write_timeout(timeout)?;
        Ok(Client {
            stream,
            splitter: Splitter::new(MAX_MESSAGE),
            inbox: VecDeque::new(),
            notifications: VecDeque::new(),
            next_id: 0,
            timeout,
        })
    }

    /// Sends `method(params)` and waits for its reply's `result`.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"method": method, "params": params, "id": id}))?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let msg = self.recv(deadline)?;
            if msg.get("method").is_some() {
                continue; // handled by recv (echo) or queued (notification)
            }
            if msg.get("id") != Some(&json!(id)) {
                continue; // a reply to nothing we are waiting for
            }
            return match msg.get("error") {
                Some(e) if !e.is_null() => Err(ClientError::Rpc { method: method.into(), error: e.clone() }),
                _ => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
            };
        }
    }

    /// Names of the databases the server holds.
    pub fn list_dbs(&mut self) -> Result<Vec<String>, ClientError> {
        let r = self.call("list_dbs", json!([]))?;
        serde_json::from_value(r).map_err(|e| ClientError::Protocol(format!("list_dbs: {e}")))
    }

    /// The schema of database `db`, as JSON.
    pub fn get_schema(&mut self, db: &str) -> Result<Value, ClientError> {
        self.call("get_schema", json!([db]))
    }

    /// Round-trips an `echo` (a liveness check).
    pub fn echo(&mut self) -> Result<(), ClientError> {
        let r = self.call("echo", json!(["rvsctl"]))?;
        if r == json!(["rvsctl"]) {
            Ok(())
        } else {
            Err(ClientError::Protocol(format!("echo returned {r}")))
        }
    }

    /// Runs `ops` as one transaction on `db`; returns one result per operation. If any
    /// operation (or the commit) failed, nothing was changed and the error says where.
    pub fn transact(&mut self, db: &str, ops: &[Value]) -> Result<Vec<Value>, ClientError> {
        let mut params = vec![json!(db)];
        params.extend(ops.iter().cloned());
        let r = self.call("transact", Value::Array(params))?;
        let Value::Array(results) = r else {
            return Err(ClientError::Protocol(format!("transact returned {r}")));
        };
        if let Some((index, e)) =
            results.iter().enumerate().find(|(_, r)| r.get("error").is_some_and(|e| !e.is_null()))
        {
            return Err(ClientError::Transaction { index, error: ovsdb_error(e) });
        }
        Ok(results)
    }

    /// Starts a (version 1) monitor; returns the initial contents. Updates arrive through
    /// [`Client::next_notification`].
    pub fn monitor(&mut self, db: &str, id: Value, requests: Value) -> Result<Value, ClientError> {
        self.call("monitor", json!([db, id, requests]))
    }

    /// The next notification (e.g. `update`), waiting at most the client's timeout.
    pub fn next_notification(&mut self) -> Result<Value, ClientError> {
        self.notification_until(Instant::now() + self.timeout)
    }

    /// Waits until `Open_vSwitch.cur_cfg` reaches `target` (the `next_cfg` a transaction set),
    /// i.e. until the switch daemon has applied the change — what `ovs-vsctl` waits for unless
    /// `--no-wait`. Returns the cur_cfg seen. A monitor, not polling: the server pushes the
    /// change, and a value written before the monitor started is in its initial contents.
    pub fn wait_cur_cfg(&mut self, db: &str, target: i64) -> Result<i64, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let id = json!("rvs-cur-cfg");
        let initial = self.monitor(db, id.clone(), json!({"Open_vSwitch": {"columns": ["cur_cfg"]}}))?;
        let mut cur = max_cur_cfg(&initial);
        while cur < target {
            let n = self.notification_until(deadline)?;
            if n.get("method") == Some(&json!("update")) && n["params"][0] == id {
                cur = cur.max(max_cur_cfg(&n["params"][1]));
            }
        }
        self.call("monitor_cancel", json!([id]))?;
        Ok(cur)
    }

    /// The next notification if one arrives within `wait` (`None` if none did): for a loop that
    /// also has other work, such as a daemon's connection thread serving its own requests.
    pub fn poll_notification(&mut self, wait: Duration) -> Result<Option<Value>, ClientError> {
        match self.notification_until(Instant::now() + wait) {
            Ok(n) => Ok(Some(n)),
            Err(ClientError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn notification_until(&mut self, deadline: Instant) -> Result<Value, ClientError> {
        loop {
            if let Some(n) = self.notifications.pop_front() {
                return Ok(n);
            }
            let msg = self.recv(deadline)?;
            if msg.get("method").is_none() {
                continue; // a late reply; nobody waits for it any more
            }
        }
    }

    fn send(&mut self, v: &Value) -> Result<(), ClientError> {
        self.stream.write_all(v.to_string().as_bytes())?;
        Ok(())
    }

    /// The next message that is not a server request: echo requests are answered here,
    /// notifications are queued and also returned so callers can notice them.
    fn recv(&mut self, deadline: Instant) -> Result<Value, ClientError> {
        loop {
            if let Some(msg) = self.inbox.pop_front() {
                match (msg.get("method").and_then(Value::as_str), msg.get("id")) {
                    (Some("echo"), Some(id)) if !id.is_null() => {
                        let reply = json!({"id": id, "result": msg.get("params").cloned().unwrap_or(json!([])), "error": null});
                        self.send(&reply)?;
                        continue;
                    }
                    (Some(_), _) => self.notifications.push_back(msg.clone()),
                    _ => {}
                }
                return Ok(msg);
            }
            self.fill(deadline)?;
        }
    }

    fn fill(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClientError::Timeout(self.timeout));
        }
        self.stream.set_read_timeout(left)?;
        let mut buf = [0u8; 65536];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => return Err(ClientError::Closed),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err(ClientError::Timeout(self.timeout))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut msgs = Vec::new();
        self.splitter.feed(&buf[..n], &mut |m| msgs.push(m)).map_err(ClientError::Frame)?;
        for m in msgs {
            self.inbox.push_back(serde_json::from_slice(&m)?);
        }
        Ok(())
    }
}

fn connect_tcp(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    use std::net::ToSocketAddrs;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The largest `cur_cfg` in a monitor v1 table-updates object.
fn max_cur_cfg(updates: &Value) -> i64 {
    let rows = updates.get("Open_vSwitch").and_then(Value::as_object);
    rows.into_iter()
        .flat_map(|m| m.values())
        .filter_map(|r| r["new"]["cur_cfg"].as_i64())
        .max()
        .unwrap_or(i64::MIN)
}

fn ovsdb_error(e: &Value) -> OvsdbError {
    OvsdbError {
        error: e.get("error").and_then(Value::as_str).unwrap_or("unknown error").to_string(),
        details: e.get("details").and_then(Value::as_str).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remotes_parse() {
        assert_eq!("unix:/run/x.sock".parse::<Remote>().unwrap(), Remote::Unix("/run/x.sock".into()));
        assert_eq!("tcp:127.0.0.1:6640".parse::<Remote>().unwrap(), Remote::Tcp("127.0.0.1:6640".into()));
        assert_eq!("tcp:[::1]:6640".parse::<Remote>().unwrap(), Remote::Tcp("[::1]:6640".into()));
        for bad in ["", "unix:", "/run/x.sock", "tcp:127.0.0.1", "tcp::6640", "tcp:h:99999", "ssl:h:1"] {
            assert!(matches!(bad.parse::<Remote>(), Err(ClientError::BadRemote(_))), "{bad}");
        }
    }
}
