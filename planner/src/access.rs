//! Access-path choice: from the `AND`-ed conditions of a `WHERE` clause (and the `ORDER BY`),
//! pick the cheapest way to reach the records, in this order of preference:
//!
//! 1. primary-key get (`pk = v`) or multi-get (`pk IN (…)`);
//! 2. unique-index get (equality on every field of a unique index);
//! 3. index scan: equality on the longest prefix of an index's fields, plus a range on the
//!    next field (an index that also yields the `ORDER BY` order wins ties);
//! 4. primary-key range;
//! 5. an index whose order is the `ORDER BY`;
//! 6. full scan with filter, with the reason no index applied.
//!
//! A record with a null in any indexed field has no entry in that index, so an index is a
//! candidate (for filtering, `COUNT(*)` or ordering) only when every one of its fields is
//! `NOT NULL` in the model or is non-null in every row the `WHERE` clause keeps (a conjunct
//! compares it, tests it with `IN`/`BETWEEN`, or says `IS NOT NULL`).
//!
//! The `WHERE` clause is always kept as a filter above the access path: index keys may hold
//! a truncated value (long strings), and re-checking is cheap next to reading the record.
//! For the same reason an index over a string or bytes field never provides the `ORDER BY`
//! order of that field (nor of the fields after it): values sharing their first 96 bytes are
//! in hash order.

use kvm_lang::ast::{BinaryOp, Literal, TypeName};

use crate::ir::{Scalar, ScalarKind, SortKey};

use crate::catalog::{Index, Model};
use crate::plan::{Access, Bound, Range};

/// A condition usable by an access path: `field op constant`.
#[derive(Debug, Clone)]
enum Cond {
    Eq(String, Scalar),
    In(String, Vec<Scalar>),
    Lower(String, Bound),
    Upper(String, Bound),
    /// `field STARTS WITH value` on a string field.
    Prefix(String, Scalar),
}

/// A condition and the conjunct (by position) it came from: `BETWEEN` gives two conditions
/// from one conjunct.
#[derive(Debug, Clone)]
struct Src {
    cond: Cond,
    conjunct: usize,
}

fn field_of(model: &Model, e: &Scalar) -> Option<String> {
    e.as_field().map(|slot| model.slots.names[slot].clone())
}

