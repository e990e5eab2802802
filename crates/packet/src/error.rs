use thiserror::Error;

/// Why a buffer is not a frame we can read or build.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    #[error("frame too short: {len} bytes, need at least {need}")]
    Truncated { len: usize, need: usize },
    #[error("output buffer too small: {have} bytes, need {need}")]
    BufferTooSmall { have: usize, need: usize },
    #[error("VLAN ID {0} out of range (0..=4095)")]
    BadVid(u16),
    #[error("malformed header: {0}")]
    Malformed(&'static str),
    #[error("invalid MAC address {0:?}")]
    BadMac(&'static str),
}
