//! The queue statements: `DEFINE QUEUE`, `DROP QUEUE`, `ENQUEUE` (inside a transaction it
//! commits with the data writes), `DEQUEUE` (one pass; `WAIT` is the database's loop around
//! it), `ACK`, `NACK`, `SHOW QUEUES`, `QUEUE STATS`, `DESCRIBE QUEUE`, `RETRY DEAD`, `PURGE`.

use kvm_lang::ast::{DefineQueue, Dequeue, DurationValue, Enqueue, JobOptions, Schedule};
use kvm_lang::{Expr, Statement};
use kvm_storage::Value;

use super::Cx;
use crate::error::{Error, Result};
use crate::output::{Output, Rows};
use crate::queue::{self, Given, NewJob, Options};

/// Runs a queue statement. Those that move jobs track their reads, so two consumers taking
/// the same job conflict at commit and one retries.
pub fn run(cx: &Cx, stmt: &Statement) -> Result<Output> {
    match stmt {
        Statement::Show(_) => show(cx),
        Statement::DefineQueue(d) => define(cx, d),
        Statement::DropQueue(d) => drop(cx, d),
        Statement::QueueStats(q) => stats(cx, &q.queue),
        Statement::Describe(d) => stats(cx, &d.name),
        moving => {
            cx.mtx.txn().track_reads(true);
            match moving {
                Statement::Enqueue(e) => enqueue(cx, e),
                Statement::Dequeue(d) => dequeue(cx, d),
                Statement::Ack(s) => settle(cx, &s.job, true),
                Statement::Nack(s) => settle(cx, &s.job, false),
                Statement::RetryDead(q) => retry_dead(cx, &q.queue.name),
                Statement::Purge(q) => purge(cx, &q.queue.name),
                other => {
                    Err(Error::Internal(format!("{} is not a queue statement", other.kind_name())))
                }
            }
        }
    }
}

fn duration_ms(cx: &Cx, d: &DurationValue, what: &str) -> Result<i64> {
    let ms = super::duration_ms(cx.params, d, what, false)?.unwrap_or(0);
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

fn int(cx: &Cx, e: &Expr, what: &str) -> Result<i64> {
    match cx.value(e)? {
        Value::Int(i) => Ok(i),
        Value::Counter(c) => Ok(i64::try_from(c).unwrap_or(i64::MAX)),
        other => Err(Error::Invalid {
            code: "kvm.type_mismatch",
            message: format!("{what} must be an integer, got {}", crate::values::kql(&other)),
            span: Some(e.span),
            help: None,
        }),
    }
}

fn text(cx: &Cx, e: &Expr, what: &str) -> Result<String> {
    match cx.value(e)? {
        Value::String(s) => Ok(s),
        other => Err(Error::Invalid {
            code: "kvm.type_mismatch",
            message: format!("{what} must be a string, got {}", crate::values::kql(&other)),
            span: Some(e.span),
            help: None,
        }),
    }
}

fn given(cx: &Cx, o: &JobOptions) -> Result<Given> {
    let retries = o.retries.as_ref().map(|e| int(cx, e, "RETRIES")).transpose()?;
    if let Some(r) = retries.filter(|r| *r < 0) {
        return Err(Error::Param(format!("RETRIES must be 0 or more, got {r}")));
    }
    Ok(Given {
        retries,
        backoff_ms: o.backoff.as_ref().map(|d| duration_ms(cx, d, "BACKOFF")).transpose()?,
        timeout_ms: o.timeout.as_ref().map(|d| duration_ms(cx, d, "TIMEOUT")).transpose()?,
        dead_letter: o.dead_letter.as_ref().map(|q| q.name.clone()),
    })
}

fn define(cx: &Cx, d: &DefineQueue) -> Result<Output> {
    let q = &d.name.name;
    queue::check_name(q)?;
    let txn = cx.mtx.txn();
    if queue::definition(txn, q)?.is_some() && d.if_not_exists {
        return Ok(Output::Message(format!("queue {q} exists")));
    }
    let o = Options::default().with(&given(cx, &d.options)?);
    queue::define(txn, q, &o);
    Ok(Output::Message(format!("defined queue {q}")))
}

fn drop(cx: &Cx, d: &kvm_lang::ast::Drop) -> Result<Output> {
    let q = &d.name.name;
    if !queue::drop_queue(cx.mtx.txn(), q)? && !d.if_exists {
        return Err(Error::catalog("kvm.unknown_queue", format!("queue `{q}` does not exist")));
    }
    Ok(Output::Message(format!("dropped queue {q}")))
}

fn enqueue(cx: &Cx, e: &Enqueue) -> Result<Output> {
    let txn = cx.mtx.txn();
    let now = txn.now_millis();
    let payload = cx.value(&e.value)?;
    let due_ms = match &e.schedule {
        None => None,
        Some(Schedule::Delay(d)) => {
            Some(now.saturating_add(duration_ms(cx, d, "DELAY")?.max(0) as u64))
        }
        Some(Schedule::At(t)) => Some(match cx.value(t)? {
            Value::Timestamp(us) => (us / 1000).max(0) as u64,
            Value::String(s) => match crate::values::parse_timestamp(&s) {
                Some(us) => (us / 1000).max(0) as u64,
                None => return Err(Error::Param(format!("AT: '{s}' is not a timestamp"))),
            },
            other => {
                return Err(Error::Param(format!(
                    "AT expects a timestamp, got {}",
                    crate::values::kql(&other)
                )))
            }
        }),
    };
    let priority = e.priority.as_ref().map(|p| int(cx, p, "PRIORITY")).transpose()?.unwrap_or(0);
    let key = e.key.as_ref().map(|k| text(cx, k, "KEY")).transpose()?;
    let job = NewJob {
        queue: &e.queue.name,
        payload,
        due_ms,
        priority,
        key,
        given: given(cx, &e.options)?,
    };
    let (id, new) = queue::enqueue(txn, job, now, cx.ids)?;
    Ok(Output::Rows(Rows {
        columns: vec!["id".into(), "queue".into(), "enqueued".into()],
        rows: vec![vec![Value::String(id), Value::String(e.queue.name.clone()), Value::Bool(new)]],
        next_cursor: None,
    }))
}

fn dequeue(cx: &Cx, d: &Dequeue) -> Result<Output> {
    let limit = d.limit.as_ref().map(|l| int(cx, l, "LIMIT")).transpose()?.unwrap_or(1);
    let limit = usize::try_from(limit)
        .map_err(|_| Error::Param(format!("LIMIT must be 0 or more, got {limit}")))?;
    let txn = cx.mtx.txn();
    let jobs = queue::dequeue(txn, &d.queue.name, limit, txn.now_millis(), None)?;
    let columns = ["job", "id", "queue", "payload", "attempt", "priority", "lease_until", "errors"];
    Ok(Output::Rows(Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows: jobs
            .into_iter()
            .map(|j| {
                vec![
                    Value::String(j.lease),
                    Value::String(j.id),
                    Value::String(j.queue),
                    j.payload,
                    Value::Int(j.attempt),
                    Value::Int(j.priority),
                    Value::Timestamp(
                        i64::try_from(j.lease_until).unwrap_or(i64::MAX).saturating_mul(1000),
                    ),
                    Value::Array(j.errors),
                ]
            })
            .collect(),
        next_cursor: None,
    }))
}

