//! `kvmsh --check`: the design contract passes; a malformed script fails with file, line,
//! column and caret on stderr and exit code 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kvmsh(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmsh")).args(args).output().expect("run kvmsh")
}

fn contract() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lang/tests/golden/contract.kql")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kvmsh-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write script");
    path
}

#[test]
fn the_design_contract_checks_clean() {
    let path = contract();
    let out = kvmsh(&["--check", path.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (27 statements)"));
}

#[test]
fn a_malformed_statement_fails_with_line_column_and_caret() {
    let path = temp_file("bad.kql", "SELECT * FROM users;\nSELECT *\n  FORM users;\nCOMMIT;\n");
    let file = path.to_str().expect("utf-8 path");
    let out = kvmsh(&["--check", file]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "error: expected `FROM`, found `FORM`\n --> {file}:3:3 (statement 2)\n  |\n3 |   FORM users;\n  |   ^^^^\n  = help: did you mean `FROM`?\n"
    );
    assert!(stderr.contains(&expected), "stderr:\n{stderr}");
    assert!(stderr.contains("1 malformed statement"), "stderr:\n{stderr}");
}

#[test]
fn every_file_is_checked_and_any_failure_fails_the_run() {
    let good = contract();
    let bad = temp_file("bad2.kql", "UPDATE users SET x = ;");
    let out = kvmsh(&["--check", good.to_str().expect("path"), bad.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (27 statements)"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad2.kql:1:22"));
}

#[test]
fn a_missing_file_fails() {
    let out = kvmsh(&["--check", "/nonexistent/script.kql"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/script.kql"));
}
