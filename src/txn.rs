//! The raw transaction under the model layer: reads from one snapshot, writes buffered in
//! memory with read-your-writes, and the checks that make the commit serializable (every
//! key whose value decided a write is checked to be unchanged at commit). One `commit` is
//! one `AtomicBatch`.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::ops::Bound;

use foldhash::HashMap;

use kvm_storage::{
    AtomicBatch, Direct, Engine, FieldPatch, KeyRange, Mutation, ScanOptions, Snapshot,
    Versionstamp,
};

use crate::error::Result;

/// A key and its value: borrowed from the snapshot (no copy per row read), or owned when
/// it is this transaction's own write.
pub type Kv<'a> = (Cow<'a, [u8]>, Cow<'a, [u8]>);

/// Key-value pairs, pulled one at a time.
pub type KvIter<'a> = Box<dyn Iterator<Item = Result<Kv<'a>>> + 'a>;

/// Owned key-value pairs of one range.
pub type KvList = Vec<(Vec<u8>, Vec<u8>)>;

/// A buffered write: a value (with its expiry) or a delete.
type Write = Option<(Vec<u8>, Option<u64>)>;

/// The write buffer. Hashed while only point reads look into it — a bulk insert, whose
/// every key is looked up once or twice and never ranged over, pays no ordered-map
/// comparisons of long keys with common prefixes (that was half its time) — and ordered
/// from the first range read that finds writes on, since merging writes into a scan needs
/// them in key order.
enum Writes {
    Hashed(HashMap<Vec<u8>, Write>),
    Ordered(BTreeMap<Vec<u8>, Write>),
}

impl Default for Writes {
    fn default() -> Self {
        Writes::Hashed(HashMap::default())
    }
}

impl Writes {
    fn get(&self, key: &[u8]) -> Option<&Write> {
        match self {
            Writes::Hashed(m) => m.get(key),
            Writes::Ordered(m) => m.get(key),
        }
    }

    fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    fn insert(&mut self, key: Vec<u8>, w: Write) {
        match self {
            Writes::Hashed(m) => {
                m.insert(key, w);
            }
            Writes::Ordered(m) => {
                m.insert(key, w);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Writes::Hashed(m) => m.is_empty(),
            Writes::Ordered(m) => m.is_empty(),
        }
    }

    /// The buffer as an ordered map, ordering it from now on.
    fn ordered(&mut self) -> &BTreeMap<Vec<u8>, Write> {
        static EMPTY: BTreeMap<Vec<u8>, Write> = BTreeMap::new();
        if let Writes::Hashed(m) = self {
            *self = Writes::Ordered(std::mem::take(m).into_iter().collect());
        }
        match self {
            Writes::Ordered(m) => m,
            Writes::Hashed(_) => &EMPTY,
        }
    }

    /// The buffered writes in `range`, in key order.
    fn in_range(&mut self, range: &KeyRange) -> Vec<(Vec<u8>, Write)> {
        if self.is_empty() {
            return Vec::new();
        }
        let m = self.ordered();
        m.range::<[u8], _>(range.as_slices()).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Whether any buffered write falls in `range`.
    fn touches(&mut self, range: &KeyRange) -> bool {
        !self.is_empty() && self.ordered().range::<[u8], _>(range.as_slices()).next().is_some()
    }

    /// Every write, in key order (the order the store applies them best in).
    fn into_sorted(self) -> Vec<(Vec<u8>, Write)> {
        match self {
            Writes::Ordered(m) => m.into_iter().collect(),
            Writes::Hashed(m) => {
                let mut v: Vec<_> = m.into_iter().collect();
                v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                v
            }
        }
    }
}

/// A snapshot plus a write buffer — or, for a direct write, the storage's write transaction
/// itself (see [`Txn::direct`]).
pub struct Txn<'e> {
    snap: Box<dyn Snapshot + 'e>,
    /// A direct write: reads and writes go straight to the storage's write transaction, in
    /// which nothing changes underneath (no buffer, no checks); `snap` is then unused.
    direct: Option<Box<DirectState<'e>>>,
    writes: RefCell<Writes>,
    checks: RefCell<HashMap<Vec<u8>, Option<Versionstamp>>>,
    /// Whether reads add checks (write statements) or not (queries).
    track: Cell<bool>,
    /// Ranges scanned while tracking: checked at commit for keys that appeared (phantoms).
    scanned: RefCell<Vec<Scanned>>,
    /// Whether tracked scans record their ranges (off for index backfill, which needs no
    /// phantom protection: concurrent writers maintain a building index themselves).
    track_ranges: Cell<bool>,
    /// Record patches, applied at commit after the writes (`Mutation::Patch`).
    patches: RefCell<Vec<(Vec<u8>, Vec<FieldPatch>)>>,
}

/// A direct write's transaction and how it went.
struct DirectState<'e> {
    view: &'e (dyn Direct + 'e),
    /// The first write the store refused (reported after the statement).
    failed: RefCell<Option<kvm_storage::Error>>,
    /// The statement needed what a direct write does not do (a range read, a patch): it
    /// runs again the ordinary way.
    unsupported: Cell<bool>,
    wrote: Cell<bool>,
}

