//! Referential integrity, in the statement's own commit: a foreign key written must point at
//! a record; deleting a record applies each foreign key's `ON DELETE` to the records that
//! point at it (`CASCADE` recursively, `SET NULL`, and `RESTRICT` checked once the whole
//! statement's deletes are done, so deleting a parent together with its children works);
//! `RELATE` / `UNRELATE` write join records. Every read here is tracked, so a concurrent
//! commit that adds a child or removes a parent makes the statement retry.

use std::collections::HashSet;

use kvm_lang::ast::{AssignOp, OnDelete, Relate};
use kvm_planner::{Link, Model, RelPath};
use kvm_storage::tuple::KeyPart;
use kvm_storage::Value;

use super::attach::key_of;
use super::Cx;
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::keyspace::{part_value, Key, KeyPrefix};
use crate::model_txn::{pk_part, Ttl};
use crate::{record, Output};

fn reference(code: &'static str, message: String) -> Error {
    Error::Reference { code, message }
}

/// `row` (of `child`) satisfies `link`: its foreign key is null or names a `parent` record.
pub fn check_parent(cx: &Cx, parent: &Model, child: &Model, link: &Link, row: &Row) -> Result<()> {
    let v = row.get(&link.fk).unwrap_or(&Value::Null);
    if matches!(v, Value::Null) {
        return Ok(());
    }
    let found = match key_of(parent, v) {
        Some(k) => cx.mtx.get(parent, &k)?.is_some(),
        None => false,
    };
    if found {
        return Ok(());
    }
    let pk = child.pk().name.clone();
    Err(reference(
        "kvm.dangling_reference",
        format!(
            "{}.{} = {v} points at no `{}` record (relation `{}`){}",
            child.name,
            link.fk,
            parent.name,
            link.via,
            row.get(&pk)
                .map(|id| format!(" in the {} record with {pk} {id}", child.name))
                .unwrap_or_default()
        ),
    ))
}

/// After `new` replaced `old` (or was inserted) in `model`: every foreign key it set points
/// at a record.
pub fn check_parents(cx: &Cx, model: &Model, old: Option<&Row>, new: &Row) -> Result<()> {
    for link in cx.catalog.links_from(&model.name) {
        if old.is_some_and(|o| o.get(&link.fk) == new.get(&link.fk)) {
            continue;
        }
        let parent = cx.model(&link.parent)?;
        check_parent(cx, parent, model, link, new)?;
    }
    Ok(())
}

/// The state of one statement's deletes: records already deleted, and the `RESTRICT`
/// foreign keys to check when it is done.
#[derive(Default)]
pub struct Deletes {
    done: HashSet<Vec<u8>>,
    restricts: Vec<(Link, KeyPart)>,
    /// A cascade or set-null has written: rows read before it may be stale.
    cascaded: bool,
}

/// The records of `child` whose `link` foreign key holds `pk` (read through its index when
/// that index is ready, else by a scan of the model).
fn children(cx: &Cx, child: &Model, link: &Link, pk: &KeyPart) -> Result<Vec<Row>> {
    let index = child.indexes.iter().find(|i| i.ready && i.fields.first() == Some(&link.fk));
    match index {
        Some(ix) => {
            let range =
                KeyPrefix::Index { model: &child.name, index: &ix.name, values: vec![pk.clone()] }
                    .range();
            cx.mtx.index_scan(child, ix, &range, false)?.collect()
        }
        None => {
            let want = part_value(pk);
            let mut out = Vec::new();
            for r in cx.mtx.scan_all(child, false)? {
                let row = r?;
                if row.get(&link.fk).is_some_and(|v| *v == want) {
                    out.push(row);
                }
            }
            Ok(out)
        }
    }
}

impl Deletes {
    /// Deletes `row` of `model` and applies `ON DELETE` to what points at it.
    pub fn delete(&mut self, cx: &Cx, model: &Model, row: &Row) -> Result<bool> {
        let pk = pk_part(model, row.get(&model.pk().name).unwrap_or(&Value::Null))?;
        let key = Key::Record { model: &model.name, pk: pk.clone() }.encode();
        if !self.done.insert(key) {
            return Ok(false);
        }
        // A cascade earlier in this statement may have changed it: delete what is current.
        let current = if self.cascaded { cx.mtx.get(model, &pk)? } else { None };
        cx.mtx.delete(model, current.as_ref().unwrap_or(row))?;
        for link in cx.catalog.links_to(&model.name) {
            let child = cx.model(&link.child)?;
            match link.on_delete {
                OnDelete::Restrict => self.restricts.push((link.clone(), pk.clone())),
                OnDelete::Cascade => {
                    for c in children(cx, child, link, &pk)? {
                        self.cascaded = true;
                        self.delete(cx, child, &c)?;
                    }
                }
                OnDelete::SetNull => {
                    for c in children(cx, child, link, &pk)? {
                        self.cascaded = true;
                        let set = [(link.fk.clone(), AssignOp::Set, Value::Null)];
                        let new = record::apply(child, &c, &set, &cx.env(None))?;
                        cx.mtx.update(child, &c, &new, Ttl::Keep)?;
                    }
                }
            }
        }
        Ok(true)
    }

