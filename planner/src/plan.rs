//! The plan: a tree of operators whose `Display` is `EXPLAIN`. Leaves say how records are
//! reached (primary-key get, index get or range, primary-key range, full scan) and which key
//! range they read; inner nodes filter, sort, limit, count and project. Expressions are the
//! bound IR ([`crate::ir`]): fields are slots, literals constants in their stored form, and
//! parameters stay parameters, so a prepared plan is bound to new parameters without
//! planning again.

use std::fmt::{self, Write as _};

use kvm_lang::ast::{AssignOp, Path};

use crate::ir::ScalarKind;
pub use crate::ir::{Scalar, SortKey};

/// One end of a range: the value and whether it is included.
#[derive(Debug, Clone)]
pub struct Bound {
    pub value: Scalar,
    pub inclusive: bool,
}

/// A range on one field: either end may be open; or (`prefix`) the string values that
/// start with a value (`STARTS WITH`), which takes the place of both ends.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub lower: Option<Bound>,
    pub upper: Option<Bound>,
    pub prefix: Option<Scalar>,
}

impl Range {
    pub fn is_open(&self) -> bool {
        self.lower.is_none() && self.upper.is_none() && self.prefix.is_none()
    }
}

/// How a query reaches its records.
#[derive(Debug, Clone)]
pub enum Access {
    /// `pk = v` or `pk IN (…)`: point reads of `[model, pk]`.
    PkGet { keys: Vec<Scalar> },
    /// Equality on every field of a unique index: one index read, then one record read.
    IndexGet { index: String, values: Vec<Scalar> },
    /// Equality on a prefix of an index's fields, then an optional range on the next one.
    /// `index_only`: the rows are made from the entries alone (the index's fields and the
    /// primary key; nothing else is read), no record is read — except for an entry whose
    /// value was too long to be held exactly.
    IndexScan { index: String, eq: Vec<Scalar>, range: Range, reverse: bool, index_only: bool },
    /// A range of primary keys.
    PkRange { range: Range, reverse: bool },
    /// Every record of the model, in key order; `reason` says why no index applied.
    FullScan { reverse: bool, reason: String },
    /// A semi-join through relation `rel`: the `inner` plan finds related records (by an
    /// index or key of theirs), then the records of the model they relate to are read —
    /// through the model's foreign-key `index` (`BELONGS TO`: records whose key is held by
    /// an inner record's key), or by the foreign key each inner record holds (`HAS …`).
    /// Distinct, in the order the inner plan yields them; a batch of inner rows at a time.
    Via { rel: Box<crate::relation::Rel>, index: Option<String>, inner: Box<Node> },
}

/// Related data loaded for a batch of rows: one batched read per relation level (a multi-get
/// of keys, or one request for the index ranges of every row of the batch), never one per row.
#[derive(Debug, Clone)]
pub struct Attach {
    /// The row field the value is put in: the relation name (`INCLUDE`, paths such as
    /// `author.name`), or the printed `EXISTS …` / `COUNT(relation)` expression.
    pub column: String,
    pub rel: crate::relation::Rel,
    pub what: AttachKind,
}

/// What an [`Attach`] loads.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a few per plan, built once: boxing buys nothing
pub enum AttachKind {
    /// The related records: an object or null for a single-record relation, an array
    /// otherwise (filtered, ordered — by the target's primary key when no `ORDER BY` —
    /// offset and limited per row), each with its own nested attachments.
    Records {
        filter: Option<Scalar>,
        order_by: Vec<SortKey>,
        limit: Option<Scalar>,
        offset: Option<Scalar>,
        /// For `HAS …`: the target index read (its first field is the foreign key) and its
        /// direction.
        index: Option<(String, bool)>,
        /// The index yields each row's related records already in order: with no filter,
        /// the limit applies while reading.
        ordered: bool,
        nested: Vec<Attach>,
    },
    /// Whether a related record (matching the filter) exists.
    Exists { filter: Option<Scalar> },
    /// How many related records there are (counted from index entries).
    Count,
}

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// `COUNT(*)` (no argument: rows) or `COUNT(x)` (non-null values).
    Count,
    /// The sum of the non-null values: an integer when every one is, null when none.
    Sum,
    /// Their mean, as a float; null when there is none.
    Avg,
    Min,
    Max,
}

