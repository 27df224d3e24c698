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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use heed::types::Bytes;
use heed::WithoutTls;
use heed::{CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn};
use parking_lot::{RwLock, RwLockReadGuard};

use crate::apply::{self, sweepable, CommitTarget, DirectView};
use crate::clock::{self, Clock};
use crate::engine::{
    AtomicBatch, Direct, Durability, Engine, KeyRange, KvRef, ScanIter, ScanOptions, Snapshot,
    WriterTurn, MAX_KEY_LEN,
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
/// The map grows ahead of need once its used part passes this share (in 1/8ths).
const GROW_AHEAD_EIGHTHS: usize = 6;
/// How often commits clear reader slots left by dead processes (`mdb_reader_check`).
const READER_CHECK_MS: u64 = 100;

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
    /// Lets the kernel read ahead around each page the map touches. Off by default
    /// (`MDB_NORDAHEAD`, i.e. `MADV_RANDOM` on the map): with read-ahead, Linux caches the
    /// file in large folios (up to megabytes each), and a commit that changes one 4 KiB page
    /// dirties — and its sync writes — the whole folio. Measured on this machine, one-row
    /// durable commits wrote 50 KB each at 10 MB of data, 2.2 MB at 100 MB and 6.4 MB at
    /// 2 GB (9 ms a commit); without read-ahead 34 KB at 10 MB and 37 KB at 5 GB. The price:
    /// a cold scan of a file not in the page cache reads it a page at a time.
    pub read_ahead: bool,
    /// Opens for reading only: no write transaction is ever started, the file may be on a
    /// read-only file system (LMDB then runs without its lock file), and every commit is
    /// refused with `storage.read_only`. The file must exist and be a KVM database.
    pub read_only: bool,
    /// A file whose pages take at most this many bytes has every page walked and checked
    /// when opened (`check_pages`), so a damaged page is `storage.corrupt` before LMDB
    /// reads it. 64 MiB by default (a few milliseconds); larger files are checked by
    /// `CHECK DATABASE`. `0` never walks on open, `u64::MAX` always does.
    pub verify_on_open: u64,
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
            read_ahead: false,
            read_only: false,
            verify_on_open: 64 << 20,
            clock: clock::system(),
        }
    }
}

/// What [`vacuum`] did: the disk space the file took before and after (allocated blocks,
/// not the apparent size of a sparse file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vacuumed {
    pub before: u64,
    pub after: u64,
}

/// Rewrites the database file at `path` compacted — the free pages of deleted data given
/// back to the file system — and swaps it in. It needs the file to itself: refused with
/// [`Error::InUse`] while this process or another has it open (LMDB's lock file says so),
/// and other processes that open it meanwhile wait until it is done. The copy is written
/// beside the file (`path.vacuum`), synced, and renamed over it: a crash leaves either file
/// whole (and at worst a stale copy, replaced by the next vacuum).
pub fn vacuum(path: impl AsRef<Path>, opts: LmdbOptions) -> Result<Vacuumed> {
    use std::os::unix::fs::MetadataExt;
    let path = absolute(path.as_ref())?;
    let in_use =
        |who: &str| Error::InUse(format!("{} is open in {who}; close it first", path.display()));
    if OPEN
        .lock()
        .map_err(|_| Error::Backend("registry lock poisoned".into()))?
        .get(&path)
        .and_then(Weak::upgrade)
        .is_some()
    {
        return Err(in_use("this process"));
    }
    if !path.exists() {
        return Err(Error::Backend(format!("{} does not exist", path.display())));
    }
    let mut lock_path = path.clone().into_os_string();
    lock_path.push("-lock");
    let guard = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)?;
    // LMDB keeps a lock on the lock file's first byte while a process has the file open.
    if !try_lock_excl(&guard)? {
        return Err(in_use("another process"));
    }
    let allocated = |p: &Path| std::fs::metadata(p).map(|m| m.blocks() * 512);
    let before = allocated(&path)?;
    let mut copy_path = path.clone().into_os_string();
    copy_path.push(".vacuum");
    let copy_path = PathBuf::from(copy_path);
    let _ = std::fs::remove_file(&copy_path);
    {
        let engine = LmdbEngine::open(&path, opts)?;
        let mut copy = std::fs::OpenOptions::new().write(true).create_new(true).open(&copy_path)?;
        let copied = engine.shared.env.copy_to_file(&mut copy, heed::CompactionOption::Enabled);
        if let Err(e) = copied.map_err(Error::from).and_then(|_| Ok(copy.sync_all()?)) {
            let _ = std::fs::remove_file(&copy_path);
            return Err(e);
        }
        // Closing the environment releases this process's locks on the lock file.
    }
    // Openers wait on the map lock before they read the file; then, with it held, no process
    // may have opened the file since the copy began.
    let data = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let _map_lock = MapLock::take(&data)?;
    if !try_lock_excl(&guard)? {
        let _ = std::fs::remove_file(&copy_path);
        return Err(in_use("another process (it opened it during the vacuum)"));
    }
    std::fs::rename(&copy_path, &path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(Vacuumed { before, after: allocated(&path)? })
}

