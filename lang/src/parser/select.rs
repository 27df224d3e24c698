//! `SELECT [DISTINCT]`: projection, `FROM`, and the clauses `WHERE`, `GROUP BY`, `HAVING`,
//! `ORDER BY`, `LIMIT`, `OFFSET`, `AFTER` and `INCLUDE` (with nested and per-relation options). Clauses may come in any
//! order, each once.

use super::{PResult, Parser};
use crate::ast::{Include, OrderBy, Projection, Select, SelectItem};
use crate::diagnostic::Diagnostic;
use crate::keyword::Keyword;
use crate::span::Span;
use crate::token::TokenKind;

/// The clauses a `SELECT` or an `INCLUDE (…)` accepts, gathered in any order.
#[derive(Default)]
pub(crate) struct Clauses {
    pub(crate) filter: Option<crate::ast::Expr>,
    pub(crate) group_by: Vec<crate::ast::Expr>,
    pub(crate) having: Option<crate::ast::Expr>,
    pub(crate) order_by: Vec<OrderBy>,
    pub(crate) limit: Option<crate::ast::Expr>,
    pub(crate) offset: Option<crate::ast::Expr>,
    pub(crate) after: Option<crate::ast::Expr>,
    pub(crate) include: Vec<Include>,
}

impl Parser<'_> {
    /// `SELECT projection FROM model clause…`
    pub(crate) fn parse_select(&mut self) -> PResult<Select> {
        let start = self.expect_kw(Keyword::Select)?;
        let distinct = self.eat_kw(Keyword::Distinct).is_some();
        let projection = self.projection()?;
        self.expect_kw(Keyword::From)?;
        let from = self.ident()?;
        let c = self.clauses(true)?;
        Ok(Select {
            distinct,
            projection,
            from,
            filter: c.filter,
            group_by: c.group_by,
            having: c.having,
            order_by: c.order_by,
            limit: c.limit,
            offset: c.offset,
            after: c.after,
            include: c.include,
            span: self.span_from(start),
        })
    }

    /// `*` or `expr [AS alias], …` (also used by `RETURNING`).
    pub(crate) fn projection(&mut self) -> PResult<Projection> {
        if self.eat(TokenKind::Star).is_some() {
            return Ok(Projection::All);
        }
        let items = self.comma_list(|p| {
            let expr = p.expr()?;
            let alias = if p.eat_kw(Keyword::As).is_some() { Some(p.ident()?) } else { None };
            Ok(SelectItem { expr, alias })
        })?;
        Ok(Projection::Items(items))
    }

    /// Clauses in any order; `AFTER` only at the top level.
    pub(crate) fn clauses(&mut self, top_level: bool) -> PResult<Clauses> {
        let mut c = Clauses::default();
        loop {
            let tok = self.peek();
            if let Some(span) = self.eat_kw(Keyword::Where) {
                clause_once(c.filter.is_some(), span, "WHERE")?;
                c.filter = Some(self.expr()?);
            } else if top_level && self.at_kw(Keyword::Group) {
                self.advance();
                self.expect_kw(Keyword::By)?;
                clause_once(!c.group_by.is_empty(), tok.span, "GROUP BY")?;
                c.group_by = self.comma_list(|p| p.expr())?;
            } else if top_level && self.at_kw(Keyword::Having) {
                self.advance();
                clause_once(c.having.is_some(), tok.span, "HAVING")?;
                c.having = Some(self.expr()?);
            } else if let Some(span) = self.eat_kw(Keyword::Order) {
                clause_once(!c.order_by.is_empty(), span, "ORDER BY")?;
                self.expect_kw(Keyword::By)?;
                c.order_by = self.order_by()?;
            } else if let Some(span) = self.eat_kw(Keyword::Limit) {
                clause_once(c.limit.is_some(), span, "LIMIT")?;
                c.limit = Some(self.int_or_param()?);
            } else if let Some(span) = self.eat_kw(Keyword::Offset) {
                clause_once(c.offset.is_some(), span, "OFFSET")?;
                c.offset = Some(self.int_or_param()?);
            } else if top_level && self.at_kw(Keyword::After) {
                self.advance();
                clause_once(c.after.is_some(), tok.span, "AFTER")?;
                c.after = Some(self.expr()?);
            } else if let Some(span) = self.eat_kw(Keyword::Include) {
                clause_once(!c.include.is_empty(), span, "INCLUDE")?;
                c.include = self.comma_list(Self::include)?;
            } else {
                return Ok(c);
            }
        }
    }

    /// `expr [ASC | DESC], …`
    pub(crate) fn order_by(&mut self) -> PResult<Vec<OrderBy>> {
        self.comma_list(|p| {
            let expr = p.expr()?;
            let descending = if p.eat_kw(Keyword::Desc).is_some() {
                true
            } else {
                p.eat_kw(Keyword::Asc);
                false
            };
            Ok(OrderBy { expr, descending })
        })
    }

    /// `relation[.relation…] [( clauses )]`
    fn include(&mut self) -> PResult<Include> {
        self.nested(|p| {
            let relation = p.path()?;
            let start = relation.span;
            let c = if p.eat(TokenKind::LParen).is_some() {
                let c = p.clauses(false)?;
                p.expect(TokenKind::RParen)?;
                c
            } else {
                Clauses::default()
            };
            Ok(Include {
                relation,
                filter: c.filter,
                order_by: c.order_by,
                limit: c.limit,
                offset: c.offset,
                include: c.include,
                span: p.span_from(start),
            })
        })
    }
}

/// Reject a clause given twice.
pub(crate) fn clause_once(seen: bool, span: Span, clause: &str) -> PResult<()> {
    if seen {
        Err(Diagnostic::new(span, format!("duplicate {clause} clause"))
            .with_help(format!("give {clause} once")))
    } else {
        Ok(())
    }
}
