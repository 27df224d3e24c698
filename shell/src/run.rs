//! Running KQL without the editor: `-c` commands, `-f` files and scripts piped on stdin.
//! Each statement's result is rendered as it completes; the first failure stops the run
//! (unless `--keep-going`) and is reported as `file:line:col` with the caret diagnostic.

use std::io::Write;

use kvm::Database;

use crate::render::Renderer;

/// How a script run went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub ok: usize,
    pub failed: usize,
}

/// Runs every statement of `source`, printing results to stdout and errors to stderr.
pub fn run_script(
    db: &Database,
    file: &str,
    source: &str,
    renderer: &Renderer,
    keep_going: bool,
) -> Tally {
    let mut tally = Tally::default();
    let stdout = std::io::stdout();
    for outcome in db.execute_script(file, source) {
        match outcome.result {
            Ok(output) => {
                tally.ok += 1;
                let text = renderer.render(&output);
                let mut out = stdout.lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
            }
            Err(err) => {
                tally.failed += 1;
                let text = err.render_at(file, source, outcome.span);
                let _ = writeln!(std::io::stderr(), "{}", text.trim_end());
                if !keep_going {
                    break;
                }
            }
        }
    }
    tally
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
