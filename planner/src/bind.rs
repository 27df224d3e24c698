//! Binding: every name a statement uses must be a field of its model. Unknown names get a
//! diagnostic pointing at them, with the closest field as a "did you mean"; comparisons of a
//! field with a literal of an incompatible type are refused here too.

use kvm_lang::ast::{CallArgs, InRhs, Literal, TypeName};
use kvm_lang::{Expr, ExprKind};

use crate::catalog::{Catalog, Model};
use crate::error::PlanError;

/// Checks every path in `expr` against `model`'s fields and literal comparisons against
/// field types (no relations: definitions such as CHECK and DEFAULT see one record).
pub fn bind_expr(model: &Model, expr: &Expr) -> Result<(), PlanError> {
    bind_in(model, None, expr).map_err(|e| *e)
}

/// Like [`bind_expr`], also accepting relations of `model`: paths through a single-record
/// relation (`author.status`), `EXISTS relation [(WHERE …)]` and `COUNT(relation)`.
pub fn bind_query(catalog: &Catalog, model: &Model, expr: &Expr) -> Result<(), PlanError> {
    bind_in(model, Some(catalog), expr).map_err(|e| *e)
}

/// The relation `COUNT(x)` counts, when `e` is one.
pub fn count_relation(e: &Expr) -> Option<&kvm_lang::ast::Path> {
    match &e.kind {
        ExprKind::Call { name, args: CallArgs::List(args) }
            if name.name.eq_ignore_ascii_case("count") && args.len() == 1 =>
        {
            args[0].as_path().filter(|p| p.segments.len() == 1)
        }
        _ => None,
    }
}

fn bind_relation_path(
    catalog: &Catalog,
    model: &Model,
    path: &kvm_lang::ast::Path,
) -> Result<bool, PlanError> {
    let first = &path.segments[0];
    if !model.relations.iter().any(|r| r.name.name == first.name) {
        return Ok(false);
    }
    let rel = catalog.relation(model, &first.name, first.span)?;
    if !rel.single() {
        return Err(PlanError::new(
            "kvm.invalid_relation_path",
            format!(
                "`{}.{}` holds many records: a path cannot go through it",
                model.name, first.name
            ),
        )
        .at(path.span)
        .help(format!("use `EXISTS {} (WHERE …)` or `COUNT({})`", first.name, first.name)));
    }
    if let Some(seg) = path.segments.get(1) {
        let target = &catalog.models[&rel.target];
        if target.field(&seg.name).is_none()
            && target.relations.iter().any(|r| r.name.name == seg.name)
        {
            return Err(PlanError::unsupported(
                "a path through two relations (one relation per path for now)",
                path.span,
            ));
        }
        if target.field(&seg.name).is_none() {
            let mut e = PlanError::new(
                "kvm.unknown_field",
                format!(
                    "model `{}` (relation `{}`) has no field `{}`",
                    target.name, first.name, seg.name
                ),
            )
            .at(seg.span);
            if let Some(s) =
                crate::suggest::did_you_mean(&seg.name, target.fields.iter().map(|f| &f.name))
            {
                e = e.help(format!("did you mean `{s}`?"));
            }
            return Err(e);
        }
    }
    Ok(true)
}

/// What the walk and the checks it calls return: the error is boxed, because an unoptimized
/// build gives every `?` its own copies of the error, and the walk's frame is on the stack
/// once per level of the tree.
type Walk<T = ()> = Result<T, Box<PlanError>>;

