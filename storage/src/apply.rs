//! The commit logic every backend shares: evaluate a batch's checks, then turn its mutations
//! into stored entries, over whatever write transaction the backend provides.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use crate::engine::{
    check_key, AtomicBatch, Direct, DirectEntry, FieldPatch, KeyRange, Mutation, PatchOp,
};
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

/// The live value at `key`, if any, as a commit reads it.
fn live<T: CommitTarget>(t: &mut T, key: &[u8], now: u64) -> Result<Option<DirectEntry>> {
    match t.read(key)? {
        Some(raw) => DirectEntry::live(&raw, now),
        None => Ok(None),
    }
}

/// Any backend's write transaction as the view a direct write gets
/// ([`crate::Engine::write_direct`]): reads see its own writes, writes are entries at the
/// commit's versionstamp, and the changes are kept for the feed.
pub(crate) struct DirectView<T> {
    target: RefCell<T>,
    before: Versionstamp,
    now: u64,
    changes: RefCell<Vec<Change>>,
    /// The store ran out of room (LMDB's map is full): the write must start again.
    full: Cell<bool>,
}

impl<T: CommitTarget> DirectView<T> {
    /// A view over `target`, whose latest commit is `before`, judging expiry at `now`.
    pub(crate) fn new(target: T, before: Versionstamp, now: u64) -> Self {
        DirectView {
            target: RefCell::new(target),
            before,
            now,
            changes: RefCell::default(),
            full: Cell::new(false),
        }
    }

    /// The target back, the changes made (each key's last), and whether the store ran out
    /// of room on the way.
    pub(crate) fn finish(self) -> (T, Vec<Change>, bool) {
        let mut changes = self.changes.into_inner();
        dedup_last(&mut changes);
        (self.target.into_inner(), changes, self.full.get())
    }

    fn noted<R>(&self, r: Result<R>) -> Result<R> {
        if let Err(Error::MapFull(_)) = &r {
            self.full.set(true);
        }
        r
    }
}

impl<T: CommitTarget> Direct for DirectView<T> {
    fn read_versionstamp(&self) -> Versionstamp {
        self.before
    }
    fn now_millis(&self) -> u64 {
        self.now
    }
    fn get(&self, key: &[u8]) -> Result<Option<DirectEntry>> {
        if key.len() > crate::MAX_KEY_LEN {
            return Ok(None); // too long to be stored
        }
        live(&mut *self.target.borrow_mut(), key, self.now)
    }
    fn set(&self, key: &[u8], value: &[u8], expire_at: Option<u64>) -> Result<()> {
        check_key(key)?;
        let vs = Versionstamp::from_seq(self.before.seq() + 1);
        let mut t = self.target.borrow_mut();
        self.noted(t.write(key, entry::encode(value, vs, expire_at)))?;
        if let Some(at) = expire_at {
            self.noted(t.note_expiry(at, key))?;
        }
        self.changes.borrow_mut().push(Change { key: key.to_vec(), kind: ChangeKind::Set });
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        if self.noted(self.target.borrow_mut().remove(key))? {
            self.changes.borrow_mut().push(Change { key: key.to_vec(), kind: ChangeKind::Delete });
        }
        Ok(())
    }
}

/// Checks, then applies, `batch` at versionstamp `vs`; returns the changes to record.
/// On error the caller must discard the transaction: nothing may be kept.
pub(crate) fn apply_batch<T: CommitTarget>(
    t: &mut T,
    batch: &AtomicBatch,
    vs: Versionstamp,
    now: u64,
) -> Result<Vec<Change>> {
    let writes = prepare(t, batch, vs, now)?;
    write(t, writes)
}

/// One write a batch makes, decided before anything is written.
pub(crate) enum Write<'b> {
    Put { key: &'b [u8], stored: Vec<u8>, expire_at: Option<u64> },
    Remove { key: &'b [u8] },
}

impl<'b> Write<'b> {
    fn key(&self) -> &'b [u8] {
        match self {
            Write::Put { key, .. } | Write::Remove { key } => key,
        }
    }
}

