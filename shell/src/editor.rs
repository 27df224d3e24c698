//! The line editor: multi-line input that continues until the KQL lexer says the statement
//! is complete, keyword/string/number highlighting, and completion of keywords, dot-commands
//! and the live catalog's model and field names.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use kvm::lang::{Keyword, TokenKind};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::{Hinter, HistoryHinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

/// Names from the catalog, refreshed by the shell after each statement.
pub type Names = Arc<Mutex<Vec<String>>>;

pub struct KqlHelper {
    pub names: Names,
    pub color: bool,
    /// Suggests the rest of a matching earlier entry, shown dimmed; → accepts it.
    pub hinter: HistoryHinter,
}

impl Helper for KqlHelper {}

impl Hinter for KqlHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<String> {
        self.hinter.hint(line, pos, ctx)
    }
}

impl Validator for KqlHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let trimmed = input.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('.') || kvm::lang::is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

/// The candidates for the word being typed: dot-commands at the start of a line, otherwise
/// keywords and catalog names; keywords follow the case the user typed.
pub fn candidates(line: &str, pos: usize, names: &[String]) -> (usize, Vec<String>) {
    let before = &line[..pos];
    let start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_' || *c == '.'))
        .map(|(i, c)| i + c.len_utf8())
        .unwrap_or(0);
    let word = &before[start..];
    if start == 0 && word.starts_with('.') {
        let list = crate::dot::COMMANDS
            .iter()
            .map(|(n, ..)| n.to_string())
            .filter(|n| n.starts_with(word))
            .collect();
        return (0, list);
    }
    if word.is_empty() {
        return (start, Vec::new());
    }
    let lower = word.chars().all(|c| !c.is_uppercase());
    let upper_word = word.to_uppercase();
    let mut out: Vec<String> = names.iter().filter(|n| n.starts_with(word)).cloned().collect();
    out.extend(Keyword::ALL.iter().map(|k| k.as_str()).filter(|k| k.starts_with(&upper_word)).map(
        |k| {
            if lower {
                k.to_lowercase()
            } else {
                k.to_owned()
            }
        },
    ));
    out.dedup();
    (start, out)
}

impl Completer for KqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let names = self.names.lock().map(|n| n.clone()).unwrap_or_default();
        let (start, list) = candidates(line, pos, &names);
        Ok((start, list.into_iter().map(|s| Pair { display: s.clone(), replacement: s }).collect()))
    }
}

impl Highlighter for KqlHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || line.trim_start().starts_with('.') {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight(line))
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

/// Colors keywords (bold blue), strings (green), numbers (yellow) and parameters (magenta).
pub fn highlight(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    let mut at = 0;
    for t in kvm::lang::tokenize(line) {
        let range = t.span.range();
        if range.start < at || range.end > line.len() {
            continue;
        }
        let color = match t.kind {
            TokenKind::Word if t.keyword.is_some() => Some("1;34"),
            TokenKind::String => Some("32"),
            TokenKind::Int | TokenKind::Float => Some("33"),
            TokenKind::Param => Some("35"),
            _ => None,
        };
        if let Some(c) = color {
            out.push_str(&line[at..range.start]);
            out.push_str(&format!("\x1b[{c}m{}\x1b[0m", &line[range.clone()]));
            at = range.end;
        }
    }
    out.push_str(&line[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_keywords_names_and_dot_commands() {
        let names = vec!["users".to_string(), "user_id".to_string()];
        assert_eq!(candidates("SEL", 3, &names), (0, vec!["SELECT".to_string()]));
        assert_eq!(candidates("sel", 3, &names), (0, vec!["select".to_string()]));
        let (start, list) = candidates("SELECT * FROM us", 16, &names);
        assert_eq!(start, 14);
        assert_eq!(list, vec!["users".to_string(), "user_id".to_string()]);
        assert_eq!(
            candidates(".mo", 3, &names).1,
            vec![".mode".to_string(), ".models".to_string()]
        );
    }

    #[test]
    fn highlighting_keeps_the_text() {
        let line = "SELECT 'a', 1 FROM t WHERE x = $1";
        let h = highlight(line);
        let plain: String = {
            let mut s = String::new();
            let mut chars = h.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    for d in chars.by_ref() {
                        if d == 'm' {
                            break;
                        }
                    }
                } else {
                    s.push(c);
                }
            }
            s
        };
        assert_eq!(plain, line);
        assert!(h.contains("\x1b[1;34mSELECT\x1b[0m"));
    }
}
