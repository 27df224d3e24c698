//! The interactive shell: a rustyline editor (history, multi-line statements, completion,
//! highlighting), dot-commands, and results rendered as each statement completes. Errors are
//! reported and the session goes on; Ctrl-C drops the current input, Ctrl-D leaves.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use kvm::Database;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::Editor;

use crate::dot::{self, Dot};
use crate::editor::{KqlHelper, Names};
use crate::run::Session;

pub fn run(session: &mut Session, name: &str) -> ExitCode {
    session.keep_going = true;
    let names: Names = Arc::new(Mutex::new(Vec::new()));
    refresh_names(&session.db, &names);
    let config = Config::builder().auto_add_history(false).max_history_size(10_000);
    let mut editor = match config.map(|c| c.build()).and_then(Editor::with_config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kvmsh: cannot start the line editor: {e}");
            return ExitCode::from(2);
        }
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    editor.set_helper(Some(KqlHelper {
        names: names.clone(),
        color,
        hinter: rustyline::hint::HistoryHinter::new(),
    }));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "kvmsh {} — {name}. End statements with `;`; .help for commands, Ctrl-D to quit.",
        env!("CARGO_PKG_VERSION")
    );
    loop {
        let input = match editor.readline("kvm> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                eprintln!("kvmsh: {e}");
                return ExitCode::from(2);
            }
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(trimmed);
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        if trimmed.starts_with('.') {
            match dot::parse(trimmed) {
                Ok(Dot::Quit) => break,
                Ok(cmd) => {
                    if let Err(e) = session.dot(cmd) {
                        eprintln!("error: {e}");
                    }
                }
                Err(e) => eprintln!("error: {e}"),
            }
        } else {
            session.run_script("<input>", &input);
        }
        refresh_names(&session.db, &names);
    }
    ExitCode::SUCCESS
}

/// `$KVMSH_HISTORY`, else `~/.kvmsh_history`.
fn history_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("KVMSH_HISTORY") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".kvmsh_history"))
}

/// Reloads the model and field names that completion offers.
fn refresh_names(db: &Database, names: &Names) {
    let fresh = crate::run::catalog_names(db);
    if let Ok(mut n) = names.lock() {
        *n = fresh;
    }
}
