//! Queue statements: `ENQUEUE` with its job options, `DEQUEUE`, `ACK` / `NACK`, and the
//! admin forms `QUEUE STATS q`, `RETRY DEAD FROM q`, `PURGE q` (`DEFINE QUEUE` shares the
//! option parser).

use super::select::clause_once;
use super::{PResult, Parser};
use crate::ast::{Dequeue, Enqueue, Expr, JobOptions, QueueRef, Schedule, Settle, Statement};
use crate::keyword::Keyword;

/// Options of an `ENQUEUE` (or, without the per-job ones, of a `DEFINE QUEUE`).
pub(crate) struct EnqueueOptions {
    pub(crate) options: JobOptions,
    pub(crate) schedule: Option<Schedule>,
    pub(crate) priority: Option<Expr>,
    pub(crate) key: Option<Expr>,
}

impl Parser<'_> {
    /// `ENQUEUE INTO q value option…`
    pub(crate) fn parse_enqueue(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::Into)?;
        let queue = self.ident()?;
        let value = self.expr()?;
        let o = self.job_options(true)?;
        Ok(Statement::Enqueue(Enqueue {
            queue,
            value,
            schedule: o.schedule,
            priority: o.priority,
            key: o.key,
            options: o.options,
            span: self.span_from(start),
        }))
    }

    /// Options in any order, each once: `RETRIES n`, `BACKOFF d`, `TIMEOUT d`,
    /// `DEAD LETTER q`, and for a job also `DELAY d` | `AT t`, `PRIORITY n`, `KEY k`.
    pub(crate) fn job_options(&mut self, per_job: bool) -> PResult<EnqueueOptions> {
        let mut o = EnqueueOptions {
            options: JobOptions::default(),
            schedule: None,
            priority: None,
            key: None,
        };
        loop {
            if let Some(span) = self.eat_kw(Keyword::Retries) {
                clause_once(o.options.retries.is_some(), span, "RETRIES")?;
                o.options.retries = Some(self.int_or_param()?);
            } else if let Some(span) = self.eat_kw(Keyword::Backoff) {
                clause_once(o.options.backoff.is_some(), span, "BACKOFF")?;
                o.options.backoff = Some(self.duration()?);
            } else if let Some(span) = self.eat_kw(Keyword::Timeout) {
                clause_once(o.options.timeout.is_some(), span, "TIMEOUT")?;
                o.options.timeout = Some(self.duration()?);
            } else if let Some(span) = self.eat_kw(Keyword::Dead) {
                clause_once(o.options.dead_letter.is_some(), span, "DEAD LETTER")?;
                self.expect_kw(Keyword::Letter)?;
                o.options.dead_letter = Some(self.ident()?);
            } else if !per_job {
                return Ok(o);
            } else if let Some(span) = self.eat_kw(Keyword::Delay) {
                clause_once(o.schedule.is_some(), span, "DELAY or AT")?;
                o.schedule = Some(Schedule::Delay(self.duration()?));
            } else if let Some(span) = self.eat_kw(Keyword::At) {
                clause_once(o.schedule.is_some(), span, "DELAY or AT")?;
                o.schedule = Some(Schedule::At(self.expr()?));
            } else if let Some(span) = self.eat_kw(Keyword::Priority) {
                clause_once(o.priority.is_some(), span, "PRIORITY")?;
                o.priority = Some(self.int_or_param()?);
            } else if let Some(span) = self.eat_kw(Keyword::Key) {
                clause_once(o.key.is_some(), span, "KEY")?;
                o.key = Some(self.expr()?);
            } else {
                return Ok(o);
            }
        }
    }

    /// `DEQUEUE FROM q [LIMIT n] [WAIT d]`
    pub(crate) fn parse_dequeue(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::From)?;
        let queue = self.ident()?;
        let mut limit = None;
        let mut wait = None;
        loop {
            if let Some(span) = self.eat_kw(Keyword::Limit) {
                clause_once(limit.is_some(), span, "LIMIT")?;
                limit = Some(self.int_or_param()?);
            } else if let Some(span) = self.eat_kw(Keyword::Wait) {
                clause_once(wait.is_some(), span, "WAIT")?;
                wait = Some(self.duration()?);
            } else {
                break;
            }
        }
        Ok(Statement::Dequeue(Dequeue { queue, limit, wait, span: self.span_from(start) }))
    }

    /// `ACK job` / `NACK job`
    pub(crate) fn parse_settle(&mut self) -> PResult<Statement> {
        let first = self.advance();
        let job = self.expr()?;
        let settle = Settle { job, span: self.span_from(first.span) };
        Ok(if first.keyword == Some(Keyword::Ack) {
            Statement::Ack(settle)
        } else {
            Statement::Nack(settle)
        })
    }

    /// `QUEUE STATS q` / `RETRY DEAD FROM q` / `PURGE q`
    pub(crate) fn parse_queue_admin(&mut self) -> PResult<Statement> {
        let first = self.advance();
        let make = |queue, span| QueueRef { queue, span };
        match first.keyword {
            Some(Keyword::Queue) => {
                self.expect_kw(Keyword::Stats)?;
                let queue = self.ident()?;
                Ok(Statement::QueueStats(make(queue, self.span_from(first.span))))
            }
            Some(Keyword::Retry) => {
                self.expect_kw(Keyword::Dead)?;
                self.expect_kw(Keyword::From)?;
                let queue = self.ident()?;
                Ok(Statement::RetryDead(make(queue, self.span_from(first.span))))
            }
            _ => {
                let queue = self.ident()?;
                Ok(Statement::Purge(make(queue, self.span_from(first.span))))
            }
        }
    }
}
