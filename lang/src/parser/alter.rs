//! `ALTER MODEL` (add, drop and rename fields; add and drop indexes and relations) and
//! `DROP MODEL` / `DROP QUEUE`.

use super::{PResult, Parser};
use crate::ast::{AlterAction, AlterModel, Drop, Statement};
use crate::keyword::Keyword;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `ALTER MODEL name action, …`
    pub(crate) fn parse_alter(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        self.expect_kw(Keyword::Model)?;
        let name = self.ident()?;
        let actions = self.comma_list(Self::alter_action)?;
        Ok(Statement::AlterModel(AlterModel { name, actions, span: self.span_from(start) }))
    }

    fn alter_action(&mut self) -> PResult<AlterAction> {
        if self.eat_kw(Keyword::Add).is_some() {
            if self.eat_kw(Keyword::Field).is_some() {
                return self.field_def().map(AlterAction::AddField);
            }
            if self.at_kw(Keyword::Unique) || self.at_kw(Keyword::Index) {
                return self.index_def().map(AlterAction::AddIndex);
            }
            if self.at_kw(Keyword::Relation) {
                return self.relation_def().map(AlterAction::AddRelation);
            }
            return Err(self.error_expected());
        }
        if self.eat_kw(Keyword::Drop).is_some() {
            if self.eat_kw(Keyword::Field).is_some() {
                return self.ident().map(AlterAction::DropField);
            }
            if self.eat_kw(Keyword::Index).is_some() {
                return self.ident().map(AlterAction::DropIndex);
            }
            if self.eat_kw(Keyword::Relation).is_some() {
                return self.ident().map(AlterAction::DropRelation);
            }
            return Err(self.error_expected());
        }
        if self.eat_kw(Keyword::Rename).is_some() {
            self.expect_kw(Keyword::Field)?;
            let from = self.ident()?;
            self.expect_kw(Keyword::To)?;
            let to = self.ident()?;
            return Ok(AlterAction::RenameField { from, to });
        }
        Err(self.error_expected())
    }

    /// `DROP MODEL [IF EXISTS] name` / `DROP QUEUE [IF EXISTS] name`
    pub(crate) fn parse_drop(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let queue = if self.eat_kw(Keyword::Model).is_some() {
            false
        } else if self.eat_kw(Keyword::Queue).is_some() {
            true
        } else {
            return Err(self.error_expected());
        };
        let if_exists = if self.at_kw(Keyword::If)
            && self.nth(1).kind == TokenKind::Word
            && self.nth_is_kw(1, Keyword::Exists)
        {
            self.pos += 2;
            true
        } else {
            false
        };
        let name = self.ident()?;
        let drop = Drop { name, if_exists, span: self.span_from(start) };
        Ok(if queue { Statement::DropQueue(drop) } else { Statement::DropModel(drop) })
    }
}
