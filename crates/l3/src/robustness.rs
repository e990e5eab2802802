//! Whatever bytes arrive, no service panics: each gives a verdict (counted) instead.

use proptest::prelude::*;

use crate::testpkt::addr;

/// Random bytes behind a plausible IPv4 or IPv6 first byte, so the parsers get past the
/// version check and into the layers behind it.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(0x45u8), Just(0x46), Just(0x60), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..120),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

proptest! {
    #[test]
    fn nothing_panics(mut p in packet(), proto in prop_oneof![Just(1u8), Just(6), Just(17), any::<u8>()]) {
        if p.len() > 9 && p[0] >> 4 == 4 {
            p[9] = proto;
        }
        if p.len() > 40 && p[0] >> 4 == 6 {
            p[6] = 58; // ICMPv6, so ND parsing gets its turn
        }
        let mut nat = crate::nat::Nat::new(crate::nat::NatConfig::new(addr("198.19.0.2")));
        let _ = nat.outbound(&mut p.clone(), 0);
        let _ = nat.inbound(&mut p.clone(), 0);
        let _ = crate::mss::clamp(&mut p.clone(), 1280);
        let _ = crate::frag::fragment_v4(&p, 68);
        let mut e = crate::icmp_error::IcmpErrors::new(addr("198.18.0.1"), std::net::Ipv6Addr::LOCALHOST, 0);
        let _ = e.check(&p, 60, 0);
        let _ = crate::icmp_error::frag_needed_v4(&p, 60, addr("198.18.0.1"));
        let _ = crate::icmp_error::packet_too_big_v6(&p, 60, std::net::Ipv6Addr::LOCALHOST);
        let _ = crate::nd::parse(&p);
    }
}
