//! Golden tests: every `tests/golden/*.kql` file is parsed and its statements printed in
//! canonical form (and, for `ast_*.kql`, dumped with spans); `errors.kql` holds malformed
//! inputs, one per `-- case:` line, each with its rendered diagnostics. The output is
//! compared with the `.golden` file beside the input; run with `UPDATE_GOLDEN=1` to rewrite
//! the expected files, then review the change as a diff.
//!
//! Every statement is also checked to round-trip: `parse(print(ast)) == ast`, and printing
//! is idempotent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kvm_lang::{parse_script, parse_statement, Statement};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compare `actual` with the golden file, or rewrite it under `UPDATE_GOLDEN=1`.
fn check_golden(path: &Path, actual: &str) -> Result<(), String> {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).map_err(|e| format!("{}: {e}", path.display()))?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    let mut diff = String::new();
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            let _ = writeln!(
                diff,
                "first difference at line {}:\n  expected: {e}\n  actual:   {a}",
                i + 1
            );
            break;
        }
    }
    if diff.is_empty() {
        let _ = writeln!(
            diff,
            "line counts differ: expected {}, actual {}",
            expected.lines().count(),
            actual.lines().count()
        );
    }
    Err(format!("{} is out of date (UPDATE_GOLDEN=1 to rewrite):\n{diff}", path.display()))
}

/// Parse, print, parse again: the trees must be equal and the second print identical.
fn assert_round_trip(stmt: &Statement) {
    let printed = stmt.to_string();
    let reparsed = parse_statement(&printed)
        .unwrap_or_else(|d| panic!("printed statement does not parse: {d}\n{printed}"));
    assert_eq!(&reparsed, stmt, "round trip changed the tree of:\n{printed}");
    assert_eq!(reparsed.to_string(), printed, "printing is not idempotent");
}

fn run_statements(path: &Path) -> Result<(), String> {
    let source = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input.kql");
    let script = parse_script(name, &source);
    let dump_ast = name.starts_with("ast_");
    let mut out = String::new();
    for stmt in &script.statements {
        assert_round_trip(stmt);
        let text = source.get(stmt.span().range()).unwrap_or("");
        let _ = writeln!(out, "{}\n---\n{stmt}", text.trim());
        if dump_ast {
            let _ = writeln!(out, "{stmt:#?}");
        }
        out.push('\n');
    }
    if !script.is_ok() {
        let _ = writeln!(out, "=== diagnostics ===\n{}", script.render_diagnostics());
    }
    check_golden(&path.with_extension("golden"), &out)
}

fn run_errors(path: &Path) -> Result<(), String> {
    let source = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut cases: Vec<(String, String)> = Vec::new();
    for line in source.lines() {
        if let Some(name) = line.strip_prefix("-- case: ") {
            cases.push((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = cases.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    let mut out = String::new();
    for (name, body) in &cases {
        let body = body.trim_end();
        let script = parse_script("input.kql", body);
        assert!(!script.is_ok(), "case `{name}` parsed without errors:\n{body}");
        for stmt in &script.statements {
            assert_round_trip(stmt);
        }
        let _ = writeln!(out, "== {name} ==\n{body}\n---\n{}", script.render_diagnostics());
    }
    assert!(cases.len() >= 40, "expected at least 40 error cases, found {}", cases.len());
    check_golden(&path.with_extension("golden"), &out)
}

#[test]
fn golden_files() {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("read tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "kql"))
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no golden inputs found");
    let failures: Vec<String> = entries
        .iter()
        .filter_map(|path| {
            let result = if path.file_name().is_some_and(|n| n == "errors.kql") {
                run_errors(path)
            } else {
                run_statements(path)
            };
            result.err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_design_contract_parses_exactly_as_written() {
    let path = golden_dir().join("contract.kql");
    let source = std::fs::read_to_string(&path).expect("read contract.kql");
    let script = parse_script("contract.kql", &source);
    assert!(script.is_ok(), "{}", script.render_diagnostics());
    assert_eq!(script.statements.len(), 27, "every contract statement is parsed");
}

#[test]
fn valid_golden_inputs_have_no_errors() {
    for entry in std::fs::read_dir(golden_dir()).expect("read tests/golden") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if !name.ends_with(".kql") || name == "errors.kql" {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("read");
        let script = parse_script(&name, &source);
        assert!(script.is_ok(), "{}", script.render_diagnostics());
    }
}
