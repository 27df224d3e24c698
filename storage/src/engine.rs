//! The storage engine trait: an ordered byte key space with snapshot reads and atomic,
//! check-guarded commits. Every backend (memory, LMDB, later etcd) implements it, and the
//! conformance suite (`storage/tests/conformance`) holds each of them to this contract:
//!
//! - **Snapshots.** Every read of one [`Snapshot`] sees the same committed state, however
//!   long it is held and whatever commits meanwhile. Keys are ordered by unsigned bytes.
//! - **Atomic commits.** [`Engine::commit`] applies all of a batch's mutations or none. First
//!   every [`Check`] is evaluated against the latest committed state; if one fails the commit
//!   returns [`Error::Conflict`] and writes nothing. A mutation that fails (a `sum` on a value
//!   that is not a counter, a key that is too long) also fails the whole commit.
//! - **Versionstamps.** Each successful commit gets a [`Versionstamp`] greater than every one
//!   before it (across threads and processes sharing the database); every value it wrote
//!   carries it.
//! - **Expiry.** A value written with `expire_at` is invisible to every read, check and
//!   counter from that millisecond on (by the engine's clock); [`Engine::sweep_expired`]
//!   deletes it later. `sum`/`min`/`max` keep the expiry of the value they change.
//! - **Durability.** Once `commit` returns `Ok`, the commit survives a crash of the process
//!   (and, with [`Durability::Full`], of the machine).
//! - **Change feed.** Each commit that changed something records its keys under its
//!   versionstamp; [`Engine::changes_since`] reads them in order, from this or another process.

use std::ops::Bound;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::feed::ChangeSet;
use crate::versionstamp::Versionstamp;

/// The longest key any backend accepts, in bytes (LMDB's limit, held on every backend so that
/// data moves between them).
pub const MAX_KEY_LEN: usize = 511;

/// A key and its entry, both borrowed from a snapshot.
pub type KvRef<'a> = (&'a [u8], Entry<'a>);

/// A scan's rows, in key order (or reverse order), lazily read.
pub type ScanIter<'a> = Box<dyn Iterator<Item = Result<KvRef<'a>>> + 'a>;

/// A half-open or closed range of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub start: Bound<Vec<u8>>,
    pub end: Bound<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        KeyRange { start: Bound::Unbounded, end: Bound::Unbounded }
    }

    /// Every key that starts with `prefix` (the prefix itself included).
    pub fn prefix(prefix: &[u8]) -> Self {
        let end = match crate::tuple::prefix_end(prefix) {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        KeyRange { start: Bound::Included(prefix.to_vec()), end }
    }

    /// Keys from `start` (included) to `end` (excluded).
    pub fn between(start: &[u8], end: &[u8]) -> Self {
        KeyRange { start: Bound::Included(start.to_vec()), end: Bound::Excluded(end.to_vec()) }
    }

    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let after_start = match &self.start {
            Bound::Included(s) => key >= s.as_slice(),
            Bound::Excluded(s) => key > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &self.end {
            Bound::Included(e) => key <= e.as_slice(),
            Bound::Excluded(e) => key < e.as_slice(),
            Bound::Unbounded => true,
        };
        after_start && before_end
    }

    /// The bounds as borrowed slices (what the backends' range calls take).
    pub fn as_slices(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (self.start.as_ref().map(Vec::as_slice), self.end.as_ref().map(Vec::as_slice))
    }

    /// The same range for keys of at most `max` bytes, with bounds no longer than `max`
    /// (LMDB cannot seek to a longer key). A longer start `s` admits exactly the keys above
    /// `s[..max]`; a longer end admits exactly the keys up to and including `s[..max]`.
    pub fn clamped(&self, max: usize) -> KeyRange {
        let start = match &self.start {
            Bound::Included(s) | Bound::Excluded(s) if s.len() > max => {
                Bound::Excluded(s[..max].to_vec())
            }
            b => b.clone(),
        };
        let end = match &self.end {
            Bound::Included(e) | Bound::Excluded(e) if e.len() > max => {
                Bound::Included(e[..max].to_vec())
            }
            b => b.clone(),
        };
        KeyRange { start, end }
    }

    /// True when no key can lie in the range (start after end), which backends answer with
    /// an empty scan instead of an error.
    pub fn is_empty(&self) -> bool {
        match (&self.start, &self.end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s), Bound::Excluded(e))
            | (Bound::Excluded(s), Bound::Included(e))
            | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
            _ => false,
        }
    }
}

