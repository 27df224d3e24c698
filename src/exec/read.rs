//! Read operators: each plan node becomes an iterator of rows pulled by its parent. Only a
//! sort materializes its input, and a sort under `LIMIT n` keeps at most n rows.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;

use kvm_planner::SortKey;
use kvm_planner::{Access, Model, Node, Range};
use kvm_planner::{Scalar, ScalarKind};
use kvm_storage::tuple::KeyPart;
use kvm_storage::{KeyRange, Value};

use super::Cx;
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::keyspace::{key_part, part_bytes, part_range, Key, KeyPrefix};
use crate::model_txn::RowIter;
use crate::record;
use crate::values::total_cmp;

/// One end of a key range: the part, inclusive, exact (not truncated).
type End = (KeyPart, bool, bool);

/// A bound value as a key part of field `field`'s type: `None` when it cannot match.
fn part(cx: &Cx, model: &Model, field: &str, e: &Scalar) -> Result<Option<(KeyPart, bool)>> {
    let env = cx.env(None);
    let v = env.eval_ref(e)?;
    let Some(f) = model.field(field) else { return Ok(None) };
    if kvm_planner::compared_as_is(f, &v) {
        return Ok(key_part(&v));
    }
    match record::coerce(&model.name, f, v.into_owned()) {
        Ok(v) => Ok(key_part(&v)),
        Err(_) => Ok(None),
    }
}

fn range_parts(
    cx: &Cx,
    model: &Model,
    field: &str,
    range: &Range,
) -> Result<(Option<End>, Option<End>)> {
    let one = |b: &Option<kvm_planner::Bound>| -> Result<Option<(KeyPart, bool, bool)>> {
        Ok(match b {
            None => None,
            Some(b) => part(cx, model, field, &b.value)?.map(|(p, exact)| (p, b.inclusive, exact)),
        })
    };
    Ok((one(&range.lower)?, one(&range.upper)?))
}

/// The key range of a `STARTS WITH` range after `prefix`, and whether it is exact; `None`
/// when the range is not one (or its value is not a string: the filter then says why).
fn starts_with(cx: &Cx, prefix: Vec<u8>, range: &Range) -> Result<Option<(KeyRange, bool)>> {
    let Some(p) = &range.prefix else { return Ok(None) };
    let env = cx.env(None);
    let v = env.eval_ref(p)?;
    Ok(match v.as_ref() {
        Value::String(s) => Some(crate::keyspace::starts_with_range(prefix, s)),
        _ => None,
    })
}

/// The key range an index access reads, or `None` when it can match nothing; the flag says
/// whether every value was held exactly (no long-value truncation).
pub fn index_range(cx: &Cx, model: &Model, access: &Access) -> Result<Option<(KeyRange, bool)>> {
    let (index, eq, range) = match access {
        Access::IndexGet { index, values } => (index, values, None),
        Access::IndexScan { index, eq, range, .. } => (index, eq, Some(range)),
        _ => return Ok(None),
    };
    let Some(ix) = model.index(index) else {
        return Err(Error::Internal(format!("plan names missing index {index}")));
    };
    let mut values = Vec::new();
    let mut exact = true;
    for (f, e) in ix.fields.iter().zip(eq) {
        match part(cx, model, f, e)? {
            Some((p, ex)) => {
                exact &= ex;
                values.push(p);
            }
            None => return Ok(None),
        }
    }
    let prefix = KeyPrefix::Index { model: &model.name, index, values }.encode();
    if let (Some(r), Some(_)) = (range, ix.fields.get(eq.len())) {
        if let Some(found) = starts_with(cx, prefix.clone(), r)? {
            return Ok(Some((found.0, found.1 && exact)));
        }
    }
    let (lower, upper) = match (range, ix.fields.get(eq.len())) {
        (Some(r), Some(f)) => range_parts(cx, model, f, r)?,
        _ => (None, None),
    };
    exact &= lower.as_ref().is_none_or(|l| l.2) && upper.as_ref().is_none_or(|u| u.2);
    if !exact {
        // A truncated value may share its key with others: the filter decides.
        if let Access::IndexGet { .. } = access {
            return Ok(Some((KeyRange::prefix(&prefix), false)));
        }
    }
    if let Access::IndexGet { .. } = access {
        // The unique entry key itself (a prefix range of one key).
        return Ok(Some((KeyRange::prefix(&prefix), exact)));
    }
    Ok(Some((part_range(prefix, lower, upper), exact)))
}

/// Where a page resumes: rows of the access path's range strictly past this key (in the
/// scan's direction). Only an optimisation — the page still filters by the cursor.
type Seek = Option<Vec<u8>>;

/// `range` narrowed to the keys strictly past `seek` in the scan direction.
fn past(mut range: KeyRange, seek: &Seek, reverse: bool) -> KeyRange {
    use std::ops::Bound::*;
    let Some(k) = seek else { return range };
    if reverse {
        let tighter = match &range.end {
            Included(e) | Excluded(e) => k <= e,
            Unbounded => true,
        };
        if tighter {
            range.end = Excluded(k.clone());
        }
    } else {
        let tighter = match &range.start {
            Included(b) | Excluded(b) => k >= b,
            Unbounded => true,
        };
        if tighter {
            range.start = Excluded(k.clone());
        }
    }
    range
}

