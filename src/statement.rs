//! The statement table: what each kind of statement is, decided once. Every rule that
//! depends on the kind — does it write (and so wait for a writer's turn and commit), may it
//! run inside `BEGIN … COMMIT`, does it return rows (what `query` accepts), is it planned
//! (prepared plans, `EXPLAIN` with an access path) — reads it here. The match is
//! exhaustive: a new statement kind does not compile until its row is filled in.

use kvm_lang::ast::KvOp;
use kvm_lang::Statement;

/// What a statement kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// It may write: it waits while another writer holds the turn, tracks its reads, and
    /// commits.
    pub writes: bool,
    /// It may run inside `BEGIN … COMMIT` / `Database::transaction`.
    pub in_transaction: bool,
    /// Its output is a table of rows (`query`, `query_row`, `query_iter` accept it).
    pub rows: bool,
    /// The planner makes a plan for it (an access path `EXPLAIN` shows; kept by `prepare`).
    pub planned: bool,
}

const fn kind(writes: bool, in_transaction: bool, rows: bool, planned: bool) -> Kind {
    Kind { writes, in_transaction, rows, planned }
}

/// The table.
pub fn kind_of(stmt: &Statement) -> Kind {
    use Statement as S;
    match stmt {
        S::Select(_) => kind(false, true, true, true),
        S::Insert(s) => kind(true, true, s.returning.is_some(), true),
        S::Update(s) => kind(true, true, s.returning.is_some(), true),
        S::Delete(s) => kind(true, true, s.returning.is_some(), true),
        S::Upsert(s) => kind(true, true, s.returning.is_some(), true),
        S::Relate(_) | S::Unrelate(_) => kind(true, true, false, false),
        // Schema changes commit on their own (a backfill may follow), never in a transaction.
        S::DefineModel(_) | S::AlterModel(_) | S::DropModel(_) => kind(true, false, false, false),
        S::DefineQueue(_) | S::DropQueue(_) => kind(true, false, false, false),
        S::Enqueue(_) | S::Ack(_) | S::Nack(_) => kind(true, true, false, false),
        S::Dequeue(_) => kind(true, true, true, false),
        S::QueueStats(_) => kind(true, true, true, false),
        S::RetryDead(_) | S::Purge(_) => kind(true, false, false, false),
        S::Begin(_) | S::Commit(_) | S::Rollback(_) => kind(false, false, false, false),
        S::Watch(_) => kind(false, false, false, false),
        S::Show(_) => kind(false, true, true, false),
        S::Describe(_) | S::Explain(_) => kind(false, true, false, false),
        // CHECK reads everything: outside transactions, and first walks the storage pages.
        S::Check(_) => kind(false, false, false, false),
        // Raw keys of the user area: buffered like any write, so a transaction holds them.
        S::Kv(kv) => match kv.op {
            KvOp::Get(_) | KvOp::List { .. } => kind(false, true, true, false),
            KvOp::Set { .. } | KvOp::Delete(_) => kind(true, true, false, false),
        },
    }
}
