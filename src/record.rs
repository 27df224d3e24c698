//! Records against their model: coercion of each value to its field's type, the string
//! modifiers (LOWERCASE, UPPERCASE, TRIM), defaults, generated ULID keys, timestamps,
//! ON UPDATE, IMMUTABLE, NOT NULL, CHECK, and virtual fields computed on read.
//!
//! Coercion rules (also in `docs/kql.md`): an INT accepts integers and integral floats; a
//! FLOAT accepts floats and integers; a U64 accepts non-negative integers; a TIMESTAMP
//! accepts timestamps and RFC 3339 strings; a DATE accepts `'YYYY-MM-DD'` strings, DATE
//! literals and timestamps (their UTC date); a ULID or UUID accepts a string in its
//! canonical form (ULIDs upper-cased, UUIDs lower-cased); an ENUM accepts one of its
//! strings; `ARRAY<T>` coerces each element; nothing else converts (no number ⇄ string).

use kvm_lang::ast::{AssignOp, Assignment, FieldType, TypeName};
use kvm_planner::{Field, Model};
use kvm_storage::Value;

use crate::error::{Error, Result};
use crate::eval::{Env, Row};
use crate::values::{compare, format_timestamp, parse_date, parse_timestamp};

fn type_name(t: &FieldType) -> String {
    t.to_string()
}

/// Coerces `v` to field `f`'s type and applies its string modifiers.
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
    let v = coerce_type(model, &f.name, &f.ty, v)?;
    Ok(match v {
        Value::String(s) if f.lowercase || f.uppercase || f.trim => Value::String(f.normalize(s)),
        v => v,
    })
}

/// Coerces `v` to type `ty` (see the module docs for the rules).
pub fn coerce_type(model: &str, field: &str, ty: &FieldType, v: Value) -> Result<Value> {
    let bad = |v: &Value| Error::validation(model, field, v, format!("expected {}", type_name(ty)));
    if matches!(v, Value::Null) {
        return Ok(Value::Null);
    }
    Ok(match (&ty.name, v) {
        (TypeName::String, v @ Value::String(_)) => v,
        (TypeName::Int, v @ Value::Int(_)) => v,
        (TypeName::Int, Value::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
            Value::Int(f as i64)
        }
        (TypeName::Int, Value::Counter(c)) if i64::try_from(c).is_ok() => Value::Int(c as i64),
        // One zero (−0.0 is stored as 0.0, so keys, indexes and comparisons agree) and no
        // NaN or infinities: they have no place in KVM's order and no JSON form.
        (TypeName::Float, Value::Float(f)) if !f.is_finite() => {
            return Err(Error::validation(
                model,
                field,
                Value::Float(f),
                "expected a finite number (NaN and infinities are not stored)",
            ))
        }
        (TypeName::Float, Value::Float(f)) => Value::Float(f + 0.0),
        (TypeName::Float, Value::Int(i)) => Value::Float(i as f64),
        (TypeName::Float, Value::Counter(c)) => Value::Float(c as f64),
        (TypeName::Bool, v @ Value::Bool(_)) => v,
        (TypeName::U64, v @ Value::Counter(_)) => v,
        (TypeName::U64, Value::Int(i)) if i >= 0 => Value::Counter(i as u64),
        (TypeName::Timestamp, v @ Value::Timestamp(_)) => v,
        (TypeName::Timestamp, Value::String(s)) => match parse_timestamp(&s) {
            Some(t) => Value::Timestamp(t),
            None => return Err(bad(&Value::String(s))),
        },
        (TypeName::Date, Value::String(s)) => match parse_date(&s) {
            Some(_) => Value::String(s),
            None => return Err(bad(&Value::String(s))),
        },
        (TypeName::Date, Value::Timestamp(t)) => {
            Value::String(format_timestamp(t)[..10].to_string())
        }
        (TypeName::Bytes, v @ Value::Bytes(_)) => v,
        // 26 base-32 characters hold 130 bits; a ULID has 128, so its first character is
        // at most `7` (the `ulid` crate wraps larger ones onto other ULIDs).
        (TypeName::Ulid, Value::String(s)) => match ulid::Ulid::from_string(&s) {
            Ok(u) if s.as_bytes().first().is_some_and(|c| (b'0'..=b'7').contains(c)) => {
                Value::String(u.to_string())
            }
            _ => {
                return Err(Error::validation(
                    model,
                    field,
                    Value::String(s),
                    "expected a ULID (26 Crockford base-32 characters, the first 0-7)",
                ))
            }
        },
        (TypeName::Uuid, Value::String(s)) => match uuid::Uuid::parse_str(&s) {
            Ok(u) => Value::String(u.hyphenated().to_string()),
            Err(_) => {
                return Err(Error::validation(model, field, Value::String(s), "expected a UUID"))
            }
        },
        (TypeName::Object, v @ Value::Object(_)) => v,
        (TypeName::Enum(variants), Value::String(s)) => {
            if variants.iter().any(|x| x.value == s) {
                Value::String(s)
            } else {
                let allowed: Vec<String> =
                    variants.iter().map(|x| format!("'{}'", x.value)).collect();
                return Err(Error::validation(
                    model,
                    field,
                    Value::String(s),
                    format!("expected one of {}", allowed.join(", ")),
                ));
            }
        }
        (TypeName::Array(elem), Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if matches!(item, Value::Null) && !elem.optional {
                    return Err(Error::validation(
                        model,
                        field,
                        Value::Null,
                        "array elements may not be null",
                    ));
                }
                out.push(coerce_type(model, field, elem, item)?);
            }
            Value::Array(out)
        }
        (_, v) => return Err(bad(&v)),
    })
}

