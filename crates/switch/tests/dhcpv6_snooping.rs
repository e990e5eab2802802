//! DHCPv6 snooping: a REPLY from the trusted trunk binds each IA_NA address to the VM whose
//! MAC the REPLY is sent to, until its valid lifetime ends; the bound address then admits the
//! VM's IPv6 source and no other port may claim it. Slots: 0 A and 1 C (VMs, VLAN 10, no
//! configured addresses), 2 T (trunk 10, 20: unchecked, trusted).

use std::net::{IpAddr, Ipv6Addr};

use packet::{dhcpv6, icmpv6, ipv6::eui64_link_local, MacAddr};
use switch::{
    BindingSource, Bridge, BridgeSettings, DropReason, PortSecurity, PortSpec, PortVlan, Verdict, VlanMode,
};
use testbed::frames::*;

const A: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
const C: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0, 3]);
const SERVER: MacAddr = MacAddr([0x02, 0, 0, 0, 0x05, 0x47]);
const SA: usize = 0;
const SC: usize = 1;
const ST: usize = 2;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn vms() -> Bridge {
    let trunk = PortVlan::new(Some(VlanMode::Trunk), None, &[10, 20]).unwrap();
    let vm = |name: &str, mac| PortSpec {
        security: PortSecurity::vm(mac),
        ..PortSpec::new(name, PortVlan::access(10))
    };
    Bridge::new(BridgeSettings::default(), vec![vm("a", A), vm("c", C), PortSpec::new("t", trunk)])
}

fn process(br: &mut Bridge, slot: usize, f: &[u8], now: u64) -> Result<(), DropReason> {
    match br.process(slot, f, now, &mut Vec::new()) {
        Verdict::Drop(r) | Verdict::Mirrored { reason: r, .. } => Err(r),
        Verdict::Forward { .. } => Ok(()),
    }
}

/// A server message (547 → 546) from the trunk on `vid` to `client`'s link-local.
fn to_client(client: MacAddr, vid: u16, msg_type: u8, addrs: &[(Ipv6Addr, u32)]) -> Vec<u8> {
    let spec = eth(client, SERVER, Some(vid));
    udp6_data(spec, ip("fe80::547"), eui64_link_local(client), (547, 546), &dhcpv6(msg_type, addrs))
}

/// A datagram from `mac`'s port with IPv6 source `src`.
fn from(mac: MacAddr, src: Ipv6Addr) -> Vec<u8> {
    udp6(eth(SERVER, mac, None), src, ip("2001:db8:5::1"), (40000, 9))
}

fn v6_leases(br: &Bridge, now: u64) -> Vec<(MacAddr, IpAddr, u64)> {
    br.leases(now).into_iter().filter(|l| l.ip.is_ipv6()).map(|l| (l.mac, l.ip, l.remaining_ms)).collect()
}

#[test]
fn a_reply_from_the_trunk_binds_until_the_valid_lifetime_ends() {
    let mut br = vms();
    let (leased, other) = (ip("2001:db8:5::100"), ip("2001:db8:5::77"));
    assert_eq!(process(&mut br, SA, &from(A, other), 0), Ok(()), "unbound: any unowned source");
    process(&mut br, ST, &to_client(A, 10, dhcpv6::REPLY, &[(leased, 60)]), 1_000).unwrap();
    assert_eq!(v6_leases(&br, 1_000), vec![(A, IpAddr::V6(leased), 60_000)]);
    assert_eq!(process(&mut br, SA, &from(A, leased), 2_000), Ok(()));
    assert_eq!(process(&mut br, SA, &from(A, eui64_link_local(A)), 2_000), Ok(()));
    assert_eq!(process(&mut br, SA, &from(A, other), 2_000), Err(DropReason::SpoofedIp), "bound now");
    assert_eq!(process(&mut br, SA, &from(A, ip("fe80::99")), 2_000), Err(DropReason::SpoofedIp));
    // A's lease protects A from its neighbour: as a source and as an NA target.
    assert_eq!(process(&mut br, SC, &from(C, leased), 2_000), Err(DropReason::SpoofedIp));
    let na = icmp6(
        eth(SERVER, C, None),
        eui64_link_local(C),
        ip("ff02::1"),
        icmpv6::NEIGHBOR_ADVERT,
        Some(leased),
    );
    assert_eq!(process(&mut br, SC, &na, 2_000), Err(DropReason::SpoofedNd));
    assert_eq!(process(&mut br, SC, &from(C, other), 2_000), Ok(()), "C is unbound");
    // `rvsctl security show`: a dhcp binding with its time left.
    let report = br.security_report(2_000);
    let a = report.iter().find(|p| p.port == "a").unwrap();
    let b = a.bindings.iter().find(|b| b.address == "2001:db8:5::100/128").expect("listed");
    assert_eq!((b.source, b.expires_in), (BindingSource::Dhcp, Some(59)));
    // Past the valid lifetime: unbound again, for both checks and the report.
    assert_eq!(process(&mut br, SA, &from(A, other), 61_000), Ok(()));
    assert_eq!(process(&mut br, SC, &from(C, leased), 61_000), Ok(()));
    br.expire(61_000);
    assert!(v6_leases(&br, 61_000).is_empty());
}

