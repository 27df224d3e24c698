//! Records against their model: coercion of each value to its field's type, the string
//! modifiers (LOWERCASE, UPPERCASE, TRIM), defaults, generated ULID keys, timestamps,
//! ON UPDATE, IMMUTABLE, NOT NULL, CHECK, and virtual fields computed on read.
//!
//! Coercion to a field's type is its stored form, defined once in `kvm_planner::stored`
//! (the rules are listed there and in `docs/kql.md`), shared with the literals and
//! parameters compared with the field.

use kvm_lang::ast::{AssignOp, FieldType, TypeName};
use kvm_planner::catalog::Lowered;
use kvm_planner::{Field, Model, Scalar, Set};
use kvm_storage::Value;

use crate::error::{Error, Result};
use crate::eval::{Env, Row};
use crate::values::{compare, kql};

fn type_name(t: &FieldType) -> String {
    t.to_string()
}

/// Coerces `v` to field `f`'s type and applies its string modifiers: its stored form
/// ([`kvm_planner::stored_form`], the one function literals and parameters compared with
/// the field go through too), or a validation error naming the model, field and value.
pub fn coerce(model: &str, f: &Field, v: Value) -> Result<Value> {
    // The record object adds a level: a field may nest one less than the codec can read.
    let depth = v.depth();
    if depth >= kvm_storage::value::MAX_DEPTH {
        return Err(Error::validation(
            model,
            &f.name,
            format!("a value nested {depth} levels deep"),
            format!("values may nest at most {} levels", kvm_storage::value::MAX_DEPTH - 1),
        ));
    }
    kvm_planner::stored_form(f, v)
        .map_err(|r| Error::validation(model, &f.name, r.value, r.message))
}

/// A field's expression as the plan IR holds it (an expression stored by an earlier
/// version that no longer lowers is an error when it is needed).
fn bound(x: &Option<Lowered>) -> Result<Option<&Scalar>> {
    match x {
        None => Ok(None),
        Some(Ok(e)) => Ok(Some(e)),
        Some(Err(e)) => Err(e.clone().into()),
    }
}

/// The fields of `model` with their lowered expressions.
fn fields(model: &Model) -> impl Iterator<Item = (&Field, &kvm_planner::FieldExprs)> {
    model.fields.iter().zip(model.exprs.iter())
}

/// Checks NOT NULL and CHECK on a complete stored record.
fn constraints(model: &Model, row: &Row, env: &Env) -> Result<()> {
    let env = Env { params: env.params, ids: env.ids, row: Some(row) };
    for (f, x) in fields(model).filter(|(f, _)| f.virtual_expr.is_none()) {
        let v = row.get(&f.name).unwrap_or(&Value::Null);
        if matches!(v, Value::Null) && !f.nullable() {
            return Err(Error::validation(&model.name, &f.name, v, "may not be null"));
        }
        if let (Some(check), Some(shown)) = (bound(&x.check)?, &f.check) {
            if matches!(env.eval(check)?, Value::Bool(false)) {
                return Err(Error::validation(
                    &model.name,
                    &f.name,
                    v,
                    format!("violates CHECK ({shown})"),
                ));
            }
        }
    }
    Ok(())
}

/// Computes STORED fields, drops nulls (absent means null), checks constraints.
fn finish(model: &Model, mut row: Row, env: &Env) -> Result<Row> {
    for (f, x) in fields(model) {
        if let Some(e) = bound(&x.stored_expr)? {
            let v = Env { params: env.params, ids: env.ids, row: Some(&row) }.eval(e)?;
            let v = coerce(&model.name, f, v)?;
            row.insert(f.name.clone(), v);
        }
    }
    constraints(model, &row, env)?;
    row.retain(|_, v| !matches!(v, Value::Null));
    Ok(row)
}

