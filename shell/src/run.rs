//! A shell session: runs scripts — KQL statements with dot-command lines between them — and
//! single dot-commands, rendering each result as it completes. The first failure stops a
//! script (unless `--keep-going`) and is reported as `file:line:col` with the caret
//! diagnostic.
//!
//! Dot-commands never splice a name into KQL text: they build the statement's AST (or use
//! the query builder), so a name is always data. `.read` refuses cycles, nesting deeper
//! than [`MAX_READ_DEPTH`] and files that are not text; `--safe` refuses every
//! dot-command that touches a file.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use kvm::lang::ast::{Describe, Ident, Statement};
use kvm::lang::Span;
use kvm::Database;

use crate::dot::{self, Dot};
use crate::render::Renderer;

/// How a script run went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
    /// A `.quit` ended the script.
    pub quit: bool,
    /// A `.open PATH` asked for another database; the script goes on from the byte offset
    /// once the caller has opened it.
    pub reopen: Option<(String, usize)>,
    /// A statement was interrupted (Ctrl-C): the rest of the input did not run.
    pub interrupted: bool,
}

/// How results are shown and failures handled; kept across `.open`.
#[derive(Clone, Copy)]
pub struct Settings {
    pub renderer: Renderer,
    pub timer: bool,
    pub keep_going: bool,
    /// `--safe`: dot-commands that read or write files are refused.
    pub safe: bool,
}

/// The deepest chain of scripts `.read` runs (each `.read` from within a script is a level).
pub const MAX_READ_DEPTH: usize = 16;

/// A shell session on one database: its settings and its KQL session (which keeps an open
/// `BEGIN … COMMIT` transaction between statements, inputs and files).
pub struct Session<'d> {
    pub db: &'d Database,
    kvm: kvm::Session<'d>,
    pub settings: Settings,
    /// The script files running now, outermost first, as canonical paths: a `.read` of one
    /// of them is a cycle.
    reading: Vec<PathBuf>,
}

impl<'d> Session<'d> {
    pub fn new(db: &'d Database, settings: Settings) -> Self {
        Session { db, kvm: db.session(), settings, reading: Vec::new() }
    }

    /// [`Session::run_script`] for a script read from the file `file`, which a `.read` in it
    /// (or in a script it reads) may then not read again.
    pub fn run_file(&mut self, file: &str, source: &str, from: usize) -> Tally {
        let Ok(path) = std::fs::canonicalize(file) else {
            return self.run_script(file, source, from);
        };
        self.reading.push(path);
        let tally = self.run_script(file, source, from);
        self.reading.pop();
        tally
    }

    /// Runs `source` from byte `from`: KQL statements, and dot-command lines where a
    /// statement may start.
    pub fn run_script(&mut self, file: &str, source: &str, from: usize) -> Tally {
        let mut tally = Tally::default();
        let mut kql_start = from;
        let mut offset = from;
        for line in source[from..].split_inclusive('\n') {
            let start = offset;
            offset += line.len();
            let pending = &source[kql_start..start];
            if !line.trim_start().starts_with('.')
                || !(pending.trim().is_empty() || kvm::lang::is_complete(pending))
            {
                continue;
            }
            if !pending.trim().is_empty() {
                self.run_kql(file, &masked(source, kql_start..start), &mut tally);
                if tally.interrupted || (tally.failed > 0 && !self.settings.keep_going) {
                    return tally;
                }
            }
            kql_start = offset;
            let lineno = source[..start].matches('\n').count() + 1;
            match dot::parse(line.trim()).and_then(|cmd| self.allowed(cmd)) {
                Ok(Dot::Quit) => {
                    tally.quit = true;
                    return tally;
                }
                Ok(Dot::Open(path)) => {
                    tally.reopen = Some((path, offset));
                    return tally;
                }
                Ok(cmd) => match self.dot(cmd) {
                    Ok(()) => tally.ok += 1,
                    Err(e) => {
                        tally.failed += 1;
                        eprintln!("{file}:{lineno}: error: {e}");
                    }
                },
                Err(e) => {
                    tally.failed += 1;
                    eprintln!("{file}:{lineno}: error: {e}");
                }
            }
            if tally.failed > 0 && !self.settings.keep_going {
                return tally;
            }
        }
        if !source[kql_start..].trim().is_empty() {
            let text = if kql_start == 0 {
                source.to_owned()
            } else {
                masked(source, kql_start..source.len())
            };
            self.run_kql(file, &text, &mut tally);
        }
        tally
    }

