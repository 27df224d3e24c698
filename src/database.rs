//! The public entry point: [`Database`] opens a file (LMDB) or memory, runs KQL with
//! parameters, prepares statements, and runs whole scripts statement by statement.

use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::Duration;

use kvm_lang::{Span, Statement};
use kvm_planner::{Catalog, Plan};
use kvm_storage::{Clock, Engine, LmdbEngine, LmdbOptions, MemoryEngine, Versionstamp};
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::eval::Ids;
use crate::exec::{self, Host};
use crate::keyspace::Key;
use crate::model_txn::ModelTxn;
use crate::params::{IntoParams, IntoValue, Params, Used};
use crate::row::Row;
use crate::stream::RowStream;
use crate::{catalog_store, Output, Rows};

/// How a database is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// The clock for `now()`, timestamps, ULIDs and expiry.
    pub clock: Arc<dyn Clock>,
    /// Seeds the generator behind `ulid()`/`uuid()`; `None` seeds from the OS. Tests fix
    /// it (with a `ManualClock`) to get the same ids every run.
    pub seed: Option<u64>,
    /// How often the background sweeper deletes expired records (and their index entries);
    /// `None` runs no sweeper (call [`Database::sweep_expired`] instead). Expired records
    /// are invisible from their expiry on either way; sweeping only reclaims space.
    pub sweep_interval: Option<Duration>,
    /// The most one `ORDER BY` that no index answers may hold in memory, in bytes (rows
    /// are counted at about their in-memory size); past it the query fails with
    /// `kvm.sort_too_large` instead of taking memory without bound. 1 GiB by default.
    pub sort_budget: usize,
    /// LMDB: the initial map size in bytes — the file's address space, not its disk use. It
    /// grows (doubling) whenever a write needs more, so this only sets where it starts. 1 GiB
    /// by default.
    pub map_size: usize,
    /// LMDB: commits write into the memory map (`MDB_WRITEMAP`) instead of with `pwrite`;
    /// on by default (2–10× cheaper commits). With it the file's apparent size is the map
    /// size (it is sparse: `du` shows the real use); disk space is reserved ahead of each
    /// commit so a full disk is `storage.disk_full`, not a crash. See docs/architecture.md.
    pub write_map: bool,
    /// LMDB: let the kernel read ahead in the file; off by default, so that a commit's sync
    /// writes the pages it changed, not the large cached blocks around them (bytes written
    /// per commit stay flat as the file grows). Turn it on for cold sequential scans of
    /// files that are not in memory. See `LmdbOptions::read_ahead`.
    pub read_ahead: bool,
    /// LMDB: open for reading only ([`Database::open_read_only`]): every write fails with
    /// `storage.read_only`, no sweeper or backfill runs, and the file may be on a read-only
    /// file system.
    pub read_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            clock: kvm_storage::clock::system(),
            seed: None,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            sort_budget: 1 << 30,
            map_size: 1 << 30,
            write_map: true,
            read_ahead: false,
            read_only: false,
        }
    }
}

/// The sweeper's default period.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Entries deleted per sweep commit.
const SWEEP_BATCH: usize = 1000;