/// Takes (without waiting) the exclusive lock on the first byte of LMDB's lock file; false
/// when another process holds it (LMDB's shared lock: it has the file open).
fn try_lock_excl(file: &std::fs::File) -> Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed `flock` is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 0;
    fl.l_len = 1;
    // SAFETY: fcntl on a descriptor we own, with a valid `flock`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EAGAIN) => Ok(false),
        _ => Err(e.into()),
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
    read_only: bool,
    /// The database file, to reserve its blocks ahead of the pages commits will write
    /// (`fallocate`), and how far it is known to be reserved; `None` when read-only.
    reserve: Option<Reserve>,
    /// When stale reader slots were last cleared (milliseconds of the engine clock).
    readers_checked: AtomicU64,
    /// This process's writer turn (see `Engine::writer_turn`).
    turn: parking_lot::Mutex<()>,
    /// What the last snapshot read about its state: LMDB's transaction id (the same id is
    /// the same committed state, in every process), its versionstamp and whether anything
    /// may expire. A snapshot of the same state reads neither again.
    last_state: parking_lot::Mutex<Option<(usize, Versionstamp, bool)>>,
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
        // Our own descriptor of the data file: disk reservations, the writer turn, and the
        // map lock that keeps the file from ever shrinking (see `MapLock`).
        let data_file = if opts.read_only {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)?,
            )
        };
        let _map_lock = data_file.as_ref().map(MapLock::take).transpose()?;
        // A vacuum may have swapped the file at `path` between our open and the lock (it
        // holds this lock while it renames): then our descriptor is of the old file.
        if let Some(f) = &data_file {
            use std::os::unix::fs::MetadataExt;
            if f.metadata()?.ino() != std::fs::metadata(&path)?.ino() {
                drop(_map_lock);
                drop(open);
                return LmdbEngine::open(&path, opts);
            }
        }
        let used = check_file(&path, opts.read_only)?;
        let file_len = data_file.as_ref().map(|f| f.metadata().map(|m| m.len())).transpose()?;
        let mut flags = EnvFlags::NO_SUB_DIR;
        let write_map = opts.write_map && !opts.read_only;
        if write_map {
            flags |= EnvFlags::WRITE_MAP;
        }
        if !opts.read_ahead {
            flags |= EnvFlags::NO_READ_AHEAD;
        }
        if opts.read_only {
            flags |= EnvFlags::READ_ONLY;
        }
        if opts.durability == Durability::Process {
            flags |= EnvFlags::NO_SYNC;
        }
        let page = 4096;
        // Never below the file's length: with a write map LMDB truncates the file to the
        // map size, and a smaller map would cut off pages another process is using.
        let floor = if write_map { file_len.unwrap_or(0) as usize } else { 0 };
        let map_size = opts.map_size.max(floor).max(page).div_ceil(page) * page;
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
        // A small file is walked page by page before LMDB reads any tree (a damaged page
        // must be an error, not a crash); a larger one by CHECK DATABASE (`check_pages`).
        if used <= opts.verify_on_open {
            let file = std::fs::File::open(&path)?;
            // Writers of other processes committing faster than two page reads, a thousand
            // times over, skip this walk; CHECK DATABASE walks again.
            super::lmdb_pages::walk(&file, || {
                let txn = env.read_txn()?;
                let id = txn.id() as u64;
                Ok((txn, id))
            })?;
        }
        let dbs = if opts.read_only {
            let rtxn = env.read_txn()?;
            let opened =
                env.open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                    let open = |name| opener.open_database::<Bytes, Bytes>(rtxn, Some(name));
                    Ok(match (open("data")?, open("feed")?, open("expiry")?, open("meta")?) {
                        (Some(d), Some(f), Some(e), Some(m)) => CommitOrAbort::Commit([d, f, e, m]),
                        _ => CommitOrAbort::Abort(()),
                    })
                })?;
            match opened {
                CommitOrAbort::Commit(dbs) => dbs,
                CommitOrAbort::Abort(()) => {
                    return Err(Error::Corrupt(format!(
                        "{} is not a KVM database (its tables are missing)",
                        path.display()
                    )))
                }
            }
        } else {
            let wtxn = env.write_txn()?;
            env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let data: Database<Bytes, Bytes> = opener.create_database(wtxn, Some("data"))?;
                let feed = opener.create_database(wtxn, Some("feed"))?;
                let expiry = opener.create_database(wtxn, Some("expiry"))?;
                let meta = opener.create_database(wtxn, Some("meta"))?;
                Ok(CommitOrAbort::<_, ()>::Commit([data, feed, expiry, meta]))
            })?
            .unwrap_commit()
        };
        // A reader slot left by a process killed mid-read keeps every page it could see
        // from reuse, for as long as any process has the file open: clear them now, and
        // then every READER_CHECK_MS from commits.
        if !opts.read_only {
            env.clear_stale_readers()?;
        }
        let checked_at = u64::try_from(START.elapsed().as_millis()).unwrap_or(0);
        drop(_map_lock);
        let reserve = data_file.map(|file| Reserve {
            file,
            upto: AtomicU64::new(0),
            // Without a write map the file's size is what LMDB wrote: keep it so.
            keep_size: !write_map,
        });
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
            read_only: opts.read_only,
            reserve,
            readers_checked: AtomicU64::new(checked_at),
            turn: parking_lot::Mutex::new(()),
            last_state: parking_lot::Mutex::new(None),
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
        self.info().map_size
    }

    /// LMDB's view of the environment. It reads the mapped meta pages, so it holds the
    /// gate like a transaction: never while this thread holds it exclusively.
    fn info(&self) -> heed::EnvInfo {
        let _gate = self.shared.gate.read_recursive();
        self.shared.env.info()
    }

    /// Runs `attempt` — a write of about `need` bytes (see [`Room`]) — until it neither
    /// needs a bigger map nor has to adopt another process's. Before each attempt the map
    /// is made big enough and, with a write map, the file's blocks are reserved for it.
    fn with_map<T>(&self, need: Room, mut attempt: impl FnMut() -> Result<T, Fail>) -> Result<T> {
        if self.shared.read_only {
            return Err(Error::ReadOnly("it was opened read-only".into()));
        }
        self.clear_stale_readers(false)?;
        let mut need = need;
        loop {
            self.make_room(need)?;
            let outcome = {
                let _gate = self.shared.gate.read_recursive();
                attempt()
            };
            match outcome {
                Ok(v) => {
                    self.grow_ahead();
                    return Ok(v);
                }
                Err(Fail::Err(e)) => return Err(e),
                Err(Fail::Grow) => {
                    // Pages held by dead readers may be what filled it.
                    self.clear_stale_readers(true)?;
                    need.bytes = need.bytes.saturating_mul(2);
                    let size = self.map_size();
                    self.resize(
                        size.saturating_mul(2).max(self.used() + need.headroom(self.used())),
                        GROW_WAIT,
                    )?;
                }
                Err(Fail::Adopt) => {
                    self.resize(0, GROW_WAIT)?;
                }
            }
        }
    }

    /// The bytes of the file that hold pages in use (up to the last page written): what the
    /// database takes on disk, whatever the map's (apparent) size.
    pub fn used_bytes(&self) -> usize {
        self.used()
    }

    fn used(&self) -> usize {
        self.used_and_size().0
    }

    /// The bytes of pages in use and the map size, from one look at the environment (the
    /// commit path asks for both before and after every write).
    fn used_and_size(&self) -> (usize, usize) {
        let info = self.info();
        (info.last_page_number.saturating_add(1).saturating_mul(page_size()), info.map_size)
    }

    /// Grows the map when `need` would not fit, and reserves the file's blocks for it.
    fn make_room(&self, need: Room) -> Result<()> {
        let (used, size) = self.used_and_size();
        let want = used.saturating_add(need.headroom(used));
        if want > size {
            self.resize(size.saturating_mul(2).max(want.saturating_add(want / 4)), GROW_WAIT)?;
        }
        let Some(r) = &self.shared.reserve else { return Ok(()) };
        if (r.upto.load(Ordering::Relaxed) as usize) >= want {
            return Ok(());
        }
        // Reserve a little past what this write needs, so most commits make no call.
        let to = round_up(want.saturating_add(used / 16), page_size()).min(self.map_size());
        r.reserve(to)?;
        r.upto.store(to as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Doubles the map once most of it is used, when no snapshot of this process is open
    /// right now (never waiting for one): a later commit then rarely has to wait for
    /// readers to finish before the map can grow.
    fn grow_ahead(&self) {
        let (used, size) = self.used_and_size();
        if used < size / 8 * GROW_AHEAD_EIGHTHS {
            return;
        }
        // A failed attempt is tried again after the next commit.
        let _ = self.resize(size.saturating_mul(2), Duration::ZERO);
    }

    /// Resizes the map (0: adopt the size another process set), waiting up to `wait` for
    /// this process's snapshots to close.
    fn resize(&self, new_size: usize, wait: Duration) -> Result<()> {
        let Some(_excl) = self.shared.gate.try_write_for(wait) else {
            return Err(Error::MapFull(format!(
                "the map ({} bytes) must grow, but this process kept snapshots open for {:?}",
                self.map_size(),
                wait
            )));
        };
        let current = self.shared.env.info().map_size;
        let mut new_size = round_up(new_size, page_size());
        if new_size != 0 && new_size <= current {
            return Ok(()); // another thread grew it meanwhile
        }
        // With a write map LMDB truncates the file to the new map size: resizes and opens
        // of every process take turns (`MapLock`), and none goes below the file's length,
        // so the file never shrinks under another process's map. (Adopting — size 0 —
        // would take the size last written to the meta page, which can be smaller.)
        let _map_lock = match &self.shared.reserve {
            Some(r) if !r.keep_size => {
                let lock = MapLock::take(&r.file)?;
                let len = r.file.metadata()?.len() as usize;
                let recorded = meta_map_size(&r.file).unwrap_or(0) as usize;
                new_size = new_size.max(current).max(round_up(len.max(recorded), page_size()));
                Some(lock)
            }
            _ => None,
        };
        // SAFETY: holding the gate exclusively means no transaction of this process is
        // active (every snapshot and commit holds it shared).
        unsafe { self.shared.env.resize(new_size) }.map_err(map_full)
    }

    /// Frees reader slots of processes that died holding a snapshot (LMDB's
    /// `mdb_reader_check`); at most once per [`READER_CHECK_MS`] unless `now`.
    fn clear_stale_readers(&self, now: bool) -> Result<()> {
        let at = u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.shared.readers_checked.load(Ordering::Relaxed);
        if !now && at.saturating_sub(last) < READER_CHECK_MS {
            return Ok(());
        }
        self.shared.readers_checked.store(at, Ordering::Relaxed);
        self.shared.env.clear_stale_readers()?;
        Ok(())
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

/// What a write may need from the map: its operations and bytes.
#[derive(Debug, Clone, Copy)]
struct Room {
    ops: usize,
    bytes: usize,
}

impl Room {
    fn of(batches: &[&AtomicBatch]) -> Room {
        batches.iter().fold(Room { ops: 0, bytes: 0 }, |r, b| {
            let (ops, bytes) = b.size();
            Room { ops: r.ops + ops, bytes: r.bytes + bytes }
        })
    }

    /// The new pages a write may take past the used part of the file: its data and a
    /// quarter more (page fill, the change feed's keys) plus two pages per operation for
    /// the copied tree paths, up to a quarter of the tree (a commit copies each page it
    /// touches once, and pages freed by earlier commits are reused first); plus a margin
    /// for the free list.
    fn headroom(self, used: usize) -> usize {
        let data = self.bytes.saturating_add(self.bytes / 4);
        let paths = self.ops.saturating_mul(2 * page_size()).min(used / 4);
        data.saturating_add(paths).saturating_add(1 << 20)
    }
}

fn page_size() -> usize {
    4096
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to).saturating_mul(to)
}

/// When this process started using LMDB (for the reader-check period).
static START: LazyLock<std::time::Instant> = LazyLock::new(std::time::Instant::now);

/// The database file's disk reservation: a full disk must be found before LMDB writes —
/// through a write map it would be `SIGBUS`, through `pwrite` a short write that LMDB
/// reports as a bare I/O error.
struct Reserve {
    file: std::fs::File,
    /// How far the file is known to have blocks.
    upto: AtomicU64,
    /// Allocate without changing the file's size (`FALLOC_FL_KEEP_SIZE`).
    keep_size: bool,
}

impl Reserve {
    /// Makes sure the file's first `to` bytes have blocks on disk.
    fn reserve(&self, to: usize) -> Result<()> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let len = libc::off_t::try_from(to).unwrap_or(libc::off_t::MAX);
            let mode = if self.keep_size { libc::FALLOC_FL_KEEP_SIZE } else { 0 };
            // SAFETY: a plain system call on a file descriptor we own; it allocates blocks
            // and never changes the file's contents.
            let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, 0, len) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return match e.raw_os_error() {
                    // A file system without fallocate: nothing to reserve with.
                    Some(libc::EOPNOTSUPP) => Ok(()),
                    Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(Error::DiskFull(format!(
                        "the database needs {to} bytes of disk for this write; {e}"
                    ))),
                    _ => Err(e.into()),
                };
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (&self.file, to);
        Ok(())
    }
}

