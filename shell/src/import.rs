//! `.import FILE INTO model` and `.export model [FILE]`: records in and out as JSON arrays,
//! NDJSON or CSV. An import streams its file — memory holds one batch, not the file — with a
//! progress bar by bytes read from the first byte on. Records go in batches of [`BATCH`] per
//! commit; a batch that fails is retried record by record, so the good records land and each
//! bad one is reported with its line. Ctrl-C (the database's interrupt) stops it between
//! batches: whole batches only. `--atomic` makes the whole file one transaction: all records
//! or none, also when interrupted. `.export` writes a new file only: it never overwrites one,
//! nor writes through a symbolic link. The model name is never spliced into KQL text: the
//! statements are built as ASTs.

use std::fmt;
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::ops::ControlFlow;

use indicatif::{ProgressBar, ProgressStyle};
use kvm::lang::ast::{Statement, TypeName};
use kvm::schema::Model;
use kvm::{Database, Params, Transaction, TxError, Value};

/// Records per commit.
pub const BATCH: usize = 1_000;

/// What an import did.
#[derive(Debug, Default)]
pub struct Report {
    pub imported: usize,
    /// `(line, message)` for every record that was refused (line 0: the import as a whole).
    pub bad: Vec<(usize, String)>,
    /// Ctrl-C stopped it: `imported` records (whole batches) landed, the rest did not run.
    pub interrupted: bool,
}