fn conds(model: &Model, filter: Option<&Scalar>) -> Vec<Src> {
    let mut out = Vec::new();
    let Some(filter) = filter else { return out };
    for (i, c) in filter.conjuncts().into_iter().enumerate() {
        let mut push = |cond| out.push(Src { cond, conjunct: i });
        match &c.kind {
            ScalarKind::Binary { op, lhs, rhs } => {
                let (field, value, op) = match (field_of(model, lhs), field_of(model, rhs)) {
                    (Some(f), _) if rhs.is_constant() => (f, (**rhs).clone(), *op),
                    (_, Some(f)) if lhs.is_constant() => (f, (**lhs).clone(), flip(*op)),
                    _ => continue,
                };
                let b = |inclusive| Bound { value: value.clone(), inclusive };
                match op {
                    BinaryOp::Eq => push(Cond::Eq(field, value)),
                    BinaryOp::Gt => push(Cond::Lower(field, b(false))),
                    BinaryOp::GtEq => push(Cond::Lower(field, b(true))),
                    BinaryOp::Lt => push(Cond::Upper(field, b(false))),
                    BinaryOp::LtEq => push(Cond::Upper(field, b(true))),
                    BinaryOp::StartsWith
                        if field_of(model, lhs).is_some()
                            && model
                                .field(&field)
                                .is_some_and(|f| matches!(f.ty.name, TypeName::String)) =>
                    {
                        push(Cond::Prefix(field, value))
                    }
                    _ => {}
                }
            }
            // A bare boolean field (`WHERE active`) is `active = TRUE`; `NOT active` is
            // `active = FALSE`.
            ScalarKind::Field { .. }
            | ScalarKind::Unary { op: kvm_lang::ast::UnaryOp::Not, .. } => {
                let (field, want) = match &c.kind {
                    ScalarKind::Unary { expr, .. } => (field_of(model, expr), false),
                    _ => (field_of(model, c), true),
                };
                let Some(field) = field else { continue };
                if model.field(&field).is_some_and(|f| f.ty.name == TypeName::Bool) {
                    let v = Scalar::constant(kvm_storage::Value::Bool(want), Literal::Bool(want));
                    push(Cond::Eq(field, v));
                }
            }
            ScalarKind::InList { expr, items, negated: false } => {
                if let Some(f) = field_of(model, expr) {
                    if items.iter().all(Scalar::is_constant) {
                        push(Cond::In(f, items.clone()));
                    }
                }
            }
            ScalarKind::Between { expr, low, high, negated: false } => {
                if let Some(f) = field_of(model, expr) {
                    if low.is_constant() && high.is_constant() {
                        push(Cond::Lower(
                            f.clone(),
                            Bound { value: (**low).clone(), inclusive: true },
                        ));
                        push(Cond::Upper(f, Bound { value: (**high).clone(), inclusive: true }));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The fields every row kept by `filter` has non-null: those a top-level conjunct compares
/// (a comparison with null is null, so the row is dropped), tests with `IN` or `BETWEEN`,
/// or tests with `IS NOT NULL`.
pub(crate) fn non_null_fields(model: &Model, filter: Option<&Scalar>) -> Vec<String> {
    let mut out = Vec::new();
    let Some(filter) = filter else { return out };
    for c in filter.conjuncts() {
        match &c.kind {
            ScalarKind::Binary { op, lhs, rhs } if !matches!(op, BinaryOp::And | BinaryOp::Or) => {
                out.extend(field_of(model, lhs));
                out.extend(field_of(model, rhs));
            }
            ScalarKind::InList { expr, .. }
            | ScalarKind::InValue { expr, .. }
            | ScalarKind::Between { expr, .. }
            | ScalarKind::IsNull { expr, negated: true } => out.extend(field_of(model, expr)),
            // `WHERE active` / `WHERE NOT active`: a null is not true, so the row is dropped.
            ScalarKind::Field { .. } => out.extend(field_of(model, c)),
            ScalarKind::Unary { op: kvm_lang::ast::UnaryOp::Not, expr } => {
                out.extend(field_of(model, expr))
            }
            _ => {}
        }
    }
    out
}

/// Whether every record the filter can keep has an entry in `ix` (see the module docs).
pub(crate) fn covers(model: &Model, ix: &Index, non_null: &[String]) -> bool {
    ix.fields
        .iter()
        .all(|f| model.field(f).is_some_and(|fd| !fd.nullable()) || non_null.iter().any(|n| n == f))
}

/// Whether index keys of `field` sort as its values do: string and bytes values longer than
/// 96 bytes are truncated and hashed in keys (an enum is safe when its values are short).
pub(crate) fn key_ordered(model: &Model, field: &str) -> bool {
    let Some(f) = model.field(field) else { return false };
    match &f.ty.name {
        TypeName::String | TypeName::Bytes => false,
        TypeName::Enum(variants) => variants.iter().all(|v| v.value.len() <= 96),
        _ => true,
    }
}

/// The order an index scan yields after its equality prefix: its remaining fields up to the
/// first one whose keys may be truncated, then (when none is) the primary key.
fn provided_order(model: &Model, fields: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in fields {
        if !key_ordered(model, f) {
            return out;
        }
        out.push(f.clone());
    }
    out.push(model.pk().name.clone());
    out
}

/// Whether a bound (or equality) value reaches the index as itself: a literal of the field's
/// own type, so the engine's coercion can neither fail (an unusable bound is dropped, which
/// only a re-checking filter makes right) nor change it. Parameters are unknown here.
fn exact_value(model: &Model, field: &str, e: &Scalar) -> bool {
    let Some(f) = model.field(field) else { return false };
    let ScalarKind::Const { shown: lit, .. } = &e.kind else { return false };
    match (&f.ty.name, lit) {
        (TypeName::Int, Literal::Int(_)) => true,
        (TypeName::U64, Literal::Int(i)) => *i >= 0,
        (TypeName::Float, Literal::Float(_)) => true,
        (TypeName::Float, Literal::Int(i)) => i.unsigned_abs() <= 1 << 53,
        (TypeName::Bool, Literal::Bool(_)) => true,
        (TypeName::Timestamp, Literal::Timestamp(_)) => true,
        (TypeName::Date, Literal::Date(_)) => true,
        (TypeName::String, Literal::String(s)) => {
            !(f.trim && s.trim() != s
                || f.lowercase && s.to_lowercase() != *s
                || f.uppercase && s.to_uppercase() != *s)
        }
        (TypeName::Enum(variants), Literal::String(s)) => variants.iter().any(|v| v.value == *s),
        // A ULID already in its stored form (binding upper-cases literals; Crockford's
        // aliases such as `O` for `0` would be read as another text).
        (TypeName::Ulid, Literal::String(s)) => {
            s.len() == 26
                && s.as_bytes()[0] <= b'7'
                && s.bytes().all(|b| b"0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(&b))
        }
        _ => false,
    }
}

fn flip(op: BinaryOp) -> BinaryOp {
    match op {
        BinaryOp::Lt => BinaryOp::Gt,
        BinaryOp::LtEq => BinaryOp::GtEq,
        BinaryOp::Gt => BinaryOp::Lt,
        BinaryOp::GtEq => BinaryOp::LtEq,
        o => o,
    }
}

/// The first equality on `field`, as its condition index and value.
fn eq_on<'a>(conds: &'a [Src], field: &str) -> Option<(usize, &'a Scalar)> {
    conds.iter().enumerate().find_map(|(i, c)| match &c.cond {
        Cond::Eq(f, v) if f == field => Some((i, v)),
        _ => None,
    })
}

/// The first lower and upper bounds on `field`, with the indexes of their conditions.
fn range_on(conds: &[Src], field: &str) -> (Range, Vec<usize>) {
    let mut r = Range::default();
    let mut used = Vec::new();
    for (i, c) in conds.iter().enumerate() {
        match &c.cond {
            Cond::Lower(f, b) if f == field && r.lower.is_none() => {
                r.lower = Some(b.clone());
                used.push(i);
            }
            Cond::Upper(f, b) if f == field && r.upper.is_none() => {
                r.upper = Some(b.clone());
                used.push(i);
            }
            _ => {}
        }
    }
    if r.lower.is_none() && r.upper.is_none() {
        let prefix = conds.iter().enumerate().find_map(|(i, c)| match &c.cond {
            Cond::Prefix(f, v) if f == field => Some((i, v)),
            _ => None,
        });
        if let Some((i, v)) = prefix {
            r.prefix = Some(v.clone());
            used.push(i);
        }
    }
    (r, used)
}

/// Whether the conditions `used` (indexes into `conds`) are the whole `WHERE` clause: every
/// one of its `n` conjuncts has all its conditions used.
fn covered(conds: &[Src], used: &[usize], n: usize) -> bool {
    (0..n).all(|j| {
        let of_j: Vec<usize> = (0..conds.len()).filter(|i| conds[*i].conjunct == j).collect();
        !of_j.is_empty() && of_j.iter().all(|i| used.contains(i))
    })
}

/// [`covered`], each condition with an exact value (known at plan time).
fn exactly(model: &Model, conds: &[Src], used: &[usize], n: usize) -> bool {
    covered(conds, used, n)
        && used.iter().all(|i| match &conds[*i].cond {
            Cond::Eq(f, v) => exact_value(model, f, v),
            Cond::Lower(f, b) | Cond::Upper(f, b) => exact_value(model, f, &b.value),
            Cond::In(f, list) => list.iter().all(|v| exact_value(model, f, v)),
            // Exact unless longer than index keys hold strings whole.
            Cond::Prefix(f, v) => {
                exact_value(model, f, v)
                    && matches!(v.as_const(), Some(kvm_storage::Value::String(s)) if s.len() <= 96)
            }
        })
}

/// The order an access path yields, as (field, descending) keys, for sort elimination.
fn order_matches(model: &Model, provided: &[String], order_by: &[SortKey]) -> Option<bool> {
    let first = order_by.first()?;
    let desc = first.descending;
    if order_by.len() > provided.len() {
        return None;
    }
    for (o, p) in order_by.iter().zip(provided) {
        if o.descending != desc || field_of(model, &o.expr).as_deref() != Some(p.as_str()) {
            return None;
        }
    }
    Some(desc)
}

/// The chosen access path and whether it already yields the `ORDER BY` order.
pub struct Chosen {
    pub access: Access,
    pub ordered: bool,
    /// Whether the access path alone decides which records match (no other condition).
    pub exact: bool,
    /// Whether the access path applies every condition of the filter: it alone decides
    /// when, at run time, each bound value turns out to be held exactly.
    pub covered: bool,
}

/// Chooses the access path for `model` under `filter` and `order_by`.
pub fn choose(model: &Model, filter: Option<&Scalar>, order_by: &[SortKey]) -> Chosen {
    let conds = conds(model, filter);
    let n_conjuncts = filter.map(|f| f.conjuncts().len()).unwrap_or(0);
    let pk = model.pk().name.clone();
    let pk_order = order_matches(model, std::slice::from_ref(&pk), order_by);
    let non_null = non_null_fields(model, filter);

    // 1. Primary-key get / multi-get.
    if let Some((i, v)) = eq_on(&conds, &pk) {
        return Chosen {
            access: Access::PkGet { keys: vec![v.clone()] },
            ordered: true,
            exact: exactly(model, &conds, &[i], n_conjuncts),
            covered: covered(&conds, &[i], n_conjuncts),
        };
    }
    if let Some((i, list)) = conds.iter().enumerate().find_map(|(i, c)| match &c.cond {
        Cond::In(f, l) if *f == pk => Some((i, l.clone())),
        _ => None,
    }) {
        return Chosen {
            access: Access::PkGet { keys: list },
            ordered: order_by.is_empty(),
            exact: exactly(model, &conds, &[i], n_conjuncts),
            covered: covered(&conds, &[i], n_conjuncts),
        };
    }

    // Indexes that hold every record the filter can keep.
    let ready: Vec<&Index> =
        model.indexes.iter().filter(|i| i.ready && covers(model, i, &non_null)).collect();
    // 2. Unique-index get.
    for ix in &ready {
        if ix.unique {
            let found: Option<Vec<(usize, &Scalar)>> =
                ix.fields.iter().map(|f| eq_on(&conds, f)).collect();
            if let Some(found) = found {
                let used: Vec<usize> = found.iter().map(|(i, _)| *i).collect();
                return Chosen {
                    access: Access::IndexGet {
                        index: ix.name.clone(),
                        values: found.into_iter().map(|(_, v)| v.clone()).collect(),
                    },
                    ordered: true,
                    exact: exactly(model, &conds, &used, n_conjuncts),
                    covered: covered(&conds, &used, n_conjuncts),
                };
            }
        }
    }
    // 3. Index scan: longest equality prefix, then a range on the next field.
    let mut best: Option<(usize, Chosen)> = None;
    for ix in &ready {
        let mut eq = Vec::new();
        let mut used = Vec::new();
        for f in &ix.fields {
            match eq_on(&conds, f) {
                Some((i, v)) => {
                    eq.push(v.clone());
                    used.push(i);
                }
                None => break,
            }
        }
        let (range, range_used) =
            ix.fields.get(eq.len()).map(|f| range_on(&conds, f)).unwrap_or_default();
        used.extend(range_used);
        let score = eq.len() * 2 + usize::from(!range.is_open());
        if score == 0 {
            continue;
        }
        let provided = provided_order(model, &ix.fields[eq.len()..]);
        let order = order_matches(model, &provided, order_by);
        let score = score * 2 + usize::from(order.is_some() || order_by.is_empty());
        let chosen = Chosen {
            access: Access::IndexScan {
                index: ix.name.clone(),
                eq,
                range,
                reverse: order == Some(true),
                index_only: false,
            },
            ordered: order.is_some() || order_by.is_empty(),
            exact: exactly(model, &conds, &used, n_conjuncts),
            covered: covered(&conds, &used, n_conjuncts),
        };
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, chosen));
        }
    }
    if let Some((_, chosen)) = best {
        return chosen;
    }
    // 4. Primary-key range.
    let (range, used) = range_on(&conds, &pk);
    if !range.is_open() {
        return Chosen {
            access: Access::PkRange { range, reverse: pk_order == Some(true) },
            ordered: pk_order.is_some() || order_by.is_empty(),
            exact: false,
            covered: covered(&conds, &used, n_conjuncts),
        };
    }
    // 5. Index order for ORDER BY.
    if pk_order.is_none() && !order_by.is_empty() {
        for ix in &ready {
            let provided = provided_order(model, &ix.fields);
            if let Some(desc) = order_matches(model, &provided, order_by) {
                return Chosen {
                    access: Access::IndexScan {
                        index: ix.name.clone(),
                        eq: vec![],
                        range: Range::default(),
                        reverse: desc,
                        index_only: false,
                    },
                    ordered: true,
                    exact: n_conjuncts == 0,
                    covered: n_conjuncts == 0,
                };
            }
        }
    }
    // 6. Full scan.
    let reason = match filter {
        None => "no WHERE clause".to_string(),
        Some(_) => {
            let mut fields: Vec<String> = conds
                .iter()
                .map(|c| match &c.cond {
                    Cond::Eq(f, _)
                    | Cond::In(f, _)
                    | Cond::Lower(f, _)
                    | Cond::Upper(f, _)
                    | Cond::Prefix(f, _) => f.clone(),
                })
                .collect();
            fields.dedup();
            let skipped = model.indexes.iter().find(|i| {
                i.ready
                    && !covers(model, i, &non_null)
                    && fields.iter().any(|f| i.fields.first() == Some(f))
            });
            if fields.is_empty() {
                "no condition of the form `field op constant` to use an index for".to_string()
            } else if let Some(ix) = skipped {
                let nulls: Vec<String> = ix
                    .fields
                    .iter()
                    .filter(|f| {
                        model.field(f).is_some_and(|fd| fd.nullable())
                            && !non_null.iter().any(|n| n == *f)
                    })
                    .map(|f| format!("`{f}`"))
                    .collect();
                format!(
                    "index `{}` has no entry for records with a null {} (make the field NOT NULL \
                     or test it in WHERE)",
                    ix.name,
                    nulls.join(" or ")
                )
            } else {
                format!(
                    "no ready index starts with {}",
                    fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(" or ")
                )
            }
        }
    };
    Chosen {
        access: Access::FullScan { reverse: pk_order == Some(true), reason },
        ordered: pk_order.is_some() || order_by.is_empty(),
        exact: n_conjuncts == 0,
        covered: n_conjuncts == 0,
    }
}
