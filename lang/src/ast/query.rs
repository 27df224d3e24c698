//! Data statements: `SELECT`, `INSERT`, `UPSERT`, `UPDATE`, `DELETE`, `WATCH`,
//! `RELATE` / `UNRELATE`, and the clauses they share.

use super::expr::{Expr, Ident, Path};
use super::Expire;
use crate::span::Span;

/// `SELECT projection FROM model [WHERE] [ORDER BY] [LIMIT] [OFFSET] [AFTER] [INCLUDE]`.
/// Clauses may be written in any order, each at most once; they print in this order.
#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    /// `SELECT DISTINCT`: each distinct output row once.
    pub distinct: bool,
    /// What to return.
    pub projection: Projection,
    /// The model queried.
    pub from: Ident,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// `GROUP BY`: the expressions rows are grouped by (empty: no grouping).
    pub group_by: Vec<Expr>,
    /// `HAVING`: the condition a group must meet.
    pub having: Option<Expr>,
    /// `ORDER BY`.
    pub order_by: Vec<OrderBy>,
    /// `LIMIT` (an integer or a parameter).
    pub limit: Option<Expr>,
    /// `OFFSET` (an integer or a parameter).
    pub offset: Option<Expr>,
    /// `AFTER cursor`: keyset pagination from a cursor returned by an earlier page.
    pub after: Option<Expr>,
    /// `INCLUDE`: related records loaded with each result.
    pub include: Vec<Include>,
    /// Where it is.
    pub span: Span,
}

/// A projection (`SELECT` list or `RETURNING` list).
#[derive(Clone, Debug, PartialEq)]
pub enum Projection {
    /// `*`
    All,
    /// `expr [AS alias], …`
    Items(Vec<SelectItem>),
}

/// One projected expression.
#[derive(Clone, Debug, PartialEq)]
pub struct SelectItem {
    /// The value.
    pub expr: Expr,
    /// `AS alias`.
    pub alias: Option<Ident>,
}

/// One `ORDER BY` key.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderBy {
    /// The sort key.
    pub expr: Expr,
    /// `DESC` (`ASC` is the default).
    pub descending: bool,
}

/// `INCLUDE relation[.relation…] [( [WHERE] [ORDER BY] [LIMIT] [OFFSET] [INCLUDE] )]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Include {
    /// The relation, dotted for a nested include (`comments.author`).
    pub relation: Path,
    /// Filter on the related records.
    pub filter: Option<Expr>,
    /// Order of the related records.
    pub order_by: Vec<OrderBy>,
    /// Per-parent limit.
    pub limit: Option<Expr>,
    /// Per-parent offset.
    pub offset: Option<Expr>,
    /// Includes of the related records.
    pub include: Vec<Include>,
    /// Where it is.
    pub span: Span,
}

/// `INSERT INTO model value [EXPIRE IN d] [RETURNING …]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Insert {
    /// The model.
    pub model: Ident,
    /// One record or an atomic batch.
    pub source: InsertSource,
    /// `EXPIRE IN`: time to live of the new records.
    pub expire: Option<Expire>,
    /// `RETURNING`.
    pub returning: Option<Projection>,
    /// Where it is.
    pub span: Span,
}

/// What an `INSERT` writes.
#[derive(Clone, Debug, PartialEq)]
pub enum InsertSource {
    /// One record: an object literal or a parameter.
    One(Expr),
    /// `[ {…}, {…} ]`: several records in one atomic batch.
    Batch(Vec<Expr>),
}

/// `UPSERT INTO model value [ON (fields)] [EXPIRE IN d] [RETURNING …]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Upsert {
    /// The model.
    pub model: Ident,
    /// The record.
    pub value: Expr,
    /// `ON (fields)`: the unique key that decides insert or update (default: the primary key).
    pub on: Vec<Ident>,
    /// `DO UPDATE SET …`: what a record found is updated with (`None`: with the value's
    /// fields).
    pub update: Option<Vec<Assignment>>,
    /// `EXPIRE IN`.
    pub expire: Option<Expire>,
    /// `RETURNING`.
    pub returning: Option<Projection>,
    /// Where it is.
    pub span: Span,
}

/// `UPDATE model SET assignment, … [WHERE] [EXPIRE IN d] [RETURNING …]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The model.
    pub model: Ident,
    /// `SET` list (may be empty when only `EXPIRE IN` is given).
    pub assignments: Vec<Assignment>,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// `EXPIRE IN`: reset the time to live.
    pub expire: Option<Expire>,
    /// `RETURNING`.
    pub returning: Option<Projection>,
    /// Where it is.
    pub span: Span,
}

/// One `SET` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The field (dotted for nested object fields).
    pub target: Path,
    /// How the value combines with the current one.
    pub op: AssignOp,
    /// The operand.
    pub value: Expr,
    /// Where it is.
    pub span: Span,
}

/// Assignment operators. `Min`/`Max` are written `f = MIN(f, v)` / `f = MAX(f, v)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AssignOp {
    /// `f = v`
    Set,
    /// `f += v` (atomic sum)
    Add,
    /// `f -= v` (atomic subtraction)
    Sub,
    /// `f = MIN(f, v)` (atomic minimum)
    Min,
    /// `f = MAX(f, v)` (atomic maximum)
    Max,
}

/// `DELETE FROM model [WHERE] [RETURNING …]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Delete {
    /// The model.
    pub model: Ident,
    /// `WHERE`.
    pub filter: Option<Expr>,
    /// `RETURNING`.
    pub returning: Option<Projection>,
    /// Where it is.
    pub span: Span,
}

/// `WATCH model[.relation] [WHERE …]` or `WATCH SELECT …`.
#[derive(Clone, Debug, PartialEq)]
pub struct Watch {
    /// What is watched.
    pub target: WatchTarget,
    /// Where it is.
    pub span: Span,
}

/// The thing a `WATCH` follows.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchTarget {
    /// Records of a model (a record, an `IN` list or any filter), or, with `relation`,
    /// the related records of the parents the filter selects.
    Model {
        /// The model.
        model: Ident,
        /// `model.relation`.
        relation: Option<Ident>,
        /// `WHERE`.
        filter: Option<Expr>,
    },
    /// The result of a query.
    Query(Box<Select>),
}

/// `RELATE model:key TO model:key [VIA relation]` (and `UNRELATE`).
#[derive(Clone, Debug, PartialEq)]
pub struct Relate {
    /// The source record.
    pub from: RecordRef,
    /// The target record.
    pub to: RecordRef,
    /// The many-to-many relation (needed when more than one connects the models).
    pub via: Option<Ident>,
    /// Where it is.
    pub span: Span,
}

/// `model:key`, a record named by primary key.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRef {
    /// The model.
    pub model: Ident,
    /// The key: a literal or a parameter.
    pub key: Expr,
}
