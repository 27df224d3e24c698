//! Loading related data into a batch of rows (`INCLUDE`, paths through a relation, `EXISTS`,
//! `COUNT(relation)`): every relation level is one batched read for the whole batch — a
//! multi-get of keys, or one request for the index ranges of all its rows — never a read
//! per row. Nested includes load for all the records of the level above at once.

use std::collections::HashMap;

use kvm_planner::SortKey;
use kvm_planner::{Attach, AttachKind, Model, RelPath};
use kvm_storage::tuple::KeyPart;
use kvm_storage::{KeyRange, Value};

use super::read::non_negative;
use super::Cx;
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::keyspace::{key_part, KeyPrefix};
use crate::record;
use crate::values::total_cmp;

/// Rows loaded and attached at a time by a streaming `Attach` node.
pub const ATTACH_BATCH: usize = 1000;

pub(super) fn enc(p: &KeyPart) -> Vec<u8> {
    crate::keyspace::part_bytes(p)
}

/// The key part of `v` as `model`'s primary key (a foreign key's value is coerced to the
/// type of the key it holds): `None` when it cannot name a record.
pub fn key_of(model: &Model, v: &Value) -> Option<KeyPart> {
    if matches!(v, Value::Null) {
        return None;
    }
    let v = record::coerce(&model.name, model.pk(), v.clone()).ok()?;
    match key_part(&v) {
        Some((p, true)) => Some(p),
        _ => None,
    }
}

/// Each row's own primary key (stored, so already in key form), distinct, and each row's
/// position in that list.
pub(super) fn parent_keys(model: &Model, rows: &[Row]) -> (Vec<KeyPart>, Vec<Option<usize>>) {
    let pk = &model.pk().name;
    distinct(rows.iter().map(|r| r.get(pk).and_then(key_part).map(|(p, _)| p)).collect())
}

/// Distinct keys, in first-seen order, and each row's position in that list.
fn distinct(keys: Vec<Option<KeyPart>>) -> (Vec<KeyPart>, Vec<Option<usize>>) {
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut list = Vec::new();
    let slots = keys
        .into_iter()
        .map(|k| {
            k.map(|k| {
                *seen.entry(enc(&k)).or_insert_with(|| {
                    list.push(k);
                    list.len() - 1
                })
            })
        })
        .collect();
    (list, slots)
}

/// `items[i]` for each slot, moved out at its last use (cloned before): related records
/// usually belong to one row, so they are moved, not copied.
fn hand_out<T: Clone + Default>(mut items: Vec<T>, slots: &[Option<usize>]) -> Vec<Option<T>> {
    let mut left = vec![0usize; items.len()];
    for &i in slots.iter().flatten() {
        left[i] += 1;
    }
    slots
        .iter()
        .map(|s| {
            s.map(|i| {
                left[i] -= 1;
                if left[i] == 0 {
                    std::mem::take(&mut items[i])
                } else {
                    items[i].clone()
                }
            })
        })
        .collect()
}

/// Records of `model` by key, read in one request, virtual fields computed.
fn load(cx: &Cx, model: &Model, keys: &[KeyPart]) -> Result<Vec<Option<Row>>> {
    cx.mtx
        .get_many(model, keys)?
        .into_iter()
        .map(|r| r.map(|row| record::materialize(model, row, &cx.env(None))).transpose())
        .collect()
}

/// The primary keys of the records related to each parent key through `index` of `model`
/// (entries under `[model, '__idx', index, parent]`), in one request.
pub(super) fn related_pks(
    cx: &Cx,
    model: &Model,
    index: &str,
    parents: &[KeyPart],
    reverse: bool,
    limit: Option<usize>,
) -> Result<Vec<Vec<KeyPart>>> {
    let ix = model
        .index(index)
        .ok_or_else(|| Error::Internal(format!("relation names missing index {index}")))?;
    let ranges: Vec<KeyRange> = parents
        .iter()
        .map(|p| KeyPrefix::Index { model: &model.name, index, values: vec![p.clone()] }.range())
        .collect();
    cx.mtx.index_pks_many(model, ix, &ranges, reverse, limit)
}

/// Loads `items` into `rows` (records of `model`).
pub fn attach(cx: &Cx, items: &[Attach], model: &Model, rows: &mut [Row]) -> Result<()> {
    for a in items {
        attach_one(cx, a, model, rows)?;
    }
    Ok(())
}

