//! Golden KQL scripts: each `tests/kql/*.kql` file is a list of cases — KQL, a `---` line,
//! the expected output, a blank line. A case may start with tags: `[plan]` prints the plan
//! of each statement before its output, `[ops]` prints the raw key-value writes it
//! committed (via `storage::format`). Every file runs on the memory and the LMDB backend
//! and both must print the expected output exactly. `UPDATE_GOLDEN=1` rewrites the files
//! (from the memory run; LMDB must still agree); review the change as a diff.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use kvm::storage::format::{format_key, format_value};
use kvm::storage::{ManualClock, Mutation, PatchOp};
use kvm::Database;

struct Case {
    tags: Vec<String>,
    input: String,
    expected: String,
}

fn parse_cases(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut lines = text.lines().peekable();
    loop {
        while lines.peek().is_some_and(|l| l.trim().is_empty()) {
            lines.next();
        }
        if lines.peek().is_none() {
            break;
        }
        let mut input = Vec::new();
        for l in lines.by_ref() {
            if l == "---" {
                break;
            }
            input.push(l.to_string());
        }
        let mut expected = Vec::new();
        for l in lines.by_ref() {
            if l.is_empty() {
                break;
            }
            expected.push(l.to_string());
        }
        let mut tags = Vec::new();
        if let Some(first) = input.first_mut() {
            if first.starts_with('[') {
                if let Some(end) = first.find(']') {
                    tags = first[1..end].split(',').map(|t| t.trim().to_string()).collect();
                    *first = first[end + 1..].trim_start().to_string();
                }
            }
        }
        cases.push(Case { tags, input: input.join("\n"), expected: expected.join("\n") });
    }
    cases
}

/// Runs a case. Lines starting `c1:`, `c2:`, … run in that named session (each its own
/// `BEGIN … COMMIT` state, for concurrency anomalies), other lines in the case's main
/// session; their output lines carry the same prefix. Directives: `@advance 30s` moves
/// the manual clock, `@sweep` deletes expired entries now and prints how many. In a line
/// with `$cursor`, it is replaced by the session's last printed `next cursor` (or NULL).
fn run_case(db: &Database, clock: &ManualClock, case: &Case) -> String {
    let mut out = String::new();
    let mut sessions: HashMap<String, kvm::Session> = HashMap::new();
    let mut cursors: HashMap<String, String> = HashMap::new();
    let mut chunks: Vec<(String, String)> = Vec::new();
    for line in case.input.lines() {
        let (target, text) = match line.split_once(':') {
            Some((p, rest))
                if p.len() >= 2
                    && p.starts_with('c')
                    && p[1..].chars().all(|c| c.is_ascii_digit()) =>
            {
                (p.to_string(), rest.trim_start().to_string())
            }
            _ if line.starts_with('@') => ("@".to_string(), line.to_string()),
            _ => (String::new(), line.to_string()),
        };
        match chunks.last_mut() {
            Some((t, body)) if *t == target && target != "@" => {
                body.push('\n');
                body.push_str(&text);
            }
            _ => chunks.push((target, text)),
        }
    }
    for (target, body) in chunks {
        if target == "@" {
            let mut words = body[1..].split_whitespace();
            match (words.next(), words.next()) {
                (Some("advance"), Some(d)) => clock.advance(kvm::lang::parse_duration(d).unwrap()),
                (Some("sweep"), None) => {
                    let _ = writeln!(out, "swept {}", db.sweep_expired().unwrap());
                }
                _ => panic!("unknown directive {body}"),
            }
            continue;
        }
        let prefix = if target.is_empty() { String::new() } else { format!("{target}: ") };
        let cursor = cursors.entry(target.clone()).or_insert_with(|| "NULL".to_string());
        let session = sessions.entry(target).or_insert_with(|| db.session());
        let pieces: Vec<String> = if body.contains("$cursor") {
            body.lines().map(str::to_string).collect()
        } else {
            vec![body]
        };
        for piece in pieces {
            let piece = piece.replace("$cursor", cursor);
            for outcome in session.execute_script("case", &piece) {
                let text = match &outcome.result {
                    Ok(o) => o.to_string(),
                    Err(e) => e.render("case", &piece).trim_end().to_string(),
                };
                if let Ok(kvm::Output::Rows(r)) = &outcome.result {
                    *cursor =
                        r.next_cursor.as_ref().map_or("NULL".to_string(), |c| format!("'{c}'"));
                }
                for l in text.lines() {
                    let _ = writeln!(out, "{prefix}{l}");
                }
            }
        }
    }
    out.trim_end().to_string()
}

