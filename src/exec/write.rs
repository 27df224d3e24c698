//! Write statements: `INSERT` (one record or a batch), `UPDATE … SET`, `DELETE`, each with
//! `RETURNING`. Targets are read first (the whole set, so an update never sees its own
//! writes), then written through the model transaction; the caller commits once.

use kvm_lang::ast::AssignOp;
use kvm_planner::Node;
use kvm_planner::Scalar;
use kvm_planner::{ScalarKind, Set};
use kvm_storage::Value;

use super::{read, refs, Cx};
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::model_txn::{pk_part, Ttl};
use crate::{record, Output, Rows};

fn returning(
    cx: &Cx,
    model: &kvm_planner::Model,
    cols: &Option<Vec<(String, Scalar)>>,
    rows: &[Row],
    verb: &'static str,
) -> Result<Output> {
    match cols {
        None => Ok(Output::Affected { verb, count: rows.len() as u64 }),
        Some(cols) => {
            let mut out = Rows::new(cols.iter().map(|(n, _)| n.clone()).collect());
            for r in rows {
                let row = record::materialize(model, r.clone(), &cx.env(None))?;
                let env = cx.env(Some(&row));
                out.rows.push(cols.iter().map(|(_, e)| env.eval(e)).collect::<Result<_>>()?);
            }
            Ok(Output::Rows(out))
        }
    }
}

/// What is stored of a row the statement's source read: its stored fields, without virtual
/// fields or the related data its `WHERE` clause loaded (`author.status = …`).
fn stored(model: &kvm_planner::Model, mut row: Row) -> Row {
    row.retain(|k, _| model.field(k).is_some_and(|f| f.virtual_expr.is_none()));
    row
}

/// Where in the statement the value of `field` of the record `e` is: the field's value in a
/// literal object, its key when the field is unknown there, else the whole record (`$1`).
fn value_span(e: &Scalar, field: &str) -> kvm_lang::Span {
    if let ScalarKind::Object(fields) = &e.kind {
        if let Some((_, v)) = fields.iter().find(|(k, _)| k == field) {
            return v.span;
        }
    }
    e.span
}

/// A validation error of record `e`, pointed at the offending value.
fn at_value(err: Error, e: &Scalar) -> Error {
    match &err {
        Error::Validation { field, .. } => {
            let span = value_span(e, field);
            err.at(span)
        }
        _ => err,
    }
}

/// An error of record `i` (0-based) of a batch of `n`: a validation or reference error says
/// which record it was (1-based), so a 10,000-record INSERT's failure can be found.
fn in_batch(e: Error, i: usize, n: usize) -> Error {
    if n < 2 {
        return e;
    }
    let which = format!(" (record {} of {n} in the batch)", i + 1);
    match e {
        Error::Validation { model, field, value, message, span } => {
            Error::Validation { model, field, value, message: message + &which, span }
        }
        Error::Reference { code, message } => Error::Reference { code, message: message + &which },
        Error::UniqueViolation { model, index, value } => {
            Error::UniqueViolation { model, index, value: value + &which }
        }
        other => other,
    }
}

pub fn insert(
    cx: &Cx,
    model: &str,
    records: &[Scalar],
    ret: &Option<Vec<(String, Scalar)>>,
    ttl: Ttl,
) -> Result<Output> {
    let expire_at = match ttl {
        Ttl::At(t) => Some(t),
        Ttl::Keep | Ttl::Clear => None,
    };
    let model = cx.model(model)?;
    // Rows are held only when RETURNING asks for them.
    let mut written = Written::new(ret);
    for (i, e) in records.iter().enumerate() {
        let n = records.len();
        let input = match cx.env(None).eval(e)? {
            Value::Object(m) => m,
            other => {
                return Err(Error::Invalid {
                    code: "kvm.type_mismatch",
                    message: format!(
                        "INSERT INTO {} needs an object, got {}",
                        model.name,
                        crate::values::kql(&other)
                    ),
                    span: (!e.span.is_empty()).then_some(e.span),
                    help: None,
                })
            }
        };
        let row = record::for_insert(model, input, &cx.env(None))
            .map_err(|err| in_batch(at_value(err, e), i, n))?;
        cx.mtx.insert(model, &row, expire_at).map_err(|err| in_batch(at_value(err, e), i, n))?;
        refs::check_parents(cx, model, None, &row).map_err(|e| in_batch(e, i, n))?;
        written.push(row);
    }
    written.output(cx, model, ret, "inserted")
}