fn settle(cx: &Cx, job: &Expr, ack: bool) -> Result<Output> {
    let lease = text(cx, job, if ack { "ACK" } else { "NACK" })?;
    let txn = cx.mtx.txn();
    let q = queue::find_queue(txn, &lease)?.ok_or_else(|| Error::Invalid {
        code: "kvm.lease_lost",
        message: format!("no job holds lease '{lease}'"),
        span: Some(job.span),
        help: Some("ACK/NACK take the `job` column DEQUEUE returned".into()),
    })?;
    let now = txn.now_millis();
    if ack {
        queue::ack(txn, &q, &lease, now)?;
        Ok(Output::Message(format!("acked {lease}")))
    } else {
        queue::nack(txn, &q, &lease, "NACK", now)?;
        Ok(Output::Message(format!("nacked {lease}")))
    }
}

fn stats_row(cx: &Cx, q: &str) -> Result<Vec<Value>> {
    let txn = cx.mtx.txn();
    let s = queue::stats(txn, q, txn.now_millis())?;
    let n = |x: u64| Value::Int(i64::try_from(x).unwrap_or(i64::MAX));
    Ok(vec![
        Value::String(q.to_string()),
        n(s.ready),
        n(s.delayed),
        n(s.leased),
        n(s.dead),
        n(s.done),
        s.oldest_ms.map_or(Value::Null, |ms| Value::String(format!("{:.1}s", ms as f64 / 1000.0))),
    ])
}

const STATS: [&str; 7] = ["queue", "ready", "delayed", "leased", "dead", "done", "oldest"];

fn show(cx: &Cx) -> Result<Output> {
    let mut rows = Vec::new();
    for q in queue::names(cx.mtx.txn())? {
        rows.push(stats_row(cx, &q)?);
    }
    Ok(Output::Rows(Rows {
        columns: STATS.iter().map(|c| c.to_string()).collect(),
        rows,
        next_cursor: None,
    }))
}

fn stats(cx: &Cx, q: &kvm_lang::ast::Ident) -> Result<Output> {
    let o = queue::definition(cx.mtx.txn(), &q.name)?.ok_or_else(|| {
        Error::catalog("kvm.unknown_queue", format!("queue `{}` does not exist", q.name))
    })?;
    let mut row = stats_row(cx, &q.name)?;
    row.extend([
        Value::Int(o.retries),
        Value::String(format!("{}ms", o.backoff_ms)),
        Value::String(format!("{}ms", o.timeout_ms)),
        o.dead_letter.map_or(Value::Null, Value::String),
    ]);
    let mut columns: Vec<String> = STATS.iter().map(|c| c.to_string()).collect();
    columns.extend(["retries", "backoff", "timeout", "dead_letter"].map(String::from));
    Ok(Output::Rows(Rows { columns, rows: vec![row], next_cursor: None }))
}

fn retry_dead(cx: &Cx, q: &str) -> Result<Output> {
    let txn = cx.mtx.txn();
    let n = queue::retry_dead(txn, q, txn.now_millis())?;
    Ok(Output::Message(format!("retried {n} dead job{}", if n == 1 { "" } else { "s" })))
}

fn purge(cx: &Cx, q: &str) -> Result<Output> {
    let n = queue::purge(cx.mtx.txn(), q)?;
    Ok(Output::Message(format!("purged {n} job{}", if n == 1 { "" } else { "s" })))
}