/// The walk itself. An expression tree may be [`kvm_lang::MAX_EXPR_DEPTH`] deep, so this
/// frame is kept small: messages are built in the functions it calls, which return before
/// it recurses.
fn bind_in(model: &Model, catalog: Option<&Catalog>, expr: &Expr) -> Walk {
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Param(_) => {}
        ExprKind::Path(path) => bind_path(model, catalog, path)?,
        ExprKind::Call { args: CallArgs::Star | CallArgs::Distinct(_), .. } => {
            misplaced_aggregate(model, expr)?
        }
        ExprKind::Call { name, args: CallArgs::List(list) } => {
            if !bind_call(model, catalog, expr, name)? {
                for a in list {
                    bind_in(model, catalog, a)?;
                }
            }
        }
        ExprKind::Unary { expr, .. } | ExprKind::IsNull { expr, .. } => {
            bind_in(model, catalog, expr)?
        }
        ExprKind::Binary { op, lhs, rhs } => {
            bind_in(model, catalog, lhs)?;
            bind_in(model, catalog, rhs)?;
            if op.is_comparison() {
                type_check(model, lhs, rhs)?;
                type_check(model, rhs, lhs)?;
            }
        }
        ExprKind::In { expr, rhs, .. } => {
            bind_in(model, catalog, expr)?;
            match rhs {
                InRhs::List(list) => {
                    for a in list {
                        bind_in(model, catalog, a)?;
                        type_check(model, expr, a)?;
                    }
                }
                InRhs::Expr(e) => bind_in(model, catalog, e)?,
                // Planned on its own model when lowered.
                InRhs::Select(sel) => subquery_allowed(catalog, sel.span)?,
            }
        }
        ExprKind::Between { expr, low, high, .. } => {
            bind_in(model, catalog, expr)?;
            bind_in(model, catalog, low)?;
            bind_in(model, catalog, high)?;
            type_check(model, expr, low)?;
            type_check(model, expr, high)?;
        }
        ExprKind::Exists { relation, filter } => {
            let target = exists_target(model, catalog, relation)?;
            if let Some(f) = filter {
                bind_in(target, None, f)?;
            }
        }
        ExprKind::Array(items) => {
            for a in items {
                bind_in(model, catalog, a)?;
            }
        }
        ExprKind::Object(fields) => {
            for f in fields {
                bind_in(model, catalog, &f.value)?;
            }
        }
        ExprKind::ExistsSelect(_) => subquery_allowed(catalog, expr.span)?,
        ExprKind::Case { .. } => {
            for c in expr.children() {
                bind_in(model, catalog, c)?;
            }
        }
    }
    Ok(())
}

/// A path must name a field of `model`, or go through one of its single-record relations.
fn bind_path(model: &Model, catalog: Option<&Catalog>, path: &kvm_lang::ast::Path) -> Walk {
    let first = &path.segments[0];
    if model.field(&first.name).is_some() {
        return Ok(());
    }
    if let Some(c) = catalog {
        if bind_relation_path(c, model, path)? {
            return Ok(());
        }
    }
    let mut e = PlanError::new(
        "kvm.unknown_field",
        format!("model `{}` has no field `{}`", model.name, first.name),
    )
    .at(first.span);
    if let Some(s) = crate::suggest::did_you_mean(&first.name, model.fields.iter().map(|f| &f.name))
    {
        e = e.help(format!("did you mean `{s}`?"));
    }
    Err(e.into())
}

/// Checks the function a call names. True when the call is `COUNT(relation)`, whose
/// argument is a relation rather than an expression to bind.
/// A subquery needs the catalog (a query's `WHERE`, an `UPDATE`'s or `DELETE`'s): not in a
/// definition or a `SET` value.
fn subquery_allowed(catalog: Option<&Catalog>, at: kvm_lang::Span) -> Walk {
    if catalog.is_some() {
        return Ok(());
    }
    Err(PlanError::unsupported("a subquery here (only in WHERE and SELECT of a query)", at).into())
}

/// An aggregate where rows are not grouped (a `WHERE`, a `SET`, a definition).
fn misplaced_aggregate(model: &Model, call: &Expr) -> Walk {
    if crate::aggregate::aggregate_call(Some(model), call).is_none() {
        return Ok(());
    }
    Err(PlanError::new(
        "kvm.misplaced_aggregate",
        format!("{call} aggregates rows: it belongs in a query's SELECT list, HAVING or ORDER BY"),
    )
    .at(call.span)
    .help("filter groups with HAVING: `… GROUP BY category HAVING COUNT(*) > 1`")
    .into())
}

