//! The interactive shell: a rustyline editor (history, multi-line statements, completion,
//! highlighting), dot-commands, and results rendered as each statement completes. Errors are
//! reported and the session goes on; Ctrl-C drops the current input, Ctrl-D leaves.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvm::Database;
use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::Editor;

use crate::dot::{self, Dot};
use crate::editor::{KqlHelper, Names};
use crate::render::{Mode, Renderer};

pub fn run(db: &Database, name: &str, mode: Mode) -> ExitCode {
    let mut renderer = Renderer { mode, width: crate::terminal_width() };
    let mut timer = false;
    let names: Names = Arc::new(Mutex::new(Vec::new()));
    refresh_names(db, &names);
    let config = Config::builder().auto_add_history(false).max_history_size(10_000);
    let mut editor = match config.map(|c| c.build()).and_then(Editor::with_config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kvmsh: cannot start the line editor: {e}");
            return ExitCode::from(2);
        }
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    editor.set_helper(Some(KqlHelper { names: names.clone(), color }));
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
        let started = Instant::now();
        if trimmed.starts_with('.') {
            match dot::parse(trimmed) {
                Ok(Dot::Quit) => break,
                Ok(Dot::Help) => print!("{}", dot::help()),
                Ok(Dot::Mode(m)) => renderer.mode = m,
                Ok(Dot::Timer(on)) => timer = on,
                Ok(Dot::Read(file)) => match std::fs::read_to_string(&file) {
                    Ok(src) => {
                        crate::run::run_script(db, &file, &src, &renderer, false);
                    }
                    Err(e) => eprintln!("error: cannot read {file}: {e}"),
                },
                Ok(Dot::Models) => statement(db, "SHOW MODELS", &renderer),
                Ok(Dot::Indexes) => statement(db, "SHOW INDEXES", &renderer),
                Ok(Dot::Schema(Some(m))) => statement(db, &format!("DESCRIBE {m}"), &renderer),
                Ok(Dot::Schema(None)) => statement(db, "SHOW MODELS", &renderer),
                Err(e) => eprintln!("error: {e}"),
            }
        } else {
            crate::run::run_script(db, "<input>", &input, &renderer, true);
            refresh_names(db, &names);
        }
        if timer {
            println!("time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
        }
    }
    ExitCode::SUCCESS
}

fn statement(db: &Database, kql: &str, renderer: &Renderer) {
    crate::run::run_script(db, "<command>", kql, renderer, false);
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
