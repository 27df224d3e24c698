//! Diagnostics: an error with a byte span, rendered rustc-style with the file, line and
//! column, the source line, a caret under the span, and help such as "did you mean".

use std::fmt::{self, Write as _};

use crate::span::{LineIndex, Span};

/// A parse error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The offending bytes (empty at end of input).
    pub span: Span,
    /// The headline: what was expected and what was found.
    pub message: String,
    /// A short note printed beside the caret.
    pub label: Option<String>,
    /// A hint, such as "did you mean `FROM`?".
    pub help: Option<String>,
    /// One-based number of the statement the error is in, within its script.
    pub statement: Option<usize>,
}

impl Diagnostic {
    /// A diagnostic with a message and nothing else.
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: message.into(), label: None, help: None, statement: None }
    }

    /// Add a label beside the caret.
    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    /// Add a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Render against the script it came from:
    ///
    /// ```text
    /// error: expected `FROM`, found `FORM`
    ///  --> seed.kql:1:10 (statement 1)
    ///   |
    /// 1 | SELECT * FORM users
    ///   |          ^^^^
    ///   = help: did you mean `FROM`?
    /// ```
    pub fn render(&self, file: &str, source: &str) -> String {
        self.render_with(file, &LineIndex::new(source))
    }

    /// [`Diagnostic::render`] with a prebuilt line index (for many diagnostics of one file).
    pub fn render_with(&self, file: &str, index: &LineIndex<'_>) -> String {
        let start = index.line_col(self.span.start as usize);
        let line_text = index.line_text(start.line);
        let gutter = start.line.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = write!(out, "{pad}--> {file}:{}:{}", start.line, start.col);
        if let Some(n) = self.statement {
            let _ = write!(out, " (statement {n})");
        }
        let _ = writeln!(out, "\n{pad} |");
        let chars: Vec<char> = line_text.chars().collect();
        let at = (start.col - 1).min(chars.len());
        // Caret: from the span start to its end, or to the end of the line for multi-line spans.
        let end = index.line_col(self.span.end as usize);
        let caret_chars = if end.line == start.line {
            end.col.saturating_sub(start.col)
        } else {
            chars.len().saturating_sub(at)
        };
        // A long line is shown as a window around the caret, cut ends marked with `…`.
        let (from, to) = window(chars.len(), at, MAX_SHOWN_LINE);
        let lead = if from > 0 { "…" } else { "" };
        let trail = if to < chars.len() { "…" } else { "" };
        let shown: String = chars[from..to].iter().map(|&c| shown_char(c)).collect();
        let _ = writeln!(out, "{} | {lead}{}{trail}", start.line, expand_tabs(&shown));
        let prefix: String = chars[from..at].iter().collect();
        let indent = lead.chars().count() + display_width(&prefix);
        let caret = "^".repeat(caret_chars.min(to - at).max(1));
        let _ = write!(out, "{pad} | {}{caret}", " ".repeat(indent));
        if let Some(label) = &self.label {
            let _ = write!(out, " {label}");
        }
        out.push('\n');
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// The most characters of a source line a rendered diagnostic shows: a window around the
/// caret, so that a long generated statement (or a file that is not KQL at all) is not
/// echoed whole.
pub const MAX_SHOWN_LINE: usize = 200;

/// The `[from, to)` character window of a `len`-character line shown for a caret at `at`:
/// everything when it fits, else `max` characters with the caret a quarter of the way in
/// (or as near as the line's ends allow).
fn window(len: usize, at: usize, max: usize) -> (usize, usize) {
    if len <= max {
        return (0, len);
    }
    let from = at.saturating_sub(max / 4).min(len - max);
    (from, from + max)
}

/// Control characters (escape sequences, say) are shown as `�`, never sent to a terminal.
fn shown_char(c: char) -> char {
    if c.is_control() && c != '\t' {
        '\u{FFFD}'
    } else {
        c
    }
}

fn expand_tabs(text: &str) -> String {
    text.replace('\t', "    ")
}

fn display_width(text: &str) -> usize {
    text.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, " (help: {help})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_caret_under_span() {
        let src = "SELECT *\nFROM users WHER x = 1";
        let d = Diagnostic::new(Span::new(20, 24), "expected `;`, found `WHER`")
            .with_help("did you mean `WHERE`?");
        assert_eq!(
            d.render("a.kql", src),
            "error: expected `;`, found `WHER`\n --> a.kql:2:12\n  |\n2 | FROM users WHER x = 1\n  |            ^^^^\n  = help: did you mean `WHERE`?\n"
        );
    }

    #[test]
    fn long_lines_show_a_window_around_the_caret() {
        let src = format!("{}BAD{}", "a ".repeat(300), " b".repeat(300));
        let d = Diagnostic::new(Span::new(600, 603), "bad");
        let out = d.render("a.kql", &src);
        let lines: Vec<&str> = out.lines().collect();
        let (text, caret) = (lines[3], lines[4]);
        assert!(text.starts_with("1 | …") && text.ends_with('…'), "{text}");
        assert_eq!(text.chars().count(), "1 | ".len() + MAX_SHOWN_LINE + 2);
        // The caret is under `BAD`.
        let col = caret.find('^').expect("a caret");
        assert_eq!(caret[col..].trim_end(), "^^^");
        assert_eq!(text.chars().skip(col).take(3).collect::<String>(), "BAD");
        // Control characters are not echoed.
        let d = Diagnostic::new(Span::new(0, 1), "bad");
        assert!(d.render("a.kql", "\u{1b}[2J x").contains("1 | \u{FFFD}[2J x"));
    }

    #[test]
    fn end_of_input_gets_one_caret() {
        let src = "SELECT";
        let d = Diagnostic::new(Span::new(6, 6), "expected a projection, found end of input");
        assert!(d.render("a.kql", src).contains("1 | SELECT\n  |       ^\n"));
    }
}