fn bind_call(
    model: &Model,
    catalog: Option<&Catalog>,
    call: &Expr,
    name: &kvm_lang::ast::Ident,
) -> Walk<bool> {
    let lower = name.name.to_ascii_lowercase();
    if let (Some(c), Some(p)) = (catalog, count_relation(call)) {
        if model.field(&p.segments[0].name).is_none() {
            let rel = c.relation(model, &p.segments[0].name, p.span)?;
            if rel.single() {
                return Err(PlanError::new(
                    "kvm.invalid_relation_path",
                    format!(
                        "COUNT({}): `{}.{}` is a single record",
                        rel.name, model.name, rel.name
                    ),
                )
                .at(call.span)
                .help(format!("use `{} IS NOT NULL`", rel.name))
                .into());
            }
            return Ok(true);
        }
    }
    misplaced_aggregate(model, call)?;
    if lower == "count" {
        return Err(PlanError::unsupported(
            &format!("{}(expr) (counting non-null values)", name.name),
            call.span,
        )
        .help("use COUNT(*) with `WHERE expr IS NOT NULL`")
        .into());
    }
    if crate::ir::Func::named(&lower).is_none() {
        let mut e =
            PlanError::new("kvm.unknown_function", format!("unknown function `{}`", name.name))
                .at(name.span);
        if let Some(s) =
            crate::suggest::did_you_mean(&lower, crate::ir::Func::ALL.iter().map(|(n, _)| n))
        {
            e = e.help(format!("did you mean `{s}`?"));
        }
        return Err(e.into());
    }
    Ok(false)
}

/// The model an `EXISTS relation` filter sees.
fn exists_target<'c>(
    model: &Model,
    catalog: Option<&'c Catalog>,
    relation: &kvm_lang::ast::Path,
) -> Walk<&'c Model> {
    let Some(c) = catalog else {
        return Err(PlanError::unsupported(
            "EXISTS in a model definition (it sees one record)",
            relation.span,
        )
        .into());
    };
    if relation.segments.len() > 1 {
        return Err(
            PlanError::unsupported("EXISTS through several relations", relation.span).into()
        );
    }
    let rel = c.relation(model, &relation.segments[0].name, relation.span)?;
    Ok(&c.models[&rel.target])
}

/// Whether `expr` reads field `name` of its model (a path whose first segment is `name`).
pub fn uses_field(expr: &Expr, name: &str) -> bool {
    match &expr.kind {
        ExprKind::Path(path) => path.segments[0].name == name,
        ExprKind::Exists { relation, .. } => relation.segments[0].name == name,
        _ => expr.children().into_iter().any(|e| uses_field(e, name)),
    }
}

/// Refuses `field op literal` when the literal can never compare with the field's type.
fn type_check(model: &Model, field: &Expr, other: &Expr) -> Walk {
    let (Some(path), ExprKind::Literal(lit)) = (field.as_path(), &other.kind) else {
        return Ok(());
    };
    if path.segments.len() != 1 {
        return Ok(());
    }
    let Some(f) = model.field(&path.segments[0].name) else { return Ok(()) };
    #[allow(clippy::match_like_matches_macro)]
    let ok = match (&f.ty.name, lit) {
        (_, Literal::Null) => true,
        (TypeName::Int | TypeName::Float | TypeName::U64, Literal::Int(_) | Literal::Float(_)) => {
            true
        }
        (
            TypeName::Timestamp,
            Literal::Timestamp(_) | Literal::String(_) | Literal::Date(_) | Literal::Int(_),
        ) => true,
        (TypeName::Date, Literal::Date(_) | Literal::String(_)) => true,
        (
            TypeName::String | TypeName::Ulid | TypeName::Uuid | TypeName::Enum(_),
            Literal::String(_),
        ) => true,
        (TypeName::Bool, Literal::Bool(_)) => true,
        (TypeName::Bytes, Literal::String(_)) => true,
        (TypeName::Object | TypeName::Array(_), _) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(PlanError::new(
            "kvm.type_mismatch",
            format!(
                "cannot compare field `{}.{}` of type {} with {}",
                model.name, f.name, f.ty, other
            ),
        )
        .at(other.span)
        .into())
    }
}