/// The rows of a scan leaf, with virtual fields computed.
fn scan<'a>(
    cx: &'a Cx<'a>,
    model: &'a Model,
    access: &'a Access,
    seek: &Seek,
) -> Result<RowIter<'a>> {
    let m = cx.mtx;
    let raw: RowIter<'a> = match access {
        Access::PkGet { keys } => {
            let mut rows = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for k in keys {
                cx.stop.check()?;
                if let Some((p, true)) = part(cx, model, &model.pk().name, k)? {
                    if keys.len() > 1 && !seen.insert(part_bytes(&p)) {
                        continue;
                    }
                    if let Some(row) = m.get(model, &p)? {
                        rows.push(Ok(row));
                    }
                }
            }
            Box::new(rows.into_iter())
        }
        Access::IndexGet { index, .. } | Access::IndexScan { index, .. } => {
            let reverse = matches!(access, Access::IndexScan { reverse: true, .. });
            let Some(ix) = model.index(index) else {
                return Err(Error::Internal(format!("plan names missing index {index}")));
            };
            match index_range(cx, model, access)? {
                None => Box::new(std::iter::empty()),
                Some((range, _))
                    if matches!(access, Access::IndexScan { index_only: true, .. }) =>
                {
                    // Rows of the index's fields: no virtual field to compute.
                    let rows = m.index_rows(model, ix, &past(range, seek, reverse), reverse)?;
                    return Ok(Box::new(rows.map(move |r| {
                        cx.stop.check()?;
                        r
                    })));
                }
                Some((range, _)) => {
                    m.index_scan(model, ix, &past(range, seek, reverse), reverse)?
                }
            }
        }
        Access::PkRange { reverse, .. } | Access::FullScan { reverse, .. } => {
            let range = record_range(cx, model, access)?.unwrap_or_else(KeyRange::all);
            m.scan(model, past(range, seek, *reverse), *reverse)?
        }
        Access::Via { rel, index, inner } => {
            super::via::rows(cx, model, rel, index.as_deref(), inner)?
        }
    };
    Ok(Box::new(raw.map(move |r| {
        cx.stop.check()?;
        r.and_then(|row| record::materialize(model, row, &cx.env(None)))
    })))
}

/// A sort over a narrow scan: each record decoded only as far as the filter and the sort
/// keys read; under `LIMIT` most are refused by one comparison, and the few kept are held
/// as their stored bytes, decoded whole once the sort is done.
fn sorted_records<'a>(
    cx: &'a Cx<'a>,
    scan: &Narrow<'a>,
    keys: &'a [SortKey],
    keep: Option<usize>,
) -> Result<RowIter<'a>> {
    let mut sorter: Sorter<Cow<'a, [u8]>> = Sorter::new(keys, keep, cx.sort_budget);
    scan.for_each(cx, |row, bytes| {
        let env = cx.env(Some(row));
        // Borrowed from the row: only a key that is kept is copied (the record is not: it
        // stays in the snapshot).
        let key = keys.iter().map(|o| env.eval_ref(&o.expr)).collect::<Result<Vec<_>>>()?;
        if sorter.wants(&key) {
            sorter.push(key.into_iter().map(Cow::into_owned).collect(), bytes)?;
        }
        Ok(())
    })?;
    Ok(Box::new(Kept { cx, model: scan.model, records: sorter.finish().into_iter() }))
}

/// The records a sort kept, decoded as they are taken: the rows an `OFFSET` skips
/// (`nth`) are never decoded.
struct Kept<'a> {
    cx: &'a Cx<'a>,
    model: &'a Model,
    records: std::vec::IntoIter<(Vec<Value>, Cow<'a, [u8]>)>,
}

impl Iterator for Kept<'_> {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Result<Row>> {
        self.nth(0)
    }

    fn nth(&mut self, n: usize) -> Option<Result<Row>> {
        let (_, bytes) = self.records.nth(n)?;
        let row = Row::decode(&self.model.slots, &bytes);
        Some(row.and_then(|row| record::materialize(self.model, row, &self.cx.env(None))))
    }
}

/// How many rows a sort under `LIMIT … OFFSET …` keeps: their sum, saturating.
fn kept(cx: &Cx, keep: &kvm_planner::Keep) -> Result<usize> {
    let limit = non_negative(cx, &keep.limit, "LIMIT")?;
    let offset = keep.offset.as_ref().map(|o| non_negative(cx, o, "OFFSET")).transpose()?;
    Ok(limit.saturating_add(offset.unwrap_or(0)))
}

/// A `LIMIT` or `OFFSET` (of the query or of an `INCLUDE`): a non-negative INT or a U64,
/// literal or parameter; counts past `usize::MAX` saturate.
pub(super) fn non_negative(cx: &Cx, e: &Scalar, what: &str) -> Result<usize> {
    let v = cx.env(None).eval(e)?;
    crate::eval::count_of(&v).map(|n| usize::try_from(n).unwrap_or(usize::MAX)).ok_or_else(|| {
        Error::Param(format!(
            "{what} must be a non-negative integer, got {}",
            crate::values::kql(&v)
        ))
    })
}

