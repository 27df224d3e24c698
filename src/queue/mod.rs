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
pub use worker::{Worker, WorkerBuilder, WorkerEvent, POLL};

pub(crate) use store::{
    ack, check_name, cleanup, define, definition, dequeue, drop_queue, enqueue, find_queue, nack,
    names, next_due, purge, retry_dead, stats, Given, NewJob, Options,
};

use crate::error::Result;
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

    /// Enqueues `payload`; returns the job id (the pending job's, for a repeated key).
    pub fn enqueue(&self, payload: impl IntoValue, o: Enqueue) -> Result<String> {
        let payload = payload.into_value();
        self.db.transaction(|tx| {
            let now = tx.txn().now_millis();
            let job = NewJob {
                queue: &self.name,
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
            Ok(enqueue(tx.txn(), job, now, self.db.host().ids())?.0)
        })
    }

    /// Leases up to `limit` due jobs now (possibly none), each for its own `TIMEOUT`.
    pub fn dequeue(&self, limit: usize) -> Result<Vec<Job>> {
        self.lease(limit, None)
    }

    /// Leases up to `limit` due jobs for `length` (instead of their own timeout).
    pub fn dequeue_for(&self, limit: usize, length: Duration) -> Result<Vec<Job>> {
        self.lease(limit, Some(ms(length)))
    }

    fn lease(&self, limit: usize, length: Option<i64>) -> Result<Vec<Job>> {
        self.db.transaction(|tx| {
            let now = tx.txn().now_millis();
            dequeue(tx.txn(), &self.name, limit, now, length)
        })
    }

    /// Leases up to `limit` due jobs, waiting up to `wait` for one: woken by enqueues of
    /// this process at once, by those of other processes within `poll`.
    pub fn dequeue_wait(&self, limit: usize, wait: Duration) -> Result<Vec<Job>> {
        let deadline = Instant::now() + wait;
        loop {
            let seen = self.db.queue_signal();
            let jobs = self.dequeue(limit)?;
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline {
                return Ok(jobs);
            }
            let idle = self.idle_for()?.unwrap_or(worker::POLL).min(worker::POLL);
            self.db.wait_queue_signal(seen, idle.min(deadline - now));
        }
    }

    /// How long until a delayed job is due or a lease ends (by the database clock).
    fn idle_for(&self) -> Result<Option<Duration>> {
        let db = &self.db;
        db.transaction(|tx| {
            let now = tx.txn().now_millis();
            Ok(next_due(tx.txn(), &self.name)?
                .map(|due| Duration::from_millis(due.saturating_sub(now).max(1))))
        })
    }

    /// Completes a leased job. Fails with `kvm.lease_lost` when the lease is no longer held
    /// (it expired and the job went to another consumer or back for a retry).
    pub fn ack(&self, lease: &str) -> Result<()> {
        self.db.transaction(|tx| ack(tx.txn(), &self.name, lease, tx.txn().now_millis()))
    }

    /// Fails a leased job with `error`: retried after its backoff, or dead after its last
    /// retry (moved to its dead-letter queue when it has one).
    pub fn nack(&self, lease: &str, error: &str) -> Result<()> {
        self.db.transaction(|tx| nack(tx.txn(), &self.name, lease, error, tx.txn().now_millis()))
    }

    /// Extends a held lease by its length from now; returns the new end (ms).
    pub fn renew(&self, lease: &str) -> Result<u64> {
        self.db.transaction(|tx| store::renew(tx.txn(), &self.name, lease, tx.txn().now_millis()))
    }

    /// Jobs by state, and the age of the oldest waiting one.
    pub fn stats(&self) -> Result<Stats> {
        self.db.transaction(|tx| stats(tx.txn(), &self.name, tx.txn().now_millis()))
    }

    /// Moves dead jobs back to ready; returns how many.
    pub fn retry_dead(&self) -> Result<u64> {
        self.db.transaction(|tx| retry_dead(tx.txn(), &self.name, tx.txn().now_millis()))
    }

    /// Deletes every job of the queue; returns how many.
    pub fn purge(&self) -> Result<u64> {
        self.db.transaction(|tx| purge(tx.txn(), &self.name))
    }

    /// Deletes completed jobs that finished more than `older_than` ago; returns how many.
    pub fn cleanup(&self, older_than: Duration) -> Result<u64> {
        self.db.transaction(|tx| {
            let now = tx.txn().now_millis();
            cleanup(tx.txn(), &self.name, now.saturating_sub(ms(older_than) as u64))
        })
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
