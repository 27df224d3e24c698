//! `RELATE` / `UNRELATE`: link or unlink two records of a many-to-many relation.

use super::{PResult, Parser};
use crate::ast::{ExprKind, RecordRef, Relate, Statement};
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `RELATE model:key TO model:key [VIA relation]` (and `UNRELATE`)
    pub(crate) fn parse_relate(&mut self) -> PResult<Statement> {
        let first = self.advance();
        let from = self.record_ref()?;
        self.expect_kw(Keyword::To)?;
        let to = self.record_ref()?;
        let via = if self.eat_kw(Keyword::Via).is_some() { Some(self.ident()?) } else { None };
        let relate = Relate { from, to, via, span: self.span_from(first.span) };
        Ok(if first.keyword == Some(Keyword::Unrelate) {
            Statement::Unrelate(relate)
        } else {
            Statement::Relate(relate)
        })
    }

    /// `model:key`, the key a literal or a parameter.
    fn record_ref(&mut self) -> PResult<RecordRef> {
        let model = self.ident()?;
        self.expect(TokenKind::Colon)?;
        let tok = self.peek();
        let key = match tok.kind {
            TokenKind::String | TokenKind::Int | TokenKind::Param | TokenKind::Minus => {
                self.expr()?
            }
            _ => {
                let _ = self.at(TokenKind::String)
                    || self.at(TokenKind::Int)
                    || self.at(TokenKind::Param);
                return Err(self.error_expected());
            }
        };
        if !matches!(key.kind, ExprKind::Literal(_) | ExprKind::Param(_)) {
            return Err(self
                .error_at(key.span, "a record key must be a literal or a parameter")
                .with_help("write the key alone, as in posts:'p1' or posts:$id"));
        }
        Ok(RecordRef { model, key })
    }
}