/// One aggregate a grouped query computes per group.
#[derive(Debug, Clone)]
pub struct Agg {
    pub func: AggFunc,
    /// The value aggregated (row scope); `None` for `COUNT(*)`.
    pub arg: Option<Scalar>,
    /// `f(DISTINCT x)`: each distinct value once.
    pub distinct: bool,
    /// Its KQL text, as `EXPLAIN` and the column name show it.
    pub shown: String,
}

/// How an `Aggregate` step meets its groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    /// The input comes in group-key order: one group is held at a time, and each is
    /// emitted as soon as the next begins.
    Streamed,
    /// Groups are gathered in memory (bounded: more than the sort budget is an error), then
    /// emitted in group-key order.
    Hashed,
}

/// A read-side operator tree.
#[derive(Debug, Clone)]
pub enum Node {
    /// The leaf: records of `model` reached through `access`.
    Scan { model: String, access: Access },
    /// Keeps the rows for which `predicate` is true. `covered`: the scan below applies
    /// every condition of the predicate, so when each value bounding it is held exactly in
    /// its key (known once parameters are bound) the filter passes every row untested.
    Filter { source: Box<Node>, predicate: Scalar, covered: bool },
    /// Sorts by the keys; with `keep`, keeps only the first `limit + offset` rows while
    /// sorting (the `Limit` above skips the offset).
    Sort { source: Box<Node>, keys: Vec<SortKey>, keep: Option<Keep> },
    /// Skips `offset` rows then stops after `limit`.
    Limit { source: Box<Node>, limit: Option<Scalar>, offset: Option<Scalar> },
    /// `COUNT(*)` of the source's rows.
    Count { source: Box<Node>, column: String },
    /// `COUNT(*)` answered from index entries alone (no record is read), unless a bound
    /// value was too long to be held in the index exactly; then `fallback` runs.
    IndexCount { model: String, access: Access, column: String, fallback: Box<Node> },
    /// Groups the source's rows by `keys` and computes `aggs` per group: one row per group
    /// (one row in all when there are no keys, even over no input), whose slots are the
    /// keys then the aggregates, read above by [`crate::ScalarKind::Output`].
    Aggregate { source: Box<Node>, keys: Vec<(String, Scalar)>, aggs: Vec<Agg>, grouping: Grouping },
    /// Evaluates the projected expressions.
    Project { source: Box<Node>, columns: Vec<(String, Scalar)> },
    /// Loads related data into the source's rows, a batch of rows at a time.
    Attach { source: Box<Node>, items: Vec<Attach> },
    /// Keyset pagination (`LIMIT n [AFTER cursor]`): rows strictly after the cursor in
    /// `keys` order (the ORDER BY keys plus the primary key, so the order is total), at most
    /// `limit` of them; the result carries the cursor of its last row. `sorted` says the
    /// source already yields `keys` order (it then streams and stops at `limit`); otherwise
    /// the page keeps the first `limit` rows while reading. `query` identifies the order so
    /// that a cursor from another query is refused.
    Page {
        source: Box<Node>,
        keys: Vec<SortKey>,
        after: Option<Scalar>,
        limit: Scalar,
        sorted: bool,
        query: u64,
    },
}

/// What a data statement does.
#[derive(Debug, Clone)]
pub enum Plan {
    Select {
        root: Node,
    },
    Insert {
        model: String,
        records: Vec<Scalar>,
        returning: Option<Vec<(String, Scalar)>>,
    },
    Update {
        model: String,
        source: Node,
        assignments: Vec<Set>,
        returning: Option<Vec<(String, Scalar)>>,
    },
    Delete {
        model: String,
        source: Node,
        returning: Option<Vec<(String, Scalar)>>,
    },
    /// `UPSERT`: one record found by the primary key (`index` none) or by the unique index
    /// whose fields are `on` (in key order), then updated, or inserted when absent.
    Upsert {
        model: String,
        on: Vec<String>,
        index: Option<String>,
        /// The record given (an object, or a parameter holding one), or an array of them
        /// (each upserted in turn, in one commit).
        value: Scalar,
        /// `DO UPDATE SET …`: what a record found is updated with (else the value's fields).
        update: Option<Vec<Set>>,
        returning: Option<Vec<(String, Scalar)>>,
    },
}