/// The snapshot a direct write does not have: every read through it is an error.
struct NoSnapshot;

impl Snapshot for NoSnapshot {
    fn versionstamp(&self) -> Versionstamp {
        Versionstamp::ZERO
    }
    fn now_millis(&self) -> u64 {
        0
    }
    fn get<'a>(&'a self, _: &[u8]) -> kvm_storage::Result<Option<kvm_storage::Entry<'a>>> {
        Err(kvm_storage::Error::Backend("a direct write read past its transaction".into()))
    }
    fn scan<'a>(
        &'a self,
        _: &KeyRange,
        _: ScanOptions,
    ) -> kvm_storage::Result<kvm_storage::ScanIter<'a>> {
        Err(kvm_storage::Error::Backend("a direct write read past its transaction".into()))
    }
}

/// A value as a read finds it: bytes, versionstamp, expiry.
type Found<'v> = Option<(&'v [u8], Versionstamp, Option<u64>)>;

/// How far a tracked scan got: its range, direction, the last key it read and whether it
/// reached the end.
struct Scanned {
    range: KeyRange,
    reverse: bool,
    last: Option<Vec<u8>>,
    complete: bool,
}

impl Scanned {
    /// The part of the range the scan actually covered.
    fn covered(&self) -> Option<KeyRange> {
        if self.complete {
            return Some(self.range.clone());
        }
        let last = self.last.clone()?;
        Some(if self.reverse {
            KeyRange { start: Bound::Included(last), end: self.range.end.clone() }
        } else {
            KeyRange { start: self.range.start.clone(), end: Bound::Included(last) }
        })
    }
}

impl<'e> Txn<'e> {
    pub fn new(engine: &'e dyn Engine) -> Result<Txn<'e>> {
        Ok(Txn::over(engine.snapshot()?, None))
    }

    /// [`Txn::new`], telling the engine which keys will be read first
    /// (`Engine::snapshot_with`: one round trip fewer on a remote backend).
    pub fn new_with(engine: &'e dyn Engine, first_reads: &[&[u8]]) -> Result<Txn<'e>> {
        Ok(Txn::over(engine.snapshot_with(first_reads)?, None))
    }

    /// A transaction over the storage's write transaction `view` (a direct write: see
    /// `kvm_storage::Engine::write_direct`). It opens no snapshot: every read goes to
    /// `view` (a read the direct mode does not route there fails, never reads nothing).
    pub fn direct(view: &'e (dyn Direct + 'e)) -> Txn<'e> {
        let direct = DirectState {
            view,
            failed: RefCell::new(None),
            unsupported: Cell::new(false),
            wrote: Cell::new(false),
        };
        Txn::over(Box::new(NoSnapshot), Some(Box::new(direct)))
    }

