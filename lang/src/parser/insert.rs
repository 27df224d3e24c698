//! `INSERT INTO` (one record or an atomic batch) and `UPSERT INTO … ON (fields)`, with
//! `EXPIRE IN` and `RETURNING`.

use super::select::clause_once;
use super::{PResult, Parser};
use crate::ast::{DurationKind, Expire, Insert, InsertSource, Projection, Statement, Upsert};
use crate::diagnostic::Diagnostic;
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `INSERT INTO model value [EXPIRE IN d] [RETURNING …]`
    pub(crate) fn parse_insert(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::Into)?;
        let model = self.ident()?;
        let source = if self.peek().kind == TokenKind::LBracket {
            let value = self.expr()?;
            match value.kind {
                crate::ast::ExprKind::Array(items) => InsertSource::Batch(items),
                other => InsertSource::One(crate::ast::Expr { kind: other, span: value.span }),
            }
        } else {
            InsertSource::One(self.expr()?)
        };
        let (expire, returning) = self.write_tail()?;
        Ok(Statement::Insert(Insert {
            model,
            source,
            expire,
            returning,
            span: self.span_from(start),
        }))
    }

    /// `UPSERT INTO model value [ON (fields)] [DO UPDATE SET …] [EXPIRE …] [RETURNING …]`
    pub(crate) fn parse_upsert(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::Into)?;
        let model = self.ident()?;
        let value = self.expr()?;
        let on = if self.eat_kw(Keyword::On).is_some() { self.paren_idents()? } else { Vec::new() };
        let update = if self.eat_kw(Keyword::Do).is_some() {
            self.expect_kw(Keyword::Update)?;
            self.expect_kw(Keyword::Set)?;
            Some(self.comma_list(Self::assignment)?)
        } else {
            None
        };
        let (expire, returning) = self.write_tail()?;
        Ok(Statement::Upsert(Upsert {
            model,
            value,
            on,
            update,
            expire,
            returning,
            span: self.span_from(start),
        }))
    }

    /// After `EXPIRE`: `IN d` (not zero: that would expire the record at once), `AT ts`, or
    /// `NEVER`.
    pub(crate) fn expire(&mut self) -> PResult<Expire> {
        if self.eat_kw(Keyword::In).is_some() {
            let d = self.duration()?;
            if d.kind == DurationKind::Millis(0) {
                return Err(Diagnostic::new(
                    d.span,
                    "EXPIRE IN a zero duration would expire the record at once",
                )
                .with_help("delete it with DELETE, or clear an expiry with EXPIRE NEVER"));
            }
            return Ok(Expire::In(d));
        }
        if self.eat_kw(Keyword::At).is_some() {
            return Ok(Expire::At(self.expr()?));
        }
        if self.eat_kw(Keyword::Never).is_some() {
            return Ok(Expire::Never);
        }
        Err(self.error_expected())
    }

    /// `[EXPIRE …] [RETURNING …]`, in either order.
    pub(crate) fn write_tail(&mut self) -> PResult<(Option<Expire>, Option<Projection>)> {
        let mut expire = None;
        let mut returning = None;
        loop {
            if let Some(span) = self.eat_kw(Keyword::Expire) {
                clause_once(expire.is_some(), span, "EXPIRE")?;
                expire = Some(self.expire()?);
            } else if let Some(span) = self.eat_kw(Keyword::Returning) {
                clause_once(returning.is_some(), span, "RETURNING")?;
                returning = Some(self.projection()?);
            } else {
                return Ok((expire, returning));
            }
        }
    }
}