pub fn update(
    cx: &Cx,
    model: &str,
    source: &Node,
    assignments: &[Set],
    ret: &Option<Vec<(String, Scalar)>>,
    ttl: Ttl,
) -> Result<Output> {
    let model = cx.model(model)?;
    if let Some(count) = patch_counters(cx, model, source, assignments, ret, &ttl)? {
        return Ok(Output::Affected { verb: "updated", count });
    }
    // Streamed: the source reads the snapshot (never this statement's own writes), so a
    // record is updated once even when the access path is an index on a field it changes;
    // only the writes — and the rows RETURNING asks for — are held.
    let mut written = Written::new(ret);
    for old in read::rows(cx, source)? {
        let old = stored(model, old?);
        let new = record::for_update(model, &old, assignments, &cx.env(None)).map_err(|err| {
            let at = match &err {
                Error::Validation { field, .. } => assignments
                    .iter()
                    .find(|a| a.target.segments[0].name == *field)
                    .map(|a| a.value.span),
                _ => None,
            };
            match at {
                Some(span) => err.at(span),
                None => err,
            }
        })?;
        cx.mtx.update(model, &old, &new, ttl)?;
        refs::check_parents(cx, model, Some(&old), &new)?;
        written.push(new);
    }
    written.output(cx, model, ret, "updated")
}

/// `UPDATE m SET n += 1 WHERE id = …` as a record patch applied at commit against the
/// record's latest state (`Mutation::Patch`): concurrent increments of one record share
/// group commits and never conflict. Taken only where the result is the one a
/// read-modify-write gives: one record by primary key; only `+=`, `-=`, `= MIN(f, v)` and
/// `= MAX(f, v)` of INT and U64 fields, each assigned once, that are not the key, IMMUTABLE or computed, and that no
/// index, CHECK, ON UPDATE or computed field of the model reads; operands that do not read
/// the record; no `RETURNING`, no TTL change; a statement committed on its own (not in an
/// explicit transaction, whose later statements could not read the patch back); a record
/// written by field id. A patch the record refuses at commit (the counter would leave its
/// range) makes the statement run again as a read-modify-write, which reports the error a
/// read-modify-write reports. A record deleted between the snapshot and the commit is not
/// recreated: the update was first, the delete second. `None`: not taken.
fn patch_counters(
    cx: &Cx,
    model: &kvm_planner::Model,
    source: &Node,
    assignments: &[Set],
    ret: &Option<Vec<(String, Scalar)>>,
    ttl: &Ttl,
) -> Result<Option<u64>> {
    use kvm_lang::ast::TypeName;
    use kvm_storage::{FieldPatch, PatchOp};
    if !cx.mtx.patches_allowed() || ret.is_some() || !matches!(ttl, Ttl::Keep) {
        return Ok(None);
    }
    let reads_fields = |f: &kvm_planner::Field| {
        f.check.is_some() || f.on_update.is_some() || f.stored_expr.is_some()
    };
    if model.fields.iter().any(reads_fields) {
        return Ok(None);
    }
    let mut ops = Vec::with_capacity(assignments.len() + 1);
    for (i, a) in assignments.iter().enumerate() {
        let f = &model.fields[a.slot];
        let indexed = model.indexes.iter().any(|ix| ix.fields.contains(&f.name));
        let again = assignments[..i].iter().any(|b| b.slot == a.slot);
        if a.target.segments.len() != 1
            || f.primary_key
            || f.immutable
            || f.implicit
            || f.virtual_expr.is_some()
            || indexed
            || again
            // A record may lack the field and read its fill: the storage cannot know it.
            || model.slots.fill_of(a.slot).is_some()
        {
            return Ok(None);
        }
        // An operand that reads the record is an error without one: not a patch.
        let Ok(v) = cx.env(None).eval(&a.value) else { return Ok(None) };
        let n = match v {
            Value::Int(i) => i128::from(i),
            Value::Counter(c) => i128::from(c),
            _ => return Ok(None),
        };
        // (MIN/MAX take the operand in the field's stored form; one that has none is left
        // to the read-modify-write, which says why.)
        let op = match (a.op, &f.ty.name) {
            (AssignOp::Add, TypeName::Int) => Ok(PatchOp::AddInt(n)),
            (AssignOp::Sub, TypeName::Int) => Ok(PatchOp::AddInt(-n)),
            (AssignOp::Add, TypeName::U64) => Ok(PatchOp::AddCounter(n)),
            (AssignOp::Sub, TypeName::U64) => Ok(PatchOp::AddCounter(-n)),
            (AssignOp::Min, TypeName::Int) => i64::try_from(n).map(PatchOp::MinInt),
            (AssignOp::Max, TypeName::Int) => i64::try_from(n).map(PatchOp::MaxInt),
            (AssignOp::Min, TypeName::U64) => u64::try_from(n).map(PatchOp::MinCounter),
            (AssignOp::Max, TypeName::U64) => u64::try_from(n).map(PatchOp::MaxCounter),
            _ => return Ok(None),
        };
        let Ok(op) = op else { return Ok(None) };
        ops.push(FieldPatch { field: model.slots.ids[a.slot], op });
    }
    let Some(pk) = read::single_pk(cx, source)? else { return Ok(None) };
    match cx.mtx.peek(model, &pk)? {
        None => return Ok(Some(0)),
        Some(b) if !Value::is_record(&b) => return Ok(None),
        Some(_) => {}
    }
    if model.timestamps {
        if let Some(slot) = model.slots.slot(kvm_planner::catalog::UPDATED_AT) {
            let now = Value::Timestamp(cx.ids.now_micros()).encode();
            ops.push(FieldPatch { field: model.slots.ids[slot], op: PatchOp::Set(now) });
        }
    }
    cx.mtx.patch(model, &pk, ops);
    Ok(Some(1))
}

