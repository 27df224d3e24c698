//! The LMDB backend (through heed): one file per database, many readers, many processes.
//!
//! The environment holds four named databases: `data` (key → stored entry), `feed` (commit
//! sequence → change set), `expiry` (expiry time ‖ key → nothing, the sweeper's index) and
//! `meta` (the commit sequence and the feed's floor). LMDB's single writer, shared across
//! processes through its lock file, serializes commits, so the sequence read and bumped inside
//! each write transaction gives strictly increasing versionstamps to every process.
//!
//! Concurrent commits share write transactions (group commit): one sync serves a group
//! of commits, each still atomic on its own.
//!
//! The map (the file's maximum size) starts at [`LmdbOptions::map_size`] and doubles when a
//! commit finds it full: the commit waits for this process's snapshots to close, grows the
//! map, and runs again. A map grown by another process is adopted the same way.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use heed::types::Bytes;
use heed::WithoutTls;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn};
use parking_lot::{RwLock, RwLockReadGuard};

use crate::apply::{self, sweepable, CommitTarget};
use crate::clock::{self, Clock};
use crate::engine::{
    AtomicBatch, Durability, Engine, KeyRange, KvRef, ScanIter, ScanOptions, Snapshot, MAX_KEY_LEN,
};
use crate::entry::{self, Entry};
use crate::error::{Error, Result};
use crate::feed::{self, Change, ChangeKind, ChangeSet};
use crate::group::GroupCommit;
use crate::versionstamp::Versionstamp;

type Db = Database<'static, Bytes, Bytes>;

const SEQ: &[u8] = b"seq";
const FLOOR: &[u8] = b"feed_floor";
/// How long a commit that must grow the map waits for this process's snapshots to close.
const GROW_WAIT: Duration = Duration::from_secs(5);

/// How to open an LMDB database.
#[derive(Debug, Clone)]
pub struct LmdbOptions {
    /// The initial map size in bytes (a multiple of the page size); grows by doubling.
    pub map_size: usize,
    pub durability: Durability,
    /// How many commits the change feed keeps.
    pub feed_retention: u64,
    /// Concurrent read transactions (snapshots) across all processes.
    pub max_readers: u32,
    /// Commits write into the memory map (`MDB_WRITEMAP`) instead of copying each dirty page
    /// to the file with `pwrite`. On by default: a commit costs 2–10× less, most of all in
    /// large files, where Linux's buffered-write path pays per write for the size of the
    /// cached block (see docs/architecture.md). The price: the file's apparent size is the
    /// map size (it is sparse), and a full disk stops the process (`SIGBUS`) where `pwrite`
    /// would return an error. Committed data stays intact either way.
    pub write_map: bool,
    pub clock: Arc<dyn Clock>,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            map_size: 1 << 30,
            durability: Durability::Full,
            feed_retention: feed::DEFAULT_RETENTION,
            max_readers: 512,
            write_map: true,
            clock: clock::system(),
        }
    }
}

/// LMDB refuses to open one environment twice in a process, so every handle on a path shares
/// one environment.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = LazyLock::new(Default::default);

struct Shared {
    data: Db,
    feed: Db,
    expiry: Db,
    meta: Db,
    /// Declared after the handles above, which are plain numbers valid while it is open.
    env: Env<WithoutTls>,
    /// Snapshots and commits hold it for reading; growing the map holds it for writing, so
    /// that no transaction of this process is active then (LMDB's rule for a resize).
    gate: RwLock<()>,
    clock: Arc<dyn Clock>,
    retention: u64,
    group: GroupCommit,
}

/// A database in one LMDB file (plus its `-lock` file).
#[derive(Clone)]
pub struct LmdbEngine {
    shared: Arc<Shared>,
}

/// Why one attempt at a write did not finish.
enum Fail {
    Grow,
    Adopt,
    Err(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        match e {
            Error::MapFull(_) => Fail::Grow,
            e => Fail::Err(e),
        }
    }
}

impl From<heed::Error> for Fail {
    fn from(e: heed::Error) -> Self {
        match e {
            heed::Error::Mdb(MdbError::MapFull) => Fail::Grow,
            heed::Error::Mdb(MdbError::MapResized) => Fail::Adopt,
            e => Fail::Err(e.into()),
        }
    }
}

fn map_full(e: heed::Error) -> Error {
    match e {
        heed::Error::Mdb(MdbError::MapFull) => Error::MapFull("LMDB map is full".into()),
        e => e.into(),
    }
}

