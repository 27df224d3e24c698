//! The watch hub: which watches depend on what, and the tailer that reads the change feed
//! and wakes the watches a commit touched. A record watch is found by the record keys it
//! reads, any other watch by the models its plan reads — never by testing every watch
//! against every changed key. The tailer runs on its own thread while watches exist: local
//! commits wake it at once ([`Notifying`] wraps the engine), commits of other processes are
//! found by polling the feed every [`POLL`] (one cheap read, 200 a second while watches
//! exist; no busy loop).
//!
//! A watch over one model whose filter compares only stored fields with constants is routed
//! finer still ([`super::route`]): a changed record of its model wakes it only when the
//! record now passes the filter or was in the result last delivered.
//!
//! A woken watch only gets a dirty mark (plus the keys that expired); its consumer re-runs
//! the query at the latest snapshot when it asks for the next event. So a slow consumer
//! costs no memory and sees rapid changes coalesced into the latest state — never a lost
//! final state.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use kvm_storage::{
    AtomicBatch, ChangeKind, ChangeSet, CommitLimits, Engine, Result as StorageResult, Snapshot,
    Versionstamp,
};

use super::route::{Delivered, RecordFilter};
use crate::exec::Dependencies;
use crate::keyspace::{self, Changed, KeyPrefix};

/// How often the tailer looks for commits of other processes when nothing woke it.
pub const POLL: Duration = Duration::from_millis(5);

/// The pause after reading commits, so that a burst of commits is read in few requests.
pub const BUSY_PAUSE: Duration = Duration::from_millis(1);

/// Change sets read from the feed per request.
const FEED_BATCH: usize = 1000;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one watch's consumer is told.
#[derive(Default)]
pub struct Mark {
    /// A commit touched what the watch depends on since it last evaluated.
    pub dirty: bool,
    /// Record keys deleted by expiry in those commits.
    pub expired: HashSet<Vec<u8>>,
    /// The watch's dependencies changed shape (a schema change): evaluate again.
    pub closed: bool,
}

/// A watch's mailbox: a mark and a condition variable its consumer waits on, and the
/// record keys it last delivered (for routing by record).
#[derive(Default)]
pub struct Slot {
    pub mark: Mutex<Mark>,
    pub cv: Condvar,
    pub delivered: Mutex<Delivered>,
}

impl Slot {
    fn touch(&self, expired: Option<&[u8]>) {
        let mut m = lock(&self.mark);
        m.dirty = true;
        if let Some(k) = expired {
            m.expired.insert(k.to_vec());
        }
        self.cv.notify_all();
    }
}

#[derive(Default)]
struct Registry {
    next: u64,
    slots: HashMap<u64, Arc<Slot>>,
    /// Watches woken by any change of a model's records.
    by_model: HashMap<String, HashSet<u64>>,
    /// Watches woken by a change of one record key.
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    /// Each watch's registrations, to undo them.
    deps: HashMap<u64, (Vec<String>, Vec<Vec<u8>>)>,
    /// The watches filed under a model that a changed record wakes only when it matters.
    filters: HashMap<u64, RecordFilter>,
    /// The commit each watch was registered at: earlier ones do not wake it.
    since: HashMap<u64, Versionstamp>,
    /// The tailer thread is running.
    tailing: bool,
}

/// The hub of one database.
pub struct Hub {
    engine: Arc<dyn Engine>,
    reg: Mutex<Registry>,
    /// Bumped by every local commit; the tailer waits on it.
    commits: Mutex<u64>,
    wake: Condvar,
    /// Bumped by every local commit that wrote queue keys; idle queue workers wait on it.
    pub(crate) queues: Mutex<u64>,
    pub(crate) queue_wake: Condvar,
    /// The prefix of every queue key (`['__sys', 'queue']`), encoded once: each commit
    /// is tested against it.
    queue_prefix: Vec<u8>,
}

impl Hub {
    pub fn new(engine: Arc<dyn Engine>) -> Arc<Hub> {
        Arc::new(Hub {
            engine,
            reg: Mutex::new(Registry::default()),
            commits: Mutex::new(0),
            wake: Condvar::new(),
            queues: Mutex::new(0),
            queue_wake: Condvar::new(),
            queue_prefix: KeyPrefix::QueueRoot.encode(),
        })
    }

    /// A local commit happened: wake the tailer.
    pub fn poke(&self) {
        *lock(&self.commits) += 1;
        self.wake.notify_all();
    }