/// How many rows a sort under `LIMIT limit OFFSET offset` keeps: `limit + offset`,
/// saturating (folded into `limit` when both are literals).
#[derive(Debug, Clone)]
pub struct Keep {
    pub limit: Scalar,
    pub offset: Option<Scalar>,
}

/// One `SET` assignment of an `UPDATE`: field `slot` (written `target`) combined with the
/// value by `op`.
#[derive(Debug, Clone)]
pub struct Set {
    pub slot: usize,
    pub target: Path,
    pub op: AssignOp,
    pub value: Scalar,
}

impl fmt::Display for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        kvm_lang::write_assignment(f, &self.target, self.op, &self.value)
    }
}

fn exprs(list: &[Scalar]) -> String {
    list.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
}

fn columns(list: &[(String, Scalar)]) -> String {
    list.iter()
        .map(|(name, e)| {
            let printed = e.to_string();
            if printed == *name {
                printed
            } else {
                format!("{printed} AS {name}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn range_parts(range: &Range) -> String {
    if let Some(p) = &range.prefix {
        return format!("STARTS WITH {p}");
    }
    let lower = range
        .lower
        .as_ref()
        .map(|b| format!("{} {}", if b.inclusive { ">=" } else { ">" }, b.value));
    let upper = range
        .upper
        .as_ref()
        .map(|b| format!("{} {}", if b.inclusive { "<=" } else { "<" }, b.value));
    match (lower, upper) {
        (Some(l), Some(u)) => format!("{l} .. {u}"),
        (Some(l), None) => l,
        (None, Some(u)) => u,
        (None, None) => String::new(),
    }
}

impl Access {
    /// The key range this access reads, written as tuples (`['users', '__idx', …]`).
    pub fn describe(&self, model: &str) -> String {
        let m = format!("'{model}'");
        match self {
            Access::PkGet { keys } => {
                let ks: Vec<String> = keys.iter().map(|k| format!("[{m}, {k}]")).collect();
                format!("Get {model} key {}", ks.join(", "))
            }
            Access::IndexGet { index, values } => {
                format!("IndexGet {model}.{index} key [{m}, '__idx', '{index}', {}]", exprs(values))
            }
            Access::IndexScan { index, eq, range, reverse, index_only } => {
                let mut parts = vec![m.clone(), "'__idx'".to_string(), format!("'{index}'")];
                parts.extend(eq.iter().map(|e| e.to_string()));
                let kind = if range.is_open() {
                    "prefix"
                } else {
                    parts.push(range_parts(range));
                    "range"
                };
                let rev = if *reverse { " reverse" } else { "" };
                let only = if *index_only { " (index only: no record read)" } else { "" };
                format!("IndexScan {model}.{index} {kind} [{}]{rev}{only}", parts.join(", "))
            }
            Access::PkRange { range, reverse } => {
                let rev = if *reverse { " reverse" } else { "" };
                format!("PkRange {model} range [{m}, {}]{rev}", range_parts(range))
            }
            Access::FullScan { reverse, reason } => {
                let rev = if *reverse { " reverse" } else { "" };
                format!("FullScan {model} prefix [{m}]{rev} ({reason})")
            }
            Access::Via { rel, index, .. } => crate::via::describe(model, rel, index.as_deref()),
        }
    }
}

/// The subqueries `e` holds (not those inside them), in order.
fn subqueries_of<'a>(e: &'a Scalar, out: &mut Vec<&'a Scalar>) {
    if let ScalarKind::Subquery { .. } = e.kind {
        out.push(e);
        return;
    }
    e.children().into_iter().for_each(|c| subqueries_of(c, out));
}

impl Plan {
    /// The uncorrelated subqueries of the statement, each once (by its text), a subquery's
    /// own subqueries before it: the order they are run in, before the statement.
    pub fn subqueries(&self) -> Vec<(&str, &Node, bool)> {
        let mut out: Vec<(&str, &Node, bool)> = Vec::new();
        let root = match self {
            Plan::Select { root } => root,
            Plan::Update { source, .. } | Plan::Delete { source, .. } => source,
            Plan::Insert { .. } | Plan::Upsert { .. } => return out,
        };
        root.subqueries(&mut out);
        out
    }
}

impl Node {
    /// Appends the subqueries of this node and those below it (inner ones first).
    fn subqueries<'a>(&'a self, out: &mut Vec<(&'a str, &'a Node, bool)>) {
        let mut here: Vec<&Scalar> = Vec::new();
        match self {
            Node::Scan { access: Access::Via { inner, .. }, .. } => inner.subqueries(out),
            Node::Scan { .. } => {}
            Node::Filter { source, predicate, .. } => {
                source.subqueries(out);
                subqueries_of(predicate, &mut here);
            }
            Node::Sort { source, keys, .. } | Node::Page { source, keys, .. } => {
                source.subqueries(out);
                keys.iter().for_each(|k| subqueries_of(&k.expr, &mut here));
            }
            Node::Limit { source, .. }
            | Node::Count { source, .. }
            | Node::Attach { source, .. } => source.subqueries(out),
            Node::IndexCount { fallback, .. } => fallback.subqueries(out),
            Node::Aggregate { source, keys, aggs, .. } => {
                source.subqueries(out);
                keys.iter().for_each(|(_, k)| subqueries_of(k, &mut here));
                aggs.iter()
                    .filter_map(|a| a.arg.as_ref())
                    .for_each(|a| subqueries_of(a, &mut here));
            }
            Node::Project { source, columns } => {
                source.subqueries(out);
                columns.iter().for_each(|(_, c)| subqueries_of(c, &mut here));
            }
        }
        for e in here {
            if let ScalarKind::Subquery { key, plan, exists } = &e.kind {
                if !out.iter().any(|(k, _, _)| k == key) {
                    plan.subqueries(out);
                    out.push((key, plan, *exists));
                }
            }
        }
    }

    fn write(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let _ = match self {
            Node::Scan { model, access } => {
                let _ = writeln!(out, "{pad}{}", access.describe(model));
                if let Access::Via { inner, .. } = access {
                    inner.write(out, depth + 1);
                }
                Ok(())
            }
            Node::Filter { source, predicate, covered } => {
                let by = if *covered { " (skipped when the key range is exact)" } else { "" };
                let _ = writeln!(out, "{pad}Filter {predicate}{by}");
                let mut subs = Vec::new();
                subqueries_of(predicate, &mut subs);
                for sub in subs {
                    if let ScalarKind::Subquery { key, plan, .. } = &sub.kind {
                        let _ =
                            writeln!(out, "{pad}  Subquery ({key}), run once before the statement");
                        plan.write(out, depth + 2);
                    }
                }
                source.write(out, depth + 1);
                Ok(())
            }
            Node::Sort { source, keys, keep } => {
                let ks: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                let top = match keep {
                    Some(Keep { limit, offset: None }) => format!(" (keeps top {limit})"),
                    Some(Keep { limit, offset: Some(o) }) => format!(" (keeps top {limit} + {o})"),
                    None => String::new(),
                };
                let _ = writeln!(out, "{pad}Sort {}{top}", ks.join(", "));
                source.write(out, depth + 1);
                Ok(())
            }
            Node::Limit { source, limit, offset } => {
                let mut s = String::new();
                if let Some(l) = limit {
                    let _ = write!(s, " {l}");
                }
                if let Some(o) = offset {
                    let _ = write!(s, " OFFSET {o}");
                }
                let _ = writeln!(out, "{pad}Limit{s}");
                source.write(out, depth + 1);
                Ok(())
            }
            Node::Page { source, keys, after, limit, sorted, .. } => {
                let all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
                let after = after.as_ref().map(|a| format!(" after {a}")).unwrap_or_default();
                if *sorted {
                    let _ =
                        writeln!(out, "{pad}Page {limit}{after} (in order of {})", all.join(", "));
                    source.write(out, depth + 1);
                } else {
                    let _ = writeln!(out, "{pad}Page {limit}{after}");
                    let sort = match all.split_last() {
                        Some((tie, order)) if !order.is_empty() => {
                            format!("Sort {} (keeps top {limit}) ties by {tie}", order.join(", "))
                        }
                        _ => format!("Sort {} (keeps top {limit})", all.join(", ")),
                    };
                    let _ = writeln!(out, "{pad}  {sort}");
                    source.write(out, depth + 2);
                }
                Ok(())
            }
            Node::Count { source, .. } => {
                let _ = writeln!(out, "{pad}Count");
                source.write(out, depth + 1);
                Ok(())
            }
            Node::IndexCount { model, access, .. } => {
                writeln!(out, "{pad}Count from index entries\n{pad}  {}", access.describe(model))
            }
            Node::Aggregate { source, keys, aggs, grouping } => {
                let what: Vec<&str> = aggs.iter().map(|a| a.shown.as_str()).collect();
                let what =
                    if what.is_empty() { "distinct rows".to_string() } else { what.join(", ") };
                let by: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                let how = match grouping {
                    _ if keys.is_empty() => String::new(),
                    Grouping::Streamed => {
                        format!(" by {} (streamed: input in group order)", by.join(", "))
                    }
                    Grouping::Hashed => format!(" by {} (groups held in memory)", by.join(", ")),
                };
                let _ = writeln!(out, "{pad}Aggregate {what}{how}");
                source.write(out, depth + 1);
                Ok(())
            }
            Node::Project { source, columns: cols } => {
                let _ = writeln!(out, "{pad}Project {}", columns(cols));
                source.write(out, depth + 1);
                Ok(())
            }
            Node::Attach { source, items } => {
                for a in items {
                    a.write(out, depth);
                }
                source.write(out, depth + 1);
                Ok(())
            }
        };
    }
}

impl Attach {
    fn write(&self, out: &mut String, depth: usize) {
        let pad = "  ".repeat(depth);
        let what = match &self.what {
            AttachKind::Records { .. } => format!("Include {}", self.column),
            AttachKind::Exists { .. } | AttachKind::Count => format!("Compute {}", self.column),
        };
        let read = match (&self.what, &self.rel.path) {
            (
                AttachKind::Records { index: Some((index, reverse)), .. },
                crate::relation::RelPath::Reverse { .. },
            ) => format!(
                "IndexScan {}.{index} prefix [key of {}]{}",
                self.rel.target,
                self.rel.model,
                if *reverse { " reverse" } else { "" }
            ),
            _ => self.rel.describe(),
        };
        let _ = writeln!(out, "{pad}{what}: {read} (one read per batch of rows)");
        match &self.what {
            AttachKind::Records { filter, order_by, limit, offset, ordered, nested, .. } => {
                if let Some(f) = filter {
                    let _ = writeln!(out, "{pad}  Filter {f}");
                }
                if !order_by.is_empty() {
                    let ks: Vec<String> = order_by.iter().map(|k| k.to_string()).collect();
                    let how = if *ordered { "in index order" } else { "sorted" };
                    let _ = writeln!(out, "{pad}  Order {} ({how})", ks.join(", "));
                }
                if limit.is_some() || offset.is_some() {
                    let mut s = String::new();
                    if let Some(l) = limit {
                        let _ = write!(s, " {l}");
                    }
                    if let Some(o) = offset {
                        let _ = write!(s, " OFFSET {o}");
                    }
                    let early =
                        if *ordered && filter.is_none() { ", stops reading there" } else { "" };
                    let _ = writeln!(out, "{pad}  Limit{s} per row{early}");
                }
                for n in nested {
                    n.write(out, depth + 1);
                }
            }
            AttachKind::Exists { filter: Some(f) } => {
                let _ = writeln!(out, "{pad}  Filter {f}");
            }
            AttachKind::Exists { filter: None } => {
                let _ = writeln!(out, "{pad}  (index entries only)");
            }
            AttachKind::Count => {
                let _ = writeln!(out, "{pad}  (index entries only)");
            }
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        self.write(&mut s, 0);
        f.write_str(s.trim_end())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        match self {
            Plan::Select { root } => root.write(&mut s, 0),
            Plan::Insert { model, records, returning } => {
                if let Some(r) = returning {
                    let _ = writeln!(s, "Returning {}", columns(r));
                }
                let _ = writeln!(
                    s,
                    "Insert {model} ({} record{})",
                    records.len(),
                    if records.len() == 1 { "" } else { "s" }
                );
            }
            Plan::Update { model, source, assignments, returning } => {
                if let Some(r) = returning {
                    let _ = writeln!(s, "Returning {}", columns(r));
                }
                let set: Vec<String> = assignments.iter().map(|a| a.to_string()).collect();
                let _ = writeln!(s, "Update {model} SET {}", set.join(", "));
                source.write(&mut s, 1);
            }
            Plan::Delete { model, source, returning } => {
                if let Some(r) = returning {
                    let _ = writeln!(s, "Returning {}", columns(r));
                }
                let _ = writeln!(s, "Delete {model}");
                source.write(&mut s, 1);
            }
            Plan::Upsert { model, on, index, returning, update, .. } => {
                if let Some(r) = returning {
                    let _ = writeln!(s, "Returning {}", columns(r));
                }
                let with = match update {
                    Some(set) => {
                        let set: Vec<String> = set.iter().map(|a| a.to_string()).collect();
                        format!(" (SET {})", set.join(", "))
                    }
                    None => String::new(),
                };
                let _ = writeln!(
                    s,
                    "Upsert {model} ON ({}): update the record found{with}, or insert",
                    on.join(", ")
                );
                let values: Vec<String> = on.iter().map(|f| format!("value.{f}")).collect();
                let _ = match index {
                    None => writeln!(s, "  Get {model} key ['{model}', {}]", values.join(", ")),
                    Some(ix) => writeln!(
                        s,
                        "  IndexGet {model}.{ix} key ['{model}', '__idx', '{ix}', {}]",
                        values.join(", ")
                    ),
                };
            }
        }
        f.write_str(s.trim_end())
    }
}

impl Node {
    /// Every model whose records this plan may read (the scanned model, semi-join and
    /// related models, join models), each once: what a `WATCH` of the plan depends on.
    pub fn models(&self) -> Vec<String> {
        fn add(out: &mut Vec<String>, m: &str) {
            if !out.iter().any(|x| x == m) {
                out.push(m.to_string());
            }
        }
        fn attach(a: &Attach, out: &mut Vec<String>) {
            add(out, &a.rel.target);
            if let crate::relation::RelPath::Through { join, .. } = &a.rel.path {
                add(out, join);
            }
            if let AttachKind::Records { nested, .. } = &a.what {
                nested.iter().for_each(|n| attach(n, out));
            }
        }
        fn walk(n: &Node, out: &mut Vec<String>) {
            match n {
                Node::Scan { model, access } => {
                    add(out, model);
                    if let Access::Via { inner, .. } = access {
                        walk(inner, out);
                    }
                }
                Node::IndexCount { model, fallback, .. } => {
                    add(out, model);
                    walk(fallback, out);
                }
                Node::Attach { source, items } => {
                    walk(source, out);
                    items.iter().for_each(|a| attach(a, out));
                }
                Node::Filter { source, .. }
                | Node::Sort { source, .. }
                | Node::Limit { source, .. }
                | Node::Count { source, .. }
                | Node::Aggregate { source, .. }
                | Node::Project { source, .. }
                | Node::Page { source, .. } => walk(source, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }
}
