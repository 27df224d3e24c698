//! Group commit: concurrent committers share one write transaction (and one disk sync).
//!
//! The first committer to arrive becomes the leader and commits its own batch. Committers
//! that arrive meanwhile queue their batches and wait. When the leader is done it hands the
//! lead to the first waiter, which commits every queued batch together in one transaction,
//! each batch still atomic on its own (the backend isolates them), and hands on in turn. One
//! thread alone never waits; many threads pay one sync per group instead of one per commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::engine::AtomicBatch;
use crate::error::{Error, Result};
use crate::versionstamp::Versionstamp;

/// The most batches one group transaction takes.
const MAX_GROUP: usize = 256;

/// Per-batch outcomes of one group transaction, in the order of the batches given.
pub(crate) type GroupResult = Result<Vec<Result<Versionstamp>>>;

#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Batches committed through the group path, and the transactions that carried them.
    batches: AtomicU64,
    transactions: AtomicU64,
}

/// How well commits were grouped: `transactions < batches` means some shared a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    pub batches: u64,
    pub transactions: u64,
}

#[derive(Default)]
struct State {
    leader_active: bool,
    queue: Vec<Arc<Slot>>,
}

struct Slot {
    /// The batch to commit; `None` for a turn alone ([`GroupCommit::alone`]).
    batch: Option<AtomicBatch>,
    state: Mutex<SlotState>,
    cv: Condvar,
}

enum SlotState {
    Waiting,
    Lead,
    Done(Result<Versionstamp>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another committer panicked; the state stays consistent
    // because every update is a single assignment.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GroupCommit {
    /// Commits `batch`, alone or with others, through `run`, which must apply the batches
    /// in order, each atomically, in one transaction.
    pub(crate) fn commit(
        &self,
        batch: &AtomicBatch,
        run: &dyn Fn(&[&AtomicBatch]) -> GroupResult,
    ) -> Result<Versionstamp> {
        let mut st = lock(&self.state);
        if !st.leader_active {
            st.leader_active = true;
            drop(st);
            return self.lead(batch, Vec::new(), run);
        }
        let slot = Arc::new(Slot {
            batch: Some(batch.clone()),
            state: Mutex::new(SlotState::Waiting),
            cv: Condvar::new(),
        });
        st.queue.push(slot.clone());
        drop(st);
        if let Some(result) = Self::wait(&slot) {
            return result;
        }
        let others = {
            let mut st = lock(&self.state);
            // Batches queued before the next turn alone, if any, join this group.
            let n = st.queue.iter().take(MAX_GROUP - 1).take_while(|s| s.batch.is_some()).count();
            st.queue.drain(..n).collect()
        };
        self.lead(batch, others, run)
    }

    /// Waits in `slot` until it is done (`Some`) or leads (`None`).
    fn wait(slot: &Slot) -> Option<Result<Versionstamp>> {
        let mut s = lock(&slot.state);
        loop {
            match std::mem::replace(&mut *s, SlotState::Waiting) {
                SlotState::Waiting => s = slot.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
                SlotState::Done(result) => return Some(result),
                SlotState::Lead => return None,
            }
        }
    }

    /// Runs `f` as the only writer — no group transaction before it has ended or after it
    /// has begun — taking its turn in the queue like a batch (a direct write).
    pub(crate) fn alone<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut st = lock(&self.state);
        if st.leader_active {
            let slot = Arc::new(Slot {
                batch: None,
                state: Mutex::new(SlotState::Waiting),
                cv: Condvar::new(),
            });
            st.queue.push(slot.clone());
            drop(st);
            // A turn alone is only ever handed the lead, never a result.
            let _ = Self::wait(&slot);
        } else {
            st.leader_active = true;
            drop(st);
        }
        // Handed on even if `f` panics: the writers behind must not wait forever.
        struct HandOn<'g>(&'g GroupCommit);
        impl Drop for HandOn<'_> {
            fn drop(&mut self) {
                self.0.hand_on();
            }
        }
        let _hand_on = HandOn(self);
        f()
    }

    /// Gives the lead to the first waiter, or up when nobody waits.
    fn hand_on(&self) {
        let mut st = lock(&self.state);
        if st.queue.is_empty() {
            st.leader_active = false;
        } else {
            let next = st.queue.remove(0);
            drop(st);
            *lock(&next.state) = SlotState::Lead;
            next.cv.notify_one();
        }
    }

    pub(crate) fn stats(&self) -> CommitStats {
        CommitStats {
            batches: self.batches.load(Ordering::Relaxed),
            transactions: self.transactions.load(Ordering::Relaxed),
        }
    }

    /// Commits `own` with the queued `others`, tells each of them how it went, and hands the
    /// lead on (or gives it up when nobody waits).
    fn lead(
        &self,
        own: &AtomicBatch,
        others: Vec<Arc<Slot>>,
        run: &dyn Fn(&[&AtomicBatch]) -> GroupResult,
    ) -> Result<Versionstamp> {
        let mut batches: Vec<&AtomicBatch> = Vec::with_capacity(1 + others.len());
        batches.push(own);
        batches.extend(others.iter().filter_map(|s| s.batch.as_ref()));
        self.batches.fetch_add(batches.len() as u64, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        let mut results = match run(&batches) {
            Ok(results) if results.len() == batches.len() => results,
            Ok(_) => vec![Err(Error::Backend("group commit lost a result".into())); batches.len()],
            Err(e) => vec![Err(e); batches.len()],
        };
        let own_result = results.remove(0);
        for (slot, result) in others.iter().zip(results) {
            *lock(&slot.state) = SlotState::Done(result);
            slot.cv.notify_one();
        }
        self.hand_on();
        own_result
    }
}
