//! Interrupting running statements from another thread (the shell's Ctrl-C), as
//! `sqlite3_interrupt` does: [`Interrupt::interrupt`] stops every statement of the database
//! running at that moment with [`crate::Error::Interrupted`] (nothing written); statements
//! started afterwards run normally. A statement notes the interrupt count when it starts
//! and checks it as it reads rows — one relaxed atomic load per row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A handle that interrupts a database's running statements; cheap to clone, `Send + Sync`.
#[derive(Clone, Debug, Default)]
pub struct Interrupt {
    count: Arc<AtomicU64>,
}

impl Interrupt {
    /// Stops every statement running now; they fail with `kvm.interrupted`.
    pub fn interrupt(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
    }

    /// How many interrupts there have been: a long task made of several statements (an
    /// import, a waiting watch) compares it with the count at its start to stop between
    /// them.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The check a statement starting now makes as it runs.
    pub(crate) fn watch(&self) -> Stop<'_> {
        Stop { count: &self.count, at: self.count.load(Ordering::SeqCst) }
    }
}

/// What a running statement checks: whether an interrupt came since it started.
#[derive(Clone, Copy, Debug)]
pub struct Stop<'a> {
    count: &'a AtomicU64,
    at: u64,
}

impl Stop<'_> {
    /// `Err(Interrupted)` once the statement has been interrupted.
    pub fn check(&self) -> Result<()> {
        if self.count.load(Ordering::Relaxed) == self.at {
            Ok(())
        } else {
            Err(Error::Interrupted)
        }
    }
}
