//! Interface columns → a port's security settings (issue 9's contract):
//! `external_ids:attached-mac` (libvirt writes it on every VM start) makes a port a VM port;
//! `other_config:port-security` = on (default for VM ports) | mac | off;
//! `other_config:allowed-ips` = comma-separated addresses or prefixes, IPv4 and IPv6;
//! `other_config:trusted` = true | false (default: true for ports without port security,
//! i.e. uplinks and the host, false for VM ports); `other_config:mac-limit` = N (default 1 on
//! secured ports, none otherwise). The zones file's `ips` of a VM reach its port through the
//! bridge's `external_ids:rvswitch-vm-ips` ([`with_zone_ips`]): libvirt creates the port row
//! only when the VM starts, so there is no row for zones to write to beforehand.

use packet::MacAddr;
use switch::{parse_allowed_ips, PortSecurity, SecurityConfigError, SecurityMode};

fn get<'a>(map: &'a [(String, String)], key: &str) -> Option<&'a str> {
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The settings of one Interface row; an error (for the Interface `error` column) rather than a
/// guess when a value is malformed, so a typo never leaves a VM port unchecked.
pub fn security_of(
    other_config: &[(String, String)],
    external_ids: &[(String, String)],
) -> Result<PortSecurity, SecurityConfigError> {
    let mac = get(external_ids, "attached-mac")
        .map(|m| {
            m.parse::<MacAddr>()
                .ok()
                .filter(|m| !m.is_multicast() && *m != MacAddr::default())
                .ok_or_else(|| SecurityConfigError::BadMac(m.escape_debug().to_string()))
        })
        .transpose()?;
    let mode = match get(other_config, "port-security") {
        Some(m) => m.parse()?,
        None if mac.is_some() => SecurityMode::On,
        None => SecurityMode::Off,
    };
    let trusted = match get(other_config, "trusted") {
        None => mode == SecurityMode::Off,
        Some("true") => true,
        Some("false") => false,
        Some(other) => return Err(SecurityConfigError::BadTrusted(other.escape_debug().to_string())),
    };
    let mac_limit = match get(other_config, "mac-limit") {
        None => (mode != SecurityMode::Off).then_some(1),
        Some(n) => Some(
            n.parse::<usize>()
                .ok()
                .filter(|n| (1..=1_000_000).contains(n))
                .ok_or_else(|| SecurityConfigError::BadMacLimit(n.escape_debug().to_string()))?,
        ),
    };
    let ips = get(other_config, "allowed-ips").map(parse_allowed_ips).transpose()?.unwrap_or_default();
    let macs = match (mode, mac) {
        (SecurityMode::Off, m) => m.into_iter().collect(),
        (_, Some(m)) => vec![m],
        (_, None) => return Err(SecurityConfigError::NoMac(mode)),
    };
    Ok(PortSecurity { mode, macs, ips, from_zones: Vec::new(), trusted, mac_limit })
}

/// The bridge `external_ids` key zones writes its VMs' `ips` to (zones::live::VM_IPS_KEY).
const VM_IPS_KEY: &str = "rvswitch-vm-ips";

