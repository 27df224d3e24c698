//! `DEFINE MODEL` (fields, indexes, relations, `WITH TIMESTAMPS`) and `DEFINE QUEUE`.

use super::{PResult, Parser};
use crate::ast::{
    DefineModel, DefineQueue, IndexDef, ModelElement, OnDelete, RelationDef, RelationKind,
    Statement,
};
use crate::keyword::Keyword;
use crate::span::Span;
use crate::token::TokenKind;

impl Parser<'_> {
    /// `DEFINE MODEL …` / `DEFINE QUEUE …`
    pub(crate) fn parse_define(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        if self.eat_kw(Keyword::Model).is_some() {
            self.parse_define_model(start).map(Statement::DefineModel)
        } else if self.eat_kw(Keyword::Queue).is_some() {
            let if_not_exists = self.if_not_exists()?;
            let name = self.ident()?;
            let options = self.job_options(false)?.options;
            Ok(Statement::DefineQueue(DefineQueue {
                name,
                if_not_exists,
                options,
                span: self.span_from(start),
            }))
        } else {
            Err(self.error_expected())
        }
    }

    pub(crate) fn if_not_exists(&mut self) -> PResult<bool> {
        if self.peek().keyword == Some(Keyword::If) && self.nth_is_kw(1, Keyword::Not) {
            self.advance();
            self.advance();
            self.expect_kw(Keyword::Exists)?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn parse_define_model(&mut self, start: Span) -> PResult<DefineModel> {
        let if_not_exists = self.if_not_exists()?;
        let name = self.ident()?;
        self.expect(TokenKind::LParen)?;
        let elements = self.comma_list(Self::model_element)?;
        self.expect(TokenKind::RParen)?;
        let timestamps = if self.eat_kw(Keyword::With).is_some() {
            self.expect_kw(Keyword::Timestamps)?;
            true
        } else {
            false
        };
        Ok(DefineModel { name, if_not_exists, elements, timestamps, span: self.span_from(start) })
    }

    /// A field, an index or a relation. `index` and `relation` are also usable as field
    /// names: the keyword reading wins only when the shape that follows fits it.
    fn model_element(&mut self) -> PResult<ModelElement> {
        let is_word = |p: &Self, n: usize| {
            p.nth(n).kind == TokenKind::Word || p.nth(n).kind == TokenKind::QuotedIdent
        };
        let index_shape = |p: &Self, n: usize| {
            p.nth_is_kw(n, Keyword::Index)
                && (p.nth(n + 1).kind == TokenKind::LParen
                    || (is_word(p, n + 1) && p.nth(n + 2).kind == TokenKind::LParen))
        };
        if index_shape(self, 0)
            || (self.nth_is_kw(0, Keyword::Unique) && self.nth_is_kw(1, Keyword::Index))
        {
            return self.index_def().map(ModelElement::Index);
        }
        let relation_kind = [Keyword::Belongs, Keyword::Has, Keyword::Many];
        if self.nth_is_kw(0, Keyword::Relation)
            && relation_kind.iter().any(|&kw| self.nth_is_kw(2, kw))
        {
            return self.relation_def().map(ModelElement::Relation);
        }
        self.note_keyword(Keyword::Index);
        self.note_keyword(Keyword::Relation);
        self.field_def().map(ModelElement::Field)
    }

    /// `[UNIQUE] INDEX [name] (field, …)`
    pub(crate) fn index_def(&mut self) -> PResult<IndexDef> {
        let start = self.peek().span;
        let unique = self.eat_kw(Keyword::Unique).is_some();
        self.expect_kw(Keyword::Index)?;
        let name = if self.at(TokenKind::LParen) { None } else { Some(self.ident()?) };
        let fields = self.paren_idents()?;
        Ok(IndexDef { name, unique, fields, span: self.span_from(start) })
    }

    /// `RELATION name BELONGS TO | HAS ONE | HAS MANY | MANY TO MANY target [(fields)]
    /// [THROUGH model] [ON DELETE CASCADE | RESTRICT | SET NULL]`
    pub(crate) fn relation_def(&mut self) -> PResult<RelationDef> {
        let start = self.expect_kw(Keyword::Relation)?;
        let name = self.ident()?;
        let kind = if self.eat_kw(Keyword::Belongs).is_some() {
            self.expect_kw(Keyword::To)?;
            RelationKind::BelongsTo
        } else if self.eat_kw(Keyword::Has).is_some() {
            if self.eat_kw(Keyword::One).is_some() {
                RelationKind::HasOne
            } else {
                self.expect_kw(Keyword::Many)?;
                RelationKind::HasMany
            }
        } else if self.eat_kw(Keyword::Many).is_some() {
            self.expect_kw(Keyword::To)?;
            self.expect_kw(Keyword::Many)?;
            RelationKind::ManyToMany
        } else {
            return Err(self.error_expected());
        };
        let target = self.ident()?;
        let fields = if self.at(TokenKind::LParen) { self.paren_idents()? } else { Vec::new() };
        let through =
            if self.eat_kw(Keyword::Through).is_some() { Some(self.ident()?) } else { None };
        let on_delete = if self.eat_kw(Keyword::On).is_some() {
            self.expect_kw(Keyword::Delete)?;
            Some(if self.eat_kw(Keyword::Cascade).is_some() {
                OnDelete::Cascade
            } else if self.eat_kw(Keyword::Restrict).is_some() {
                OnDelete::Restrict
            } else if self.eat_kw(Keyword::Set).is_some() {
                self.expect_kw(Keyword::Null)?;
                OnDelete::SetNull
            } else {
                return Err(self.error_expected());
            })
        } else {
            None
        };
        Ok(RelationDef {
            name,
            kind,
            target,
            fields,
            through,
            on_delete,
            span: self.span_from(start),
        })
    }
}
