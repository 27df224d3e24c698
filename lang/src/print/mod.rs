//! The pretty-printer: `Display` for every AST node, printing canonical KQL. Keywords are
//! upper case, strings single-quoted, durations normalised (`'90m'` prints `'1h30m'`),
//! parentheses only where precedence needs them, identifiers quoted only when reserved.
//! Printing then parsing gives back an equal tree: `parse(print(ast)) == ast`.

mod admin;
mod expr;
pub use expr::ObjectKey;
pub use query::write_assignment;
mod query;
mod schema;

use std::fmt::{self, Display, Formatter};

use crate::ast::{Ident, Path, Statement};
use crate::keyword::Keyword;

/// Print statements as a script, one per line, each ending with `;`.
pub fn print_script(statements: &[Statement]) -> String {
    let mut out = String::new();
    for stmt in statements {
        out.push_str(&stmt.to_string());
        out.push_str(";\n");
    }
    out
}

/// Whether `name` can be printed bare (a word that is not reserved).
pub(crate) fn is_bare_word(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Display for Ident {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if is_bare_word(&self.name)
            && !Keyword::from_word(&self.name).is_some_and(Keyword::is_reserved)
        {
            f.write_str(&self.name)
        } else {
            write!(f, "`{}`", self.name)
        }
    }
}

impl Display for Path {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        comma_sep(f, &self.segments, ".")
    }
}

/// Write items separated by `sep`.
pub(crate) fn comma_sep<T: Display>(f: &mut Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

/// Write a string literal in single quotes with escapes.
pub(crate) fn write_string(f: &mut Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\'' => f.write_str("\\'")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            '\0' => f.write_str("\\0")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("'")
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::DefineModel(s) => s.fmt(f),
            Statement::AlterModel(s) => s.fmt(f),
            Statement::DropModel(s) => {
                f.write_str("DROP MODEL ")?;
                s.fmt(f)
            }
            Statement::DropQueue(s) => {
                f.write_str("DROP QUEUE ")?;
                s.fmt(f)
            }
            Statement::Select(s) => s.fmt(f),
            Statement::Insert(s) => s.fmt(f),
            Statement::Upsert(s) => s.fmt(f),
            Statement::Update(s) => s.fmt(f),
            Statement::Delete(s) => s.fmt(f),
            Statement::Begin(_) => f.write_str("BEGIN"),
            Statement::Commit(_) => f.write_str("COMMIT"),
            Statement::Rollback(_) => f.write_str("ROLLBACK"),
            Statement::Watch(s) => s.fmt(f),
            Statement::Relate(s) => write!(f, "RELATE {s}"),
            Statement::Unrelate(s) => write!(f, "UNRELATE {s}"),
            Statement::DefineQueue(s) => s.fmt(f),
            Statement::Enqueue(s) => s.fmt(f),
            Statement::Dequeue(s) => s.fmt(f),
            Statement::Ack(s) => write!(f, "ACK {}", s.job),
            Statement::Nack(s) => write!(f, "NACK {}", s.job),
            Statement::QueueStats(s) => write!(f, "QUEUE STATS {}", s.queue),
            Statement::RetryDead(s) => write!(f, "RETRY DEAD FROM {}", s.queue),
            Statement::Purge(s) => write!(f, "PURGE {}", s.queue),
            Statement::Show(s) => s.fmt(f),
            Statement::Describe(s) => s.fmt(f),
            Statement::Explain(s) => write!(f, "EXPLAIN {}", s.statement),
            Statement::Check(s) => s.fmt(f),
            Statement::Kv(s) => s.fmt(f),
        }
    }
}