/// Deletes every expired entry, `SWEEP_BATCH` per storage commit.
fn sweep_all(engine: &dyn Engine) -> Result<usize> {
    let mut total = 0;
    loop {
        let n = engine.sweep_expired(SWEEP_BATCH)?;
        total += n;
        if n < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

/// The background sweeper: a thread owned by the database, stopped (and joined) when the
/// last clone of the database is dropped.
struct Sweeper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sweeper {
    fn start(engine: Arc<dyn Engine>, every: Duration) -> Option<Sweeper> {
        let (stop, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("kvm-sweeper".into())
            .spawn(move || loop {
                match rx.recv_timeout(every) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        // A failed sweep (a busy map, a full disk) is tried again next period.
                        let _ = sweep_all(engine.as_ref());
                    }
                    _ => return,
                }
            })
            .ok()?;
        Some(Sweeper { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct DefaultIds {
    clock: Arc<dyn Clock>,
    state: Mutex<u64>,
    /// The last ULID's time and random part: ULIDs of one millisecond count up from a
    /// random start, so this database's ULIDs sort in the order they were made (queue jobs
    /// rely on it for first in, first out).
    last_ulid: Mutex<(u64, u128)>,
}

impl DefaultIds {
    fn next(&self) -> u64 {
        // xorshift64*: fast, and deterministic under a fixed seed.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Ids for DefaultIds {
    fn now_micros(&self) -> i64 {
        i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX).saturating_mul(1000)
    }
    fn ulid(&self) -> String {
        let now = self.clock.now_millis();
        let mut last = self.last_ulid.lock().unwrap_or_else(|p| p.into_inner());
        let (ms, random) = if now <= last.0 && last.1 < (1u128 << 80) - 1 {
            (last.0, last.1 + 1)
        } else {
            // A fresh random start, leaving room to count up within the millisecond.
            let r = (u128::from(self.next()) << 64 | u128::from(self.next())) & ((1u128 << 79) - 1);
            (now.max(last.0), r)
        };
        *last = (ms, random);
        ulid::Ulid::from_parts(ms, random).to_string()
    }
    fn uuid(&self) -> String {
        let bytes = (u128::from(self.next()) << 64 | u128::from(self.next())).to_be_bytes();
        uuid::Builder::from_random_bytes(bytes).into_uuid().hyphenated().to_string()
    }
}

/// The catalog as last loaded: the version key's versionstamp it was loaded at, and the
/// newest snapshot (commit) at which that was checked.
struct CachedCatalog {
    version: Option<Versionstamp>,
    checked_at: Option<Versionstamp>,
    catalog: Arc<Catalog>,
}

struct Inner {
    engine: Arc<dyn Engine>,
    ids: DefaultIds,
    catalog: RwLock<CachedCatalog>,
    escalation: Mutex<()>,
    interrupt: crate::Interrupt,
    sort_budget: usize,
    hub: Arc<crate::watch::Hub>,
    _sweeper: Option<Sweeper>,
}

impl Host for Inner {
    fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }
    fn ids(&self) -> &dyn Ids {
        &self.ids
    }
    fn catalog(&self, mtx: &ModelTxn) -> Result<Arc<Catalog>> {
        let key = Key::CatalogVersion.encode();
        let at = mtx.txn().read_versionstamp();
        {
            // A snapshot of the same commit as the one the cache was checked at: the catalog
            // version key cannot have moved (no read at all).
            let cached = self.catalog.read().unwrap_or_else(|p| p.into_inner());
            if cached.checked_at == Some(at) {
                mtx.txn().check_unchanged_as(&key, cached.version);
                return Ok(cached.catalog.clone());
            }
        }
        let vs = mtx.txn().snapshot_versionstamp(&key)?;
        mtx.txn().check_unchanged_as(&key, vs);
        let mut cached = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        if cached.version != vs || cached.checked_at.is_none() {
            cached.catalog = Arc::new(catalog_store::load(mtx.txn())?);
            cached.version = vs;
        }
        // Only ever forward: an older snapshot (a long transaction) must not make newer
        // ones read again.
        if cached.checked_at.is_none_or(|c| c < at) {
            cached.checked_at = Some(at);
        }
        Ok(cached.catalog.clone())
    }
    fn escalation(&self) -> &Mutex<()> {
        &self.escalation
    }
    fn interrupt(&self) -> &crate::Interrupt {
        &self.interrupt
    }
    fn sort_budget(&self) -> usize {
        self.sort_budget
    }
}

/// An open database. Cheap to clone; clones share the engine and the catalog cache.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

/// One statement of a script and how it went.
#[derive(Debug)]
pub struct StatementOutcome {
    /// Where the statement (or the parse error) is in the script.
    pub span: Span,
    pub result: Result<Output>,
}

impl Database {
    /// Opens (or creates) the database file at `path` on LMDB.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options::default())
    }

    /// Rewrites the database file at `path` compacted, giving the space of deleted data back
    /// to the file system, and returns the disk space it took before and after. Offline: it
    /// is refused (`storage.in_use`) while any handle of this or another process has the
    /// file open, and processes that open it meanwhile wait for it. Takes about as long as
    /// a `.backup` of the file.
    pub fn vacuum(path: impl AsRef<Path>) -> Result<kvm_storage::Vacuumed> {
        Ok(kvm_storage::vacuum(path, LmdbOptions::default())?)
    }

    /// [`Database::open`] with options. A path of the form
    /// `etcd://HOST:PORT[,HOST:PORT...]/APP[?max_txn_ops=N&max_request_bytes=N&timeout_ms=N]`
    /// opens database `APP` in an etcd cluster instead (feature `etcd`; see
    /// `docs/scaling.md`); the LMDB options do not apply to it.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Database> {
        if let Some(url) = path.as_ref().to_str().filter(|p| p.starts_with("etcd://")) {
            return Database::open_etcd(url, options);
        }
        let lmdb = LmdbOptions {
            clock: options.clock.clone(),
            map_size: options.map_size,
            write_map: options.write_map,
            read_ahead: options.read_ahead,
            read_only: options.read_only,
            ..LmdbOptions::default()
        };
        Database::with_engine(Arc::new(LmdbEngine::open(path, lmdb)?), options)
    }

    #[cfg(feature = "etcd")]
    fn open_etcd(url: &str, options: Options) -> Result<Database> {
        let engine = kvm_storage::EtcdEngine::open_url(url, options.clock.clone())?;
        Database::with_engine(Arc::new(engine), options)
    }

    #[cfg(not(feature = "etcd"))]
    fn open_etcd(url: &str, _options: Options) -> Result<Database> {
        Err(Error::Storage(kvm_storage::Error::Backend(format!(
            "cannot open {url}: this build of KVM has no etcd backend (build it with the \
             `etcd` feature: cargo build --features etcd)"
        ))))
    }

    /// Opens an existing database file for reading only (see [`Options::read_only`]).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Database> {
        Database::open_with(path, Options { read_only: true, ..Options::default() })
    }

    pub(crate) fn host(&self) -> &dyn Host {
        self.inner.as_ref()
    }

    pub(crate) fn hub(&self) -> &Arc<crate::watch::Hub> {
        &self.inner.hub
    }

    /// The count of local commits that wrote queue keys (an idle consumer notes it, then
    /// waits for it to move).
    pub(crate) fn queue_signal(&self) -> u64 {
        *self.inner.hub.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until a queue write after `seen`, or `timeout`.
    pub(crate) fn wait_queue_signal(&self, seen: u64, timeout: std::time::Duration) {
        let hub = &self.inner.hub;
        let g = hub.queues.lock().unwrap_or_else(|p| p.into_inner());
        if *g == seen {
            let _ = hub.queue_wake.wait_timeout(g, timeout);
        }
    }

    /// Wakes every idle queue consumer (a worker shutting down).
    pub(crate) fn wake_queue_waiters(&self) {
        let hub = &self.inner.hub;
        *hub.queues.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        hub.queue_wake.notify_all();
    }

    /// How many watches are registered on this database (open [`crate::Watch`] handles).
    pub fn watch_count(&self) -> usize {
        self.inner.hub.len()
    }

    /// A handle that interrupts this database's running statements from another thread
    /// (a Ctrl-C handler, a timeout): they fail with `kvm.interrupted` and write nothing;
    /// statements started afterwards run normally. See [`crate::Interrupt`].
    pub fn interrupt_handle(&self) -> crate::Interrupt {
        self.inner.interrupt.clone()
    }

    /// A fresh in-memory database (`Result` like [`Database::open`], so both open the same
    /// way; it does not fail today).
    pub fn memory() -> Result<Database> {
        Database::memory_with(Options::default())
    }

    /// [`Database::memory`] with options.
    pub fn memory_with(options: Options) -> Result<Database> {
        let engine = Arc::new(MemoryEngine::with_clock(options.clock.clone()));
        Ok(Database::build(engine, options))
    }

    /// A database over any storage engine (a test wrapper, a future backend). Loads the
    /// catalog: one in a newer format than this version reads is refused
    /// (`kvm.catalog_version`).
    pub fn with_engine(engine: Arc<dyn Engine>, options: Options) -> Result<Database> {
        let options_read_only = options.read_only;
        let db = Database::build(engine, options);
        catalog_store::open(db.inner.engine.as_ref(), !options_read_only)?;
        {
            let mtx = ModelTxn::new(db.inner.engine.as_ref())?;
            db.inner.catalog(&mtx)?;
        }
        // An index left "building" by a process stopped during its backfill, and the keys of
        // a model or index it was removing after a drop, are finished in the background,
        // from where it stopped: opening is never blocked by them.
        if !options_read_only {
            db.resume_backfills_in_background()?;
        }
        Ok(db)
    }

    /// Starts a thread that finishes every index left building, one batch per commit. It
    /// holds the database only weakly: once the last handle is dropped it stops after its
    /// current batch (the next open goes on from there).
    fn resume_backfills_in_background(&self) -> Result<()> {
        let pending = exec::building_indexes(self.inner.as_ref())?;
        let removing = exec::removal_pending(self.inner.as_ref())?;
        if pending.is_empty() && !removing {
            return Ok(());
        }
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new().name("kvm-backfill".into()).spawn(move || {
            // The keys of a model or index dropped by a process stopped mid-removal. (A
            // schema change meanwhile finishes them first itself.)
            if removing {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    match exec::removal_step(inner.as_ref()) {
                        Ok(true) => {}
                        // Done, or failed: the next schema change or open takes it up again.
                        Ok(false) | Err(_) => break,
                    }
                }
            }
            for (model, indexes) in pending {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    match exec::backfill_step(inner.as_ref(), &model, &indexes) {
                        Ok(exec::Step::More) => {}
                        // A duplicate under a UNIQUE index dropped it (as the ALTER would
                        // have); any other failure leaves it building, reported by CHECK
                        // DATABASE and taken up again by `finish_backfills` or the next open.
                        Ok(exec::Step::Done) | Err(_) => break,
                    }
                }
            }
        });
        spawned.map(drop).map_err(|e| Error::Storage(e.into()))
    }

    /// Finishes, in this thread, the schema work a stopped process left — every removal of
    /// a dropped model's or index's keys, then every index backfill still pending (both
    /// resumed in the background when the database was opened). Until then queries do not
    /// use those indexes.
    pub fn finish_backfills(&self) -> Result<()> {
        exec::finish_removals(self.inner.as_ref())?;
        exec::resume_backfills(self.inner.as_ref())
    }

    fn build(engine: Arc<dyn Engine>, options: Options) -> Database {
        // Every commit through the database wakes the watch hub's feed reader.
        let hub = crate::watch::Hub::new(engine.clone());
        let engine: Arc<dyn Engine> =
            Arc::new(crate::watch::Notifying { inner: engine, hub: hub.clone() });
        let seed = options.seed.unwrap_or_else(|| {
            let r = uuid::Uuid::new_v4().as_u128();
            (r as u64) ^ ((r >> 64) as u64)
        });
        let ids = DefaultIds {
            clock: options.clock,
            state: Mutex::new(seed | 1),
            last_ulid: Mutex::new((0, 0)),
        };
        let catalog = RwLock::new(CachedCatalog {
            version: None,
            checked_at: None,
            catalog: Arc::new(Catalog::default()),
        });
        let _sweeper = options
            .sweep_interval
            .filter(|_| !options.read_only)
            .and_then(|every| Sweeper::start(engine.clone(), every));
        Database {
            inner: Arc::new(Inner {
                engine,
                ids,
                catalog,
                escalation: Mutex::new(()),
                interrupt: crate::Interrupt::default(),
                sort_budget: options.sort_budget,
                hub,
                _sweeper,
            }),
        }
    }

    /// The schema as of the latest commit: every model with its fields and indexes (what
    /// the shell completes names from).
    pub fn catalog(&self) -> Result<Arc<Catalog>> {
        let mtx = ModelTxn::new(self.inner.engine.as_ref())?;
        self.inner.catalog(&mtx)
    }

    /// Deletes every expired record and index entry now (what the background sweeper does
    /// each period); returns how many entries it deleted.
    pub fn sweep_expired(&self) -> Result<usize> {
        sweep_all(self.inner.engine.as_ref())
    }

    /// The storage engine underneath (not public: a write through it would skip
    /// validation, indexes and relations).
    pub(crate) fn engine(&self) -> &Arc<dyn Engine> {
        &self.inner.engine
    }

    /// Writes a consistent copy of the database (one snapshot) to `path`, a new file:
    /// for LMDB a compacted copy of the data file that opens as a database.
    pub fn backup(&self, path: impl AsRef<Path>) -> Result<()> {
        Ok(self.inner.engine.backup(path.as_ref())?)
    }

    /// Runs one statement (its own commit, retried on conflict) and returns its output.
    /// Text holding several statements is refused before anything runs
    /// (`kvm.multiple_statements`): use [`Database::execute_batch`] for scripts, or a
    /// transaction to make several statements one commit. Every parameter given must be
    /// used, and every one used given (`kvm.param`).
    pub fn execute(&self, kql: &str, params: impl IntoParams) -> Result<Output> {
        let stmt = one_statement(kql)?;
        self.run_statement(&stmt, &params.into_params())
    }

    /// Runs the statements of `kql` in order, as a script does — each its own commit, and
    /// `BEGIN … COMMIT` spans the statements between them — stopping at the first error,
    /// which is returned (statements before it stay committed; a transaction still open is
    /// rolled back). Returns the last statement's output. Takes no parameters: bind them
    /// with [`Database::execute`], one statement at a time.
    pub fn execute_batch(&self, kql: &str) -> Result<Output> {
        let mut last = Output::Message(String::new());
        for outcome in self.execute_script("<kql>", kql) {
            last = outcome.result?;
        }
        Ok(last)
    }

    /// Runs one parsed statement.
    pub fn run_statement(&self, stmt: &Statement, params: &Params) -> Result<Output> {
        params.check(&Used::of(stmt))?;
        self.run_checked(stmt, params)
    }

    /// [`Database::run_statement`] for parameters already checked against the statement.
    fn run_checked(&self, stmt: &Statement, params: &Params) -> Result<Output> {
        if let Statement::Watch(_) = stmt {
            let watch = self.watch_statement(stmt, params.clone())?;
            return Ok(Output::Watch(crate::watch::WatchCell(Arc::new(Mutex::new(Some(watch))))));
        }
        if let Statement::Dequeue(d @ kvm_lang::ast::Dequeue { wait: Some(wait), .. }) = stmt {
            return self.dequeue_wait(d, wait, params);
        }
        exec::run(self.inner.as_ref(), stmt, params, None)
    }

    /// `DEQUEUE … WAIT d`: dequeues; while nothing is due, waits for an enqueue (or a due
    /// time, or the poll interval for other processes) and tries again, until `d` passed.
    fn dequeue_wait(
        &self,
        d: &kvm_lang::ast::Dequeue,
        wait: &kvm_lang::ast::DurationValue,
        params: &Params,
    ) -> Result<Output> {
        let ms = exec::duration_ms(params, wait, "WAIT", false)?.unwrap_or(0);
        let once = Statement::Dequeue(kvm_lang::ast::Dequeue { wait: None, ..d.clone() });
        self.queue(&d.queue.name).until_found(
            std::time::Duration::from_millis(ms),
            || exec::run(self.inner.as_ref(), &once, params, None),
            |out| !matches!(out, Output::Rows(r) if r.rows.is_empty()),
        )
    }

    /// Runs one statement that returns rows — `SELECT`, `SHOW`, `DEQUEUE`, `QUEUE STATS`, or a
    /// write with `RETURNING` — and returns them. Anything else (several statements, a write
    /// without `RETURNING`, DDL) is refused with `kvm.not_a_query` before it runs: use
    /// [`Database::execute`] for those.
    pub fn query(&self, kql: &str, params: impl IntoParams) -> Result<Rows> {
        let stmt = one_query(kql)?;
        rows_of(self.run_statement(&stmt, &params.into_params())?)
    }

    /// Runs a query and deserializes each row (an object of its columns) into `T`; a field
    /// that does not fit is `kvm.column_type`, naming the column.
    pub fn query_as<T: DeserializeOwned>(
        &self,
        kql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        self.query(kql, params)?.deserialize()
    }

    /// The first row of a query; `kvm.no_rows` when there is none (see
    /// [`Database::query_opt`]). Typed access: `row.get::<String>("email")?`.
    pub fn query_row(&self, kql: &str, params: impl IntoParams) -> Result<Row> {
        first_row(self.query(kql, params)?)?.ok_or(Error::NoRows)
    }

    /// The first row of a query, if there is one.
    pub fn query_opt(&self, kql: &str, params: impl IntoParams) -> Result<Option<Row>> {
        first_row(self.query(kql, params)?)
    }

    /// A query's rows as they are read, with bounded memory: a `SELECT` runs on its own
    /// thread and snapshot and the first row arrives as soon as it is read (an `ORDER BY`
    /// no index answers still sorts first). Dropping the stream stops the query. Other
    /// statements that return rows run to completion first. Errors while reading end the
    /// stream with an `Err` item.
    pub fn query_iter(&self, kql: &str, params: impl IntoParams) -> Result<RowStream> {
        let stmt = one_query(kql)?;
        let params = params.into_params();
        params.check(&Used::of(&stmt))?;
        if let Statement::Select(_) = stmt {
            return RowStream::start(self, stmt, params, None);
        }
        Ok(RowStream::of(rows_of(self.run_checked(&stmt, &params)?)?))
    }

    /// Parses and plans `kql` (one statement) once, for many executions.
    pub fn prepare(&self, kql: &str) -> Result<Prepared> {
        let stmt = kvm_lang::parse_statement(kql)?;
        let mtx = ModelTxn::new(self.inner.engine.as_ref())?;
        let catalog = self.inner.catalog(&mtx)?;
        let plan = exec::plan(&catalog, &stmt)?;
        let used = Used::of(&stmt);
        Ok(Prepared { db: self.clone(), stmt, used, planned: plan.map(|p| (catalog, p)) })
    }

    /// Runs a script lazily: each item is one statement's outcome (or a parse error), in
    /// source order. Stop at the first `Err` to get "stop at the first error". The script
    /// runs in one [`Session`], so `BEGIN … COMMIT` spans its statements; a transaction
    /// still open at the end is rolled back.
    pub fn execute_script<'s>(
        &'s self,
        file: &'s str,
        source: &'s str,
    ) -> impl Iterator<Item = StatementOutcome> + 's {
        let mut session = self.session();
        script_items(file, source).into_iter().map(move |item| session.run_item(item))
    }

    /// `UPSERT INTO model $value ON (on…)`: inserts `value` (an object), or updates the
    /// record found through `on` — the primary key (empty `on`) or the fields of a unique
    /// index. Atomic, and retried on conflict, so racing upserts of one key leave one
    /// record. Returns `inserted 1` or `updated 1`.
    pub fn upsert(&self, model: &str, value: impl IntoValue, on: &[&str]) -> Result<Output> {
        use kvm_lang::ast::{Ident, Param, Upsert};
        let stmt = Statement::Upsert(Upsert {
            model: Ident::new(model),
            value: kvm_lang::Expr::new(kvm_lang::ExprKind::Param(Param::Named("value".into()))),
            on: on.iter().map(|f| Ident::new(*f)).collect(),
            update: None,
            expire: None,
            returning: None,
            span: Span::default(),
        });
        self.run_statement(&stmt, &Params::none().with("value", value))
    }

    /// A session: runs statements one after another, keeping `BEGIN … COMMIT` state
    /// between them (what a shell or a script runner holds).
    pub fn session(&self) -> Session<'_> {
        Session { db: self, state: TxnState::None }
    }

    /// Runs `f` as one serializable transaction: its statements see each other's writes and
    /// commit as one batch when `f` returns `Ok`. When the commit conflicts (data `f` read
    /// was changed by a concurrent commit), `f` runs again on a fresh snapshot, at most
    /// `exec::MAX_ATTEMPTS` times, then [`Error::Conflict`] (retryable) is returned. An
    /// `Err` from `f` rolls back and is returned as is (a retryable one — a conflict met
    /// inside — runs `f` again). For the application's own error type, see
    /// [`Database::try_transaction`].
    pub fn transaction<T>(&self, mut f: impl FnMut(&Transaction) -> Result<T>) -> Result<T> {
        self.try_transaction(|tx| f(tx).map_err(TxError::<std::convert::Infallible>::Kvm)).map_err(
            |e| match e {
                TxError::Kvm(e) => e,
                TxError::Abort(never) => match never {},
            },
        )
    }

    /// [`Database::transaction`] with the application's own error: `f` returns
    /// `Err(TxError::Abort(e))` to roll back with `e` (returned as is, never retried), and
    /// KVM's errors pass through `?` as [`TxError::Kvm`] (retried when retryable, as a
    /// conflicting commit is).
    ///
    /// ```
    /// # use kvm::{Database, TxError};
    /// # let db = Database::memory()?;
    /// # db.execute("DEFINE MODEL accounts (id INT PRIMARY KEY, balance INT NOT NULL)", ())?;
    /// # db.execute("INSERT INTO accounts {id: 1, balance: 5}", ())?;
    /// #[derive(Debug)]
    /// struct Insufficient(i64);
    /// let r = db.try_transaction(|tx| {
    ///     let balance: i64 = tx.query_row("SELECT balance FROM accounts WHERE id = 1", ())?
    ///         .get("balance")?;
    ///     if balance < 10 {
    ///         return Err(TxError::Abort(Insufficient(balance)));
    ///     }
    ///     tx.execute("UPDATE accounts SET balance = balance - 10 WHERE id = 1", ())?;
    ///     Ok(())
    /// });
    /// assert!(matches!(r, Err(TxError::Abort(Insufficient(5)))));
    /// # Ok::<(), kvm::Error>(())
    /// ```
    pub fn try_transaction<T, E>(
        &self,
        mut f: impl FnMut(&Transaction) -> Result<T, TxError<E>>,
    ) -> Result<T, TxError<E>> {
        let mut attempt = 0;
        let host: &dyn Host = self.inner.as_ref();
        exec::queue_if_contended(host)?;
        let mut _turn = None;
        loop {
            attempt += 1;
            if _turn.is_none() && attempt >= exec::ESCALATE_AFTER {
                _turn = Some(exec::escalate(host)?);
            }
            let tx = Transaction::begin(self)?;
            let outcome = match f(&tx) {
                Ok(value) => tx.commit().map(|()| value),
                Err(TxError::Kvm(e)) => Err(e),
                Err(abort) => return Err(abort),
            };
            match outcome {
                Ok(value) => return Ok(value),
                Err(e) if e.is_retryable() => {
                    if attempt >= exec::MAX_ATTEMPTS {
                        return Err(TxError::Kvm(Error::Conflict { attempts: attempt }));
                    }
                    exec::retry_pause(attempt, _turn.is_some());
                }
                Err(e) => return Err(TxError::Kvm(e)),
            }
        }
    }
}