/// A write lock on byte 1 of the data file (an open-file-description lock: independent of
/// the writer turn's `flock`, and of LMDB's own locks, which live in the `-lock` file),
/// held while the map is set: at open and at every resize. With a write map LMDB truncates
/// the file to its map size, so two processes setting maps at once could shrink the file
/// under the other's pages (SIGBUS); in turns, and never below the file's length, it only
/// grows.
struct MapLock<'f> {
    file: &'f std::fs::File,
}

impl<'f> MapLock<'f> {
    fn take(file: &'f std::fs::File) -> Result<MapLock<'f>> {
        ofd_lock(file, libc::F_WRLCK)?;
        Ok(MapLock { file })
    }
}

impl Drop for MapLock<'_> {
    fn drop(&mut self) {
        let _ = ofd_lock(self.file, libc::F_UNLCK);
    }
}

fn ofd_lock(file: &std::fs::File, kind: libc::c_int) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed `flock` is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 1;
    fl.l_len = 1;
    let cmd = if kind == libc::F_UNLCK { libc::F_OFD_SETLK } else { libc::F_OFD_SETLKW };
    loop {
        // SAFETY: fcntl on a descriptor we own, with a valid `flock`.
        if unsafe { libc::fcntl(file.as_raw_fd(), cmd, &fl) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
}

/// The largest map size the file's valid meta pages record.
fn meta_map_size(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; 4096 + 160];
    file.read_exact_at(&mut head, 0).ok()?;
    let psize = u32::from_ne_bytes(head.get(40..44)?.try_into().ok()?) as usize;
    let mut second = vec![0u8; 160];
    file.read_exact_at(&mut second, psize as u64).ok()?;
    [&head[..160], &second[..]]
        .into_iter()
        .filter(|m| m.get(16..20) == Some(&0xBEEF_C0DEu32.to_ne_bytes()[..]))
        .filter_map(|m| m.get(32..40)?.try_into().ok().map(u64::from_ne_bytes))
        .max()
}

