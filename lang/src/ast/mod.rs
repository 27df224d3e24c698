//! The abstract syntax tree. Every node carries a byte [`Span`]; `==` ignores spans, so two
//! trees are equal when they have the same structure. `Display` prints canonical KQL.

mod admin;
mod expr;
mod query;
mod schema;

pub use admin::{
    Check, DefineQueue, Dequeue, Describe, Enqueue, Explain, JobOptions, Kv, KvOp, KvRange,
    QueueRef, Schedule, Settle, Show, ShowWhat,
};
pub use expr::{
    precedence, BinaryOp, CallArgs, DurationKind, DurationValue, Expire, Expr, ExprKind, Ident,
    InRhs, Literal, ObjectField, Param, Path, UnaryOp,
};
pub use query::{
    AssignOp, Assignment, Delete, Include, Insert, InsertSource, OrderBy, Projection, RecordRef,
    Relate, Select, SelectItem, Update, Upsert, Watch, WatchTarget,
};
pub use schema::{
    AlterAction, AlterModel, DefineModel, Drop, EnumVariant, FieldDef, FieldModifier, FieldType,
    IndexDef, ModelElement, ModifierKind, OnDelete, RelationDef, RelationKind, TypeName,
};

use crate::span::Span;

/// One KQL statement: one variant per statement kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    /// `DEFINE MODEL`
    DefineModel(DefineModel),
    /// `ALTER MODEL`
    AlterModel(AlterModel),
    /// `DROP MODEL`
    DropModel(Drop),
    /// `SELECT`
    Select(Select),
    /// `INSERT`
    Insert(Insert),
    /// `UPSERT`
    Upsert(Upsert),
    /// `UPDATE`
    Update(Update),
    /// `DELETE`
    Delete(Delete),
    /// `BEGIN [TRANSACTION]`
    Begin(Span),
    /// `COMMIT`
    Commit(Span),
    /// `ROLLBACK`
    Rollback(Span),
    /// `WATCH`
    Watch(Watch),
    /// `RELATE`
    Relate(Relate),
    /// `UNRELATE`
    Unrelate(Relate),
    /// `DEFINE QUEUE`
    DefineQueue(DefineQueue),
    /// `DROP QUEUE`
    DropQueue(Drop),
    /// `ENQUEUE`
    Enqueue(Enqueue),
    /// `DEQUEUE`
    Dequeue(Dequeue),
    /// `ACK`
    Ack(Settle),
    /// `NACK`
    Nack(Settle),
    /// `QUEUE STATS`
    QueueStats(QueueRef),
    /// `RETRY DEAD FROM`
    RetryDead(QueueRef),
    /// `PURGE`
    Purge(QueueRef),
    /// `SHOW`
    Show(Show),
    /// `DESCRIBE`
    Describe(Describe),
    /// `EXPLAIN`
    Explain(Explain),
    /// `CHECK`
    Check(Check),
    /// `KV`
    Kv(Kv),
}

impl Statement {
    /// The statement's span, from its first token to its last (the `;` excluded).
    pub fn span(&self) -> Span {
        match self {
            Statement::DefineModel(s) => s.span,
            Statement::AlterModel(s) => s.span,
            Statement::DropModel(s) | Statement::DropQueue(s) => s.span,
            Statement::Select(s) => s.span,
            Statement::Insert(s) => s.span,
            Statement::Upsert(s) => s.span,
            Statement::Update(s) => s.span,
            Statement::Delete(s) => s.span,
            Statement::Begin(span) | Statement::Commit(span) | Statement::Rollback(span) => *span,
            Statement::Watch(s) => s.span,
            Statement::Relate(s) | Statement::Unrelate(s) => s.span,
            Statement::DefineQueue(s) => s.span,
            Statement::Enqueue(s) => s.span,
            Statement::Dequeue(s) => s.span,
            Statement::Ack(s) | Statement::Nack(s) => s.span,
            Statement::QueueStats(s) | Statement::RetryDead(s) | Statement::Purge(s) => s.span,
            Statement::Show(s) => s.span,
            Statement::Describe(s) => s.span,
            Statement::Explain(s) => s.span,
            Statement::Check(s) => s.span,
            Statement::Kv(s) => s.span,
        }
    }

    /// The statement's leading keyword(s), for messages: `"SELECT"`, `"DEFINE MODEL"`, ….
    pub fn kind_name(&self) -> &'static str {
        match self {
            Statement::DefineModel(_) => "DEFINE MODEL",
            Statement::AlterModel(_) => "ALTER MODEL",
            Statement::DropModel(_) => "DROP MODEL",
            Statement::Select(_) => "SELECT",
            Statement::Insert(_) => "INSERT",
            Statement::Upsert(_) => "UPSERT",
            Statement::Update(_) => "UPDATE",
            Statement::Delete(_) => "DELETE",
            Statement::Begin(_) => "BEGIN",
            Statement::Commit(_) => "COMMIT",
            Statement::Rollback(_) => "ROLLBACK",
            Statement::Watch(_) => "WATCH",
            Statement::Relate(_) => "RELATE",
            Statement::Unrelate(_) => "UNRELATE",
            Statement::DefineQueue(_) => "DEFINE QUEUE",
            Statement::DropQueue(_) => "DROP QUEUE",
            Statement::Enqueue(_) => "ENQUEUE",
            Statement::Dequeue(_) => "DEQUEUE",
            Statement::Ack(_) => "ACK",
            Statement::Nack(_) => "NACK",
            Statement::QueueStats(_) => "QUEUE STATS",
            Statement::RetryDead(_) => "RETRY DEAD",
            Statement::Purge(_) => "PURGE",
            Statement::Show(_) => "SHOW",
            Statement::Describe(_) => "DESCRIBE",
            Statement::Explain(_) => "EXPLAIN",
            Statement::Check(_) => "CHECK",
            Statement::Kv(_) => "KV",
        }
    }
}
