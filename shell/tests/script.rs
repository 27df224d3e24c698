//! kvmsh as scripts and pipes use it: `-f`, `-c`, stdin, every output mode, and failing
//! scripts (exit code, `file:line:col` with a caret, bail vs keep-going), through the built
//! binary; and the README's first command, `examples/blog.kql`, pinned to its output
//! (`blog.out` here; `UPDATE_GOLDEN=1` rewrites it).

#![allow(clippy::unwrap_used)]

mod common;

use common::{kvmsh, text};

const SCHEMA: &str = "DEFINE MODEL users (id STRING PRIMARY KEY, name STRING NOT NULL, age INT);";
const SEED: &str = "INSERT INTO users [{ id: 'u1', name: 'Ann', age: 31 }, { id: 'u2', name: 'Bo, \"B\"', age: 17 }];";

fn select(mode: &[&str]) -> String {
    let mut args = vec![":memory:", "-c", SCHEMA, "-c", SEED, "-c"];
    args.push("SELECT id, name, age FROM users ORDER BY id");
    args.extend_from_slice(mode);
    let out = kvmsh(&args, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn every_output_mode() {
    assert_eq!(
        select(&["--json"]),
        "{\"message\":\"defined model users\"}\n{\"verb\":\"inserted\",\"count\":2}\n\
         {\"rows\":[{\"id\":\"u1\",\"name\":\"Ann\",\"age\":31},{\"id\":\"u2\",\"name\":\"Bo, \\\"B\\\"\",\"age\":17}]}\n"
    );
    assert_eq!(select(&["--csv"]), "id,name,age\nu1,Ann,31\nu2,\"Bo, \"\"B\"\"\",17\n");
    assert_eq!(
        select(&["--mode", "ndjson"]),
        "{\"id\":\"u1\",\"name\":\"Ann\",\"age\":31}\n{\"id\":\"u2\",\"name\":\"Bo, \\\"B\\\"\",\"age\":17}\n"
    );
    assert_eq!(
        select(&["--mode", "line"]),
        "defined model users\ninserted 2 records\n  id = u1\nname = Ann\n age = 31\n\n  id = u2\nname = Bo, \"B\"\n age = 17\n"
    );
    let table = select(&[]);
    assert!(table.starts_with("defined model users\ninserted 2 records\n"), "{table}");
    assert!(table.contains("│ u2 ┆ Bo, \"B\" ┆ 17  │") && table.ends_with("(2 rows)\n"), "{table}");
}

#[test]
fn scripts_from_files_and_stdin_on_a_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.kvm");
    let db = db.to_str().unwrap();
    let script = dir.path().join("seed.kql");
    std::fs::write(&script, format!("{SCHEMA}\n{SEED}\n")).unwrap();
    let out = kvmsh(&[db, "-f", script.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A second process sees what the first one committed; stdin is read as a script.
    let out = kvmsh(&[db, "--csv"], Some("SELECT name FROM users WHERE id = 'u1';"));
    assert_eq!(text(&out.stdout), "name\nAnn\n");
    assert!(out.status.success());
}

#[test]
fn a_failing_script_stops_with_file_line_column_and_caret() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.kql");
    std::fs::write(
        &script,
        format!("{SCHEMA}\n{SEED}\nSELECT name FROM usres;\nINSERT INTO users {{ id: 'u3', name: 'Cy' }};\n"),
    )
    .unwrap();
    let file = script.to_str().unwrap();
    let out = kvmsh(&[":memory:", "-f", file, "--csv"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{file}:3:18")), "{err}");
    assert!(err.contains("^^^^^") && err.contains("did you mean `users`?"), "{err}");
    // --bail (the default) stops there: the INSERT after the error never ran.
    assert!(!text(&out.stdout).contains("inserted 1"), "{}", text(&out.stdout));

    let out = kvmsh(&[":memory:", "-f", file, "--keep-going"], None);
    assert_eq!(out.status.code(), Some(1), "a failure still fails the run");
    assert!(text(&out.stdout).contains("inserted 1 record"));
}

#[test]
fn runtime_errors_point_at_their_statement() {
    let out = kvmsh(&[":memory:", "-c", &format!("{SCHEMA}\n{SEED}\n{SEED}")], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("<command>:3:1"), "{err}");
    assert!(err.contains("[kvm."), "{err}");
}

#[test]
fn unreadable_files_and_databases_exit_2() {
    let out = kvmsh(&[":memory:", "-f", "/nonexistent/x.kql"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read /nonexistent/x.kql"));
}

#[test]
fn import_reports_exactly_the_bad_lines_and_keeps_the_good_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("users.ndjson");
    let mut lines = String::new();
    for i in 1..=100_000 {
        match i {
            // A type error, a parse error and a unique violation.
            17 => lines.push_str("{\"id\": \"x17\", \"name\": 5}\n"),
            4242 => lines.push_str("{\"id\": \"x4242\", \"name\": \n"),
            99_999 => lines.push_str("{\"id\": \"u1\", \"name\": \"again\"}\n"),
            _ => lines.push_str(&format!(
                "{{\"id\": \"u{i}\", \"name\": \"n{i}\", \"age\": {}}}\n",
                i % 90
            )),
        }
    }
    std::fs::write(&data, lines).unwrap();
    let db = dir.path().join("app.kvm");
    let script = format!("{SCHEMA}\n.import {} INTO users\n", data.to_str().unwrap());
    let out = kvmsh(&[db.to_str().unwrap(), "--keep-going"], Some(&script));
    let err = text(&out.stderr);
    let reported: Vec<&str> = err.lines().filter(|l| l.contains("users.ndjson:")).collect();
    assert_eq!(reported.len(), 3, "{err}");
    for line in [":17:", ":4242:", ":99999:"] {
        assert!(reported.iter().any(|l| l.contains(line)), "{line} missing in {err}");
    }
    assert!(text(&out.stdout).contains("imported 99997 records into users; 3 refused"));
    assert_eq!(out.status.code(), Some(1), "refused rows fail the script");
    let out = kvmsh(&[db.to_str().unwrap(), "--csv", "-c", "SELECT COUNT(*) FROM users"], None);
    assert_eq!(text(&out.stdout), "count\n99997\n");
}

#[test]
fn csv_import_atomic_import_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("u.csv");
    std::fs::write(&csv, "id,name,age\nu1,\"Ann, A\",31\nu2,Bo,\n").unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,name,age\nu3,Cy,x\nu4,Di,40\n").unwrap();
    let export = dir.path().join("out.ndjson");
    let script = format!(
        "{SCHEMA}\n.import {} INTO users\n.import {} INTO users --atomic\n.export users {}\n",
        csv.display(),
        bad.display(),
        export.display()
    );
    let out = kvmsh(&[":memory:", "--keep-going"], Some(&script));
    let err = text(&out.stderr);
    assert!(err.contains("bad.csv:2: age: `x` is not an integer"), "{err}");
    assert!(text(&out.stdout).contains("imported 2 records into users\n"));
    assert!(text(&out.stdout).contains("imported 0 records into users; 1 refused"));
    assert_eq!(
        std::fs::read_to_string(&export).unwrap(),
        "{\"id\":\"u1\",\"name\":\"Ann, A\",\"age\":31}\n{\"id\":\"u2\",\"name\":\"Bo\",\"age\":null}\n"
    );
}

/// CSV as RFC 4180 has it (a quoted cell across lines, doubled quotes, CRLF) and a JSON
/// array, both read as streams: each refused record is reported by the line it starts on (by
/// its position in an array), the rest land; a file that is not an array is refused whole.
#[test]
fn import_streams_multi_line_csv_and_json_arrays_reporting_each_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("u.csv");
    std::fs::write(
        &csv,
        "id,name,age\r\nu1,\"Ann\r\nsecond line, \"\"quoted\"\"\",31\r\nu2,Bo,x\r\nu3,Cy\r\n\r\nu4,Di,40\r\n",
    )
    .unwrap();
    let json = dir.path().join("u.json");
    std::fs::write(
        &json,
        "[{\"id\":\"j1\",\"name\":\"J\"},\n 7,\n {\"id\":\"j3\",\"name\":\"K\",\"age\":3}]",
    )
    .unwrap();
    let not_array = dir.path().join("o.json");
    std::fs::write(&not_array, "{\"id\":\"z\"}").unwrap();
    let script = format!(
        "{SCHEMA}\n.import {} INTO users\n.import {} INTO users\n.import {} INTO users\n\
         SELECT id, name FROM users ORDER BY id;\n",
        csv.display(),
        json.display(),
        not_array.display()
    );
    let out = kvmsh(&[":memory:", "--keep-going", "--json"], Some(&script));
    let err = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert!(err.contains("u.csv:4: age: `x` is not an integer"), "{err}");
    assert!(err.contains("u.csv:5: 2 cells, the header has 3"), "{err}");
    assert!(err.contains("u.json:2: expected an object, got 7"), "{err}");
    assert!(err.contains("o.json: expected a JSON array of records"), "{err}");
    assert!(stdout.contains("imported 2 records into users; 2 refused"), "{stdout}");
    assert!(stdout.contains("imported 2 records into users; 1 refused"), "{stdout}");
    assert!(
        stdout.contains(
            "{\"rows\":[{\"id\":\"j1\",\"name\":\"J\"},{\"id\":\"j3\",\"name\":\"K\"},\
             {\"id\":\"u1\",\"name\":\"Ann\\r\\nsecond line, \\\"quoted\\\"\"},{\"id\":\"u4\",\"name\":\"Di\"}]}"
        ),
        "{stdout}"
    );
}

/// `kvmsh FILE --vacuum` compacts the file (the records stay), and refuses `:memory:`.
#[test]
fn vacuum_compacts_the_file_and_keeps_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.kvm");
    let path = db.to_str().unwrap();
    let rows: Vec<String> =
        (0..3000).map(|i| format!("{{id: 'u{i}', name: '{}'}}", "n".repeat(500))).collect();
    let script = format!(
        "{SCHEMA}\nINSERT INTO users [{}];\nDELETE FROM users WHERE age IS NULL AND id != 'u7';\n",
        rows.join(", ")
    );
    let out = kvmsh(&[path], Some(&script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = kvmsh(&[path, "--vacuum"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("vacuumed {path}: ")), "{}", text(&out.stdout));
    let out = kvmsh(&[path, "--csv", "-c", "SELECT id FROM users"], None);
    assert_eq!(text(&out.stdout), "id\nu7\n");
    let out = kvmsh(&[":memory:", "--vacuum"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot vacuum :memory:"), "{}", text(&out.stderr));
}

#[test]
fn backup_then_open_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.kvm");
    let copy = dir.path().join("copy.kvm");
    let script = format!(
        "{SCHEMA}\n{SEED}\n.backup {}\nDELETE FROM users;\n.open {}\nSELECT COUNT(*) FROM users;\n",
        copy.display(),
        copy.display()
    );
    let out = kvmsh(&[db.to_str().unwrap(), "--csv"], Some(&script));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("count\n2\n"), "{}", text(&out.stdout));
}

#[test]
fn a_transaction_spans_commands_and_rollback_leaves_nothing() {
    let out = kvmsh(
        &[
            ":memory:",
            "--csv",
            "-c",
            SCHEMA,
            "-c",
            "BEGIN;",
            "-c",
            "INSERT INTO users { id: 'u1', name: 'Ann' };",
            "-c",
            "ROLLBACK;",
            "-c",
            "BEGIN; INSERT INTO users { id: 'u2', name: 'Bo' };",
            "-c",
            "COMMIT; SELECT id FROM users;",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("id\nu2\n"), "{}", text(&out.stdout));
}

/// `examples/blog.kql` (the README's first command) runs twice on one database file — it
/// starts over, so the second run is the re-run a new user makes — exits 0 both times and
/// prints exactly `shell/tests/blog.out` (after the DROPs, both runs print the same).
#[test]
fn the_blog_example_is_rerunnable_and_prints_its_golden_output() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let script = format!("{root}/examples/blog.kql");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.kvm");
    let run = || {
        let out = kvmsh(&[db.to_str().unwrap(), "-f", &script], None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "");
        text(&out.stdout)
    };
    let (first, second) = (run(), run());

    // The first run found nothing to drop, the second dropped the first run's models; the
    // rest is the same.
    assert!(first.starts_with("model posts does not exist\n"), "{first}");
    assert!(second.starts_with("dropped model posts\n"), "{second}");
    let after_drops = |out: &str| -> String {
        out.lines()
            .skip_while(|l| l.starts_with("dropped model ") || l.ends_with(" does not exist"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert_eq!(after_drops(&first), after_drops(&second));

    // What the example is there to show, so a failure names it before the full diff.
    for line in [
        "defined model tags (and join model posts_tags)",
        "related 0 records",
        // INCLUDE: a BELONGS TO as an object, a MANY TO MANY as an array.
        "│ p1 ┆ Hello, KVM ┆ {email: 'ann@example.com', id: 'ann', name: 'Ann', status: 'active'} ┆ [{name: 'intro'}, {name: 'kvm'}] │",
        "Limit 2 per row, stops reading there",
        "Via posts.author (semi-join): IndexScan posts.by_author_date",
        "IndexScan users.by_status prefix ['users', '__idx', 'by_status', 'active']",
        "IndexGet users.email_unique key ['users', '__idx', 'email_unique', 'ann@example.com']",
        "Page 2 (in order of published_on DESC, id DESC)",
        "(4 rows)",
        "ok: 6 model(s), every index entry matches its record, every foreign key points at a record",
    ] {
        assert!(second.contains(line), "missing {line:?} in:\n{second}");
    }
    // A script cannot bind `AFTER $cursor`, so the second page pastes the cursor the first
    // page prints: it must still be the one printed.
    let source = std::fs::read_to_string(&script).unwrap();
    let cursor = source.rsplit("AFTER '").next().and_then(|rest| rest.split('\'').next()).unwrap();
    assert!(
        second.contains(&format!("next cursor: {cursor}\n")),
        "the cursor pasted in examples/blog.kql ({cursor}) is no longer the first page's:\n{second}"
    );

    let golden = format!("{}/tests/blog.out", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &second).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        second == expected,
        "examples/blog.kql printed:\n{second}\nexpected ({golden}):\n{expected}\n\
         (UPDATE_GOLDEN=1 cargo test -p kvmsh to rewrite it, then review the diff)"
    );
}

/// Issue 16 item 7: `CHECK DATABASE` that finds problems is an error, so a script (a CI
/// job) running it fails: exit code 1 and each problem on stderr. Index entries are planted
/// straight into the LMDB file: one whose record is missing, and a record's entry removed.
#[test]
fn check_database_finding_problems_fails_the_script() {
    use kvm_storage::{tuple, AtomicBatch, Engine, KeyPart, LmdbEngine, LmdbOptions, Value};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.kvm");
    let db = db.to_str().unwrap();
    let schema = "DEFINE MODEL users (id INT PRIMARY KEY, age INT, INDEX by_age (age));";
    let seed = "INSERT INTO users [{id: 1, age: 31}, {id: 2, age: 17}];";
    let out = kvmsh(&[db, "-c", schema, "-c", seed, "-c", "CHECK DATABASE"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: 1 model(s)"), "{}", text(&out.stdout));

    {
        let engine = LmdbEngine::open(db, LmdbOptions::default()).unwrap();
        let s = |x: &str| KeyPart::String(x.into());
        let entry = |age, id| {
            tuple::encode(&[
                s("users"),
                s("__idx"),
                s("by_age"),
                KeyPart::Int(age),
                KeyPart::Int(id),
            ])
        };
        let batch =
            AtomicBatch::new().set(&entry(50, 9), &Value::Null.encode()).delete(&entry(31, 1));
        engine.commit(&batch).unwrap();
    }

    let out =
        kvmsh(&[db, "-c", "CHECK DATABASE", "-c", "SELECT 1 AS not_reached FROM users"], None);
    assert_eq!(out.status.code(), Some(1), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("[kvm.check_failed]"), "{stderr}");
    assert!(stderr.contains("[dangling_entry] users.by_age: entry ['users', '__idx', 'by_age', 50, 9] matches no record"), "{stderr}");
    assert!(
        stderr.contains(
            "[missing_entry] users.by_age: missing index entry ['users', '__idx', 'by_age', 31, 1]"
        ),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains("not_reached"), "the run stopped at the failed CHECK");
}
