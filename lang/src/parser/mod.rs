//! The recursive-descent parser. [`Parser`] owns the token vector and a cursor; each
//! statement kind has its own file with its `parse_…` methods, expressions use a Pratt
//! parser (`expr.rs`), and every failed check records itself in an [`Expected`] set so an
//! error can say exactly what was wanted. Errors stop the statement; [`Parser::script`]
//! records the diagnostic, skips to the next `;` and goes on, so one run reports every
//! malformed statement of a script.

mod admin;
mod alter;
mod define;
mod delete;
mod expected;
mod expr;
mod insert;
mod kv;
mod literal;
mod queue;
mod relate;
mod select;
mod types;
mod update;
mod watch;

pub use literal::{format_duration, parse_duration};

use crate::ast::{Ident, Statement};
use crate::diagnostic::Diagnostic;
use crate::keyword::Keyword;
use crate::lexer::tokenize;
use crate::span::Span;
use crate::suggest::did_you_mean;
use crate::token::{Token, TokenKind};
use expected::{join_expected, Category, Expected};

/// Nesting deeper than this (expressions, includes, types, `EXPLAIN`) is an error, never a
/// stack overflow.
pub const MAX_DEPTH: usize = 128;

/// The deepest expression tree accepted, counted in nodes from the root to the deepest leaf
/// (a literal is 1, `a = 1` is 2, `a = 1 OR a = 2` is 3; parentheses add nothing), like
/// SQLite's `SQLITE_MAX_EXPR_DEPTH`. [`MAX_DEPTH`] bounds the parser's own recursion, but an
/// operator chain (`a = 1 OR a = 2 OR …`) is built by a loop into a left-deep tree that every
/// later walker — binding, planning, evaluation, printing, dropping — recurses through. This
/// bound keeps all of them inside a 2 MiB thread stack in a debug build (measured by
/// `tests/expr_depth.rs`); long lists of alternatives belong in `IN (…)`, which is flat.
pub const MAX_EXPR_DEPTH: usize = 1000;

pub(crate) type PResult<T> = Result<T, Diagnostic>;

/// Parser state: the tokens of one source text and a cursor into them.
pub(crate) struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    expected: Expected,
    expected_at: usize,
}