impl LmdbEngine {
    /// Opens (creating when missing) the database file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: LmdbOptions) -> Result<Self> {
        let path = absolute(path.as_ref())?;
        let mut open = OPEN.lock().map_err(|_| Error::Backend("registry lock poisoned".into()))?;
        if let Some(shared) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(LmdbEngine { shared });
        }
        let mut flags = EnvFlags::NO_SUB_DIR;
        if opts.write_map {
            flags |= EnvFlags::WRITE_MAP;
        }
        if opts.durability == Durability::Process {
            flags |= EnvFlags::NO_SYNC;
        }
        let page = 4096;
        let map_size = opts.map_size.max(page).div_ceil(page) * page;
        // SAFETY: the registry above ensures this process opens the file once; LMDB's own
        // lock file coordinates with other processes.
        let env = unsafe {
            EnvOpenOptions::new()
                .read_txn_without_tls()
                .map_size(map_size)
                .max_dbs(8)
                .max_readers(opts.max_readers)
                .flags(flags)
                .open(&path)?
        };
        let wtxn = env.write_txn()?;
        let dbs = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let data: Database<Bytes, Bytes> = opener.create_database(wtxn, Some("data"))?;
                let feed = opener.create_database(wtxn, Some("feed"))?;
                let expiry = opener.create_database(wtxn, Some("expiry"))?;
                let meta = opener.create_database(wtxn, Some("meta"))?;
                Ok(CommitOrAbort::<_, ()>::Commit([data, feed, expiry, meta]))
            })?
            .unwrap_commit();
        // SAFETY: a database handle is an index into the environment, valid while it is
        // open. The handles live in `Shared` beside the environment and never leave it, so
        // extending their lifetime to `'static` cannot let one outlive the environment.
        let [data, feed, expiry, meta]: [Db; 4] =
            unsafe { std::mem::transmute::<[Database<'_, Bytes, Bytes>; 4], [Db; 4]>(dbs) };
        let shared = Arc::new(Shared {
            data,
            feed,
            expiry,
            meta,
            env,
            gate: RwLock::new(()),
            clock: opts.clock,
            retention: opts.feed_retention.max(1),
            group: GroupCommit::default(),
        });
        open.insert(path, Arc::downgrade(&shared));
        Ok(LmdbEngine { shared })
    }

    /// How many commits this process made and in how many write transactions (group commit
    /// puts concurrent commits in one).
    pub fn commit_stats(&self) -> crate::group::CommitStats {
        self.shared.group.stats()
    }

    /// The current size of the map, in bytes.
    pub fn map_size(&self) -> usize {
        self.shared.env.info().map_size
    }

    /// Runs `attempt` until it neither needs a bigger map nor has to adopt another process's.
    fn with_map<T>(&self, mut attempt: impl FnMut() -> Result<T, Fail>) -> Result<T> {
        loop {
            let outcome = {
                let _gate = self.shared.gate.read_recursive();
                attempt()
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::Grow) => {
                    let size = self.map_size();
                    self.resize(size.saturating_mul(2))?
                }
                Err(Fail::Adopt) => self.resize(0)?,
            }
        }
    }

    fn resize(&self, new_size: usize) -> Result<()> {
        let Some(_excl) = self.shared.gate.try_write_for(GROW_WAIT) else {
            return Err(Error::MapFull(format!(
                "the map ({} bytes) must grow, but this process kept snapshots open for {:?}",
                self.map_size(),
                GROW_WAIT
            )));
        };
        // SAFETY: holding the gate exclusively means no transaction of this process is
        // active (every snapshot and commit holds it shared).
        unsafe { self.shared.env.resize(new_size) }.map_err(map_full)
    }

    fn read_u64(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<u64>> {
        match self.shared.meta.get(txn, key)? {
            None => Ok(None),
            Some(b) => b
                .try_into()
                .map(|a: [u8; 8]| Some(u64::from_be_bytes(a)))
                .map_err(|_| Error::Corrupt(format!("meta value {key:?} is not a u64"))),
        }
    }

    /// Bumps the sequence, records `changes` in the feed and trims it; returns the
    /// versionstamp of this commit.
    fn finish(&self, wtxn: &mut RwTxn, seq: u64, changes: &[Change]) -> Result<Versionstamp> {
        let s = &self.shared;
        s.meta.put(wtxn, SEQ, &seq.to_be_bytes()).map_err(map_full)?;
        if !changes.is_empty() {
            s.feed.put(wtxn, &seq.to_be_bytes(), &feed::encode(changes)).map_err(map_full)?;
        }
        let floor = self.read_u64(wtxn, FLOOR)?.unwrap_or(1);
        let keep_from = (seq + 1).saturating_sub(s.retention).max(1);
        if floor < keep_from {
            let range = (
                Bound::Included(&floor.to_be_bytes()[..]),
                Bound::Excluded(&keep_from.to_be_bytes()[..]),
            );
            s.feed.delete_range(wtxn, &range).map_err(map_full)?;
            s.meta.put(wtxn, FLOOR, &keep_from.to_be_bytes()).map_err(map_full)?;
        }
        Ok(Versionstamp::from_seq(seq))
    }

    /// Applies `batches` in order in one write transaction and one sync. Each batch is
    /// checked and its writes decided before any is made (`apply::prepare`), so a refused
    /// batch leaves no trace while the others commit, without nested transactions (which
    /// LMDB refuses in a writable map). A failure while writing (map full, I/O) fails the
    /// whole transaction, and every batch in it.
    fn commit_group(&self, batches: &[&AtomicBatch]) -> Result<Vec<Result<Versionstamp>>, Fail> {
        let s = &self.shared;
        let mut wtxn = s.env.write_txn()?;
        let now = s.clock.now_millis();
        let mut seq = self.read_u64(&wtxn, SEQ)?.unwrap_or(0);
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            let vs = Versionstamp::from_seq(seq + 1);
            let mut target = LmdbTarget { txn: &mut wtxn, s };
            // `prepare` only reads: its errors are the batch's own.
            match apply::prepare(&mut target, batch, vs, now) {
                Err(e) => results.push(Err(e)),
                Ok(writes) => {
                    let changes = apply::write(&mut target, writes)?;
                    self.finish(&mut wtxn, seq + 1, &changes)?;
                    seq += 1;
                    results.push(Ok(vs));
                }
            }
        }
        if results.iter().any(Result::is_ok) {
            wtxn.commit()?;
        }
        Ok(results)
    }

    fn sweep_once(&self, limit: usize) -> Result<usize, Fail> {
        let s = &self.shared;
        let mut wtxn = s.env.write_txn()?;
        let now = s.clock.now_millis();
        let mut due = Vec::new();
        for item in s.expiry.iter(&wtxn)?.take(limit) {
            let (k, _) = item?;
            let Some(at) = k.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
            else {
                return Err(Error::Corrupt("expiry index key too short".into()).into());
            };
            if at > now {
                break;
            }
            due.push((at, k.to_vec()));
        }
        if due.is_empty() {
            return Ok(0);
        }
        let mut changes = Vec::new();
        for (at, k) in &due {
            s.expiry.delete(&mut wtxn, k)?;
            let key = &k[8..];
            let mut target = LmdbTarget { txn: &mut wtxn, s };
            if sweepable(&mut target, *at, key, now)? {
                s.data.delete(&mut wtxn, key)?;
                changes.push(Change { key: key.to_vec(), kind: ChangeKind::Expire });
            }
        }
        if !changes.is_empty() {
            let seq = self.read_u64(&wtxn, SEQ)?.unwrap_or(0) + 1;
            self.finish(&mut wtxn, seq, &changes)?;
        }
        wtxn.commit()?;
        Ok(changes.len())
    }
}