/// Whether the scan `node` reads exactly the records its bounds describe: every bound value
/// is of its field's type as given (coercion changes nothing) and held whole in its key
/// (no long-value truncation). A filter the scan covers is then redundant.
pub(super) fn key_range_decides(cx: &Cx, node: &Node) -> Result<bool> {
    let Node::Scan { model, access } = node else { return Ok(false) };
    let model = cx.model(model)?;
    let exact = |field: &str, e: &Scalar| -> Result<bool> {
        let Some(f) = model.field(field) else { return Ok(false) };
        let env = cx.env(None);
        let v = env.eval_ref(e)?;
        if kvm_planner::compared_as_is(f, &v) {
            return Ok(matches!(key_part(&v), Some((_, true))));
        }
        let v = v.into_owned();
        Ok(match record::coerce(&model.name, f, v.clone()) {
            Ok(c) => c == v && matches!(key_part(&c), Some((_, true))),
            Err(_) => false,
        })
    };
    let range = |field: &str, r: &Range| -> Result<bool> {
        if let Some(p) = &r.prefix {
            let env = cx.env(None);
            let v = env.eval_ref(p)?;
            let long = crate::keyspace::LONG_VALUE;
            return Ok(matches!(v.as_ref(), Value::String(s) if s.len() <= long));
        }
        for b in [&r.lower, &r.upper].into_iter().flatten() {
            if !exact(field, &b.value)? {
                return Ok(false);
            }
        }
        Ok(true)
    };
    match access {
        Access::PkGet { keys } => {
            for k in keys {
                if !exact(&model.pk().name, k)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Access::IndexGet { index, values: eq } | Access::IndexScan { index, eq, .. } => {
            let Some(ix) = model.index(index) else { return Ok(false) };
            for (f, e) in ix.fields.iter().zip(eq) {
                if !exact(f, e)? {
                    return Ok(false);
                }
            }
            match (access, ix.fields.get(eq.len())) {
                (Access::IndexScan { range: r, .. }, Some(f)) => range(f, r),
                (Access::IndexScan { range: r, .. }, None) => Ok(r.is_open()),
                _ => Ok(true),
            }
        }
        Access::PkRange { range: r, .. } => range(&model.pk().name, r),
        Access::FullScan { .. } | Access::Via { .. } => Ok(false),
    }
}

/// The one record a write's source reads when it is a primary-key get of one key whose
/// filter (if any) that key decides: what a record patch can target without reading it.
pub(super) fn single_pk(cx: &Cx, node: &Node) -> Result<Option<KeyPart>> {
    let scan = match node {
        Node::Filter { source, covered: true, .. } if key_range_decides(cx, source)? => source,
        Node::Filter { .. } => return Ok(None),
        other => other,
    };
    let Node::Scan { model, access: Access::PkGet { keys } } = scan else { return Ok(None) };
    let [key] = keys.as_slice() else { return Ok(None) };
    let model = cx.model(model)?;
    Ok(part(cx, model, &model.pk().name, key)?.and_then(|(p, exact)| exact.then_some(p)))
}

/// Compares two rows' `ORDER BY` key values (nulls and types in KVM's total order).
pub(super) fn sort_cmp<A: Borrow<Value>, B: Borrow<Value>>(
    keys: &[SortKey],
    a: &[A],
    b: &[B],
) -> Ordering {
    for (k, (x, y)) in keys.iter().zip(a.iter().zip(b)) {
        let o = total_cmp(x.borrow(), y.borrow());
        let o = if k.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// An `ORDER BY` in memory: all rows sorted at the end (n·log n), or under `LIMIT k` the
/// k first kept as they come: candidates gather in a buffer of up to 2k, which is cut back
/// to its k first (a selection, linear) each time it fills; the k-th key is then the bar a
/// later row must beat, so most rows of a large input are refused with one comparison
/// (n + k·log k overall, at most 2k rows held). Stable: equal keys keep their input order.
/// Past `budget` bytes of held rows it refuses (`kvm.sort_too_large`) rather than take
/// memory without bound.
struct Sorter<'k, T = Row> {
    keys: &'k [SortKey],
    keep: Option<usize>,
    budget: usize,
    held: usize,
    seq: u64,
    rows: Vec<Sorted<'k, T>>,
    /// Under `LIMIT k`, once cut back: the key of the k-th row kept.
    bar: Option<Vec<Value>>,
}

/// What a sort holds per row: a decoded row, or a record's stored bytes (decoded once it
/// is known to be among the rows returned).
trait Held {
    /// About how many bytes it takes in memory (what the sort budget counts).
    fn size(&self) -> usize;
}

impl Held for Row {
    fn size(&self) -> usize {
        row_size(self)
    }
}

/// (Counted whole even when borrowed from the snapshot: what the sort holds may be copied
/// when the statement's own writes are merged in.)
impl Held for Cow<'_, [u8]> {
    fn size(&self) -> usize {
        24 + self.len()
    }
}

/// A row with its sort key and arrival number (the tie-break that makes the sort stable).
struct Sorted<'k, T> {
    keys: &'k [SortKey],
    key: Vec<Value>,
    seq: u64,
    row: T,
    size: usize,
}

impl<T> Ord for Sorted<'_, T> {
    fn cmp(&self, other: &Self) -> Ordering {
        sort_cmp(self.keys, &self.key, &other.key).then(self.seq.cmp(&other.seq))
    }
}
impl<T> PartialOrd for Sorted<'_, T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> PartialEq for Sorted<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Sorted<'_, T> {}

