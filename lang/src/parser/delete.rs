//! `DELETE FROM model [WHERE …] [RETURNING …]`.

use super::select::clause_once;
use super::{PResult, Parser};
use crate::ast::{Delete, Statement};
use crate::keyword::Keyword;

impl Parser<'_> {
    /// `DELETE FROM model [WHERE e] [RETURNING …]`
    pub(crate) fn parse_delete(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::From)?;
        let model = self.ident()?;
        let mut filter = None;
        let mut returning = None;
        loop {
            if let Some(span) = self.eat_kw(Keyword::Where) {
                clause_once(filter.is_some(), span, "WHERE")?;
                filter = Some(self.expr()?);
            } else if let Some(span) = self.eat_kw(Keyword::Returning) {
                clause_once(returning.is_some(), span, "RETURNING")?;
                returning = Some(self.projection()?);
            } else {
                break;
            }
        }
        Ok(Statement::Delete(Delete { model, filter, returning, span: self.span_from(start) }))
    }
}