/// What a write statement reports: the rows it wrote when `RETURNING` asks for them, else
/// only their count.
struct Written {
    rows: Option<Vec<Row>>,
    count: u64,
}

impl Written {
    fn new(ret: &Option<Vec<(String, Scalar)>>) -> Self {
        Written { rows: ret.as_ref().map(|_| Vec::new()), count: 0 }
    }

    fn push(&mut self, row: Row) {
        self.count += 1;
        if let Some(rows) = &mut self.rows {
            rows.push(row);
        }
    }

    fn output(
        self,
        cx: &Cx,
        model: &kvm_planner::Model,
        ret: &Option<Vec<(String, Scalar)>>,
        verb: &'static str,
    ) -> Result<Output> {
        match self.rows {
            Some(rows) => returning(cx, model, ret, &rows, verb),
            None => Ok(Output::Affected { verb, count: self.count }),
        }
    }
}

pub fn delete(
    cx: &Cx,
    model: &str,
    source: &Node,
    ret: &Option<Vec<(String, Scalar)>>,
) -> Result<Output> {
    let model = cx.model(model)?;
    let mut gone = Written::new(ret);
    let mut deletes = refs::Deletes::default();
    for old in read::rows(cx, source)? {
        let old = stored(model, old?);
        // A record a cascade of this statement already deleted counts once.
        if deletes.delete(cx, model, &old)? {
            gone.push(old);
        }
    }
    deletes.finish(cx)?;
    gone.output(cx, model, ret, "deleted")
}

/// How an `UPSERT` finds and updates a record: by the primary key (`index: None`) or a
/// unique index whose fields are `on`; with `DO UPDATE SET` assignments, or (`None`) with
/// the given value's fields.
pub struct UpsertBy<'p> {
    pub on: &'p [String],
    pub index: Option<&'p str>,
    pub update: Option<&'p [kvm_planner::Set]>,
}

