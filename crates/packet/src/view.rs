//! What every view shares: big-endian reads over ranges that `new_checked` already validated,
//! and the struct + constructors each view repeats.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use crate::MacAddr;

#[inline]
pub(crate) fn be16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

#[inline]
pub(crate) fn be32(b: &[u8], r: Range<usize>) -> u32 {
    u32::from_be_bytes([b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3]])
}

#[inline]
pub(crate) fn ipv4(b: &[u8], r: Range<usize>) -> Ipv4Addr {
    Ipv4Addr::from(be32(b, r))
}

#[inline]
pub(crate) fn ipv6(b: &[u8], r: Range<usize>) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[r]);
    Ipv6Addr::from(a)
}

#[inline]
pub(crate) fn mac(b: &[u8], r: Range<usize>) -> MacAddr {
    MacAddr::from_slice(&b[r]).unwrap_or_default()
}

/// Declares `pub struct Frame<T>` with `new_unchecked`, `new_checked` (which calls the module's
/// `fn check(&[u8]) -> Result<(), PacketError>`), `as_bytes` and `into_inner`.
macro_rules! view {
    ($what:literal) => {
        #[doc = concat!("A read-only view of ", $what, " over any byte buffer.")]
        #[derive(Clone, Copy, Debug)]
        pub struct Frame<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> Frame<T> {
            /// Wraps `buffer` without checks; accessors may then panic on short input.
            pub const fn new_unchecked(buffer: T) -> Frame<T> {
                Frame { buffer }
            }

            /// Wraps `buffer` once its length (and the fields that size it) are checked, so no
            /// accessor can index out of bounds afterwards.
            #[inline]
            pub fn new_checked(buffer: T) -> Result<Frame<T>, crate::PacketError> {
                check(buffer.as_ref())?;
                Ok(Frame { buffer })
            }

            #[inline]
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }

            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

pub(crate) use view;

/// `Truncated` unless `b` holds at least `need` bytes.
#[inline]
pub(crate) fn need(b: &[u8], need: usize) -> Result<(), crate::PacketError> {
    if b.len() < need {
        return Err(crate::PacketError::Truncated { len: b.len(), need });
    }
    Ok(())
}