impl<'k, T: Held> Sorter<'k, T> {
    /// Whether a row with sort key `key`, arriving now, may be among those kept: under
    /// `LIMIT k`, once the buffer has been cut back, only a key that sorts strictly before
    /// the bar (a later arrival with an equal key sorts after it).
    fn wants(&self, key: &[impl Borrow<Value>]) -> bool {
        match (&self.keep, &self.bar) {
            (Some(0), _) => false,
            (_, Some(bar)) => sort_cmp(self.keys, key, bar) == Ordering::Less,
            _ => true,
        }
    }

    fn new(keys: &'k [SortKey], keep: Option<usize>, budget: usize) -> Self {
        Sorter { keys, keep, budget, held: 0, seq: 0, rows: Vec::new(), bar: None }
    }

    /// Holds a row [`Sorter::wants`] said yes to (asked first, so that a refused row's key
    /// and record need not be built).
    fn push(&mut self, key: Vec<Value>, row: T) -> Result<()> {
        let size = row.size() + key.iter().map(value_size).sum::<usize>();
        self.rows.push(Sorted { keys: self.keys, key, seq: self.seq, row, size });
        self.seq += 1;
        self.held += size;
        if let Some(k) = self.keep {
            if self.rows.len() >= k.saturating_mul(2).max(64) {
                self.cut(k);
            }
        }
        if self.held > self.budget {
            return Err(Error::Invalid {
                code: "kvm.sort_too_large",
                message: format!(
                    "ORDER BY would hold more than {} MiB of rows in memory ({} rows so far)",
                    self.budget >> 20,
                    self.rows.len()
                ),
                span: None,
                help: Some(
                    "add an index on the ORDER BY fields (the rows then come in order), \
                     a LIMIT, or a narrower WHERE"
                        .into(),
                ),
            });
        }
        Ok(())
    }

    /// Keeps the `k` first rows held (a selection, not a sort) and makes the last of them
    /// the bar.
    fn cut(&mut self, k: usize) {
        if self.rows.len() <= k {
            return;
        }
        if k == 0 {
            self.rows.clear();
            self.held = 0;
            return;
        }
        self.rows.select_nth_unstable(k - 1);
        for gone in self.rows.drain(k..) {
            self.held -= gone.size;
        }
        // After the selection, the (k-1)-th is the greatest of the k kept.
        self.bar = Some(self.rows[k - 1].key.clone());
    }

    fn finish(mut self) -> Vec<(Vec<Value>, T)> {
        if let Some(k) = self.keep {
            self.cut(k);
        }
        self.rows.sort_unstable();
        self.rows.into_iter().map(|s| (s.key, s.row)).collect()
    }
}

/// About how many bytes a row takes in memory (what the sort budget counts).
fn row_size(row: &Row) -> usize {
    row.iter().map(|(k, v)| 48 + k.len() + value_size(v)).sum()
}

pub(crate) fn value_size(v: &Value) -> usize {
    32 + match v {
        Value::String(s) => s.len(),
        Value::Bytes(b) => b.len(),
        Value::Array(items) => items.iter().map(value_size).sum(),
        Value::Object(fields) => fields.iter().map(|(k, v)| 48 + k.len() + value_size(v)).sum(),
        _ => 0,
    }
}

/// The rows a node yields.
pub fn rows<'a>(cx: &'a Cx<'a>, node: &'a Node) -> Result<RowIter<'a>> {
    rows_past(cx, node, &None)
}

/// The rows a node yields, its scan leaf starting past `seek`.
fn rows_past<'a>(cx: &'a Cx<'a>, node: &'a Node, seek: &Seek) -> Result<RowIter<'a>> {
    match node {
        Node::Scan { model, access } => {
            let model = cx.model(model)?;
            scan(cx, model, access, seek)
        }
        Node::Filter { source, predicate, covered } => {
            let input = rows_past(cx, source, seek)?;
            if *covered && key_range_decides(cx, source)? {
                return Ok(input);
            }
            Ok(Box::new(input.filter_map(move |r| match r {
                Err(e) => Some(Err(e)),
                Ok(row) => match cx.env(Some(&row)).test(predicate) {
                    Ok(true) => Some(Ok(row)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                },
            })))
        }
        Node::Sort { source, keys, keep } => {
            let keep = keep.as_ref().map(|k| kept(cx, k)).transpose()?;
            let exprs: Vec<&Scalar> = keys.iter().map(|k| &k.expr).collect();
            if let Some(scan) = narrow(cx, source, &exprs)? {
                return sorted_records(cx, &scan, keys, keep);
            }
            let mut sorter = Sorter::new(keys, keep, cx.sort_budget);
            for r in rows(cx, source)? {
                let row = r?;
                let env = cx.env(Some(&row));
                let k: Vec<Value> =
                    keys.iter().map(|o| env.eval(&o.expr)).collect::<Result<_>>()?;
                if sorter.wants(&k) {
                    sorter.push(k, row)?;
                }
            }
            Ok(Box::new(sorter.finish().into_iter().map(|(_, r)| Ok(r))))
        }
        Node::Limit { source, limit, offset } => {
            let offset =
                offset.as_ref().map(|o| non_negative(cx, o, "OFFSET")).transpose()?.unwrap_or(0);
            let limit = limit
                .as_ref()
                .map(|l| non_negative(cx, l, "LIMIT"))
                .transpose()?
                .unwrap_or(usize::MAX);
            Ok(Box::new(rows(cx, source)?.skip(offset).take(limit)))
        }
        Node::Page { .. } => {
            let (rows, _) = page(cx, node)?;
            Ok(Box::new(rows.into_iter().map(Ok)))
        }
        Node::Attach { source, items } => {
            let model = cx.model(leaf_model(source)?)?;
            let input = rows_past(cx, source, seek)?;
            Ok(batched(input, super::attach::ATTACH_BATCH, move |mut chunk| {
                super::attach::attach(cx, items, model, &mut chunk)?;
                Ok(chunk)
            }))
        }
        Node::Aggregate { .. } => super::aggregate::aggregate(cx, node),
        Node::Count { .. } | Node::IndexCount { .. } | Node::Project { .. } => {
            Err(Error::Internal("a projection below a scan".into()))
        }
    }
}

