//! What a statement returns: rows (with their column names and the cursor to resume after
//! them), a count of affected records, a message, or a plan. The shell and embedding
//! applications render these; the engine produces them.

use crate::Value;

/// The result of one statement.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// `SELECT`, `RETURNING`, `SHOW …`, `KV GET/LIST`, …: a table of values.
    Rows(Rows),
    /// A write without `RETURNING`: how many records it inserted, updated or deleted.
    Affected { verb: &'static str, count: u64 },
    /// A statement that answers in words (`DEFINE MODEL`, `BEGIN`, `DESCRIBE`, `CHECK`, …).
    Message(String),
    /// `EXPLAIN`: the chosen plan, one operator per line.
    Plan(String),
    /// `WATCH`: a started watch; take it to read its events.
    Watch(crate::watch::WatchCell),
}

/// A table of values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    /// Column names, in output order.
    pub columns: Vec<String>,
    /// One vector per row, aligned with `columns`.
    pub rows: Vec<Vec<Value>>,
    /// An opaque cursor that resumes right after the last row (`LIMIT n AFTER $cursor`),
    /// when more rows may follow.
    pub next_cursor: Option<String>,
}

impl Rows {
    /// A table with the given column names and no rows yet.
    pub fn new(columns: Vec<String>) -> Self {
        Rows { columns, rows: Vec::new(), next_cursor: None }
    }
}

impl std::fmt::Display for Output {
    /// A plain, deterministic rendering: a `|`-separated table with a header (strings
    /// unquoted, timestamps in RFC 3339), `inserted 2`, the message, or the plan.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Output::Rows(rows) => {
                writeln!(f, "{}", rows.columns.join(" | "))?;
                for r in &rows.rows {
                    let cells: Vec<String> = r.iter().map(crate::values::display).collect();
                    writeln!(f, "{}", cells.join(" | "))?;
                }
                write!(
                    f,
                    "({} row{})",
                    rows.rows.len(),
                    if rows.rows.len() == 1 { "" } else { "s" }
                )?;
                if let Some(c) = &rows.next_cursor {
                    write!(f, "\nnext cursor: {c}")?;
                }
                Ok(())
            }
            Output::Affected { verb, count } => write!(f, "{verb} {count}"),
            Output::Message(m) => f.write_str(m),
            Output::Plan(p) => f.write_str(p),
            Output::Watch(_) => f.write_str("watching"),
        }
    }
}
