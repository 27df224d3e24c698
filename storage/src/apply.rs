//! The commit logic every backend shares: evaluate a batch's checks, then turn its mutations
//! into stored entries, over whatever write transaction the backend provides.

use crate::engine::{check_key, AtomicBatch, KeyRange, Mutation};
use crate::entry;
use crate::error::{Error, Result};
use crate::feed::{dedup_last, Change, ChangeKind};
use crate::value::Value;
use crate::versionstamp::Versionstamp;

/// A backend's write transaction, as the shared commit logic needs it. Reads see the
/// transaction's own earlier writes.
pub(crate) trait CommitTarget {
    /// The stored entry (see [`crate::entry`]) at `key`, expired or not.
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    fn write(&mut self, key: &[u8], stored: Vec<u8>) -> Result<()>;
    /// Removes the key; true when it was there.
    fn remove(&mut self, key: &[u8]) -> Result<bool>;
    /// Notes that `key` expires at `at` (the sweeper's index; stale notes are harmless).
    fn note_expiry(&mut self, at: u64, key: &[u8]) -> Result<()>;
    /// The first key in `range` whose stored entry is live at `now` and was written after
    /// `after` (range checks).
    fn newer_in(
        &mut self,
        range: &KeyRange,
        after: Versionstamp,
        now: u64,
    ) -> Result<Option<Vec<u8>>>;
}

/// Whether a stored entry is live at `now` and was written after `after`.
pub(crate) fn is_newer(raw: &[u8], after: Versionstamp, now: u64) -> Result<bool> {
    let e = entry::decode(raw)?;
    Ok(e.is_live(now) && e.versionstamp() > after)
}

/// A live value as a commit reads it.
struct Live {
    value: Vec<u8>,
    versionstamp: Versionstamp,
    expire_at: Option<u64>,
}

/// The live value at `key`, if any.
fn live<T: CommitTarget>(t: &mut T, key: &[u8], now: u64) -> Result<Option<Live>> {
    let Some(raw) = t.read(key)? else { return Ok(None) };
    let e = entry::decode(&raw)?;
    Ok(e.is_live(now).then(|| Live {
        value: e.value().to_vec(),
        versionstamp: e.versionstamp(),
        expire_at: e.expire_at(),
    }))
}

/// Checks, then applies, `batch` at versionstamp `vs`; returns the changes to record.
/// On error the caller must discard the transaction: nothing may be kept.
pub(crate) fn apply_batch<T: CommitTarget>(
    t: &mut T,
    batch: &AtomicBatch,
    vs: Versionstamp,
    now: u64,
) -> Result<Vec<Change>> {
    for m in &batch.mutations {
        check_key(m.key())?;
    }
    for c in &batch.checks {
        // A key too long to store cannot exist.
        let current = if c.key.len() > crate::MAX_KEY_LEN {
            None
        } else {
            live(t, &c.key, now)?.map(|l| l.versionstamp)
        };
        if current != c.versionstamp {
            return Err(Error::Conflict { key: c.key.clone() });
        }
    }
    for rc in &batch.range_checks {
        let range = rc.range.clamped(crate::MAX_KEY_LEN);
        if range.is_empty() {
            continue;
        }
        if let Some(key) = t.newer_in(&range, rc.after, now)? {
            return Err(Error::Conflict { key });
        }
    }
    let mut changes = Vec::with_capacity(batch.mutations.len());
    for m in &batch.mutations {
        match m {
            Mutation::Set { key, value, expire_at } => {
                t.write(key, entry::encode(value, vs, *expire_at))?;
                if let Some(at) = expire_at {
                    t.note_expiry(*at, key)?;
                }
                changes.push(Change { key: key.clone(), kind: ChangeKind::Set });
            }
            Mutation::Delete { key } => {
                if t.remove(key)? {
                    changes.push(Change { key: key.clone(), kind: ChangeKind::Delete });
                }
            }
            Mutation::Sum { key, delta } => {
                let (current, expire_at) = counter(t, key, now)?;
                let next = current.checked_add_signed(*delta).ok_or_else(|| {
                    Error::CounterOutOfRange { key: key.clone(), current, delta: *delta }
                })?;
                t.write(key, entry::encode(&Value::encode_counter(next), vs, expire_at))?;
                changes.push(Change { key: key.clone(), kind: ChangeKind::Set });
            }
            Mutation::Min { key, value } | Mutation::Max { key, value } => {
                let is_min = matches!(m, Mutation::Min { .. });
                let (current, expire_at) = counter_opt(t, key, now)?;
                let next = match current {
                    Some(c) if is_min => c.min(*value),
                    Some(c) => c.max(*value),
                    None => *value,
                };
                t.write(key, entry::encode(&Value::encode_counter(next), vs, expire_at))?;
                changes.push(Change { key: key.clone(), kind: ChangeKind::Set });
            }
        }
    }
    dedup_last(&mut changes);
    Ok(changes)
}

/// The live counter at `key` (0 when absent) and its expiry.
fn counter<T: CommitTarget>(t: &mut T, key: &[u8], now: u64) -> Result<(u64, Option<u64>)> {
    let (c, exp) = counter_opt(t, key, now)?;
    Ok((c.unwrap_or(0), exp))
}

fn counter_opt<T: CommitTarget>(
    t: &mut T,
    key: &[u8],
    now: u64,
) -> Result<(Option<u64>, Option<u64>)> {
    match live(t, key, now)? {
        None => Ok((None, None)),
        Some(l) => match Value::decode_counter(&l.value) {
            Some(c) => Ok((Some(c), l.expire_at)),
            None => Err(Error::NotACounter { key: key.to_vec() }),
        },
    }
}

/// Decides one expiry-index note during a sweep: true when the value at `key` is expired and
/// its expiry is exactly `at` (a later write may have changed or removed the expiry).
pub(crate) fn sweepable<T: CommitTarget>(t: &mut T, at: u64, key: &[u8], now: u64) -> Result<bool> {
    let Some(raw) = t.read(key)? else { return Ok(false) };
    let e = entry::decode(&raw)?;
    Ok(e.expire_at() == Some(at) && !e.is_live(now))
}
