//! The typed model transaction: records and their index entries over a `Txn` (the raw buffered transaction). This is
//! the only storage interface the executor sees. Every write keeps a model's indexes in
//! step with its records in the same buffer (and so the same commit): an insert adds the
//! entries, an update removes the old ones and adds the new, a delete removes them; a
//! unique entry held by another record is a [`Error::UniqueViolation`].

use std::borrow::Cow;

use kvm_planner::{Index, Model};
use kvm_storage::tuple::KeyPart;
use kvm_storage::{Engine, KeyRange, Value, MAX_KEY_LEN};

use crate::error::{Error, Result};
use crate::eval::Row;
use crate::keyspace::{self, key_part, Key, KeyPrefix};
use crate::txn::{subtract, Txn};

/// What a write does to a record's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Keep the record's current expiry (or none).
    Keep,
    /// Expire at this engine-clock millisecond.
    At(u64),
    /// Remove any expiry.
    Clear,
}

/// Rows pulled one at a time.
pub type RowIter<'a> = Box<dyn Iterator<Item = Result<Row>> + 'a>;

/// Records and indexes of one statement (or transaction), committed as one batch.
/// An index entry whose record is not there.
/// Runs of index entries sharing their first values: the values and how many entries
/// ([`ModelTxn::index_runs`]).
pub type Runs<'a> = Box<dyn Iterator<Item = Result<(Vec<Value>, u64)>> + 'a>;

/// The slots of the first `n` fields of `index`.
fn index_slots(model: &Model, index: &Index, n: usize) -> Result<Vec<usize>> {
    index
        .fields
        .iter()
        .take(n)
        .map(|f| model.slots.slot(f))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Internal(format!("index {} names a missing field", index.name)))
}

/// The storage key of a `KV` user key, which must fit whole.
fn user_key(parts: Vec<KeyPart>) -> Result<Vec<u8>> {
    let key = Key::User { parts }.encode();
    if key.len() > MAX_KEY_LEN {
        return Err(Error::Invalid {
            code: "kvm.invalid_key",
            message: format!(
                "a KV key is at most {MAX_KEY_LEN} bytes encoded (this one is {})",
                key.len()
            ),
            span: None,
            help: None,
        });
    }
    Ok(key)
}

fn missing_record(model: &Model) -> Error {
    Error::Corrupt(format!("index entry of {} points at a missing record", model.name))
}

/// How many records an index scan on a remote backend reads in its first request, and at
/// most in one: each batch is four times the one before.
const FIRST_RECORD_BATCH: usize = 16;
const MAX_RECORD_BATCH: usize = 1024;

pub struct ModelTxn<'e> {
    txn: Txn<'e>,
    /// Whether record patches may be written ([`ModelTxn::allow_patches`]).
    patches: std::cell::Cell<bool>,
}

/// Decodes a stored record of `model` into its slots.
pub fn decode_record(model: &Model, bytes: &[u8]) -> Result<Row> {
    Row::decode(&model.slots, bytes)
}

/// Stored records, borrowed from the snapshot where they can be.
pub type Records<'a> = Box<dyn Iterator<Item = Result<Cow<'a, [u8]>>> + 'a>;

/// The key part of a primary-key value (which must fit in a key).
pub fn pk_part(model: &Model, pk: &Value) -> Result<KeyPart> {
    let why = match key_part(pk) {
        Some((p, true)) => return Ok(p),
        Some(_) => format!(
            "is too long for a primary key: a STRING or BYTES key is at most {} bytes \
             (this one is {}), so that keys stay exact and in order; keep a long value in \
             a UNIQUE field and key the record by a ULID",
            keyspace::LONG_VALUE,
            match pk {
                Value::String(s) => s.len(),
                Value::Bytes(b) => b.len(),
                _ => 0,
            }
        ),
        None => "is not a usable primary key (null, an array or an object)".to_string(),
    };
    Err(Error::validation(&model.name, &model.pk().name, pk, &why))
}

/// The entry parts of `row` in `index`: `None` when a field is null (no entry).
pub fn entry_values(index: &Index, row: &Row) -> Option<Vec<KeyPart>> {
    index.fields.iter().map(|f| row.get(f).and_then(key_part).map(|(p, _)| p)).collect()
}

