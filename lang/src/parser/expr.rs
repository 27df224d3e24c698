//! Expressions: a Pratt parser. `expr_bp(min)` parses a prefix (literal, path, call, array,
//! object, `NOT`, `-`, `EXISTS`, parenthesised expression) and then folds infix and
//! postfix operators whose precedence is at least `min` (see [`precedence`]).

use super::expected::Category;
use super::literal::{valid_date, valid_timestamp};
use super::{PResult, Parser};
use crate::ast::{
    precedence, BinaryOp, CallArgs, Expr, ExprKind, Ident, InRhs, Literal, ObjectField, Path,
    UnaryOp,
};
use crate::diagnostic::Diagnostic;
use crate::keyword::Keyword;
use crate::span::Span;
use crate::token::TokenKind;

/// An infix or postfix operator found at the cursor, with how many tokens it spans.
enum Infix {
    Binary(BinaryOp, usize),
    In { negated: bool, tokens: usize },
    Between { negated: bool, tokens: usize },
    IsNull,
}

impl Parser<'_> {
    /// A full expression.
    pub(crate) fn expr(&mut self) -> PResult<Expr> {
        self.expr_bp(precedence::OR)
    }

    /// A tuple key or other operand that must not swallow a following operator: an array,
    /// a parameter, a path or a call (parsed at atom precedence).
    pub(crate) fn key_expr(&mut self) -> PResult<Expr> {
        self.expr_bp(precedence::ATOM)
    }

    fn expr_bp(&mut self, min: u8) -> PResult<Expr> {
        self.nested(|p| {
            let mut lhs = p.prefix()?;
            while let Some(op) = p.infix() {
                let prec = match op {
                    Infix::Binary(op, _) => op.precedence(),
                    _ => precedence::CMP,
                };
                if prec < min {
                    break;
                }
                lhs = p.infix_rhs(lhs, op, prec)?;
            }
            Ok(lhs)
        })
    }

    /// Recognise an operator at the cursor without consuming it.
    fn infix(&self) -> Option<Infix> {
        let tok = self.peek();
        let op = match tok.kind {
            TokenKind::Eq => BinaryOp::Eq,
            TokenKind::NotEq => BinaryOp::NotEq,
            TokenKind::Lt => BinaryOp::Lt,
            TokenKind::LtEq => BinaryOp::LtEq,
            TokenKind::Gt => BinaryOp::Gt,
            TokenKind::GtEq => BinaryOp::GtEq,
            TokenKind::Plus => BinaryOp::Add,
            TokenKind::Minus => BinaryOp::Sub,
            TokenKind::Star => BinaryOp::Mul,
            TokenKind::Slash => BinaryOp::Div,
            TokenKind::Percent => BinaryOp::Rem,
            TokenKind::Word => return self.keyword_infix(),
            _ => return None,
        };
        Some(Infix::Binary(op, 1))
    }

    fn keyword_infix(&self) -> Option<Infix> {
        let kw = self.peek().keyword?;
        Some(match kw {
            Keyword::Or => Infix::Binary(BinaryOp::Or, 1),
            Keyword::And => Infix::Binary(BinaryOp::And, 1),
            Keyword::Like => Infix::Binary(BinaryOp::Like, 1),
            Keyword::Contains => Infix::Binary(BinaryOp::Contains, 1),
            Keyword::Starts => Infix::Binary(BinaryOp::StartsWith, 1),
            Keyword::In => Infix::In { negated: false, tokens: 1 },
            Keyword::Between => Infix::Between { negated: false, tokens: 1 },
            Keyword::Is => Infix::IsNull,
            Keyword::Not => {
                let next = self.nth(1);
                match next.keyword.filter(|_| next.kind == TokenKind::Word)? {
                    Keyword::In => Infix::In { negated: true, tokens: 2 },
                    Keyword::Between => Infix::Between { negated: true, tokens: 2 },
                    Keyword::Like => Infix::Binary(BinaryOp::NotLike, 2),
                    Keyword::Contains => Infix::Binary(BinaryOp::NotContains, 2),
                    Keyword::Starts => Infix::Binary(BinaryOp::NotStartsWith, 2),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    fn infix_rhs(&mut self, lhs: Expr, op: Infix, prec: u8) -> PResult<Expr> {
        let start = lhs.span;
        let boxed = Box::new(lhs);
        let kind = match op {
            Infix::Binary(op, tokens) => {
                self.pos += tokens;
                if matches!(op, BinaryOp::StartsWith | BinaryOp::NotStartsWith) {
                    self.expect_kw(Keyword::With)?;
                }
                let rhs = self.expr_bp(prec + 1)?;
                ExprKind::Binary { op, lhs: boxed, rhs: Box::new(rhs) }
            }
            Infix::In { negated, tokens } => {
                self.pos += tokens;
                let rhs = if self.at(TokenKind::LParen) {
                    let open = self.advance().span;
                    let list = self.expr_list(TokenKind::RParen, open)?;
                    InRhs::List(list)
                } else {
                    InRhs::Expr(Box::new(self.expr_bp(precedence::ATOM)?))
                };
                ExprKind::In { expr: boxed, rhs, negated }
            }
            Infix::Between { negated, tokens } => {
                self.pos += tokens;
                let low = self.expr_bp(precedence::ADD)?;
                self.expect_kw(Keyword::And)?;
                let high = self.expr_bp(precedence::ADD)?;
                ExprKind::Between { expr: boxed, low: Box::new(low), high: Box::new(high), negated }
            }
            Infix::IsNull => {
                self.advance();
                let negated = self.eat_kw(Keyword::Not).is_some();
                self.expect_kw(Keyword::Null)?;
                ExprKind::IsNull { expr: boxed, negated }
            }
        };
        Ok(Expr { kind, span: self.span_from(start) })
    }

    fn prefix(&mut self) -> PResult<Expr> {
        let tok = self.peek();
        match tok.kind {
            TokenKind::Minus => {
                self.advance();
                let next = self.peek();
                // `-5` is one literal, so that i64::MIN is writable and prints back the same.
                let literal = match next.kind {
                    TokenKind::Int => {
                        Some(Literal::Int(self.int_value(next, true, tok.span.to(next.span))?))
                    }
                    TokenKind::Float => Some(Literal::Float(self.float_value(
                        next,
                        true,
                        tok.span.to(next.span),
                    )?)),
                    _ => None,
                };
                if let Some(literal) = literal {
                    self.advance();
                    return Ok(Expr {
                        kind: ExprKind::Literal(literal),
                        span: tok.span.to(next.span),
                    });
                }
                let operand = self.expr_bp(precedence::NEG)?;
                let span = tok.span.to(operand.span);
                Ok(Expr {
                    kind: ExprKind::Unary { op: UnaryOp::Neg, expr: Box::new(operand) },
                    span,
                })
            }
            TokenKind::Word if tok.keyword == Some(Keyword::Not) => {
                self.advance();
                let operand = self.expr_bp(precedence::NOT)?;
                let span = tok.span.to(operand.span);
                Ok(Expr {
                    kind: ExprKind::Unary { op: UnaryOp::Not, expr: Box::new(operand) },
                    span,
                })
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> PResult<Expr> {
        let tok = self.peek();
        let literal = |kind| Ok(Expr { kind: ExprKind::Literal(kind), span: tok.span });
        match tok.kind {
            TokenKind::Int => {
                self.advance();
                literal(Literal::Int(self.int_value(tok, false, tok.span)?))
            }
            TokenKind::Float => {
                self.advance();
                literal(Literal::Float(self.float_value(tok, false, tok.span)?))
            }
            TokenKind::String => {
                self.advance();
                literal(Literal::String(self.string_value(tok)?))
            }
            TokenKind::Param => {
                self.advance();
                Ok(Expr { kind: ExprKind::Param(self.param_value(tok)?), span: tok.span })
            }
            TokenKind::LParen => {
                self.advance();
                let mut inner = self.expr()?;
                self.expect(TokenKind::RParen)?;
                inner.span = self.span_from(tok.span);
                Ok(inner)
            }
            TokenKind::LBracket => {
                self.advance();
                let items = self.expr_list(TokenKind::RBracket, tok.span)?;
                Ok(Expr { kind: ExprKind::Array(items), span: self.span_from(tok.span) })
            }
            TokenKind::LBrace => self.object(),
            TokenKind::Word => match tok.keyword {
                Some(Keyword::Null) => {
                    self.advance();
                    literal(Literal::Null)
                }
                Some(Keyword::True) => {
                    self.advance();
                    literal(Literal::Bool(true))
                }
                Some(Keyword::False) => {
                    self.advance();
                    literal(Literal::Bool(false))
                }
                Some(Keyword::Exists) => self.exists(),
                Some(kw @ (Keyword::Date | Keyword::Timestamp))
                    if self.nth(1).kind == TokenKind::String =>
                {
                    self.typed_literal(kw)
                }
                Some(kw) if kw.is_reserved() => {
                    self.note(Category::Expression);
                    Err(self.error_expected())
                }
                _ => self.path_or_call(),
            },
            TokenKind::QuotedIdent => self.path_or_call(),
            _ => {
                self.note(Category::Expression);
                Err(self.error_expected())
            }
        }
    }

    /// Items up to `close` (the opener already consumed); a trailing comma is allowed.
    fn expr_list(&mut self, close: TokenKind, open: Span) -> PResult<Vec<Expr>> {
        let mut items = Vec::new();
        loop {
            if self.eat(close).is_some() {
                return Ok(items);
            }
            if self.peek().kind == TokenKind::Eof {
                return Err(self.unclosed(open, close));
            }
            items.push(self.expr()?);
            if self.eat(TokenKind::Comma).is_none() {
                self.expect(close)?;
                return Ok(items);
            }
        }
    }

    fn unclosed(&self, open: Span, close: TokenKind) -> Diagnostic {
        self.error_at(
            open,
            format!("unclosed delimiter: expected {} before the end of input", close.describe()),
        )
        .with_label("opened here")
    }

    fn object(&mut self) -> PResult<Expr> {
        let open = self.advance().span;
        let fields = {
            let p = &mut *self;
            let mut fields = Vec::new();
            loop {
                if p.eat(TokenKind::RBrace).is_some() {
                    break fields;
                }
                if p.peek().kind == TokenKind::Eof {
                    return Err(p.unclosed(open, TokenKind::RBrace));
                }
                let key = p.object_key()?;
                p.expect(TokenKind::Colon)?;
                let value = p.expr()?;
                fields.push(ObjectField { key, value });
                if p.eat(TokenKind::Comma).is_none() {
                    p.expect(TokenKind::RBrace)?;
                    break fields;
                }
            }
        };
        Ok(Expr { kind: ExprKind::Object(fields), span: self.span_from(open) })
    }

    /// An object key: any word (reserved ones too), a quoted identifier or a string.
    fn object_key(&mut self) -> PResult<Ident> {
        let tok = self.peek();
        match tok.kind {
            TokenKind::Word => {
                self.advance();
                Ok(Ident { name: self.text(tok).to_string(), span: tok.span })
            }
            TokenKind::String => {
                self.advance();
                Ok(Ident { name: self.string_value(tok)?, span: tok.span })
            }
            _ => self.ident(),
        }
    }

    /// `ident(.ident)*`, or `name(args)`.
    fn path_or_call(&mut self) -> PResult<Expr> {
        let first = self.ident()?;
        if self.peek().kind == TokenKind::LParen {
            let open = self.advance().span;
            let args =
                if self.peek().kind == TokenKind::Star && self.nth(1).kind == TokenKind::RParen {
                    self.pos += 2;
                    CallArgs::Star
                } else {
                    CallArgs::List(self.expr_list(TokenKind::RParen, open)?)
                };
            let span = self.span_from(first.span);
            return Ok(Expr { kind: ExprKind::Call { name: first, args }, span });
        }
        let path = self.path_rest(first)?;
        let span = path.span;
        Ok(Expr { kind: ExprKind::Path(path), span })
    }

    /// A dotted path.
    pub(crate) fn path(&mut self) -> PResult<Path> {
        let first = self.ident()?;
        self.path_rest(first)
    }

    fn path_rest(&mut self, first: Ident) -> PResult<Path> {
        let start = first.span;
        let mut segments = vec![first];
        while self.eat(TokenKind::Dot).is_some() {
            segments.push(self.ident()?);
        }
        Ok(Path { segments, span: self.span_from(start) })
    }

    /// `EXISTS relation [( [WHERE filter] )]`.
    fn exists(&mut self) -> PResult<Expr> {
        let start = self.advance().span;
        let relation = self.path()?;
        let mut filter = None;
        if self.eat(TokenKind::LParen).is_some() {
            if self.eat_kw(Keyword::Where).is_some() {
                filter = Some(Box::new(self.expr()?));
            }
            self.expect(TokenKind::RParen)?;
        }
        Ok(Expr { kind: ExprKind::Exists { relation, filter }, span: self.span_from(start) })
    }

    /// `DATE 'YYYY-MM-DD'` / `TIMESTAMP '…'`.
    fn typed_literal(&mut self, kw: Keyword) -> PResult<Expr> {
        let start = self.advance().span;
        let tok = self.advance();
        let text = self.string_value(tok)?;
        let literal = if kw == Keyword::Date {
            if !valid_date(&text) {
                return Err(self
                    .error_at(tok.span, "invalid date literal")
                    .with_help("write dates as 'YYYY-MM-DD'"));
            }
            Literal::Date(text)
        } else {
            if !valid_timestamp(&text) {
                return Err(self
                    .error_at(tok.span, "invalid timestamp literal")
                    .with_help("write timestamps as 'YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM]'"));
            }
            Literal::Timestamp(text)
        };
        Ok(Expr { kind: ExprKind::Literal(literal), span: start.to(tok.span) })
    }
}
