//! Field definitions: `name TYPE[?] modifier…`, the type grammar (`ENUM(…)`, `ARRAY<T>`)
//! and the modifiers (`PRIMARY KEY`, `UNIQUE`, `DEFAULT`, `CHECK`, `AS (…) VIRTUAL`, …).

use super::expected::Category;
use super::{PResult, Parser};
use crate::ast::{EnumVariant, FieldDef, FieldModifier, FieldType, ModifierKind, TypeName};
use crate::keyword::Keyword;
use crate::token::TokenKind;

/// Type names, for "did you mean" on a misspelt type.
pub(crate) const TYPE_NAMES: [&str; 13] = [
    "STRING",
    "INT",
    "FLOAT",
    "BOOL",
    "U64",
    "TIMESTAMP",
    "DATE",
    "BYTES",
    "ULID",
    "UUID",
    "OBJECT",
    "ENUM",
    "ARRAY",
];

impl Parser<'_> {
    /// `name TYPE modifier…`
    pub(crate) fn field_def(&mut self) -> PResult<FieldDef> {
        let name = self.ident()?;
        let mut ty = self.field_type()?;
        let mut modifiers = Vec::new();
        loop {
            let start = self.peek().span;
            let kind = if self.eat_kw(Keyword::Primary).is_some() {
                self.expect_kw(Keyword::Key)?;
                ModifierKind::PrimaryKey
            } else if self.eat_kw(Keyword::Unique).is_some() {
                ModifierKind::Unique
            } else if self.eat_kw(Keyword::Not).is_some() {
                self.expect_kw(Keyword::Null)?;
                ModifierKind::NotNull
            } else if self.eat_kw(Keyword::Null).is_some() {
                ty.optional = true;
                continue;
            } else if self.eat_kw(Keyword::Default).is_some() {
                ModifierKind::Default(self.expr()?)
            } else if self.eat_kw(Keyword::Check).is_some() {
                self.expect(TokenKind::LParen)?;
                let expr = self.expr()?;
                self.expect(TokenKind::RParen)?;
                ModifierKind::Check(expr)
            } else if self.eat_kw(Keyword::Lowercase).is_some() {
                ModifierKind::Lowercase
            } else if self.eat_kw(Keyword::Uppercase).is_some() {
                ModifierKind::Uppercase
            } else if self.eat_kw(Keyword::Trim).is_some() {
                ModifierKind::Trim
            } else if self.eat_kw(Keyword::Immutable).is_some() {
                ModifierKind::Immutable
            } else if self.eat_kw(Keyword::On).is_some() {
                self.expect_kw(Keyword::Update)?;
                ModifierKind::OnUpdate(self.expr()?)
            } else if self.eat_kw(Keyword::As).is_some() {
                self.expect(TokenKind::LParen)?;
                let expr = self.expr()?;
                self.expect(TokenKind::RParen)?;
                let stored = if self.eat_kw(Keyword::Stored).is_some() {
                    true
                } else {
                    self.eat_kw(Keyword::Virtual);
                    false
                };
                ModifierKind::Computed { expr, stored }
            } else {
                break;
            };
            modifiers.push(FieldModifier { kind, span: self.span_from(start) });
        }
        Ok(FieldDef { span: self.span_from(name.span), name, ty, modifiers })
    }

    /// `TYPE` or `TYPE?`
    pub(crate) fn field_type(&mut self) -> PResult<FieldType> {
        self.nested(|p| {
            let tok = p.peek();
            let kw = if tok.kind == TokenKind::Word { tok.keyword } else { None };
            let name = match kw {
                Some(Keyword::String) => TypeName::String,
                Some(Keyword::Int | Keyword::Integer) => TypeName::Int,
                Some(Keyword::Float) => TypeName::Float,
                Some(Keyword::Bool | Keyword::Boolean) => TypeName::Bool,
                Some(Keyword::U64) => TypeName::U64,
                Some(Keyword::Timestamp) => TypeName::Timestamp,
                Some(Keyword::Date) => TypeName::Date,
                Some(Keyword::Bytes) => TypeName::Bytes,
                Some(Keyword::Ulid) => TypeName::Ulid,
                Some(Keyword::Uuid) => TypeName::Uuid,
                Some(Keyword::Object) => TypeName::Object,
                Some(Keyword::Enum) => {
                    p.advance();
                    return p.enum_type(tok.span);
                }
                Some(Keyword::Array) => {
                    p.advance();
                    p.expect(TokenKind::Lt)?;
                    let inner = p.field_type()?;
                    p.expect(TokenKind::Gt)?;
                    return p.finish_type(TypeName::Array(Box::new(inner)), tok.span);
                }
                _ => {
                    p.note(Category::Type);
                    return Err(p.error_expected());
                }
            };
            p.advance();
            p.finish_type(name, tok.span)
        })
    }

    fn enum_type(&mut self, start: crate::span::Span) -> PResult<FieldType> {
        self.expect(TokenKind::LParen)?;
        let variants = self.comma_list(|p| {
            let tok = p.peek();
            if tok.kind != TokenKind::String {
                let _ = p.at(TokenKind::String);
                return Err(p.error_expected());
            }
            p.advance();
            Ok(EnumVariant { value: p.string_value(tok)?, span: tok.span })
        })?;
        self.expect(TokenKind::RParen)?;
        self.finish_type(TypeName::Enum(variants), start)
    }

    fn finish_type(&mut self, name: TypeName, start: crate::span::Span) -> PResult<FieldType> {
        let optional = self.eat(TokenKind::Question).is_some();
        Ok(FieldType { name, optional, span: self.span_from(start) })
    }
}