fn attach_one(cx: &Cx, a: &Attach, model: &Model, rows: &mut [Row]) -> Result<()> {
    let target = cx.model(&a.rel.target)?;
    match (&a.what, &a.rel.path) {
        (AttachKind::Records { filter, nested, .. }, RelPath::Fk { fk }) => {
            let keys = rows.iter().map(|r| r.get(fk).and_then(|v| key_of(target, v))).collect();
            let (list, slots) = distinct(keys);
            let mut found: Vec<Option<Row>> = load(cx, target, &list)?;
            if let Some(f) = filter {
                for slot in found.iter_mut() {
                    if let Some(r) = slot {
                        if !cx.env(Some(r)).test(f)? {
                            *slot = None;
                        }
                    }
                }
            }
            attach_nested(cx, nested, target, &mut found)?;
            for (row, v) in rows.iter_mut().zip(hand_out(found, &slots)) {
                row.insert(
                    a.column.clone(),
                    v.flatten().map_or(Value::Null, |r| Value::Object(r.into_object())),
                );
            }
            Ok(())
        }
        (AttachKind::Records { filter, order_by, limit, offset, index, ordered, nested }, _) => {
            let limit = limit.as_ref().map(|l| non_negative(cx, l, "LIMIT")).transpose()?;
            let offset =
                offset.as_ref().map(|o| non_negative(cx, o, "OFFSET")).transpose()?.unwrap_or(0);
            let early = match limit {
                Some(l) if *ordered && filter.is_none() => Some(l.saturating_add(offset)),
                _ => None,
            };
            let mut per_row = related(cx, a, model, target, rows, index.as_ref(), early)?;
            let mut flat: Vec<Option<Row>> = Vec::new();
            let mut lists: Vec<Vec<usize>> = Vec::new();
            for list in per_row.iter_mut() {
                let mut kept: Vec<Row> = Vec::new();
                for r in list.drain(..) {
                    if let Some(f) = filter {
                        if !cx.env(Some(&r)).test(f)? {
                            continue;
                        }
                    }
                    kept.push(r);
                }
                if !*ordered {
                    sort(cx, target, order_by, &mut kept)?;
                }
                let kept: Vec<Row> =
                    kept.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).collect();
                lists.push((flat.len()..flat.len() + kept.len()).collect());
                flat.extend(kept.into_iter().map(Some));
            }
            attach_nested(cx, nested, target, &mut flat)?;
            for (row, list) in rows.iter_mut().zip(lists) {
                let mut items = list
                    .into_iter()
                    .filter_map(|i| flat[i].take())
                    .map(|r| Value::Object(r.into_object()));
                let v = if a.rel.single() {
                    items.next().unwrap_or(Value::Null)
                } else {
                    Value::Array(items.collect())
                };
                row.insert(a.column.clone(), v);
            }
            Ok(())
        }
        (
            AttachKind::Exists { filter: None } | AttachKind::Count,
            RelPath::Reverse { index, .. },
        )
        | (
            AttachKind::Exists { filter: None } | AttachKind::Count,
            RelPath::Through { index, .. },
        ) => {
            // Index entries only: no record is read.
            let holder = match &a.rel.path {
                RelPath::Through { join, .. } => cx.model(join)?,
                _ => target,
            };
            let (list, slots) = parent_keys(model, rows);
            let exists = matches!(a.what, AttachKind::Exists { .. });
            let limit = exists.then_some(1);
            let found = related_pks(cx, holder, index, &list, false, limit)?;
            for (row, slot) in rows.iter_mut().zip(slots) {
                let n = slot.map_or(0, |i| found[i].len());
                let v = if exists { Value::Bool(n > 0) } else { Value::Int(n as i64) };
                row.insert(a.column.clone(), v);
            }
            Ok(())
        }
        (AttachKind::Exists { filter }, path) => {
            let per_row = match path {
                RelPath::Fk { fk } => {
                    let keys =
                        rows.iter().map(|r| r.get(fk).and_then(|v| key_of(target, v))).collect();
                    let (list, slots) = distinct(keys);
                    let found = load(cx, target, &list)?;
                    slots
                        .into_iter()
                        .map(|s| s.and_then(|i| found[i].clone()).into_iter().collect())
                        .collect()
                }
                _ => {
                    let index = match path {
                        RelPath::Reverse { index, .. } => Some((index.clone(), false)),
                        _ => None,
                    };
                    related(cx, a, model, target, rows, index.as_ref(), None)?
                }
            };
            for (row, list) in rows.iter_mut().zip(per_row) {
                let mut any = false;
                for r in &list {
                    if filter.as_ref().map_or(Ok(true), |f| cx.env(Some(r)).test(f))? {
                        any = true;
                        break;
                    }
                }
                row.insert(a.column.clone(), Value::Bool(any));
            }
            Ok(())
        }
        (AttachKind::Count, RelPath::Fk { .. }) => {
            Err(Error::Internal(format!("COUNT of single-record relation {}", a.rel.name)))
        }
    }
}

