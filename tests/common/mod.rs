//! Shared test support: a storage wrapper that records every committed batch (for `[ops]`),
//! and databases on both backends with a fixed clock and id seed.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use kvm::storage::{
    AtomicBatch, ChangeSet, Engine, LmdbEngine, LmdbOptions, ManualClock, MemoryEngine, Snapshot,
    Versionstamp,
};
use kvm::{Database, Options};

/// 2023-11-14T22:13:20Z.
pub const START_MILLIS: u64 = 1_700_000_000_000;

/// Records committed batches.
pub struct Recorder {
    pub inner: Box<dyn Engine>,
    pub log: Mutex<Vec<AtomicBatch>>,
}

impl Engine for Recorder {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn snapshot(&self) -> kvm::storage::Result<Box<dyn Snapshot + '_>> {
        self.inner.snapshot()
    }
    fn snapshot_with(&self, first: &[&[u8]]) -> kvm::storage::Result<Box<dyn Snapshot + '_>> {
        self.inner.snapshot_with(first)
    }
    fn commit(&self, batch: &AtomicBatch) -> kvm::storage::Result<Versionstamp> {
        let vs = self.inner.commit(batch)?;
        self.log.lock().unwrap().push(batch.clone());
        Ok(vs)
    }
    fn changes_since(
        &self,
        after: Versionstamp,
        limit: usize,
    ) -> kvm::storage::Result<Vec<ChangeSet>> {
        self.inner.changes_since(after, limit)
    }
    fn sweep_expired(&self, limit: usize) -> kvm::storage::Result<usize> {
        self.inner.sweep_expired(limit)
    }
    fn commit_limits(&self) -> Option<kvm::storage::CommitLimits> {
        self.inner.commit_limits()
    }
}

pub enum Backend {
    Memory,
    Lmdb,
    /// A database of its own on the etcd this test process starts (feature `etcd`).
    #[cfg(feature = "etcd")]
    Etcd,
}

/// Why the tests on etcd cannot run here (printed, and those tests are left out), or
/// `None` when they can.
#[cfg(feature = "etcd")]
pub fn etcd_unavailable() -> Option<String> {
    kvm::storage::etcd_testing::shared().err()
}

/// A database with a fixed clock and seed, and its recorder.
pub fn open(backend: Backend) -> (Database, Arc<Recorder>, Option<tempfile::TempDir>) {
    let (db, rec, dir, _) = open_with_clock(backend);
    (db, rec, dir)
}

/// [`open`], also returning the manual clock the database runs on.
pub fn open_with_clock(
    backend: Backend,
) -> (Database, Arc<Recorder>, Option<tempfile::TempDir>, ManualClock) {
    let clock = ManualClock::new(START_MILLIS);
    let (inner, dir): (Box<dyn Engine>, _) = match backend {
        Backend::Memory => (Box::new(MemoryEngine::with_clock(Arc::new(clock.clone()))), None),
        Backend::Lmdb => {
            let dir = tempfile::tempdir().unwrap();
            let opts = LmdbOptions {
                clock: Arc::new(clock.clone()),
                map_size: 1 << 26,
                ..LmdbOptions::default()
            };
            (Box::new(LmdbEngine::open(dir.path().join("db.kvm"), opts).unwrap()), Some(dir))
        }
        #[cfg(feature = "etcd")]
        Backend::Etcd => {
            use kvm::storage::{etcd_testing, EtcdEngine, EtcdOptions};
            let cluster = etcd_testing::shared().unwrap();
            let url = cluster.url(&etcd_testing::unique_app("golden"));
            let opts = EtcdOptions {
                clock: Arc::new(clock.clone()),
                ..EtcdOptions::from_url(&url).unwrap()
            };
            (Box::new(EtcdEngine::connect(opts).unwrap()), None)
        }
    };
    let rec = Arc::new(Recorder { inner, log: Mutex::new(Vec::new()) });
    let db = Database::with_engine(
        rec.clone(),
        Options {
            clock: Arc::new(clock.clone()),
            seed: Some(42),
            sweep_interval: None,
            ..Options::default()
        },
    )
    .unwrap();
    (db, rec, dir, clock)
}

/// A seeded xorshift generator: the random-operation tests replay exactly from their seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}
