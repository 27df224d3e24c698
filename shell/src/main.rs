//! kvmsh: the KVM shell. It talks to the engine only through the public `kvm` API.
//!
//! - `kvmsh [DB]` opens (creating when missing) an LMDB database file; `:memory:` (the
//!   default) is a throwaway in-memory one.
//! - `-c "KQL"` runs commands, `-f FILE` runs scripts, and standard input that is not a
//!   terminal is read as a script; the first failing statement stops the run (`--keep-going`
//!   runs on) and the exit code is 1.
//! - `--check FILE…` parses scripts without running them (for linting in CI).
//! - Results print as tables, or with `--mode line|json|ndjson|csv` (`--json`, `--csv`).
//! - `--safe` refuses the dot-commands that touch files, for running untrusted scripts.

mod check;
mod dot;
mod editor;
mod import;
mod render;
mod repl;
mod run;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use clap::Parser;
use render::{Mode, Renderer};

const EXAMPLES: &str = "Examples:
  kvmsh app.kvm                          open (or create) app.kvm and type KQL
  kvmsh app.kvm -f seed.kql              run a script; stop at the first error
  kvmsh app.kvm -c \"SELECT * FROM users\" --json
  echo \"SHOW MODELS\" | kvmsh app.kvm
  kvmsh app.kvm --safe < untrusted.kql   no .read/.import/.export FILE/.backup/.open
  kvmsh --check migrations/*.kql         lint scripts without running them";

/// The KVM shell.
#[derive(Parser, Debug)]
#[command(name = "kvmsh", version, about = "The KVM shell", after_help = EXAMPLES)]
struct Args {
    /// Database file (created when missing); `:memory:` for a throwaway database.
    #[arg(default_value = ":memory:")]
    db: String,

    /// Run a KQL command (may be repeated; runs before any -f file).
    #[arg(short = 'c', long = "command", value_name = "KQL")]
    commands: Vec<String>,

    /// Run a KQL script file (may be repeated; `-` reads standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<String>,

    /// How results are printed.
    #[arg(long, value_enum, default_value = "table")]
    mode: Mode,

    /// Shorthand for `--mode json`.
    #[arg(long, conflicts_with_all = ["mode", "csv"])]
    json: bool,

    /// Shorthand for `--mode csv`.
    #[arg(long, conflicts_with_all = ["mode", "json"])]
    csv: bool,

    /// Stop at the first failing statement (the default for scripts).
    #[arg(long, conflicts_with = "keep_going")]
    bail: bool,

    /// Run every statement even after one fails (the exit code still reports the failure).
    #[arg(long)]
    keep_going: bool,

    /// Parse these KQL scripts without running them (`-` reads standard input); print each
    /// diagnostic and exit 1 if any statement is malformed.
    #[arg(long, value_name = "FILES", num_args = 1.., conflicts_with_all = ["commands", "files"])]
    check: Vec<String>,

    /// Open the database for reading only: every write fails, and the file may be on a
    /// read-only file system.
    #[arg(long)]
    readonly: bool,

    /// The LMDB map's initial size: bytes, or with a unit (`64MiB`, `2GiB`, `500MB`). The map
    /// grows by itself when full; this only sets where it starts (default 1GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_map_size)]
    map_size: Option<usize>,

    /// Write commits with `pwrite` instead of into LMDB's memory map (slower commits; the
    /// file's apparent size is then its real size).
    #[arg(long)]
    no_write_map: bool,

    /// Rewrite the database file compacted, giving the space of deleted data back to the
    /// file system, then exit. Refused while any process has the file open.
    #[arg(long, conflicts_with_all = ["commands", "files", "readonly"])]
    vacuum: bool,

    /// Refuse every dot-command that reads or writes a file (.read, .import, .export to a
    /// file, .backup, .open of a file): for scripts you do not trust. KQL still runs.
    #[arg(long)]
    safe: bool,
}

fn parse_map_size(text: &str) -> Result<usize, String> {
    let bytes = parse_size::parse_size(text).map_err(|e| format!("{e} (e.g. 64MiB, 2GiB)"))?;
    usize::try_from(bytes).map_err(|_| format!("{text} is too large"))
}

/// How database files are opened (set once from the command line; `.open` uses it too).
static STORAGE: std::sync::OnceLock<(bool, Option<usize>, bool)> = std::sync::OnceLock::new();

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.check.is_empty() {
        return check::run(&args.check);
    }
    let mode = if args.json {
        Mode::Json
    } else if args.csv {
        Mode::Csv
    } else {
        args.mode
    };
    if args.vacuum {
        return match kvm::Database::vacuum(&args.db) {
            Ok(v) => {
                let mb = |b: u64| b as f64 / (1 << 20) as f64;
                println!(
                    "vacuumed {}: {:.1} MB on disk, was {:.1} MB",
                    args.db,
                    mb(v.after),
                    mb(v.before)
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("kvmsh: cannot vacuum {}: {e} [{}]", args.db, e.code());
                ExitCode::from(2)
            }
        };
    }
    let _ = STORAGE.set((args.readonly, args.map_size, !args.no_write_map));
    let db = match open(&args.db) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("kvmsh: cannot open {}: {e}", args.db);
            return ExitCode::from(2);
        }
    };
    let stdin = std::io::stdin();
    let interactive = args.commands.is_empty() && args.files.is_empty() && stdin.is_terminal();
    let settings = run::Settings {
        renderer: Renderer { mode, width: terminal_width() },
        timer: false,
        keep_going: args.keep_going && !args.bail,
        safe: args.safe,
    };
    if interactive {
        return repl::run(db, &args.db, settings);
    }
    // Every input up front: a missing file fails the run before anything is executed.
    let mut pending = std::collections::VecDeque::new();
    for (i, cmd) in args.commands.iter().enumerate() {
        let name = if args.commands.len() == 1 {
            "<command>".to_owned()
        } else {
            format!("<command {}>", i + 1)
        };
        pending.push_back(Input { name, source: cmd.clone(), from: 0, file: false });
    }
    let mut files = args.files.clone();
    if args.commands.is_empty() && files.is_empty() {
        files.push("-".into());
    }
    for file in &files {
        match read(file) {
            Ok(input) => pending.push_back(input),
            Err(e) => {
                eprintln!("kvmsh: {e}");
                return ExitCode::from(2);
            }
        }
    }
    run_inputs(db, settings, pending)
}

/// A script to run: a `-c` command, a `-f` file or standard input.
struct Input {
    name: String,
    source: String,
    /// Where to go on from (after an `.open`).
    from: usize,
    /// Read from the file `name` (which a `.read` in it may not read again).
    file: bool,
}

/// Runs the inputs in one session (so a transaction may span them), reopening the session
/// on another database when a script says `.open`.
fn run_inputs(
    mut db: kvm::Database,
    mut settings: run::Settings,
    mut pending: std::collections::VecDeque<Input>,
) -> ExitCode {
    let mut failed = false;
    loop {
        let mut reopen = None;
        {
            let mut session = run::Session::new(&db, settings);
            while let Some(input) = pending.pop_front() {
                let tally = if input.file {
                    session.run_file(&input.name, &input.source, input.from)
                } else {
                    session.run_script(&input.name, &input.source, input.from)
                };
                failed |= tally.failed > 0;
                if tally.quit || (failed && !session.settings.keep_going) {
                    return exit(failed);
                }
                if let Some((path, next)) = tally.reopen {
                    pending.push_front(Input { from: next, ..input });
                    reopen = Some(path);
                    break;
                }
            }
            settings = session.settings;
        }
        let Some(path) = reopen else { return exit(failed) };
        match open(&path) {
            Ok(next) => db = next,
            Err(e) => {
                eprintln!("kvmsh: cannot open {path}: {e}");
                return ExitCode::from(2);
            }
        }
    }
}

fn exit(failed: bool) -> ExitCode {
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Opens a database file, or a throwaway one for `:memory:`.
pub(crate) fn open(path: &str) -> Result<kvm::Database, kvm::Error> {
    let (read_only, map_size, write_map) = STORAGE.get().copied().unwrap_or((false, None, true));
    let mut options = kvm::Options { read_only, write_map, ..kvm::Options::default() };
    if let Some(size) = map_size {
        options.map_size = size;
    }
    if path == ":memory:" {
        kvm::Database::memory_with(options)
    } else {
        kvm::Database::open_with(path, options)
    }
}

fn read(file: &str) -> Result<Input, String> {
    if file == "-" {
        let mut source = String::new();
        std::io::stdin()
            .read_to_string(&mut source)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(Input { name: "<stdin>".into(), source, from: 0, file: false })
    } else {
        let source = run::read_script(file)?;
        Ok(Input { name: file.to_owned(), source, from: 0, file: true })
    }
}

/// The terminal's width when stdout is one (tables fit it); `None` when piped.
fn terminal_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).or(Some(100))
}
