//! `KV GET | SET | DELETE | LIST`: raw access to tuple keys such as `['users', 'u1']`.

use super::select::clause_once;
use super::{PResult, Parser};
use crate::ast::{Kv, KvOp, KvRange, Statement};
use crate::keyword::Keyword;

impl Parser<'_> {
    /// `KV GET key` / `KV SET key value [EXPIRE IN d]` / `KV DELETE key` /
    /// `KV LIST [PREFIX key | FROM key [TO key]] [REVERSE] [LIMIT n]`
    pub(crate) fn parse_kv(&mut self) -> PResult<Statement> {
        let start = self.advance().span;
        let op = if self.eat_kw(Keyword::Get).is_some() {
            KvOp::Get(self.key_expr()?)
        } else if self.eat_kw(Keyword::Set).is_some() {
            let key = self.key_expr()?;
            let value = self.expr()?;
            let expire =
                if self.eat_kw(Keyword::Expire).is_some() { Some(self.expire()?) } else { None };
            KvOp::Set { key, value, expire }
        } else if self.eat_kw(Keyword::Delete).is_some() {
            KvOp::Delete(self.key_expr()?)
        } else if self.eat_kw(Keyword::List).is_some() {
            let range = if self.eat_kw(Keyword::Prefix).is_some() {
                KvRange::Prefix(self.key_expr()?)
            } else if self.eat_kw(Keyword::From).is_some() {
                let start = self.key_expr()?;
                let end =
                    if self.eat_kw(Keyword::To).is_some() { Some(self.key_expr()?) } else { None };
                KvRange::Range { start, end }
            } else {
                KvRange::All
            };
            let mut reverse = false;
            let mut limit = None;
            loop {
                if let Some(span) = self.eat_kw(Keyword::Reverse) {
                    clause_once(reverse, span, "REVERSE")?;
                    reverse = true;
                } else if let Some(span) = self.eat_kw(Keyword::Limit) {
                    clause_once(limit.is_some(), span, "LIMIT")?;
                    limit = Some(self.int_or_param()?);
                } else {
                    break;
                }
            }
            KvOp::List { range, reverse, limit }
        } else {
            return Err(self.error_expected());
        };
        Ok(Statement::Kv(Kv { op, span: self.span_from(start) }))
    }
}
