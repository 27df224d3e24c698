//! Durable queues: jobs stored beside the data (an `ENQUEUE` inside `BEGIN … COMMIT`
//! commits with the writes around it), leased to one consumer at a time, retried with
//! exponential backoff and jitter, and moved with their error history to a dead-letter
//! queue after the last retry. Delivery is at least once: a consumer that dies loses its
//! lease when it times out and the job is delivered again.
//!
//! [`Queue`] is the Rust handle (`db.queue("emails")`); [`Worker`] runs a handler on
//! threads — the engine is synchronous (LMDB transactions belong to their thread), so a
//! worker is a few OS threads, not an async runtime; an async application calls it from
//! `spawn_blocking` or uses [`Queue::dequeue`] itself.

mod store;
mod worker;

use std::time::{Duration, Instant};

pub use store::{backoff_ms, Leased as Job, Stats};
pub use worker::{Worker, WorkerBuilder, WorkerEvent};

/// The fallback wake-up of an idle consumer (other processes' enqueues are seen this late).
pub const POLL: Duration = Duration::from_millis(100);

pub(crate) use store::{
    ack, check_name, cleanup, define, definition, dequeue, drop_queue, enqueue, find_queue, nack,
    names, next_due, purge, retry_dead, stats, Given, NewJob, Options,
};

use crate::error::Result;
use crate::txn::Txn;
use crate::{Database, IntoValue};

/// How a job is enqueued (every field optional: the queue's defaults apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enqueue {
    /// Invisible until this long from now.
    pub delay: Option<Duration>,
    /// Higher first; negative allowed.
    pub priority: i64,
    /// Attempts after the first before the job is dead.
    pub retries: Option<u32>,
    /// Base wait before a retry (doubled per attempt, with jitter, capped at an hour).
    pub backoff: Option<Duration>,
    /// Lease length: a consumer that neither settles nor renews in time loses the job.
    pub timeout: Option<Duration>,
    /// Where the job goes after its last retry.
    pub dead_letter: Option<String>,
    /// An idempotency key: while a job with this key is pending, enqueueing another is a
    /// no-op that returns the pending job's id.
    pub key: Option<String>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A queue of a database (created on first use).
#[derive(Clone)]
pub struct Queue {
    db: Database,
    name: String,
}

impl Database {
    /// The queue `name` (nothing is written until a job is enqueued).
    pub fn queue(&self, name: &str) -> Queue {
        Queue { db: self.clone(), name: name.to_string() }
    }
}

impl Queue {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on this queue in a transaction (retried on conflict) at the database clock's
    /// time.
    fn txn<T>(&self, mut f: impl FnMut(&Txn, &str, u64) -> Result<T>) -> Result<T> {
        self.db.transaction(|tx| f(tx.txn(), &self.name, tx.txn().now_millis()))
    }

    /// Enqueues `payload`; returns the job id (the pending job's, for a repeated key).
    pub fn enqueue(&self, payload: impl IntoValue, o: Enqueue) -> Result<String> {
        let payload = payload.into_value();
        self.txn(|txn, queue, now| {
            let job = NewJob {
                queue,
                payload: payload.clone(),
                due_ms: o.delay.map(|d| now.saturating_add(ms(d) as u64)),
                priority: o.priority,
                key: o.key.clone(),
                given: Given {
                    retries: o.retries.map(i64::from),
                    backoff_ms: o.backoff.map(ms),
                    timeout_ms: o.timeout.map(ms),
                    dead_letter: o.dead_letter.clone(),
                },
            };
            Ok(enqueue(txn, job, now, self.db.host().ids())?.0)
        })
    }

    /// Leases up to `limit` due jobs now (possibly none), each for its own `TIMEOUT`.
    pub fn dequeue(&self, limit: usize) -> Result<Vec<Job>> {
        self.txn(|txn, queue, now| dequeue(txn, queue, limit, now, None))
    }

