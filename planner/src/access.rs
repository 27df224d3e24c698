//! Access-path choice: from the `AND`-ed conditions of a `WHERE` clause (and the `ORDER BY`),
//! pick the cheapest way to reach the records, in this order of preference:
//!
//! 1. primary-key get (`pk = v`) or multi-get (`pk IN (…)`);
//! 2. unique-index get (equality on every field of a unique index);
//! 3. index scan: equality on the longest prefix of an index's fields, plus a range on the
//!    next field (an index that also yields the `ORDER BY` order wins ties);
//! 4. primary-key range;
//! 5. an index whose order is the `ORDER BY` (over NOT NULL fields only, since null values
//!    have no index entry);
//! 6. full scan with filter, with the reason no index applied.
//!
//! The `WHERE` clause is always kept as a filter above the access path: index keys may hold
//! a truncated value (long strings), and re-checking is cheap next to reading the record.

use kvm_lang::ast::{BinaryOp, InRhs, OrderBy};
use kvm_lang::{Expr, ExprKind};

use crate::catalog::{Index, Model};
use crate::plan::{Access, Bound, Range};

/// A condition usable by an access path: `field op constant`.
#[derive(Debug, Clone)]
enum Cond {
    Eq(String, Expr),
    In(String, Vec<Expr>),
    Lower(String, Bound),
    Upper(String, Bound),
}

/// True when `e` is known before any record is read (literals, parameters, and arithmetic
/// or calls over them).
fn constant(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Literal(_) | ExprKind::Param(_) => true,
        ExprKind::Unary { expr, .. } => constant(expr),
        ExprKind::Array(items) => items.iter().all(constant),
        _ => false,
    }
}

fn field_of(e: &Expr) -> Option<String> {
    let p = e.as_path()?;
    (p.segments.len() == 1).then(|| p.segments[0].name.clone())
}

/// Splits `a AND b AND …` into its conjuncts.
pub fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
            let mut v = conjuncts(lhs);
            v.extend(conjuncts(rhs));
            v
        }
        _ => vec![e],
    }
}