/// How a scan walks its range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Walk from the end of the range to its start.
    pub reverse: bool,
    /// Stop after this many visible rows.
    pub limit: Option<usize>,
}

impl ScanOptions {
    pub fn forward() -> Self {
        ScanOptions::default()
    }
    pub fn reverse() -> Self {
        ScanOptions { reverse: true, limit: None }
    }
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A consistent, read-only view of the database at one commit.
pub trait Snapshot: Send {
    /// The versionstamp of the last commit this snapshot sees.
    fn versionstamp(&self) -> Versionstamp;

    /// The time (ms since the epoch) at which expiry is judged for this snapshot.
    fn now_millis(&self) -> u64;

    /// True where every read is a network round trip (etcd): the engine then reads ahead
    /// in batches — a few keys more than a `LIMIT` needs — to make fewer requests. Local
    /// backends read exactly what is consumed.
    fn batch_reads(&self) -> bool {
        false
    }

    /// The live entry at `key`, if any.
    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>>;

    /// The live entries at several keys, in the order asked.
    fn get_many<'a>(&'a self, keys: &[&[u8]]) -> Result<Vec<Option<Entry<'a>>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// The live entries in `range`, in key order (or reverse), up to `opts.limit` of them.
    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>>;

    /// The live entries of several ranges, each in key order (or reverse) and up to
    /// `opts.limit` of them, read as one request: the engine loads related records of a whole
    /// batch of rows with one call (one round trip on a remote backend), never one per row.
    fn scan_many<'a>(
        &'a self,
        ranges: &[KeyRange],
        opts: ScanOptions,
    ) -> Result<Vec<Vec<KvRef<'a>>>> {
        ranges.iter().map(|r| self.scan(r, opts)?.collect()).collect()
    }
}

/// A guard on a commit: the key must hold a live value with this versionstamp (`Some`), or
/// hold no live value at all (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub key: Vec<u8>,
    pub versionstamp: Option<Versionstamp>,
}

/// A guard on a whole range (serializable scans): no key in `range` holds a live value
/// written after versionstamp `after` (the snapshot the range was read at). Together with
/// checks on the keys the scan read (which catch deletes and updates), it proves the range
/// reads the same at commit as it did — no phantom appeared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeCheck {
    pub range: KeyRange,
    pub after: Versionstamp,
}

/// A backend's per-commit limits: operations (checks, range checks and mutations) and
/// bytes (keys plus values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    pub max_ops: usize,
    pub max_bytes: usize,
}

impl AtomicBatch {
    /// How many operations (checks, range checks, mutations) and bytes (keys and values)
    /// the batch holds, as commit limits count them.
    pub fn size(&self) -> (usize, usize) {
        let ops = self.checks.len() + self.range_checks.len() + self.mutations.len();
        let bytes = self.checks.iter().map(|c| c.key.len()).sum::<usize>()
            + self
                .mutations
                .iter()
                .map(|m| {
                    m.key().len()
                        + match m {
                            Mutation::Set { value, .. } => value.len(),
                            Mutation::Patch { ops, .. } => ops
                                .iter()
                                .map(|o| match &o.op {
                                    PatchOp::Set(v) => 4 + v.len(),
                                    _ => 20,
                                })
                                .sum(),
                            _ => 8,
                        }
                })
                .sum::<usize>();
        (ops, bytes)
    }
}

/// One change a commit makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Store `value`, visible until `expire_at` (ms since the epoch) when given.
    Set { key: Vec<u8>, value: Vec<u8>, expire_at: Option<u64> },
    /// Remove the key (a no-op when it is absent).
    Delete { key: Vec<u8> },
    /// Add `delta` to the u64 counter at `key` (0 when absent); the commit fails when the
    /// result leaves `0..=u64::MAX` or the stored value is not a counter.
    Sum { key: Vec<u8>, delta: i64 },
    /// Store the smaller of the counter and `value` (`value` when absent).
    Min { key: Vec<u8>, value: u64 },
    /// Store the larger of the counter and `value` (`value` when absent).
    Max { key: Vec<u8>, value: u64 },
    /// Change fields of the model record at `key` (`Value::encode_record`) as the commit
    /// finds it — the latest state, not a snapshot — keeping its expiry: concurrent patches
    /// of one record never conflict (an increment is applied, not a value computed from an
    /// earlier read). A no-op when the key is absent (the record was deleted first). A
    /// patch the record's value refuses (a counter leaving its range, a field of another
    /// type, a value that is not a record) fails the commit: [`crate::Error::PatchRefused`].
    Patch { key: Vec<u8>, ops: Vec<FieldPatch> },
}

