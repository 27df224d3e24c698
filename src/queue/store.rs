//! The queue layout and its state transitions, each inside the caller's transaction (so an
//! `ENQUEUE` commits with the data writes beside it, and two consumers racing for one job
//! conflict at commit: one gets it, the other retries on a fresh snapshot).
//!
//! A job's record holds its payload and state; an entry in one state area orders it:
//! `ready` by (−priority, id) — higher priority first, then first in (ids are monotonic),
//! `delayed` by due time, `leased` by lease end, `done` by finish time, `dead` by id.
//! Dequeue reads only the due prefix of `delayed` and `leased` (moving what is due) and
//! the first entries of `ready`: its cost follows the jobs it moves, never the queue length.

use kvm_storage::{KeyRange, Value};

use crate::error::{Error, Result};
use crate::keyspace::{Key, KeyPrefix};
use crate::txn::Txn;

/// Defaults for jobs of a queue without `DEFINE QUEUE` (and for options it leaves out).
pub const DEFAULT_RETRIES: i64 = 3;
pub const DEFAULT_BACKOFF_MS: i64 = 1_000;
pub const DEFAULT_TIMEOUT_MS: i64 = 30_000;
/// The longest a retry waits, whatever the backoff doubling reaches.
pub const MAX_BACKOFF_MS: i64 = 3_600_000;
/// How long a completed job is kept (as history: `SHOW QUEUES` counts it, `cleanup`
/// deletes it earlier): its record and list entry expire then, swept like any TTL.
pub const DONE_RETENTION_MS: u64 = 7 * 24 * 3_600_000;
/// Due jobs (delayed or with an expired lease) moved per dequeue, at most.
const MOVE_BATCH: usize = 256;

/// A queue's job options, resolved (explicit, then the queue's, then the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub retries: i64,
    pub backoff_ms: i64,
    pub timeout_ms: i64,
    pub dead_letter: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            retries: DEFAULT_RETRIES,
            backoff_ms: DEFAULT_BACKOFF_MS,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            dead_letter: None,
        }
    }
}

/// Options a statement or call gives (each may be left to the queue's defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    pub retries: Option<i64>,
    pub backoff_ms: Option<i64>,
    pub timeout_ms: Option<i64>,
    pub dead_letter: Option<String>,
}

impl Options {
    pub fn with(&self, g: &Given) -> Options {
        Options {
            retries: g.retries.unwrap_or(self.retries),
            backoff_ms: g.backoff_ms.unwrap_or(self.backoff_ms),
            timeout_ms: g.timeout_ms.unwrap_or(self.timeout_ms),
            dead_letter: g.dead_letter.clone().or_else(|| self.dead_letter.clone()),
        }
    }

    fn to_value(&self) -> Value {
        obj(vec![
            ("retries", Value::Int(self.retries)),
            ("backoff_ms", Value::Int(self.backoff_ms)),
            ("timeout_ms", Value::Int(self.timeout_ms)),
            ("dead_letter", self.dead_letter.clone().map_or(Value::Null, Value::String)),
        ])
    }

    fn from_value(v: &Value) -> Options {
        let d = Options::default();
        Options {
            retries: int(v, "retries").unwrap_or(d.retries),
            backoff_ms: int(v, "backoff_ms").unwrap_or(d.backoff_ms),
            timeout_ms: int(v, "timeout_ms").unwrap_or(d.timeout_ms),
            dead_letter: string(v, "dead_letter"),
        }
    }
}

fn obj(fields: Vec<(&str, Value)>) -> Value {
    Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn field<'v>(v: &'v Value, f: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(f),
        _ => None,
    }
}

