//! Write statements: `INSERT` (one record or a batch), `UPDATE … SET`, `DELETE`, each with
//! `RETURNING`. Targets are read first (the whole set, so an update never sees its own
//! writes), then written through the model transaction; the caller commits once.

use kvm_lang::ast::Assignment;
use kvm_lang::{Expr, ExprKind};
use kvm_planner::Node;
use kvm_storage::Value;

use super::{read, Cx};
use crate::error::{Error, Result};
use crate::eval::Row;
use crate::{record, Output, Rows};

fn returning(
    cx: &Cx,
    model: &kvm_planner::Model,
    cols: &Option<Vec<(String, Expr)>>,
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

/// Strips virtual fields: what is stored.
fn stored(model: &kvm_planner::Model, mut row: Row) -> Row {
    for f in &model.fields {
        if f.virtual_expr.is_some() {
            row.remove(&f.name);
        }
    }
    row
}

pub fn insert(
    cx: &Cx,
    model: &str,
    records: &[Expr],
    ret: &Option<Vec<(String, Expr)>>,
    expire_at: Option<u64>,
) -> Result<Output> {
    let model = cx.model(model)?;
    let mut written = Vec::new();
    for e in records {
        let input = match cx.env(None).eval(e)? {
            Value::Object(m) => m,
            other => {
                return Err(Error::Invalid {
                    code: "kvm.type_mismatch",
                    message: format!("INSERT INTO {} needs an object, got {other}", model.name),
                    span: (!e.span.is_empty()).then_some(e.span),
                    help: None,
                })
            }
        };
        if let ExprKind::Param(_) = e.kind {
            // Fields of a bound object are checked by validation (no span to point at).
        }
        let row = record::for_insert(model, input, &cx.env(None))?;
        cx.mtx.insert(model, &row, expire_at)?;
        written.push(row);
    }
    returning(cx, model, ret, &written, "inserted")
}

pub fn update(
    cx: &Cx,
    model: &str,
    source: &Node,
    assignments: &[Assignment],
    ret: &Option<Vec<(String, Expr)>>,
) -> Result<Output> {
    let model = cx.model(model)?;
    let targets: Vec<Row> = read::rows(cx, source)?.collect::<Result<_>>()?;
    let mut written = Vec::new();
    for old in targets {
        let old = stored(model, old);
        let new = record::for_update(model, &old, assignments, &cx.env(None))?;
        cx.mtx.update(model, &old, &new)?;
        written.push(new);
    }
    returning(cx, model, ret, &written, "updated")
}

pub fn delete(
    cx: &Cx,
    model: &str,
    source: &Node,
    ret: &Option<Vec<(String, Expr)>>,
) -> Result<Output> {
    let model = cx.model(model)?;
    let targets: Vec<Row> = read::rows(cx, source)?.collect::<Result<_>>()?;
    let mut gone = Vec::new();
    for old in targets {
        let old = stored(model, old);
        cx.mtx.delete(model, &old)?;
        gone.push(old);
    }
    returning(cx, model, ret, &gone, "deleted")
}