/// The record keys a plan reads when it reads records by primary key only (no relation,
/// no other access path); `None` otherwise.
pub fn point_keys(cx: &Cx, node: &Node) -> Result<Option<Vec<Vec<u8>>>> {
    match node {
        Node::Project { source, .. }
        | Node::Filter { source, .. }
        | Node::Sort { source, .. }
        | Node::Limit { source, .. }
        | Node::Page { source, .. } => point_keys(cx, source),
        Node::Scan { model, access: Access::PkGet { keys } } => {
            let model = cx.model(model)?;
            let mut out = Vec::new();
            for k in keys {
                if let Some((p, true)) = part(cx, model, &model.pk().name, k)? {
                    out.push(Key::Record { model: &model.name, pk: p }.encode());
                }
            }
            Ok(Some(out))
        }
        _ => Ok(None),
    }
}

/// The record keys a prepared plan will read first when it reads records by primary key
/// (a point `SELECT`, `UPDATE` or `DELETE` whose keys are constants or parameters): a hint
/// for the request that opens the statement's snapshot (`Engine::snapshot_with`), which a
/// remote backend then answers in the same round trip. Best effort: anything it cannot
/// work out without reading is left out, and a catalog changed meanwhile only makes the
/// hint useless (the plan is checked against the catalog read in the same request).
pub fn first_record_keys(
    catalog: &kvm_planner::Catalog,
    plan: &kvm_planner::Plan,
    params: &crate::params::Params,
) -> Vec<Vec<u8>> {
    use kvm_planner::Plan;
    let node = match plan {
        Plan::Select { root } => root,
        Plan::Update { source, .. } | Plan::Delete { source, .. } => source,
        _ => return Vec::new(),
    };
    let mut node = node;
    while let Node::Project { source, .. }
    | Node::Filter { source, .. }
    | Node::Sort { source, .. }
    | Node::Limit { source, .. }
    | Node::Page { source, .. } = node
    {
        node = source;
    }
    let Node::Scan { model, access: Access::PkGet { keys } } = node else { return Vec::new() };
    let Some(model) = catalog.models.get(model.as_str()) else { return Vec::new() };
    let Some(pk) = model.field(&model.pk().name) else { return Vec::new() };
    keys.iter()
        .take(64)
        .filter_map(|k| {
            let v = match &k.kind {
                ScalarKind::Const { value, .. } => value.clone(),
                ScalarKind::Param { param, .. } => params.get(param).ok()?.clone(),
                _ => return None,
            };
            let v = if kvm_planner::compared_as_is(pk, &v) {
                v
            } else {
                record::coerce(&model.name, pk, v).ok()?
            };
            let (p, true) = key_part(&v)? else { return None };
            Some(Key::Record { model: &model.name, pk: p }.encode())
        })
        .collect()
}

/// The rows of `input` passed through `f` a batch of `n` at a time, streamed: a batch is
/// read only once the rows before it are consumed (so `LIMIT` stops the reading).
pub(super) fn batched<'a>(
    mut input: RowIter<'a>,
    n: usize,
    mut f: impl FnMut(Vec<Row>) -> Result<Vec<Row>> + 'a,
) -> RowIter<'a> {
    let mut ready: std::vec::IntoIter<Row> = Vec::new().into_iter();
    Box::new(std::iter::from_fn(move || loop {
        if let Some(r) = ready.next() {
            return Some(Ok(r));
        }
        let mut chunk = Vec::new();
        for r in input.by_ref() {
            match r {
                Ok(row) => chunk.push(row),
                Err(e) => return Some(Err(e)),
            }
            if chunk.len() == n {
                break;
            }
        }
        if chunk.is_empty() {
            return None;
        }
        match f(chunk) {
            Ok(rows) => ready = rows.into_iter(),
            Err(e) => return Some(Err(e)),
        }
    }))
}

/// The column names a query plan's root yields.
pub fn columns(node: &Node) -> Vec<String> {
    match node {
        Node::Project { columns, .. } => columns.iter().map(|(n, _)| n.clone()).collect(),
        Node::Count { column, .. } | Node::IndexCount { column, .. } => vec![column.clone()],
        _ => Vec::new(),
    }
}

