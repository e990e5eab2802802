//! Whether the tunnel is up — the kill switch's one input — decided from times the shell
//! passes in, so every case is tested without a clock or a peer.
//!
//! Up means: boringtun completed a handshake less than `REJECT_AFTER_TIME` ago (after that
//! WireGuard itself refuses the session), and the peer has answered since we last started
//! sending into the tunnel, or we started less than `KEEPALIVE_TIMEOUT + REKEY_TIMEOUT` ago.
//! The second half is WireGuard's own "data sent, nothing heard for 15 s: the session is
//! dead, handshake again" rule (whitepaper §6.5); without it a stopped server would look up
//! for up to three minutes. Once down it stays down until the peer is heard again (a
//! handshake response, or data): our own retries do not count, so a dead server cannot make
//! the tunnel flap up.
//!
//! An idle tunnel sends nothing, so the rule above alone would keep a dead server "up" until
//! `REJECT_AFTER`. So a tunnel we have not heard from for [`PROBE_AFTER`] is probed with a
//! handshake initiation, which counts as unanswered data: a live peer answers within
//! `REKEY_TIMEOUT`, a dead one leaves the tunnel down [`UNANSWERED`] later (40 s after the
//! last word from the peer at most). A handshake, not a keepalive: WireGuard answers no
//! keepalive (Linux and wireguard-go skip the passive-keepalive timer for zero-length data),
//! so only a handshake is sure to draw an authenticated reply. Our own PersistentKeepalive
//! does not change this; a peer with one keeps itself heard and is never probed.

use std::time::{Duration, Instant};

/// WireGuard's `Reject-After-Time`.
pub const REJECT_AFTER: Duration = Duration::from_secs(180);
/// `Keepalive-Timeout + Rekey-Timeout`: how long sent data may go unanswered.
pub const UNANSWERED: Duration = Duration::from_secs(15);
/// `Rekey-Timeout`: how often a handshake is retried while down.
pub const RETRY: Duration = Duration::from_secs(5);
/// Silence from the peer after which an up tunnel is probed (wg-quick's usual
/// PersistentKeepalive; one 148-byte handshake per idle interval).
pub const PROBE_AFTER: Duration = Duration::from_secs(25);

#[derive(Clone, Debug, Default)]
pub struct Health {
    /// When we first sent data that the peer has not answered (anything authenticated counts).
    unanswered_since: Option<Instant>,
    /// When we last started a handshake ourselves.
    last_initiation: Option<Instant>,
    /// When an authenticated datagram last came from the peer.
    last_heard: Option<Instant>,
}

impl Health {
    /// The kill switch's input: see the module doc.
    pub fn is_up(&self, now: Instant, since_handshake: Option<Duration>) -> bool {
        let fresh = since_handshake.is_some_and(|d| d < REJECT_AFTER);
        let answered = self.unanswered_since.is_none_or(|t| now.saturating_duration_since(t) < UNANSWERED);
        fresh && answered
    }

    /// Data went into the tunnel.
    pub fn sent(&mut self, now: Instant) {
        self.unanswered_since.get_or_insert(now);
    }

    /// An authenticated datagram came from the peer (data, keepalive, handshake response).
    pub fn heard(&mut self, now: Instant) {
        self.unanswered_since = None;
        self.last_heard = Some(now);
    }

    /// An up tunnel silent for [`PROBE_AFTER`] is probed: true means "send a handshake
    /// initiation now" (and counts it as data awaiting an answer).
    pub fn probe(&mut self, now: Instant, up: bool) -> bool {
        let quiet = self.last_heard.is_none_or(|t| now.saturating_duration_since(t) >= PROBE_AFTER);
        if !up || self.unanswered_since.is_some() || !quiet {
            return false;
        }
        self.sent(now);
        true
    }

    /// While down, a handshake is started at once and then every `RETRY`; true means "start
    /// one now" (and records it).
    pub fn initiate(&mut self, now: Instant, up: bool) -> bool {
        if up || self.last_initiation.is_some_and(|t| now.saturating_duration_since(t) < RETRY) {
            return false;
        }
        self.last_initiation = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn down_until_a_handshake_and_after_reject_time() {
        let h = Health::default();
        let t = Instant::now();
        assert!(!h.is_up(t, None), "no handshake yet");
        assert!(h.is_up(t, Some(S(1))));
        assert!(h.is_up(t, Some(S(179))));
        assert!(!h.is_up(t, Some(S(180))), "WireGuard rejects the session by then");
    }

    #[test]
    fn unanswered_data_takes_the_tunnel_down_after_15_s() {
        let mut h = Health::default();
        let t = Instant::now();
        h.sent(t);
        h.sent(t + S(10)); // the first unanswered send counts
        assert!(h.is_up(t + S(14), Some(S(20))));
        assert!(!h.is_up(t + S(15), Some(S(20))));
        h.heard(t);
        assert!(h.is_up(t + S(15), Some(S(20))), "any answer brings it back");
    }

    #[test]
    fn handshakes_are_retried_every_5_s_while_down() {
        let mut h = Health::default();
        let t = Instant::now();
        assert!(h.initiate(t, false));
        assert!(!h.initiate(t + S(4), false));
        assert!(h.initiate(t + S(5), false));
        assert!(!h.initiate(t + S(60), true), "not while up");
        h.sent(t);
        assert!(h.initiate(t + S(70), false));
        assert!(!h.is_up(t + S(70), Some(S(100))), "our own retry does not bring it up");
        h.heard(t);
        assert!(h.is_up(t + S(71), Some(S(0))), "the peer's answer does");
    }

    #[test]
    fn an_idle_tunnel_is_probed_and_goes_down_when_the_probe_is_unanswered() {
        let mut h = Health::default();
        let t = Instant::now();
        h.heard(t);
        assert!(!h.probe(t + S(24), true), "heard recently");
        assert!(!h.probe(t + S(30), false), "never while down");
        assert!(h.probe(t + S(25), true));
        assert!(!h.probe(t + S(26), true), "one probe at a time");
        assert!(h.is_up(t + S(39), Some(S(30))));
        assert!(!h.is_up(t + S(40), Some(S(30))), "the dead peer is down 40 s after its last word");
        h.heard(t + S(27));
        assert!(h.is_up(t + S(40), Some(S(30))), "a live peer answers the probe");
        assert!(!h.probe(t + S(51), true) && h.probe(t + S(52), true), "the next probe after 25 s quiet");
    }
}