/// The key of `row`'s entry in `index`, if it has one.
pub fn entry_key(model: &Model, index: &Index, row: &Row, pk: &KeyPart) -> Option<Vec<u8>> {
    let values = entry_values(index, row)?;
    Some(if index.unique {
        Key::UniqueEntry { model: &model.name, index: &index.name, values }.encode()
    } else {
        Key::IndexEntry { model: &model.name, index: &index.name, values, pk: pk.clone() }.encode()
    })
}

/// The primary key an index entry points at: its value for a unique index, its last key
/// part otherwise (decoded past the `skip` bytes of the index's own prefix).
fn entry_pk(unique: bool, key: &[u8], value: &[u8], skip: usize) -> Result<KeyPart> {
    let pk = if unique {
        match Value::decode(value) {
            Ok(v) => key_part(&v).map(|(p, _)| p),
            Err(_) => None,
        }
    } else {
        keyspace::entry_pk_past(key, skip)
    };
    pk.ok_or_else(|| {
        Error::Corrupt(format!("bad index entry {}", kvm_storage::format::format_key(key)))
    })
}

impl<'e> ModelTxn<'e> {
    pub fn new(engine: &'e dyn Engine) -> Result<ModelTxn<'e>> {
        ModelTxn::new_reading(engine, &[])
    }

    /// [`ModelTxn::new`], telling the engine the keys the statement will read first
    /// besides the catalog's version, which every statement reads first (a remote backend
    /// reads them all with the request that opens the snapshot).
    pub fn new_reading(engine: &'e dyn Engine, first: &[Vec<u8>]) -> Result<ModelTxn<'e>> {
        let catalog = Key::CatalogVersion.encode();
        let mut keys: Vec<&[u8]> = Vec::with_capacity(first.len() + 1);
        keys.push(&catalog);
        keys.extend(first.iter().map(Vec::as_slice));
        let txn = Txn::new_with(engine, &keys)?;
        Ok(ModelTxn { txn, patches: std::cell::Cell::new(false) })
    }

    /// A model transaction writing straight into the storage's write transaction (see
    /// [`Txn::direct`]).
    pub fn direct(view: &'e (dyn kvm_storage::Direct + 'e)) -> ModelTxn<'e> {
        ModelTxn { txn: Txn::direct(view), patches: std::cell::Cell::new(false) }
    }