    fn run_kql(&mut self, file: &str, source: &str, tally: &mut Tally) {
        let stdout = std::io::stdout();
        let Settings { renderer, timer, keep_going, .. } = self.settings;
        for outcome in self.kvm.script(file, source) {
            let started = Instant::now();
            match outcome.result {
                Ok(kvm::Output::Watch(cell)) => {
                    // Streams until Ctrl-C (the database's interrupt) or an error.
                    let Some(watch) = cell.take() else { continue };
                    for event in watch {
                        match event {
                            Ok(e) => {
                                let mut out = stdout.lock();
                                let _ = out.write_all(renderer.watch_event(&e).as_bytes());
                                let _ = out.flush();
                            }
                            Err(kvm::Error::Interrupted) => {
                                let _ = writeln!(std::io::stderr(), "watch stopped");
                                tally.interrupted = true;
                            }
                            Err(err) => {
                                tally.failed += 1;
                                let _ = writeln!(
                                    std::io::stderr(),
                                    "{}",
                                    paint_error(&format!("error: {err}"))
                                );
                            }
                        }
                    }
                    tally.ok += 1;
                    if tally.interrupted {
                        break;
                    }
                }
                Ok(output) => {
                    tally.ok += 1;
                    let text = renderer.render(&output);
                    let mut out = stdout.lock();
                    let _ = out.write_all(text.as_bytes());
                    if timer {
                        let _ =
                            writeln!(out, "time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
                    }
                    let _ = out.flush();
                }
                Err(err) => {
                    tally.failed += 1;
                    let text = err.render_at(file, source, outcome.span);
                    let _ = writeln!(std::io::stderr(), "{}", paint_error(text.trim_end()));
                    tally.interrupted |= matches!(err, kvm::Error::Interrupted);
                    if !keep_going || tally.interrupted {
                        break;
                    }
                }
            }
        }
    }

    /// `cmd`, unless `--safe` refuses it: with `--safe`, no dot-command reads or writes a
    /// file (`.read`, `.import`, `.export` to a file, `.backup`, `.open` of a file).
    pub fn allowed(&self, cmd: Dot) -> Result<Dot, String> {
        if !self.settings.safe {
            return Ok(cmd);
        }
        let name = match &cmd {
            Dot::Read(_) => ".read",
            Dot::Import { .. } => ".import",
            Dot::Export { file: Some(_), .. } => ".export to a file",
            Dot::Backup(_) => ".backup",
            Dot::Open(db) if db != ":memory:" => ".open",
            _ => return Ok(cmd),
        };
        Err(format!("{name} is refused under --safe: it touches files"))
    }

    /// Runs one dot-command (`.quit` and `.open` are the caller's to handle).
    pub fn dot(&mut self, cmd: Dot) -> Result<(), String> {
        match cmd {
            Dot::Quit | Dot::Open(_) => {}
            Dot::Help => print!("{}", dot::help()),
            Dot::Mode(m) => self.settings.renderer.mode = m,
            Dot::Timer(on) => self.settings.timer = on,
            Dot::Read(file) => self.read(&file)?,
            Dot::Models => self.statement("SHOW MODELS")?,
            Dot::Indexes => self.statement("SHOW INDEXES")?,
            Dot::Queues => self.statement("SHOW QUEUES")?,
            Dot::Schema(Some(m)) => {
                // The name is data in the statement's AST, never text to parse.
                let name = Ident { name: m, span: Span::default() };
                let describe = Describe { queue: false, name, span: Span::default() };
                self.run_ast(&Statement::Describe(describe))?;
            }
            Dot::Schema(None) => self.statement("SHOW MODELS")?,
            Dot::Import { file, model, atomic } => {
                let report = crate::import::import(self.db, &file, &model, atomic)?;
                for (line, msg) in &report.bad {
                    eprintln!("{file}:{line}: {msg}");
                }
                println!(
                    "imported {} record{} into {model}{}{}",
                    report.imported,
                    if report.imported == 1 { "" } else { "s" },
                    if report.bad.is_empty() {
                        String::new()
                    } else {
                        format!("; {} refused", report.bad.len())
                    },
                    match (report.interrupted, atomic) {
                        (false, _) => "",
                        (true, false) => "; interrupted: whole batches only, the rest not read",
                        (true, true) => "; interrupted: nothing was imported",
                    }
                );
                if report.interrupted {
                    return Err(format!("the import of {file} was interrupted"));
                }
                if !report.bad.is_empty() {
                    return Err(format!("{} record(s) of {file} were refused", report.bad.len()));
                }
            }
            Dot::Backup(file) => {
                self.db
                    .backup(std::path::Path::new(&file))
                    .map_err(|e| format!("backup failed: {e}"))?;
                println!("backed up to {file}");
            }
            Dot::Export { model, file } => {
                let n = crate::import::export(self.db, &model, file.as_deref())?;
                if let Some(f) = file {
                    println!("exported {n} record{} to {f}", if n == 1 { "" } else { "s" });
                }
            }
        }
        Ok(())
    }

    /// `.read FILE`: runs the script in `file`, unless it is one of the scripts running now
    /// (a cycle, which would never end), the scripts are nested [`MAX_READ_DEPTH`] deep, or
    /// the file is not text.
    fn read(&mut self, file: &str) -> Result<(), String> {
        let path = std::fs::canonicalize(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        if self.reading.contains(&path) {
            return Err(format!(".read {file}: that script is already running (a cycle)"));
        }
        if self.reading.len() >= MAX_READ_DEPTH {
            return Err(format!(".read {file}: scripts nested deeper than {MAX_READ_DEPTH} files"));
        }
        let src = read_script(file)?;
        self.reading.push(path);
        let t = self.run_script(file, &src, 0);
        self.reading.pop();
        if t.failed > 0 {
            return Err(format!("{file} failed"));
        }
        Ok(())
    }

    /// Runs a statement built as an AST (so the names in it are data) and prints its result
    /// as a script's would be.
    fn run_ast(&mut self, stmt: &Statement) -> Result<(), String> {
        let output = self
            .kvm
            .run_statement(stmt, &kvm::Params::default())
            .map_err(|e| format!("{e} [{}]", e.code()))?;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.settings.renderer.render(&output).as_bytes());
        let _ = out.flush();
        Ok(())
    }

    fn statement(&mut self, kql: &str) -> Result<(), String> {
        let mut tally = Tally::default();
        self.run_kql("<command>", kql, &mut tally);
        if tally.failed > 0 {
            Err(format!("`{kql}` failed"))
        } else {
            Ok(())
        }
    }
}

/// A script file's text; a file that is not text (not UTF-8, or holding NUL bytes) is refused
/// in one line rather than parsed, so that its content is never echoed in diagnostics.
pub fn read_script(file: &str) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok(text),
        _ => Err(format!("{file} is not a KQL script (binary data)")),
    }
}

