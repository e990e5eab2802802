//! The frame to trace, from Open vSwitch's flow syntax (`in_port=vnet0,dl_src=…,dl_dst=…,
//! dl_vlan=10,dl_type=0x0800,nw_src=…,nw_dst=…`, as `ovs-appctl ofproto/trace` takes it) or from
//! a frame in hex. Pure: the string in, the ingress port and the frame bytes out.

use std::net::Ipv4Addr;

use packet::{ethernet_frame, ipv4_udp, FrameSpec, MacAddr, VlanTag, ETHERTYPE_IPV4};
use thiserror::Error;

/// Longest hex frame accepted (a jumbo frame).
const MAX_FRAME: usize = 9216;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FlowError {
    #[error("flow field {0:?} is not name=value")]
    NotAssignment(String),
    #[error("unknown flow field {0:?} (known: in_port, dl_src, dl_dst, dl_vlan, dl_vlan_pcp, dl_type, nw_src, nw_dst)")]
    UnknownField(String),
    #[error("bad value for {field}: {value:?}")]
    BadValue { field: &'static str, value: String },
    #[error("the flow needs in_port=PORT")]
    NoInPort,
    #[error("the packet is not hex: {0}")]
    BadHex(String),
    #[error("the packet is longer than {MAX_FRAME} bytes")]
    TooLong,
}

/// The fields of a flow; absent fields take OvS's defaults (all-zero MACs, untagged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// A port name, or an OpenFlow port number the daemon resolves.
    pub in_port: String,
    pub dl_src: MacAddr,
    pub dl_dst: MacAddr,
    pub dl_vlan: Option<u16>,
    pub dl_vlan_pcp: u8,
    pub dl_type: u16,
    pub nw_src: Option<Ipv4Addr>,
    pub nw_dst: Option<Ipv4Addr>,
}

fn bad(field: &'static str, value: &str) -> FlowError {
    FlowError::BadValue { field, value: value.escape_debug().to_string() }
}

fn number(field: &'static str, value: &str, max: u32) -> Result<u32, FlowError> {
    let n = match value.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => value.parse(),
    };
    n.ok().filter(|n| *n <= max).ok_or_else(|| bad(field, value))
}

impl Flow {
    /// Parses `in_port=…,dl_src=…` (commas or spaces between fields, as OvS accepts).
    pub fn parse(text: &str) -> Result<Flow, FlowError> {
        let mut flow = Flow::default();
        let mut dl_type = None;
        for item in text.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = item.split_once('=').ok_or_else(|| FlowError::NotAssignment(item.into()))?;
            match name {
                "in_port" if !value.is_empty() => flow.in_port = value.to_string(),
                "in_port" => return Err(FlowError::NoInPort),
                "dl_src" => flow.dl_src = value.parse().map_err(|_| bad("dl_src", value))?,
                "dl_dst" => flow.dl_dst = value.parse().map_err(|_| bad("dl_dst", value))?,
                "dl_vlan" => flow.dl_vlan = Some(number("dl_vlan", value, 4095)? as u16),
                "dl_vlan_pcp" => flow.dl_vlan_pcp = number("dl_vlan_pcp", value, 7)? as u8,
                "dl_type" => dl_type = Some(number("dl_type", value, 0xffff)? as u16),
                "nw_src" => flow.nw_src = Some(value.parse().map_err(|_| bad("nw_src", value))?),
                "nw_dst" => flow.nw_dst = Some(value.parse().map_err(|_| bad("nw_dst", value))?),
                _ => return Err(FlowError::UnknownField(name.escape_debug().to_string())),
            }
        }
        if flow.in_port.is_empty() {
            return Err(FlowError::NoInPort);
        }
        let has_ip = flow.nw_src.is_some() || flow.nw_dst.is_some();
        flow.dl_type = dl_type.unwrap_or(if has_ip { ETHERTYPE_IPV4 } else { 0 });
        Ok(flow)
    }

    /// A frame with these headers: IPv4/UDP when dl_type is IPv4, else the bare Ethernet header
    /// padded to the 60-byte minimum.
    pub fn to_frame(&self) -> Vec<u8> {
        let vlan = self.dl_vlan.map(|vid| VlanTag { pcp: self.dl_vlan_pcp, dei: false, vid });
        let spec = FrameSpec { dst: self.dl_dst, src: self.dl_src, vlan, ethertype: self.dl_type };
        let mut buf = vec![0u8; 128];
        let n = if self.dl_type == ETHERTYPE_IPV4 {
            let ip = |a: Option<Ipv4Addr>| a.unwrap_or(Ipv4Addr::UNSPECIFIED).octets();
            ipv4_udp(&mut buf, &spec, ip(self.nw_src), ip(self.nw_dst), (0, 0), &[0; 18])
        } else {
            ethernet_frame(&mut buf, &spec, &[0; 46])
        };
        // Both fit in 128 bytes by construction; an empty frame would be traced as a runt.
        buf.truncate(n.unwrap_or(0));
        buf
    }
}