/// One field change of a [`Mutation::Patch`]: the field's id in the record, and the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPatch {
    pub field: u32,
    pub op: PatchOp,
}

/// How a [`Mutation::Patch`] changes a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchOp {
    /// Adds `delta` to an `Int` field (absent: 0); the result must fit in an i64.
    AddInt(i128),
    /// Adds `delta` to a `Counter` field (absent: 0); the result must stay in
    /// `0..=u64::MAX`.
    AddCounter(i128),
    /// Keeps the smaller of an `Int` field and the operand (absent: the operand).
    MinInt(i64),
    /// Keeps the larger of an `Int` field and the operand (absent: the operand).
    MaxInt(i64),
    /// Keeps the smaller of a `Counter` field and the operand (absent: the operand).
    MinCounter(u64),
    /// Keeps the larger of a `Counter` field and the operand (absent: the operand).
    MaxCounter(u64),
    /// Sets the field to a value, given encoded (`Value::encode`).
    Set(Vec<u8>),
}

impl Mutation {
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Set { key, .. }
            | Mutation::Delete { key }
            | Mutation::Sum { key, .. }
            | Mutation::Min { key, .. }
            | Mutation::Max { key, .. }
            | Mutation::Patch { key, .. } => key,
        }
    }
}

/// The checks and mutations of one atomic commit, built with chained calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AtomicBatch {
    pub checks: Vec<Check>,
    /// Range guards, evaluated after `checks` against the latest state.
    pub range_checks: Vec<RangeCheck>,
    pub mutations: Vec<Mutation>,
}