/// The statements that may begin a statement, for "expected a statement" messages.
const STATEMENT_STARTS: &[Keyword] = &[
    Keyword::Ack,
    Keyword::Alter,
    Keyword::Begin,
    Keyword::Check,
    Keyword::Commit,
    Keyword::Define,
    Keyword::Delete,
    Keyword::Dequeue,
    Keyword::Describe,
    Keyword::Drop,
    Keyword::Enqueue,
    Keyword::Explain,
    Keyword::Insert,
    Keyword::Kv,
    Keyword::Nack,
    Keyword::Purge,
    Keyword::Queue,
    Keyword::Relate,
    Keyword::Retry,
    Keyword::Rollback,
    Keyword::Select,
    Keyword::Show,
    Keyword::Unrelate,
    Keyword::Update,
    Keyword::Upsert,
    Keyword::Watch,
];

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Parser<'a> {
        Parser {
            src,
            tokens: tokenize(src),
            pos: 0,
            depth: 0,
            expected: Expected::default(),
            expected_at: 0,
        }
    }

    // ----- the script and statement level -----

    /// Parse a whole script: statements separated by `;`, recovering at `;` after errors.
    pub(crate) fn script(&mut self) -> (Vec<Statement>, Vec<Diagnostic>) {
        let mut statements = Vec::new();
        let mut diagnostics = Vec::new();
        let mut number = 0;
        loop {
            while self.eat(TokenKind::Semicolon).is_some() {}
            if self.peek().kind == TokenKind::Eof {
                break;
            }
            number += 1;
            let result = self.statement().and_then(|stmt| self.end_of_statement().map(|()| stmt));
            match result {
                Ok(stmt) => statements.push(stmt),
                Err(mut diagnostic) => {
                    diagnostic.statement = Some(number);
                    diagnostics.push(diagnostic);
                    self.recover();
                }
            }
        }
        (statements, diagnostics)
    }

    /// Parse exactly one statement, optionally followed by `;`.
    pub(crate) fn single_statement(&mut self) -> PResult<Statement> {
        let stmt = self.statement()?;
        self.eat(TokenKind::Semicolon);
        self.expect(TokenKind::Eof)?;
        Ok(stmt)
    }

    /// Parse exactly one expression.
    pub(crate) fn single_expr(&mut self) -> PResult<crate::ast::Expr> {
        let expr = self.expr()?;
        self.expect(TokenKind::Eof)?;
        Ok(expr)
    }

    fn end_of_statement(&mut self) -> PResult<()> {
        if self.at(TokenKind::Semicolon) || self.at(TokenKind::Eof) {
            Ok(())
        } else {
            Err(self.error_expected())
        }
    }

    /// Skip to the next `;` (or the end) after an error.
    fn recover(&mut self) {
        self.depth = 0;
        while !matches!(self.peek().kind, TokenKind::Semicolon | TokenKind::Eof) {
            self.pos += 1;
        }
    }

    /// Dispatch on the leading keyword.
    pub(crate) fn statement(&mut self) -> PResult<Statement> {
        let tok = self.peek();
        let kw = if tok.kind == TokenKind::Word { tok.keyword } else { None };
        match kw {
            Some(Keyword::Define) => self.parse_define(),
            Some(Keyword::Alter) => self.parse_alter(),
            Some(Keyword::Drop) => self.parse_drop(),
            Some(Keyword::Select) => self.parse_select().map(Statement::Select),
            Some(Keyword::Insert) => self.parse_insert(),
            Some(Keyword::Upsert) => self.parse_upsert(),
            Some(Keyword::Update) => self.parse_update(),
            Some(Keyword::Delete) => self.parse_delete(),
            Some(Keyword::Begin | Keyword::Commit | Keyword::Rollback) => self.parse_transaction(),
            Some(Keyword::Watch) => self.parse_watch(),
            Some(Keyword::Relate | Keyword::Unrelate) => self.parse_relate(),
            Some(Keyword::Enqueue) => self.parse_enqueue(),
            Some(Keyword::Dequeue) => self.parse_dequeue(),
            Some(Keyword::Ack | Keyword::Nack) => self.parse_settle(),
            Some(Keyword::Queue | Keyword::Retry | Keyword::Purge) => self.parse_queue_admin(),
            Some(Keyword::Show) => self.parse_show(),
            Some(Keyword::Describe) => self.parse_describe(),
            Some(Keyword::Explain) => self.parse_explain(),
            Some(Keyword::Check) => self.parse_check(),
            Some(Keyword::Kv) => self.parse_kv(),
            _ => {
                for &kw in STATEMENT_STARTS {
                    self.note_keyword(kw);
                }
                self.note(Category::Statement);
                Err(self.error_expected())
            }
        }
    }

    // ----- token access -----

    pub(crate) fn peek(&self) -> Token {
        self.nth(0)
    }

    pub(crate) fn nth(&self, n: usize) -> Token {
        let eof = Token {
            kind: TokenKind::Eof,
            keyword: None,
            span: Span::new(self.src.len(), self.src.len()),
        };
        self.tokens.get(self.pos + n).or_else(|| self.tokens.last()).copied().unwrap_or(eof)
    }

    /// Move past the current token (never past the end) and return it.
    pub(crate) fn advance(&mut self) -> Token {
        let tok = self.peek();
        if tok.kind != TokenKind::Eof {
            self.pos += 1;
        }
        tok
    }

    /// The text of a token.
    pub(crate) fn text(&self, tok: Token) -> &'a str {
        self.src.get(tok.span.range()).unwrap_or("")
    }

    /// The span of the previous token (for closing a node's span).
    pub(crate) fn prev_span(&self) -> Span {
        self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)).map_or(Span::default(), |t| t.span)
    }

    /// The span from `start` to the end of the previous token.
    pub(crate) fn span_from(&self, start: Span) -> Span {
        start.to(self.prev_span())
    }

    // ----- checks that record what was expected -----

    fn note_here(&mut self) -> &mut Expected {
        if self.expected_at != self.pos {
            self.expected = Expected::default();
            self.expected_at = self.pos;
        }
        &mut self.expected
    }

    pub(crate) fn note(&mut self, cat: Category) {
        self.note_here().category(cat);
    }

    pub(crate) fn note_keyword(&mut self, kw: Keyword) {
        self.note_here().keyword(kw);
    }

    /// Is the current token the keyword `kw`? (Records `kw` as expected when it is not.)
    pub(crate) fn at_kw(&mut self, kw: Keyword) -> bool {
        let tok = self.peek();
        if tok.kind == TokenKind::Word && tok.keyword == Some(kw) {
            true
        } else {
            self.note_keyword(kw);
            false
        }
    }

    /// Is the token `n` ahead the keyword `kw`? (Records nothing.)
    pub(crate) fn nth_is_kw(&self, n: usize, kw: Keyword) -> bool {
        let tok = self.nth(n);
        tok.kind == TokenKind::Word && tok.keyword == Some(kw)
    }

    pub(crate) fn eat_kw(&mut self, kw: Keyword) -> Option<Span> {
        if self.at_kw(kw) {
            Some(self.advance().span)
        } else {
            None
        }
    }

    pub(crate) fn expect_kw(&mut self, kw: Keyword) -> PResult<Span> {
        self.eat_kw(kw).ok_or_else(|| self.error_expected())
    }

    pub(crate) fn at(&mut self, kind: TokenKind) -> bool {
        if self.peek().kind == kind {
            true
        } else {
            self.note_here().token(kind);
            false
        }
    }

    pub(crate) fn eat(&mut self, kind: TokenKind) -> Option<Span> {
        if self.at(kind) {
            Some(self.advance().span)
        } else {
            None
        }
    }

    pub(crate) fn expect(&mut self, kind: TokenKind) -> PResult<Span> {
        self.eat(kind).ok_or_else(|| self.error_expected())
    }

    /// An identifier: a non-reserved word or a backtick-quoted name.
    pub(crate) fn ident(&mut self) -> PResult<Ident> {
        let tok = self.peek();
        match tok.kind {
            TokenKind::Word if !tok.keyword.is_some_and(Keyword::is_reserved) => {
                self.advance();
                Ok(Ident { name: self.text(tok).to_string(), span: tok.span })
            }
            TokenKind::QuotedIdent => {
                self.advance();
                let text = self.text(tok);
                let name = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
                Ok(Ident { name: name.to_string(), span: tok.span })
            }
            _ => {
                self.note(Category::Identifier);
                Err(self.error_expected())
            }
        }
    }

    /// `item (, item)*`
    pub(crate) fn comma_list<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<Vec<T>> {
        let mut items = vec![item(self)?];
        while self.eat(TokenKind::Comma).is_some() {
            items.push(item(self)?);
        }
        Ok(items)
    }

    /// `( ident, … )`
    pub(crate) fn paren_idents(&mut self) -> PResult<Vec<Ident>> {
        self.expect(TokenKind::LParen)?;
        let idents = self.comma_list(Self::ident)?;
        self.expect(TokenKind::RParen)?;
        Ok(idents)
    }

    /// Run `f` one nesting level deeper, failing past [`MAX_DEPTH`].
    pub(crate) fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            return Err(Diagnostic::new(
                self.peek().span,
                format!("nesting too deep: more than {MAX_DEPTH} levels"),
            )
            .with_help("split the expression or statement into simpler parts"));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    // ----- errors -----

    /// "expected …, found …" at the current token, with a suggestion when one is close.
    pub(crate) fn error_expected(&self) -> Diagnostic {
        let tok = self.peek();
        if let TokenKind::Error(lex) = tok.kind {
            let mut d = Diagnostic::new(tok.span, lex.message());
            if let Some(help) = lex.help() {
                d = d.with_help(help);
            }
            return d;
        }
        let expected =
            if self.expected_at == self.pos { self.expected } else { Expected::default() };
        let items = expected.describe();
        let found = self.describe_token(tok);
        let mut d =
            Diagnostic::new(tok.span, format!("expected {}, found {found}", join_expected(&items)));
        if tok.kind == TokenKind::Word {
            let text = self.text(tok);
            let mut candidates: Vec<&str> = expected.keywords().map(Keyword::as_str).collect();
            if expected.has_category(Category::Type) {
                candidates.extend(types::TYPE_NAMES);
            }
            if let Some(s) = did_you_mean(text, candidates) {
                d = d.with_help(format!("did you mean `{s}`?"));
            } else if tok.keyword.is_some_and(Keyword::is_reserved)
                && expected.has_category(Category::Identifier)
            {
                d = d.with_help(format!(
                    "`{}` is a reserved word; quote it with backticks to use it as a name: `{text}`",
                    text.to_ascii_uppercase()
                ));
            }
        }
        d
    }

    /// A diagnostic at `span` with a message.
    pub(crate) fn error_at(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(span, message)
    }

    fn describe_token(&self, tok: Token) -> String {
        let text = self.text(tok);
        match tok.kind {
            TokenKind::Eof => "end of input".to_string(),
            TokenKind::Word if tok.keyword.is_some_and(Keyword::is_reserved) => {
                format!("keyword `{}`", text.to_ascii_uppercase())
            }
            TokenKind::Word | TokenKind::QuotedIdent => format!("`{text}`"),
            TokenKind::String => format!("string {}", shorten(text)),
            TokenKind::Int | TokenKind::Float => format!("number `{}`", shorten(text)),
            TokenKind::Param => format!("parameter `{text}`"),
            _ => format!("`{text}`"),
        }
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 24;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}
