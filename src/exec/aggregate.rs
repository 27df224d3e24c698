//! The `Aggregate` step: rows grouped by their key values, aggregates computed per group.
//!
//! Groups are keyed by [`crate::values::total_cmp`] — the order `ORDER BY` sorts by — so
//! null is one group, `1` and `1.0` are one group, and `-0.0` is `0`. `Streamed` input
//! comes in key order and holds one group at a time; `Hashed` input gathers every group in
//! a B-tree (emitted in key order), bounded by the sort budget. `f(DISTINCT x)` keeps each
//! group's distinct values, counted against the same budget.
//!
//! The semantics are SQL's: aggregates skip nulls; `COUNT` of nothing is 0 and the others
//! are null; `SUM` is an integer while every value is one (an error past 64 bits, never a
//! wrapped total) and a float once any is; `AVG` is a float; `MIN`/`MAX` compare in sort
//! order. A value `SUM` or `AVG` cannot add is `kvm.type_mismatch` naming it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kvm_planner::{Access, Agg, AggFunc, Grouping, Node, Scalar, Slots};
use kvm_storage::Value;

use super::read::{narrow, rows, value_size};
use super::Cx;
use crate::error::{Error, Result};
use crate::model_txn::RowIter;
use crate::slots::Row;
use crate::values::total_cmp;