/// How a [`Database::try_transaction`] closure fails: with the application's own error
/// (rolled back, returned as is) or with KVM's (`?` converts it; retried when retryable).
#[derive(Debug)]
pub enum TxError<E> {
    /// The application rolled the transaction back with its own error.
    Abort(E),
    /// KVM failed (or the transaction kept conflicting: [`Error::Conflict`]).
    Kvm(Error),
}

impl<E> From<Error> for TxError<E> {
    fn from(e: Error) -> Self {
        TxError::Kvm(e)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for TxError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxError::Abort(e) => write!(f, "transaction aborted: {e}"),
            TxError::Kvm(e) => write!(f, "{e}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for TxError<E> {}

/// The one statement of `kql`; text with several is refused before anything runs.
fn one_statement(kql: &str) -> Result<Statement> {
    let script = kvm_lang::parse_script("<kql>", kql);
    if let Some(d) = script.diagnostics.into_iter().next() {
        return Err(Error::Parse(d));
    }
    let mut statements = script.statements.into_iter();
    match (statements.next(), statements.next()) {
        (Some(stmt), None) => Ok(stmt),
        (None, _) => Err(Error::Invalid {
            code: "kvm.empty_statement",
            message: "there is no statement to run".into(),
            span: None,
            help: None,
        }),
        (Some(_), Some(second)) => Err(Error::Invalid {
            code: "kvm.multiple_statements",
            message: "execute() runs one statement; this text holds several (nothing was run)"
                .into(),
            span: Some(second.span()),
            help: Some(
                "run scripts with execute_batch() or execute_script(), or make the \
                 statements one commit inside a transaction"
                    .into(),
            ),
        }),
    }
}

/// The first row of `rows`, with typed access.
fn first_row(rows: Rows) -> Result<Option<Row>> {
    Ok(rows.into_iter().next())
}

/// The one statement of `kql` when it yields rows; refused before anything runs otherwise
/// (`query` must never write and then report an error).
fn one_query(kql: &str) -> Result<Statement> {
    let script = kvm_lang::parse_script("<kql>", kql);
    if let Some(d) = script.diagnostics.into_iter().next() {
        return Err(Error::Parse(d));
    }
    let mut statements = script.statements.into_iter();
    let (Some(stmt), None) = (statements.next(), statements.next()) else {
        return Err(Error::Invalid {
            code: "kvm.not_a_query",
            message: "query() runs exactly one statement".into(),
            span: None,
            help: Some("run scripts with execute() or execute_script()".into()),
        });
    };
    if !yields_rows(&stmt) {
        return Err(Error::Invalid {
            code: "kvm.not_a_query",
            message: format!("{} does not return rows; nothing was run", stmt.kind_name()),
            span: Some(stmt.span()),
            help: Some("use execute(), or add RETURNING to a write".into()),
        });
    }
    Ok(stmt)
}

/// Whether a statement's output is a table of rows.
fn yields_rows(stmt: &Statement) -> bool {
    crate::statement::kind_of(stmt).rows
}

fn rows_of(out: Output) -> Result<Rows> {
    match out {
        Output::Rows(r) => Ok(r),
        other => Err(Error::Internal(format!("a query returned {other:?}, not rows"))),
    }
}

fn script_items(file: &str, source: &str) -> Vec<Result<Statement, kvm_lang::Diagnostic>> {
    let script = kvm_lang::parse_script(file, source);
    let mut items: Vec<(u32, Result<Statement, kvm_lang::Diagnostic>)> =
        script.statements.into_iter().map(|s| (s.span().start, Ok(s))).collect();
    items.extend(script.diagnostics.into_iter().map(|d| (d.span.start, Err(d))));
    items.sort_by_key(|(start, _)| *start);
    items.into_iter().map(|(_, item)| item).collect()
}

/// An open transaction: a snapshot and a write buffer that every statement runs in, all
/// reads checked at commit (serializable).
pub struct Transaction<'d> {
    db: &'d Database,
    mtx: ModelTxn<'d>,
}

impl<'d> Transaction<'d> {
    fn begin(db: &'d Database) -> Result<Transaction<'d>> {
        let mtx = ModelTxn::new(db.inner.engine.as_ref())?;
        mtx.txn().track_reads(true);
        Ok(Transaction { db, mtx })
    }

    /// The raw transaction underneath (queue operations write through it).
    pub(crate) fn txn(&self) -> &crate::txn::Txn<'d> {
        self.mtx.txn()
    }

    /// Runs one statement inside the transaction (several are refused, as by
    /// [`Database::execute`]).
    pub fn execute(&self, kql: &str, params: impl IntoParams) -> Result<Output> {
        let stmt = one_statement(kql)?;
        self.run_statement(&stmt, &params.into_params())
    }

    /// Runs a query inside the transaction (it sees the transaction's own writes); the same
    /// statements as [`Database::query`], refusing the others before they run.
    pub fn query(&self, kql: &str, params: impl IntoParams) -> Result<Rows> {
        let stmt = one_query(kql)?;
        rows_of(self.run_statement(&stmt, &params.into_params())?)
    }

    /// [`Database::query_as`] inside the transaction.
    pub fn query_as<T: DeserializeOwned>(
        &self,
        kql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        self.query(kql, params)?.deserialize()
    }

    /// [`Database::query_row`] inside the transaction.
    pub fn query_row(&self, kql: &str, params: impl IntoParams) -> Result<Row> {
        first_row(self.query(kql, params)?)?.ok_or(Error::NoRows)
    }

    /// [`Database::query_opt`] inside the transaction.
    pub fn query_opt(&self, kql: &str, params: impl IntoParams) -> Result<Option<Row>> {
        first_row(self.query(kql, params)?)
    }

    /// Runs a query inside the transaction, handing each row to `f` as it is read: memory
    /// stays bounded however many rows there are, and the transaction's own writes are seen.
    /// `f` returns `false` to stop early. (A transaction belongs to one thread, so its rows
    /// are pushed to a callback rather than pulled from another thread as
    /// [`Database::query_iter`]'s are.) Returns the cursor after a full page, as
    /// [`Rows::next_cursor`] would. Statements other than `SELECT` run to completion first.
    pub fn query_each(
        &self,
        kql: &str,
        params: impl IntoParams,
        mut f: impl FnMut(Row) -> Result<bool>,
    ) -> Result<Option<String>> {
        let stmt = one_query(kql)?;
        let params = params.into_params();
        if !matches!(stmt, Statement::Select(_)) {
            let rows = rows_of(self.run_statement(&stmt, &params)?)?;
            let columns: Arc<[String]> = rows.columns.into();
            for values in rows.rows {
                if !f(Row::new(columns.clone(), values))? {
                    break;
                }
            }
            return Ok(rows.next_cursor);
        }
        params.check(&Used::of(&stmt))?;
        let columns: std::cell::RefCell<Arc<[String]>> = Default::default();
        exec::stream_in(
            self.db.inner.as_ref(),
            &self.mtx,
            &stmt,
            &params,
            None,
            &mut |names| {
                *columns.borrow_mut() = names.into();
                true
            },
            &mut |values| f(Row::new(columns.borrow().clone(), values)),
        )
    }

    /// Runs one parsed statement inside the transaction.
    pub fn run_statement(&self, stmt: &Statement, params: &Params) -> Result<Output> {
        params.check(&Used::of(stmt))?;
        if !in_transaction_allowed(stmt) {
            return Err(Error::Invalid {
                code: "kvm.txn_statement",
                message: format!("{} cannot run inside a transaction", stmt.kind_name()),
                span: Some(stmt.span()),
                help: Some("run schema changes, CHECK and WATCH outside BEGIN … COMMIT".into()),
            });
        }
        let (out, _) = exec::run_in(self.db.inner.as_ref(), &self.mtx, stmt, params, None)?;
        Ok(out)
    }

    /// Commits the buffered writes as one batch, checking every key read is unchanged.
    fn commit(self) -> Result<()> {
        let Transaction { db, mtx } = self;
        if mtx.txn().is_dirty() {
            // The snapshot closes here: a commit that must grow the map waits for this
            // process's snapshots, its own included.
            let batch = mtx.into_batch();
            exec::within_limits(db.inner.engine.as_ref(), &batch)?;
            db.inner.engine.commit(&batch)?;
        }
        Ok(())
    }
}

fn in_transaction_allowed(stmt: &Statement) -> bool {
    crate::statement::kind_of(stmt).in_transaction
}

enum TxnState<'d> {
    None,
    Active(Box<Transaction<'d>>),
    /// A statement failed inside the transaction: its writes are dropped.
    Aborted,
}

/// Statements run one after another with `BEGIN … COMMIT | ROLLBACK` state kept between
/// them. Rules (also in `docs/kql.md`): outside a transaction each statement is its own
/// commit (retried on conflict); inside, statements see the transaction's writes and
/// `COMMIT` writes them as one batch, or fails with a retryable [`Error::Conflict`] when
/// something it read changed (nothing is written; the transaction is over). A failing
/// statement aborts the transaction: nothing of it is written and the statements up to
/// `COMMIT`/`ROLLBACK` fail with `kvm.txn_aborted`; `COMMIT` of an aborted transaction
/// reports it was rolled back.
pub struct Session<'d> {
    db: &'d Database,
    state: TxnState<'d>,
}

impl<'d> Session<'d> {
    /// Whether a transaction is open (or aborted and waiting for `COMMIT`/`ROLLBACK`).
    pub fn in_transaction(&self) -> bool {
        !matches!(self.state, TxnState::None)
    }

