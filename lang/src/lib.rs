//! KQL front end: text in, a typed AST or a precise diagnostic out. Pure: no I/O, no catalog.
//!
//! The life of a script in this crate:
//!
//! 1. [`parse_script`] takes a file name and the source text.
//! 2. `lexer::tokenize` turns the text into a vector of 12-byte [`Token`]s that borrow
//!    their text from the source through spans; comments and whitespace vanish here.
//! 3. The parser (`parser/`, one file per statement kind) dispatches on each statement's
//!    leading keyword and descends; expressions go through a Pratt parser. Every failed
//!    check records what it wanted, so an error lists exactly what would have been accepted.
//! 4. On an error the statement's [`Diagnostic`] is recorded, the parser skips to the next
//!    `;` and goes on: one run reports every malformed statement.
//! 5. The caller gets a [`Script`]: the [`Statement`]s (every node with a byte [`Span`]) and
//!    the diagnostics, which [`Script::render_diagnostics`] prints with file, line, column,
//!    the source line and a caret.
//!
//! `Display` on any AST node prints canonical KQL, and parsing that text gives back an equal
//! tree (equality ignores spans).
//!
//! ```
//! let script = kvm_lang::parse_script("q.kql", "SELECT * FROM users WHERE age >= 18 LIMIT 10;");
//! assert!(script.is_ok());
//! assert_eq!(script.statements[0].to_string(), "SELECT * FROM users WHERE age >= 18 LIMIT 10");
//!
//! let bad = kvm_lang::parse_script("q.kql", "SELECT * FORM users");
//! assert!(bad.render_diagnostics().contains("did you mean `FROM`?"));
//! ```

pub mod ast;
mod diagnostic;
mod keyword;
mod lexer;
mod parser;
mod print;
mod span;
mod suggest;
mod token;

pub use ast::{Expr, ExprKind, Statement};
pub use diagnostic::Diagnostic;
pub use keyword::Keyword;
pub use lexer::tokenize;
pub use parser::{format_duration, parse_duration, MAX_DEPTH, MAX_EXPR_DEPTH};
pub use print::{print_script, write_assignment, ObjectKey};
pub use span::{LineCol, LineIndex, Span};
pub use token::{LexError, Token, TokenKind};

/// A parsed script: its statements and the diagnostics of the statements that failed.
#[derive(Debug, Clone)]
pub struct Script<'a> {
    /// The file name used in rendered diagnostics.
    pub file: &'a str,
    /// The source text.
    pub source: &'a str,
    /// The statements that parsed, in order.
    pub statements: Vec<Statement>,
    /// One diagnostic per malformed statement, in order.
    pub diagnostics: Vec<Diagnostic>,
}

impl Script<'_> {
    /// Whether every statement parsed.
    pub fn is_ok(&self) -> bool {
        self.diagnostics.is_empty()
    }

    /// Render every diagnostic (see [`Diagnostic::render`]), separated by blank lines.
    pub fn render_diagnostics(&self) -> String {
        let index = LineIndex::new(self.source);
        let rendered: Vec<String> =
            self.diagnostics.iter().map(|d| d.render_with(self.file, &index)).collect();
        rendered.join("\n")
    }
}

/// The largest source accepted (spans are 32-bit).
pub const MAX_SOURCE_LEN: usize = u32::MAX as usize - 1;

/// Parse a script of statements separated by `;`. Never panics; malformed statements become
/// diagnostics and the parser continues after the next `;`.
pub fn parse_script<'a>(file: &'a str, source: &'a str) -> Script<'a> {
    if source.len() > MAX_SOURCE_LEN {
        let diagnostic = Diagnostic::new(Span::new(0, 0), "script too large (over 4 GiB)");
        return Script { file, source, statements: Vec::new(), diagnostics: vec![diagnostic] };
    }
    let (statements, diagnostics) = parser::Parser::new(source).script();
    Script { file, source, statements, diagnostics }
}

/// Parse exactly one statement (a trailing `;` is allowed).
pub fn parse_statement(source: &str) -> Result<Statement, Diagnostic> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(Diagnostic::new(Span::new(0, 0), "statement too large"));
    }
    parser::Parser::new(source).single_statement()
}

/// Parse exactly one expression.
pub fn parse_expr(source: &str) -> Result<Expr, Diagnostic> {
    if source.len() > MAX_SOURCE_LEN {
        return Err(Diagnostic::new(Span::new(0, 0), "expression too large"));
    }
    parser::Parser::new(source).single_expr()
}

/// Whether `source` ends a statement: its last token is `;` and no string, quoted
/// identifier or comment is left open. (For a line editor deciding when input is complete.)
pub fn is_complete(source: &str) -> bool {
    let tokens = tokenize(source);
    let mut last = None;
    for token in &tokens {
        match token.kind {
            TokenKind::Error(
                LexError::UnterminatedString
                | LexError::UnterminatedComment
                | LexError::UnterminatedQuotedIdent,
            ) => return false,
            TokenKind::Eof => {}
            kind => last = Some(kind),
        }
    }
    last == Some(TokenKind::Semicolon)
}