/// Evaluates `batch`'s checks and decides its writes (counters read their current values),
/// reading only: a batch refused here has written nothing, so one transaction can carry
/// several batches without nesting (LMDB allows no nested transaction in a writable map).
pub(crate) fn prepare<'b, T: CommitTarget>(
    t: &mut T,
    batch: &'b AtomicBatch,
    vs: Versionstamp,
    now: u64,
) -> Result<Vec<Write<'b>>> {
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
    let mut writes: Vec<Write<'b>> = Vec::with_capacity(batch.mutations.len());
    // Where each key was last written in this batch, kept only when a counter may read it.
    let counters = batch.mutations.iter().any(|m| {
        matches!(
            m,
            Mutation::Sum { .. }
                | Mutation::Min { .. }
                | Mutation::Max { .. }
                | Mutation::Patch { .. }
        )
    });
    let mut last: HashMap<&'b [u8], usize> = HashMap::new();
    for m in &batch.mutations {
        let w = match m {
            Mutation::Set { key, value, expire_at } => Write::Put {
                key,
                stored: entry::encode(value, vs, *expire_at),
                expire_at: *expire_at,
            },
            Mutation::Delete { key } => Write::Remove { key },
            Mutation::Sum { key, delta } => {
                let earlier = last.get(key.as_slice()).map(|&i| &writes[i]);
                let (current, expire_at) = counter(t, earlier, key, now)?;
                let next = current.unwrap_or(0).checked_add_signed(*delta).ok_or_else(|| {
                    Error::CounterOutOfRange {
                        key: key.clone(),
                        current: current.unwrap_or(0),
                        delta: *delta,
                    }
                })?;
                let stored = entry::encode(&Value::encode_counter(next), vs, expire_at);
                Write::Put { key, stored, expire_at: None }
            }
            Mutation::Min { key, value } | Mutation::Max { key, value } => {
                let is_min = matches!(m, Mutation::Min { .. });
                let earlier = last.get(key.as_slice()).map(|&i| &writes[i]);
                let (current, expire_at) = counter(t, earlier, key, now)?;
                let next = match current {
                    Some(c) if is_min => c.min(*value),
                    Some(c) => c.max(*value),
                    None => *value,
                };
                let stored = entry::encode(&Value::encode_counter(next), vs, expire_at);
                Write::Put { key, stored, expire_at: None }
            }
            Mutation::Patch { key, ops } => {
                let earlier = last.get(key.as_slice()).map(|&i| &writes[i]);
                let Some((record, expire_at)) = current(t, earlier, key, now)? else {
                    // Deleted before the patch: nothing to change.
                    continue;
                };
                let patched = patch_record(&record, ops)
                    .map_err(|field| Error::PatchRefused { key: key.clone(), field })?;
                let stored = entry::encode(&patched, vs, expire_at);
                Write::Put { key, stored, expire_at: None }
            }
        };
        if counters {
            last.insert(w.key(), writes.len());
        }
        writes.push(w);
    }
    Ok(writes)
}

/// Makes the writes [`prepare`] decided; returns the changes to record. Fails only as the
/// store fails (map full, I/O), and then the caller must discard the transaction.
pub(crate) fn write<T: CommitTarget>(t: &mut T, writes: Vec<Write<'_>>) -> Result<Vec<Change>> {
    let mut changes = Vec::with_capacity(writes.len());
    for w in writes {
        match w {
            Write::Put { key, stored, expire_at } => {
                t.write(key, stored)?;
                // A counter keeps the expiry its key had: already noted when it was set.
                if let Some(at) = expire_at {
                    t.note_expiry(at, key)?;
                }
                changes.push(Change { key: key.to_vec(), kind: ChangeKind::Set });
            }
            Write::Remove { key } => {
                if t.remove(key)? {
                    changes.push(Change { key: key.to_vec(), kind: ChangeKind::Delete });
                }
            }
        }
    }
    dedup_last(&mut changes);
    Ok(changes)
}