/// `flock(2)`, retried when a signal interrupts the wait.
fn flock(fd: std::os::fd::RawFd, op: libc::c_int) -> Result<()> {
    loop {
        // SAFETY: flock on a descriptor this engine owns (and keeps open while it lives).
        if unsafe { libc::flock(fd, op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e.into());
        }
    }
}

/// Checks an existing database file before LMDB maps it: LMDB trusts its file, and would
/// extend a truncated one to the map size (with a write map) or read past its end. Reads
/// the two meta pages and checks the magic, the version, and that the file still holds
/// every page the newest meta page counts. A missing or empty file is a new database
/// (read-only: an error). Returns the bytes its pages take (0 for a new database).
fn check_file(path: &Path, read_only: bool) -> Result<u64> {
    use std::io::Read;
    let missing = |what: &str| {
        if read_only {
            Err(Error::Backend(format!("{} {what}: nothing to open read-only", path.display())))
        } else {
            Ok(0)
        }
    };
    let len = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing("does not exist"),
        Err(e) => return Err(e.into()),
        Ok(m) if !m.is_file() => {
            return Err(Error::Backend(format!("{} is not a file", path.display())))
        }
        Ok(m) => m.len(),
    };
    if len == 0 {
        return missing("is empty");
    }
    let corrupt = |why: String| Error::Corrupt(format!("{}: {why}", path.display()));
    let mut head = Vec::new();
    std::fs::File::open(path)?.take(2 * 65536).read_to_end(&mut head)?;
    let u32_at = |b: &[u8], at: usize| {
        b.get(at..at + 4).map(|x| u32::from_ne_bytes([x[0], x[1], x[2], x[3]]))
    };
    let u64_at = |b: &[u8], at: usize| {
        b.get(at..at + 8).and_then(|x| x.try_into().ok()).map(u64::from_ne_bytes)
    };
    // Page header 16 bytes; meta: magic, version, address, map size, two 48-byte db
    // records (the first's leading u32 is the page size), last page, txn id.
    let meta = |page: &[u8]| -> Option<(u64, u64)> {
        (u32_at(page, 16)? == 0xBEEF_C0DE && u32_at(page, 20)? == 1)
            .then(|| Some((u64_at(page, 136)?, u64_at(page, 144)?)))
            .flatten()
    };
    let psize = u32_at(&head, 40).unwrap_or(0) as usize;
    let first = meta(&head);
    let second = (psize.is_power_of_two() && (512..=65536).contains(&psize))
        .then(|| head.get(psize..).and_then(meta))
        .flatten();
    let newest = match (first, second) {
        (Some(a), Some(b)) => {
            if a.1 >= b.1 {
                a
            } else {
                b
            }
        }
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => {
            return Err(corrupt(
                "not an LMDB database file, or its header pages are damaged".into(),
            ))
        }
    };
    if !(psize.is_power_of_two() && (512..=65536).contains(&psize)) {
        return Err(corrupt(format!("its header names an impossible page size ({psize})")));
    }
    let expected = newest.0.saturating_add(1).saturating_mul(psize as u64);
    // LMDB may leave a few freed pages at the end unwritten; a shorter file than that
    // lost pages it needs.
    let slack = (expected / 8).max(1 << 20);
    if len.saturating_add(slack) < expected {
        return Err(corrupt(format!(
            "the file is {len} bytes but its pages reach {expected} bytes: it was truncated"
        )));
    }
    Ok(expected)
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