    /// Registers a watch on what its query depends on; starts the tailer at the current
    /// commit if it is not running.
    pub fn register(self: &Arc<Self>, deps: Dependencies) -> (u64, Arc<Slot>) {
        let mut reg = lock(&self.reg);
        reg.next += 1;
        let id = reg.next;
        let slot = Arc::new(Slot::default());
        reg.slots.insert(id, slot.clone());
        Self::index(&mut reg, id, deps);
        // The watch's first evaluation reads a later snapshot than this one: the commits up
        // to here (a running tailer may not have read them yet) cannot change what it
        // delivers, so they do not wake it.
        let from = self.engine.snapshot().map(|s| s.versionstamp()).unwrap_or(Versionstamp::ZERO);
        reg.since.insert(id, from);
        if !reg.tailing {
            let hub = self.clone();
            let spawned = std::thread::Builder::new()
                .name("kvm-watch-tailer".into())
                .spawn(move || hub.tail(from));
            if spawned.is_err() {
                reg.tailing = false;
                slot.mark.lock().unwrap_or_else(|p| p.into_inner()).closed = true;
            }
        }
        (id, slot)
    }

    /// Changes a watch's dependencies (its plan changed after a schema change).
    pub fn update(&self, id: u64, deps: Dependencies) {
        let mut reg = lock(&self.reg);
        Self::forget(&mut reg, id);
        Self::index(&mut reg, id, deps);
    }

    /// Files a watch under the record keys it reads when its plan reads by key only, else
    /// under every model the plan reads.
    fn index(reg: &mut Registry, id: u64, deps: Dependencies) {
        let (models, keys) = match deps.keys {
            Some(keys) => (Vec::new(), keys),
            None => (deps.models, Vec::new()),
        };
        if let Some(f) = deps.filter.filter(|_| keys.is_empty()) {
            reg.filters.insert(id, f);
        }
        for m in &models {
            reg.by_model.entry(m.clone()).or_default().insert(id);
        }
        for k in &keys {
            reg.by_key.entry(k.clone()).or_default().insert(id);
        }
        reg.deps.insert(id, (models, keys));
    }

    fn forget(reg: &mut Registry, id: u64) {
        reg.filters.remove(&id);
        if let Some((models, keys)) = reg.deps.remove(&id) {
            for m in models {
                if let Some(set) = reg.by_model.get_mut(&m) {
                    set.remove(&id);
                    if set.is_empty() {
                        reg.by_model.remove(&m);
                    }
                }
            }
            for k in keys {
                if let Some(set) = reg.by_key.get_mut(&k) {
                    set.remove(&id);
                    if set.is_empty() {
                        reg.by_key.remove(&k);
                    }
                }
            }
        }
    }

    /// Removes a watch (its handle was dropped).
    pub fn unregister(&self, id: u64) {
        let mut reg = lock(&self.reg);
        Self::forget(&mut reg, id);
        reg.slots.remove(&id);
        reg.since.remove(&id);
        drop(reg);
        self.wake.notify_all();
    }

    /// How many watches are registered.
    pub fn len(&self) -> usize {
        lock(&self.reg).slots.len()
    }

