//! `--metrics ADDR`: Prometheus text on `GET /metrics`, off by default. A scrape reads the
//! counters the forwarding thread bumps (atomics), asks it once for MAC table statistics, and
//! counts OVSDB clients; nothing waits on a scraper. One connection at a time with short
//! timeouts: a scraper is one client every few seconds, and a stuck one cannot pile up threads.

pub mod sample;
pub mod vpn;
pub mod vpn_services;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;
use tracing::{debug, info};

use crate::control::{lock, Shared};
use sample::Sample;

const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest request head read; a scrape's is a few hundred bytes.
const MAX_REQUEST: usize = 8192;

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error(
        "--metrics {0} is reachable from other hosts; use a loopback address or add --metrics-allow-remote"
    )]
    NotLoopback(SocketAddr),
    #[error("binding the metrics endpoint {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// Where a scrape's numbers come from.
#[derive(Clone)]
pub struct Source {
    pub shared: Shared,
    /// Open OVSDB connections and transaction statistics (the server is owned elsewhere).
    pub ovsdb: Arc<dyn Fn() -> (usize, ovsdb::server::StatsSnapshot) + Send + Sync>,
}

impl Source {
    fn sample(&self) -> Sample {
        let daemon = lock(&self.shared);
        let show = daemon.show();
        let ports = Sample::ports_from(&show.bridges);
        let vpns = vpn::VpnSample::from_show(&show.bridges);
        let events_lost = daemon.events().lost();
        // A stuck forwarding thread leaves the bridge part out rather than the whole scrape.
        let bridges = daemon.datapath().mac_stats(Duration::from_secs(1)).unwrap_or_default();
        drop(daemon);
        let (ovsdb_clients, ovsdb) = (self.ovsdb)();
        Sample { ports, vpns, bridges, ovsdb_clients, ovsdb, events_lost }
    }
}

/// Binds `addr` (loopback only unless `allow_remote`) and serves scrapes on a thread; returns
/// the bound address (useful with port 0).
pub fn serve(addr: SocketAddr, allow_remote: bool, source: Source) -> Result<SocketAddr, MetricsError> {
    check_addr(addr, allow_remote)?;
    let listener = TcpListener::bind(addr).map_err(|e| MetricsError::Bind(addr, e))?;
    let bound = listener.local_addr().map_err(|e| MetricsError::Bind(addr, e))?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &source) {
                    debug!("metrics client: {e}");
                }
            }
        })
        .map_err(|e| MetricsError::Bind(addr, e))?;
    info!(%bound, "metrics endpoint ready (GET /metrics)");
    Ok(bound)
}

/// Counters and port names are nobody else's business: loopback unless the operator says so.
pub fn check_addr(addr: SocketAddr, allow_remote: bool) -> Result<(), MetricsError> {
    if addr.ip().is_loopback() || allow_remote {
        Ok(())
    } else {
        Err(MetricsError::NotLoopback(addr))
    }
}

/// The request line of an HTTP request head, if the head is complete.
fn request_line(head: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(head).ok()?;
    text.contains("\r\n\r\n").then(|| text.lines().next()).flatten()
}

/// Status line and body for a request line.
pub fn route(line: &str, scrape: impl FnOnce() -> String) -> (&'static str, String) {
    let mut words = line.split(' ');
    match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", scrape()),
        (Some("GET"), Some("/")) => ("200 OK", "rvswitchd: metrics at /metrics\n".to_string()),
        (Some("GET"), _) => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "only GET\n".to_string()),
    }
}

fn answer(mut stream: TcpStream, source: &Source) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    // The whole head within IO_TIMEOUT: a client dribbling a byte at a time cannot hold the
    // (single) metrics thread for longer than that.
    let deadline = Instant::now() + IO_TIMEOUT;
    while request_line(&head).is_none() {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() + n > MAX_REQUEST || Instant::now() >= deadline {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = request_line(&head).unwrap_or_default();
    let (status, body) = route(line, || source.sample().render());
    let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes())?;
    stream.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_request_heads() {
        assert_eq!(route("GET /metrics HTTP/1.1", || "m".into()), ("200 OK", "m".to_string()));
        assert_eq!(route("GET /nope HTTP/1.1", || unreachable!()).0, "404 Not Found");
        assert_eq!(route("POST /metrics HTTP/1.1", || unreachable!()).0, "405 Method Not Allowed");
        assert_eq!(route("", || unreachable!()).0, "405 Method Not Allowed");
        assert_eq!(request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Some("GET /metrics HTTP/1.1"));
        assert_eq!(request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), None, "head not complete yet");
        assert_eq!(request_line(&[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n']), None);
    }

    #[test]
    fn non_loopback_is_refused_without_the_flag() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(check_addr(addr("127.0.0.1:9475"), false).is_ok());
        assert!(check_addr(addr("[::1]:9475"), false).is_ok());
        assert!(matches!(check_addr(addr("0.0.0.0:9475"), false), Err(MetricsError::NotLoopback(_))));
        assert!(matches!(check_addr(addr("198.18.0.1:9475"), false), Err(MetricsError::NotLoopback(_))));
        assert!(check_addr(addr("0.0.0.0:9475"), true).is_ok());
    }
}