/// Builds the stored record for an `INSERT` of `input`.
pub fn for_insert(
    model: &Model,
    input: std::collections::BTreeMap<String, Value>,
    env: &Env,
) -> Result<Row> {
    for (name, v) in &input {
        match model.field(name) {
            None => return Err(Error::validation(&model.name, name, v, "no such field")),
            Some(f) if f.virtual_expr.is_some() || f.stored_expr.is_some() => {
                return Err(Error::validation(
                    &model.name,
                    name,
                    v,
                    "is computed and cannot be written",
                ))
            }
            Some(f) if f.implicit => {
                return Err(Error::validation(
                    &model.name,
                    name,
                    v,
                    "is maintained by WITH TIMESTAMPS",
                ))
            }
            Some(_) => {}
        }
    }
    let mut input = input;
    let mut row = Row::new(&model.slots);
    let now = Value::Timestamp(env.ids.now_micros());
    for (f, x) in fields(model) {
        if f.virtual_expr.is_some() || f.stored_expr.is_some() {
            continue;
        }
        let v = match input.remove(&f.name) {
            Some(v) => v,
            None if f.implicit => now.clone(),
            None => match bound(&x.default)? {
                Some(d) => env.eval(d)?,
                None if f.primary_key && f.ty.name == TypeName::Ulid => {
                    Value::String(env.ids.ulid())
                }
                None if f.primary_key && f.ty.name == TypeName::Uuid => {
                    Value::String(env.ids.uuid())
                }
                None => Value::Null,
            },
        };
        row.insert(f.name.clone(), coerce(&model.name, f, v)?);
    }
    finish(model, row, env)
}

/// Fills fields added by `ALTER MODEL … ADD FIELD` (those in `added`) into an existing
/// record: a DEFAULT is evaluated as an INSERT would; STORED fields are recomputed; the
/// record must then meet every constraint.
pub fn for_new_fields(model: &Model, mut row: Row, added: &[String], env: &Env) -> Result<Row> {
    for (f, x) in fields(model).filter(|(f, _)| added.contains(&f.name)) {
        if f.virtual_expr.is_some() || f.stored_expr.is_some() || row.contains_key(&f.name) {
            continue;
        }
        if let Some(d) = bound(&x.default)? {
            let v = env.eval(d)?;
            row.insert(f.name.clone(), coerce(&model.name, f, v)?);
        }
    }
    finish(model, row, env)
}

/// The fill of field `name`, just added to `model` by `ALTER MODEL` ([`kvm_planner::Slots::fill`]:
/// what the records that exist read, without being rewritten): its DEFAULT's value, when
/// that is a constant and no expression of the model — a CHECK, an ON UPDATE, a computed
/// field, the field's own CHECK — reads the field (those are evaluated per record, so the
/// records are rewritten instead). `None` when it cannot be a fill.
pub fn fill_for(model: &Model, name: &str, env: &Env) -> Result<Option<Value>> {
    let Some((f, x)) = fields(model).find(|(f, _)| f.name == name) else { return Ok(None) };
    if f.stored_expr.is_some() || f.virtual_expr.is_some() || f.check.is_some() {
        return Ok(None);
    }
    let Some(d) = bound(&x.default)? else { return Ok(None) };
    let indexes: Vec<String> = model.indexes.iter().map(|i| i.name.clone()).collect();
    if !d.is_constant() || model.field_used_by(name, &[], &indexes).is_some() {
        return Ok(None);
    }
    let v = coerce(&model.name, f, env.eval(d)?)?;
    Ok((!v.is_null()).then_some(v))
}

/// Applies `SET` assignments (and ON UPDATE, `updated_at`) to a stored record.
pub fn for_update(model: &Model, old: &Row, assignments: &[Set], env: &Env) -> Result<Row> {
    let old_env = Env { params: env.params, ids: env.ids, row: Some(old) };
    let mut values: Vec<(String, AssignOp, Value)> = Vec::with_capacity(assignments.len());
    for a in assignments {
        let name = &model.slots.names[a.slot];
        let v = old_env.eval(&a.value)?;
        if a.target.segments.len() == 1 {
            values.push((name.clone(), a.op, v));
            continue;
        }
        // `SET profile.city = v`: the field's object (as an earlier assignment of this
        // statement left it) with that member set, added to or removed (NULL).
        let base = match values.iter().rposition(|(n, op, _)| n == name && *op == AssignOp::Set) {
            Some(i) => values.remove(i).2,
            None => old.get(name).cloned().unwrap_or(Value::Null),
        };
        let whole = set_member(model, name, base, &a.target.segments[1..], a.op, v)?;
        values.push((name.clone(), AssignOp::Set, whole));
    }
    apply(model, old, &values, env)
}

