//! Transactions (`BEGIN`, `COMMIT`, `ROLLBACK`) and introspection: `SHOW`, `DESCRIBE`,
//! `EXPLAIN`, `CHECK`.

use super::{PResult, Parser};
use crate::ast::{Check, Describe, Explain, Show, ShowWhat, Statement};
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `BEGIN [TRANSACTION]` / `COMMIT` / `ROLLBACK`
    pub(crate) fn parse_transaction(&mut self) -> PResult<Statement> {
        let tok = self.advance();
        Ok(match tok.keyword {
            Some(Keyword::Begin) => {
                self.eat_kw(Keyword::Transaction);
                Statement::Begin(self.span_from(tok.span))
            }
            Some(Keyword::Commit) => Statement::Commit(tok.span),
            _ => Statement::Rollback(tok.span),
        })
    }

    /// `SHOW MODELS | INDEXES [FROM model] | QUEUES`
    pub(crate) fn parse_show(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let what = if self.eat_kw(Keyword::Models).is_some() {
            ShowWhat::Models
        } else if self.eat_kw(Keyword::Queues).is_some() {
            ShowWhat::Queues
        } else if self.eat_kw(Keyword::Indexes).is_some() {
            ShowWhat::Indexes(if self.eat_kw(Keyword::From).is_some() {
                Some(self.ident()?)
            } else {
                None
            })
        } else {
            return Err(self.error_expected());
        };
        Ok(Statement::Show(Show { what, span: self.span_from(start) }))
    }

    /// `DESCRIBE [MODEL] name` / `DESCRIBE QUEUE name`
    pub(crate) fn parse_describe(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        // `MODEL` / `QUEUE` are keywords here only when a name follows them.
        let name_follows = matches!(self.nth(1).kind, TokenKind::Word | TokenKind::QuotedIdent);
        let mut queue = false;
        if name_follows && self.at_kw(Keyword::Queue) {
            self.advance();
            queue = true;
        } else if name_follows && self.at_kw(Keyword::Model) {
            self.advance();
        }
        let name = self.ident()?;
        Ok(Statement::Describe(Describe { queue, name, span: self.span_from(start) }))
    }

    /// `EXPLAIN statement`
    pub(crate) fn parse_explain(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let statement = self.nested(Self::statement)?;
        Ok(Statement::Explain(Explain {
            statement: Box::new(statement),
            span: self.span_from(start),
        }))
    }

    /// `CHECK DATABASE` / `CHECK MODEL name`
    pub(crate) fn parse_check(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let model = if self.eat_kw(Keyword::Database).is_some() {
            None
        } else if self.eat_kw(Keyword::Model).is_some() {
            Some(self.ident()?)
        } else {
            return Err(self.error_expected());
        };
        Ok(Statement::Check(Check { model, span: self.span_from(start) }))
    }
}