    fn over(snap: Box<dyn Snapshot + 'e>, direct: Option<Box<DirectState<'e>>>) -> Txn<'e> {
        Txn {
            snap,
            direct,
            writes: RefCell::default(),
            checks: RefCell::default(),
            track: Cell::new(false),
            scanned: RefCell::default(),
            track_ranges: Cell::new(true),
            patches: RefCell::default(),
        }
    }

    /// For a direct write: the first write the store refused, and whether the statement
    /// needed what a direct write does not do (then it must run the ordinary way).
    pub fn direct_outcome(&self) -> (Option<kvm_storage::Error>, bool) {
        match &self.direct {
            Some(d) => (d.failed.borrow_mut().take(), d.unsupported.get()),
            None => (None, false),
        }
    }

    /// For a direct write: whether a write was refused or the ordinary road is needed (the
    /// write must stop; [`Txn::direct_outcome`] says why).
    pub fn direct_stopped(&self) -> bool {
        self.direct.as_ref().is_some_and(|d| d.failed.borrow().is_some() || d.unsupported.get())
    }

    /// What a direct write cannot do: marked, and an error that stops the statement.
    fn not_direct(d: &DirectState<'_>) -> crate::error::Error {
        d.unsupported.set(true);
        kvm_storage::Error::Aborted.into()
    }

    /// `f` of the value at `key` as the snapshot (or the direct transaction) holds it.
    fn fetch<R>(&self, key: &[u8], f: impl FnOnce(Found<'_>) -> R) -> Result<R> {
        match &self.direct {
            Some(d) => {
                let e = d.view.get(key)?;
                Ok(f(e.as_ref().map(|e| (&e.value[..], e.versionstamp, e.expire_at))))
            }
            None => {
                let e = self.snap.get(key)?;
                Ok(f(e.as_ref().map(|e| (e.value(), e.versionstamp(), e.expire_at()))))
            }
        }
    }

    /// True when reads are network round trips (`Snapshot::batch_reads`): read ahead in
    /// batches.
    pub fn batch_reads(&self) -> bool {
        self.direct.is_none() && self.snap.batch_reads()
    }

    /// The versionstamp of the commit the snapshot reads.
    pub fn read_versionstamp(&self) -> Versionstamp {
        match &self.direct {
            Some(d) => d.view.read_versionstamp(),
            None => self.snap.versionstamp(),
        }
    }

    pub fn track_reads(&self, on: bool) {
        self.track.set(on);
    }

    /// Whether tracked scans also guard their ranges against phantoms (default on).
    pub fn track_ranges(&self, on: bool) {
        self.track_ranges.set(on);
    }

    /// Like [`Txn::scan`], but the range is not guarded against phantoms: each entry read
    /// is still checked at commit. For readers to whom an entry committed meanwhile by
    /// someone else is as good as one committed just after them.
    pub fn scan_unguarded<'a>(&'a self, range: &KeyRange, reverse: bool) -> Result<KvIter<'a>> {
        let guard = self.track_ranges.replace(false);
        let scan = self.scan(range, reverse);
        self.track_ranges.set(guard);
        scan
    }

    /// The time expiry is judged at, in milliseconds.
    pub fn now_millis(&self) -> u64 {
        match &self.direct {
            Some(d) => d.view.now_millis(),
            None => self.snap.now_millis(),
        }
    }

    /// Adds a check that `key` still holds what the snapshot holds.
    pub fn check_unchanged(&self, key: &[u8]) -> Result<()> {
        if self.direct.is_some() {
            return Ok(()); // nothing changes underneath a direct write
        }
        let vs = self.snap.get(key)?.map(|e| e.versionstamp());
        self.checks.borrow_mut().entry(key.to_vec()).or_insert(vs);
        Ok(())
    }

    /// The value at `key` (own writes first), with a check at commit that the snapshot's
    /// value is still there when it came from the snapshot — tracked or not: one read where
    /// `get` then `check_unchanged` made two.
    pub fn get_checked(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.direct.is_some() {
            return self.fetch(key, |e| e.map(|(v, _, _)| v.to_vec()));
        }
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.as_ref().map(|(v, _)| v.clone()));
        }
        let entry = self.snap.get(key)?;
        self.checks
            .borrow_mut()
            .entry(key.to_vec())
            .or_insert(entry.as_ref().map(|e| e.versionstamp()));
        Ok(entry.map(|e| e.value().to_vec()))
    }

    /// Adds a check that `key` still holds what the snapshot holds, which the caller read
    /// as `vs` (no second read).
    pub fn check_unchanged_as(&self, key: &[u8], vs: Option<Versionstamp>) {
        if self.direct.is_some() {
            return;
        }
        self.checks.borrow_mut().entry(key.to_vec()).or_insert(vs);
    }

    fn note(&self, key: &[u8], vs: Option<Versionstamp>) {
        if self.track.get() && self.direct.is_none() && !self.writes.borrow().contains_key(key) {
            self.checks.borrow_mut().entry(key.to_vec()).or_insert(vs);
        }
    }

    /// The value at `key`, own writes first.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.direct.is_some() {
            return self.fetch(key, |e| e.map(|(v, _, _)| v.to_vec()));
        }
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.as_ref().map(|(v, _)| v.clone()));
        }
        let entry = self.snap.get(key)?;
        self.note(key, entry.as_ref().map(|e| e.versionstamp()));
        Ok(entry.map(|e| e.value().to_vec()))
    }

    /// `read` applied to the value at `key` (own writes first), read in place: no copy.
    pub fn get_with<R>(&self, key: &[u8], read: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        if self.direct.is_some() {
            return self.fetch(key, |e| e.map(|(v, _, _)| read(v)));
        }
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.as_ref().map(|(v, _)| read(v)));
        }
        let entry = self.snap.get(key)?;
        self.note(key, entry.as_ref().map(|e| e.versionstamp()));
        Ok(entry.map(|e| read(e.value())))
    }

    /// The values at several keys (own writes first), the snapshot's read in one request.
    pub fn get_many<'a>(&'a self, keys: &[Vec<u8>]) -> Result<Vec<Option<Cow<'a, [u8]>>>> {
        if self.direct.is_some() {
            return keys
                .iter()
                .map(|k| self.fetch(k, |e| e.map(|(v, _, _)| Cow::Owned(v.to_vec()))))
                .collect();
        }
        let mut out: Vec<Option<Cow<'a, [u8]>>> = vec![None; keys.len()];
        let mut missing: Vec<usize> = Vec::new();
        {
            let writes = self.writes.borrow();
            for (i, k) in keys.iter().enumerate() {
                match writes.get(k) {
                    Some(w) => out[i] = w.as_ref().map(|(v, _)| Cow::Owned(v.clone())),
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let asked: Vec<&[u8]> = missing.iter().map(|&i| keys[i].as_slice()).collect();
        let found = self.snap.get_many(&asked)?;
        for (&i, entry) in missing.iter().zip(found) {
            self.note(&keys[i], entry.as_ref().map(|e| e.versionstamp()));
            out[i] = entry.map(|e| Cow::Borrowed(e.value()));
        }
        Ok(out)
    }

    /// The entries of several ranges (own writes merged in), each in key order (or reverse)
    /// and up to `limit` of them; ranges without buffered writes are read from the snapshot
    /// in one request.
    pub fn scan_many(
        &self,
        ranges: &[KeyRange],
        reverse: bool,
        limit: Option<usize>,
    ) -> Result<Vec<KvList>> {
        if let Some(d) = &self.direct {
            return Err(Self::not_direct(d));
        }
        let mut out: Vec<KvList> = vec![Vec::new(); ranges.len()];
        let mut batched: Vec<usize> = Vec::new();
        for (i, r) in ranges.iter().enumerate() {
            let touched = self.writes.borrow_mut().touches(r);
            if touched {
                // Own writes may add or hide entries: merge them the ordinary way.
                let it = self
                    .scan(r, reverse)?
                    .map(|r| r.map(|(k, v)| (k.into_owned(), v.into_owned())));
                out[i] = match limit {
                    Some(n) => it.take(n).collect::<Result<_>>()?,
                    None => it.collect::<Result<_>>()?,
                };
            } else {
                batched.push(i);
            }
        }
        if batched.is_empty() {
            return Ok(out);
        }
        let asked: Vec<KeyRange> = batched.iter().map(|&i| ranges[i].clone()).collect();
        let mut opts = if reverse { ScanOptions::reverse() } else { ScanOptions::forward() };
        opts.limit = limit;
        let found = self.snap.scan_many(&asked, opts)?;
        let tracking = self.track.get() && self.track_ranges.get();
        for ((&i, range), rows) in batched.iter().zip(asked).zip(found) {
            let complete = limit.is_none_or(|n| rows.len() < n);
            let mut last = None;
            for (k, e) in &rows {
                self.note(k, Some(e.versionstamp()));
                last = Some(k.to_vec());
            }
            if tracking {
                self.scanned.borrow_mut().push(Scanned { range, reverse, last, complete });
            }
            out[i] = rows.into_iter().map(|(k, e)| (k.to_vec(), e.value().to_vec())).collect();
        }
        Ok(out)
    }

    /// The entries in `range`, own writes merged in, in key order (or reverse).
    pub fn scan<'a>(&'a self, range: &KeyRange, reverse: bool) -> Result<KvIter<'a>> {
        if let Some(d) = &self.direct {
            return Err(Self::not_direct(d));
        }
        let mut buffered = self.writes.borrow_mut().in_range(range);
        if reverse {
            buffered.reverse();
        }
        let opts = if reverse { ScanOptions::reverse() } else { ScanOptions::forward() };
        if buffered.is_empty() && !self.track.get() {
            // A query's read (nothing to check at commit, nothing of its own to merge in):
            // the snapshot's entries as they are, borrowed.
            return Ok(Box::new(self.snap.scan(range, opts)?.map(|r| {
                r.map(|(k, e)| (Cow::Borrowed(k), Cow::Borrowed(e.value()))).map_err(Into::into)
            })));
        }
        let slot = (self.track.get() && self.track_ranges.get()).then(|| {
            let mut scanned = self.scanned.borrow_mut();
            scanned.push(Scanned { range: range.clone(), reverse, last: None, complete: false });
            scanned.len() - 1
        });
        let inner = self
            .snap
            .scan(range, opts)?
            .map(move |r| {
                r.map(|(k, e)| {
                    self.note(k, Some(e.versionstamp()));
                    if let Some(i) = slot {
                        if let Some(s) = self.scanned.borrow_mut().get_mut(i) {
                            s.last = Some(k.to_vec());
                        }
                    }
                    (Cow::Borrowed(k), Cow::Borrowed(e.value()))
                })
                .map_err(Into::into)
            })
            .chain(std::iter::from_fn(move || {
                // The snapshot's scan is exhausted: the whole range was read.
                if let Some(i) = slot {
                    if let Some(s) = self.scanned.borrow_mut().get_mut(i) {
                        s.complete = true;
                    }
                }
                None
            }));
        Ok(Box::new(Merge {
            inner: inner.peekable(),
            buffered: buffered.into_iter().peekable(),
            reverse,
        }))
    }

    pub fn set(&self, key: Vec<u8>, value: Vec<u8>, expire_at: Option<u64>) {
        if let Some(d) = &self.direct {
            return Self::direct_write(d, |v| v.set(&key, &value, expire_at));
        }
        self.writes.borrow_mut().insert(key, Some((value, expire_at)));
    }

    pub fn delete(&self, key: Vec<u8>) {
        if let Some(d) = &self.direct {
            return Self::direct_write(d, |v| v.delete(&key));
        }
        self.writes.borrow_mut().insert(key, None);
    }

    /// A write straight into the direct transaction; the first refusal is kept (and later
    /// writes skipped) for [`Txn::direct_outcome`].
    fn direct_write(
        d: &DirectState<'_>,
        write: impl FnOnce(&dyn Direct) -> kvm_storage::Result<()>,
    ) {
        if d.failed.borrow().is_some() {
            return;
        }
        d.wrote.set(true);
        if let Err(e) = write(d.view) {
            *d.failed.borrow_mut() = Some(e);
        }
    }

    /// Patches the record at `key` at commit, against its latest state (see
    /// `Mutation::Patch`). A patch is not read back by this transaction's reads: only a
    /// statement that reads nothing after it may write one.
    pub fn patch(&self, key: Vec<u8>, ops: Vec<FieldPatch>) {
        if let Some(d) = &self.direct {
            d.unsupported.set(true);
            *d.failed.borrow_mut() = Some(kvm_storage::Error::Aborted);
            return;
        }
        self.patches.borrow_mut().push((key, ops));
    }

    /// The value at `key` in the snapshot, without a check at commit (what a patch needs to
    /// know: whether its record exists, and in which form).
    pub fn peek(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.fetch(key, |e| e.map(|(v, _, _)| v.to_vec()))
    }

    /// Whether anything was written.
    pub fn is_dirty(&self) -> bool {
        if let Some(d) = &self.direct {
            return d.wrote.get();
        }
        !self.writes.borrow().is_empty() || !self.patches.borrow().is_empty()
    }

    /// The batch this transaction commits, taking its checks and writes (no copies: a
    /// large statement's buffer is not held twice). The snapshot closes with it.
    pub fn into_batch(self) -> AtomicBatch {
        let at = self.snap.versionstamp();
        drop(self.snap);
        let mut batch = AtomicBatch::new();
        let mut checks: Vec<_> = self.checks.into_inner().into_iter().collect();
        // In key order: the commit re-reads them with locality.
        checks.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        for (k, vs) in checks {
            batch.checks.push(kvm_storage::Check { key: k, versionstamp: vs });
        }
        for s in self.scanned.into_inner() {
            if let Some(r) = s.covered() {
                batch = batch.check_range(r, at);
            }
        }
        for (k, w) in self.writes.into_inner().into_sorted() {
            batch.mutations.push(match w {
                Some((value, expire_at)) => Mutation::Set { key: k, value, expire_at },
                None => Mutation::Delete { key: k },
            });
        }
        for (key, ops) in self.patches.into_inner() {
            batch.mutations.push(Mutation::Patch { key, ops });
        }
        batch
    }
}