    /// Runs every statement of a script in this session, in source order.
    pub fn execute_script(&mut self, file: &str, source: &str) -> Vec<StatementOutcome> {
        self.script(file, source).collect()
    }

    /// [`Session::execute_script`], lazily: each statement runs when its outcome is pulled,
    /// so a caller that stops pulling (at the first error, say) stops running.
    pub fn script<'s>(
        &'s mut self,
        file: &str,
        source: &str,
    ) -> impl Iterator<Item = StatementOutcome> + use<'s, 'd> {
        script_items(file, source).into_iter().map(move |item| self.run_item(item))
    }

    /// Runs one script item; a statement that does not parse fails like any other, so it
    /// aborts an open transaction too.
    fn run_item(&mut self, item: Result<Statement, kvm_lang::Diagnostic>) -> StatementOutcome {
        match item {
            Ok(stmt) => StatementOutcome {
                span: stmt.span(),
                result: self.run_statement(&stmt, &Params::default()),
            },
            Err(d) => {
                if let TxnState::Active(_) = self.state {
                    self.state = TxnState::Aborted;
                }
                StatementOutcome { span: d.span, result: Err(Error::Parse(d)) }
            }
        }
    }

    /// Runs one statement in the session.
    pub fn run_statement(&mut self, stmt: &Statement, params: &Params) -> Result<Output> {
        match stmt {
            Statement::Begin(_) => {
                if self.in_transaction() {
                    return Err(Error::Invalid {
                        code: "kvm.txn_nested",
                        message: "a transaction is already open (transactions do not nest)".into(),
                        span: Some(stmt.span()),
                        help: Some("COMMIT or ROLLBACK it first".into()),
                    });
                }
                self.state = TxnState::Active(Box::new(Transaction::begin(self.db)?));
                Ok(Output::Message("BEGIN".into()))
            }
            Statement::Commit(_) | Statement::Rollback(_) => {
                let commit = matches!(stmt, Statement::Commit(_));
                match std::mem::replace(&mut self.state, TxnState::None) {
                    TxnState::None => Err(Error::Invalid {
                        code: "kvm.no_txn",
                        message: format!("{} without BEGIN", stmt.kind_name()),
                        span: Some(stmt.span()),
                        help: None,
                    }),
                    TxnState::Aborted if commit => Err(Error::TxnAborted(
                        "an earlier statement failed; nothing was committed (rolled back)".into(),
                    )),
                    TxnState::Aborted => Ok(Output::Message("ROLLBACK".into())),
                    TxnState::Active(tx) if commit => match tx.commit() {
                        Ok(()) => Ok(Output::Message("COMMIT".into())),
                        Err(e) if e.is_retryable() => Err(Error::Conflict { attempts: 1 }),
                        Err(e) => Err(e),
                    },
                    TxnState::Active(_) => Ok(Output::Message("ROLLBACK".into())),
                }
            }
            _ => match &self.state {
                TxnState::None => self.db.run_statement(stmt, params),
                TxnState::Aborted => Err(Error::TxnAborted(
                    "an earlier statement failed; ROLLBACK (or COMMIT) to end it".into(),
                )),
                TxnState::Active(tx) => {
                    let result = tx.run_statement(stmt, params);
                    if result.is_err() {
                        self.state = TxnState::Aborted;
                    }
                    result
                }
            },
        }
    }
}