/// A frame written in hex (spaces, colons and a leading 0x allowed).
pub fn parse_hex(text: &str) -> Result<Vec<u8>, FlowError> {
    let digits: String =
        text.trim().trim_start_matches("0x").chars().filter(|c| !matches!(c, ' ' | ':')).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(FlowError::BadHex("odd number of digits".into()));
    }
    if digits.len() / 2 > MAX_FRAME {
        return Err(FlowError::TooLong);
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            let pair = digits.get(i..i + 2).ok_or_else(|| FlowError::BadHex("not ASCII".into()))?;
            u8::from_str_radix(pair, 16).map_err(|_| FlowError::BadHex(format!("{pair:?} at offset {i}")))
        })
        .collect()
}

/// Lower-case hex of `bytes`, for the wire.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use packet::EthernetHeader;

    #[test]
    fn ovs_flow_syntax_builds_the_frame_it_names() {
        let f = Flow::parse("in_port=vnet0,dl_src=52:54:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff,dl_vlan=10,nw_src=198.18.0.1,nw_dst=198.18.0.2").unwrap();
        assert_eq!(f.in_port, "vnet0");
        assert_eq!(f.dl_type, ETHERTYPE_IPV4, "nw_* fields imply IPv4");
        let frame = f.to_frame();
        let eth = EthernetHeader::parse(&frame).unwrap();
        assert_eq!(
            (eth.src, eth.dst, eth.vlan.map(|t| t.vid), eth.ethertype),
            (f.dl_src, MacAddr::BROADCAST, Some(10), 0x0800)
        );
        assert_eq!(&frame[eth.payload_offset + 12..eth.payload_offset + 20], &[198, 18, 0, 1, 198, 18, 0, 2]);
        let bare = Flow::parse("in_port=1 dl_type=0x88b5").unwrap().to_frame();
        assert_eq!(bare.len(), 60);
    }

    #[test]
    fn bad_flows_are_refused_with_the_field_named() {
        assert_eq!(Flow::parse("dl_src=52:54:00:00:00:01"), Err(FlowError::NoInPort));
        assert!(matches!(
            Flow::parse("in_port=a,dl_vlan=4096"),
            Err(FlowError::BadValue { field: "dl_vlan", .. })
        ));
        assert!(matches!(Flow::parse("in_port=a,tp_dst=80"), Err(FlowError::UnknownField(_))));
        assert!(matches!(Flow::parse("in_port=a,dl_src"), Err(FlowError::NotAssignment(_))));
        assert!(matches!(Flow::parse("in_port=a,nw_src=1.2.3"), Err(FlowError::BadValue { .. })));
    }

    #[test]
    fn hex_frames_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_hex("0x0a0B ff:00").unwrap(), vec![0x0a, 0x0b, 0xff, 0]);
        assert_eq!(to_hex(&[0x0a, 0xff]), "0aff");
        assert!(parse_hex("abc").is_err());
        assert!(parse_hex("zz").is_err());
        assert!(parse_hex("é1").is_err());
        assert_eq!(parse_hex(&"00".repeat(MAX_FRAME + 1)), Err(FlowError::TooLong));
    }
}