fn conds(filter: Option<&Expr>) -> Vec<Cond> {
    let mut out = Vec::new();
    let Some(filter) = filter else { return out };
    for c in conjuncts(filter) {
        match &c.kind {
            ExprKind::Binary { op, lhs, rhs } => {
                let (field, value, op) = match (field_of(lhs), field_of(rhs)) {
                    (Some(f), _) if constant(rhs) => (f, (**rhs).clone(), *op),
                    (_, Some(f)) if constant(lhs) => (f, (**lhs).clone(), flip(*op)),
                    _ => continue,
                };
                let b = |inclusive| Bound { value: value.clone(), inclusive };
                match op {
                    BinaryOp::Eq => out.push(Cond::Eq(field, value)),
                    BinaryOp::Gt => out.push(Cond::Lower(field, b(false))),
                    BinaryOp::GtEq => out.push(Cond::Lower(field, b(true))),
                    BinaryOp::Lt => out.push(Cond::Upper(field, b(false))),
                    BinaryOp::LtEq => out.push(Cond::Upper(field, b(true))),
                    _ => {}
                }
            }
            ExprKind::In { expr, rhs: InRhs::List(list), negated: false } => {
                if let Some(f) = field_of(expr) {
                    if list.iter().all(constant) {
                        out.push(Cond::In(f, list.clone()));
                    }
                }
            }
            ExprKind::Between { expr, low, high, negated: false } => {
                if let Some(f) = field_of(expr) {
                    if constant(low) && constant(high) {
                        out.push(Cond::Lower(
                            f.clone(),
                            Bound { value: (**low).clone(), inclusive: true },
                        ));
                        out.push(Cond::Upper(
                            f,
                            Bound { value: (**high).clone(), inclusive: true },
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
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

fn eq_on<'a>(conds: &'a [Cond], field: &str) -> Option<&'a Expr> {
    conds.iter().find_map(|c| match c {
        Cond::Eq(f, v) if f == field => Some(v),
        _ => None,
    })
}

fn range_on(conds: &[Cond], field: &str) -> Range {
    let mut r = Range::default();
    for c in conds {
        match c {
            Cond::Lower(f, b) if f == field && r.lower.is_none() => r.lower = Some(b.clone()),
            Cond::Upper(f, b) if f == field && r.upper.is_none() => r.upper = Some(b.clone()),
            _ => {}
        }
    }
    r
}

/// The order an access path yields, as (field, descending) keys, for sort elimination.
fn order_matches(provided: &[String], order_by: &[OrderBy]) -> Option<bool> {
    let first = order_by.first()?;
    let desc = first.descending;
    if order_by.len() > provided.len() {
        return None;
    }
    for (o, p) in order_by.iter().zip(provided) {
        if o.descending != desc || field_of(&o.expr).as_deref() != Some(p.as_str()) {
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
}

/// Chooses the access path for `model` under `filter` and `order_by`.
pub fn choose(model: &Model, filter: Option<&Expr>, order_by: &[OrderBy]) -> Chosen {
    let conds = conds(filter);
    let n_conjuncts = filter.map(|f| conjuncts(f).len()).unwrap_or(0);
    let pk = model.pk().name.clone();
    let pk_order = order_matches(std::slice::from_ref(&pk), order_by);

    // 1. Primary-key get / multi-get.
    if let Some(v) = eq_on(&conds, &pk) {
        return Chosen {
            access: Access::PkGet { keys: vec![v.clone()] },
            ordered: true,
            exact: n_conjuncts == 1,
        };
    }
    if let Some(list) = conds.iter().find_map(|c| match c {
        Cond::In(f, l) if *f == pk => Some(l.clone()),
        _ => None,
    }) {
        return Chosen {
            access: Access::PkGet { keys: list },
            ordered: order_by.is_empty(),
            exact: false,
        };
    }

    let ready: Vec<&Index> = model.indexes.iter().filter(|i| i.ready).collect();
    // 2. Unique-index get.
    for ix in &ready {
        if ix.unique {
            let vals: Option<Vec<Expr>> =
                ix.fields.iter().map(|f| eq_on(&conds, f).cloned()).collect();
            if let Some(values) = vals {
                return Chosen {
                    access: Access::IndexGet { index: ix.name.clone(), values },
                    ordered: true,
                    exact: n_conjuncts == ix.fields.len(),
                };
            }
        }
    }
    // 3. Index scan: longest equality prefix, then a range on the next field.
    let mut best: Option<(usize, Chosen)> = None;
    for ix in &ready {
        let mut eq = Vec::new();
        for f in &ix.fields {
            match eq_on(&conds, f) {
                Some(v) => eq.push(v.clone()),
                None => break,
            }
        }
        let range = ix.fields.get(eq.len()).map(|f| range_on(&conds, f)).unwrap_or_default();
        let score = eq.len() * 2 + usize::from(!range.is_open());
        if score == 0 {
            continue;
        }
        let mut provided: Vec<String> = ix.fields[eq.len()..].to_vec();
        provided.push(pk.clone());
        let order = order_matches(&provided, order_by);
        let used =
            eq.len() + usize::from(range.lower.is_some()) + usize::from(range.upper.is_some());
        let score = score * 2 + usize::from(order.is_some() || order_by.is_empty());
        let chosen = Chosen {
            access: Access::IndexScan {
                index: ix.name.clone(),
                eq,
                range,
                reverse: order == Some(true),
            },
            ordered: order.is_some() || order_by.is_empty(),
            exact: used == n_conjuncts,
        };
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, chosen));
        }
    }
    if let Some((_, chosen)) = best {
        return chosen;
    }
    // 4. Primary-key range.
    let range = range_on(&conds, &pk);
    if !range.is_open() {
        return Chosen {
            access: Access::PkRange { range, reverse: pk_order == Some(true) },
            ordered: pk_order.is_some() || order_by.is_empty(),
            exact: false,
        };
    }
    // 5. Index order for ORDER BY.
    if pk_order.is_none() && !order_by.is_empty() {
        for ix in &ready {
            let all_not_null =
                ix.fields.iter().all(|f| model.field(f).is_some_and(|f| !f.nullable()));
            let mut provided = ix.fields.clone();
            provided.push(pk.clone());
            if let (true, Some(desc)) = (all_not_null, order_matches(&provided, order_by)) {
                return Chosen {
                    access: Access::IndexScan {
                        index: ix.name.clone(),
                        eq: vec![],
                        range: Range::default(),
                        reverse: desc,
                    },
                    ordered: true,
                    exact: n_conjuncts == 0,
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
                .map(|c| match c {
                    Cond::Eq(f, _) | Cond::In(f, _) | Cond::Lower(f, _) | Cond::Upper(f, _) => {
                        f.clone()
                    }
                })
                .collect();
            fields.dedup();
            if fields.is_empty() {
                "no condition of the form `field op constant` to use an index for".to_string()
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
    }
}