/// A statement parsed and planned once; [`Prepared::execute`] binds new parameters. When
/// the schema changed since it was planned, it is planned again.
pub struct Prepared {
    db: Database,
    stmt: Statement,
    used: Used,
    planned: Option<(Arc<Catalog>, Plan)>,
}

impl Prepared {
    /// Runs the statement with `params` bound.
    pub fn execute(&self, params: impl IntoParams) -> Result<Output> {
        let params = params.into_params();
        params.check(&self.used)?;
        if let Statement::Watch(_) | Statement::Dequeue(_) = self.stmt {
            return self.db.run_checked(&self.stmt, &params);
        }
        let prepared = self.planned.as_ref().map(|(c, p)| (c, p));
        exec::run(self.db.inner.as_ref(), &self.stmt, &params, prepared)
    }

    /// Runs the statement, which must return rows ([`Database::query`]).
    pub fn query(&self, params: impl IntoParams) -> Result<Rows> {
        self.refuse_non_query()?;
        rows_of(self.execute(params)?)
    }

    /// [`Database::query_as`] for the prepared statement.
    pub fn query_as<T: DeserializeOwned>(&self, params: impl IntoParams) -> Result<Vec<T>> {
        self.query(params)?.deserialize()
    }

    /// [`Database::query_row`] for the prepared statement.
    pub fn query_row(&self, params: impl IntoParams) -> Result<Row> {
        first_row(self.query(params)?)?.ok_or(Error::NoRows)
    }

