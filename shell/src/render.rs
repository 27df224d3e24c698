//! Rendering statement results for people and programs: tables sized to the terminal, and
//! line, JSON, NDJSON and CSV modes whose output is stable enough to diff in CI.

use std::fmt::Write as _;

use comfy_table::{presets, ContentArrangement, Table};
use kvm::{Output, Rows, Value};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A table with a row-count footer.
    Table,
    /// One `column = value` line per field, a blank line between rows.
    Line,
    /// One JSON document per statement.
    Json,
    /// One JSON object per row.
    Ndjson,
    /// Comma-separated values with a header line.
    Csv,
}

/// Where the text goes: a terminal gets a table fitted to its width.
#[derive(Debug, Clone, Copy)]
pub struct Renderer {
    pub mode: Mode,
    /// The terminal's width, when printing to one.
    pub width: Option<u16>,
}

/// The longest a table cell may be on a terminal before it is cut with an ellipsis.
const MAX_CELL: usize = 60;

impl Renderer {
    /// Renders one statement's result; the text ends with a newline unless it is empty.
    pub fn render(&self, out: &Output) -> String {
        match (self.mode, out) {
            (Mode::Json, out) => json_document(out).to_string() + "\n",
            (_, Output::Rows(rows)) => self.rows(rows),
            (Mode::Ndjson | Mode::Csv, _) => String::new(),
            (_, Output::Affected { verb, count }) => {
                format!("{verb} {count} record{}\n", if *count == 1 { "" } else { "s" })
            }
            (_, Output::Message(m)) | (_, Output::Plan(m)) => format!("{}\n", m.trim_end()),
            (_, other) => format!("{other:?}\n"),
        }
    }

    /// One change of a `WATCH`, on one line: JSON in the JSON modes, CSV fields in CSV
    /// mode (op, versionstamp, key, row as JSON), `op versionstamp key row` otherwise.
    pub fn watch_event(&self, e: &kvm::WatchEvent) -> String {
        match self.mode {
            Mode::Json | Mode::Ndjson => e.to_json().to_string() + "\n",
            Mode::Csv => {
                let row =
                    e.row.as_ref().map(|r| kvm::json::to_json(r).to_string()).unwrap_or_default();
                let key = if e.key == kvm::Value::Null {
                    String::new()
                } else {
                    kvm::display_value(&e.key)
                };
                let (key, row) = (csv_field(&key), csv_field(&row));
                format!("{},{},{key},{row}\n", e.op.as_str(), e.versionstamp)
            }
            Mode::Table | Mode::Line => format!("{e}\n"),
        }
    }

    fn rows(&self, rows: &Rows) -> String {
        match self.mode {
            Mode::Table => self.table(rows),
            Mode::Line => line_mode(rows),
            Mode::Ndjson => {
                rows.rows.iter().map(|r| row_object(&rows.columns, r).to_string() + "\n").collect()
            }
            Mode::Csv => csv(rows),
            Mode::Json => json_rows(rows).to_string() + "\n",
        }
    }

    fn table(&self, rows: &Rows) -> String {
        let mut t = Table::new();
        t.load_style(presets::UTF8_FULL_CONDENSED);
        t.set_header(rows.columns.clone());
        let limit = self.width.map(|_| MAX_CELL);
        for r in &rows.rows {
            t.add_row(r.iter().map(|v| cell(v, limit)).collect::<Vec<_>>());
        }
        if let Some(w) = self.width {
            t.set_width(w).set_content_arrangement(ContentArrangement::Dynamic);
        } else {
            t.force_no_tty();
        }
        let n = rows.rows.len();
        let mut s = t.to_string();
        let _ = write!(s, "\n({n} row{})\n", if n == 1 { "" } else { "s" });
        if let Some(c) = &rows.next_cursor {
            let _ = writeln!(s, "next cursor: {c}");
        }
        s
    }
}

/// A value as a table cell: strings bare, everything else as a KQL literal, long text cut.
pub fn cell(v: &Value, limit: Option<usize>) -> String {
    let s = match v {
        Value::Null => "NULL".into(),
        other => kvm::display_value(other),
    };
    match limit {
        Some(max) if s.chars().count() > max => {
            let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
            cut.push('…');
            cut
        }
        _ => s,
    }
}