/// Runs a query plan's root into a table.
pub fn table(cx: &Cx, node: &Node) -> Result<crate::Rows> {
    let mut rows = Vec::new();
    let next_cursor = emit(cx, node, &mut |row| {
        rows.push(row);
        Ok(true)
    })?;
    Ok(crate::Rows { columns: columns(node), rows, next_cursor })
}

/// What [`emit`] hands each output row to; it returns `false` to stop the query there.
pub type Sink<'s> = dyn FnMut(Vec<Value>) -> Result<bool> + 's;

/// Runs a query plan's root, handing each output row (aligned with [`columns`]) to `sink`
/// as it is produced: nothing is held but what a sort must hold. Returns the cursor after
/// the last row of a full page.
pub fn emit(cx: &Cx, node: &Node, sink: &mut Sink) -> Result<Option<String>> {
    match node {
        Node::Project { source, columns } => {
            // `SELECT *`: the row's slots are the output row, moved.
            let star = leaf_model(source)
                .ok()
                .and_then(|m| cx.model(m).ok())
                .filter(|m| every_field(m, columns))
                .map(|m| m.slots.clone());
            let outs = if star.is_some() { Vec::new() } else { outputs(columns) };
            let project = |mut row: Row| -> Result<Vec<Value>> {
                if star.as_ref().is_some_and(|s| row.has_slots(s)) {
                    return Ok(row.into_fields());
                }
                let mut out = Vec::with_capacity(columns.len());
                {
                    let env = cx.env(Some(&row));
                    for (o, (_, e)) in outs.iter().zip(columns) {
                        out.push(match o {
                            Output::Eval => env.eval(e)?,
                            Output::Slot(_) | Output::Attached(_) => Value::Null,
                        });
                    }
                }
                for (o, v) in outs.iter().zip(out.iter_mut()) {
                    match o {
                        Output::Slot(i) => *v = row.take_slot(*i),
                        Output::Attached(name) => *v = row.remove(name).unwrap_or(Value::Null),
                        Output::Eval => {}
                    }
                }
                Ok(out)
            };
            let paged = match source.as_ref() {
                Node::Page { .. } => Some(page(cx, source)?),
                Node::Attach { source: inner, items } if matches!(**inner, Node::Page { .. }) => {
                    let (mut rows, cursor) = page(cx, inner)?;
                    let model = cx.model(leaf_model(inner)?)?;
                    super::attach::attach(cx, items, model, &mut rows)?;
                    Some((rows, cursor))
                }
                _ => None,
            };
            if let Some((rows, cursor)) = paged {
                for row in rows {
                    if !sink(project(row)?)? {
                        break;
                    }
                }
                return Ok(cursor);
            }
            for r in rows(cx, source)? {
                if !sink(project(r?)?)? {
                    break;
                }
            }
            Ok(None)
        }
        Node::Count { source, .. } => {
            let mut n: i64 = 0;
            match narrow(cx, source, &[])? {
                Some(scan) => scan.for_each(cx, |_, _| {
                    n += 1;
                    Ok(())
                })?,
                None => {
                    for r in rows(cx, source)? {
                        r?;
                        n += 1;
                    }
                }
            }
            sink(vec![Value::Int(n)])?;
            Ok(None)
        }
        Node::IndexCount { model, access, fallback, .. } => {
            let m = cx.model(model)?;
            match index_range(cx, m, access)? {
                Some((range, true)) => {
                    let n = cx.mtx.count_entries(&range)?;
                    sink(vec![Value::Int(i64::try_from(n).unwrap_or(i64::MAX))])?;
                    Ok(None)
                }
                Some((_, false)) => emit(cx, fallback, sink),
                None => {
                    sink(vec![Value::Int(0)])?;
                    Ok(None)
                }
            }
        }
        other => {
            for r in rows(cx, other)? {
                r?;
                if !sink(vec![])? {
                    break;
                }
            }
            Ok(None)
        }
    }
}

/// A scan of the records (no index), under an optional filter, where the filter and the
/// expressions a step above evaluates read stored fields only: each record is decoded only
/// as far as they read (the other fields stepped over), into one reused row.
pub(super) struct Narrow<'a> {
    model: &'a Model,
    range: KeyRange,
    reverse: bool,
    predicate: Option<&'a Scalar>,
    wanted: Vec<bool>,
}

/// The narrow scan of `node` (a `Scan`, or a `Filter` over one, reading the records by
/// primary key) when it and `more` read stored fields only; `None` for other shapes.
pub(super) fn narrow<'a>(
    cx: &Cx<'a>,
    node: &'a Node,
    more: &[&Scalar],
) -> Result<Option<Narrow<'a>>> {
    let (scan, predicate) = match node {
        Node::Filter { source, predicate, .. } => (source.as_ref(), Some(predicate)),
        other => (other, None),
    };
    let Node::Scan { model, access } = scan else { return Ok(None) };
    let model = cx.model(model)?;
    let mut wanted = vec![false; model.fields.len()];
    for e in predicate.into_iter().chain(more.iter().copied()) {
        if !stored_fields(model, e, &mut wanted) {
            return Ok(None);
        }
    }
    let (Some(range), Access::FullScan { reverse, .. } | Access::PkRange { reverse, .. }) =
        (record_range(cx, model, access)?, access)
    else {
        return Ok(None);
    };
    Ok(Some(Narrow { model, range, reverse: *reverse, predicate, wanted }))
}