/// Checks NOT NULL and CHECK on a complete stored record.
fn constraints(model: &Model, row: &Row, env: &Env) -> Result<()> {
    let env = Env { params: env.params, ids: env.ids, row: Some(row) };
    for f in model.fields.iter().filter(|f| f.virtual_expr.is_none()) {
        let v = row.get(&f.name).unwrap_or(&Value::Null);
        if matches!(v, Value::Null) && !f.nullable() {
            return Err(Error::validation(&model.name, &f.name, v, "may not be null"));
        }
        if let Some(check) = &f.check {
            if matches!(env.eval(check)?, Value::Bool(false)) {
                return Err(Error::validation(
                    &model.name,
                    &f.name,
                    v,
                    format!("violates CHECK ({check})"),
                ));
            }
        }
    }
    Ok(())
}

/// Computes STORED fields, drops nulls (absent means null), checks constraints.
fn finish(model: &Model, mut row: Row, env: &Env) -> Result<Row> {
    for f in &model.fields {
        if let Some(e) = &f.stored_expr {
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
    for f in &model.fields {
        if f.virtual_expr.is_some() || f.stored_expr.is_some() {
            continue;
        }
        let v = match input.remove(&f.name) {
            Some(v) => v,
            None if f.implicit => now.clone(),
            None => match &f.default {
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
    for f in model.fields.iter().filter(|f| added.contains(&f.name)) {
        if f.virtual_expr.is_some() || f.stored_expr.is_some() || row.contains_key(&f.name) {
            continue;
        }
        if let Some(d) = &f.default {
            let v = env.eval(d)?;
            row.insert(f.name.clone(), coerce(&model.name, f, v)?);
        }
    }
    finish(model, row, env)
}

/// Applies `SET` assignments (and ON UPDATE, `updated_at`) to a stored record.
pub fn for_update(model: &Model, old: &Row, assignments: &[Assignment], env: &Env) -> Result<Row> {
    let old_env = Env { params: env.params, ids: env.ids, row: Some(old) };
    let mut values = Vec::with_capacity(assignments.len());
    for a in assignments {
        let name = &a.target.segments[0].name;
        if model.field(name).is_none() {
            return Err(Error::validation(&model.name, name, "", "no such field"));
        }
        if a.target.segments.len() > 1 {
            return Err(Error::unsupported("assigning to a nested path", a.target.span));
        }
        values.push((name.clone(), a.op, old_env.eval(&a.value)?));
    }
    apply(model, old, &values, env)
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
    for f in &model.fields {
        if assigned.contains(&f.name) {
            continue;
        }
        if let Some(e) = &f.on_update {
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
            let why = if r < lo && f.ty.name == TypeName::U64 {
                format!("U64 counter would go below zero ({current} {sign} {delta})")
            } else {
                format!("{} counter would overflow ({current} {sign} {delta})", type_name(&f.ty))
            };
            return Err(Error::validation(&model.name, &f.name, current, why));
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
            format!("cannot apply {sign} to {current}"),
        )),
        Some(v) => Ok(v),
    }
}

/// A stored record with its virtual fields computed.
pub fn materialize(model: &Model, mut row: Row, env: &Env) -> Result<Row> {
    for f in &model.fields {
        if let Some(e) = &f.virtual_expr {
            let v = Env { params: env.params, ids: env.ids, row: Some(&row) }.eval(e)?;
            let v = coerce(&model.name, f, v).unwrap_or(Value::Null);
            row.insert(f.name.clone(), v);
        }
    }
    Ok(row)
}