fn int(v: &Value, f: &str) -> Option<i64> {
    match field(v, f) {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

fn string(v: &Value, f: &str) -> Option<String> {
    match field(v, f) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn set_field(v: &mut Value, f: &str, x: Value) {
    if let Value::Object(m) = v {
        m.insert(f.to_string(), x);
    }
}

fn decode(bytes: &[u8], what: &str) -> Result<Value> {
    Value::decode(bytes).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

/// Refuses names the keyspace cannot hold (queue names follow identifier rules in KQL; the
/// Rust API checks the same).
pub fn check_name(queue: &str) -> Result<()> {
    let ok = !queue.is_empty()
        && !queue.starts_with("__")
        && queue.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::Param(format!(
            "invalid queue name '{queue}': use letters, digits, `_`, `-` or `.`, not starting with `__`"
        )))
    }
}

/// A queue's definition, if `DEFINE QUEUE` (or a first enqueue) made one.
pub fn definition(txn: &Txn, queue: &str) -> Result<Option<Options>> {
    let Some(bytes) = txn.get(&Key::QueueDef { queue }.encode())? else { return Ok(None) };
    Ok(Some(Options::from_value(&decode(&bytes, "queue definition")?)))
}

/// Stores a queue's defaults.
pub fn define(txn: &Txn, queue: &str, o: &Options) {
    txn.set(Key::QueueDef { queue }.encode(), o.to_value().encode(), None);
}

/// Every queue with a definition, in name order.
pub fn names(txn: &Txn) -> Result<Vec<String>> {
    let prefix = KeyPrefix::QueueDefs.encode();
    let mut out = Vec::new();
    for r in txn.scan(&KeyRange::prefix(&prefix), false)? {
        let (k, _) = r?;
        if let Some(q) = crate::keyspace::last_string(&k) {
            out.push(q);
        }
    }
    Ok(out)
}

/// A new job.
pub struct NewJob<'a> {
    pub queue: &'a str,
    pub payload: Value,
    pub due_ms: Option<u64>,
    pub priority: i64,
    pub key: Option<String>,
    pub given: Given,
}

/// Enqueues a job (defining the queue with default options on first use); returns its id
/// and whether it is new (`false`: a pending job holds the same idempotency key).
pub fn enqueue(
    txn: &Txn,
    job: NewJob,
    now: u64,
    ids: &dyn crate::eval::Ids,
) -> Result<(String, bool)> {
    check_name(job.queue)?;
    if job.priority == i64::MIN {
        // Jobs are ordered by the negated priority, and this one has no negation.
        return Err(Error::Invalid {
            code: "kvm.queue_priority",
            message: format!(
                "PRIORITY {} is out of range: priorities run from -{max} to {max}",
                job.priority,
                max = i64::MAX
            ),
            span: None,
            help: None,
        });
    }
    if let Some(d) = &job.given.dead_letter {
        check_name(d)?;
    }
    let queue = job.queue;
    let defaults = match definition(txn, queue)? {
        Some(d) => d,
        None => {
            let d = Options::default();
            define(txn, queue, &d);
            d
        }
    };
    if let Some(k) = &job.key {
        if let Some(id) = txn.get(&Key::JobDedup { queue, key: k }.encode())? {
            return Ok((String::from_utf8_lossy(&id).into_owned(), false));
        }
    }
    let o = defaults.with(&job.given);
    // Ids count up (see `Ids::ulid`): the id orders jobs of one priority first in, first out.
    let id = ids.ulid();
    let due = job.due_ms.filter(|d| *d > now);
    let record = obj(vec![
        ("id", Value::String(id.clone())),
        ("queue", Value::String(queue.to_string())),
        ("payload", job.payload),
        ("priority", Value::Int(job.priority)),
        ("attempt", Value::Int(0)),
        ("retries", Value::Int(o.retries)),
        ("backoff_ms", Value::Int(o.backoff_ms)),
        ("timeout_ms", Value::Int(o.timeout_ms)),
        ("dead_letter", o.dead_letter.map_or(Value::Null, Value::String)),
        ("key", job.key.clone().map_or(Value::Null, Value::String)),
        ("state", Value::String(if due.is_some() { "delayed" } else { "ready" }.into())),
        ("enqueued_at", Value::Int(now as i64)),
        ("due", Value::Int(due.unwrap_or(now) as i64)),
        ("errors", Value::Array(Vec::new())),
    ]);
    put(txn, queue, &id, &record);
    match due {
        Some(d) => txn.set(entry(queue, "delayed", Some(d as i64), &id), Vec::new(), None),
        None => txn.set(entry(queue, "ready", Some(-job.priority), &id), Vec::new(), None),
    }
    if let Some(k) = &job.key {
        txn.set(Key::JobDedup { queue, key: k }.encode(), id.clone().into_bytes(), None);
    }
    Ok((id, true))
}

fn entry(queue: &str, area: &'static str, order: Option<i64>, id: &str) -> Vec<u8> {
    Key::JobIn { queue, area, order, id }.encode()
}

fn put(txn: &Txn, queue: &str, id: &str, job: &Value) {
    txn.set(Key::Job { queue, id }.encode(), job.encode(), None);
}

fn get(txn: &Txn, queue: &str, id: &str) -> Result<Option<Value>> {
    txn.get(&Key::Job { queue, id }.encode())?.map(|b| decode(&b, "job")).transpose()
}

/// The id part of a state-area entry key (its last part).
fn entry_id(key: &[u8]) -> Option<String> {
    crate::keyspace::last_string(key)
}

/// Up to `limit` ids in `area` whose order value is at most `upto` (all when `None`).
fn due_ids(
    txn: &Txn,
    queue: &str,
    area: &'static str,
    upto: Option<i64>,
    limit: usize,
) -> Result<Vec<(Vec<u8>, String)>> {
    let range = match upto {
        None => KeyPrefix::QueueArea { queue, area }.range(),
        Some(t) => crate::keyspace::queue_area_upto(queue, area, t),
    };
    let mut out = Vec::new();
    // Each entry read is checked at commit, and so is the job record read next: two
    // consumers never take one job. An entry another commit adds meanwhile waits for the
    // next call, which is as if this one committed first, so the range needs no phantom
    // guard (one seek less per area at commit).
    for r in txn.scan_unguarded(&range, false)? {
        let (k, _) = r?;
        if let Some(id) = entry_id(&k) {
            out.push((k.into_owned(), id));
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// A job leased to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    pub id: String,
    pub queue: String,
    /// The lease handle `ACK`/`NACK` take: the id and the attempt (`<id>.<attempt>`), so a
    /// settle from an earlier, expired lease of the same job is refused.
    pub lease: String,
    pub payload: Value,
    pub attempt: i64,
    /// Retries allowed after the first attempt: the attempt after `retries + 1` is none.
    pub retries: i64,
    pub priority: i64,
    /// When the lease ends (milliseconds since the epoch), unless renewed.
    pub lease_until: u64,
    /// The errors of earlier attempts.
    pub errors: Vec<Value>,
}

impl Leased {
    /// The payload deserialized into `T` (a field that does not fit is `kvm.column_type`,
    /// naming it).
    pub fn payload_as<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        crate::row::deserialize(&["payload".to_string()], std::slice::from_ref(&self.payload))
            .map(|p: Payload<T>| p.payload)
    }
}

/// The one-column object `payload_as` reads the payload out of (so a mismatch deep inside
/// it is named by its path, `payload.field`).
#[derive(serde::Deserialize)]
struct Payload<T> {
    payload: T,
}

/// Moves due delayed jobs to `ready` and jobs whose lease expired back for a retry (or to
/// the dead letters): the work every dequeue does first, bounded per call.
fn settle_due(txn: &Txn, queue: &str, now: u64) -> Result<()> {
    for (k, id) in due_ids(txn, queue, "leased", Some(now as i64), MOVE_BATCH)? {
        txn.delete(k);
        if let Some(mut job) = get(txn, queue, &id)? {
            let lease = string(&job, "lease").unwrap_or_default();
            set_field(&mut job, "lease", Value::Null);
            fail(txn, queue, &id, job, &format!("lease {lease} expired"), now, false)?;
        }
    }
    for (k, id) in due_ids(txn, queue, "delayed", Some(now as i64), MOVE_BATCH)? {
        txn.delete(k);
        if let Some(mut job) = get(txn, queue, &id)? {
            set_field(&mut job, "state", Value::String("ready".into()));
            let p = int(&job, "priority").unwrap_or(0);
            txn.set(entry(queue, "ready", Some(-p), &id), Vec::new(), None);
            put(txn, queue, &id, &job);
        }
    }
    Ok(())
}

/// Leases up to `limit` due jobs: highest priority first, then first in.
/// `lease_ms` overrides the jobs' own `TIMEOUT` (a worker's `.timeout(d)`).
pub fn dequeue(
    txn: &Txn,
    queue: &str,
    limit: usize,
    now: u64,
    lease_ms: Option<i64>,
) -> Result<Vec<Leased>> {
    check_name(queue)?;
    settle_due(txn, queue, now)?;
    let mut out = Vec::new();
    for (k, id) in due_ids(txn, queue, "ready", None, limit)? {
        txn.delete(k);
        let Some(mut job) = get(txn, queue, &id)? else { continue };
        let attempt = int(&job, "attempt").unwrap_or(0) + 1;
        let length = lease_ms.or_else(|| int(&job, "timeout_ms")).unwrap_or(DEFAULT_TIMEOUT_MS);
        let until = now.saturating_add(length.max(1) as u64);
        let lease = format!("{id}.{attempt}");
        set_field(&mut job, "attempt", Value::Int(attempt));
        set_field(&mut job, "state", Value::String("leased".into()));
        set_field(&mut job, "lease", Value::String(lease.clone()));
        set_field(&mut job, "lease_until", Value::Int(until as i64));
        set_field(&mut job, "lease_ms", Value::Int(length.max(1)));
        txn.set(entry(queue, "leased", Some(until as i64), &id), Vec::new(), None);
        put(txn, queue, &id, &job);
        out.push(Leased {
            id: id.clone(),
            queue: queue.to_string(),
            lease,
            payload: field(&job, "payload").cloned().unwrap_or(Value::Null),
            attempt,
            retries: int(&job, "retries").unwrap_or(DEFAULT_RETRIES),
            priority: int(&job, "priority").unwrap_or(0),
            lease_until: until,
            errors: match field(&job, "errors") {
                Some(Value::Array(e)) => e.clone(),
                _ => Vec::new(),
            },
        });
    }
    Ok(out)
}

/// The job a lease handle names, while that lease holds it.
fn leased_job(txn: &Txn, queue: &str, lease: &str) -> Result<(String, Value)> {
    let lost = || {
        Error::Invalid {
        code: "kvm.lease_lost",
        message: format!(
            "lease '{lease}' of queue {queue} is not held: it expired (the job was given to another consumer or retried), or the job was settled already"
        ),
        span: None,
        help: Some("a job must be settled before its TIMEOUT; renew long leases".into()),
    }
    };
    let id = lease.rsplit_once('.').map(|(id, _)| id).ok_or_else(lost)?;
    let job = get(txn, queue, id)?.ok_or_else(lost)?;
    if string(&job, "state").as_deref() != Some("leased")
        || string(&job, "lease").as_deref() != Some(lease)
    {
        return Err(lost());
    }
    Ok((id.to_string(), job))
}

/// Which queue a lease handle belongs to: the caller names it (the Rust API), or it is
/// found among the queues (KQL `ACK 'lease'`), by the job record.
pub fn find_queue(txn: &Txn, lease: &str) -> Result<Option<String>> {
    let Some((id, _)) = lease.rsplit_once('.') else { return Ok(None) };
    for q in names(txn)? {
        if txn.get(&Key::Job { queue: &q, id }.encode())?.is_some() {
            return Ok(Some(q));
        }
    }
    Ok(None)
}

/// Completes a leased job.
pub fn ack(txn: &Txn, queue: &str, lease: &str, now: u64) -> Result<()> {
    let (id, mut job) = leased_job(txn, queue, lease)?;
    let until = int(&job, "lease_until").unwrap_or(0);
    txn.delete(entry(queue, "leased", Some(until), &id));
    if let Some(k) = string(&job, "key") {
        txn.delete(Key::JobDedup { queue, key: &k }.encode());
    }
    set_field(&mut job, "state", Value::String("done".into()));
    set_field(&mut job, "finished_at", Value::Int(now as i64));
    let expire = Some(now.saturating_add(DONE_RETENTION_MS));
    txn.set(entry(queue, "done", Some(now as i64), &id), Vec::new(), expire);
    txn.set(Key::Job { queue, id: &id }.encode(), job.encode(), expire);
    Ok(())
}

/// Fails a leased job: retried after its backoff, or dead after its last retry.
pub fn nack(txn: &Txn, queue: &str, lease: &str, error: &str, now: u64) -> Result<()> {
    let (id, job) = leased_job(txn, queue, lease)?;
    let until = int(&job, "lease_until").unwrap_or(0);
    txn.delete(entry(queue, "leased", Some(until), &id));
    fail(txn, queue, &id, job, error, now, true)
}

/// Extends a lease by its length (the job's timeout, or the worker's) from now; returns
/// the new end.
pub fn renew(txn: &Txn, queue: &str, lease: &str, now: u64) -> Result<u64> {
    let (id, mut job) = leased_job(txn, queue, lease)?;
    let old = int(&job, "lease_until").unwrap_or(0);
    let length = int(&job, "lease_ms").or_else(|| int(&job, "timeout_ms"));
    let until = now.saturating_add(length.unwrap_or(DEFAULT_TIMEOUT_MS).max(1) as u64);
    txn.delete(entry(queue, "leased", Some(old), &id));
    txn.set(entry(queue, "leased", Some(until as i64), &id), Vec::new(), None);
    set_field(&mut job, "lease_until", Value::Int(until as i64));
    put(txn, queue, &id, &job);
    Ok(until)
}

/// The wait before retry `attempt` (1 = the first retry): the backoff doubled per attempt,
/// capped, with "equal jitter" (between half and all of it), so retries spread out yet each
/// waits at least as long as the one before.
pub fn backoff_ms(base: i64, attempt: i64, jitter: f64) -> i64 {
    let exp = (attempt - 1).clamp(0, 40) as u32;
    let full = base.max(0).saturating_mul(1i64 << exp.min(40)).min(MAX_BACKOFF_MS);
    full / 2 + ((full - full / 2) as f64 * jitter.clamp(0.0, 1.0)) as i64
}

fn jitter() -> f64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0
}

/// Records a failed attempt; retries after the backoff or moves the job to the dead letters.
fn fail(
    txn: &Txn,
    queue: &str,
    id: &str,
    mut job: Value,
    error: &str,
    now: u64,
    _nacked: bool,
) -> Result<()> {
    let attempt = int(&job, "attempt").unwrap_or(1);
    if let Some(Value::Array(errors)) = match &mut job {
        Value::Object(m) => m.get_mut("errors"),
        _ => None,
    } {
        errors.push(obj(vec![
            ("attempt", Value::Int(attempt)),
            ("at", Value::Timestamp((now as i64).saturating_mul(1000))),
            ("error", Value::String(error.to_string())),
        ]));
    }
    set_field(&mut job, "lease", Value::Null);
    set_field(&mut job, "lease_until", Value::Null);
    let retries = int(&job, "retries").unwrap_or(DEFAULT_RETRIES);
    if attempt <= retries {
        let wait =
            backoff_ms(int(&job, "backoff_ms").unwrap_or(DEFAULT_BACKOFF_MS), attempt, jitter());
        let due = now.saturating_add(wait.max(0) as u64);
        set_field(&mut job, "state", Value::String("delayed".into()));
        set_field(&mut job, "due", Value::Int(due as i64));
        txn.set(entry(queue, "delayed", Some(due as i64), id), Vec::new(), None);
        put(txn, queue, id, &job);
        return Ok(());
    }
    if let Some(k) = string(&job, "key") {
        txn.delete(Key::JobDedup { queue, key: &k }.encode());
    }
    match string(&job, "dead_letter") {
        Some(dlq) if dlq != queue => {
            // Moves, with its error history, to the dead-letter queue as a ready job.
            if definition(txn, &dlq)?.is_none() {
                define(txn, &dlq, &Options::default());
            }
            txn.delete(Key::Job { queue, id }.encode());
            set_field(&mut job, "origin", Value::String(queue.to_string()));
            set_field(&mut job, "queue", Value::String(dlq.clone()));
            set_field(&mut job, "state", Value::String("ready".into()));
            set_field(&mut job, "attempt", Value::Int(0));
            set_field(&mut job, "dead_letter", Value::Null);
            set_field(&mut job, "key", Value::Null);
            let p = int(&job, "priority").unwrap_or(0);
            txn.set(entry(&dlq, "ready", Some(-p), id), Vec::new(), None);
            put(txn, &dlq, id, &job);
        }
        _ => {
            set_field(&mut job, "state", Value::String("dead".into()));
            txn.set(entry(queue, "dead", None, id), Vec::new(), None);
            put(txn, queue, id, &job);
        }
    }
    Ok(())
}

/// Moves `queue`'s dead jobs — marked dead in it, or moved to its dead-letter queue — back
/// to ready with fresh attempts (their error history kept); returns how many.
pub fn retry_dead(txn: &Txn, queue: &str, now: u64) -> Result<u64> {
    check_name(queue)?;
    let mut n = 0;
    for (k, id) in due_ids(txn, queue, "dead", None, usize::MAX)? {
        txn.delete(k);
        if let Some(mut job) = get(txn, queue, &id)? {
            revive(txn, queue, &id, &mut job, now);
            n += 1;
        }
    }
    let dlq = definition(txn, queue)?.and_then(|o| o.dead_letter);
    if let Some(dlq) = dlq.filter(|d| d != queue) {
        for (k, id) in due_ids(txn, &dlq, "ready", None, usize::MAX)? {
            let Some(mut job) = get(txn, &dlq, &id)? else { continue };
            if string(&job, "origin").as_deref() != Some(queue) {
                continue;
            }
            txn.delete(k);
            txn.delete(Key::Job { queue: &dlq, id: &id }.encode());
            set_field(&mut job, "queue", Value::String(queue.to_string()));
            set_field(&mut job, "origin", Value::Null);
            set_field(&mut job, "dead_letter", Value::String(dlq.clone()));
            revive(txn, queue, &id, &mut job, now);
            n += 1;
        }
    }
    Ok(n)
}

fn revive(txn: &Txn, queue: &str, id: &str, job: &mut Value, now: u64) {
    set_field(job, "state", Value::String("ready".into()));
    set_field(job, "attempt", Value::Int(0));
    set_field(job, "due", Value::Int(now as i64));
    let p = int(job, "priority").unwrap_or(0);
    txn.set(entry(queue, "ready", Some(-p), id), Vec::new(), None);
    put(txn, queue, id, job);
}

/// Deletes every job of a queue (any state) and its idempotency keys; returns how many jobs.
pub fn purge(txn: &Txn, queue: &str) -> Result<u64> {
    check_name(queue)?;
    let jobs = KeyPrefix::QueueArea { queue, area: "job" }.encode();
    let mut n = 0;
    let mut keys = Vec::new();
    for r in txn.scan(&KeyRange::prefix(&KeyPrefix::Queue(queue).encode()), false)? {
        let (k, _) = r?;
        if k.starts_with(&jobs) {
            n += 1;
        }
        keys.push(k.into_owned());
    }
    for k in keys {
        txn.delete(k);
    }
    Ok(n)
}

/// Deletes finished jobs that finished before `before` (ms); returns how many.
pub fn cleanup(txn: &Txn, queue: &str, before: u64) -> Result<u64> {
    let mut n = 0;
    for (k, id) in due_ids(txn, queue, "done", Some(before as i64 - 1), usize::MAX)? {
        txn.delete(k);
        txn.delete(Key::Job { queue, id: &id }.encode());
        n += 1;
    }
    Ok(n)
}

/// Counts of a queue's jobs by state, and the age of its oldest waiting job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub ready: u64,
    pub delayed: u64,
    pub leased: u64,
    pub dead: u64,
    pub done: u64,
    /// Milliseconds since the oldest ready job was enqueued.
    pub oldest_ms: Option<u64>,
}

