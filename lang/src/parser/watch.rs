//! `WATCH`: a record, an `IN` list or any filter on a model; a relation (`posts.comments`);
//! or a whole `SELECT`.

use super::{PResult, Parser};
use crate::ast::{Statement, Watch, WatchTarget};
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `WATCH model[.relation] [WHERE e]` / `WATCH SELECT …`
    pub(crate) fn parse_watch(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let target = if self.at_kw(Keyword::Select) {
            WatchTarget::Query(Box::new(self.parse_select()?))
        } else {
            let model = self.ident()?;
            let relation =
                if self.eat(TokenKind::Dot).is_some() { Some(self.ident()?) } else { None };
            let filter =
                if self.eat_kw(Keyword::Where).is_some() { Some(self.expr()?) } else { None };
            WatchTarget::Model { model, relation, filter }
        };
        Ok(Statement::Watch(Watch { target, span: self.span_from(start) }))
    }
}