/// Values compared in sort order: a group key, or a value `f(DISTINCT x)` has seen.
#[derive(Debug, Clone)]
struct Key(Vec<Value>);

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        for (a, b) in self.0.iter().zip(&other.0) {
            match total_cmp(a, b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        self.0.len().cmp(&other.0.len())
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

/// One aggregate's running state.
#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    /// `SUM` and `AVG`: the integer part exactly, the float part compensated (Neumaier),
    /// and how many values were added.
    Sum {
        int: i128,
        float: f64,
        comp: f64,
        floats: bool,
        n: i64,
    },
    /// `MIN` / `MAX`: the best value so far.
    Best(Option<Value>),
}

/// The states of one group's aggregates, and the distinct values each `f(DISTINCT x)` saw.
#[derive(Debug, Clone)]
struct States {
    accs: Vec<Acc>,
    seen: Vec<Option<BTreeSet<Key>>>,
}

impl States {
    fn new(aggs: &[Agg]) -> States {
        States {
            accs: aggs
                .iter()
                .map(|a| match a.func {
                    AggFunc::Count => Acc::Count(0),
                    AggFunc::Sum | AggFunc::Avg => {
                        Acc::Sum { int: 0, float: 0.0, comp: 0.0, floats: false, n: 0 }
                    }
                    AggFunc::Min | AggFunc::Max => Acc::Best(None),
                })
                .collect(),
            seen: aggs.iter().map(|a| a.distinct.then(BTreeSet::new)).collect(),
        }
    }

    /// Adds one row's argument values (`None` for `COUNT(*)`); returns the bytes newly
    /// held (distinct values kept).
    fn add(&mut self, aggs: &[Agg], args: &mut [Option<Value>]) -> Result<usize> {
        let mut held = 0;
        for (i, agg) in aggs.iter().enumerate() {
            let Some(v) = args[i].take() else {
                if agg.arg.is_none() {
                    if let Acc::Count(n) = &mut self.accs[i] {
                        *n += 1;
                    }
                }
                continue;
            };
            if matches!(v, Value::Null) {
                continue;
            }
            if let Some(seen) = &mut self.seen[i] {
                let key = Key(vec![v]);
                if seen.contains(&key) {
                    continue;
                }
                held += value_size(&key.0[0]) + 32;
                let v = key.0[0].clone();
                seen.insert(key);
                accumulate(agg, &mut self.accs[i], v)?;
            } else {
                accumulate(agg, &mut self.accs[i], v)?;
            }
        }
        Ok(held)
    }

    /// The aggregates' values.
    fn finish(self, aggs: &[Agg]) -> Result<Vec<Value>> {
        aggs.iter().zip(self.accs).map(|(agg, acc)| result(agg, acc)).collect()
    }
}

fn accumulate(agg: &Agg, acc: &mut Acc, v: Value) -> Result<()> {
    match acc {
        Acc::Count(n) => *n += 1,
        Acc::Sum { int, float, comp, floats, n } => {
            match v {
                Value::Int(i) => *int += i128::from(i),
                Value::Counter(c) => *int += i128::from(c),
                Value::Float(f) => {
                    *floats = true;
                    // Neumaier's compensated sum: the low bits each addition loses.
                    let t = *float + f;
                    *comp +=
                        if float.abs() >= f.abs() { (*float - t) + f } else { (f - t) + *float };
                    *float = t;
                }
                other => {
                    return Err(Error::Invalid {
                        code: "kvm.type_mismatch",
                        message: format!(
                            "{}: {} is not a number",
                            agg.shown,
                            crate::values::kql(&other)
                        ),
                        span: agg.arg.as_ref().map(|a| a.span).filter(|s| !s.is_empty()),
                        help: None,
                    })
                }
            }
            *n += 1;
        }
        Acc::Best(best) => {
            let better = match best {
                None => true,
                Some(b) => {
                    let o = total_cmp(&v, b);
                    if agg.func == AggFunc::Min {
                        o == Ordering::Less
                    } else {
                        o == Ordering::Greater
                    }
                }
            };
            if better {
                *best = Some(v);
            }
        }
    }
    Ok(())
}

fn result(agg: &Agg, acc: Acc) -> Result<Value> {
    Ok(match acc {
        Acc::Count(n) => Value::Int(n),
        Acc::Sum { n: 0, .. } => Value::Null,
        Acc::Sum { int, float, comp, floats, n } => {
            let total = (int as f64) + (float + comp);
            if agg.func == AggFunc::Avg {
                if floats {
                    Value::Float(total / n as f64)
                } else {
                    // Exact integer total, one rounding.
                    Value::Float(int as f64 / n as f64)
                }
            } else if floats {
                Value::Float(total)
            } else {
                match i64::try_from(int) {
                    Ok(i) => Value::Int(i),
                    Err(_) => {
                        return Err(Error::Invalid {
                            code: "kvm.overflow",
                            message: format!(
                                "{}: the total {int} is outside the 64-bit integer range",
                                agg.shown
                            ),
                            span: agg.arg.as_ref().map(|a| a.span).filter(|s| !s.is_empty()),
                            help: Some(format!(
                                "sum as floats: `SUM({} * 1.0)`",
                                agg.arg.as_ref().map(|a| a.to_string()).unwrap_or_default()
                            )),
                        })
                    }
                }
            }
        }
        Acc::Best(best) => best.unwrap_or(Value::Null),
    })
}

/// The value of `e` for `row`.
fn value(cx: &Cx, row: &Row, e: &Scalar) -> Result<Value> {
    match e.as_field() {
        Some(slot) => Ok(row.slot(slot).clone()),
        None => cx.env(Some(row)).eval(e),
    }
}

/// Whether an index key holds `v` truncated (see [`crate::keyspace::key_part`]).
fn is_long(v: &Value) -> bool {
    match v {
        Value::String(s) => s.len() > crate::keyspace::LONG_VALUE,
        Value::Bytes(b) => b.len() > crate::keyspace::LONG_VALUE,
        _ => false,
    }
}

/// The bytes a group holds in memory (what the budget counts).
fn group_size(key: &Key, aggs: usize) -> usize {
    key.0.iter().map(value_size).sum::<usize>() + 64 + 48 * aggs
}

fn too_many(cx: &Cx, groups: usize) -> Error {
    Error::Invalid {
        code: "kvm.group_too_large",
        message: format!(
            "GROUP BY would hold more than {} MiB of groups in memory ({groups} groups so far)",
            cx.sort_budget >> 20
        ),
        span: None,
        help: Some(
            "add an index whose fields are the GROUP BY fields then those the aggregates \
             read (groups then stream one at a time from its entries), or a narrower WHERE"
                .into(),
        ),
    }
}

/// The rows of an `Aggregate` step: one per group, its slots the keys then the aggregates.
pub(super) fn aggregate<'a>(cx: &'a Cx<'a>, node: &'a Node) -> Result<RowIter<'a>> {
    let Node::Aggregate { source, keys, aggs, grouping } = node else {
        return Err(Error::Internal("not an aggregate".into()));
    };
    let mut names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    names.extend(aggs.iter().map(|a| a.shown.clone()));
    let slots = Arc::new(Slots::new(names));
    let out = |key: Vec<Value>, states: States| -> Result<Row> {
        let mut vals = key;
        vals.extend(states.finish(aggs)?);
        Ok(Row::from_values(&slots, vals))
    };
    let mut args: Vec<Option<Value>> = vec![None; aggs.len()];
    let eval_args = |row: &Row, args: &mut [Option<Value>]| -> Result<()> {
        for (slot, a) in args.iter_mut().zip(aggs) {
            *slot = a.arg.as_ref().map(|e| value(cx, row, e)).transpose()?;
        }
        Ok(())
    };
    if let Some(rows) = counted_runs(cx, source, keys, aggs, &slots)? {
        return Ok(rows);
    }
    if *grouping == Grouping::Streamed || keys.is_empty() {
        // One group at a time: the input is in key order (or there is one group).
        let mut done: Vec<Row> = Vec::new();
        let mut current: Option<(Key, States, usize)> = None;
        // Groups of values too long to be held exactly in index keys: two such values may
        // share a key prefix and interleave, so their groups are gathered apart.
        let mut long: BTreeMap<Key, States> = BTreeMap::new();
        let mut long_held = 0usize;
        let budget = cx.sort_budget;
        let mut step = |row: &Row| -> Result<()> {
            let key = Key(keys.iter().map(|(_, e)| value(cx, row, e)).collect::<Result<_>>()?);
            if key.0.iter().any(is_long) {
                eval_args(row, &mut args)?;
                long_held += add_to(&mut long, &key, aggs, &mut args)?;
                if long_held > budget {
                    return Err(too_many(cx, long.len()));
                }
                return Ok(());
            }
            if current.as_ref().is_some_and(|(k, _, _)| *k != key) {
                if let Some((k, s, _)) = current.take() {
                    done.push(out(k.0, s)?);
                }
            }
            let (_, states, held) = current.get_or_insert_with(|| (key, States::new(aggs), 0));
            eval_args(row, &mut args)?;
            *held += states.add(aggs, &mut args)?;
            if *held > budget {
                return Err(too_many(cx, 1));
            }
            Ok(())
        };
        each_input(cx, source, keys, aggs, &mut step)?;
        match current {
            Some((k, s, _)) => done.push(out(k.0, s)?),
            // No input and no keys: one row (`COUNT(*)` is 0, the others null).
            None if keys.is_empty() => done.push(out(Vec::new(), States::new(aggs))?),
            None => {}
        }
        for (k, s) in long {
            done.push(out(k.0, s)?);
        }
        return Ok(Box::new(done.into_iter().map(Ok)));
    }
    let mut groups: BTreeMap<Key, States> = BTreeMap::new();
    let mut held = 0usize;
    let mut key = Key(Vec::with_capacity(keys.len()));
    let mut step = |row: &Row| -> Result<()> {
        key.0.clear();
        for (_, e) in keys {
            key.0.push(value(cx, row, e)?);
        }
        eval_args(row, &mut args)?;
        held += add_to(&mut groups, &key, aggs, &mut args)?;
        if held > cx.sort_budget {
            return Err(too_many(cx, groups.len()));
        }
        Ok(())
    };
    each_input(cx, source, keys, aggs, &mut step)?;
    let out: Vec<Result<Row>> = groups.into_iter().map(|(k, s)| out(k.0, s)).collect();
    Ok(Box::new(out.into_iter()))
}

