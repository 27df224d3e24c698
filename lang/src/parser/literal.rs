//! Literal tokens to values: string escapes, integers, floats, parameters, durations, and
//! the `DATE '…'` / `TIMESTAMP '…'` formats.

use super::expected::Category;
use super::{PResult, Parser};
use crate::ast::{DurationKind, DurationValue, Expr, ExprKind, Literal, Param};
use crate::diagnostic::Diagnostic;
use crate::span::Span;
use crate::token::{Token, TokenKind};

impl Parser<'_> {
    /// Decode a string token (quotes stripped, escapes decoded).
    pub(crate) fn string_value(&self, tok: Token) -> PResult<String> {
        let text = self.text(tok);
        let quote = text.chars().next().unwrap_or('\'');
        let body = text.get(1..text.len().saturating_sub(1)).unwrap_or("");
        if !body.contains('\\') && !body.contains(quote) {
            return Ok(body.to_string());
        }
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                // The lexer only lets a quote through doubled.
                chars.next();
                out.push(quote);
                continue;
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let at = tok.span.start as usize + 1 + i;
            let escape_span = |len: usize| Span::new(at, at + len);
            match chars.next().map(|(_, e)| e) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some('\\') => out.push('\\'),
                Some('\'') => out.push('\''),
                Some('"') => out.push('"'),
                Some('u') => {
                    let rest = body.get(i + 2..).unwrap_or("");
                    let close = rest.find('}');
                    let code = match (rest.strip_prefix('{'), close) {
                        (Some(inner), Some(end)) => inner.get(..end - 1).and_then(|hex| {
                            if hex.is_empty() || hex.len() > 6 {
                                None
                            } else {
                                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                            }
                        }),
                        _ => None,
                    };
                    match (code, close) {
                        (Some(ch), Some(end)) => {
                            out.push(ch);
                            for _ in 0..=end {
                                chars.next();
                            }
                        }
                        _ => {
                            return Err(Diagnostic::new(escape_span(2), "invalid unicode escape")
                                .with_help("write a code point in hex as \\u{1F600}"))
                        }
                    }
                }
                other => {
                    let len = 1 + other.map_or(0, char::len_utf8);
                    return Err(Diagnostic::new(escape_span(len), "unknown escape sequence")
                        .with_help("valid escapes: \\n \\t \\r \\0 \\\\ \\' \\\" \\u{…}"));
                }
            }
        }
        Ok(out)
    }

    /// An integer token, possibly negated by a preceding `-` (folded by the caller).
    pub(crate) fn int_value(&self, tok: Token, negative: bool, span: Span) -> PResult<i64> {
        let text = self.text(tok);
        let magnitude: u64 = text.parse().map_err(|_| self.out_of_range(span))?;
        if negative {
            if magnitude <= i64::MAX as u64 {
                Ok(-(magnitude as i64))
            } else if magnitude == i64::MAX as u64 + 1 {
                Ok(i64::MIN)
            } else {
                Err(self.out_of_range(span))
            }
        } else {
            i64::try_from(magnitude).map_err(|_| self.out_of_range(span))
        }
    }

    fn out_of_range(&self, span: Span) -> Diagnostic {
        Diagnostic::new(span, "integer literal out of range")
            .with_help("integers are 64-bit: -9223372036854775808 to 9223372036854775807")
    }

    /// A float token, possibly negated.
    pub(crate) fn float_value(&self, tok: Token, negative: bool, span: Span) -> PResult<f64> {
        let value: f64 =
            self.text(tok).parse().map_err(|_| Diagnostic::new(span, "invalid number"))?;
        if !value.is_finite() {
            return Err(Diagnostic::new(span, "float literal out of range"));
        }
        Ok(if negative { -value } else { value })
    }

    /// A parameter token: `$1` or `$name`.
    pub(crate) fn param_value(&self, tok: Token) -> PResult<Param> {
        let name = self.text(tok).get(1..).unwrap_or("");
        if name.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
            match name.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Param::Positional(n)),
                _ => Err(Diagnostic::new(tok.span, "invalid positional parameter")
                    .with_help("positional parameters are numbered from $1")),
            }
        } else {
            Ok(Param::Named(name.to_string()))
        }
    }

    /// A duration: a string such as `'1h30m'` or a parameter.
    pub(crate) fn duration(&mut self) -> PResult<DurationValue> {
        let tok = self.peek();
        match tok.kind {
            TokenKind::String => {
                self.advance();
                let text = self.string_value(tok)?;
                let millis = parse_duration(&text).map_err(|why| {
                    Diagnostic::new(tok.span, format!("invalid duration {}: {why}", self.text(tok)))
                        .with_help("write a whole number and a unit (ms, s, m, h, d, w, y), combined as in '1h30m'")
                })?;
                Ok(DurationValue { kind: DurationKind::Millis(millis), span: tok.span })
            }
            TokenKind::Param => {
                self.advance();
                Ok(DurationValue {
                    kind: DurationKind::Param(self.param_value(tok)?),
                    span: tok.span,
                })
            }
            TokenKind::Int | TokenKind::Float => Err(Diagnostic::new(
                tok.span,
                "expected a duration such as '30s', found a bare number",
            )
            .with_help(format!("durations are strings with a unit: '{}s'", self.text(tok)))),
            _ => {
                self.note(Category::Duration);
                self.note_here_param();
                Err(self.error_expected())
            }
        }
    }

    fn note_here_param(&mut self) {
        let _ = self.at(TokenKind::Param);
    }

    /// An integer literal (optionally negative) or a parameter, for LIMIT, RETRIES, ….
    pub(crate) fn int_or_param(&mut self) -> PResult<Expr> {
        let tok = self.peek();
        match tok.kind {
            TokenKind::Int => {
                self.advance();
                let value = self.int_value(tok, false, tok.span)?;
                Ok(Expr { kind: ExprKind::Literal(Literal::Int(value)), span: tok.span })
            }
            TokenKind::Minus if self.nth(1).kind == TokenKind::Int => {
                self.advance();
                let num = self.advance();
                let span = tok.span.to(num.span);
                let value = self.int_value(num, true, span)?;
                Ok(Expr { kind: ExprKind::Literal(Literal::Int(value)), span })
            }
            TokenKind::Param => {
                self.advance();
                Ok(Expr { kind: ExprKind::Param(self.param_value(tok)?), span: tok.span })
            }
            _ => {
                self.note(Category::Integer);
                self.note_here_param();
                Err(self.error_expected())
            }
        }
    }
}