/// Reads `file` as a stream and inserts its records into `model`.
pub fn import(db: &Database, file: &str, model: &str, atomic: bool) -> Result<Report, String> {
    let catalog = db.catalog().map_err(|e| e.to_string())?;
    let m = catalog.models.get(model).ok_or_else(|| format!("no model named `{model}`"))?;
    let source = Source::open(file)?;
    let interrupt = db.interrupt_handle();
    let start = interrupt.count();
    let interrupted = || interrupt.count() != start;
    let mut report = Report::default();
    if atomic {
        atomic_import(db, &source, m, model, &interrupted, &mut report)?;
    } else {
        let mut batch = Vec::with_capacity(BATCH);
        let flush = |batch: &mut Vec<(usize, Value)>, report: &mut Report| {
            commit(db, model, std::mem::take(batch), report);
            if interrupted() {
                report.interrupted = true;
            }
            if report.interrupted {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        let reader = source.reader()?;
        source.records(reader, m, &mut |line, parsed| {
            match parsed {
                Ok(v) => batch.push((line, v)),
                Err(e) => report.bad.push((line, e)),
            }
            if batch.len() < BATCH {
                return ControlFlow::Continue(());
            }
            flush(&mut batch, &mut report)
        })?;
        if !report.interrupted && !batch.is_empty() {
            let _ = flush(&mut batch, &mut report);
        }
        source.bar.finish_and_clear();
    }
    report.bad.sort_by_key(|(line, _)| *line);
    Ok(report)
}

/// One commit of `batch`; when it fails, each record alone, so the good ones land and the bad
/// ones are reported by line. An interrupt stops it.
fn commit(db: &Database, model: &str, batch: Vec<(usize, Value)>, report: &mut Report) {
    let (lines, values): (Vec<usize>, Vec<Value>) = batch.into_iter().unzip();
    let n = values.len();
    let (stmt, mut params) = insert(model, values);
    match db.run_statement(&stmt, &params) {
        Ok(_) => report.imported += n,
        Err(kvm::Error::Interrupted) => report.interrupted = true,
        Err(_) => {
            for (line, v) in lines.into_iter().zip(std::mem::take(&mut params.positional)) {
                let (stmt, params) = insert(model, vec![v]);
                match db.run_statement(&stmt, &params) {
                    Ok(_) => report.imported += 1,
                    Err(kvm::Error::Interrupted) => {
                        report.interrupted = true;
                        return;
                    }
                    Err(e) => report.bad.push((line, coded(&e))),
                }
            }
        }
    }
}

/// An atomic import's rollback: why, or the error that caused it.
type Failed = TxError<Result<Rollback, String>>;

/// Why an atomic import rolled back.
enum Rollback {
    /// Records were refused before anything was inserted: they are in the report.
    Refused,
    Interrupted,
}

/// The whole file in one transaction, inserted a batch at a time; any refused record, a failed
/// insert or an interrupt rolls all of it back.
fn atomic_import(
    db: &Database,
    source: &Source,
    m: &Model,
    model: &str,
    interrupted: &dyn Fn() -> bool,
    report: &mut Report,
) -> Result<(), String> {
    let outcome = db.try_transaction(|tx: &Transaction| -> Result<usize, Failed> {
        // A retried attempt (a conflict) reads the file again from its start.
        report.bad.clear();
        source.bar.set_position(0);
        let reader = source.reader().map_err(|e| TxError::Abort(Err(e)))?;
        let mut batch = Vec::with_capacity(BATCH);
        let mut imported = 0;
        let mut failed: Option<Failed> = None;
        let mut flush = |batch: &mut Vec<Value>, failed: &mut Option<_>| {
            let n = batch.len();
            let (stmt, params) = insert(model, std::mem::take(batch));
            match tx.run_statement(&stmt, &params) {
                Ok(_) => imported += n,
                Err(kvm::Error::Interrupted) => {
                    *failed = Some(TxError::Abort(Ok(Rollback::Interrupted)));
                }
                Err(e) if e.is_retryable() => *failed = Some(TxError::Kvm(e)),
                Err(e) => *failed = Some(TxError::Abort(Err(coded(&e)))),
            }
        };
        source
            .records(reader, m, &mut |line, parsed| {
                match parsed {
                    // Once one is refused nothing more is inserted; the rest is only checked.
                    Ok(v) if report.bad.is_empty() => batch.push(v),
                    Ok(_) => {}
                    Err(e) => report.bad.push((line, e)),
                }
                if batch.len() == BATCH {
                    flush(&mut batch, &mut failed);
                }
                if failed.is_none() && interrupted() {
                    failed = Some(TxError::Abort(Ok(Rollback::Interrupted)));
                }
                if failed.is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(|e| TxError::Abort(Err(e)))?;
        if failed.is_none() && !report.bad.is_empty() {
            failed = Some(TxError::Abort(Ok(Rollback::Refused)));
        }
        if failed.is_none() && !batch.is_empty() {
            flush(&mut batch, &mut failed);
        }
        match failed {
            Some(f) => Err(f),
            None => Ok(imported),
        }
    });
    source.bar.finish_and_clear();
    match outcome {
        Ok(n) => report.imported = n,
        Err(TxError::Abort(Ok(Rollback::Refused))) => {}
        Err(TxError::Abort(Ok(Rollback::Interrupted))) => report.interrupted = true,
        Err(TxError::Abort(Err(e))) => return Err(format!("nothing was imported: {e}")),
        Err(TxError::Kvm(e)) => return Err(format!("nothing was imported: {}", coded(&e))),
    }
    Ok(())
}

/// `INSERT INTO model [$1, $2, …]`, one atomic batch, the records bound as parameters.
fn insert(model: &str, values: Vec<Value>) -> (Statement, Params) {
    let stmt = kvm::builder::insert_records(model, values.len());
    (stmt, Params { positional: values, ..Params::default() })
}

fn coded(e: &kvm::Error) -> String {
    format!("{e} [{}]", e.code())
}

/// The formats `.import` reads, by the file's extension.
#[derive(Clone, Copy)]
enum Format {
    /// `.csv`: a header line naming fields, then one record per row (RFC 4180 quoting; a
    /// quoted cell may span lines).
    Csv,
    /// `.ndjson` / `.jsonl`: one JSON object per line.
    Ndjson,
    /// Anything else: one JSON array of objects.
    JsonArray,
}

/// The file being imported and its progress bar (by bytes read).
struct Source {
    file: String,
    format: Format,
    bar: ProgressBar,
}

/// What the parsers hand on for each record: its line (its position in a JSON array) and the
/// record or why it was refused; `Break` stops reading.
type OnRecord<'a> = dyn FnMut(usize, Result<Value, String>) -> ControlFlow<()> + 'a;

impl Source {
    fn open(file: &str) -> Result<Source, String> {
        let len = std::fs::metadata(file).map_err(|e| format!("cannot read {file}: {e}"))?.len();
        let lower = file.to_ascii_lowercase();
        let format = if lower.ends_with(".csv") {
            Format::Csv
        } else if lower.ends_with(".ndjson") || lower.ends_with(".jsonl") {
            Format::Ndjson
        } else {
            Format::JsonArray
        };
        Ok(Source { file: file.to_owned(), format, bar: progress(len) })
    }

    /// The file from its start, buffered, counting bytes into the progress bar.
    fn reader(&self) -> Result<BufReader<Counted>, String> {
        let f = std::fs::File::open(&self.file)
            .map_err(|e| format!("cannot read {}: {e}", self.file))?;
        Ok(BufReader::with_capacity(1 << 16, Counted { inner: f, bar: self.bar.clone() }))
    }

    /// Reads every record, handing each to `on`; `Err` for what ends the file's reading (an
    /// I/O error, JSON that is not an array).
    fn records(
        &self,
        reader: BufReader<Counted>,
        model: &Model,
        on: &mut OnRecord<'_>,
    ) -> Result<(), String> {
        let file = &self.file;
        match self.format {
            Format::Csv => csv_records(file, reader, model, on),
            Format::Ndjson => ndjson_records(file, reader, on),
            Format::JsonArray => json_array_records(file, reader, on),
        }
    }
}

/// A reader that advances a progress bar by the bytes it reads.
struct Counted {
    inner: std::fs::File,
    bar: ProgressBar,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

/// A bar by bytes, on a terminal and for files of a megabyte or more.
fn progress(len: u64) -> ProgressBar {
    if len < 1 << 20 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes}  {bytes_per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn ndjson_records(
    file: &str,
    mut reader: impl BufRead,
    on: &mut OnRecord<'_>,
) -> Result<(), String> {
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n =
            reader.read_until(b'\n', &mut line).map_err(|e| format!("cannot read {file}: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed =
            kvm::json::parse_json(&line).map_err(|e| format!("not JSON: {e}")).and_then(object);
        if on(number, parsed).is_break() {
            return Ok(());
        }
    }
}

/// A JSON array, read element by element (a serde `Visitor` over the sequence), so only one
/// record is in memory at a time.
fn json_array_records(file: &str, reader: impl Read, on: &mut OnRecord<'_>) -> Result<(), String> {
    struct Elements<'a, 'b> {
        on: &'a mut OnRecord<'b>,
    }
    impl<'de> serde::de::Visitor<'de> for Elements<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON array of records")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut number = 0;
            while let Some(v) = seq.next_element_seed(kvm::json::JsonValue)? {
                number += 1;
                if (self.on)(number, object(v)).is_break() {
                    // The rest is not read: stop without looking at it.
                    return Err(serde::de::Error::custom(STOPPED));
                }
            }
            Ok(())
        }
    }
    const STOPPED: &str = "\u{0}stopped";
    let mut de = serde_json::Deserializer::from_reader(reader);
    match serde::Deserializer::deserialize_seq(&mut de, Elements { on }) {
        Ok(()) => de.end().map_err(|e| format!("{file}: not JSON after the array: {e}")),
        Err(e) if e.to_string().starts_with(STOPPED) => Ok(()),
        Err(e) if e.is_io() => Err(format!("cannot read {file}: {e}")),
        Err(e) if e.is_data() => Err(format!("{file}: expected a JSON array of records ({e})")),
        Err(e) => Err(format!("{file}: not JSON: {e}")),
    }
}

fn object(v: Value) -> Result<Value, String> {
    match v {
        Value::Object(_) => Ok(v),
        other => Err(format!("expected an object, got {other}")),
    }
}

/// CSV with a header line; each cell read as its field's type (empty cells are absent).
fn csv_records(
    file: &str,
    reader: impl Read,
    model: &Model,
    on: &mut OnRecord<'_>,
) -> Result<(), String> {
    let mut csv = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let columns: Vec<(String, Option<TypeName>)> = match csv.headers() {
        Ok(h) => {
            h.iter().map(|c| (c.to_owned(), model.field(c).map(|f| f.ty.name.clone()))).collect()
        }
        Err(e) => return Err(format!("{file}: cannot read the header: {e}")),
    };
    let mut record = csv::StringRecord::new();
    // The reader counts the line ends between records, not those inside quoted cells: these
    // are added here, so a record's line is where it starts in the file.
    let mut quoted_newlines = 0;
    loop {
        let line = csv.position().line() as usize + quoted_newlines;
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line() as usize + quoted_newlines);
                quoted_newlines += record.as_slice().bytes().filter(|b| *b == b'\n').count();
                if on(line, csv_record(&columns, &record)).is_break() {
                    return Ok(());
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(_) => return Err(format!("cannot read {file}: {e}")),
                // A row that is not UTF-8 is refused; the rest is read on.
                _ => {
                    let line = e.position().map_or(line, |p| p.line() as usize);
                    if on(line, Err(format!("not CSV: {e}"))).is_break() {
                        return Ok(());
                    }
                }
            },
        }
    }
}

fn csv_record(
    columns: &[(String, Option<TypeName>)],
    cells: &csv::StringRecord,
) -> Result<Value, String> {
    if cells.len() != columns.len() {
        return Err(format!("{} cells, the header has {}", cells.len(), columns.len()));
    }
    let mut fields = std::collections::BTreeMap::new();
    for ((c, ty), cell) in columns.iter().zip(cells) {
        if cell.is_empty() {
            continue;
        }
        let v = match ty {
            Some(TypeName::Int | TypeName::U64) => match cell.parse::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => return Err(format!("{c}: `{cell}` is not an integer")),
            },
            Some(TypeName::Float) => match cell.parse::<f64>() {
                Ok(x) => Value::Float(x),
                Err(_) => return Err(format!("{c}: `{cell}` is not a number")),
            },
            Some(TypeName::Bool) => match cell.to_ascii_lowercase().as_str() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => return Err(format!("{c}: `{cell}` is not a boolean")),
            },
            _ => Value::String(cell.to_owned()),
        };
        fields.insert(c.clone(), v);
    }
    Ok(Value::Object(fields))
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
