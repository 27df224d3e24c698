//! Binding: every name a statement uses must be a field of its model. Unknown names get a
//! diagnostic pointing at them, with the closest field as a "did you mean"; comparisons of a
//! field with a literal of an incompatible type are refused here too.

use kvm_lang::ast::{BinaryOp, CallArgs, InRhs, Literal, TypeName};
use kvm_lang::{Expr, ExprKind};

use crate::catalog::Model;
use crate::error::PlanError;

/// Checks every path in `expr` against `model`'s fields and literal comparisons against
/// field types.
pub fn bind_expr(model: &Model, expr: &Expr) -> Result<(), PlanError> {
    match &expr.kind {
        ExprKind::Literal(_) | ExprKind::Param(_) => Ok(()),
        ExprKind::Path(path) => {
            let first = &path.segments[0];
            if model.field(&first.name).is_some() {
                return Ok(());
            }
            let mut e = PlanError::new(
                "kvm.unknown_field",
                format!("model `{}` has no field `{}`", model.name, first.name),
            )
            .at(first.span);
            if let Some(s) =
                crate::suggest::did_you_mean(&first.name, model.fields.iter().map(|f| &f.name))
            {
                e = e.help(format!("did you mean `{s}`?"));
            }
            Err(e)
        }
        ExprKind::Call { args, .. } => match args {
            CallArgs::Star => Ok(()),
            CallArgs::List(list) => list.iter().try_for_each(|a| bind_expr(model, a)),
        },
        ExprKind::Unary { expr, .. } => bind_expr(model, expr),
        ExprKind::Binary { op, lhs, rhs } => {
            bind_expr(model, lhs)?;
            bind_expr(model, rhs)?;
            if matches!(
                op,
                BinaryOp::Eq
                    | BinaryOp::NotEq
                    | BinaryOp::Lt
                    | BinaryOp::LtEq
                    | BinaryOp::Gt
                    | BinaryOp::GtEq
            ) {
                type_check(model, lhs, rhs)?;
                type_check(model, rhs, lhs)?;
            }
            Ok(())
        }
        ExprKind::In { expr, rhs, .. } => {
            bind_expr(model, expr)?;
            match rhs {
                InRhs::List(list) => list.iter().try_for_each(|a| {
                    bind_expr(model, a)?;
                    type_check(model, expr, a)
                }),
                InRhs::Expr(e) => bind_expr(model, e),
            }
        }
        ExprKind::Between { expr, low, high, .. } => {
            bind_expr(model, expr)?;
            bind_expr(model, low)?;
            bind_expr(model, high)?;
            type_check(model, expr, low)?;
            type_check(model, expr, high)
        }
        ExprKind::IsNull { expr, .. } => bind_expr(model, expr),
        ExprKind::Exists { relation, .. } => {
            Err(PlanError::unsupported("EXISTS over a relation (issue 6)", relation.span))
        }
        ExprKind::Array(items) => items.iter().try_for_each(|a| bind_expr(model, a)),
        ExprKind::Object(fields) => fields.iter().try_for_each(|f| bind_expr(model, &f.value)),
    }
}

/// Refuses `field op literal` when the literal can never compare with the field's type.
fn type_check(model: &Model, field: &Expr, other: &Expr) -> Result<(), PlanError> {
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
        .at(other.span))
    }
}