    /// Checks the `RESTRICT` foreign keys of every deleted record: none may still be
    /// pointed at.
    pub fn finish(self, cx: &Cx) -> Result<()> {
        for (link, pk) in &self.restricts {
            let child = cx.model(&link.child)?;
            let left = children(cx, child, link, pk)?;
            if let Some(first) = left.first() {
                let cpk = &child.pk().name;
                return Err(reference(
                    "kvm.restrict",
                    format!(
                        "cannot delete the {} record with key {}: relation `{}` is ON DELETE \
                         RESTRICT and {} {} record(s) still point at it ({}.{}; first: {cpk} {})",
                        link.parent,
                        part_value(pk),
                        link.via,
                        left.len(),
                        child.name,
                        child.name,
                        link.fk,
                        first.get(cpk).unwrap_or(&Value::Null)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `RELATE a:k TO b:k [VIA rel]` (`link`) or `UNRELATE …`: adds (once) or removes the join
/// record of a `MANY TO MANY` relation between the two records.
pub fn relate(cx: &Cx, r: &Relate, link: bool) -> Result<Output> {
    let verb = if link { "RELATE" } else { "UNRELATE" };
    let a = cx.catalog.model(&r.from.model.name, r.from.model.span)?;
    let b = cx.catalog.model(&r.to.model.name, r.to.model.span)?;
    let via = r.via.as_ref().map(|v| v.name.as_str());
    let mut found = Vec::new();
    for (owner, other, flipped) in [(a, b, false), (b, a, true)] {
        for rel in &owner.relations {
            if rel.kind == kvm_lang::ast::RelationKind::ManyToMany
                && rel.target.name == other.name
                && via.is_none_or(|v| v == rel.name.name)
            {
                found.push((owner, rel.name.name.clone(), flipped));
            }
        }
        if a.name == b.name {
            break; // a relation of a model with itself: one direction
        }
    }
    let (owner, name, flipped) = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::Invalid {
                code: "kvm.unknown_relation",
                message: format!(
                    "{verb}: no MANY TO MANY relation{} joins `{}` and `{}`",
                    via.map(|v| format!(" named `{v}`")).unwrap_or_default(),
                    a.name,
                    b.name
                ),
                span: Some(r.span),
                help: None,
            })
        }
        _ => {
            let names: Vec<String> =
                found.iter().map(|(o, n, _)| format!("{}.{n}", o.name)).collect();
            return Err(Error::Invalid {
                code: "kvm.ambiguous_relation",
                message: format!(
                    "{verb}: several relations join `{}` and `{}` ({}): name one with VIA",
                    a.name,
                    b.name,
                    names.join(", ")
                ),
                span: Some(r.span),
                help: None,
            });
        }
    };
    let rel = cx.catalog.relation(owner, &name, r.span)?;
    let RelPath::Through { join, src, dst, index } = &rel.path else {
        return Err(Error::Internal("MANY TO MANY without a join".into()));
    };
    let jm = cx.model(join)?;
    let (src_ref, dst_ref) = if flipped { (&r.to, &r.from) } else { (&r.from, &r.to) };
    let target = cx.model(&rel.target)?;
    let key = |m: &Model, e: &kvm_lang::Expr| -> Result<(Value, KeyPart)> {
        let v = cx.value(e)?;
        let coerced = record::coerce(&m.name, m.pk(), v.clone())?;
        match key_of(m, &coerced) {
            Some(k) => Ok((coerced, k)),
            None => Err(Error::validation(&m.name, &m.pk().name, v, "is not a usable key")),
        }
    };
    let (src_v, src_k) = key(owner, &src_ref.key)?;
    let (dst_v, dst_k) = key(target, &dst_ref.key)?;
    if link {
        for (m, k, v) in [(owner, &src_k, &src_v), (target, &dst_k, &dst_v)] {
            if cx.mtx.get(m, k)?.is_none() {
                return Err(reference(
                    "kvm.dangling_reference",
                    format!("{verb}: no `{}` record has {} {v}", m.name, m.pk().name),
                ));
            }
        }
    }
    // The join records of this pair.
    let ix = jm.index(index).ok_or_else(|| Error::Internal(format!("missing index {index}")))?;
    let range = KeyPrefix::Index { model: &jm.name, index, values: vec![src_k] }.range();
    let existing: Vec<Row> = cx
        .mtx
        .index_scan(jm, ix, &range, false)?
        .filter(|r| r.as_ref().map_or(true, |row| row.get(dst) == Some(&dst_v)))
        .collect::<Result<_>>()?;
    if link {
        if !existing.is_empty() {
            return Ok(Output::Affected { verb: "related", count: 0 });
        }
        let mut input = std::collections::BTreeMap::new();
        input.insert(src.clone(), src_v);
        input.insert(dst.clone(), dst_v);
        let row = record::for_insert(jm, input, &cx.env(None))?;
        cx.mtx.insert(jm, &row, None)?;
        check_parents(cx, jm, None, &row)?;
        Ok(Output::Affected { verb: "related", count: 1 })
    } else {
        let mut deletes = Deletes::default();
        let mut n = 0;
        for row in &existing {
            if deletes.delete(cx, jm, row)? {
                n += 1;
            }
        }
        deletes.finish(cx)?;
        Ok(Output::Affected { verb: "unrelated", count: n })
    }
}
