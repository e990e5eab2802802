//! One incoming message: parse, then DISCOVER/REQUEST/RELEASE/DECLINE/INFORM as RFC 2131 §4.3
//! says for a server that owns its link.

use std::net::Ipv4Addr;

use packet::{dhcp, ipv4, udp};

use super::pool::{Lease, LeaseState};
use super::reply::{build, Spec};
use super::{
    BindingEvent, DhcpDrop, DhcpReply, DhcpServer, Outcome, UnixSecs, DECLINE_HOLD_SECS, OFFER_HOLD_SECS,
};
use crate::dhcp::Binding;

type Msg<'a> = dhcp::Frame<&'a [u8]>;

impl DhcpServer {
    /// Handles the IPv4 packet `pkt` (no link header) a VM sent to UDP port 67. `Err` is a
    /// counted drop; `Ok` may still carry no reply (RELEASE, DECLINE).
    pub fn handle(&mut self, pkt: &[u8], now: UnixSecs) -> Result<Outcome, DhcpDrop> {
        let r = parse(pkt).and_then(|m| self.dispatch(&m, now));
        if let Err(d) = r {
            let c = &mut self.counters;
            *match d {
                DhcpDrop::Malformed => &mut c.malformed,
                DhcpDrop::Relayed => &mut c.relayed,
                DhcpDrop::Unexpected => &mut c.unexpected,
                DhcpDrop::NotOurs => &mut c.not_ours,
                DhcpDrop::PoolExhausted => &mut c.pool_exhausted,
            } += 1;
        }
        r
    }

    /// Builds a reply and counts it by type.
    fn reply(&mut self, m: &Msg<'_>, spec: &Spec) -> Option<DhcpReply> {
        let c = &mut self.counters;
        *match spec.msg_type {
            dhcp::OFFER => &mut c.offers,
            dhcp::ACK => &mut c.acks,
            _ => &mut c.naks,
        } += 1;
        Some(build(&self.cfg, m, spec))
    }

    fn dispatch(&mut self, m: &Msg<'_>, now: UnixSecs) -> Result<Outcome, DhcpDrop> {
        match m.message_type() {
            Some(dhcp::DISCOVER) => self.discover(m, now),
            Some(dhcp::REQUEST) => self.request(m, now),
            Some(dhcp::RELEASE) => self.release(m),
            Some(dhcp::DECLINE) => self.decline(m, now),
            Some(dhcp::INFORM) => Ok(self.inform(m)),
            _ => Err(DhcpDrop::Unexpected),
        }
    }

    fn discover(&mut self, m: &Msg<'_>, now: UnixSecs) -> Result<Outcome, DhcpDrop> {
        let mac = m.client_mac();
        let asked = m.option_addr(dhcp::OPT_REQUESTED_IP);
        let ip = self.pool.choose(&self.cfg, mac, asked, now).ok_or(DhcpDrop::PoolExhausted)?;
        // A client that holds this very address keeps its lease; otherwise the offer is held.
        if self.pool.lease(mac).is_none_or(|l| l.ip != ip || l.state == LeaseState::Offered) {
            let expires = now + OFFER_HOLD_SECS;
            self.pool.set(Lease { mac, ip, expires, state: LeaseState::Offered });
        }
        let spec = Spec { msg_type: dhcp::OFFER, yiaddr: ip, lease: true };
        Ok(Outcome { reply: self.reply(m, &spec), event: None })
    }