impl LmdbEngine {
    /// One attempt at a direct write: its own write transaction, committed when `write`
    /// succeeds.
    fn direct_once(
        &self,
        write: &mut dyn FnMut(&dyn Direct) -> Result<()>,
    ) -> Result<Versionstamp, Fail> {
        let s = &self.shared;
        let mut wtxn = s.env.write_txn()?;
        let seq = self.read_u64(&wtxn, SEQ)?.unwrap_or(0) + 1;
        let target = LmdbTarget { txn: &mut wtxn, s };
        let view = DirectView::new(target, Versionstamp::from_seq(seq - 1), s.clock.now_millis());
        let outcome = write(&view);
        let (_, changes, full) = view.finish();
        if full {
            return Err(Fail::Grow); // the transaction is dropped: nothing kept
        }
        outcome?;
        let vs = self.finish(&mut wtxn, seq, &changes)?;
        wtxn.commit()?;
        Ok(vs)
    }
}

impl Engine for LmdbEngine {
    fn name(&self) -> &'static str {
        "lmdb"
    }

    fn write_direct(
        &self,
        bytes: usize,
        write: &mut dyn FnMut(&dyn Direct) -> Result<()>,
    ) -> Result<Option<Versionstamp>> {
        let need = Room { ops: bytes / 64, bytes };
        self.shared.group.alone(|| self.with_map(need, || self.direct_once(&mut *write))).map(Some)
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        let mut readers_cleared = false;
        loop {
            let gate = self.shared.gate.read_recursive();
            match self.shared.env.read_txn() {
                Ok(txn) => {
                    let id = txn.id();
                    let known = *self.shared.last_state.lock();
                    let (vs, may_expire) = match known {
                        Some((at, vs, may_expire)) if at == id => (vs, may_expire),
                        _ => {
                            let seq = self.read_u64(&txn, SEQ)?.unwrap_or(0);
                            let state =
                                (Versionstamp::from_seq(seq), !self.shared.expiry.is_empty(&txn)?);
                            *self.shared.last_state.lock() = Some((id, state.0, state.1));
                            state
                        }
                    };
                    let now = self.shared.clock.now_millis();
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
                    self.resize(0, GROW_WAIT)?;
                }
                Err(heed::Error::Mdb(MdbError::ReadersFull)) if !readers_cleared => {
                    // Slots of dead processes may be what fills the table.
                    drop(gate);
                    readers_cleared = true;
                    self.shared.env.clear_stale_readers()?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        let run = |batches: &[&AtomicBatch]| {
            self.with_map(Room::of(batches), || self.commit_group(batches))
        };
        self.shared.group.commit(batch, &run)
    }

    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>> {
        // Like every transaction of this process, it holds the gate (no resize meanwhile).
        let _gate = self.shared.gate.read_recursive();
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
        if self.shared.read_only {
            return Ok(0);
        }
        // Each deletion rewrites a few pages.
        self.with_map(Room { ops: limit, bytes: 0 }, || self.sweep_once(limit))
    }

    fn writer_turn(&self) -> Result<Option<WriterTurn<'_>>> {
        // An advisory lock on this process's own descriptor of the data file (LMDB keeps
        // its locks in the `-lock` file, with fcntl; flock locks are separate from those).
        // Every handle of this process on the file shares that descriptor — and flock
        // locks belong to the descriptor — so the process's threads take turns at `turn`
        // first, and only its holder touches the lock.
        let Some(r) = &self.shared.reserve else { return Ok(None) };
        let held = self.shared.turn.lock();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&r.file);
        flock(fd, libc::LOCK_EX)?;
        Ok(Some(WriterTurn::new(move || {
            // The file outlives the turn (the turn borrows the engine).
            let _ = flock(fd, libc::LOCK_UN);
            drop(held);
        })))
    }

    fn check_pages(&self) -> Result<Option<u64>> {
        let _gate = self.shared.gate.read_recursive();
        // A read transaction pins its snapshot's pages while the walk reads them.
        let file = std::fs::File::open(self.shared.env.path())?;
        let report = super::lmdb_pages::walk(&file, || {
            let txn = self.shared.env.read_txn()?;
            let id = txn.id() as u64;
            Ok((txn, id))
        })?;
        match report {
            Some(r) => Ok(Some(r.pages)),
            None => Err(Error::Backend(
                "writers committed faster than the page walk could pin a snapshot; try again"
                    .into(),
            )),
        }
    }

    fn await_writer_turn(&self) -> Result<()> {
        let Some(r) = &self.shared.reserve else { return Ok(()) };
        // A thread of this process has the turn: wait for it. (The lock below must not be
        // touched then: a shared request on the holder's descriptor would downgrade it.)
        let _idle = self.shared.turn.lock();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&r.file);
        // A shared lock waits exactly while another process holds the exclusive one (its
        // turn); it is given back at once.
        flock(fd, libc::LOCK_SH)?;
        flock(fd, libc::LOCK_UN)
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