/// Makes a path absolute without requiring the file to exist (creating its folder).
fn absolute(path: &Path) -> Result<PathBuf> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::Backend(format!("{} does not name a file", path.display())))?;
    Ok(std::fs::canonicalize(parent)?.join(name))
}

struct LmdbTarget<'t, 'e> {
    txn: &'t mut RwTxn<'e>,
    s: &'t Shared,
}

impl CommitTarget for LmdbTarget<'_, '_> {
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.s.data.get(self.txn, key)?.map(<[u8]>::to_vec))
    }
    fn write(&mut self, key: &[u8], stored: Vec<u8>) -> Result<()> {
        self.s.data.put(self.txn, key, &stored).map_err(map_full)
    }
    fn remove(&mut self, key: &[u8]) -> Result<bool> {
        self.s.data.delete(self.txn, key).map_err(map_full)
    }
    fn note_expiry(&mut self, at: u64, key: &[u8]) -> Result<()> {
        let mut k = Vec::with_capacity(8 + key.len());
        k.extend_from_slice(&at.to_be_bytes());
        k.extend_from_slice(key);
        self.s.expiry.put(self.txn, &k, &[]).map_err(map_full)
    }
    fn newer_in(
        &mut self,
        range: &KeyRange,
        after: Versionstamp,
        now: u64,
    ) -> Result<Option<Vec<u8>>> {
        for item in self.s.data.range(self.txn, &range.as_slices())? {
            let (k, raw) = item?;
            if crate::apply::is_newer(raw, after, now)? {
                return Ok(Some(k.to_vec()));
            }
        }
        Ok(None)
    }
}

