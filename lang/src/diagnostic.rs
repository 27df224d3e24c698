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
        let _ = writeln!(out, "{} | {}", start.line, expand_tabs(line_text));
        // Caret: from the span start to its end, or to the end of the line for multi-line spans.
        let prefix: String = line_text.chars().take(start.col - 1).collect();
        let end = index.line_col(self.span.end as usize);
        let caret_chars = if end.line == start.line {
            end.col.saturating_sub(start.col)
        } else {
            line_text.chars().count().saturating_sub(start.col - 1)
        };
        let caret = "^".repeat(caret_chars.max(1));
        let _ = write!(out, "{pad} | {}{caret}", " ".repeat(display_width(&prefix)));
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
    fn end_of_input_gets_one_caret() {
        let src = "SELECT";
        let d = Diagnostic::new(Span::new(6, 6), "expected a projection, found end of input");
        assert!(d.render("a.kql", src).contains("1 | SELECT\n  |       ^\n"));
    }
}
