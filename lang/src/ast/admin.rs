//! Queue, transaction, introspection and raw key-value statements.

use super::expr::{DurationValue, Expire, Expr, Ident};
use super::Statement;
use crate::span::Span;

/// `DEFINE QUEUE [IF NOT EXISTS] name [RETRIES n] [BACKOFF d] [TIMEOUT d] [DEAD LETTER q]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DefineQueue {
    /// The queue.
    pub name: Ident,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// Defaults for jobs enqueued into it.
    pub options: JobOptions,
    /// Where it is.
    pub span: Span,
}

/// Per-job delivery options, shared by `DEFINE QUEUE` (as defaults) and `ENQUEUE`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct JobOptions {
    /// `RETRIES n`: attempts after the first before the job is dead.
    pub retries: Option<Expr>,
    /// `BACKOFF d`: base delay between attempts (doubling).
    pub backoff: Option<DurationValue>,
    /// `TIMEOUT d`: lease length; a worker that does not ACK in time loses the job.
    pub timeout: Option<DurationValue>,
    /// `DEAD LETTER q`: where jobs go after the last retry.
    pub dead_letter: Option<Ident>,
}

/// `ENQUEUE INTO q value [DELAY d | AT time] [PRIORITY n] [KEY k] [job options]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Enqueue {
    /// The queue.
    pub queue: Ident,
    /// The job payload.
    pub value: Expr,
    /// When the job becomes due.
    pub schedule: Option<Schedule>,
    /// `PRIORITY n` (higher first; negative allowed).
    pub priority: Option<Expr>,
    /// `KEY k`: a de-duplication key; a second job with a live key is not enqueued.
    pub key: Option<Expr>,
    /// Retries, backoff, timeout, dead letter.
    pub options: JobOptions,
    /// Where it is.
    pub span: Span,
}

/// When a job becomes due.
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `DELAY d`
    Delay(DurationValue),
    /// `AT time` (a timestamp literal, a string or a parameter)
    At(Expr),
}

/// `DEQUEUE FROM q [LIMIT n] [WAIT d]`: lease due jobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Dequeue {
    /// The queue.
    pub queue: Ident,
    /// `LIMIT n`: at most n jobs (default 1).
    pub limit: Option<Expr>,
    /// `WAIT d`: block up to d for a job.
    pub wait: Option<DurationValue>,
    /// Where it is.
    pub span: Span,
}

/// `ACK job` / `NACK job`: settle a leased job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settle {
    /// The job id (a string or a parameter).
    pub job: Expr,
    /// Where it is.
    pub span: Span,
}

/// The statements that name one queue: `QUEUE STATS q`, `RETRY DEAD FROM q`, `PURGE q`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueRef {
    /// The queue.
    pub queue: Ident,
    /// Where it is.
    pub span: Span,
}

/// `SHOW MODELS | INDEXES [FROM m] | QUEUES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Show {
    /// What is listed.
    pub what: ShowWhat,
    /// Where it is.
    pub span: Span,
}

/// The lists `SHOW` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShowWhat {
    /// `SHOW MODELS`
    Models,
    /// `SHOW INDEXES [FROM model]`
    Indexes(Option<Ident>),
    /// `SHOW QUEUES`
    Queues,
}

/// `DESCRIBE [MODEL] m` / `DESCRIBE QUEUE q`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Describe {
    /// Model or queue.
    pub queue: bool,
    /// The name.
    pub name: Ident,
    /// Where it is.
    pub span: Span,
}

/// `EXPLAIN statement`.
#[derive(Clone, Debug, PartialEq)]
pub struct Explain {
    /// The explained statement (not executed).
    pub statement: Box<Statement>,
    /// Where it is.
    pub span: Span,
}

/// `CHECK DATABASE` / `CHECK MODEL m`: verify records against their indexes and constraints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `None` for the whole database.
    pub model: Option<Ident>,
    /// Where it is.
    pub span: Span,
}

/// `KV …`: raw access to tuple keys, beneath the model layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Kv {
    /// The operation.
    pub op: KvOp,
    /// Where it is.
    pub span: Span,
}

/// Raw key-value operations. Keys are tuples written as arrays: `['users', 'u1']`.
#[derive(Clone, Debug, PartialEq)]
pub enum KvOp {
    /// `KV GET key`
    Get(Expr),
    /// `KV SET key value [EXPIRE IN d]`
    Set {
        /// The key.
        key: Expr,
        /// The value.
        value: Expr,
        /// Time to live.
        expire: Option<Expire>,
    },
    /// `KV DELETE key`
    Delete(Expr),
    /// `KV LIST [PREFIX key | FROM key [TO key]] [REVERSE] [LIMIT n]`
    List {
        /// Which keys.
        range: KvRange,
        /// Descending order.
        reverse: bool,
        /// `LIMIT n`.
        limit: Option<Expr>,
    },
}

/// The keys a `KV LIST` visits.
#[derive(Clone, Debug, PartialEq)]
pub enum KvRange {
    /// Every key.
    All,
    /// `PREFIX key`: keys starting with the tuple.
    Prefix(Expr),
    /// `FROM start [TO end]`: start inclusive, end exclusive.
    Range {
        /// First key.
        start: Expr,
        /// Bound (exclusive).
        end: Option<Expr>,
    },
}