/// `base` (an object, or null for an empty one) with the member at `path` set to `v` (for
/// `+=` / `-=`, added to or subtracted from; NULL removes the member). Intermediate objects
/// are created; a member that is not an object on the way is an error naming the path.
fn set_member(
    model: &Model,
    field: &str,
    base: Value,
    path: &[kvm_lang::ast::Ident],
    op: AssignOp,
    v: Value,
) -> Result<Value> {
    let shown = || {
        let mut p = field.to_string();
        for seg in path {
            p.push('.');
            p.push_str(&seg.name);
        }
        p
    };
    let mut map = match base {
        Value::Object(m) => m,
        Value::Null => Default::default(),
        other => {
            return Err(Error::validation(
                &model.name,
                field,
                &other,
                "is not an object: its members cannot be set",
            ))
        }
    };
    let (key, rest) = match path {
        [key, rest @ ..] => (&key.name, rest),
        [] => return Ok(v),
    };
    let current = map.remove(key).unwrap_or(Value::Null);
    let new = if rest.is_empty() {
        match op {
            AssignOp::Set => v,
            AssignOp::Add | AssignOp::Sub => {
                use kvm_lang::ast::BinaryOp;
                let bin = if op == AssignOp::Add { BinaryOp::Add } else { BinaryOp::Sub };
                let base = if matches!(current, Value::Null) { Value::Int(0) } else { current };
                crate::eval::arith(bin, &base, &v).ok_or_else(|| {
                    Error::validation(
                        &model.name,
                        &shown(),
                        &v,
                        format!("cannot be added to {}", crate::values::kql(&base)),
                    )
                })?
            }
            AssignOp::Min | AssignOp::Max => {
                let keep = match compare(&current, &v) {
                    Some(o) => (o == std::cmp::Ordering::Less) == (op == AssignOp::Min),
                    None => false,
                };
                if keep {
                    current
                } else {
                    v
                }
            }
        }
    } else {
        set_member(model, &shown(), current, rest, op, v)?
    };
    if !matches!(new, Value::Null) {
        map.insert(key.clone(), new);
    }
    Ok(Value::Object(map))
}

/// Applies evaluated assignments (field, operator, operand) to a stored record: the rules
/// of `UPDATE … SET` (also used by `UPSERT` when it updates).
pub fn apply(
    model: &Model,
    old: &Row,
    values: &[(String, AssignOp, Value)],
    env: &Env,
) -> Result<Row> {
    let old_env = Env { params: env.params, ids: env.ids, row: Some(old) };
    let mut row = old.clone();
    let mut assigned = Vec::new();
    for (name, op, value) in values {
        let Some(f) = model.field(name) else {
            return Err(Error::validation(&model.name, name, value, "no such field"));
        };
        let value = value.clone();
        if f.primary_key {
            return Err(Error::validation(
                &model.name,
                name,
                &value,
                "is the primary key and cannot be updated",
            ));
        }
        if f.immutable {
            return Err(Error::validation(&model.name, name, &value, "is IMMUTABLE"));
        }
        if f.virtual_expr.is_some() || f.stored_expr.is_some() || f.implicit {
            return Err(Error::validation(
                &model.name,
                name,
                &value,
                "is computed and cannot be written",
            ));
        }
        let current = old.get(name).cloned().unwrap_or(Value::Null);
        let new = match *op {
            AssignOp::Set => value,
            AssignOp::Add | AssignOp::Sub => counter(model, f, &current, &value, *op)?,
            AssignOp::Min | AssignOp::Max => {
                let keep_current = match compare(&current, &value) {
                    Some(o) => (o == std::cmp::Ordering::Less) == (*op == AssignOp::Min),
                    None => false,
                };
                if keep_current {
                    current
                } else {
                    value
                }
            }
        };
        row.insert(name.clone(), coerce(&model.name, f, new)?);
        assigned.push(name.clone());
    }
    for (f, x) in fields(model) {
        if assigned.contains(&f.name) {
            continue;
        }
        if let Some(e) = bound(&x.on_update)? {
            let v = old_env.eval(e)?;
            row.insert(f.name.clone(), coerce(&model.name, f, v)?);
        } else if f.implicit && f.name == kvm_planner::catalog::UPDATED_AT {
            row.insert(f.name.clone(), Value::Timestamp(env.ids.now_micros()));
        }
    }
    finish(model, row, env)
}

