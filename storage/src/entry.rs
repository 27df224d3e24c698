//! The stored form of a value: the versionstamp of the commit that wrote it, its expiry time,
//! and the value bytes, laid out identically by every backend.
//!
//! `flags (1) | versionstamp (10) | expire_at (8, big-endian; 0 unless flags & 1) | value`
//!
//! The header has a fixed size, so a read finds the value without touching the header: a
//! scan hands out entries whose header is decoded only when asked for.

use crate::error::{Error, Result};
use crate::versionstamp::Versionstamp;

const HAS_EXPIRY: u8 = 1;
/// The size of the header before the value.
pub const HEADER_LEN: usize = 19;

/// A value as a read sees it, borrowed from the snapshot that read it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The whole stored entry; at least [`HEADER_LEN`] bytes long.
    raw: &'a [u8],
}

impl<'a> Entry<'a> {
    /// The value bytes.
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        &self.raw[HEADER_LEN..]
    }

    /// The versionstamp of the commit that wrote the value.
    pub fn versionstamp(&self) -> Versionstamp {
        let mut vs = [0u8; 10];
        vs.copy_from_slice(&self.raw[1..11]);
        Versionstamp(vs)
    }

    /// Milliseconds since the Unix epoch from which the value is invisible.
    #[inline]
    pub fn expire_at(&self) -> Option<u64> {
        if self.raw[0] & HAS_EXPIRY == 0 {
            return None;
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&self.raw[11..19]);
        Some(u64::from_be_bytes(t))
    }

    /// True when the entry is visible at `now_millis`.
    #[inline]
    pub fn is_live(&self, now_millis: u64) -> bool {
        self.expire_at().is_none_or(|t| now_millis < t)
    }
}

impl std::fmt::Debug for Entry<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("value", &crate::format::format_value(self.value()))
            .field("versionstamp", &self.versionstamp())
            .field("expire_at", &self.expire_at())
            .finish()
    }
}

/// Lays out a stored entry.
pub fn encode(value: &[u8], vs: Versionstamp, expire_at: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.push(if expire_at.is_some() { HAS_EXPIRY } else { 0 });
    out.extend_from_slice(&vs.0);
    out.extend_from_slice(&expire_at.unwrap_or(0).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// Wraps a stored entry without reading it: only its length is checked.
#[inline]
pub fn decode(raw: &[u8]) -> Result<Entry<'_>> {
    if raw.len() < HEADER_LEN {
        return Err(Error::Corrupt(format!("stored entry of {} bytes is truncated", raw.len())));
    }
    Ok(Entry { raw })
}
