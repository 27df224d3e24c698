//! The interactive shell: a rustyline editor (history, multi-line statements, completion,
//! highlighting), dot-commands, and results rendered as each statement completes. Errors are
//! reported and the session goes on; Ctrl-C drops the current input (or interrupts the
//! running statement, which then writes nothing), Ctrl-D leaves.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use kvm::Database;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::Editor;

use crate::dot::{self, Dot};
use crate::editor::{KqlHelper, Names};
use crate::run::{Session, Settings};

pub fn run(mut db: Database, name: &str, mut settings: Settings) -> ExitCode {
    settings.keep_going = true;
    let names: Names = Arc::new(Mutex::new(Vec::new()));
    refresh_names(&db, &names);
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
    // While the editor waits for input the terminal is raw and Ctrl-C reaches it as a key;
    // while a statement runs, Ctrl-C is SIGINT, and interrupts the statement.
    let running: Arc<Mutex<Option<kvm::Interrupt>>> = Arc::new(Mutex::new(None));
    let on_ctrl_c = running.clone();
    if let Err(e) = ctrlc::set_handler(move || {
        if let Some(h) = on_ctrl_c.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.interrupt();
        }
    }) {
        eprintln!("kvmsh: Ctrl-C will not interrupt running statements: {e}");
    }
    loop {
        *running.lock().unwrap_or_else(|p| p.into_inner()) = Some(db.interrupt_handle());
        let path = {
            let mut session = Session::new(&db, settings);
            let path = loop {
                let input = match editor.readline("kvm> ") {
                    Ok(line) => line,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => return ExitCode::SUCCESS,
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
                    match dot::parse(trimmed).and_then(|cmd| session.allowed(cmd)) {
                        Ok(Dot::Quit) => return ExitCode::SUCCESS,
                        Ok(Dot::Open(path)) => break path,
                        Ok(cmd) => {
                            if let Err(e) = session.dot(cmd) {
                                eprintln!("error: {e}");
                            }
                        }
                        Err(e) => eprintln!("error: {e}"),
                    }
                } else {
                    session.run_script("<input>", &input, 0);
                }
                refresh_names(session.db, &names);
            };
            settings = session.settings;
            path
        };
        match crate::open(&path) {
            Ok(next) => {
                db = next;
                refresh_names(&db, &names);
                println!("opened {path}");
            }
            Err(e) => eprintln!("error: cannot open {path}: {e}"),
        }
    }
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