/// `UPSERT`: each record given (an object, or an array of them: one commit, in order) is
/// inserted, or updates the record its `ON` key finds.
pub fn upsert(
    cx: &Cx,
    value: &Scalar,
    model: &str,
    how: &UpsertBy,
    ret: &Option<Vec<(String, Scalar)>>,
    ttl: Ttl,
) -> Result<Output> {
    let model = cx.model(model)?;
    let index = match how.index {
        None => None,
        Some(name) => Some(
            model
                .index(name)
                .ok_or_else(|| Error::Internal(format!("plan names missing index {name}")))?,
        ),
    };
    let not_object = |other: &Value| Error::Invalid {
        code: "kvm.type_mismatch",
        message: format!(
            "UPSERT INTO {} needs an object or an array of objects, got {}",
            model.name,
            crate::values::kql(other)
        ),
        span: (!value.span.is_empty()).then_some(value.span),
        help: None,
    };
    let inputs = match cx.env(None).eval(value)? {
        Value::Object(m) => vec![m],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::Object(m) => Ok(m),
                other => Err(not_object(&other)),
            })
            .collect::<Result<Vec<_>>>()?,
        other => return Err(not_object(&other)),
    };
    let mut rows = Vec::with_capacity(inputs.len());
    let (mut inserted, mut updated) = (0, 0);
    for input in inputs {
        cx.stop.check()?;
        let (row, was_insert) = upsert_one(cx, value, model, index, how, input, ttl)?;
        if was_insert {
            inserted += 1;
        } else {
            updated += 1;
        }
        rows.push(row);
    }
    let verb = match (inserted, updated) {
        (_, 0) => "inserted",
        (0, _) => "updated",
        _ => "upserted",
    };
    returning(cx, model, ret, &rows, verb)
}

/// One record of an `UPSERT`: the row written, and whether it was inserted.
fn upsert_one(
    cx: &Cx,
    value: &Scalar,
    model: &kvm_planner::Model,
    index: Option<&kvm_planner::Index>,
    how: &UpsertBy,
    input: std::collections::BTreeMap<String, Value>,
    ttl: Ttl,
) -> Result<(Row, bool)> {
    let on = how.on;
    let pk_name = model.pk().name.clone();
    for f in on {
        if input.get(f).is_none_or(|v| matches!(v, Value::Null)) {
            return Err(Error::validation(
                &model.name,
                f,
                Value::Null,
                "is an UPSERT ON field and must be given",
            ));
        }
    }
    // The lookup key: just the ON fields, coerced as they are stored (the full record is
    // only built, defaults and NOT NULL included, when it is inserted).
    let mut key_row = Row::new(&model.slots);
    for f in on {
        let (Some(field), Some(v)) = (model.field(f), input.get(f)) else { continue };
        key_row.insert(f.clone(), record::coerce(&model.name, field, v.clone())?);
    }
    let existing = match index {
        None => {
            let pk = pk_part(model, key_row.get(&pk_name).unwrap_or(&Value::Null))?;
            cx.mtx.get(model, &pk)?
        }
        Some(ix) => cx.mtx.unique_holder(model, ix, &key_row)?,
    };
    let Some(old) = existing else {
        let expire_at = match ttl {
            Ttl::At(t) => Some(t),
            Ttl::Keep | Ttl::Clear => None,
        };
        let candidate =
            record::for_insert(model, input, &cx.env(None)).map_err(|e| at_value(e, value))?;
        cx.mtx.insert(model, &candidate, expire_at)?;
        refs::check_parents(cx, model, None, &candidate)?;
        return Ok((candidate, true));
    };
    let new = match how.update {
        // `DO UPDATE SET`: the assignments, evaluated against the record found.
        Some(set) => record::for_update(model, &old, set, &cx.env(None))?,
        None => {
            if let Some(given) = input.get(&pk_name) {
                let given = record::coerce(&model.name, model.pk(), given.clone())?;
                let held = old.get(&pk_name).cloned().unwrap_or(Value::Null);
                if given != held {
                    return Err(Error::validation(
                        &model.name,
                        &pk_name,
                        given,
                        format!(
                            "UPSERT ON ({}) matched the record with {pk_name} {held}; a primary key cannot change",
                            on.join(", ")
                        ),
                    ));
                }
            }
            let mut values = Vec::new();
            for (name, v) in input {
                let Some(f) = model.field(&name) else { continue };
                let coerced = record::coerce(&model.name, f, v.clone())?;
                if old.get(&name).unwrap_or(&Value::Null) == &coerced {
                    continue;
                }
                values.push((name, AssignOp::Set, v));
            }
            record::apply(model, &old, &values, &cx.env(None)).map_err(|e| at_value(e, value))?
        }
    };
    cx.mtx.update(model, &old, &new, ttl)?;
    refs::check_parents(cx, model, Some(&old), &new)?;
    Ok((new, false))
}