    /// SELECTING (server id + requested address), INIT-REBOOT (requested address only),
    /// RENEWING/REBINDING (ciaddr only). ACK what may be granted, NAK the rest.
    fn request(&mut self, m: &Msg<'_>, now: UnixSecs) -> Result<Outcome, DhcpDrop> {
        let mac = m.client_mac();
        if m.option_addr(dhcp::OPT_SERVER_ID).is_some_and(|s| s != self.cfg.server) {
            if self.pool.lease(mac).is_some_and(|l| l.state == LeaseState::Offered) {
                self.pool.remove(mac);
            }
            return Err(DhcpDrop::NotOurs);
        }
        let ip = m.option_addr(dhcp::OPT_REQUESTED_IP).unwrap_or(m.ciaddr());
        if ip.is_unspecified() {
            return Err(DhcpDrop::Malformed);
        }
        if !self.pool.grantable(&self.cfg, mac, ip, now) {
            let spec = Spec { msg_type: dhcp::NAK, yiaddr: Ipv4Addr::UNSPECIFIED, lease: false };
            return Ok(Outcome { reply: self.reply(m, &spec), event: None });
        }
        let expires = now + u64::from(self.cfg.lease_secs);
        self.pool.set(Lease { mac, ip, expires, state: LeaseState::Bound });
        let spec = Spec { msg_type: dhcp::ACK, yiaddr: ip, lease: true };
        let event = BindingEvent::Bound(Binding { mac, ip, expires });
        Ok(Outcome { reply: self.reply(m, &spec), event: Some(event) })
    }

    fn release(&mut self, m: &Msg<'_>) -> Result<Outcome, DhcpDrop> {
        let mac = m.client_mac();
        let ours = m.option_addr(dhcp::OPT_SERVER_ID).is_none_or(|s| s == self.cfg.server);
        self.end(mac, m.ciaddr(), ours)?;
        self.counters.releases += 1;
        Ok(Outcome { reply: None, event: Some(BindingEvent::Ended { mac, ip: m.ciaddr() }) })
    }

    /// The client found `requested address` in use by someone else: the lease ends and the
    /// address rests for [`DECLINE_HOLD_SECS`].
    fn decline(&mut self, m: &Msg<'_>, now: UnixSecs) -> Result<Outcome, DhcpDrop> {
        let mac = m.client_mac();
        let ip = m.option_addr(dhcp::OPT_REQUESTED_IP).ok_or(DhcpDrop::Malformed)?;
        self.end(mac, ip, true)?;
        self.pool.decline(ip, now + DECLINE_HOLD_SECS);
        self.counters.declines += 1;
        Ok(Outcome { reply: None, event: Some(BindingEvent::Ended { mac, ip }) })
    }

    /// Removes `mac`'s lease of `ip`; `NotOurs` when it holds no such lease from us.
    fn end(&mut self, mac: packet::MacAddr, ip: Ipv4Addr, ours: bool) -> Result<(), DhcpDrop> {
        if !ours || self.pool.lease(mac).is_none_or(|l| l.ip != ip) {
            return Err(DhcpDrop::NotOurs);
        }
        self.pool.remove(mac);
        Ok(())
    }

    /// The configuration without an address (RFC 2131 §3.4): no lease, no yiaddr.
    fn inform(&mut self, m: &Msg<'_>) -> Outcome {
        self.counters.informs += 1;
        let spec = Spec { msg_type: dhcp::ACK, yiaddr: Ipv4Addr::UNSPECIFIED, lease: false };
        Outcome { reply: self.reply(m, &spec), event: None }
    }
}

/// The DHCP message in an IPv4/UDP packet to port 67: a BOOTREQUEST from an Ethernet client
/// on this link.
fn parse(pkt: &[u8]) -> Result<Msg<'_>, DhcpDrop> {
    let ip = ipv4::Frame::new_checked(pkt).map_err(|_| DhcpDrop::Malformed)?;
    if ip.protocol() != ipv4::PROTO_UDP || ip.is_fragment() {
        return Err(DhcpDrop::Malformed);
    }
    let u = udp::Frame::new_checked(ip.into_payload()).map_err(|_| DhcpDrop::Malformed)?;
    if u.dst_port() != udp::PORT_DHCP_SERVER {
        return Err(DhcpDrop::Malformed);
    }
    let m = dhcp::Frame::new_checked(u.into_payload()).map_err(|_| DhcpDrop::Malformed)?;
    // A multicast chaddr is no client's own address: a lease for it could never be saved
    // (restore refuses it) and port security cannot pin traffic to it.
    if m.op() != dhcp::OP_REQUEST || !m.is_ethernet() || m.client_mac().is_multicast() {
        return Err(DhcpDrop::Malformed);
    }
    if !m.giaddr().is_unspecified() {
        return Err(DhcpDrop::Relayed);
    }
    Ok(m)
}
