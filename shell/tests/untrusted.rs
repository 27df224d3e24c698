//! kvmsh on hostile input (issue 15, items 7 and 15): expressions past the depth limit,
//! scripts that `.read` themselves, model names that try to smuggle KQL into dot-commands,
//! files a dot-command must not clobber or follow, non-KQL files given to `.read`, and
//! `--safe`, which refuses every dot-command that touches a file.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Output;

use common::text;

fn kvmsh(args: &[&str], stdin: &str) -> Output {
    common::kvmsh(args, Some(stdin))
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

const MODELS: &str = "DEFINE MODEL t (id INT PRIMARY KEY, name STRING);\n\
                      DEFINE MODEL victim (id INT PRIMARY KEY);\n\
                      INSERT INTO t { id: 1, name: 'Ann' };\n";

/// A model name in `.schema` or `.export` is a name, never KQL: the injection attempts of
/// issue 15 fail as unknown models and `victim` is still there.
#[test]
fn dot_command_names_are_never_spliced_into_kql() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("out.ndjson");
    let script = format!(
        "{MODELS}.schema t`;DROP/**/MODEL/**/victim;--\n\
         .export t`;DROP/**/MODEL/**/victim;--\n\
         .export t`;DROP/**/MODEL/**/victim;-- {}\n\
         .schema t\n\
         SELECT COUNT(*) AS victims FROM victim;\n",
        out_file.display()
    );
    let out = kvmsh(&[":memory:", "--keep-going", "--mode", "line"], &script);
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("unknown model `t`;DROP/**/MODEL/**/victim;--`").count(), 3, "{err}");
    assert!(!stdout.contains("dropped"), "{stdout}");
    assert!(
        stdout.contains("DEFINE MODEL t (\n  id INT PRIMARY KEY,\n  name STRING\n)"),
        "{stdout}"
    );
    assert!(stdout.ends_with("victims = 0\n"), "victim is still there: {stdout}");
    assert!(!out_file.exists(), "a failed export creates no file");
}

/// `.export` never overwrites a file nor writes through a symbolic link (dangling or not);
/// `.backup` never writes through a dangling link; what they point at is left alone.
#[test]
fn export_and_backup_write_new_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing.ndjson");
    std::fs::write(&existing, "precious\n").unwrap();
    let (target, link) = (dir.path().join("target"), dir.path().join("link"));
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let fresh = dir.path().join("fresh.ndjson");

    let script = format!(
        "{MODELS}.export t {}\n.export t {}\n.export t {}\n",
        existing.display(),
        link.display(),
        fresh.display()
    );
    let out = kvmsh(&[":memory:", "--keep-going"], &script);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "cannot write {}: it already exists; .export never overwrites a file",
            existing.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("cannot write {}: it is a symbolic link", link.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "precious\n");
    assert!(!target.exists(), "nothing written where the link points");
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "{\"id\":1,\"name\":\"Ann\"}\n");

    // `.backup` through the dangling link, from an in-memory and from an LMDB database.
    let db = dir.path().join("app.kvm");
    for source in [":memory:", db.to_str().unwrap()] {
        let out = kvmsh(&[source], &format!("{MODELS}.backup {}\n", link.display()));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("is a symbolic link; a backup never writes through one"), "{err}");
        assert!(!target.exists(), "nothing written where the link points");
    }
}

/// `--safe` refuses every dot-command that touches a file, and runs the rest.
#[test]
fn safe_refuses_dot_commands_that_touch_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(file("evil.kql"), "DEFINE MODEL evil (id INT PRIMARY KEY);\n").unwrap();
    std::fs::write(file("data.ndjson"), "{\"id\": 2, \"name\": \"Bo\"}\n").unwrap();
    let script = format!(
        "{MODELS}.read {}\n.import {} INTO t\n.export t {}\n.backup {}\n.open {}\n\
         .export t\n.schema t\nSELECT COUNT(*) AS models FROM t;\n",
        file("evil.kql"),
        file("data.ndjson"),
        file("out.ndjson"),
        file("backup.kvm"),
        file("other.kvm"),
    );
    let out = kvmsh(&[":memory:", "--safe", "--keep-going"], &script);
    let (stdout, err) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    for what in [".read", ".import", ".export to a file", ".backup", ".open"] {
        assert!(
            err.contains(&format!("{what} is refused under --safe: it touches files")),
            "{what}: {err}"
        );
    }
    assert_eq!(err.lines().count(), 5, "{err}");
    // Nothing was read or written; what touches no file still ran.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data.ndjson", "evil.kql"]);
    assert!(stdout.contains("{\"id\":1,\"name\":\"Ann\"}\n"), "{stdout}");
    assert!(stdout.contains("models"), "{stdout}");
    assert!(!stdout.contains("evil"), "{stdout}");
}