impl Narrow<'_> {
    /// Calls `each` with every record the filter keeps: its wanted fields (in a row reused
    /// from record to record) and its stored bytes (borrowed from the snapshot, for as long
    /// as the statement's transaction lives, where they can be).
    pub(super) fn for_each<'s>(
        &self,
        cx: &Cx<'s>,
        mut each: impl FnMut(&Row, Cow<'s, [u8]>) -> Result<()>,
    ) -> Result<()> {
        let mut row = Row::new(&self.model.slots);
        let wanted = self.model.slots.wanted_by_id(&self.wanted);
        // The common filter, one field against a value, tested without walking it.
        let fast = self.predicate.and_then(|p| crate::eval::FieldTest::of(cx.params, p));
        for r in cx.mtx.records(self.model, self.range.clone(), self.reverse)? {
            cx.stop.check()?;
            let bytes = r?;
            row.decode_wanted(&bytes, &wanted, &self.wanted)?;
            let keep = match (&fast, self.predicate) {
                (Some(t), p) => match (t.holds(&row), p) {
                    (Some(keep), _) => keep,
                    (None, Some(p)) => cx.env(Some(&row)).test(p)?,
                    (None, None) => true,
                },
                (None, Some(p)) => cx.env(Some(&row)).test(p)?,
                (None, None) => true,
            };
            if keep {
                each(&row, bytes)?;
            }
        }
        Ok(())
    }
}

/// The record keys a scan of the records reads (`FullScan`, `PkRange`); `None` for the
/// other access paths.
fn record_range(cx: &Cx, model: &Model, access: &Access) -> Result<Option<KeyRange>> {
    let prefix = KeyPrefix::Model(&model.name).encode();
    Ok(match access {
        Access::FullScan { .. } => Some(KeyRange::prefix(&prefix)),
        Access::PkRange { range, .. } => match starts_with(cx, prefix.clone(), range)? {
            Some((found, _)) => Some(found),
            None => {
                let (lower, upper) = range_parts(cx, model, &model.pk().name, range)?;
                Some(part_range(prefix, lower, upper))
            }
        },
        _ => None,
    })
}

/// Marks in `wanted` the stored fields `e` reads; false when it reads anything else (a
/// virtual field, a relation, `EXISTS`, `COUNT(relation)`).
fn stored_fields(model: &Model, e: &Scalar, wanted: &mut [bool]) -> bool {
    let mut stored = true;
    let only_fields = e.fields(&mut |i| match model.fields.get(i) {
        Some(f) if f.virtual_expr.is_none() => wanted[i] = true,
        _ => stored = false,
    });
    only_fields && stored
}

/// How a projected column gets its value from a row the projection owns.
enum Output<'p> {
    /// Moved out of the row's slot (a whole field no other column reads).
    Slot(usize),
    /// Moved out of what an `Attach` step put in the row (an included relation no other
    /// column reads): related records are moved, never copied.
    Attached(&'p str),
    /// Evaluated.
    Eval,
}

/// For each column, whether its value can be moved out of the row rather than evaluated.
fn outputs(columns: &[(String, Scalar)]) -> Vec<Output<'_>> {
    // How many columns read each slot and each attached name (a few of each: vectors).
    let mut slots: Vec<usize> = Vec::new();
    let mut attached: Vec<(String, usize)> = Vec::new();
    for (_, e) in columns {
        e.walk(&mut |x| match &x.kind {
            ScalarKind::Field { slot, .. } => {
                if slots.len() <= *slot {
                    slots.resize(*slot + 1, 0);
                }
                slots[*slot] += 1;
            }
            ScalarKind::Related { path } => {
                let name = path.segments[0].name.as_str();
                match attached.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, k)) => *k += 1,
                    None => attached.push((name.to_string(), 1)),
                }
            }
            _ => {}
        });
    }
    let once = |name: &str| attached.iter().any(|(n, k)| *n == name && *k == 1);
    columns
        .iter()
        .map(|(_, e)| match &e.kind {
            ScalarKind::Field { slot, path }
                if path.segments.len() == 1 && slots.get(*slot) == Some(&1) =>
            {
                Output::Slot(*slot)
            }
            ScalarKind::Related { path }
                if path.segments.len() == 1 && once(&path.segments[0].name) =>
            {
                Output::Attached(path.segments[0].name.as_str())
            }
            _ => Output::Eval,
        })
        .collect()
}

/// Whether `columns` are the model's fields, each under its own name, in slot order.
fn every_field(model: &Model, columns: &[(String, Scalar)]) -> bool {
    columns.len() == model.fields.len()
        && columns.iter().zip(&model.fields).all(|((name, e), f)| {
            *name == f.name && e.as_field().is_some_and(|slot| model.fields[slot].name == f.name)
        })
}

/// The model whose records a read node yields.
fn leaf_model(node: &Node) -> Result<&str> {
    match node {
        Node::Scan { model, .. } => Ok(model),
        Node::Filter { source, .. }
        | Node::Sort { source, .. }
        | Node::Limit { source, .. }
        | Node::Page { source, .. }
        | Node::Attach { source, .. } => leaf_model(source),
        _ => Err(Error::Internal("no scan under an attach".into())),
    }
}

