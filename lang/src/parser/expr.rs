//! Expressions: a Pratt parser. `expr_bp(min)` parses a prefix (literal, path, call, array,
//! object, `NOT`, `-`, `EXISTS`, parenthesised expression) and then folds infix and
//! postfix operators whose precedence is at least `min` (see [`precedence`]).
//!
//! Every function here also returns the depth of the tree it built (a leaf is 1, a node one
//! more than its deepest child; parentheses add nothing), and a node deeper than
//! [`MAX_EXPR_DEPTH`] is an error at its operator. The loop below builds a left-deep chain
//! (`a OR b OR c …`) without recursing, but everything after the parser — binding, planning,
//! evaluation, printing, even dropping the tree — walks it recursively.

use super::expected::Category;
use super::literal::{valid_date, valid_timestamp};
use super::{PResult, Parser, MAX_EXPR_DEPTH};
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
        Ok(self.expr_bp(precedence::OR)?.0)
    }

    /// A tuple key or other operand that must not swallow a following operator: an array,
    /// a parameter, a path or a call (parsed at atom precedence).
    pub(crate) fn key_expr(&mut self) -> PResult<Expr> {
        Ok(self.expr_bp(precedence::ATOM)?.0)
    }

    /// An expression and its depth.
    fn expr_bp(&mut self, min: u8) -> PResult<(Expr, usize)> {
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

    /// The depth of a node whose deepest child has depth `child`, or an error at `op` (the
    /// node's operator, where the limit was crossed) past [`MAX_EXPR_DEPTH`].
    fn node_depth(&self, child: usize, op: Span) -> PResult<usize> {
        let depth = child + 1;
        if depth > MAX_EXPR_DEPTH {
            return Err(self
                .error_at(op, format!("expression too deep: more than {MAX_EXPR_DEPTH} levels"))
                .with_label("the limit is crossed here")
                .with_help(
                    "use `IN (…)` for a long list of alternatives, or split the expression",
                ));
        }
        Ok(depth)
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
            TokenKind::Concat => BinaryOp::Concat,
            TokenKind::Tilde => BinaryOp::Matches,
            TokenKind::NotTilde => BinaryOp::NotMatches,
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
            Keyword::Ilike => Infix::Binary(BinaryOp::ILike, 1),
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
                    Keyword::Ilike => Infix::Binary(BinaryOp::NotILike, 2),
                    Keyword::Contains => Infix::Binary(BinaryOp::NotContains, 2),
                    Keyword::Starts => Infix::Binary(BinaryOp::NotStartsWith, 2),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    fn infix_rhs(
        &mut self,
        (lhs, lhs_depth): (Expr, usize),
        op: Infix,
        prec: u8,
    ) -> PResult<(Expr, usize)> {
        let tokens = match op {
            Infix::Binary(_, n)
            | Infix::In { tokens: n, .. }
            | Infix::Between { tokens: n, .. } => n,
            Infix::IsNull => 1,
        };
        let op_span = self.peek().span.to(self.nth(tokens - 1).span);
        // A left-deep chain fails here, at its operator, before the right operand is read.
        self.node_depth(lhs_depth, op_span)?;
        let start = lhs.span;
        let boxed = Box::new(lhs);
        self.pos += tokens;
        let (kind, child) = match op {
            Infix::Binary(op, _) => {
                if matches!(op, BinaryOp::StartsWith | BinaryOp::NotStartsWith) {
                    self.expect_kw(Keyword::With)?;
                }
                let (rhs, depth) = self.expr_bp(prec + 1)?;
                (ExprKind::Binary { op, lhs: boxed, rhs: Box::new(rhs) }, depth)
            }
            Infix::In { negated, .. } => {
                let (rhs, depth) =
                    if self.at(TokenKind::LParen) && self.nth_is_kw(1, Keyword::Select) {
                        (InRhs::Select(self.subquery()?), 1)
                    } else if self.at(TokenKind::LParen) {
                        let open = self.advance().span;
                        let (list, depth) = self.expr_list(TokenKind::RParen, open)?;
                        (InRhs::List(list), depth)
                    } else {
                        let (e, depth) = self.expr_bp(precedence::ATOM)?;
                        (InRhs::Expr(Box::new(e)), depth)
                    };
                (ExprKind::In { expr: boxed, rhs, negated }, depth)
            }
            Infix::Between { negated, .. } => {
                let (low, low_depth) = self.expr_bp(precedence::ADD)?;
                self.expect_kw(Keyword::And)?;
                let (high, high_depth) = self.expr_bp(precedence::ADD)?;
                let kind = ExprKind::Between {
                    expr: boxed,
                    low: Box::new(low),
                    high: Box::new(high),
                    negated,
                };
                (kind, low_depth.max(high_depth))
            }
            Infix::IsNull => {
                let negated = self.eat_kw(Keyword::Not).is_some();
                self.expect_kw(Keyword::Null)?;
                (ExprKind::IsNull { expr: boxed, negated }, 0)
            }
        };
        let depth = self.node_depth(lhs_depth.max(child), op_span)?;
        Ok((Expr { kind, span: self.span_from(start) }, depth))
    }

    fn prefix(&mut self) -> PResult<(Expr, usize)> {
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
                    let span = tok.span.to(next.span);
                    return Ok((Expr { kind: ExprKind::Literal(literal), span }, 1));
                }
                let (operand, depth) = self.expr_bp(precedence::NEG)?;
                let span = tok.span.to(operand.span);
                let kind = ExprKind::Unary { op: UnaryOp::Neg, expr: Box::new(operand) };
                Ok((Expr { kind, span }, self.node_depth(depth, tok.span)?))
            }
            TokenKind::Word if tok.keyword == Some(Keyword::Not) => {
                self.advance();
                let (operand, depth) = self.expr_bp(precedence::NOT)?;
                let span = tok.span.to(operand.span);
                let kind = ExprKind::Unary { op: UnaryOp::Not, expr: Box::new(operand) };
                Ok((Expr { kind, span }, self.node_depth(depth, tok.span)?))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> PResult<(Expr, usize)> {
        let tok = self.peek();
        let literal = |kind| Ok((Expr { kind: ExprKind::Literal(kind), span: tok.span }, 1));
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
                Ok((Expr { kind: ExprKind::Param(self.param_value(tok)?), span: tok.span }, 1))
            }
            TokenKind::LParen => {
                self.advance();
                let (mut inner, depth) = self.expr_bp(precedence::OR)?;
                self.expect(TokenKind::RParen)?;
                inner.span = self.span_from(tok.span);
                Ok((inner, depth))
            }
            TokenKind::LBracket => {
                self.advance();
                let (items, depth) = self.expr_list(TokenKind::RBracket, tok.span)?;
                let e = Expr { kind: ExprKind::Array(items), span: self.span_from(tok.span) };
                Ok((e, self.node_depth(depth, tok.span)?))
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
                Some(Keyword::Case) => self.case(),
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

    /// Items up to `close` (the opener already consumed; a trailing comma is allowed), and
    /// the depth of the deepest (0 for none).
    fn expr_list(&mut self, close: TokenKind, open: Span) -> PResult<(Vec<Expr>, usize)> {
        let mut items = Vec::new();
        let mut deepest = 0;
        loop {
            if self.eat(close).is_some() {
                return Ok((items, deepest));
            }
            if self.peek().kind == TokenKind::Eof {
                return Err(self.unclosed(open, close));
            }
            let (item, depth) = self.expr_bp(precedence::OR)?;
            items.push(item);
            deepest = deepest.max(depth);
            if self.eat(TokenKind::Comma).is_none() {
                self.expect(close)?;
                return Ok((items, deepest));
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

    fn object(&mut self) -> PResult<(Expr, usize)> {
        let open = self.advance().span;
        let mut fields = Vec::new();
        let mut deepest = 0;
        loop {
            if self.eat(TokenKind::RBrace).is_some() {
                break;
            }
            if self.peek().kind == TokenKind::Eof {
                return Err(self.unclosed(open, TokenKind::RBrace));
            }
            let key = self.object_key()?;
            self.expect(TokenKind::Colon)?;
            let (value, depth) = self.expr_bp(precedence::OR)?;
            deepest = deepest.max(depth);
            fields.push(ObjectField { key, value });
            if self.eat(TokenKind::Comma).is_none() {
                self.expect(TokenKind::RBrace)?;
                break;
            }
        }
        let e = Expr { kind: ExprKind::Object(fields), span: self.span_from(open) };
        Ok((e, self.node_depth(deepest, open)?))
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
    fn path_or_call(&mut self) -> PResult<(Expr, usize)> {
        let first = self.ident()?;
        if self.peek().kind == TokenKind::LParen {
            let open = self.advance().span;
            let (args, deepest) =
                if self.peek().kind == TokenKind::Star && self.nth(1).kind == TokenKind::RParen {
                    self.pos += 2;
                    (CallArgs::Star, 0)
                } else if self.eat_kw(Keyword::Distinct).is_some() {
                    // `COUNT(DISTINCT x)`.
                    let (e, depth) = self.expr_bp(precedence::OR)?;
                    self.expect(TokenKind::RParen)?;
                    (CallArgs::Distinct(Box::new(e)), depth)
                } else {
                    let (list, depth) = self.expr_list(TokenKind::RParen, open)?;
                    (CallArgs::List(list), depth)
                };
            let span = self.span_from(first.span);
            let depth = self.node_depth(deepest, first.span)?;
            return Ok((Expr { kind: ExprKind::Call { name: first, args }, span }, depth));
        }
        let path = self.path_rest(first)?;
        let span = path.span;
        Ok((Expr { kind: ExprKind::Path(path), span }, 1))
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

    /// `( SELECT … )`. Out of line: a `Select` is large, and the expression parser's frames
    /// (on the stack once per level of nesting) must not hold one.
    #[inline(never)]
    fn subquery(&mut self) -> PResult<Box<crate::ast::Select>> {
        self.advance();
        let select = self.nested(|p| p.parse_select())?;
        self.expect(TokenKind::RParen)?;
        Ok(Box::new(select))
    }

    /// `CASE [operand] WHEN w THEN v … [ELSE e] END` (out of line, as `subquery`).
    #[inline(never)]
    fn case(&mut self) -> PResult<(Expr, usize)> {
        let start = self.advance().span;
        let mut deepest = 0;
        let mut sub = |p: &mut Self| -> PResult<Box<Expr>> {
            let (e, depth) = p.expr_bp(precedence::OR)?;
            deepest = deepest.max(depth);
            Ok(Box::new(e))
        };
        let operand = if self.at_kw(Keyword::When) { None } else { Some(sub(self)?) };
        let mut branches = Vec::new();
        while self.eat_kw(Keyword::When).is_some() {
            let when = sub(self)?;
            self.expect_kw(Keyword::Then)?;
            let then = sub(self)?;
            branches.push((*when, *then));
        }
        if branches.is_empty() {
            self.expect_kw(Keyword::When)?;
        }
        let otherwise = if self.eat_kw(Keyword::Else).is_some() { Some(sub(self)?) } else { None };
        self.expect_kw(Keyword::End)?;
        let span = self.span_from(start);
        let depth = self.node_depth(deepest, start)?;
        Ok((Expr { kind: ExprKind::Case { operand, branches, otherwise }, span }, depth))
    }

    /// `EXISTS relation [( [WHERE filter] )]`, or `EXISTS (SELECT …)`.
    #[inline(never)]
    fn exists(&mut self) -> PResult<(Expr, usize)> {
        let start = self.advance().span;
        if self.at(TokenKind::LParen) && self.nth_is_kw(1, Keyword::Select) {
            let select = self.subquery()?;
            let span = self.span_from(start);
            return Ok((Expr { kind: ExprKind::ExistsSelect(select), span }, 1));
        }
        let relation = self.path()?;
        let mut filter = None;
        let mut deepest = 0;
        if self.eat(TokenKind::LParen).is_some() {
            if self.eat_kw(Keyword::Where).is_some() {
                let (e, depth) = self.expr_bp(precedence::OR)?;
                filter = Some(Box::new(e));
                deepest = depth;
            }
            self.expect(TokenKind::RParen)?;
        }
        let e = Expr { kind: ExprKind::Exists { relation, filter }, span: self.span_from(start) };
        Ok((e, self.node_depth(deepest, start)?))
    }

    /// `DATE 'YYYY-MM-DD'` / `TIMESTAMP '…'`.
    fn typed_literal(&mut self, kw: Keyword) -> PResult<(Expr, usize)> {
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
        Ok((Expr { kind: ExprKind::Literal(literal), span: start.to(tok.span) }, 1))
    }
}
