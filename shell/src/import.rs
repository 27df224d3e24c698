//! `.import FILE INTO model` and `.export model [FILE]`: records in and out as JSON arrays,
//! NDJSON or CSV. Imports go in batches of [`BATCH`] records per commit; a batch that fails
//! is retried record by record, so the good records land and each bad one is reported with
//! its line. `--atomic` makes the whole file one commit: all records or none. `.export`
//! writes a new file only: it never overwrites one, nor writes through a symbolic link.
//! The model name is never spliced into KQL text: the statements are built as ASTs.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressStyle};
use kvm::lang::ast::{Ident, Insert, InsertSource, Param, Statement, TypeName};
use kvm::lang::{Expr, ExprKind, Span};
use kvm::schema::Model;
use kvm::{Database, Params, Value};

/// Records per commit.
pub const BATCH: usize = 1_000;

/// What an import did.
#[derive(Debug, Default)]
pub struct Report {
    pub imported: usize,
    /// `(line, message)` for every record that was refused.
    pub bad: Vec<(usize, String)>,
}

/// Reads `file` and inserts its records into `model`.
pub fn import(db: &Database, file: &str, model: &str, atomic: bool) -> Result<Report, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let catalog = db.catalog().map_err(|e| e.to_string())?;
    let m = catalog.models.get(model).ok_or_else(|| format!("no model named `{model}`"))?;
    let mut report = Report::default();
    let mut records = Vec::new();
    for (line, parsed) in parse(file, &text, m)? {
        match parsed {
            Ok(v) => records.push((line, v)),
            Err(e) => report.bad.push((line, e)),
        }
    }
    if atomic {
        if !report.bad.is_empty() {
            return Ok(report);
        }
        let values: Vec<Value> = records.iter().map(|(_, v)| v.clone()).collect();
        match insert(db, model, values) {
            Ok(()) => report.imported = records.len(),
            Err(e) => report.bad.push((0, format!("nothing was imported: {e}"))),
        }
        return Ok(report);
    }
    let bar = progress(records.len() as u64);
    for chunk in records.chunks(BATCH) {
        let values: Vec<Value> = chunk.iter().map(|(_, v)| v.clone()).collect();
        if insert(db, model, values).is_ok() {
            report.imported += chunk.len();
        } else {
            for (line, v) in chunk {
                match insert(db, model, vec![v.clone()]) {
                    Ok(()) => report.imported += 1,
                    Err(e) => report.bad.push((*line, e)),
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    report.bad.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// `INSERT INTO model [$1, $2, …]`, one atomic batch, the records bound as parameters.
fn insert(db: &Database, model: &str, values: Vec<Value>) -> Result<(), String> {
    let slots = (1..=values.len())
        .map(|i| {
            Expr::new(ExprKind::Param(Param::Positional(u32::try_from(i).unwrap_or(u32::MAX))))
        })
        .collect();
    let stmt = Statement::Insert(Insert {
        model: Ident { name: model.to_owned(), span: Span::default() },
        source: InsertSource::Batch(slots),
        expire: None,
        returning: None,
        span: Span::default(),
    });
    let params = Params { positional: values, ..Params::default() };
    db.run_statement(&stmt, &params).map(|_| ()).map_err(|e| format!("{e} [{}]", e.code()))
}

fn progress(len: u64) -> ProgressBar {
    if len < 10 * BATCH as u64 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} records  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

type Parsed = Vec<(usize, Result<Value, String>)>;

/// Records with their line numbers, by the file's extension: `.csv`, `.ndjson`/`.jsonl`, or
/// a JSON array (`.json`).
fn parse(file: &str, text: &str, model: &Model) -> Result<Parsed, String> {
    let lower = file.to_ascii_lowercase();
    if lower.ends_with(".csv") {
        Ok(parse_csv(text, model))
    } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| (i + 1, json_record(l)))
            .collect())
    } else {
        let all: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{file}: not JSON: {e}"))?;
        match all {
            serde_json::Value::Array(items) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, j)| (i + 1, object(kvm::json::from_json(j))))
                .collect()),
            _ => Err(format!("{file}: expected a JSON array of records")),
        }
    }
}

