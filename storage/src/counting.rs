//! A wrapper engine that counts what its snapshots read (keys fetched by `get`/`get_many`,
//! rows yielded by scans, and requests: one per `get`, `get_many`, `scan` or `scan_many`
//! call) and the batches handed to `commit`, so tests can prove a query read only the keys
//! it had to, in few requests, and committed nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::{AtomicBatch, Engine, KeyRange, KvRef, ScanIter, ScanOptions, Snapshot};
use crate::entry::Entry;
use crate::error::Result;
use crate::feed::ChangeSet;
use crate::versionstamp::Versionstamp;

/// Read counters shared by every snapshot of a [`CountingEngine`].
#[derive(Debug, Default)]
pub struct ReadCounts {
    pub gets: AtomicU64,
    pub scanned: AtomicU64,
    /// Read requests: each `get`, `get_many`, `scan` or `scan_many` call counts once.
    pub requests: AtomicU64,
    /// Batches handed to `commit` (a read-only statement should hand none).
    pub commits: AtomicU64,
    /// Direct writes committed (`write_direct`).
    pub directs: AtomicU64,
}

impl ReadCounts {
    /// (gets, scanned rows) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.gets.load(Ordering::Relaxed), self.scanned.load(Ordering::Relaxed))
    }

    /// Read requests so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Commits so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Direct writes committed so far.
    pub fn directs(&self) -> u64 {
        self.directs.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.directs.store(0, Ordering::Relaxed);
        self.commits.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
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
    fn batch_reads(&self) -> bool {
        self.inner.batch_reads()
    }
    fn now_millis(&self) -> u64 {
        self.inner.now_millis()
    }
    fn get<'a>(&'a self, key: &[u8]) -> Result<Option<Entry<'a>>> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.counts.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get(key)
    }
    fn get_many<'a>(&'a self, keys: &[&[u8]]) -> Result<Vec<Option<Entry<'a>>>> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        self.counts.gets.fetch_add(keys.len() as u64, Ordering::Relaxed);
        self.inner.get_many(keys)
    }
    fn scan_many<'a>(
        &'a self,
        ranges: &[KeyRange],
        opts: ScanOptions,
    ) -> Result<Vec<Vec<KvRef<'a>>>> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
        let out = self.inner.scan_many(ranges, opts)?;
        let n: usize = out.iter().map(Vec::len).sum();
        self.counts.scanned.fetch_add(n as u64, Ordering::Relaxed);
        Ok(out)
    }
    fn scan<'a>(&'a self, range: &KeyRange, opts: ScanOptions) -> Result<ScanIter<'a>> {
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
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
    fn snapshot_with(&self, first_reads: &[&[u8]]) -> Result<Box<dyn Snapshot + '_>> {
        Ok(Box::new(CountingSnapshot {
            inner: self.inner.snapshot_with(first_reads)?,
            counts: self.counts.clone(),
        }))
    }
    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        self.counts.commits.fetch_add(1, Ordering::Relaxed);
        self.inner.commit(batch)
    }
    fn write_direct(
        &self,
        bytes: usize,
        write: &mut dyn FnMut(&dyn crate::engine::Direct) -> Result<()>,
    ) -> Result<Option<Versionstamp>> {
        let vs = self.inner.write_direct(bytes, write)?;
        if vs.is_some() {
            self.counts.directs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(vs)
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
    fn writer_turn(&self) -> Result<Option<crate::WriterTurn<'_>>> {
        self.inner.writer_turn()
    }
    fn await_writer_turn(&self) -> Result<()> {
        self.inner.await_writer_turn()
    }
    fn check_pages(&self) -> Result<Option<u64>> {
        self.inner.check_pages()
    }
}