/// Parse `'30s'`, `'1h30m'`, `'250ms'`, `'2w'`, `'1y'` into milliseconds. Units are lower
/// case: `ms`, `s`, `m`, `h`, `d`, `w`, `y` (365 days).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(format!("expected a number at `{}`", text.get(start..).unwrap_or("")));
        }
        let number: u64 =
            text.get(start..i).and_then(|n| n.parse().ok()).ok_or("number too large")?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = text.get(unit_start..i).unwrap_or("");
        let scale: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            // A year of 365 days (durations are fixed lengths: no calendar).
            "y" => 31_536_000_000,
            "" if i < bytes.len() && bytes[i] == b'.' => {
                return Err(
                    "fractions are not allowed; combine units instead, as in '1h30m'".to_string()
                )
            }
            "" => return Err(format!("`{number}` has no unit")),
            other
                if ["MS", "S", "M", "H", "D", "W", "Y"]
                    .contains(&other.to_ascii_uppercase().as_str()) =>
            {
                return Err(format!(
                    "unknown unit `{other}` (units are lower case: `{}`)",
                    other.to_ascii_lowercase()
                ))
            }
            other => return Err(format!("unknown unit `{other}`")),
        };
        total = number
            .checked_mul(scale)
            .and_then(|ms| total.checked_add(ms))
            .ok_or("it is too long")?;
    }
    Ok(total)
}

/// Print milliseconds as a canonical duration string body: `1h30m`, `250ms`, `0s`.
pub fn format_duration(mut millis: u64) -> String {
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (scale, unit) in
        [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")]
    {
        let n = millis / scale;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            millis %= scale;
        }
    }
    out
}

/// Check `YYYY-MM-DD`.
pub(crate) fn valid_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits(&b[0..4])
        && digits(&b[5..7])
        && digits(&b[8..10])
        && (1..=12).contains(&num(&b[5..7]))
        && (1..=31).contains(&num(&b[8..10]))
}

/// Check `YYYY-MM-DD[T ]HH:MM[:SS[.fraction]][Z|±HH:MM]`.
pub(crate) fn valid_timestamp(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() < 16
        || !valid_date(text.get(..10).unwrap_or(""))
        || !matches!(b[10], b'T' | b't' | b' ')
    {
        return false;
    }
    let time = &b[11..];
    if !(time.len() >= 5 && digits(&time[0..2]) && time[2] == b':' && digits(&time[3..5])) {
        return false;
    }
    if num(&time[0..2]) > 23 || num(&time[3..5]) > 59 {
        return false;
    }
    let mut rest = &time[5..];
    if rest.first() == Some(&b':') {
        if rest.len() < 3 || !digits(&rest[1..3]) || num(&rest[1..3]) > 60 {
            return false;
        }
        rest = &rest[3..];
        if rest.first() == Some(&b'.') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if n == 0 {
                return false;
            }
            rest = &rest[1 + n..];
        }
    }
    match rest {
        [] | [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => digits(&[*h1, *h2, *m1, *m2]),
        _ => false,
    }
}

fn digits(b: &[u8]) -> bool {
    b.iter().all(u8::is_ascii_digit)
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30_000));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("2h"), Ok(7_200_000));
        assert_eq!(parse_duration("7d"), Ok(604_800_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("99999999999999999s").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(604_800_000), "7d");
        assert_eq!(format_duration(1_001), "1s1ms");
        assert_eq!(format_duration(0), "0s");
    }

    #[test]
    fn dates_and_timestamps() {
        assert!(valid_date("2024-02-29"));
        assert!(!valid_date("2024-13-01"));
        assert!(!valid_date("24-01-01"));
        assert!(valid_timestamp("2024-01-01T10:00:00Z"));
        assert!(valid_timestamp("2024-01-01T10:00:00.123+02:00"));
        assert!(valid_timestamp("2024-01-01 10:00"));
        assert!(!valid_timestamp("2024-01-01T25:00:00Z"));
        assert!(!valid_timestamp("2024-01-01T10:00:00.Z"));
        assert!(!valid_timestamp("2024-01-01"));
    }
}
