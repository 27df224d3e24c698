//! Tokens: a kind, an optional keyword classification and a span. Text is borrowed from the
//! source through the span, so lexing allocates nothing but the token vector.

use crate::keyword::Keyword;
use crate::span::Span;

/// What a token is. Words (identifiers and keywords alike) are [`TokenKind::Word`]; the lexer
/// classifies keywords into [`Token::keyword`] and the parser decides by context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A bare word: `users`, `SELECT`, `u64`.
    Word,
    /// A backtick-quoted identifier: `` `order` ``.
    QuotedIdent,
    /// A string literal in single or double quotes, escapes not yet decoded.
    String,
    /// An unsigned integer literal.
    Int,
    /// A float literal (`1.5`, `2e10`).
    Float,
    /// A parameter: `$1` or `$name`.
    Param,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `,`
    Comma,
    /// `;`
    Semicolon,
    /// `:`
    Colon,
    /// `.`
    Dot,
    /// `*`
    Star,
    /// `+`
    Plus,
    /// `-`
    Minus,
    /// `/`
    Slash,
    /// `%`
    Percent,
    /// `=` (or `==`)
    Eq,
    /// `!=` (or `<>`)
    NotEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `+=`
    PlusEq,
    /// `-=`
    MinusEq,
    /// `?`
    Question,
    /// `||` (string concatenation)
    Concat,
    /// `~` (matches a regular expression)
    Tilde,
    /// `!~` (does not match a regular expression)
    NotTilde,
    /// End of input.
    Eof,
    /// Text the lexer could not turn into a token; the parser reports it.
    Error(LexError),
}

/// Why the lexer produced an error token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LexError {
    /// A string literal with no closing quote.
    UnterminatedString,
    /// A `/* …` comment with no closing `*/`.
    UnterminatedComment,
    /// A `` `… `` identifier with no closing backtick.
    UnterminatedQuotedIdent,
    /// A character that starts no token.
    UnexpectedChar,
    /// `$` not followed by a number or a name.
    BadParam,
    /// A number running into letters, such as `5s`.
    NumberSuffix,
    /// `!` not followed by `=`.
    Bang,
}

/// One token: 12 bytes, text borrowed from the source via `span`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// For [`TokenKind::Word`], the keyword it spells, if any.
    pub keyword: Option<Keyword>,
    /// Where it is.
    pub span: Span,
}

