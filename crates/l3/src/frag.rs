//! IPv4 fragmentation (RFC 791 §3.2, RFC 815's arithmetic) for a datagram without DF that does
//! not fit the tunnel: the gateway splits it instead of dropping it, as a router does. (With
//! DF set it sends fragmentation-needed instead: [`crate::icmp_error`].)

use packet::{checksum, ipv4};

use crate::csum::{get16, put16};

/// Why a datagram was not split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    #[error("not an IPv4 datagram")]
    Malformed,
    #[error("DF is set")]
    DontFragment,
    /// Below RFC 791's 68, or too small for the header and 8 bytes of data.
    #[error("MTU too small to fragment into")]
    MtuTooSmall,
}

/// The fragments of `pkt`, each at most `mtu` bytes; a datagram that fits comes back whole.
/// A fragment may be fragmented again: offsets add up and its MF carries to the last piece.
pub fn fragment_v4(pkt: &[u8], mtu: u16) -> Result<Vec<Vec<u8>>, FragError> {
    let ip = ipv4::Frame::new_checked(pkt).map_err(|_| FragError::Malformed)?;
    let total = usize::from(ip.total_len());
    if total > pkt.len() {
        return Err(FragError::Malformed);
    }
    if total <= usize::from(mtu) {
        return Ok(vec![pkt[..total].to_vec()]);
    }
    if ip.dont_fragment() {
        return Err(FragError::DontFragment);
    }
    let first = &pkt[..ip.header_len()];
    let later = later_header(first);
    let step = |hl: usize| (usize::from(mtu).saturating_sub(hl) / 8) * 8;
    if mtu < 68 || step(first.len()) == 0 || step(later.len()) == 0 {
        return Err(FragError::MtuTooSmall);
    }
    let word = get16(pkt, ipv4::field::FLAGS_FRAG);
    let (base, more) = (usize::from(word & 0x1fff) * 8, word & ipv4::FLAG_MF != 0);
    let data = &pkt[first.len()..total];
    if base + data.len() > usize::from(u16::MAX) {
        return Err(FragError::Malformed);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let hdr = if at == 0 { first } else { &later };
        let n = step(hdr.len()).min(data.len() - at);
        let last = at + n == data.len();
        out.push(piece(hdr, &data[at..at + n], base + at, !last || more));
        at += n;
    }
    Ok(out)
}

/// One fragment: `hdr` with length, offset, MF and checksum set, then `data`.
fn piece(hdr: &[u8], data: &[u8], offset: usize, more: bool) -> Vec<u8> {
    let mut p = [hdr, data].concat();
    let len = p.len() as u16;
    put16(&mut p, ipv4::field::TOTAL_LEN, len);
    let mf = if more { ipv4::FLAG_MF } else { 0 };
    put16(&mut p, ipv4::field::FLAGS_FRAG, mf | (offset / 8) as u16 & 0x1fff);
    put16(&mut p, ipv4::field::CHECKSUM, 0);
    let c = checksum::internet(&p[..hdr.len()]);
    put16(&mut p, ipv4::field::CHECKSUM, c);
    p
}

/// The header for fragments after the first: only the options whose "copied" flag is set
/// (RFC 791 §3.1), padded to a 4-byte boundary.
fn later_header(first: &[u8]) -> Vec<u8> {
    let (fixed, mut opts) = first.split_at(ipv4::MIN_HEADER_LEN);
    let mut kept = Vec::new();
    while let Some(&kind) = opts.first() {
        let len = match kind {
            0 => break,
            1 => 1,
            _ => usize::from(*opts.get(1).unwrap_or(&0)).max(2).min(opts.len()),
        };
        if kind & 0x80 != 0 {
            kept.extend_from_slice(&opts[..len]);
        }
        opts = &opts[len..];
    }
    kept.resize(kept.len().div_ceil(4) * 4, 0);
    let mut h = [fixed, &kept].concat();
    h[ipv4::field::VER_IHL] = 0x40 | (h.len() / 4) as u8;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testpkt::{self, addr, checksums_ok};

    fn no_df(mut p: Vec<u8>) -> Vec<u8> {
        p[6] = 0;
        put16(&mut p, ipv4::field::CHECKSUM, 0);
        let c = checksum::internet(&p[..20]);
        put16(&mut p, ipv4::field::CHECKSUM, c);
        p
    }

    #[test]
    fn splits_on_8_byte_boundaries_and_reassembles() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let p = no_df(testpkt::udp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), &data));
        let frags = fragment_v4(&p, 1420).unwrap();
        let sizes: Vec<usize> = frags.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1420, 1420, 3028 - 2 * 1400], "1400 data bytes each, a multiple of 8");
        let mut whole = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            let ip = ipv4::Frame::new_checked(&f[..]).unwrap();
            assert_eq!(checksum::internet(&f[..20]), 0);
            assert_eq!(usize::from(get16(f, ipv4::field::FLAGS_FRAG) & 0x1fff) * 8, whole.len());
            assert!(ip.is_fragment());
            assert_eq!(get16(f, ipv4::field::FLAGS_FRAG) & ipv4::FLAG_MF != 0, i < 2);
            whole.extend_from_slice(ip.payload());
        }
        let mut re = p[..20].to_vec();
        re.extend_from_slice(&whole);
        assert_eq!(re[20..], p[20..], "the pieces put together are the datagram");
        assert!(checksums_ok(&p));
    }

    #[test]
    fn refusals_and_the_fitting_case() {
        let p = testpkt::udp((addr("198.18.0.10"), 1), (addr("198.19.9.9"), 2), &[0; 100]);
        assert_eq!(fragment_v4(&p, 1420).unwrap(), vec![p.clone()], "fits: whole");
        assert_eq!(fragment_v4(&p, 60), Err(FragError::DontFragment));
        assert_eq!(fragment_v4(&no_df(p.clone()), 60), Err(FragError::MtuTooSmall));
        assert_eq!(fragment_v4(&p[..10], 60), Err(FragError::Malformed));
        assert_eq!(
            fragment_v4(&no_df(p.clone())[..50], 68),
            Err(FragError::Malformed),
            "total length past the end"
        );
    }

    #[test]
    fn later_fragments_keep_only_copied_options() {
        // A header with a copied option (0x94 router alert, 4 bytes) and a non-copied one
        // (0x07 record route, 7 bytes, padded with EOL).
        let opts = [0x94, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0, 0];
        let h =
            [&[0x48u8, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 198, 18, 0, 10, 198, 19, 9, 9][..], &opts].concat();
        let later = later_header(&h);
        assert_eq!(later.len(), 24);
        assert_eq!(later[0], 0x46);
        assert_eq!(&later[20..], &[0x94, 4, 0, 0]);
        let mut p = [h.clone(), vec![0u8; 200]].concat();
        let len = p.len() as u16;
        put16(&mut p, ipv4::field::TOTAL_LEN, len);
        let frags = fragment_v4(&p, 100).unwrap();
        assert_eq!(frags[0][0], 0x48, "the first keeps every option");
        assert!(frags[1..].iter().all(|f| f[0] == 0x46));
        let data: usize = frags.iter().map(|f| f.len() - usize::from(f[0] & 0xf) * 4).sum();
        assert_eq!(data, 200);
    }
}
