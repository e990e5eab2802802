//! An IP prefix (`198.18.0.0/24`, `fd00::/64`): what wg-quick's `Address` and `AllowedIPs`
//! and a zone's `subnet` are made of.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address and a prefix length that fits its family. The address may have host bits set
/// (wg-quick's `Address = 10.0.0.2/24` names the interface address *and* its network).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("{0:?} is not an IP address")]
    Address(String),
    #[error("prefix length {len} is more than {max} for this address family")]
    Length { len: String, max: u8 },
}

impl Prefix {
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        (len <= max_len(addr)).then_some(Prefix { addr, len })
    }

    /// The address as written (host bits kept).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for `/0` (the whole family: a full tunnel).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `ip` lies in this prefix (never across families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => same_bits(&a.octets(), &b.octets(), self.len),
            (IpAddr::V6(a), IpAddr::V6(b)) => same_bits(&a.octets(), &b.octets(), self.len),
            _ => false,
        }
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// The first `len` bits of `a` and `b` are equal.
fn same_bits(a: &[u8], b: &[u8], len: u8) -> bool {
    let full = usize::from(len / 8);
    let rest = len % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl FromStr for Prefix {
    type Err = PrefixError;

    /// `ADDR/LEN`, or a bare address (a host prefix: /32 or /128).
    fn from_str(s: &str) -> Result<Prefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| PrefixError::Address(a.to_string()))?;
        let max = max_len(addr);
        let len = match l {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or(PrefixError::Length { len: l.into(), max })?,
        };
        Ok(Prefix { addr, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn contains_by_bits() {
        assert!(p("198.18.0.0/24").contains("198.18.0.77".parse().unwrap()));
        assert!(!p("198.18.0.0/24").contains("198.18.1.1".parse().unwrap()));
        assert!(p("198.18.0.0/15").contains("198.19.255.1".parse().unwrap()));
        assert!(!p("198.18.0.0/15").contains("198.20.0.1".parse().unwrap()));
        assert!(p("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        assert!(!p("0.0.0.0/0").contains("::1".parse().unwrap()), "never across families");
        assert!(p("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(p("198.18.0.5").contains("198.18.0.5".parse().unwrap()));
        assert!(!p("198.18.0.5").contains("198.18.0.6".parse().unwrap()));
    }

    #[test]
    fn bad_prefixes_say_why() {
        assert_eq!("10.0.0/8".parse::<Prefix>(), Err(PrefixError::Address("10.0.0".into())));
        let e = "10.0.0.0/33".parse::<Prefix>().unwrap_err();
        assert_eq!(e.to_string(), "prefix length 33 is more than 32 for this address family");
        assert!("::/129".parse::<Prefix>().is_err());
        assert!("10.0.0.0/x".parse::<Prefix>().is_err());
        assert_eq!(p("10.0.0.2/24").to_string(), "10.0.0.2/24");
    }
}
