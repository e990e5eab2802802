//! A ping running in the background that records when each reply came, to measure how long
//! forwarding stopped (a restart's outage) without a timed assertion: the longest gap between
//! two replies.

use std::io::Read;
use std::time::Duration;

use crate::{ChildGuard, Netns};

/// `ping -D` from a namespace for a bounded time.
pub struct BackgroundPing {
    child: ChildGuard,
    interval: Duration,
}

/// What a finished [`BackgroundPing`] saw.
#[derive(Debug)]
pub struct PingReport {
    /// Reply times (seconds, as `ping -D` prints them).
    pub replies: Vec<f64>,
    /// The longest time between two replies.
    pub longest_gap: Duration,
    /// Echo requests sent (ping's `N packets transmitted`; 0 if it printed no summary).
    pub sent: usize,
}

impl BackgroundPing {
    /// Pings `dst` from `ns` every `interval` for `seconds` (ping's own deadline ends it).
    pub fn start(ns: &Netns, dst: &str, interval: Duration, seconds: u32) -> anyhow::Result<BackgroundPing> {
        let i = format!("{:.3}", interval.as_secs_f64());
        let w = seconds.to_string();
        let child = ns.spawn(&["ping", "-D", "-n", "-i", &i, "-w", &w, dst])?;
        Ok(BackgroundPing { child, interval })
    }

    /// Waits (ping's deadline bounds it) and parses the replies.
    pub fn finish(mut self) -> PingReport {
        let mut out = String::new();
        if let Some(mut s) = self.child.child_mut().stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        let _ = self.child.child_mut().wait();
        let replies = parse_reply_times(&out);
        let longest = replies.windows(2).map(|w| w[1] - w[0]).fold(0.0f64, f64::max);
        let sent = parse_transmitted(&out);
        PingReport { replies, longest_gap: Duration::from_secs_f64(longest.max(0.0)), sent }
    }

    /// The interval the ping was started with.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// The `[1700000000.123456]` stamps of `ping -D` reply lines (`... icmp_seq=N ...`).
fn parse_reply_times(out: &str) -> Vec<f64> {
    out.lines()
        .filter(|l| l.contains("icmp_seq="))
        .filter_map(|l| l.strip_prefix('[')?.split_once(']')?.0.parse().ok())
        .collect()
}

/// `N` of ping's summary line `N packets transmitted, ...`.
fn parse_transmitted(out: &str) -> usize {
    out.lines().find_map(|l| l.split_once(" packets transmitted")?.0.trim().parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_stamps_are_parsed_and_other_lines_ignored() {
        let out = "PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n\
                   [1700000000.100000] 64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.1 ms\n\
                   [1700000000.350000] 64 bytes from 198.18.0.2: icmp_seq=6 ttl=64 time=0.1 ms\n\
                   --- 198.18.0.2 ping statistics ---\n\
                   7 packets transmitted, 2 received, 71.4286% packet loss, time 30ms\n";
        assert_eq!(parse_reply_times(out), vec![1700000000.1, 1700000000.35]);
        assert_eq!(parse_transmitted(out), 7);
    }
}
