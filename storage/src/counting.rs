//! A wrapper engine that counts what its snapshots read (keys fetched by `get`/`get_many`,
//! rows yielded by scans), so tests can prove a query read only the keys it had to.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::{AtomicBatch, Engine, KeyRange, ScanIter, ScanOptions, Snapshot};
use crate::entry::Entry;
use crate::error::Result;
use crate::feed::ChangeSet;
use crate::versionstamp::Versionstamp;

/// Read counters shared by every snapshot of a [`CountingEngine`].
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub gets: AtomicU64,
    pub scanned: AtomicU64,
}

impl ReadCounts {
    /// (gets, scanned rows) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.gets.load(Ordering::Relaxed), self.scanned.load(Ordering::Relaxed))
    }

    pub fn reset(&self) {
        self.gets.store(0, Ordering::Relaxed);
        self.scanned.store(0, Ordering::Relaxed);
    }
}

/// Counts the reads of an inner engine.
pub struct CountingEngine<E> {
    inner: E,
    pub counts: Arc<ReadCounts>,
}

impl<E: Engine> CountingEngine<E> {
    pub fn new(inner: E) -> Self {
        CountingEngine { inner, counts: Arc::default() }
    }
}

struct CountingSnapshot<'a> {
    inner: Box<dyn Snapshot + 'a>,
    counts: Arc<ReadCounts>,
}

impl Snapshot for CountingSnapshot<'_> {
    fn versionstamp(&self) -> Versionstamp {
        self.inner.versionstamp()
    }
    fn now_millis(&self) -> u64 {
        self.inner.now_millis()
    }
    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        self.counts.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>> {
        let counts = self.counts.clone();
        Ok(Box::new(self.inner.scan(range, opts)?.inspect(move |_| {
            counts.scanned.fetch_add(1, Ordering::Relaxed);
        })))
    }
}

impl<E: Engine> Engine for CountingEngine<E> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        Ok(Box::new(CountingSnapshot {
            inner: self.inner.snapshot()?,
            counts: self.counts.clone(),
        }))
    }
    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        self.inner.commit(batch)
    }
    fn changes_since(&self, after: Versionstamp, limit: usize) -> Result<Vec<ChangeSet>> {
        self.inner.changes_since(after, limit)
    }
    fn sweep_expired(&self, limit: usize) -> Result<usize> {
        self.inner.sweep_expired(limit)
    }

    fn backup(&self, path: &std::path::Path) -> Result<()> {
        self.inner.backup(path)
    }
}
