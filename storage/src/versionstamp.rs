//! Versionstamps: the 10-byte, strictly increasing identity of a commit.
//!
//! Bytes 0..8 are the commit sequence number (big-endian), bytes 8..10 are reserved for an
//! order within a commit (always 0 today). Byte order is commit order, so versionstamps compare
//! and sort as plain byte strings and print as 20 hex digits.

use std::fmt;

/// The identity and order of a commit; every stored value carries the one that wrote it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Versionstamp(pub [u8; 10]);

impl Versionstamp {
    /// The versionstamp before any commit.
    pub const ZERO: Versionstamp = Versionstamp([0; 10]);

    /// The versionstamp of commit number `seq`.
    pub fn from_seq(seq: u64) -> Self {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&seq.to_be_bytes());
        Versionstamp(b)
    }

    /// The commit sequence number.
    pub fn seq(&self) -> u64 {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(s)
    }

    /// Parses 20 hex digits.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 20 || !s.is_ascii() {
            return None;
        }
        let mut b = [0u8; 10];
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Versionstamp(b))
    }
}

impl fmt::Display for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Versionstamp({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_order() {
        let a = Versionstamp::from_seq(255);
        assert_eq!(a.to_string(), "00000000000000ff0000");
        assert_eq!(Versionstamp::parse_hex(&a.to_string()), Some(a));
        assert!(Versionstamp::from_seq(256) > a);
        assert_eq!(a.seq(), 255);
        assert_eq!(Versionstamp::parse_hex("zz"), None);
    }
}
