//! Tests that need a second process re-run their own test binary as the child: the child's
//! part is an `#[ignore]`d test (so a plain `cargo test` lists it as ignored instead of
//! passing it without doing anything), which the parent runs with `--ignored --exact`.
//! The parent checks the child ran that one test and it passed, so a renamed test or a
//! filter that matches nothing fails the parent instead of passing silently.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};

/// A command running only the ignored test `name` of this binary (output captured).
pub fn command(name: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", name, "--ignored", "--nocapture", "--test-threads", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Asserts that `out` is the output of a child that ran test `name`, alone, successfully.
pub fn assert_ran(name: &str, out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child {name} failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("test {name} ... ok"))
            && stdout.contains("test result: ok. 1 passed"),
        "child {name} did not run exactly that test:\n{stdout}\n{stderr}"
    );
}