impl Engine for LmdbEngine {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        loop {
            let gate = self.shared.gate.read_recursive();
            match self.shared.env.read_txn() {
                Ok(txn) => {
                    let vs = Versionstamp::from_seq(self.read_u64(&txn, SEQ)?.unwrap_or(0));
                    let now = self.shared.clock.now_millis();
                    let may_expire = !self.shared.expiry.is_empty(&txn)?;
                    return Ok(Box::new(LmdbSnapshot {
                        txn,
                        s: &self.shared,
                        vs,
                        now,
                        may_expire,
                        _gate: gate,
                    }));
                }
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(gate);
                    self.resize(0)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        let run = |batches: &[&AtomicBatch]| self.with_map(|| self.commit_group(batches));
        self.shared.group.commit(batch, &run)
    }

    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>> {
        let snap = self.shared.env.read_txn()?;
        let floor = self.read_u64(&snap, FLOOR)?.unwrap_or(1);
        if after.seq() + 1 < floor {
            return Err(feed::truncated(after, floor));
        }
        let start = (after.seq() + 1).to_be_bytes();
        let range = (Bound::Included(&start[..]), Bound::Unbounded);
        let mut out = Vec::new();
        for item in self.shared.feed.range(&snap, &range)?.take(limit) {
            let (k, v) = item?;
            let seq: [u8; 8] =
                k.try_into().map_err(|_| Error::Corrupt("feed key is not a u64".into()))?;
            out.push(feed::decode(Versionstamp::from_seq(u64::from_be_bytes(seq)), v)?);
        }
        Ok(out)
    }

    fn sweep_expired(&self, limit: usize) -> Result<usize> {
        self.with_map(|| self.sweep_once(limit))
    }

    fn backup(&self, path: &Path) -> Result<()> {
        let mut file = crate::engine::create_backup_target(path)?;
        let _gate = self.shared.gate.read_recursive();
        // LMDB copies from one read transaction: a consistent snapshot, writers not blocked.
        // (Into the file created above: heed's `copy_to_path` would truncate an existing
        // file and follow a link.)
        if let Err(e) = self.shared.env.copy_to_file(&mut file, heed::CompactionOption::Enabled) {
            drop(file);
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
        Ok(())
    }
}

struct LmdbSnapshot<'e> {
    /// Declared before the gate guard so that it ends before the guard is released.
    txn: RoTxn<'e, WithoutTls>,
    s: &'e Shared,
    vs: Versionstamp,
    now: u64,
    /// False when no value in this snapshot has an expiry: scans then skip the test.
    may_expire: bool,
    _gate: RwLockReadGuard<'e, ()>,
}

impl Snapshot for LmdbSnapshot<'_> {
    fn versionstamp(&self) -> Versionstamp {
        self.vs
    }

    fn now_millis(&self) -> u64 {
        self.now
    }

    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        if key.len() > MAX_KEY_LEN || key.is_empty() {
            return Ok(None);
        }
        match self.s.data.get(&self.txn, key)? {
            None => Ok(None),
            Some(raw) => {
                let e = entry::decode(raw)?;
                Ok(e.is_live(self.now).then_some(e))
            }
        }
    }

    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>> {
        let range = range.clamped(MAX_KEY_LEN);
        if range.is_empty() {
            return Ok(Box::new(std::iter::empty()));
        }
        let bounds = range.as_slices();
        let cursor = if opts.reverse {
            Cursor::Rev(self.s.data.rev_range(&self.txn, &bounds)?)
        } else {
            Cursor::Fwd(self.s.data.range(&self.txn, &bounds)?)
        };
        Ok(Box::new(LmdbScan {
            cursor,
            remaining: opts.limit.unwrap_or(usize::MAX),
            now: self.may_expire.then_some(self.now),
        }))
    }
}

enum Cursor<'a> {
    Fwd(heed::RoRange<'a, Bytes, Bytes>),
    Rev(heed::RoRevRange<'a, Bytes, Bytes>),
}

/// A scan's rows: live entries only, at most `remaining` more of them. One flat loop, so the
/// per-row path is a cursor step and, only where values can expire, an expiry test.
struct LmdbScan<'a> {
    cursor: Cursor<'a>,
    remaining: usize,
    /// The time expiry is judged at, or `None` when nothing in the snapshot can expire.
    now: Option<u64>,
}

impl<'a> Iterator for LmdbScan<'a> {
    type Item = Result<KvRef<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.remaining > 0 {
            let item = match &mut self.cursor {
                Cursor::Fwd(it) => it.next()?,
                Cursor::Rev(it) => it.next()?,
            };
            match item {
                Err(e) => return Some(Err(e.into())),
                Ok((key, raw)) => match entry::decode(raw) {
                    Ok(e) if self.now.is_none_or(|now| e.is_live(now)) => {
                        self.remaining -= 1;
                        return Some(Ok((key, e)));
                    }
                    Ok(_) => continue,
                    Err(err) => return Some(Err(err)),
                },
            }
        }
        None
    }
}
