//! The planner's error: a stable code, a message naming the model, field or value, and the
//! span it points at (rendered with a caret by the caller).

use std::fmt;

use kvm_lang::Span;

/// A binding, type or definition error found while planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// Stable code, such as `kvm.unknown_field`.
    pub code: &'static str,
    pub message: String,
    pub span: Option<Span>,
    /// A hint, such as "did you mean `email`?".
    pub help: Option<String>,
}

impl PlanError {
    pub fn new(code: &'static str, message: impl Into<String>) -> PlanError {
        PlanError { code, message: message.into(), span: None, help: None }
    }

    /// Points the error at `span` (empty spans, from hand-built ASTs, are ignored).
    pub fn at(mut self, span: Span) -> PlanError {
        if !span.is_empty() {
            self.span = Some(span);
        }
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> PlanError {
        self.help = Some(help.into());
        self
    }

    /// A statement or clause that parses but is not executed yet.
    pub fn unsupported(what: &str, span: Span) -> PlanError {
        PlanError::new("kvm.unsupported", format!("{what} is not supported yet")).at(span)
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.help {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanError {}