fn json_record(line: &str) -> Result<Value, String> {
    let j: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    object(kvm::json::from_json(&j))
}

fn object(v: Value) -> Result<Value, String> {
    match v {
        Value::Object(_) => Ok(v),
        other => Err(format!("expected an object, got {other}")),
    }
}

/// CSV with a header line; each cell read as its field's type (empty cells are absent).
fn parse_csv(text: &str, model: &Model) -> Parsed {
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else { return Vec::new() };
    let columns = split_csv(header);
    lines
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let cells = split_csv(l);
            if cells.len() != columns.len() {
                return (
                    i + 1,
                    Err(format!("{} cells, the header has {}", cells.len(), columns.len())),
                );
            }
            let mut fields = std::collections::BTreeMap::new();
            for (c, cell) in columns.iter().zip(cells) {
                if cell.is_empty() {
                    continue;
                }
                let ty = model.field(c).map(|f| &f.ty.name);
                let v = match ty {
                    Some(TypeName::Int | TypeName::U64) => match cell.parse::<i64>() {
                        Ok(n) => Value::Int(n),
                        Err(_) => return (i + 1, Err(format!("{c}: `{cell}` is not an integer"))),
                    },
                    Some(TypeName::Float) => match cell.parse::<f64>() {
                        Ok(x) => Value::Float(x),
                        Err(_) => return (i + 1, Err(format!("{c}: `{cell}` is not a number"))),
                    },
                    Some(TypeName::Bool) => match cell.to_ascii_lowercase().as_str() {
                        "true" | "1" => Value::Bool(true),
                        "false" | "0" => Value::Bool(false),
                        _ => return (i + 1, Err(format!("{c}: `{cell}` is not a boolean"))),
                    },
                    _ => Value::String(cell),
                };
                fields.insert(c.clone(), v);
            }
            (i + 1, Ok(Value::Object(fields)))
        })
        .collect()
}

/// Splits one CSV line (RFC 4180 quoting within the line).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            (c, _) => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// Writes every record of `model` as NDJSON to the new file `file` (or stdout); returns how
/// many.
pub fn export(db: &Database, model: &str, file: Option<&str>) -> Result<usize, String> {
    let code = |e: kvm::Error| format!("{e} [{}]", e.code());
    let rows = db.model(model).and_then(|q| q.all()).map_err(code)?;
    let mut out: Box<dyn Write> = match file {
        Some(f) => Box::new(std::io::BufWriter::new(create_new(f)?)),
        None => Box::new(std::io::stdout().lock()),
    };
    for obj in kvm::json::rows_to_json(&rows) {
        writeln!(out, "{obj}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(rows.rows.len())
}

/// Creates `file`, which must not exist: not as a file (an export never overwrites one; delete
/// it first) and not as a symbolic link, even a dangling one (`O_CREAT | O_EXCL` refuses
/// both, also when they appear after the check that names them).
fn create_new(file: &str) -> Result<std::fs::File, String> {
    let exists = |what: &str| format!("cannot write {file}: {what}");
    match std::fs::symlink_metadata(file) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(exists("it is a symbolic link; .export never writes through one"))
        }
        Ok(_) => return Err(exists("it already exists; .export never overwrites a file")),
        Err(_) => {}
    }
    std::fs::OpenOptions::new().write(true).create_new(true).open(file).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                exists("it already exists; .export never overwrites a file")
            }
            _ => format!("cannot write {file}: {e}"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_split_with_quotes() {
        assert_eq!(split_csv("a,\"b,c\",\"d\"\"e\","), vec!["a", "b,c", "d\"e", ""]);
    }
}