impl TokenKind {
    /// How the token kind reads in "expected …" messages.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Word | TokenKind::QuotedIdent => "an identifier",
            TokenKind::String => "a string",
            TokenKind::Int => "an integer",
            TokenKind::Float => "a number",
            TokenKind::Param => "a parameter",
            TokenKind::LParen => "`(`",
            TokenKind::RParen => "`)`",
            TokenKind::LBracket => "`[`",
            TokenKind::RBracket => "`]`",
            TokenKind::LBrace => "`{`",
            TokenKind::RBrace => "`}`",
            TokenKind::Comma => "`,`",
            TokenKind::Semicolon => "`;`",
            TokenKind::Colon => "`:`",
            TokenKind::Dot => "`.`",
            TokenKind::Star => "`*`",
            TokenKind::Plus => "`+`",
            TokenKind::Minus => "`-`",
            TokenKind::Slash => "`/`",
            TokenKind::Percent => "`%`",
            TokenKind::Eq => "`=`",
            TokenKind::NotEq => "`!=`",
            TokenKind::Lt => "`<`",
            TokenKind::LtEq => "`<=`",
            TokenKind::Gt => "`>`",
            TokenKind::GtEq => "`>=`",
            TokenKind::PlusEq => "`+=`",
            TokenKind::MinusEq => "`-=`",
            TokenKind::Question => "`?`",
            TokenKind::Concat => "`||`",
            TokenKind::Tilde => "`~`",
            TokenKind::NotTilde => "`!~`",
            TokenKind::Eof => "end of input",
            TokenKind::Error(_) => "invalid input",
        }
    }

    /// A small index for the parser's "expected" bit set (punctuation only).
    pub(crate) fn bit(self) -> u32 {
        match self {
            TokenKind::Word => 0,
            TokenKind::QuotedIdent => 1,
            TokenKind::String => 2,
            TokenKind::Int => 3,
            TokenKind::Float => 4,
            TokenKind::Param => 5,
            TokenKind::LParen => 6,
            TokenKind::RParen => 7,
            TokenKind::LBracket => 8,
            TokenKind::RBracket => 9,
            TokenKind::LBrace => 10,
            TokenKind::RBrace => 11,
            TokenKind::Comma => 12,
            TokenKind::Semicolon => 13,
            TokenKind::Colon => 14,
            TokenKind::Dot => 15,
            TokenKind::Star => 16,
            TokenKind::Plus => 17,
            TokenKind::Minus => 18,
            TokenKind::Slash => 19,
            TokenKind::Percent => 20,
            TokenKind::Eq => 21,
            TokenKind::NotEq => 22,
            TokenKind::Lt => 23,
            TokenKind::LtEq => 24,
            TokenKind::Gt => 25,
            TokenKind::GtEq => 26,
            TokenKind::PlusEq => 27,
            TokenKind::MinusEq => 28,
            TokenKind::Question => 29,
            TokenKind::Concat => 30,
            TokenKind::Tilde => 31,
            TokenKind::NotTilde => 32,
            TokenKind::Eof => 33,
            TokenKind::Error(_) => 34,
        }
    }

    /// The inverse of [`TokenKind::bit`], for rendering an expected set.
    pub(crate) const BY_BIT: [TokenKind; 34] = [
        TokenKind::Word,
        TokenKind::QuotedIdent,
        TokenKind::String,
        TokenKind::Int,
        TokenKind::Float,
        TokenKind::Param,
        TokenKind::LParen,
        TokenKind::RParen,
        TokenKind::LBracket,
        TokenKind::RBracket,
        TokenKind::LBrace,
        TokenKind::RBrace,
        TokenKind::Comma,
        TokenKind::Semicolon,
        TokenKind::Colon,
        TokenKind::Dot,
        TokenKind::Star,
        TokenKind::Plus,
        TokenKind::Minus,
        TokenKind::Slash,
        TokenKind::Percent,
        TokenKind::Eq,
        TokenKind::NotEq,
        TokenKind::Lt,
        TokenKind::LtEq,
        TokenKind::Gt,
        TokenKind::GtEq,
        TokenKind::PlusEq,
        TokenKind::MinusEq,
        TokenKind::Question,
        TokenKind::Concat,
        TokenKind::Tilde,
        TokenKind::NotTilde,
        TokenKind::Eof,
    ];
}

impl LexError {
    /// The diagnostic message for this error.
    pub fn message(self) -> &'static str {
        match self {
            LexError::UnterminatedString => "unterminated string literal",
            LexError::UnterminatedComment => "unterminated block comment",
            LexError::UnterminatedQuotedIdent => "unterminated quoted identifier",
            LexError::UnexpectedChar => "unexpected character",
            LexError::BadParam => {
                "`$` must be followed by a parameter number or name, e.g. `$1` or `$user`"
            }
            LexError::NumberSuffix => "invalid number",
            LexError::Bang => "unexpected `!`",
        }
    }

    /// A hint to show below the caret, if there is a useful one.
    pub fn help(self) -> Option<&'static str> {
        match self {
            LexError::UnterminatedString => Some("close the string with the quote it started with"),
            LexError::UnterminatedComment => Some("close the comment with `*/`"),
            LexError::UnterminatedQuotedIdent => Some("close the identifier with a backtick"),
            LexError::NumberSuffix => Some("durations are strings: write '5s', not 5s"),
            LexError::Bang => Some("did you mean `!=`?"),
            LexError::UnexpectedChar | LexError::BadParam => None,
        }
    }
}