/// Adds a row's arguments to group `key` of `groups` (one lookup when it exists; created,
/// its key cloned, only when new): the bytes newly held.
fn add_to(
    groups: &mut BTreeMap<Key, States>,
    key: &Key,
    aggs: &[Agg],
    args: &mut [Option<Value>],
) -> Result<usize> {
    if let Some(states) = groups.get_mut(key) {
        return states.add(aggs, args);
    }
    let mut states = States::new(aggs);
    let held = group_size(key, aggs.len()) + states.add(aggs, args)?;
    groups.insert(key.clone(), states);
    Ok(held)
}

/// Hands each input row to `step`: from a narrow scan of the records (decoded only as far
/// as the keys, arguments and filter read, into one reused row) when the source allows.
fn each_input<'a>(
    cx: &'a Cx<'a>,
    source: &'a Node,
    keys: &'a [(String, Scalar)],
    aggs: &'a [Agg],
    step: &mut dyn FnMut(&Row) -> Result<()>,
) -> Result<()> {
    let mut more: Vec<&Scalar> = keys.iter().map(|(_, e)| e).collect();
    more.extend(aggs.iter().filter_map(|a| a.arg.as_ref()));
    match narrow(cx, source, &more)? {
        Some(scan) => scan.for_each(cx, |row, _| step(row)),
        None => {
            for r in rows(cx, source)? {
                step(&r?)?;
            }
            Ok(())
        }
    }
}