    /// Leases up to `limit` due jobs for `length` (instead of their own timeout).
    pub fn dequeue_for(&self, limit: usize, length: Duration) -> Result<Vec<Job>> {
        self.txn(|txn, queue, now| dequeue(txn, queue, limit, now, Some(ms(length))))
    }

    /// Leases up to `limit` due jobs, waiting up to `wait` for one: woken by enqueues of
    /// this process at once, by those of other processes within [`POLL`].
    pub fn dequeue_wait(&self, limit: usize, wait: Duration) -> Result<Vec<Job>> {
        self.until_found(wait, || self.dequeue(limit), |jobs| !jobs.is_empty())
    }

    /// Runs `attempt` until `found` says it found jobs or `wait` has passed, idling between
    /// tries; the database's interrupt stops it. (`DEQUEUE … WAIT` too.)
    pub(crate) fn until_found<T>(
        &self,
        wait: Duration,
        mut attempt: impl FnMut() -> Result<T>,
        found: impl Fn(&T) -> bool,
    ) -> Result<T> {
        let deadline = Instant::now() + wait;
        let interrupts = self.db.interrupt_handle().count();
        loop {
            let seen = self.db.queue_signal();
            let out = attempt()?;
            let now = Instant::now();
            if found(&out) || now >= deadline {
                return Ok(out);
            }
            if self.db.interrupt_handle().count() != interrupts {
                return Err(crate::Error::Interrupted);
            }
            self.idle(seen, POLL.min(deadline - now));
        }
    }

    /// Sleeps until an enqueue of this process after `seen`, this queue's next due time (a
    /// delayed job, a lease end, by the database clock) or `at_most`.
    fn idle(&self, seen: u64, at_most: Duration) {
        let due = self.txn(|txn, queue, now| {
            Ok(next_due(txn, queue)?.map(|d| Duration::from_millis(d.saturating_sub(now).max(1))))
        });
        let idle = due.ok().flatten().map_or(at_most, |d| d.min(at_most));
        self.db.wait_queue_signal(seen, idle);
    }

    /// Completes a leased job. Fails with `kvm.lease_lost` when the lease is no longer held
    /// (it expired and the job went to another consumer or back for a retry).
    pub fn ack(&self, lease: &str) -> Result<()> {
        self.txn(|txn, queue, now| ack(txn, queue, lease, now))
    }

    /// Fails a leased job with `error`: retried after its backoff, or dead after its last
    /// retry (moved to its dead-letter queue when it has one).
    pub fn nack(&self, lease: &str, error: &str) -> Result<()> {
        self.txn(|txn, queue, now| nack(txn, queue, lease, error, now))
    }

    /// Extends a held lease by its length from now; returns the new end (ms).
    pub fn renew(&self, lease: &str) -> Result<u64> {
        self.txn(|txn, queue, now| store::renew(txn, queue, lease, now))
    }

    /// Jobs by state, and the age of the oldest waiting one.
    pub fn stats(&self) -> Result<Stats> {
        self.txn(stats)
    }

    /// Moves dead jobs back to ready; returns how many.
    pub fn retry_dead(&self) -> Result<u64> {
        self.txn(retry_dead)
    }

    /// Deletes every job of the queue; returns how many.
    pub fn purge(&self) -> Result<u64> {
        self.txn(|txn, queue, _| purge(txn, queue))
    }

    /// Deletes completed jobs that finished more than `older_than` ago; returns how many.
    pub fn cleanup(&self, older_than: Duration) -> Result<u64> {
        self.txn(|txn, queue, now| cleanup(txn, queue, now.saturating_sub(ms(older_than) as u64)))
    }

    /// A worker running `handler` on this queue's jobs: `Ok` acks, `Err(message)` (or a
    /// panic) nacks with the message.
    pub fn worker<F>(&self, handler: F) -> WorkerBuilder
    where
        F: Fn(&Job) -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        WorkerBuilder::new(self.clone(), handler)
    }
}
