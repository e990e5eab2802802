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
    /// Echo requests sent and replies received, from ping's summary (0 if it printed none).
    pub transmitted: u32,
    pub received: u32,
    /// Echo requests without a reply among those before the last reply: losses, not counting
    /// the requests still in flight when [`BackgroundPing::stop`] ended the ping.
    pub lost_before_last_reply: u32,
    /// Replies ping marked `(DUP!)`: a request or reply delivered twice.
    pub duplicates: u32,
}

impl BackgroundPing {
    /// Pings `dst` from `ns` every `interval` for `seconds` (ping's own deadline ends it).
    pub fn start(ns: &Netns, dst: &str, interval: Duration, seconds: u32) -> anyhow::Result<BackgroundPing> {
        let i = format!("{:.3}", interval.as_secs_f64());
        let w = seconds.to_string();
        let child = ns.spawn(&["ping", "-D", "-n", "-i", &i, "-w", &w, dst])?;
        Ok(BackgroundPing { child, interval })
    }

    /// Sends exactly `count` echo requests every `interval` (ping ends after `count` replies,
    /// or at `deadline_s` if some are lost), so "all replied" is `received == transmitted ==
    /// count` — counted, not timed.
    pub fn counted(
        ns: &Netns,
        dst: &str,
        interval: Duration,
        count: u32,
        deadline_s: u32,
    ) -> anyhow::Result<BackgroundPing> {
        let i = format!("{:.3}", interval.as_secs_f64());
        let (c, w) = (count.to_string(), deadline_s.to_string());
        let child = ns.spawn(&["ping", "-D", "-n", "-i", &i, "-c", &c, "-w", &w, dst])?;
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
        let (transmitted, received) = parse_summary(&out);
        let longest_gap = Duration::from_secs_f64(longest.max(0.0));
        let lost_before_last_reply = unanswered_before_last(&out);
        let duplicates = out.lines().filter(|l| l.contains("(DUP!)")).count() as u32;
        PingReport { replies, longest_gap, transmitted, received, lost_before_last_reply, duplicates }
    }

    /// Ends the ping now (SIGINT, so it still prints its summary) and parses the replies.
    pub fn stop(self) -> PingReport {
        crate::signal_pid(self.child.pid(), libc::SIGINT);
        self.finish()
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

/// How many sequence numbers from 1 to the highest replied one got no reply.
fn unanswered_before_last(out: &str) -> u32 {
    let seqs: std::collections::BTreeSet<u32> = out
        .lines()
        .filter_map(|l| l.split_once("icmp_seq=")?.1.split_whitespace().next()?.parse().ok())
        .collect();
    seqs.last().map_or(0, |last| last - seqs.len() as u32)
}

/// `N packets transmitted, M received` from ping's summary line.
fn parse_summary(out: &str) -> (u32, u32) {
    let Some(line) = out.lines().find(|l| l.contains("packets transmitted")) else { return (0, 0) };
    let mut nums = line.split(',').filter_map(|f| f.split_whitespace().next()?.parse().ok());
    (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
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
        assert_eq!(parse_summary(out), (7, 2));
        assert_eq!(unanswered_before_last(out), 4, "2-5 lost; 7 may still have been in flight");
        let sum = "60 packets transmitted, 58 received, 3.33333% packet loss, time 5950ms\n";
        assert_eq!(parse_summary(sum), (60, 58));
    }
}
