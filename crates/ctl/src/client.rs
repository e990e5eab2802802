//! A blocking client for the control socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::de::DeserializeOwned;

use crate::protocol::{Reply, Request, MAX_LINE};

/// Sends one request and returns the raw reply.
pub fn call_raw(socket: &Path, request: &Request, timeout: Duration) -> Result<Reply> {
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to rvswitchd at {} (is it running?)", socket.display()))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream.take(MAX_LINE as u64 + 1));
    let mut reply = String::new();
    reader.read_line(&mut reply).context("reading reply from rvswitchd")?;
    if reply.is_empty() {
        bail!("rvswitchd closed the connection without replying");
    }
    serde_json::from_str(&reply).context("rvswitchd sent a reply that is not valid JSON")
}

/// Sends one request and decodes a successful reply's result as `T`; a failure becomes an error
/// carrying the daemon's message.
pub fn call<T: DeserializeOwned>(socket: &Path, request: &Request, timeout: Duration) -> Result<T> {
    let reply = call_raw(socket, request, timeout)?;
    if !reply.ok {
        return Err(anyhow!(reply.error.unwrap_or_else(|| "rvswitchd reported an error".into())));
    }
    let value = reply.result.ok_or_else(|| anyhow!("rvswitchd replied without a result"))?;
    serde_json::from_value(value).context("unexpected reply shape from rvswitchd")
}