/// Adds the addresses the zones file lists for this port's MAC (in the bridge's
/// `external_ids:rvswitch-vm-ips`) to its allowed IPs; a port without checks gets none.
pub fn with_zone_ips(
    mut sec: PortSecurity,
    bridge_external_ids: &[(String, String)],
) -> Result<PortSecurity, SecurityConfigError> {
    let Some(encoded) = get(bridge_external_ids, VM_IPS_KEY) else { return Ok(sec) };
    if !sec.checks_l2() {
        return Ok(sec);
    }
    // `mac=ip/len,ip/len;mac=…` as zones::desired::encode_vm_ips writes it (the test below
    // decodes zones' own encoding, so the two cannot drift apart).
    let entries = encoded.split(';').filter_map(|e| e.split_once('='));
    let listed = entries.filter(|(m, _)| m.parse::<MacAddr>().is_ok_and(|m| sec.macs.contains(&m)));
    let mut ips = Vec::new();
    for (_, l) in listed {
        ips.extend(parse_allowed_ips(l)?);
    }
    ips.retain(|ip| !sec.ips.contains(ip));
    sec.from_zones.clone_from(&ips);
    sec.ips.extend(ips);
    Ok(sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const LIBVIRT: [(&str, &str); 2] = [("attached-mac", "52:54:00:00:00:01"), ("iface-id", "x")];

    #[test]
    fn a_libvirt_port_is_secured_by_default() {
        let s = security_of(&[], &kv(&LIBVIRT)).unwrap();
        assert_eq!(s, PortSecurity::vm("52:54:00:00:00:01".parse().unwrap()));
        let plain = security_of(&[], &[]).unwrap();
        assert_eq!(plain, PortSecurity::off(), "no attached-mac: an uplink, unchecked and trusted");
    }

    #[test]
    fn zone_ips_reach_the_port_with_that_attached_mac() {
        let vm = |n: u8| zones::Mac([0x52, 0x54, 0, 0, 0, n]);
        let net = |s: &str| zones::model::IpNet::parse(s).unwrap();
        let enc = zones::desired::encode_vm_ips(&[
            (vm(1), vec![net("198.18.0.5"), net("2001:db8::/64")]),
            (vm(2), vec![net("198.18.0.6")]),
        ]);
        assert_eq!(zones::live::VM_IPS_KEY, VM_IPS_KEY);
        let bridge = kv(&[(VM_IPS_KEY, &enc)]);
        let own = kv(&[("allowed-ips", "198.18.0.50")]);
        let s = with_zone_ips(security_of(&own, &kv(&LIBVIRT)).unwrap(), &bridge).unwrap();
        let ips: Vec<String> = s.ips.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            ips,
            ["198.18.0.50/32", "198.18.0.5/32", "2001:db8::/64"],
            "other_config's and the zone's"
        );
        assert_eq!(s.from_zones, &s.ips[1..], "the zone's are marked as such");
        let uplink = with_zone_ips(security_of(&[], &[]).unwrap(), &bridge).unwrap();
        assert!(uplink.ips.is_empty(), "a port without checks gets no bindings");
        let bad = kv(&[(VM_IPS_KEY, "52:54:00:00:00:01=198.18.0.300")]);
        assert!(
            with_zone_ips(security_of(&[], &kv(&LIBVIRT)).unwrap(), &bad).is_err(),
            "a bad mark is an error"
        );
        let stranger = kv(&[("attached-mac", "52:54:00:00:00:09")]);
        assert!(with_zone_ips(security_of(&[], &stranger).unwrap(), &bridge).unwrap().ips.is_empty());
    }

    #[test]
    fn keys_override_defaults() {
        let oc = kv(&[
            ("port-security", "mac"),
            ("allowed-ips", "198.18.0.5,2001:db8::/64"),
            ("trusted", "true"),
            ("mac-limit", "4"),
        ]);
        let s = security_of(&oc, &kv(&LIBVIRT)).unwrap();
        assert_eq!((s.mode, s.ips.len(), s.trusted, s.mac_limit), (SecurityMode::Mac, 2, true, Some(4)));
        let off = security_of(&kv(&[("port-security", "off")]), &kv(&LIBVIRT)).unwrap();
        assert!(!off.checks_l2() && off.trusted && off.mac_limit.is_none());
    }

    #[test]
    fn malformed_values_are_errors() {
        let vm = kv(&LIBVIRT);
        for (k, v) in
            [("port-security", "yes"), ("allowed-ips", "198.18.0.300"), ("trusted", "1"), ("mac-limit", "0")]
        {
            let e = security_of(&kv(&[(k, v)]), &vm).unwrap_err();
            assert!(e.to_string().contains(v), "{k}={v}: {e}");
        }
        let e = security_of(&[], &kv(&[("attached-mac", "01:00:5e:00:00:01")])).unwrap_err();
        assert!(matches!(e, SecurityConfigError::BadMac(_)), "{e}");
        let e = security_of(&kv(&[("port-security", "on")]), &[]).unwrap_err();
        assert_eq!(e.to_string(), "port-security on needs external_ids:attached-mac (the VM's MAC)");
    }
}