/// Merges the snapshot's rows with the buffered writes (which win, and may delete).
struct Merge<'a, I: Iterator<Item = Result<Kv<'a>>>, B: Iterator<Item = (Vec<u8>, Write)>> {
    inner: std::iter::Peekable<I>,
    buffered: std::iter::Peekable<B>,
    reverse: bool,
}

impl<'a, I, B> Iterator for Merge<'a, I, B>
where
    I: Iterator<Item = Result<Kv<'a>>>,
    B: Iterator<Item = (Vec<u8>, Write)>,
{
    type Item = Result<Kv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_buffer = match (self.inner.peek(), self.buffered.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => false,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((k, _))), Some((bk, _))) => {
                    if k.as_ref() == bk.as_slice() {
                        self.inner.next();
                        true
                    } else {
                        (bk.as_slice() < k.as_ref()) != self.reverse
                    }
                }
            };
            if take_buffer {
                match self.buffered.next() {
                    Some((k, Some((v, _)))) => return Some(Ok((Cow::Owned(k), Cow::Owned(v)))),
                    Some((_, None)) => continue,
                    None => return None,
                }
            }
            return self.inner.next();
        }
    }
}

/// `range` minus `hole` (both in key order), as at most two ranges.
pub fn subtract(range: KeyRange, hole: &KeyRange) -> Vec<KeyRange> {
    let mut out = Vec::new();
    let left = KeyRange { start: range.start.clone(), end: flip(&hole.start) };
    let right = KeyRange { start: flip(&hole.end), end: range.end.clone() };
    for r in [left, right] {
        let r = intersect(&r, &range);
        if !r.is_empty() {
            out.push(r);
        }
    }
    out
}

