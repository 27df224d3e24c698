//! Semi-joins: a `WHERE` condition on a related model (`author.status = 'active'`,
//! `EXISTS comments (WHERE …)`) that an index of that model can answer becomes the access
//! path — the related records are found first, then the records pointing at them (or that
//! they point at) through a foreign-key index or by key, instead of scanning every record.
//!
//! Only top-level conjuncts that reject a missing relation are used (a comparison, `IN` or
//! `BETWEEN` on a related field, or `EXISTS`): a record without a related one never matches
//! them, so reaching records from the related side misses none. The whole `WHERE` clause
//! stays as a filter above, as for every access path.

use kvm_lang::ast::{BinaryOp, InRhs, Path};
use kvm_lang::{Expr, ExprKind};

use crate::access;
use crate::catalog::{Catalog, Model};
use crate::ir::Scope;
use crate::plan::{Access, Node};
use crate::relation::{Rel, RelPath};

/// Splits `a AND b AND …` into its conjuncts.
fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Binary { op: BinaryOp::And, lhs, rhs } => {
            let mut v = conjuncts(lhs);
            v.extend(conjuncts(rhs));
            v
        }
        _ => vec![e],
    }
}

/// Whether `e` is known before any record is read.
fn constant(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Literal(_) | ExprKind::Param(_) => true,
        ExprKind::Unary { expr, .. } => constant(expr),
        ExprKind::Array(items) => items.iter().all(constant),
        _ => false,
    }
}

/// `rel.field` in `e` when `e` is a two-segment path through a relation of `model`.
fn related_field<'e>(model: &Model, e: &'e Expr) -> Option<(&'e str, &'e str)> {
    let p = e.as_path()?;
    match p.segments.as_slice() {
        [r, f] if model.field(&r.name).is_none() => Some((r.name.as_str(), f.name.as_str())),
        _ => None,
    }
}

/// The related-model condition of one conjunct: the relation and the condition with the
/// relation's name taken off its path (`author.status = 'a'` → `author`, `status = 'a'`).
fn strip(model: &Model, c: &Expr) -> Option<(String, Expr)> {
    let local = |p: &Expr, f: &str| Expr {
        kind: ExprKind::Path(Path::single(kvm_lang::ast::Ident::new(f))),
        span: p.span,
    };
    let mut out = c.clone();
    let rel = match &mut out.kind {
        ExprKind::Binary {
            op: BinaryOp::Eq | BinaryOp::Lt | BinaryOp::LtEq | BinaryOp::Gt | BinaryOp::GtEq,
            lhs,
            rhs,
        } => {
            if let (Some((r, f)), true) = (related_field(model, lhs), constant(rhs)) {
                let (r, l) = (r.to_string(), local(lhs, f));
                **lhs = l;
                r
            } else if let (Some((r, f)), true) = (related_field(model, rhs), constant(lhs)) {
                let (r, l) = (r.to_string(), local(rhs, f));
                **rhs = l;
                r
            } else {
                return None;
            }
        }
        ExprKind::In { expr, rhs: InRhs::List(list), negated: false }
            if list.iter().all(constant) =>
        {
            let (r, f) = related_field(model, expr)?;
            let (r, l) = (r.to_string(), local(expr, f));
            **expr = l;
            r
        }
        ExprKind::Between { expr, low, high, negated: false }
            if constant(low) && constant(high) =>
        {
            let (r, f) = related_field(model, expr)?;
            let (r, l) = (r.to_string(), local(expr, f));
            **expr = l;
            r
        }
        _ => return None,
    };
    Some((rel, out))
}

/// The index of `model` that holds every record with a non-null `fk` under `[fk, …]`: its
/// first field is `fk` and its others cannot be null.
fn fk_index(model: &Model, fk: &str) -> Option<String> {
    model
        .indexes
        .iter()
        .filter(|ix| ix.ready && ix.fields.first().is_some_and(|f| f == fk))
        .find(|ix| ix.fields[1..].iter().all(|f| model.field(f).is_some_and(|fd| !fd.nullable())))
        .map(|ix| ix.name.clone())
}

/// The semi-join access for `model` under `filter`, when a relation condition of it can be
/// answered by an index (or key) of the related model; `None` otherwise.
pub fn via(catalog: &Catalog, model: &Model, filter: &Expr) -> Option<Access> {
    // Conditions per relation, in the order the relations first appear.
    let mut groups: Vec<(String, Vec<Expr>)> = Vec::new();
    for c in conjuncts(filter) {
        let (rel, cond) = match &c.kind {
            ExprKind::Exists { relation, filter: Some(f) } if relation.segments.len() == 1 => {
                (relation.segments[0].name.clone(), f.as_ref().clone())
            }
            _ => match strip(model, c) {
                Some(x) => x,
                None => continue,
            },
        };
        match groups.iter_mut().find(|(r, _)| *r == rel) {
            Some((_, conds)) => conds.push(cond),
            None => groups.push((rel, vec![cond])),
        }
    }
    groups.into_iter().find_map(|(name, conds)| {
        let rel = catalog.relation(model, &name, kvm_lang::Span::default()).ok()?;
        let target = catalog.models.get(&rel.target)?;
        let index = match &rel.path {
            RelPath::Fk { fk } => Some(fk_index(model, fk)?),
            RelPath::Reverse { .. } => None,
            RelPath::Through { .. } => return None,
        };
        let inner = conds
            .into_iter()
            .reduce(|a, b| {
                Expr::new(ExprKind::Binary {
                    op: BinaryOp::And,
                    lhs: Box::new(a),
                    rhs: Box::new(b),
                })
            })
            .map(|f| Scope::row(target).lower(&f))?
            .ok()?;
        let chosen = access::choose(target, Some(&inner), &[]);
        if matches!(chosen.access, Access::FullScan { .. }) {
            return None;
        }
        let scan = Node::Scan { model: target.name.clone(), access: chosen.access };
        let inner = Node::Filter { source: Box::new(scan), predicate: inner, covered: false };
        Some(Access::Via { rel: Box::new(rel), index, inner: Box::new(inner) })
    })
}

/// How `EXPLAIN` names a semi-join's read of `model`.
pub fn describe(model: &str, rel: &Rel, index: Option<&str>) -> String {
    match (&rel.path, index) {
        (RelPath::Fk { fk }, Some(ix)) => format!(
            "Via {model}.{} (semi-join): IndexScan {model}.{ix} prefix [key of each {} below] ({fk}), then Get {model}",
            rel.name, rel.target
        ),
        (RelPath::Reverse { fk, .. }, _) => format!(
            "Via {model}.{} (semi-join): Get {model} by {}.{fk} of each {} below",
            rel.name, rel.target, rel.target
        ),
        _ => format!("Via {model}.{} (semi-join)", rel.name),
    }
}