impl AtomicBatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` to still hold the value written at `vs` (`None`: to hold nothing).
    pub fn check(mut self, key: &[u8], vs: Option<Versionstamp>) -> Self {
        self.checks.push(Check { key: key.to_vec(), versionstamp: vs });
        self
    }

    /// Requires that no key in `range` was written (with a value still live) after `after`;
    /// a failure is `Error::Conflict` naming the first such key.
    pub fn check_range(mut self, range: KeyRange, after: Versionstamp) -> Self {
        self.range_checks.push(RangeCheck { range, after });
        self
    }

    pub fn set(mut self, key: &[u8], value: &[u8]) -> Self {
        self.mutations.push(Mutation::Set {
            key: key.to_vec(),
            value: value.to_vec(),
            expire_at: None,
        });
        self
    }

    pub fn set_with_expiry(mut self, key: &[u8], value: &[u8], expire_at: u64) -> Self {
        self.mutations.push(Mutation::Set {
            key: key.to_vec(),
            value: value.to_vec(),
            expire_at: Some(expire_at),
        });
        self
    }

    pub fn delete(mut self, key: &[u8]) -> Self {
        self.mutations.push(Mutation::Delete { key: key.to_vec() });
        self
    }

    pub fn sum(mut self, key: &[u8], delta: i64) -> Self {
        self.mutations.push(Mutation::Sum { key: key.to_vec(), delta });
        self
    }

    pub fn patch(mut self, key: &[u8], ops: Vec<FieldPatch>) -> Self {
        self.mutations.push(Mutation::Patch { key: key.to_vec(), ops });
        self
    }

    pub fn min(mut self, key: &[u8], value: u64) -> Self {
        self.mutations.push(Mutation::Min { key: key.to_vec(), value });
        self
    }

    pub fn max(mut self, key: &[u8], value: u64) -> Self {
        self.mutations.push(Mutation::Max { key: key.to_vec(), value });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.checks.is_empty() && self.range_checks.is_empty() && self.mutations.is_empty()
    }
}

/// How hard a commit works to survive a crash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Flushed to disk before `commit` returns: survives power loss.
    #[default]
    Full,
    /// Left to the OS to flush: survives a crash of the process, not of the machine.
    Process,
}

/// A write transaction a caller writes into as it goes ([`Engine::write_direct`]): a bulk
/// insert checks its keys absent and writes them with no buffer of its own, no copy into a
/// batch and no second read at commit. Reads see the transaction's own writes and, since
/// the writer is held, nothing changes underneath them. Errors other than from the store
/// itself are the caller's to keep; a failed write leaves nothing. (Methods take `&self`:
/// a transaction borrowing the view stays covariant in its lifetime.)
pub trait Direct {
    /// The versionstamp of the latest commit before this one.
    fn read_versionstamp(&self) -> Versionstamp;
    /// The time expiry is judged at, in milliseconds.
    fn now_millis(&self) -> u64;
    /// The live value at `key` (own writes included), with its versionstamp and expiry.
    fn get(&self, key: &[u8]) -> Result<Option<DirectEntry>>;
    /// Writes `value` at `key` (checked like a batch's keys).
    fn set(&self, key: &[u8], value: &[u8], expire_at: Option<u64>) -> Result<()>;
    /// Deletes `key`.
    fn delete(&self, key: &[u8]) -> Result<()>;
}

/// A value read through [`Direct::get`], copied out of the transaction (a later write may
/// move the page it was on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectEntry {
    pub value: Vec<u8>,
    pub versionstamp: Versionstamp,
    pub expire_at: Option<u64>,
}

impl DirectEntry {
    /// The stored entry `raw` (see [`crate::entry`]), copied out when it is live at `now`.
    pub(crate) fn live(raw: &[u8], now: u64) -> Result<Option<DirectEntry>> {
        let e = crate::entry::decode(raw)?;
        Ok(e.is_live(now).then(|| DirectEntry {
            value: e.value().to_vec(),
            versionstamp: e.versionstamp(),
            expire_at: e.expire_at(),
        }))
    }
}

/// An ordered key-value store with snapshots, atomic checked commits and a change feed.
pub trait Engine: Send + Sync {
    /// A short name of the backend (`memory`, `lmdb`, ...).
    fn name(&self) -> &'static str;

    /// A consistent read view at the latest commit.
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>>;

    /// [`Engine::snapshot`], told the keys the caller will read first (the engine: the
    /// catalog's version): a remote backend reads them with the request that opens the
    /// snapshot, so a statement starts with one round trip, not two. A hint only.
    fn snapshot_with(&self, first_reads: &[&[u8]]) -> Result<Box<dyn Snapshot + '_>> {
        let _ = first_reads;
        self.snapshot()
    }

    /// Applies the batch atomically, or returns [`Error::Conflict`] (or another error) and
    /// writes nothing.
    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp>;

    /// The change sets of commits after `after`, oldest first, at most `limit` of them.
    /// [`Error::FeedTruncated`] when retention has already dropped some of them.
    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>>;

    /// Deletes up to `limit` values whose expiry has passed, in one commit; returns how many.
    fn sweep_expired(&self, limit: usize) -> Result<usize>;

    /// The most one commit may hold on this backend (etcd: 128 operations and 1.5 MiB per
    /// transaction); `None` (memory, LMDB) is unlimited. The engine refuses a statement or
    /// transaction whose batch exceeds it, before committing, rather than splitting it.
    fn commit_limits(&self) -> Option<CommitLimits> {
        None
    }

    /// Writes a consistent copy of the database, as of one snapshot, to a new LMDB file at
    /// `path` (which must not exist, not even as a dangling symbolic link): a backup that
    /// `LmdbEngine::open` opens.
    fn backup(&self, path: &std::path::Path) -> Result<()> {
        let _ = path;
        Err(Error::Backend(format!("the {} backend cannot make backups", self.name())))
    }

    /// Waits for, and holds until the returned guard drops, this database's writer turn
    /// across processes: writers that keep conflicting on the same keys take turns instead
    /// of starving each other. In-process turn-taking is the engine's (one turn per process
    /// first, then this); `None` where the backend has no other processes (memory).
    fn writer_turn(&self) -> Result<Option<WriterTurn<'_>>> {
        Ok(None)
    }

    /// Waits while another process holds the writer turn: a fresh write queues behind the
    /// writer whose turn it is instead of racing it (a writer that has just committed reads
    /// the newest state first, and would otherwise win every race against the one taking
    /// turns).
    fn await_writer_turn(&self) -> Result<()> {
        Ok(())
    }

    /// Runs `write` inside one write transaction of its own (no other commit meanwhile) and
    /// commits what it wrote as one commit, with its change-feed entry; when `write` fails
    /// nothing is kept (its own errors are [`Error::Aborted`] — the caller keeps the
    /// reason). `write` may be called again from the start (LMDB: the map had to grow;
    /// `bytes` is what the caller expects to write, to grow ahead). `Ok(None)` when the
    /// backend has no such path (the caller then buffers and commits a batch).
    fn write_direct(
        &self,
        bytes: usize,
        write: &mut dyn FnMut(&dyn Direct) -> Result<()>,
    ) -> Result<Option<Versionstamp>> {
        let _ = (bytes, write);
        Ok(None)
    }

    /// Walks the backend's own storage structures (LMDB: every page of the latest
    /// snapshot, bounds-checked in Rust) and returns how many units it checked, or `None`
    /// where there is nothing to walk (memory). Damage is `Error::Corrupt`, never a crash.
    fn check_pages(&self) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// A held writer turn ([`Engine::writer_turn`]): dropping it lets the next process go.
pub struct WriterTurn<'a> {
    release: Option<Box<dyn FnOnce() + 'a>>,
}

impl<'a> WriterTurn<'a> {
    /// A turn that `release` gives back.
    pub fn new(release: impl FnOnce() + 'a) -> Self {
        WriterTurn { release: Some(Box::new(release)) }
    }
}

impl Drop for WriterTurn<'_> {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

/// Refuses a backup target that exists: a file, a directory, or a symbolic link — dangling
/// ones too, which `Path::exists` (following the link) reports as missing, so that a backup
/// would have been written wherever the link points.
pub(crate) fn check_backup_target(path: &std::path::Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::Backend(format!(
            "{} is a symbolic link; a backup never writes through one",
            path.display()
        ))),
        Ok(_) => Err(Error::Backend(format!(
            "{} already exists; a backup never overwrites a file",
            path.display()
        ))),
        // Missing (or its directory unreadable, which creating it will report).
        Err(_) => Ok(()),
    }
}

/// Creates the file a backup is written to, after [`check_backup_target`]: with
/// `create_new` (`O_CREAT | O_EXCL`), so that a file or link that appears at `path` after
/// the check is refused too rather than written through.
pub(crate) fn create_backup_target(path: &std::path::Path) -> Result<std::fs::File> {
    check_backup_target(path)?;
    std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Backend(format!(
                "{} already exists; a backup never overwrites a file",
                path.display()
            )),
            _ => Error::Backend(format!("cannot create {}: {e}", path.display())),
        }
    })
}

/// Runs a read-modify-write until it commits, retrying retryable errors (conflicts) from a
/// fresh snapshot up to `max_attempts` times. `f` reads what it needs and returns the batch
/// (with the checks that make its reads safe) and a result to hand back.
pub fn transact<T>(
    engine: &(impl Engine + ?Sized),
    max_attempts: usize,
    mut f: impl FnMut(&dyn Snapshot) -> Result<(AtomicBatch, T)>,
) -> Result<(Versionstamp, T)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (batch, out) = {
            let snap = engine.snapshot()?;
            f(snap.as_ref())?
        };
        match engine.commit(&batch) {
            Ok(vs) => return Ok((vs, out)),
            Err(e) if e.is_retryable() && attempt < max_attempts => {
                // Back off a little as attempts mount, so contending writers spread out.
                if attempt > 3 {
                    std::thread::sleep(std::time::Duration::from_micros(
                        10 << (attempt.min(10) as u32),
                    ));
                } else {
                    std::thread::yield_now();
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Refuses keys longer than [`MAX_KEY_LEN`].
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        Err(Error::KeyTooLarge { len: key.len(), max: MAX_KEY_LEN })
    } else {
        Ok(())
    }
}

/// A backup of a backend that has no file of its own to copy (memory, etcd): the live
/// entries of one snapshot (values and expiry times; new versionstamps) copied into a new
/// LMDB file at `path`, in commits of 10,000 keys.
pub(crate) fn backup_by_copy(engine: &dyn Engine, path: &std::path::Path) -> Result<()> {
    // LMDB opens (and creates) the data file and its `-lock` file itself, following
    // links: the data file is created here first, and neither may exist already.
    let mut lock = path.as_os_str().to_owned();
    lock.push("-lock");
    check_backup_target(std::path::Path::new(&lock))?;
    drop(create_backup_target(path)?);
    let target = crate::LmdbEngine::open(path, crate::LmdbOptions::default())?;
    let snap = engine.snapshot()?;
    let mut batch = AtomicBatch::new();
    for row in snap.scan(&KeyRange::all(), ScanOptions::forward())? {
        let (key, entry) = row?;
        batch = match entry.expire_at() {
            Some(at) => batch.set_with_expiry(key, entry.value(), at),
            None => batch.set(key, entry.value()),
        };
        if batch.mutations.len() >= 10_000 {
            target.commit(&std::mem::take(&mut batch))?;
        }
    }
    if !batch.mutations.is_empty() {
        target.commit(&batch)?;
    }
    Ok(())
}
