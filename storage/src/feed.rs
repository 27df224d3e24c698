//! The change feed: for each commit that changed something, its versionstamp and the keys it
//! set, deleted or let expire. Watchers in this process and tailers in others read it in
//! versionstamp order; retention keeps the latest commits only.

use crate::error::{Error, Result};
use crate::versionstamp::Versionstamp;

/// How many commits the feed keeps by default.
pub const DEFAULT_RETENTION: u64 = 100_000;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Set = 1,
    Delete = 2,
    /// Deleted by the expiry sweeper.
    Expire = 3,
}

/// One changed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: Vec<u8>,
    pub kind: ChangeKind,
}

/// The changes of one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    pub versionstamp: Versionstamp,
    pub changes: Vec<Change>,
}

/// Encodes a commit's changes: a count, then per change its kind, key length and key (all
/// lengths as LEB128 varints).
pub fn encode(changes: &[Change]) -> Vec<u8> {
    let mut out = Vec::with_capacity(changes.iter().map(|c| c.key.len() + 3).sum::<usize>() + 2);
    put_varint(&mut out, changes.len() as u64);
    for c in changes {
        out.push(c.kind as u8);
        put_varint(&mut out, c.key.len() as u64);
        out.extend_from_slice(&c.key);
    }
    out
}

/// Decodes what [`encode`] wrote.
pub fn decode(vs: Versionstamp, bytes: &[u8]) -> Result<ChangeSet> {
    let corrupt = || Error::Corrupt(format!("change feed entry {vs} is malformed"));
    let mut pos = 0;
    let n = get_varint(bytes, &mut pos).ok_or_else(corrupt)?;
    let mut changes = Vec::with_capacity((n as usize).min(bytes.len()));
    for _ in 0..n {
        let kind = match bytes.get(pos) {
            Some(1) => ChangeKind::Set,
            Some(2) => ChangeKind::Delete,
            Some(3) => ChangeKind::Expire,
            _ => return Err(corrupt()),
        };
        pos += 1;
        let len = get_varint(bytes, &mut pos).ok_or_else(corrupt)? as usize;
        let key = bytes.get(pos..pos.saturating_add(len)).ok_or_else(corrupt)?.to_vec();
        pos += len;
        changes.push(Change { key, kind });
    }
    Ok(ChangeSet { versionstamp: vs, changes })
}

/// Keeps only the last change of each key, in the order of those last changes.
pub(crate) fn dedup_last(changes: &mut Vec<Change>) {
    // A statement's batch comes from its write buffer in key order, so its keys are
    // distinct: one pass of comparisons, no set of a million cloned keys.
    if changes.windows(2).all(|w| w[0].key < w[1].key) {
        return;
    }
    // Which changes are the last of their key, marked by borrowing the keys (no clones).
    let keep: Vec<bool> = {
        let mut seen = std::collections::HashSet::with_capacity(changes.len());
        let mut keep: Vec<bool> = changes.iter().rev().map(|c| seen.insert(&c.key[..])).collect();
        keep.reverse();
        keep
    };
    let mut i = 0;
    changes.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The error for a feed read that starts before what retention kept.
pub(crate) fn truncated(after: Versionstamp, floor_seq: u64) -> Error {
    Error::FeedTruncated {
        requested: after.to_string(),
        oldest: Versionstamp::from_seq(floor_seq).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let cs = vec![
            Change { key: b"a".to_vec(), kind: ChangeKind::Set },
            Change { key: vec![0; 300], kind: ChangeKind::Expire },
        ];
        let vs = Versionstamp::from_seq(3);
        assert_eq!(decode(vs, &encode(&cs)).map(|s| s.changes), Ok(cs));
        assert!(decode(vs, &[5, 1]).is_err());
        assert!(decode(vs, &[1, 9, 0]).is_err());
    }

    #[test]
    fn dedup_keeps_last() {
        let mut cs = vec![
            Change { key: b"a".to_vec(), kind: ChangeKind::Set },
            Change { key: b"b".to_vec(), kind: ChangeKind::Set },
            Change { key: b"a".to_vec(), kind: ChangeKind::Delete },
        ];
        dedup_last(&mut cs);
        assert_eq!(cs[0].key, b"b");
        assert_eq!(cs[1].kind, ChangeKind::Delete);
    }
}