    /// The raw transaction, for the stores that own keys of their own — the catalog
    /// (`catalog_store`) and queues (`queue::store`) — and for the statement's bookkeeping
    /// (read tracking, its snapshot's versionstamp). Records and index entries are written
    /// only through this type's own verbs.
    pub fn txn(&self) -> &Txn<'e> {
        &self.txn
    }

    /// The buffered writes and checks, as one batch to commit (closing the snapshot).
    pub fn into_batch(self) -> kvm_storage::AtomicBatch {
        self.txn.into_batch()
    }

    /// Allows (or not) [`ModelTxn::patch`]: a statement committed on its own may patch; a
    /// statement in an explicit transaction may not (later statements could not read the
    /// patch back).
    pub fn allow_patches(&self, on: bool) {
        self.patches.set(on);
    }

    pub fn patches_allowed(&self) -> bool {
        self.patches.get()
    }

    /// The stored bytes of record `pk` in the snapshot, without making the commit depend on
    /// them (what a patch checks: that the record exists, written by field id).
    pub fn peek(&self, model: &Model, pk: &KeyPart) -> Result<Option<Vec<u8>>> {
        self.txn.peek(&Key::Record { model: &model.name, pk: pk.clone() }.encode())
    }

    /// Changes fields of record `pk` at commit, against its latest state: concurrent patches
    /// never conflict. Only for fields no index, constraint or computed field reads (their
    /// entries and checks would need the value); the caller ensures that.
    pub fn patch(&self, model: &Model, pk: &KeyPart, ops: Vec<kvm_storage::FieldPatch>) {
        self.txn.patch(Key::Record { model: &model.name, pk: pk.clone() }.encode(), ops);
    }

    /// The stored record with primary key `pk`.
    pub fn get(&self, model: &Model, pk: &KeyPart) -> Result<Option<Row>> {
        let key = Key::Record { model: &model.name, pk: pk.clone() }.encode();
        self.txn.get_with(&key, |b| decode_record(model, b))?.transpose()
    }

    /// The stored records with primary keys `pks`, read in one request.
    pub fn get_many(&self, model: &Model, pks: &[KeyPart]) -> Result<Vec<Option<Row>>> {
        let keys: Vec<Vec<u8>> = pks
            .iter()
            .map(|pk| Key::Record { model: &model.name, pk: pk.clone() }.encode())
            .collect();
        self.txn
            .get_many(&keys)?
            .into_iter()
            .map(|b| b.map(|b| decode_record(model, &b)).transpose())
            .collect()
    }

    /// The primary keys of the entries of `index` in each of `ranges` (each in index order,
    /// at most `limit` per range), read in one request.
    pub fn index_pks_many(
        &self,
        model: &Model,
        index: &Index,
        ranges: &[KeyRange],
        reverse: bool,
        limit: Option<usize>,
    ) -> Result<Vec<Vec<KeyPart>>> {
        let skip = keyspace::index_entries_len(&model.name, &index.name);
        self.txn
            .scan_many(ranges, reverse, limit)?
            .into_iter()
            .map(|entries| {
                entries.into_iter().map(|(k, v)| entry_pk(index.unique, &k, &v, skip)).collect()
            })
            .collect()
    }

    /// Records whose key lies in `range` (a range of `[model, pk]` keys), index entries
    /// skipped.
    pub fn scan<'a>(
        &'a self,
        model: &Model,
        range: KeyRange,
        reverse: bool,
    ) -> Result<RowIter<'a>> {
        let slots = model.slots.clone();
        let records = self.records(model, range, reverse)?;
        Ok(Box::new(records.map(move |r| r.and_then(|v| Row::decode(&slots, &v)))))
    }

    /// The stored bytes of the records whose key lies in `range`, index entries skipped,
    /// borrowed from the snapshot: for a step that decodes only what it needs of each
    /// record, and keeps the bytes of the few it returns (a sort under `LIMIT`, a count).
    pub fn records<'a>(
        &'a self,
        model: &Model,
        range: KeyRange,
        reverse: bool,
    ) -> Result<Records<'a>> {
        let area = KeyRange::prefix(&keyspace::index_area(&model.name));
        let mut ranges = subtract(range, &area);
        if reverse {
            ranges.reverse();
        }
        let mut iters = Vec::new();
        for r in ranges {
            iters.push(self.txn.scan(&r, reverse)?);
        }
        Ok(Box::new(iters.into_iter().flatten().map(|r| r.map(|(_, v)| v))))
    }

    /// Every record of `model`.
    pub fn scan_all<'a>(&'a self, model: &Model, reverse: bool) -> Result<RowIter<'a>> {
        self.scan(model, KeyRange::prefix(&KeyPrefix::Model(&model.name).encode()), reverse)
    }

    /// The primary keys of the entries of `index` in `range`, in index order.
    pub fn index_pks<'a>(
        &'a self,
        model: &Model,
        index: &Index,
        range: &KeyRange,
        reverse: bool,
    ) -> Result<Box<dyn Iterator<Item = Result<KeyPart>> + 'a>> {
        let unique = index.unique;
        let skip = keyspace::index_entries_len(&model.name, &index.name);
        Ok(Box::new(self.txn.scan(range, reverse)?.map(move |r| {
            let (k, v) = r?;
            entry_pk(unique, &k, &v, skip)
        })))
    }

    /// Records reached through `index` entries in `range`.
    pub fn index_scan<'a>(
        &'a self,
        model: &'a Model,
        index: &Index,
        range: &KeyRange,
        reverse: bool,
    ) -> Result<RowIter<'a>> {
        let mut pks = self.index_pks(model, index, range, reverse)?;
        if !self.txn.batch_reads() {
            // Locally, each record is read as its entry is consumed: nothing more than a
            // `LIMIT` takes.
            return Ok(Box::new(
                pks.map(move |pk| self.get(model, &pk?)?.ok_or_else(|| missing_record(model))),
            ));
        }
        // On a remote backend records are read a batch of entries at a time (one request,
        // not one per row); batches start small and grow, so `LIMIT 1` reads little.
        let mut batch = FIRST_RECORD_BATCH;
        let mut ready = Vec::new().into_iter();
        Ok(Box::new(std::iter::from_fn(move || loop {
            if let Some(row) = ready.next() {
                return Some(Ok(row));
            }
            let mut chunk = Vec::with_capacity(batch);
            for pk in pks.by_ref() {
                match pk {
                    Ok(pk) => chunk.push(pk),
                    Err(e) => return Some(Err(e)),
                }
                if chunk.len() == batch {
                    break;
                }
            }
            if chunk.is_empty() {
                return None;
            }
            batch = (batch * 4).min(MAX_RECORD_BATCH);
            let found = match self.get_many(model, &chunk) {
                Ok(f) => f,
                Err(e) => return Some(Err(e)),
            };
            let rows: Result<Vec<Row>> =
                found.into_iter().map(|r| r.ok_or_else(|| missing_record(model))).collect();
            match rows {
                Ok(rows) => ready = rows.into_iter(),
                Err(e) => return Some(Err(e)),
            }
        })))
    }

    /// Rows made from the entries of `index` in `range` alone, no record read: each holds
    /// the index's fields and the primary key, the other fields absent. An entry whose value
    /// was truncated (a long string or bytes value) cannot give it back: its record is read.
    pub fn index_rows<'a>(
        &'a self,
        model: &'a Model,
        index: &'a Index,
        range: &KeyRange,
        reverse: bool,
    ) -> Result<RowIter<'a>> {
        let skip = keyspace::index_entries_len(&model.name, &index.name);
        let slots = index_slots(model, index, index.fields.len())?;
        let pk_slot = model.primary_key;
        let unique = index.unique;
        let corrupt = |k: &[u8]| {
            Error::Corrupt(format!("bad index entry {}", kvm_storage::format::format_key(k)))
        };
        Ok(Box::new(self.txn.scan(range, reverse)?.map(move |r| {
            let (k, v) = r?;
            let mut row = Row::new(&model.slots);
            let (parts, rest) =
                keyspace::entry_parts(&k, skip, slots.len()).ok_or_else(|| corrupt(&k))?;
            let mut whole = true;
            for (slot, part) in slots.iter().zip(parts) {
                match keyspace::entry_value(&model.fields[*slot].ty.name, part) {
                    Some(value) => row.set_slot(*slot, value),
                    None => whole = false,
                }
            }
            let pk = match (unique, rest) {
                (true, _) => entry_pk(true, &k, &v, skip)?,
                (false, Some(pk)) => pk,
                (false, None) => return Err(corrupt(&k)),
            };
            if !whole {
                return self.get(model, &pk)?.ok_or_else(|| missing_record(model));
            }
            let pk = keyspace::entry_value(&model.pk().ty.name, pk).ok_or_else(|| corrupt(&k))?;
            row.set_slot(pk_slot, pk);
            Ok(row)
        })))
    }

    /// The runs of entries of `index` in `range` that share their first `n` indexed values:
    /// each run's values and how many entries it holds, counted from the keys (nothing is
    /// decoded per entry, no record is read). A run whose values are held truncated (a long
    /// string or bytes value) cannot give them back, and may in theory mix two values whose
    /// truncations collide: its entries' records are read instead, each record's values
    /// given as a run of one.
    pub fn index_runs<'a>(
        &'a self,
        model: &'a Model,
        index: &'a Index,
        range: &KeyRange,
        n: usize,
    ) -> Result<Runs<'a>> {
        let skip = keyspace::index_entries_len(&model.name, &index.name);
        let slots = index_slots(model, index, n)?;
        let fields: Vec<&kvm_planner::Field> = slots.iter().map(|s| &model.fields[*s]).collect();
        let corrupt = |k: &[u8]| {
            Error::Corrupt(format!("bad index entry {}", kvm_storage::format::format_key(k)))
        };
        let mut entries = self.txn.scan(range, false)?.peekable();
        // The records of an inexact run, read one at a time.
        let mut pending: std::vec::IntoIter<KeyPart> = Vec::new().into_iter();
        let unique = index.unique;
        Ok(Box::new(std::iter::from_fn(move || -> Option<Result<(Vec<Value>, u64)>> {
            let mut step = || -> Result<Option<(Vec<Value>, u64)>> {
                if let Some(pk) = pending.next() {
                    let row = self.get(model, &pk)?.ok_or_else(|| missing_record(model))?;
                    return Ok(Some((slots.iter().map(|s| row.slot(*s).clone()).collect(), 1)));
                }
                let Some(first) = entries.next() else { return Ok(None) };
                let (k, v) = first?;
                let shared = keyspace::entry_values_len(&k, skip, n).ok_or_else(|| corrupt(&k))?;
                let (parts, _) = keyspace::entry_parts(&k, skip, n).ok_or_else(|| corrupt(&k))?;
                let values: Option<Vec<Value>> = fields
                    .iter()
                    .zip(parts)
                    .map(|(f, p)| keyspace::entry_value(&f.ty.name, p))
                    .collect();
                let mut count = 1u64;
                let mut pks = Vec::new();
                if values.is_none() {
                    pks.push(entry_pk(unique, &k, &v, skip)?);
                }
                while let Some(Ok((next, _))) = entries.peek() {
                    if next.len() < shared || next[..shared] != k[..shared] {
                        break;
                    }
                    if let Some(Ok((nk, nv))) = entries.next() {
                        if values.is_none() {
                            pks.push(entry_pk(unique, &nk, &nv, skip)?);
                        }
                    }
                    count += 1;
                }
                match values {
                    Some(values) => Ok(Some((values, count))),
                    None => {
                        pending = pks.into_iter();
                        let pk = pending.next().ok_or_else(|| corrupt(&k))?;
                        let row = self.get(model, &pk)?.ok_or_else(|| missing_record(model))?;
                        Ok(Some((slots.iter().map(|s| row.slot(*s).clone()).collect(), 1)))
                    }
                }
            };
            step().transpose()
        })))
    }

    /// How many entries `range` holds (no record is read).
    pub fn count_entries(&self, range: &KeyRange) -> Result<u64> {
        let mut n = 0;
        for r in self.txn.scan(range, false)? {
            r?;
            n += 1;
        }
        Ok(n)
    }

    /// Writes `new`'s index entries (removing `old`'s), each expiring with the record.
    /// `rewrite` rewrites unchanged entries too (the expiry changed).
    fn put_entries(
        &self,
        model: &Model,
        old: Option<&Row>,
        new: &Row,
        pk: &KeyPart,
        expire_at: Option<u64>,
        rewrite: bool,
    ) -> Result<()> {
        for index in &model.indexes {
            let old_key = old.and_then(|o| entry_key(model, index, o, pk));
            let new_key = entry_key(model, index, new, pk);
            if old_key == new_key && !rewrite {
                continue;
            }
            if let Some(k) = old_key {
                self.txn.delete(k);
            }
            if let Some(k) = new_key {
                self.put_entry(model, index, new, pk, k, expire_at)?;
            }
        }
        Ok(())
    }

    /// Writes `row`'s entry `key` in `index`: a unique entry holds the primary key and is
    /// refused (`UniqueViolation`, nothing written) when another record holds it.
    fn put_entry(
        &self,
        model: &Model,
        index: &Index,
        row: &Row,
        pk: &KeyPart,
        key: Vec<u8>,
        expire_at: Option<u64>,
    ) -> Result<()> {
        if !index.unique {
            self.txn.set(key, Value::Null.encode(), expire_at);
            return Ok(());
        }
        if let Some(held) = self.txn.get_checked(&key)? {
            let holder = Value::decode(&held).ok().and_then(|v| key_part(&v)).map(|(p, _)| p);
            if holder.as_ref() != Some(pk) {
                let vals: Vec<String> = index
                    .fields
                    .iter()
                    .map(|f| row.get(f).map(crate::values::kql).unwrap_or_default())
                    .collect();
                let value = if vals.len() == 1 {
                    vals[0].clone()
                } else {
                    format!("({})", vals.join(", "))
                };
                return Err(Error::UniqueViolation {
                    model: model.name.clone(),
                    index: index.name.clone(),
                    value,
                });
            }
        }
        self.txn.set(key, keyspace::part_value(pk).encode(), expire_at);
        Ok(())
    }

    /// Adds a stored record's entries in the indexes named `indexes` (a backfill), expiring
    /// with the record.
    pub fn index_record(&self, model: &Model, row: &Row, indexes: &[String]) -> Result<()> {
        let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
        let expire_at = self.txn.expire_at(&Self::record_key(model, &pk)?)?;
        for ix in model.indexes.iter().filter(|i| indexes.contains(&i.name)) {
            if let Some(k) = entry_key(model, ix, row, &pk) {
                self.put_entry(model, ix, row, &pk, k, expire_at)?;
            }
        }
        Ok(())
    }

    /// The record a unique index's entry for `row`'s values points at (an `UPSERT … ON`
    /// lookup), if there is one.
    pub fn unique_holder(&self, model: &Model, index: &Index, row: &Row) -> Result<Option<Row>> {
        // Unique entries hold the primary key as their value, not in the key.
        let unused = KeyPart::Bool(false);
        let Some(k) = entry_key(model, index, row, &unused) else { return Ok(None) };
        let Some(held) = self.txn.get(&k)? else { return Ok(None) };
        let pk = entry_pk(true, &k, &held, 0)?;
        self.get(model, &pk)
    }

    /// Deletes every entry of `index` of `model` (the index is being dropped).
    pub fn drop_index_entries(&self, model: &str, index: &str) {
        self.schedule_removal(model, Some(index));
    }

    /// Removes every record and index entry of `model` (the model is being dropped).
    pub fn drop_model_data(&self, model: &str) {
        self.schedule_removal(model, None);
    }

    /// Notes, in this commit, keys to remove after it in batches of their own
    /// ([`ModelTxn::remove_step`]): a drop is one small commit however much it drops, and
    /// no longer read once the catalog forgets the model or index. The note stays until
    /// the last key is gone, so a removal cut short is finished later.
    fn schedule_removal(&self, model: &str, index: Option<&str>) {
        let what = std::iter::once(model).chain(index).map(|s| Value::String(s.into())).collect();
        self.txn.set(Key::Removal { model, index }.encode(), Value::Array(what).encode(), None);
    }

    /// Whether a removal is pending.
    pub fn removal_pending(&self) -> Result<bool> {
        Ok(self.txn.scan(&KeyPrefix::Removals.range(), false)?.next().transpose()?.is_some())
    }

    /// One batch of the first pending removal: up to `batch` of its keys deleted, and the
    /// note too once they are all gone. `false` when nothing was pending. (Its note is
    /// checked unchanged at commit: two removers conflict and one redoes its batch.)
    pub fn remove_step(&self, batch: usize) -> Result<bool> {
        let Some(first) = self.txn.scan(&KeyPrefix::Removals.range(), false)?.next() else {
            return Ok(false);
        };
        let (note, what) = first?;
        let (note, what) = (note.into_owned(), what.into_owned());
        self.txn.check_unchanged(&note)?;
        let names: Vec<String> = match Value::decode(&what) {
            Ok(Value::Array(parts)) => parts
                .into_iter()
                .filter_map(|p| if let Value::String(s) = p { Some(s) } else { None })
                .collect(),
            _ => Vec::new(),
        };
        let range = match names.as_slice() {
            [model] => KeyPrefix::Model(model).range(),
            [model, index] => KeyPrefix::Index { model, index, values: vec![] }.range(),
            _ => {
                return Err(Error::Corrupt(format!(
                    "a removal note {} names no model",
                    kvm_storage::format::format_key(&note)
                )))
            }
        };
        let mut keys = Vec::with_capacity(batch.min(4096));
        for r in self.txn.scan(&range, false)?.take(batch) {
            keys.push(r?.0.into_owned());
        }
        if keys.len() < batch {
            self.txn.delete(note);
        }
        for k in keys {
            self.txn.delete(k);
        }
        Ok(true)
    }

    /// The raw entries of `index` of `model`, in key order (`CHECK` compares them with the
    /// records).
    pub fn index_entries<'a>(&'a self, model: &str, index: &str) -> Result<crate::txn::KvIter<'a>> {
        self.txn.scan(&KeyPrefix::Index { model, index, values: vec![] }.range(), false)
    }

    /// Where `model`'s backfill stopped: the last record key it indexed (checked unchanged
    /// at commit, so two backfillers of one model conflict and one redoes its batch).
    pub fn backfill_progress(&self, model: &str) -> Result<Option<Vec<u8>>> {
        let key = Key::Backfill { model }.encode();
        self.txn.check_unchanged(&key)?;
        self.txn.get(&key)
    }

    /// Records where `model`'s backfill stopped (`None`: it is done, or starts over).
    pub fn set_backfill_progress(&self, model: &str, last: Option<Vec<u8>>) {
        let key = Key::Backfill { model }.encode();
        match last {
            Some(last) => self.txn.set(key, last, None),
            None => self.txn.delete(key),
        }
    }

    /// The value at a key of the `KV` user area (`None` when absent or expired).
    pub fn kv_get(&self, parts: Vec<KeyPart>) -> Result<Option<Value>> {
        let key = user_key(parts)?;
        match self.txn.get(&key)? {
            None => Ok(None),
            Some(bytes) => Value::decode(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("a KV value does not decode: {e}"))),
        }
    }

    /// Sets a key of the `KV` user area (expiring at `expire_at`, engine milliseconds).
    pub fn kv_set(&self, parts: Vec<KeyPart>, value: &Value, expire_at: Option<u64>) -> Result<()> {
        let key = user_key(parts)?;
        self.txn.set(key, value.encode(), expire_at);
        Ok(())
    }

    /// Deletes a key of the `KV` user area; whether it was there.
    pub fn kv_delete(&self, parts: Vec<KeyPart>) -> Result<bool> {
        let key = user_key(parts)?;
        let found = self.txn.get(&key)?.is_some();
        if found {
            self.txn.delete(key);
        }
        Ok(found)
    }

    /// Keys of the `KV` user area and their values: under the leading parts `prefix`, or
    /// from `start` (inclusive) to `end` (exclusive, else the area's end); at most `limit`.
    pub fn kv_list(
        &self,
        prefix: Option<Vec<KeyPart>>,
        start: Option<Vec<KeyPart>>,
        end: Option<Vec<KeyPart>>,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<Value>, Value)>> {
        use std::ops::Bound::*;
        let area = KeyPrefix::User(prefix.unwrap_or_default()).range();
        let range = KeyRange {
            start: match start {
                Some(p) => Included(user_key(p)?),
                None => area.start,
            },
            end: match end {
                Some(p) => Excluded(user_key(p)?),
                None => area.end,
            },
        };
        let mut out = Vec::new();
        for r in self.txn.scan(&range, reverse)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = r?;
            let key = keyspace::user_key(&k)
                .ok_or_else(|| Error::Corrupt("a KV key does not decode".into()))?;
            let value = Value::decode(&v)
                .map_err(|e| Error::Corrupt(format!("a KV value does not decode: {e}")))?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn record_key(model: &Model, pk: &KeyPart) -> Result<Vec<u8>> {
        let key = Key::Record { model: &model.name, pk: pk.clone() }.encode();
        if key.len() > MAX_KEY_LEN {
            return Err(Error::validation(
                &model.name,
                &model.pk().name,
                keyspace::part_value(pk),
                "is too long for a key",
            ));
        }
        Ok(key)
    }

    /// Inserts a new record (refused when its primary key is taken).
    pub fn insert(&self, model: &Model, row: &Row, expire_at: Option<u64>) -> Result<()> {
        let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
        let key = Self::record_key(model, &pk)?;
        if self.txn.get_checked(&key)?.is_some() {
            return Err(Error::UniqueViolation {
                model: model.name.clone(),
                index: "PRIMARY KEY".into(),
                value: crate::values::kql(&keyspace::part_value(&pk)),
            });
        }
        self.put_entries(model, None, row, &pk, expire_at, false)?;
        self.txn.set(key, row.encode(), expire_at);
        Ok(())
    }

    /// Replaces `old` with `new` (same primary key); `ttl` keeps, sets or clears the
    /// record's expiry (its index entries always expire with it).
    pub fn update(&self, model: &Model, old: &Row, new: &Row, ttl: Ttl) -> Result<()> {
        let pk = pk_part(model, new.get(&model.pk().name).unwrap_or(&Value::Null))?;
        let key = Self::record_key(model, &pk)?;
        self.txn.check_unchanged(&key)?;
        let current = self.txn.expire_at(&key)?;
        let expire_at = match ttl {
            Ttl::Keep => current,
            Ttl::At(t) => Some(t),
            Ttl::Clear => None,
        };
        self.put_entries(model, Some(old), new, &pk, expire_at, expire_at != current)?;
        self.txn.set(key, new.encode(), expire_at);
        Ok(())
    }

    /// Deletes a record and its index entries.
    pub fn delete(&self, model: &Model, row: &Row) -> Result<()> {
        let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
        let key = Self::record_key(model, &pk)?;
        self.txn.check_unchanged(&key)?;
        for index in &model.indexes {
            if let Some(k) = entry_key(model, index, row, &pk) {
                self.txn.delete(k);
            }
        }
        self.txn.delete(key);
        Ok(())
    }
}
