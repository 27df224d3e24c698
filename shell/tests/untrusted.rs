//! kvmsh on hostile input (issue 15, items 7 and 15): expressions past the depth limit,
//! scripts that `.read` themselves, model names that try to smuggle KQL into dot-commands,
//! files a dot-command must not clobber or follow, non-KQL files given to `.read`, and
//! `--safe`, which refuses every dot-command that touches a file.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kvmsh(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmsh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `a = 0 OR a = 1 OR …` with `terms` comparisons (a tree `terms + 1` deep).
fn or_chain(terms: usize) -> String {
    (0..terms).map(|k| format!("a = {k}")).collect::<Vec<_>>().join(" OR ")
}

/// At the depth limit a statement runs; past it (the 7,000 alternatives) kvmsh
/// prints the parse error with its position and caret and exits 1 instead of crashing.
#[test]
fn an_expression_past_the_depth_limit_is_a_parse_error_not_a_crash() {
    let n = kvm::lang::MAX_EXPR_DEPTH;
    let deep = format!("SELECT id FROM t WHERE {};", or_chain(7000));
    let script = format!(
        "DEFINE MODEL t (id INT PRIMARY KEY, a INT);\nINSERT INTO t {{ id: 1, a: 3 }};\n\
         SELECT id FROM t WHERE {};\n{deep}\n",
        or_chain(n - 1)
    );
    let out = kvmsh(&[":memory:", "--csv"], &script);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(text(&out.stdout), "id\n1\n");
    assert!(err.contains(&format!("error: expression too deep: more than {n} levels")), "{err}");
    // The (n-1)-th OR is where the tree passes n levels.
    let (at, _) = deep.match_indices(" OR ").nth(n - 2).unwrap();
    assert!(err.contains(&format!("<stdin>:4:{} (statement 4)", at + 2)), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    let i = lines.iter().position(|l| l.contains('^')).unwrap();
    let col = lines[i].find('^').unwrap();
    assert_eq!(lines[i - 1].chars().skip(col).take(2).collect::<String>(), "OR", "{err}");
    assert!(lines[i - 1].chars().count() < 220, "the source line is shown as a window");
}