    /// [`Database::query_opt`] for the prepared statement.
    pub fn query_opt(&self, params: impl IntoParams) -> Result<Option<Row>> {
        first_row(self.query(params)?)
    }

    /// [`Database::query_iter`] for the prepared statement (its plan is reused while the
    /// schema is unchanged).
    pub fn query_iter(&self, params: impl IntoParams) -> Result<RowStream> {
        self.refuse_non_query()?;
        let params = params.into_params();
        params.check(&self.used)?;
        if let Statement::Select(_) = self.stmt {
            return RowStream::start(&self.db, self.stmt.clone(), params, self.planned.clone());
        }
        Ok(RowStream::of(rows_of(self.db.run_checked(&self.stmt, &params)?)?))
    }

    fn refuse_non_query(&self) -> Result<()> {
        if yields_rows(&self.stmt) {
            return Ok(());
        }
        Err(Error::Invalid {
            code: "kvm.not_a_query",
            message: format!("{} does not return rows; nothing was run", self.stmt.kind_name()),
            span: Some(self.stmt.span()),
            help: Some("use execute(), or add RETURNING to a write".into()),
        })
    }

    /// The plan, as `EXPLAIN` prints it.
    pub fn explain(&self) -> String {
        self.planned.as_ref().map(|(_, p)| p.to_string()).unwrap_or_default()
    }
}