/// Runs one case, printing plans before and KV writes after each statement as tagged.
fn run_case_tagged(
    db: &Database,
    rec: &common::Recorder,
    clock: &ManualClock,
    case: &Case,
) -> String {
    let plan = case.tags.iter().any(|t| t == "plan");
    let ops = case.tags.iter().any(|t| t == "ops");
    if !plan && !ops {
        return run_case(db, clock, case);
    }
    let mut out = String::new();
    let script = kvm::lang::parse_script("case", &case.input);
    if !script.is_ok() {
        return script.render_diagnostics().trim_end().to_string();
    }
    for stmt in &script.statements {
        if plan {
            match db.execute(&format!("EXPLAIN {stmt}"), ()) {
                Ok(p) => {
                    let _ = writeln!(out, "{p}");
                }
                Err(e) => {
                    let _ = writeln!(out, "plan error: {e}");
                }
            }
        }
        let before = rec.log.lock().unwrap().len();
        match db.run_statement(stmt, &kvm::Params::default()) {
            Ok(o) => {
                let _ = writeln!(out, "{o}");
            }
            Err(e) => {
                let _ = writeln!(out, "{}", e.render("case", &case.input).trim_end());
            }
        }
        if ops {
            let log = rec.log.lock().unwrap();
            for batch in &log[before..] {
                for m in &batch.mutations {
                    let _ = match m {
                        Mutation::Set { key, value, expire_at: Some(t) } => writeln!(
                            out,
                            "set {} = {} expire +{}ms",
                            format_key(key),
                            format_value(value),
                            t.saturating_sub(common::START_MILLIS)
                        ),
                        Mutation::Set { key, value, .. } => {
                            writeln!(out, "set {} = {}", format_key(key), format_value(value))
                        }
                        Mutation::Delete { key } => writeln!(out, "delete {}", format_key(key)),
                        Mutation::Patch { key, ops } => {
                            let ops: Vec<String> = ops
                                .iter()
                                .map(|p| match &p.op {
                                    PatchOp::AddInt(d) | PatchOp::AddCounter(d) => {
                                        format!("#{} += {d}", p.field)
                                    }
                                    PatchOp::MinInt(v) => format!("#{} min {v}", p.field),
                                    PatchOp::MaxInt(v) => format!("#{} max {v}", p.field),
                                    PatchOp::MinCounter(v) => format!("#{} min {v}", p.field),
                                    PatchOp::MaxCounter(v) => format!("#{} max {v}", p.field),
                                    PatchOp::Set(v) => {
                                        format!("#{} = {}", p.field, format_value(v))
                                    }
                                })
                                .collect();
                            writeln!(out, "patch {} {}", format_key(key), ops.join(", "))
                        }
                        other => writeln!(out, "{other:?}"),
                    };
                }
            }
        }
    }
    out.trim_end().to_string()
}

fn render(cases: &[Case], outputs: &[String]) -> String {
    let mut s = String::new();
    for (c, o) in cases.iter().zip(outputs) {
        if !c.tags.is_empty() {
            let _ = write!(s, "[{}] ", c.tags.join(","));
        }
        let _ = writeln!(s, "{}\n---\n{}\n", c.input, o);
    }
    s
}

fn run_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let cases = parse_cases(&text);
    let mut results = Vec::new();
    #[allow(unused_mut)]
    let mut backends = vec![common::Backend::Memory, common::Backend::Lmdb];
    #[cfg(feature = "etcd")]
    match common::etcd_unavailable() {
        None => backends.push(common::Backend::Etcd),
        Some(why) => eprintln!("SKIPPED the etcd run of {}: {why}", path.display()),
    }
    for backend in backends {
        let (db, rec, _dir, clock) = common::open_with_clock(backend);
        let outputs: Vec<String> =
            cases.iter().map(|c| run_case_tagged(&db, &rec, &clock, c)).collect();
        results.push(outputs);
    }
    for (other, name) in results.iter().skip(1).zip(["LMDB", "etcd"]) {
        for (i, (m, l)) in results[0].iter().zip(other).enumerate() {
            if m != l {
                return Err(format!(
                    "{}: case {} differs between memory and {name}:\nmemory:\n{m}\n{name}:\n{l}",
                    path.display(),
                    i + 1
                ));
            }
        }
    }
    let actual = render(&cases, &results[0]);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return Ok(());
    }
    for (i, (c, o)) in cases.iter().zip(&results[0]).enumerate() {
        if c.expected != *o {
            return Err(format!(
                "{} case {} ({}):\nexpected:\n{}\nactual:\n{}\n(UPDATE_GOLDEN=1 to rewrite, then review the diff)",
                path.display(),
                i + 1,
                c.input.lines().next().unwrap_or(""),
                c.expected,
                o
            ));
        }
    }
    Ok(())
}

#[test]
fn golden_kql_scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kql"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let failures: Vec<String> = files.iter().filter_map(|f| run_file(f).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