fn line_mode(rows: &Rows) -> String {
    let width = rows.columns.iter().map(|c| c.chars().count()).max().unwrap_or(0);
    let mut s = String::new();
    for (i, r) in rows.rows.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        for (c, v) in rows.columns.iter().zip(r) {
            let _ = writeln!(s, "{c:>width$} = {}", cell(v, None));
        }
    }
    s
}

/// One CSV field: quoted (quotes doubled) when it holds a separator, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(rows: &Rows) -> String {
    let field = csv_field;
    let mut s = String::new();
    let header: Vec<String> = rows.columns.iter().map(|c| field(c)).collect();
    let _ = writeln!(s, "{}", header.join(","));
    for r in &rows.rows {
        let cells: Vec<String> = r
            .iter()
            .map(|v| match v {
                Value::Null => String::new(),
                v => field(&cell(v, None)),
            })
            .collect();
        let _ = writeln!(s, "{}", cells.join(","));
    }
    s
}

/// A statement's result as one JSON document.
pub fn json_document(out: &Output) -> serde_json::Value {
    use serde_json::json;
    match out {
        Output::Rows(rows) => json_rows(rows),
        Output::Affected { verb, count } => json!({ "verb": verb, "count": count }),
        Output::Message(m) => json!({ "message": m }),
        Output::Plan(p) => json!({ "plan": p }),
        other => json!({ "message": format!("{other:?}") }),
    }
}

fn json_rows(rows: &Rows) -> serde_json::Value {
    let list = kvm::json::rows_to_json(rows);
    let mut doc = serde_json::Map::new();
    doc.insert("rows".into(), serde_json::Value::Array(list));
    if let Some(c) = &rows.next_cursor {
        doc.insert("next_cursor".into(), serde_json::Value::String(c.clone()));
    }
    serde_json::Value::Object(doc)
}

fn row_object(columns: &[String], row: &[Value]) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for (c, v) in columns.iter().zip(row) {
        obj.insert(c.clone(), kvm::json::to_json(v));
    }
    serde_json::Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Output {
        Output::Rows(Rows {
            columns: vec!["id".into(), "name".into(), "tags".into()],
            rows: vec![
                vec![Value::Int(1), Value::String("Ann, \"A\"".into()), Value::Array(vec![])],
                vec![Value::Int(2), Value::Null, Value::Array(vec![Value::String("x".into())])],
            ],
            next_cursor: None,
        })
    }

    fn r(mode: Mode) -> Renderer {
        Renderer { mode, width: None }
    }

    #[test]
    fn every_mode_renders_rows() {
        let out = sample();
        assert_eq!(r(Mode::Csv).render(&out), "id,name,tags\n1,\"Ann, \"\"A\"\"\",[]\n2,,['x']\n");
        assert_eq!(
            r(Mode::Ndjson).render(&out),
            "{\"id\":1,\"name\":\"Ann, \\\"A\\\"\",\"tags\":[]}\n{\"id\":2,\"name\":null,\"tags\":[\"x\"]}\n"
        );
        assert!(r(Mode::Json).render(&out).starts_with("{\"rows\":[{\"id\":1"));
        assert_eq!(r(Mode::Line).render(&out).lines().next(), Some("  id = 1"));
        let table = r(Mode::Table).render(&out);
        assert!(table.contains("Ann, \"A\"") && table.ends_with("(2 rows)\n"), "{table}");
    }

    #[test]
    fn terminal_tables_cut_long_cells() {
        let long = Value::String("x".repeat(200));
        assert_eq!(cell(&long, Some(10)).chars().count(), 10);
        assert!(cell(&long, Some(10)).ends_with('…'));
    }

    #[test]
    fn other_outputs() {
        let aff = Output::Affected { verb: "inserted", count: 1 };
        assert_eq!(r(Mode::Table).render(&aff), "inserted 1 record\n");
        assert_eq!(r(Mode::Json).render(&aff), "{\"verb\":\"inserted\",\"count\":1}\n");
        assert_eq!(r(Mode::Csv).render(&aff), "");
    }
}