#[test]
fn server_messages_from_a_vm_port_are_rogue_and_bind_nothing() {
    let mut br = vms();
    let leased = ip("2001:db8:5::100");
    for kind in [dhcpv6::ADVERTISE, dhcpv6::REPLY, 10] {
        let f = udp6_data(
            eth(A, C, None),
            eui64_link_local(C),
            eui64_link_local(A),
            (547, 546),
            &dhcpv6(kind, &[(leased, 600)]),
        );
        assert_eq!(process(&mut br, SC, &f, 1), Err(DropReason::RogueDhcp), "type {kind}");
    }
    assert!(v6_leases(&br, 1).is_empty());
    // From the trunk but not to a secured port's MAC, on the wrong VLAN, or not a REPLY.
    for f in [
        to_client(MacAddr([0x52, 0x54, 0, 0, 0, 9]), 10, dhcpv6::REPLY, &[(leased, 600)]),
        to_client(A, 20, dhcpv6::REPLY, &[(leased, 600)]),
        to_client(A, 10, dhcpv6::ADVERTISE, &[(leased, 600)]),
        to_client(A, 10, dhcpv6::REPLY, &[(ip("fe80::5"), 600), (ip("ff02::1:2"), 600)]),
    ] {
        process(&mut br, ST, &f, 1).unwrap_or_default();
    }
    assert!(v6_leases(&br, 1).is_empty(), "{:?}", br.leases(1));
}

#[test]
fn a_zero_lifetime_or_the_clients_release_unbinds() {
    let mut br = vms();
    let (one, two) = (ip("2001:db8:5::100"), ip("2001:db8:5::101"));
    process(&mut br, ST, &to_client(A, 10, dhcpv6::REPLY, &[(one, 600), (two, u32::MAX)]), 0).unwrap();
    assert_eq!(v6_leases(&br, 0), vec![(A, IpAddr::V6(one), 600_000), (A, IpAddr::V6(two), u64::MAX)]);
    process(&mut br, ST, &to_client(A, 10, dhcpv6::REPLY, &[(one, 0)]), 1).unwrap();
    assert_eq!(v6_leases(&br, 1), vec![(A, IpAddr::V6(two), u64::MAX)]);
    // C cannot give back A's address; A can.
    let release = |mac, addr| {
        let m = dhcpv6(dhcpv6::RELEASE, &[(addr, 0)]);
        udp6_data(eth(SERVER, mac, None), eui64_link_local(mac), ip("ff02::1:2"), (546, 547), &m)
    };
    assert_eq!(process(&mut br, SC, &release(C, two), 2), Ok(()));
    assert_eq!(v6_leases(&br, 2).len(), 1);
    assert_eq!(process(&mut br, SA, &release(A, two), 3), Ok(()));
    assert!(v6_leases(&br, 3).is_empty());
    // A later REPLY giving A's old address to C moves it.
    process(&mut br, ST, &to_client(A, 10, dhcpv6::REPLY, &[(one, 600)]), 4).unwrap();
    process(&mut br, ST, &to_client(C, 10, dhcpv6::REPLY, &[(one, 600)]), 5).unwrap();
    assert_eq!(v6_leases(&br, 5), vec![(C, IpAddr::V6(one), 600_000)]);
    assert_eq!(process(&mut br, SA, &from(A, one), 6), Err(DropReason::SpoofedIp));
    assert_eq!(process(&mut br, SC, &from(C, one), 6), Ok(()));
}
