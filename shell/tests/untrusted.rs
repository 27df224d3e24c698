//! kvmsh on hostile input (issue 15, items 7 and 15): expressions past the depth limit,
//! scripts that `.read` themselves, non-KQL files given to `.read`.

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

/// A script that `.read`s itself — directly, through another file, or as the `-f` file —
/// stops at the cycle with an error and exit 1, having run each script once; a chain of
/// distinct scripts stops at 16 levels.
#[test]
fn read_refuses_cycles_and_deep_nesting() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let db = path("app.kvm");
    let (a, b, c) = (path("a.kql"), path("b.kql"), path("c.kql"));
    let count = || {
        let out = kvmsh(&[&db, "--csv", "-c", "SELECT COUNT(*) FROM runs"], "");
        text(&out.stdout)
    };
    let out = kvmsh(&[&db], "DEFINE MODEL runs (id ULID PRIMARY KEY, file STRING);");
    assert!(out.status.success(), "{}", text(&out.stderr));

    // a.kql reads itself.
    std::fs::write(&a, format!("INSERT INTO runs {{ file: 'a' }};\n.read {a}\n")).unwrap();
    let out = kvmsh(&[&db], &format!(".read {a}\n"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!(".read {a}: that script is already running (a cycle)")), "{err}");
    assert_eq!(count(), "count\n1\n");
    // As the -f file too: the cycle is caught at its first `.read`.
    let out = kvmsh(&[&db, "-f", &a], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already running (a cycle)"));
    assert_eq!(count(), "count\n2\n");

    // b.kql reads c.kql, which reads b.kql.
    std::fs::write(&b, format!("INSERT INTO runs {{ file: 'b' }};\n.read {c}\n")).unwrap();
    std::fs::write(&c, format!("INSERT INTO runs {{ file: 'c' }};\n.read {b}\n")).unwrap();
    let out = kvmsh(&[&db], &format!(".read {b}\n"));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!(".read {b}: that script is already running")), "{err}");
    assert_eq!(count(), "count\n4\n");

    // n0.kql reads n1.kql … reads n19.kql: the 17th `.read` is refused.
    for i in 0..20 {
        std::fs::write(
            path(&format!("n{i}.kql")),
            format!(".read {}\n", path(&format!("n{}.kql", i + 1))),
        )
        .unwrap();
    }
    let out = kvmsh(&[&db], &format!(".read {}\n", path("n0.kql")));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(".read {}: scripts nested deeper than 16 files", path("n16.kql"))),
        "{err}"
    );
}

/// `.read` of a file that is not text is refused in one line, without its content; a text
/// file that is not KQL gets the parse error, which shows only the offending line.
#[test]
fn read_does_not_echo_files_that_are_not_kql() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("data.bin");
    std::fs::write(&binary, b"SECRET\x00\x01\x02\xff\xfe more SECRET bytes\n").unwrap();
    let passwd = dir.path().join("passwd");
    std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:SECRET:/usr/sbin\n")
        .unwrap();
    let long = dir.path().join("long.txt");
    std::fs::write(&long, format!("garbage {}", "SECRET ".repeat(2000))).unwrap();

    let out = kvmsh(&[":memory:"], &format!(".read {}\n", binary.display()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err,
        format!("<stdin>:1: error: {} is not a KQL script (binary data)\n", binary.display())
    );
    // `-f` applies the same rule.
    let out = kvmsh(&[":memory:", "-f", binary.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(!text(&out.stderr).contains("SECRET"), "{}", text(&out.stderr));

    let out = kvmsh(&[":memory:"], &format!(".read {}\n", passwd.display()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("expected a statement, found `root`"), "{err}");
    assert!(!err.contains("daemon") && !err.contains("SECRET"), "only the bad line: {err}");

    let out = kvmsh(&[":memory:"], &format!(".read {}\n", long.display()));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.matches("SECRET").count() < 30, "a window of the line, not all of it: {err}");
}