/// A page of rows and the cursor after its last row (when the page is full, so more rows
/// may follow). Cursors are `c` + hex of the encoded `[query fingerprint, key values…]`:
/// opaque to users, stable across processes, refused by a query with another order.
fn page(cx: &Cx, node: &Node) -> Result<(Vec<Row>, Option<String>)> {
    let Node::Page { source, keys, after, limit, sorted, query } = node else {
        return Err(Error::Internal("not a page".into()));
    };
    let n = non_negative(cx, limit, "LIMIT")?;
    let after = match after {
        None => None,
        Some(e) => match cx.env(None).eval(e)? {
            Value::Null => None,
            Value::String(c) => Some(decode_cursor(&c, *query, keys.len())?),
            other => {
                return Err(bad_cursor(format!(
                    "a cursor is a string, got {}",
                    crate::values::kql(&other)
                )))
            }
        },
    };
    let seek = match (&after, sorted) {
        (Some(c), true) => seek_key(cx, source, c)?,
        _ => None,
    };
    let mut page: Vec<(Vec<Value>, Row)> = Vec::new();
    // One row past the page is read: a cursor is returned only when more rows follow, so a
    // result whose size is a multiple of the page size does not end with an empty page.
    let want = n.saturating_add(1);
    let mut sorter = Sorter::new(keys, Some(want), cx.sort_budget);
    if n > 0 {
        for r in rows_past(cx, source, &seek)? {
            let row = r?;
            let env = cx.env(Some(&row));
            let k: Vec<Value> = keys.iter().map(|o| env.eval(&o.expr)).collect::<Result<_>>()?;
            if let Some(c) = &after {
                if sort_cmp(keys, &k, c) != Ordering::Greater {
                    continue;
                }
            }
            if *sorted {
                page.push((k, row));
                if page.len() == want {
                    break;
                }
                continue;
            }
            if sorter.wants(&k) {
                sorter.push(k, row)?;
            }
        }
    }
    if !*sorted {
        page = sorter.finish();
    }
    let cursor = if page.len() > n {
        page.truncate(n);
        page.last().map(|(k, _)| encode_cursor(*query, k))
    } else {
        None
    };
    Ok((page.into_iter().map(|(_, r)| r).collect(), cursor))
}

/// The storage key of the cursor's row in the page's access path (its record key, or its
/// index entry key), when every value is held exactly; the scan then starts right past it.
fn seek_key(cx: &Cx, source: &Node, cursor: &[Value]) -> Result<Seek> {
    let mut scan = source;
    while let Node::Filter { source, .. } | Node::Attach { source, .. } = scan {
        scan = source;
    }
    let Node::Scan { model, access } = scan else { return Ok(None) };
    let model = cx.model(model)?;
    let Some((pk_value, order)) = cursor.split_last() else { return Ok(None) };
    let exact = |v: &Value| match key_part(v) {
        Some((p, true)) => Some(p),
        _ => None,
    };
    let Some(pk) = exact(pk_value) else { return Ok(None) };
    Ok(match access {
        Access::FullScan { .. } | Access::PkRange { .. } => {
            Some(Key::Record { model: &model.name, pk }.encode())
        }
        Access::IndexScan { index, eq, .. } => {
            let Some(ix) = model.index(index) else { return Ok(None) };
            let mut values = Vec::new();
            for (f, e) in ix.fields.iter().zip(eq) {
                match part(cx, model, f, e)? {
                    Some((p, true)) => values.push(p),
                    _ => return Ok(None),
                }
            }
            for v in order {
                match exact(v) {
                    Some(p) => values.push(p),
                    None => return Ok(None),
                }
            }
            Some(if ix.unique {
                Key::UniqueEntry { model: &model.name, index, values }.encode()
            } else {
                Key::IndexEntry { model: &model.name, index, values, pk }.encode()
            })
        }
        _ => None,
    })
}

fn bad_cursor(message: String) -> Error {
    Error::Invalid { code: "kvm.invalid_cursor", message, span: None, help: None }
}

fn encode_cursor(query: u64, keys: &[Value]) -> String {
    let mut items = vec![Value::Bytes(query.to_be_bytes().to_vec())];
    items.extend(keys.iter().cloned());
    let bytes = Value::Array(items).encode();
    let mut s = String::with_capacity(1 + bytes.len() * 2);
    s.push('c');
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn decode_cursor(text: &str, query: u64, n: usize) -> Result<Vec<Value>> {
    let bad = || bad_cursor(format!("'{text}' is not a cursor returned by this query"));
    let hex = text.strip_prefix('c').ok_or_else(bad)?;
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad())?;
    match Value::decode(&bytes) {
        Ok(Value::Array(mut items)) if items.len() == n + 1 => {
            if items[0] != Value::Bytes(query.to_be_bytes().to_vec()) {
                return Err(bad_cursor(format!(
                    "cursor '{text}' belongs to a query with another model or ORDER BY"
                )));
            }
            items.remove(0);
            Ok(items)
        }
        _ => Err(bad()),
    }
}

/// The `[model, pk]` key of a row (for `[ops]`-style messages).
#[allow(dead_code)]
pub fn record_key(model: &Model, pk: KeyPart) -> Vec<u8> {
    Key::Record { model: &model.name, pk }.encode()
}
