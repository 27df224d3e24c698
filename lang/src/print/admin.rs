//! Printing queue, introspection and raw key-value statements.

use std::fmt::{self, Display, Formatter};

use crate::ast::{
    Check, DefineQueue, Dequeue, Describe, Enqueue, JobOptions, Kv, KvOp, KvRange, Schedule, Show,
    ShowWhat,
};

impl Display for JobOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(retries) = &self.retries {
            write!(f, " RETRIES {retries}")?;
        }
        if let Some(backoff) = &self.backoff {
            write!(f, " BACKOFF {backoff}")?;
        }
        if let Some(timeout) = &self.timeout {
            write!(f, " TIMEOUT {timeout}")?;
        }
        if let Some(queue) = &self.dead_letter {
            write!(f, " DEAD LETTER {queue}")?;
        }
        Ok(())
    }
}

impl Display for DefineQueue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("DEFINE QUEUE ")?;
        if self.if_not_exists {
            f.write_str("IF NOT EXISTS ")?;
        }
        write!(f, "{}{}", self.name, self.options)
    }
}

impl Display for Enqueue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "ENQUEUE INTO {} {}", self.queue, self.value)?;
        match &self.schedule {
            Some(Schedule::Delay(d)) => write!(f, " DELAY {d}")?,
            Some(Schedule::At(t)) => write!(f, " AT {t}")?,
            None => {}
        }
        if let Some(priority) = &self.priority {
            write!(f, " PRIORITY {priority}")?;
        }
        self.options.fmt(f)?;
        if let Some(key) = &self.key {
            write!(f, " KEY {key}")?;
        }
        Ok(())
    }
}

impl Display for Dequeue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "DEQUEUE FROM {}", self.queue)?;
        if let Some(limit) = &self.limit {
            write!(f, " LIMIT {limit}")?;
        }
        if let Some(wait) = &self.wait {
            write!(f, " WAIT {wait}")?;
        }
        Ok(())
    }
}

impl Display for Show {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.what {
            ShowWhat::Models => f.write_str("SHOW MODELS"),
            ShowWhat::Queues => f.write_str("SHOW QUEUES"),
            ShowWhat::Indexes(None) => f.write_str("SHOW INDEXES"),
            ShowWhat::Indexes(Some(model)) => write!(f, "SHOW INDEXES FROM {model}"),
        }
    }
}

impl Display for Describe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.queue {
            write!(f, "DESCRIBE QUEUE {}", self.name)
        } else {
            write!(f, "DESCRIBE {}", self.name)
        }
    }
}

impl Display for Check {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.model {
            None => f.write_str("CHECK DATABASE"),
            Some(model) => write!(f, "CHECK MODEL {model}"),
        }
    }
}

impl Display for Kv {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.op {
            KvOp::Get(key) => write!(f, "KV GET {key}"),
            KvOp::Delete(key) => write!(f, "KV DELETE {key}"),
            KvOp::Set { key, value, expire } => {
                write!(f, "KV SET {key} {value}")?;
                if let Some(expire) = expire {
                    write!(f, " {expire}")?;
                }
                Ok(())
            }
            KvOp::List { range, reverse, limit } => {
                f.write_str("KV LIST")?;
                match range {
                    KvRange::All => {}
                    KvRange::Prefix(key) => write!(f, " PREFIX {key}")?,
                    KvRange::Range { start, end } => {
                        write!(f, " FROM {start}")?;
                        if let Some(end) = end {
                            write!(f, " TO {end}")?;
                        }
                    }
                }
                if *reverse {
                    f.write_str(" REVERSE")?;
                }
                if let Some(limit) = limit {
                    write!(f, " LIMIT {limit}")?;
                }
                Ok(())
            }
        }
    }
}
