//! Printing expressions, with parentheses exactly where precedence needs them.

use std::fmt::{self, Display, Formatter};

use super::{comma_sep, is_bare_word, write_string};
use crate::ast::{
    precedence, CallArgs, DurationKind, DurationValue, Expr, ExprKind, InRhs, Literal, ObjectField,
    Param, UnaryOp,
};
use crate::parser::format_duration;

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self, 0)
    }
}

/// Write `e`, parenthesised when it binds looser than `min`.
fn write_expr(f: &mut Formatter<'_>, e: &Expr, min: u8) -> fmt::Result {
    if e.kind.precedence() < min {
        f.write_str("(")?;
        write_kind(f, &e.kind)?;
        f.write_str(")")
    } else {
        write_kind(f, &e.kind)
    }
}

fn write_kind(f: &mut Formatter<'_>, kind: &ExprKind) -> fmt::Result {
    match kind {
        ExprKind::Literal(lit) => lit.fmt(f),
        ExprKind::Param(p) => p.fmt(f),
        ExprKind::Path(p) => p.fmt(f),
        ExprKind::Call { name, args } => {
            write!(f, "{name}(")?;
            match args {
                CallArgs::Star => f.write_str("*")?,
                CallArgs::List(args) => comma_sep(f, args, ", ")?,
                CallArgs::Distinct(e) => write!(f, "DISTINCT {e}")?,
            }
            f.write_str(")")
        }
        ExprKind::Unary { op: UnaryOp::Not, expr } => {
            f.write_str("NOT ")?;
            write_expr(f, expr, precedence::NOT)
        }
        ExprKind::Unary { op: UnaryOp::Neg, expr } => {
            f.write_str("-")?;
            // `-(5)` stays a negation of a literal; `-(-x)` must not print as a `--` comment.
            let needs_parens = matches!(
                expr.kind,
                ExprKind::Literal(Literal::Int(_) | Literal::Float(_))
                    | ExprKind::Unary { op: UnaryOp::Neg, .. }
            );
            if needs_parens {
                write!(f, "({expr})")
            } else {
                write_expr(f, expr, precedence::NEG)
            }
        }
        ExprKind::Binary { op, lhs, rhs } => {
            let prec = op.precedence();
            write_expr(f, lhs, prec)?;
            write!(f, " {} ", op.as_str())?;
            write_expr(f, rhs, prec + 1)
        }
        ExprKind::In { expr, rhs, negated } => {
            write_expr(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " NOT IN " } else { " IN " })?;
            match rhs {
                InRhs::List(items) => {
                    f.write_str("(")?;
                    comma_sep(f, items, ", ")?;
                    f.write_str(")")
                }
                InRhs::Expr(e) => write_expr(f, e, precedence::ATOM),
                InRhs::Select(s) => write!(f, "({s})"),
            }
        }
        ExprKind::Between { expr, low, high, negated } => {
            write_expr(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " NOT BETWEEN " } else { " BETWEEN " })?;
            write_expr(f, low, precedence::ADD)?;
            f.write_str(" AND ")?;
            write_expr(f, high, precedence::ADD)
        }
        ExprKind::IsNull { expr, negated } => {
            write_expr(f, expr, precedence::CMP)?;
            f.write_str(if *negated { " IS NOT NULL" } else { " IS NULL" })
        }
        ExprKind::ExistsSelect(s) => write!(f, "EXISTS ({s})"),
        ExprKind::Exists { relation, filter } => {
            write!(f, "EXISTS {relation}")?;
            match filter {
                Some(filter) => write!(f, " (WHERE {filter})"),
                None => Ok(()),
            }
        }
        ExprKind::Case { operand, branches, otherwise } => {
            f.write_str("CASE")?;
            if let Some(o) = operand {
                // An operand read as the keyword `WHEN` would not parse back: parenthesised.
                let text = o.to_string();
                let ambiguous = text.get(..4).is_some_and(|w| w.eq_ignore_ascii_case("when"))
                    && !text[4..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
                if ambiguous {
                    write!(f, " ({text})")?;
                } else {
                    write!(f, " {text}")?;
                }
            }
            for (w, t) in branches {
                write!(f, " WHEN {w} THEN {t}")?;
            }
            if let Some(e) = otherwise {
                write!(f, " ELSE {e}")?;
            }
            f.write_str(" END")
        }
        ExprKind::Array(items) => {
            f.write_str("[")?;
            comma_sep(f, items, ", ")?;
            f.write_str("]")
        }
        ExprKind::Object(fields) => {
            if fields.is_empty() {
                return f.write_str("{}");
            }
            f.write_str("{ ")?;
            comma_sep(f, fields, ", ")?;
            f.write_str(" }")
        }
    }
}

impl Display for ObjectField {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", ObjectKey(&self.key.name), self.value)
    }
}

/// An object's key as KQL writes it: bare when it is a word, else a quoted string.
pub struct ObjectKey<'a>(pub &'a str);

impl Display for ObjectKey<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if is_bare_word(self.0) {
            f.write_str(self.0)
        } else {
            write_string(f, self.0)
        }
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Int(n) => write!(f, "{n}"),
            // `{:?}` is the shortest text that reads back as the same f64 (`1.0`, `1e300`).
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::String(s) => write_string(f, s),
            Literal::Date(s) => {
                f.write_str("DATE ")?;
                write_string(f, s)
            }
            Literal::Timestamp(s) => {
                f.write_str("TIMESTAMP ")?;
                write_string(f, s)
            }
        }
    }
}

impl Display for Param {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Param::Positional(n) => write!(f, "${n}"),
            Param::Named(name) => write!(f, "${name}"),
        }
    }
}

impl Display for DurationValue {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DurationKind::Millis(ms) => write!(f, "'{}'", format_duration(*ms)),
            DurationKind::Param(p) => p.fmt(f),
        }
    }
}
