//! kvmsh: the interactive KVM shell. It talks to the engine only through the public `kvm` API.
//!
//! For now it has one mode, `kvmsh --check FILE…`: parse KQL scripts without running them,
//! print every diagnostic (file, line, column, caret) to stderr, and exit 1 when any
//! statement is malformed — so CI pipelines can lint their scripts.

mod check;

use std::process::ExitCode;

use clap::Parser;

/// The KVM shell.
#[derive(Parser, Debug)]
#[command(name = "kvmsh", version, about = "The KVM shell", long_about = None)]
struct Args {
    /// Database path (created when missing); `:memory:` for a throwaway database.
    db: Option<String>,

    /// Parse these KQL scripts without running them (`-` reads standard input); print each
    /// diagnostic and exit 1 if any statement is malformed.
    #[arg(long, value_name = "FILES", num_args = 1.., conflicts_with = "db")]
    check: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.check.is_empty() {
        return check::run(&args.check);
    }
    eprintln!(
        "kvmsh: the interactive shell is not built yet; use `kvmsh --check FILE…` to lint scripts"
    );
    ExitCode::from(2)
}