/// `f += v` / `f -= v` (the rule is in `docs/kql.md`): only on INT, FLOAT and U64 fields; a
/// null (absent) field counts as 0; INT stays within i64, a U64 within `0..=u64::MAX` —
/// going below zero or overflowing is a validation error naming the model, field and
/// values (never a wrap, never a silent clamp); FLOAT follows IEEE arithmetic.
fn counter(
    model: &Model,
    f: &Field,
    current: &Value,
    delta: &Value,
    op: AssignOp,
) -> Result<Value> {
    let sign = if op == AssignOp::Add { "+=" } else { "-=" };
    let is_num = |v: &Value| matches!(v, Value::Int(_) | Value::Float(_) | Value::Counter(_));
    if !matches!(f.ty.name, TypeName::Int | TypeName::Float | TypeName::U64) {
        return Err(Error::validation(
            &model.name,
            &f.name,
            delta,
            format!("{sign} needs a numeric field (INT, FLOAT or U64), not {}", type_name(&f.ty)),
        ));
    }
    if !is_num(delta) {
        return Err(Error::validation(
            &model.name,
            &f.name,
            delta,
            format!("{sign} needs a number"),
        ));
    }
    let current = match current {
        Value::Null => match f.ty.name {
            TypeName::Float => Value::Float(0.0),
            TypeName::U64 => Value::Counter(0),
            _ => Value::Int(0),
        },
        v => v.clone(),
    };
    let as_i128 = |v: &Value| match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::Counter(c) => Some(i128::from(*c)),
        _ => None,
    };
    if let (TypeName::Int | TypeName::U64, Some(x), Some(d)) =
        (&f.ty.name, as_i128(&current), as_i128(delta))
    {
        let r = if op == AssignOp::Add { x + d } else { x - d };
        let (lo, hi) = if f.ty.name == TypeName::U64 {
            (0, i128::from(u64::MAX))
        } else {
            (i128::from(i64::MIN), i128::from(i64::MAX))
        };
        if r < lo || r > hi {
            let (current, delta) = (kql(&current), kql(delta));
            let why = if r < lo && f.ty.name == TypeName::U64 {
                format!("U64 counter would go below zero ({current} {sign} {delta})")
            } else {
                format!("{} counter would overflow ({current} {sign} {delta})", type_name(&f.ty))
            };
            return Err(Error::validation(&model.name, &f.name, current.as_str(), why));
        }
        return Ok(if f.ty.name == TypeName::U64 {
            Value::Counter(r as u64)
        } else {
            Value::Int(r as i64)
        });
    }
    let bop = if op == AssignOp::Add {
        kvm_lang::ast::BinaryOp::Add
    } else {
        kvm_lang::ast::BinaryOp::Sub
    };
    match crate::eval::arith(bop, &current, delta) {
        Some(Value::Null) | None => Err(Error::validation(
            &model.name,
            &f.name,
            delta,
            format!("cannot apply {sign} to {}", kql(&current)),
        )),
        Some(v) => Ok(v),
    }
}

/// A stored record with its virtual fields computed.
pub fn materialize(model: &Model, mut row: Row, env: &Env) -> Result<Row> {
    for (f, x) in fields(model) {
        if let Some(e) = bound(&x.virtual_expr)? {
            let v = Env { params: env.params, ids: env.ids, row: Some(&row) }.eval(e)?;
            let v = coerce(&model.name, f, v).unwrap_or(Value::Null);
            row.insert(f.name.clone(), v);
        }
    }
    Ok(row)
}