/// Nested attachments of loaded records (the `Some` ones), all in one batch.
fn attach_nested(
    cx: &Cx,
    nested: &[Attach],
    model: &Model,
    slots: &mut [Option<Row>],
) -> Result<()> {
    if nested.is_empty() {
        return Ok(());
    }
    let at: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    let mut batch: Vec<Row> = at.iter().filter_map(|&i| slots[i].take()).collect();
    attach(cx, nested, model, &mut batch)?;
    for (i, row) in at.into_iter().zip(batch) {
        slots[i] = Some(row);
    }
    Ok(())
}

/// The records related to each row through a `HAS …` or `MANY TO MANY` relation, in the
/// index's order (at most `limit` each when given).
fn related(
    cx: &Cx,
    a: &Attach,
    model: &Model,
    target: &Model,
    rows: &[Row],
    index: Option<&(String, bool)>,
    limit: Option<usize>,
) -> Result<Vec<Vec<Row>>> {
    let (parents, slots) = parent_keys(model, rows);
    // Per distinct parent: the target keys, in order.
    let per_parent: Vec<Vec<KeyPart>> = match &a.rel.path {
        RelPath::Reverse { index: default, .. } => {
            let (index, reverse) = index.cloned().unwrap_or((default.clone(), false));
            related_pks(cx, target, &index, &parents, reverse, limit)?
        }
        RelPath::Through { join, src: _, dst, index } => {
            let jm = cx.model(join)?;
            let join_pks = related_pks(cx, jm, index, &parents, false, None)?;
            let flat: Vec<KeyPart> = join_pks.iter().flatten().cloned().collect();
            let (list, slots_j) = distinct(flat.into_iter().map(Some).collect());
            let joins = cx.mtx.get_many(jm, &list)?;
            let mut it = slots_j.into_iter();
            join_pks
                .iter()
                .map(|l| {
                    l.iter()
                        .filter_map(|_| {
                            let i = it.next().flatten()?;
                            joins[i]
                                .as_ref()
                                .and_then(|j| j.get(dst))
                                .and_then(|v| key_of(target, v))
                        })
                        .collect()
                })
                .collect()
        }
        RelPath::Fk { .. } => return Err(Error::Internal("not a to-many relation".into())),
    };
    let flat: Vec<Option<KeyPart>> = per_parent.iter().flatten().cloned().map(Some).collect();
    let (list, slots_t) = distinct(flat);
    let records = load(cx, target, &list)?;
    let mut it = hand_out(records, &slots_t).into_iter();
    let per_parent: Vec<Vec<Row>> = per_parent
        .iter()
        .map(|l| l.iter().filter_map(|_| it.next().flatten().flatten()).collect())
        .collect();
    Ok(hand_out(per_parent, &slots).into_iter().map(Option::unwrap_or_default).collect())
}

/// Sorts related records by `order_by`, or by primary key when it is empty.
fn sort(cx: &Cx, model: &Model, order_by: &[SortKey], rows: &mut Vec<Row>) -> Result<()> {
    if order_by.is_empty() {
        let pk = &model.pk().name;
        rows.sort_by(|a, b| {
            total_cmp(a.get(pk).unwrap_or(&Value::Null), b.get(pk).unwrap_or(&Value::Null))
        });
        return Ok(());
    }
    let mut keyed: Vec<(Vec<Value>, Row)> = Vec::with_capacity(rows.len());
    for r in rows.drain(..) {
        let env = cx.env(Some(&r));
        let k: Vec<Value> = order_by.iter().map(|o| env.eval(&o.expr)).collect::<Result<_>>()?;
        keyed.push((k, r));
    }
    keyed.sort_by(|(x, _), (y, _)| super::read::sort_cmp(order_by, x, y));
    rows.extend(keyed.into_iter().map(|(_, r)| r));
    Ok(())
}