fn flip(b: &Bound<Vec<u8>>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Excluded(k.clone()),
        Bound::Excluded(k) => Bound::Included(k.clone()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn intersect(a: &KeyRange, b: &KeyRange) -> KeyRange {
    let key = |x: &Bound<Vec<u8>>| match x {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
        Bound::Unbounded => None,
    };
    let start = match (key(&a.start), key(&b.start)) {
        (None, _) => b.start.clone(),
        (_, None) => a.start.clone(),
        (Some(x), Some(y)) => {
            if x >= y {
                a.start.clone()
            } else {
                b.start.clone()
            }
        }
    };
    let end = match (key(&a.end), key(&b.end)) {
        (None, _) => b.end.clone(),
        (_, None) => a.end.clone(),
        (Some(x), Some(y)) => {
            if x <= y {
                a.end.clone()
            } else {
                b.end.clone()
            }
        }
    };
    KeyRange { start, end }
}

impl Txn<'_> {
    /// The expiry of the value at `key` (own writes first): `None` when it has none or is
    /// absent. Updates use it to keep a record's time to live.
    pub fn expire_at(&self, key: &[u8]) -> Result<Option<u64>> {
        if let Some(w) = self.writes.borrow().get(key) {
            return Ok(w.as_ref().and_then(|(_, e)| *e));
        }
        self.fetch(key, |e| e.and_then(|(_, _, at)| at))
    }

    /// The versionstamp the snapshot holds at `key` (own writes ignored).
    pub fn snapshot_versionstamp(&self, key: &[u8]) -> Result<Option<Versionstamp>> {
        self.fetch(key, |e| e.map(|(_, vs, _)| vs))
    }
}