/// `COUNT(*)` per group over an index-only scan whose index holds each group's entries
/// together: the runs of equal values are counted from the entry keys, no entry decoded but
/// the first of each run, no record read. `None` for any other shape.
fn counted_runs<'a>(
    cx: &'a Cx<'a>,
    source: &'a Node,
    keys: &'a [(String, Scalar)],
    aggs: &'a [Agg],
    slots: &Arc<Slots>,
) -> Result<Option<RowIter<'a>>> {
    if keys.is_empty() || !aggs.iter().all(|a| a.func == AggFunc::Count && a.arg.is_none()) {
        return Ok(None);
    }
    let scan = match source {
        Node::Filter { source, covered: true, .. }
            if super::read::key_range_decides(cx, source)? =>
        {
            source.as_ref()
        }
        other => other,
    };
    let Node::Scan {
        model,
        access: access @ Access::IndexScan { index, eq, index_only: true, .. },
    } = scan
    else {
        return Ok(None);
    };
    let model = cx.model(model)?;
    let Some(ix) = model.index(index) else { return Ok(None) };
    // Each key's position among the index's fields; the runs split on the fields up to the
    // last of them, which must be keys or fixed by the equality prefix.
    let mut at = Vec::with_capacity(keys.len());
    for (_, e) in keys {
        let Some(slot) = e.as_field() else { return Ok(None) };
        let name = &model.fields[slot].name;
        let Some(i) = ix.fields.iter().position(|f| f == name) else { return Ok(None) };
        at.push(i);
    }
    let n = at.iter().max().map_or(0, |m| m + 1);
    if (0..n).any(|i| i >= eq.len() && !at.contains(&i)) {
        return Ok(None);
    }
    let Some((range, _)) = super::read::index_range(cx, model, access)? else {
        return Ok(Some(Box::new(std::iter::empty())));
    };
    let mut done: Vec<Row> = Vec::new();
    // Values read from records (held truncated in the index): gathered apart.
    let mut long: BTreeMap<Key, i64> = BTreeMap::new();
    for run in cx.mtx.index_runs(model, ix, &range, n)? {
        cx.stop.check()?;
        let (values, count) = run?;
        let key = Key(at.iter().map(|i| values[*i].clone()).collect());
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        if values.iter().any(is_long) {
            *long.entry(key).or_insert(0) += count;
            continue;
        }
        let mut vals = key.0;
        vals.extend(std::iter::repeat_n(Value::Int(count), aggs.len()));
        done.push(Row::from_values(slots, vals));
    }
    for (key, count) in long {
        let mut vals = key.0;
        vals.extend(std::iter::repeat_n(Value::Int(count), aggs.len()));
        done.push(Row::from_values(slots, vals));
    }
    Ok(Some(Box::new(done.into_iter().map(Ok))))
}
