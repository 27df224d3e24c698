//! KQL parsing speed: a ~1 MiB script of mixed statements (MB/s), and the same SELECT,
//! INSERT and UPDATE shapes parsed by KQL and by sqlparser (GenericDialect) in one run.
//!
//! Run: `cargo bench --bench parse`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kvm::lang::parse_script;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

/// Statements of every common kind, with `{n}` replaced by a counter.
const MIXED: &[&str] = &[
    "SELECT * FROM users WHERE status = 'active' AND age >= {n} ORDER BY created_at DESC LIMIT 10",
    "SELECT id, title FROM posts WHERE author_id = $1 INCLUDE author, comments (ORDER BY created_at DESC LIMIT 5)",
    "INSERT INTO users { email: 'user{n}@example.com', name: 'User {n}', age: {n}, tags: ['a', 'b'] } RETURNING id",
    "UPDATE posts SET views += 1, title = 'Title {n}' WHERE id = 'p{n}'",
    "UPSERT INTO users { email: 'a{n}@x.com', name: 'A' } ON (email)",
    "DELETE FROM sessions WHERE expires_at < now() AND user_id IN ('u{n}', 'u2', 'u3')",
    "SELECT COUNT(*) FROM users WHERE name STARTS WITH 'A' OR email LIKE '%@x.com' /* count them */",
    "ENQUEUE INTO emails { to: 'u{n}@x.com', subject: 'Hi' } DELAY '5s' PRIORITY 10 RETRIES 3 BACKOFF '1s'",
    "DEFINE MODEL m{n} ( id ULID PRIMARY KEY, name STRING NOT NULL, age INT CHECK (age BETWEEN 0 AND 120), INDEX by_name (name) ) WITH TIMESTAMPS",
    "KV LIST PREFIX ['users', {n}] LIMIT 10",
];

fn mixed_script(target_bytes: usize) -> String {
    let mut out = String::with_capacity(target_bytes + 256);
    let mut n = 0usize;
    while out.len() < target_bytes {
        let template = MIXED[n % MIXED.len()];
        out.push_str(&template.replace("{n}", &n.to_string()));
        out.push_str(";\n");
        n += 1;
    }
    out
}

/// (name, KQL statement, the comparable SQL statement)
const SHAPES: &[(&str, &str, &str)] = &[
    (
        "select",
        "SELECT id, title, views FROM posts WHERE author_id = {n} AND views >= 10 AND status IN ('draft', 'live') ORDER BY created_at DESC, id LIMIT 10 OFFSET 20",
        "SELECT id, title, views FROM posts WHERE author_id = {n} AND views >= 10 AND status IN ('draft', 'live') ORDER BY created_at DESC, id LIMIT 10 OFFSET 20",
    ),
    (
        "insert",
        "INSERT INTO users { email: 'user{n}@example.com', name: 'User', age: {n}, active: TRUE }",
        "INSERT INTO users (email, name, age, active) VALUES ('user{n}@example.com', 'User', {n}, TRUE)",
    ),
    (
        "update",
        "UPDATE posts SET views = views + 1, title = 'Title', score = score * 2 WHERE id = {n} AND deleted_at IS NULL",
        "UPDATE posts SET views = views + 1, title = 'Title', score = score * 2 WHERE id = {n} AND deleted_at IS NULL",
    ),
];

const SHAPE_COUNT: usize = 1_000;

fn repeat(template: &str) -> String {
    (0..SHAPE_COUNT).map(|n| template.replace("{n}", &n.to_string()) + ";\n").collect()
}

fn bench_mixed(c: &mut Criterion) {
    let script = mixed_script(1 << 20);
    let parsed = parse_script("bench.kql", &script);
    assert!(parsed.is_ok(), "{}", parsed.render_diagnostics());
    let mut group = c.benchmark_group("kql_mixed_1MiB");
    group.throughput(Throughput::Bytes(script.len() as u64));
    group.bench_function("parse_script", |b| {
        b.iter(|| parse_script("bench.kql", black_box(&script)).statements.len())
    });
    group.finish();
}

fn bench_shapes(c: &mut Criterion) {
    for (name, kql, sql) in SHAPES {
        let kql = repeat(kql);
        let sql = repeat(sql);
        assert_eq!(parse_script("b.kql", &kql).statements.len(), SHAPE_COUNT);
        assert_eq!(
            Parser::parse_sql(&GenericDialect {}, &sql).map(|s| s.len()).ok(),
            Some(SHAPE_COUNT)
        );
        let mut group = c.benchmark_group(format!("shape_{name}"));
        group.throughput(Throughput::Elements(SHAPE_COUNT as u64));
        group.bench_function("kql", |b| {
            b.iter(|| parse_script("b.kql", black_box(&kql)).statements.len())
        });
        group.bench_function("sqlparser", |b| {
            b.iter(|| Parser::parse_sql(&GenericDialect {}, black_box(&sql)).map(|s| s.len()).ok())
        });
        group.finish();
    }
}

criterion_group!(benches, bench_mixed, bench_shapes);
criterion_main!(benches);