/// Errors in red on a terminal (unless `NO_COLOR` is set), plain otherwise.
fn paint_error(text: &str) -> String {
    use std::io::IsTerminal;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    match text.strip_prefix("error") {
        Some(rest) if color => format!("\x1b[1;31merror\x1b[0m{rest}"),
        _ => text.to_owned(),
    }
}

/// `source` with everything outside `keep` blanked (newlines kept), so that spans and line
/// numbers inside `keep` still point into the original file.
fn masked(source: &str, keep: std::ops::Range<usize>) -> String {
    let mut out = String::with_capacity(source.len());
    for (i, c) in source.char_indices() {
        if keep.contains(&i) || c == '\n' {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out
}

/// Model and field names of the live catalog, for completion (empty if it cannot be read).
pub fn catalog_names(db: &Database) -> Vec<String> {
    let Ok(catalog) = db.catalog() else { return Vec::new() };
    let mut names: Vec<String> = catalog.models.keys().cloned().collect();
    for model in catalog.models.values() {
        names.extend(model.fields.iter().map(|f| f.name.clone()));
    }
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_keeps_offsets_and_lines() {
        let src = "ab\ncd é\nef";
        let m = masked(src, 3..9);
        assert_eq!(m.len(), src.len());
        assert_eq!(m, "  \ncd é\n  ");
    }
}
