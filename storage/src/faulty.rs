//! A wrapper backend that makes commits fail with a conflict at random, to prove that code
//! above the trait (retry loops, the engine's transactions) stays exact when conflicts are
//! common, as they will be on a distributed backend.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::{AtomicBatch, Engine, Snapshot};
use crate::error::{Error, Result};
use crate::feed::ChangeSet;
use crate::versionstamp::Versionstamp;

/// Wraps an engine; each commit conflicts, without writing, with probability `rate`.
pub struct FaultyEngine<E> {
    inner: E,
    /// Conflict probability scaled to `u64::MAX`.
    threshold: u64,
    rng: AtomicU64,
    injected: AtomicU64,
}

impl<E: Engine> FaultyEngine<E> {
    /// `rate` in `0.0..=1.0`; `seed` makes the injected faults repeatable.
    pub fn new(inner: E, rate: f64, seed: u64) -> Self {
        FaultyEngine {
            inner,
            threshold: (rate.clamp(0.0, 1.0) * u64::MAX as f64) as u64,
            rng: AtomicU64::new(seed | 1),
            injected: AtomicU64::new(0),
        }
    }

    /// How many conflicts were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    fn next_random(&self) -> u64 {
        // xorshift64*, advanced atomically so that threads draw distinct numbers.
        let step = |mut x: u64| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x
        };
        let prev = self
            .rng
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |x| Some(step(x)))
            .unwrap_or_else(|x| x);
        step(prev).wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

impl<E: Engine> Engine for FaultyEngine<E> {
    fn name(&self) -> &'static str {
        "faulty"
    }

    fn snapshot(&self) -> Result<Box<dyn Snapshot + '_>> {
        self.inner.snapshot()
    }

    fn snapshot_with(&self, first_reads: &[&[u8]]) -> Result<Box<dyn Snapshot + '_>> {
        self.inner.snapshot_with(first_reads)
    }

    fn commit(&self, batch: &AtomicBatch) -> Result<Versionstamp> {
        if self.threshold > 0 && self.next_random() <= self.threshold {
            self.injected.fetch_add(1, Ordering::Relaxed);
            let key = batch.mutations.first().map(|m| m.key().to_vec()).unwrap_or_default();
            return Err(Error::Conflict { key });
        }
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