    /// The tailer: reads the feed after `from`, waking the watches each change touches,
    /// until no watch is left.
    fn tail(self: Arc<Self>, mut from: Versionstamp) {
        let mut seen_commits = *lock(&self.commits);
        loop {
            {
                let mut reg = lock(&self.reg);
                if reg.slots.is_empty() {
                    reg.tailing = false;
                    return;
                }
            }
            match self.engine.changes_since(from, FEED_BATCH) {
                Ok(sets) if !sets.is_empty() => {
                    let full = sets.len() == FEED_BATCH;
                    // Records are read (for routing by record) at one snapshot taken after
                    // the feed: their latest state, which includes every commit read.
                    let mut now = Latest::new(self.engine.as_ref());
                    for set in &sets {
                        self.dispatch(set, &mut now);
                    }
                    drop(now);
                    if let Some(last) = sets.last() {
                        from = last.versionstamp;
                    }
                    if full {
                        continue;
                    }
                    // Under a stream of commits (several per read), read the feed at most
                    // every BUSY_PAUSE: the commits in between are read together (one
                    // request, not one each), so the tailer takes little from the writers.
                    // Lone commits are read as they come.
                    if sets.len() > 1 {
                        std::thread::sleep(BUSY_PAUSE);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    // Retention dropped commits this tailer had not read (or the feed failed):
                    // every watch evaluates again, which is always correct.
                    let reg = lock(&self.reg);
                    reg.slots.values().for_each(|s| s.touch(None));
                    drop(reg);
                    if let Ok(s) = self.engine.snapshot() {
                        from = s.versionstamp();
                    }
                }
            }
            let mut commits = lock(&self.commits);
            if *commits == seen_commits {
                commits = self
                    .wake
                    .wait_timeout(commits, POLL)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            seen_commits = *commits;
        }
    }

    /// Wakes the watches one commit touched.
    fn dispatch(&self, set: &ChangeSet, now: &mut Latest) {
        let reg = lock(&self.reg);
        let mut woken: HashSet<u64> = HashSet::new();
        for c in &set.changes {
            let model = match keyspace::changed(&c.key) {
                Changed::Record { model } => model,
                Changed::Catalog => {
                    // A schema change: every watch re-plans and evaluates again.
                    reg.slots.values().for_each(|s| s.touch(None));
                    continue;
                }
                // Index entries change with their records; queues and system keys are
                // not watched.
                Changed::Other => continue,
            };
            let expired = (c.kind == ChangeKind::Expire).then_some(c.key.as_slice());
            let mut wake = |id: &u64| {
                if reg.since.get(id).is_some_and(|since| set.versionstamp <= *since) {
                    return;
                }
                if let Some(slot) = reg.slots.get(id) {
                    if let Some(filter) = reg.filters.get(id) {
                        let d = lock(&slot.delivered);
                        let matters = d.evaluating
                            || d.keys.contains(&c.key)
                            || now.record(&c.key).is_none_or(|r| filter.admits(r));
                        if !matters {
                            return;
                        }
                    }
                    if woken.insert(*id) || expired.is_some() {
                        slot.touch(expired);
                    }
                }
            };
            if let Some(ids) = reg.by_model.get(&model) {
                ids.iter().for_each(&mut wake);
            }
            if let Some(ids) = reg.by_key.get(&c.key) {
                ids.iter().for_each(&mut wake);
            }
        }
    }
}

/// The latest state of records, read at one snapshot taken when first needed, each record
/// read once.
struct Latest<'e> {
    engine: &'e dyn Engine,
    snap: Option<Box<dyn Snapshot + 'e>>,
    read: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'e> Latest<'e> {
    fn new(engine: &'e dyn Engine) -> Self {
        Latest { engine, snap: None, read: HashMap::new() }
    }

    /// The stored bytes of the record at `key` (`Some(None)`: absent or expired), or `None`
    /// when it could not be read.
    fn record(&mut self, key: &[u8]) -> Option<Option<&[u8]>> {
        if !self.read.contains_key(key) {
            if self.snap.is_none() {
                self.snap = Some(self.engine.snapshot().ok()?);
            }
            let snap = self.snap.as_ref()?;
            let value = snap.get(key).ok()?.map(|e| e.value().to_vec());
            self.read.insert(key.to_vec(), value);
        }
        self.read.get(key).map(|v| v.as_deref())
    }
}

/// The engine as the database uses it: every successful local commit (and expiry sweep)
/// pokes the hub.
pub struct Notifying {
    pub inner: Arc<dyn Engine>,
    pub hub: Arc<Hub>,
}

impl Engine for Notifying {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn snapshot(&self) -> StorageResult<Box<dyn Snapshot + '_>> {
        self.inner.snapshot()
    }
    fn snapshot_with(&self, first_reads: &[&[u8]]) -> StorageResult<Box<dyn Snapshot + '_>> {
        self.inner.snapshot_with(first_reads)
    }
    fn commit(&self, batch: &AtomicBatch) -> StorageResult<Versionstamp> {
        let vs = self.inner.commit(batch)?;
        self.hub.poke();
        if batch.mutations.iter().any(|m| m.key().starts_with(&self.hub.queue_prefix)) {
            *lock(&self.hub.queues) += 1;
            self.hub.queue_wake.notify_all();
        }
        Ok(vs)
    }
    fn write_direct(
        &self,
        bytes: usize,
        write: &mut dyn FnMut(&dyn kvm_storage::Direct) -> StorageResult<()>,
    ) -> StorageResult<Option<Versionstamp>> {
        // (Direct writes are model inserts only: no queue key to wake a worker for.)
        let vs = self.inner.write_direct(bytes, write)?;
        if vs.is_some() {
            self.hub.poke();
        }
        Ok(vs)
    }
    fn changes_since(&self, after: Versionstamp, limit: usize) -> StorageResult<Vec<ChangeSet>> {
        self.inner.changes_since(after, limit)
    }
    fn sweep_expired(&self, limit: usize) -> StorageResult<usize> {
        let n = self.inner.sweep_expired(limit)?;
        if n > 0 {
            self.hub.poke();
        }
        Ok(n)
    }
    fn commit_limits(&self) -> Option<CommitLimits> {
        self.inner.commit_limits()
    }
    fn backup(&self, path: &std::path::Path) -> StorageResult<()> {
        self.inner.backup(path)
    }
    fn writer_turn(&self) -> StorageResult<Option<kvm_storage::WriterTurn<'_>>> {
        self.inner.writer_turn()
    }
    fn await_writer_turn(&self) -> StorageResult<()> {
        self.inner.await_writer_turn()
    }
    fn check_pages(&self) -> StorageResult<Option<u64>> {
        self.inner.check_pages()
    }
}