pub fn stats(txn: &Txn, queue: &str, now: u64) -> Result<Stats> {
    let mut s = Stats::default();
    let count = |area: &'static str| -> Result<u64> {
        let mut n = 0;
        for r in txn.scan(&KeyPrefix::QueueArea { queue, area }.range(), false)? {
            r?;
            n += 1;
        }
        Ok(n)
    };
    s.delayed = count("delayed")?;
    s.leased = count("leased")?;
    s.dead = count("dead")?;
    s.done = count("done")?;
    let mut oldest: Option<i64> = None;
    for (_, id) in due_ids(txn, queue, "ready", None, usize::MAX)? {
        s.ready += 1;
        if let Some(job) = get(txn, queue, &id)? {
            let at = int(&job, "enqueued_at").unwrap_or(now as i64);
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    s.oldest_ms = oldest.map(|o| now.saturating_sub(o.max(0) as u64));
    Ok(s)
}

/// When the next delayed job is due, or a lease ends (ms): how long an idle worker may
/// sleep.
pub fn next_due(txn: &Txn, queue: &str) -> Result<Option<u64>> {
    let first = |area: &'static str| -> Result<Option<u64>> {
        let range = KeyPrefix::QueueArea { queue, area }.range();
        let next = txn.scan(&range, false)?.next().transpose()?;
        Ok(next.and_then(|(k, _)| crate::keyspace::job_order(&k)).map(|t| t.max(0) as u64))
    };
    let a = first("delayed")?;
    let b = first("leased")?;
    Ok(match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    })
}

/// Deletes a queue: its jobs and its definition.
pub fn drop_queue(txn: &Txn, queue: &str) -> Result<bool> {
    let existed = definition(txn, queue)?.is_some();
    purge(txn, queue)?;
    txn.delete(Key::QueueDef { queue }.encode());
    Ok(existed)
}