/// The live value at `key` and its expiry, as the batch's `earlier` write of it (if any)
/// left it.
fn current<T: CommitTarget>(
    t: &mut T,
    earlier: Option<&Write<'_>>,
    key: &[u8],
    now: u64,
) -> Result<Option<(Vec<u8>, Option<u64>)>> {
    Ok(match earlier {
        Some(Write::Put { stored, .. }) => {
            let e = entry::decode(stored)?;
            e.is_live(now).then(|| (e.value().to_vec(), e.expire_at()))
        }
        Some(Write::Remove { .. }) => None,
        None => live(t, key, now)?.map(|l| (l.value, l.expire_at)),
    })
}

/// `record` (a model's record) with `ops` applied; the id of the field that refuses its op
/// (or 0 when `record` is not a record).
fn patch_record(record: &[u8], ops: &[FieldPatch]) -> std::result::Result<Vec<u8>, u32> {
    let mut fields = Value::decode_record_fields(record).map_err(|_| 0u32)?;
    for p in ops {
        let at = fields.binary_search_by_key(&p.field, |(id, _)| *id);
        let old = at.ok().map(|i| &fields[i].1);
        let new = match (&p.op, old) {
            (PatchOp::Set(v), _) => Value::decode(v).map_err(|_| p.field)?,
            (PatchOp::AddInt(d), None) => Value::Int(i64::try_from(*d).map_err(|_| p.field)?),
            (PatchOp::AddInt(d), Some(Value::Int(x))) => {
                Value::Int(i64::try_from(i128::from(*x) + d).map_err(|_| p.field)?)
            }
            (PatchOp::AddCounter(d), None) => {
                Value::Counter(u64::try_from(*d).map_err(|_| p.field)?)
            }
            (PatchOp::AddCounter(d), Some(Value::Counter(x))) => {
                Value::Counter(u64::try_from(i128::from(*x) + d).map_err(|_| p.field)?)
            }
            (PatchOp::MinInt(v), None) | (PatchOp::MaxInt(v), None) => Value::Int(*v),
            (PatchOp::MinInt(v), Some(Value::Int(x))) => Value::Int(*x.min(v)),
            (PatchOp::MaxInt(v), Some(Value::Int(x))) => Value::Int(*x.max(v)),
            (PatchOp::MinCounter(v), None) | (PatchOp::MaxCounter(v), None) => Value::Counter(*v),
            (PatchOp::MinCounter(v), Some(Value::Counter(x))) => Value::Counter(*x.min(v)),
            (PatchOp::MaxCounter(v), Some(Value::Counter(x))) => Value::Counter(*x.max(v)),
            _ => return Err(p.field),
        };
        // (Records hold no nulls: a field set to null is removed.)
        match (at, new) {
            (Ok(i), Value::Null) => {
                fields.remove(i);
            }
            (Err(_), Value::Null) => {}
            (Ok(i), new) => fields[i].1 = new,
            (Err(i), new) => fields.insert(i, (p.field, new)),
        }
    }
    Ok(Value::encode_record(fields.iter().map(|(id, v)| (*id, v))))
}

/// The live counter at `key` and its expiry, as the batch's `earlier` write of it (if any)
/// left it.
fn counter<T: CommitTarget>(
    t: &mut T,
    earlier: Option<&Write<'_>>,
    key: &[u8],
    now: u64,
) -> Result<(Option<u64>, Option<u64>)> {
    match current(t, earlier, key, now)? {
        None => Ok((None, None)),
        Some((value, expire_at)) => match Value::decode_counter(&value) {
            Some(c) => Ok((Some(c), expire_at)),
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
