//! The lexer: source text to a vector of [`Token`]s. Comments and whitespace are skipped;
//! malformed input becomes an error token so the parser can report it in place and go on.

use crate::keyword::Keyword;
use crate::span::Span;
use crate::token::{LexError, Token, TokenKind};

/// Lex all of `source`. The result always ends with one [`TokenKind::Eof`] token.
pub fn tokenize(source: &str) -> Vec<Token> {
    let mut lexer = Lexer { src: source.as_bytes(), pos: 0 };
    let mut tokens = Vec::with_capacity(source.len() / 5 + 1);
    loop {
        let token = lexer.next_token();
        tokens.push(token);
        if token.kind == TokenKind::Eof {
            return tokens;
        }
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    fn byte(&self, at: usize) -> u8 {
        self.src.get(at).copied().unwrap_or(0)
    }

    fn token(&self, kind: TokenKind, start: usize) -> Token {
        Token { kind, keyword: None, span: Span::new(start, self.pos) }
    }

    /// Skip whitespace and comments; returns an error token for an unterminated comment.
    fn skip_trivia(&mut self) -> Option<Token> {
        loop {
            match self.byte(self.pos) {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.pos += 1,
                b'-' if self.byte(self.pos + 1) == b'-' => {
                    while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
                        self.pos += 1;
                    }
                }
                b'/' if self.byte(self.pos + 1) == b'*' => {
                    let start = self.pos;
                    self.pos += 2;
                    loop {
                        if self.pos >= self.src.len() {
                            return Some(Token {
                                kind: TokenKind::Error(LexError::UnterminatedComment),
                                keyword: None,
                                span: Span::new(start, start + 2),
                            });
                        }
                        if self.src[self.pos] == b'*' && self.byte(self.pos + 1) == b'/' {
                            self.pos += 2;
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => return None,
            }
        }
    }

    fn next_token(&mut self) -> Token {
        if let Some(error) = self.skip_trivia() {
            return error;
        }
        let start = self.pos;
        let Some(&b) = self.src.get(start) else {
            return self.token(TokenKind::Eof, start);
        };
        self.pos += 1;
        let kind = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => return self.word(start),
            b'0'..=b'9' => self.number(),
            b'\'' | b'"' => self.string(b),
            b'`' => self.quoted_ident(),
            b'$' => self.param(),
            b'(' => TokenKind::LParen,
            b')' => TokenKind::RParen,
            b'[' => TokenKind::LBracket,
            b']' => TokenKind::RBracket,
            b'{' => TokenKind::LBrace,
            b'}' => TokenKind::RBrace,
            b',' => TokenKind::Comma,
            b';' => TokenKind::Semicolon,
            b':' => TokenKind::Colon,
            b'.' => TokenKind::Dot,
            b'*' => TokenKind::Star,
            b'/' => TokenKind::Slash,
            b'%' => TokenKind::Percent,
            b'?' => TokenKind::Question,
            b'+' => self.then_eq(TokenKind::Plus, TokenKind::PlusEq),
            b'-' => self.then_eq(TokenKind::Minus, TokenKind::MinusEq),
            b'=' => self.then_eq(TokenKind::Eq, TokenKind::Eq),
            b'>' => self.then_eq(TokenKind::Gt, TokenKind::GtEq),
            b'<' => {
                if self.byte(self.pos) == b'>' {
                    self.pos += 1;
                    TokenKind::NotEq
                } else {
                    self.then_eq(TokenKind::Lt, TokenKind::LtEq)
                }
            }
            b'~' => TokenKind::Tilde,
            b'|' if self.byte(self.pos) == b'|' => {
                self.pos += 1;
                TokenKind::Concat
            }
            b'!' => {
                if self.byte(self.pos) == b'=' {
                    self.pos += 1;
                    TokenKind::NotEq
                } else if self.byte(self.pos) == b'~' {
                    self.pos += 1;
                    TokenKind::NotTilde
                } else {
                    TokenKind::Error(LexError::Bang)
                }
            }
            _ => {
                // Skip the rest of a multi-byte character so spans stay on char boundaries.
                while self.pos < self.src.len() && (self.src[self.pos] & 0xC0) == 0x80 {
                    self.pos += 1;
                }
                TokenKind::Error(LexError::UnexpectedChar)
            }
        };
        self.token(kind, start)
    }

    fn then_eq(&mut self, alone: TokenKind, with_eq: TokenKind) -> TokenKind {
        if self.byte(self.pos) == b'=' {
            self.pos += 1;
            with_eq
        } else {
            alone
        }
    }

    fn eat_word_chars(&mut self) {
        while matches!(self.byte(self.pos), b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_') {
            self.pos += 1;
        }
    }

    fn word(&mut self, start: usize) -> Token {
        self.eat_word_chars();
        let text = std::str::from_utf8(&self.src[start..self.pos]).unwrap_or("");
        Token {
            kind: TokenKind::Word,
            keyword: Keyword::from_word(text),
            span: Span::new(start, self.pos),
        }
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.byte(self.pos).is_ascii_digit() {
            self.pos += 1;
        }
        self.pos > start
    }

    fn number(&mut self) -> TokenKind {
        self.digits();
        let mut kind = TokenKind::Int;
        if self.byte(self.pos) == b'.' && self.byte(self.pos + 1).is_ascii_digit() {
            self.pos += 1;
            self.digits();
            kind = TokenKind::Float;
        }
        if matches!(self.byte(self.pos), b'e' | b'E') {
            let mark = self.pos;
            self.pos += 1;
            if matches!(self.byte(self.pos), b'+' | b'-') {
                self.pos += 1;
            }
            if self.digits() {
                kind = TokenKind::Float;
            } else {
                self.pos = mark;
            }
        }
        if matches!(self.byte(self.pos), b'a'..=b'z' | b'A'..=b'Z' | b'_') {
            self.eat_word_chars();
            return TokenKind::Error(LexError::NumberSuffix);
        }
        kind
    }

    fn string(&mut self, quote: u8) -> TokenKind {
        loop {
            match self.src.get(self.pos) {
                None => return TokenKind::Error(LexError::UnterminatedString),
                Some(&b'\\') => self.pos = (self.pos + 2).min(self.src.len()),
                Some(&c) => {
                    self.pos += 1;
                    if c == quote {
                        // A doubled quote ('O''Brien') is an escaped quote, as in SQL.
                        if self.byte(self.pos) == quote {
                            self.pos += 1;
                            continue;
                        }
                        return TokenKind::String;
                    }
                }
            }
        }
    }

    fn quoted_ident(&mut self) -> TokenKind {
        match self.src[self.pos.min(self.src.len())..].iter().position(|&c| c == b'`' || c == b'\n')
        {
            Some(n) if self.src.get(self.pos + n) == Some(&b'`') && n > 0 => {
                self.pos += n + 1;
                TokenKind::QuotedIdent
            }
            _ => TokenKind::Error(LexError::UnterminatedQuotedIdent),
        }
    }

    fn param(&mut self) -> TokenKind {
        match self.byte(self.pos) {
            b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                self.eat_word_chars();
                TokenKind::Param
            }
            _ => TokenKind::Error(LexError::BadParam),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src).into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn lexes_words_numbers_strings_and_operators() {
        use TokenKind::*;
        assert_eq!(
            kinds("SELECT a.b, 1, 2.5, 3e2, 'x''', \"y\" <= <> != += -= $1 $n -- c\n/* d */ `q`"),
            vec![
                Word,
                Word,
                Dot,
                Word,
                Comma,
                Int,
                Comma,
                Float,
                Comma,
                Float,
                Comma,
                String,
                Comma,
                String,
                LtEq,
                NotEq,
                NotEq,
                PlusEq,
                MinusEq,
                Param,
                Param,
                QuotedIdent,
                Eof
            ]
        );
        let tokens = tokenize("select From");
        assert_eq!(tokens[0].keyword, Some(Keyword::Select));
        assert_eq!(tokens[1].keyword, Some(Keyword::From));
        assert_eq!(tokens[1].span.range(), 7..11);
    }

    #[test]
    fn malformed_input_becomes_error_tokens() {
        use TokenKind::*;
        assert_eq!(kinds("'abc"), vec![Error(LexError::UnterminatedString), Eof]);
        assert_eq!(kinds("/* x"), vec![Error(LexError::UnterminatedComment), Eof]);
        assert_eq!(kinds("5s"), vec![Error(LexError::NumberSuffix), Eof]);
        assert_eq!(kinds("$"), vec![Error(LexError::BadParam), Eof]);
        assert_eq!(kinds("é!"), vec![Error(LexError::UnexpectedChar), Error(LexError::Bang), Eof]);
        assert_eq!(kinds("'\\"), vec![Error(LexError::UnterminatedString), Eof]);
    }
}
