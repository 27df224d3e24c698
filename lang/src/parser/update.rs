//! `UPDATE model SET …`: plain, additive (`+=`, `-=`) and min/max assignments, `WHERE`,
//! `EXPIRE IN` and `RETURNING`.

use super::select::clause_once;
use super::{PResult, Parser};
use crate::ast::{AssignOp, Assignment, CallArgs, Expr, ExprKind, Path, Statement, Update};
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `UPDATE model [SET a, …] [WHERE e] [EXPIRE IN d] [RETURNING …]` (SET or EXPIRE needed)
    pub(crate) fn parse_update(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let model = self.ident()?;
        let assignments = if self.eat_kw(Keyword::Set).is_some() {
            self.comma_list(Self::assignment)?
        } else {
            Vec::new()
        };
        let mut filter = None;
        let mut expire = None;
        let mut returning = None;
        loop {
            if let Some(span) = self.eat_kw(Keyword::Where) {
                clause_once(filter.is_some(), span, "WHERE")?;
                filter = Some(self.expr()?);
            } else if let Some(span) = self.eat_kw(Keyword::Expire) {
                clause_once(expire.is_some(), span, "EXPIRE")?;
                expire = Some(self.expire()?);
            } else if let Some(span) = self.eat_kw(Keyword::Returning) {
                clause_once(returning.is_some(), span, "RETURNING")?;
                returning = Some(self.projection()?);
            } else {
                break;
            }
        }
        if assignments.is_empty() && expire.is_none() {
            return Err(self
                .error_at(self.span_from(start), "UPDATE needs SET or EXPIRE")
                .with_help("write `UPDATE model SET field = value WHERE …`"));
        }
        Ok(Statement::Update(Update {
            model,
            assignments,
            filter,
            expire,
            returning,
            span: self.span_from(start),
        }))
    }

    /// `path = e`, `path += e`, `path -= e`, `path = MIN(path, e)`, `path = MAX(path, e)`
    pub(crate) fn assignment(&mut self) -> PResult<Assignment> {
        let target = self.path()?;
        let op = if self.eat(TokenKind::Eq).is_some() {
            AssignOp::Set
        } else if self.eat(TokenKind::PlusEq).is_some() {
            AssignOp::Add
        } else if self.eat(TokenKind::MinusEq).is_some() {
            AssignOp::Sub
        } else {
            return Err(self.error_expected());
        };
        let value = self.expr()?;
        let (op, value) = match op {
            AssignOp::Set => min_max(&target, value),
            other => (other, value),
        };
        Ok(Assignment { span: self.span_from(target.span), target, op, value })
    }
}

/// `f = MAX(f, v)` is the atomic maximum of `f` and `v` (likewise `MIN`); any other value is a
/// plain assignment.
fn min_max(target: &Path, value: Expr) -> (AssignOp, Expr) {
    if let ExprKind::Call { name, args: CallArgs::List(args) } = &value.kind {
        let op = if name.name.eq_ignore_ascii_case("max") {
            Some(AssignOp::Max)
        } else if name.name.eq_ignore_ascii_case("min") {
            Some(AssignOp::Min)
        } else {
            None
        };
        if let (Some(op), [first, second]) = (op, args.as_slice()) {
            if first.as_path() == Some(target) {
                return (op, second.clone());
            }
        }
    }
    (AssignOp::Set, value)
}
