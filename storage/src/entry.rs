//! The stored form of a value: the versionstamp of the commit that wrote it, its expiry time,
//! and the value bytes, laid out identically by every backend.
//!
//! `flags (1) | versionstamp (10) | expire_at (8, big-endian, only when flags & 1) | value`

use crate::error::{Error, Result};
use crate::versionstamp::Versionstamp;

const HAS_EXPIRY: u8 = 1;

/// A value as a read sees it, borrowed from the snapshot that read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub value: &'a [u8],
    pub versionstamp: Versionstamp,
    /// Milliseconds since the Unix epoch from which the value is invisible.
    pub expire_at: Option<u64>,
}

impl Entry<'_> {
    /// True when the entry is visible at `now_millis`.
    pub fn is_live(&self, now_millis: u64) -> bool {
        self.expire_at.is_none_or(|t| now_millis < t)
    }

    /// An owned copy of the value bytes.
    pub fn to_owned_value(&self) -> Vec<u8> {
        self.value.to_vec()
    }
}

/// Lays out a stored entry.
pub fn encode(value: &[u8], vs: Versionstamp, expire_at: Option<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + value.len());
    match expire_at {
        Some(t) => {
            out.push(HAS_EXPIRY);
            out.extend_from_slice(&vs.0);
            out.extend_from_slice(&t.to_be_bytes());
        }
        None => {
            out.push(0);
            out.extend_from_slice(&vs.0);
        }
    }
    out.extend_from_slice(value);
    out
}

/// Reads a stored entry without copying its value.
#[inline]
pub fn decode(raw: &[u8]) -> Result<Entry<'_>> {
    let corrupt = || Error::Corrupt(format!("stored entry of {} bytes is truncated", raw.len()));
    let flags = *raw.first().ok_or_else(corrupt)?;
    let vs: [u8; 10] = raw.get(1..11).and_then(|s| s.try_into().ok()).ok_or_else(corrupt)?;
    if flags & HAS_EXPIRY != 0 {
        let t: [u8; 8] = raw.get(11..19).and_then(|s| s.try_into().ok()).ok_or_else(corrupt)?;
        Ok(Entry {
            value: &raw[19..],
            versionstamp: Versionstamp(vs),
            expire_at: Some(u64::from_be_bytes(t)),
        })
    } else {
        Ok(Entry { value: &raw[11..], versionstamp: Versionstamp(vs), expire_at: None })
    }
}
