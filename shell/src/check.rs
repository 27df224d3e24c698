//! `kvmsh --check`: parse scripts with `kvm::lang`, report diagnostics, set the exit code.

use std::io::{Read, Write};
use std::process::ExitCode;

/// Check every file; 0 when all statements parse, 1 when any is malformed or unreadable.
pub fn run(files: &[String]) -> ExitCode {
    let mut failed = false;
    let stderr = std::io::stderr();
    let stdout = std::io::stdout();
    for file in files {
        let source = match read(file) {
            Ok(source) => source,
            Err(err) => {
                let _ = writeln!(stderr.lock(), "error: cannot read {file}: {err}");
                failed = true;
                continue;
            }
        };
        let name = if file == "-" { "<stdin>" } else { file.as_str() };
        let script = kvm::lang::parse_script(name, &source);
        if script.is_ok() {
            let n = script.statements.len();
            let _ = writeln!(
                stdout.lock(),
                "{name}: ok ({n} statement{})",
                if n == 1 { "" } else { "s" }
            );
        } else {
            failed = true;
            let mut err = stderr.lock();
            let _ = writeln!(err, "{}", script.render_diagnostics());
            let n = script.diagnostics.len();
            let _ =
                writeln!(err, "{name}: {n} malformed statement{}", if n == 1 { "" } else { "s" });
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read(file: &str) -> std::io::Result<String> {
    if file == "-" {
        let mut source = String::new();
        std::io::stdin().read_to_string(&mut source)?;
        Ok(source)
    } else {
        std::fs::read_to_string(file)
    }
}
