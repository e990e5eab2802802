//! The `l3` target's gateway operations: `Gateway::zone_frame` on an arbitrary Ethernet frame
//! from a VM, then `Gateway::tunnel_packet` on the answer a server would send back; or
//! `tunnel_packet` alone on an arbitrary IP packet from the tunnel.
//!
//! Oracle: an ARP reply fits its buffer and goes back to the asker; a packet routed into the
//! tunnel is the frame's own IP packet (no padding), with correct checksums kept correct; and
//! the reply to it reaches the VM that sent it (its MAC was learned), unless its TTL ran out
//! or the VM's MAC could not be learned (multicast).

use std::net::Ipv4Addr;

use gateway::{DropReason, FromTunnel, FromZone, Gateway, GatewaySpec, GatewayV6, Now, Prefix};
use packet::{EthernetHeader, MacAddr};

use crate::csum_check::{self, kept};

fn gateway() -> Gateway {
    let p = |s: &str| s.parse::<Prefix>().expect("fuzz prefixes parse");
    Gateway::new(GatewaySpec {
        mac: MacAddr([0x02, 0, 0, 0, 0, 1]),
        ip: Ipv4Addr::new(198, 18, 0, 1),
        subnet: p("198.18.0.0/24"),
        // Disjoint from the subnet, so a reply from there is always a tunnel source.
        allowed: vec![p("198.19.0.0/16"), p("10.0.0.0/8"), p("fd00::/8")],
        // The largest MTU, so that neither MSS clamping nor ICMP errors rewrite what the
        // oracle below compares byte for byte (those have their own operations in `l3`).
        mtu: u16::MAX,
        // Routed IPv6 too, so ND, RAs and IPv6 routing are fuzzed with the rest.
        v6: Some(GatewayV6 { ip: "2001:db8::1".parse().expect("fuzz address"), subnet: p("2001:db8::/64") }),
    })
}

/// `k` bit 0: the tunnel is up; bit 1: `data` is a packet from the tunnel, not a zone frame.
pub fn run(data: &[u8], k: u8) {
    let mut gw = gateway();
    let mut out = vec![0u8; data.len().max(1294) + 64];
    let now = Now { ms: 1_000, unix: 1_800_000_000 };
    if k & 2 != 0 {
        let mut ip = data.to_vec();
        if let FromTunnel::Frame(n) | FromTunnel::Resolve(n) = gw.tunnel_packet(&mut ip, now, &mut out) {
            assert!(n <= out.len() && EthernetHeader::parse(&out[..n]).is_ok(), "bad frame of {n} bytes");
        }
        return;
    }
    let mut frame = data.to_vec();
    let up = k & 1 != 0;
    let reply = match gw.zone_frame(&mut frame, up, now, &mut out) {
        FromZone::Reply(n) => return arp_reply(data, &out[..n]),
        FromZone::Drop(_) | FromZone::Fragments(_) => return,
        FromZone::Tunnel(ip) => tunnelled(data, ip),
    };
    assert!(up, "routed into a tunnel that is down");
    let Some(mut reply) = reply else { return };
    let vm = EthernetHeader::parse(data).expect("routed frames parse").src;
    match gw.tunnel_packet(&mut reply, now, &mut out) {
        FromTunnel::Frame(n) => {
            let eth = EthernetHeader::parse(&out[..n]).expect("framed replies parse");
            assert_eq!(eth.dst, vm, "the reply went to another MAC");
        }
        FromTunnel::Resolve(_) => assert!(vm.is_multicast(), "the sender's MAC was not learned"),
        FromTunnel::Drop(r) => assert_eq!(r, DropReason::TtlExpired, "the reply was dropped"),
    }
}

fn arp_reply(ask: &[u8], reply: &[u8]) {
    let (a, r) = (EthernetHeader::parse(ask), EthernetHeader::parse(reply));
    let (Ok(a), Ok(r)) = (a, r) else { panic!("ARP reply {reply:02x?} to {ask:02x?} does not parse") };
    assert_eq!(r.dst, a.src, "ARP reply to someone else");
}

/// Checks the tunnelled packet against the frame it came from; returns the server's answer
/// (IPv4 only: the tunnel side does not take IPv6 yet).
fn tunnelled(frame: &[u8], ip: &[u8]) -> Option<Vec<u8>> {
    let off = EthernetHeader::parse(frame).expect("routed frames parse").payload_offset;
    // The gateway clamps a SYN's MSS to the tunnel MTU: expect exactly that change too.
    let mut clamped = frame[off..off + ip.len()].to_vec();
    l3::mss::clamp(&mut clamped, u16::MAX);
    let original = &clamped[..];
    // Only the TTL (IPv4: and the header checksum) or the hop limit may differ.
    let hop: &[usize] = if ip[0] >> 4 == 4 { &[8, 10, 11] } else { &[7] };
    let changed = (0..ip.len()).find(|&i| ip[i] != original[i] && !hop.contains(&i));
    assert_eq!(changed, None, "the tunnelled packet is not the VM's: {ip:02x?} from {original:02x?}");
    kept("gateway hop", csum_check::valid(original), ip);
    crate::l3::reply_shaped(ip)
}
