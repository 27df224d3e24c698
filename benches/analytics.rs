//! Analytical queries, KVM (LMDB, KQL) against SQLite (rusqlite, bundled) in the same run, on
//! one sales model of `KVM_BENCH_ROWS` rows (default 1,000,000):
//!
//! `sales (id INT PRIMARY KEY, category STRING NOT NULL, region STRING NOT NULL,
//! amount FLOAT NOT NULL, name STRING NOT NULL, INDEX (category))` — 40 categories, 8
//! regions, names `item <id> <word>`.
//!
//! Measured (each the same SQL text on both sides):
//! - `group_indexed_count`: `SELECT category, COUNT(*) … GROUP BY category` (an index on the
//!   key: KVM streams groups from index entries alone);
//! - `group_indexed_sum`: `SELECT category, SUM(amount) … GROUP BY category` (index order,
//!   records read for `amount`);
//! - `group_unindexed`: `SELECT region, COUNT(*), SUM(amount) … GROUP BY region`;
//! - `sum_filtered`: `SELECT SUM(amount) … WHERE region = 'north'` (no index: a scan);
//! - `like_contains`: `SELECT COUNT(*) … WHERE name LIKE '%zeta9%'`;
//! - `max_id`: `SELECT MAX(id) …` (one key from the end).
//!
//! Run: `cargo bench --features sqlite-baseline --bench analytics`. Results in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use kvm::lang::ast::{Insert, InsertSource, Param};
use kvm::lang::{Expr, ExprKind, Span, Statement};
use kvm::{Database, Params, Value};

fn rows() -> u64 {
    std::env::var("KVM_BENCH_ROWS")
        .ok()
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(1_000_000)
}

const WORDS: &[&str] = &["alpha", "beta", "gamma", "delta", "zeta9", "omega", "kappa", "sigma"];
const REGIONS: &[&str] = &["north", "south", "east", "west", "centre", "coast", "hills", "isles"];

struct Sale {
    id: i64,
    category: String,
    region: &'static str,
    amount: f64,
    name: String,
}

fn sale(i: u64) -> Sale {
    // Scattered: categories and regions do not follow the key order.
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17;
    Sale {
        id: i as i64,
        category: format!("cat{:02}", h % 40),
        region: REGIONS[(h / 40 % 8) as usize],
        amount: (h % 100_000) as f64 / 100.0,
        name: format!("item {i} {}", WORDS[(h / 320 % 8) as usize]),
    }
}

const QUERIES: &[(&str, &str)] = &[
    ("group_indexed_count", "SELECT category, COUNT(*) FROM sales GROUP BY category"),
    ("group_indexed_sum", "SELECT category, SUM(amount) FROM sales GROUP BY category"),
    ("group_unindexed", "SELECT region, COUNT(*), SUM(amount) FROM sales GROUP BY region"),
    ("sum_filtered", "SELECT SUM(amount) FROM sales WHERE region = 'north'"),
    ("like_contains", "SELECT COUNT(*) FROM sales WHERE name LIKE '%zeta9%'"),
    ("max_id", "SELECT MAX(id) FROM sales"),
];

fn load_kvm(db: &Database, n: u64) {
    db.execute(
        "DEFINE MODEL sales (id INT PRIMARY KEY, category STRING NOT NULL, \
         region STRING NOT NULL, amount FLOAT NOT NULL, name STRING NOT NULL, INDEX (category))",
        (),
    )
    .unwrap();
    let chunk = 50_000u64;
    let mut at = 0;
    while at < n {
        let end = (at + chunk).min(n);
        let records = (1..=(end - at))
            .map(|i| Expr::new(ExprKind::Param(Param::Positional(i as u32))))
            .collect();
        let stmt = Statement::Insert(Insert {
            model: kvm::lang::ast::Ident::new("sales"),
            source: InsertSource::Batch(records),
            expire: None,
            returning: None,
            span: Span::default(),
        });
        let positional = (at..end)
            .map(|i| {
                let s = sale(i);
                Value::Object(
                    [
                        ("id", Value::Int(s.id)),
                        ("category", Value::String(s.category)),
                        ("region", Value::String(s.region.to_string())),
                        ("amount", Value::Float(s.amount)),
                        ("name", Value::String(s.name)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                )
            })
            .collect();
        db.run_statement(&stmt, &Params { positional, ..Params::default() }).unwrap();
        at = end;
    }
}

fn load_sqlite(conn: &mut rusqlite::Connection, n: u64) {
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE sales (id INTEGER PRIMARY KEY, category TEXT NOT NULL, \
         region TEXT NOT NULL, amount REAL NOT NULL, name TEXT NOT NULL); \
         CREATE INDEX sales_by_category ON sales (category);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO sales (id, category, region, amount, name) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        for i in 0..n {
            let s = sale(i);
            ins.execute(rusqlite::params![s.id, s.category, s.region, s.amount, s.name]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch("ANALYZE").unwrap();
}

/// The rows of a query on each side, as text (to check that both agree).
fn kvm_rows(db: &Database, q: &str) -> Vec<String> {
    db.query(q, ()).unwrap().rows.iter().map(|r| format!("{r:?}")).collect()
}

fn sqlite_rows(conn: &rusqlite::Connection, q: &str) -> Vec<String> {
    let mut st = conn.prepare_cached(q).unwrap();
    let n = st.column_count();
    st.query_map([], |r| {
        let cells: Vec<String> = (0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect();
        Ok(cells.join(","))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn bench(c: &mut Criterion) {
    let n = rows();
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("analytics.kvm")).unwrap();
    let t = Instant::now();
    load_kvm(&db, n);
    println!("analytics: loaded {n} rows into KVM in {:.1} s", t.elapsed().as_secs_f64());
    let mut conn = rusqlite::Connection::open(dir.path().join("analytics.db")).unwrap();
    let t = Instant::now();
    load_sqlite(&mut conn, n);
    println!("analytics: loaded {n} rows into SQLite in {:.1} s", t.elapsed().as_secs_f64());

    let mut g = c.benchmark_group("analytics");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5)).sample_size(10);
    for (name, q) in QUERIES {
        // Same number of result rows on both sides (values differ in how they print).
        let (k, s) = (kvm_rows(&db, q), sqlite_rows(&conn, q));
        assert_eq!(k.len(), s.len(), "{q}\nkvm: {k:?}\nsqlite: {s:?}");
        println!("{name}: KVM plan\n{}", db.prepare(q).unwrap().explain());
        g.bench_function(format!("{name}/kvm"), |b| b.iter(|| black_box(db.query(q, ()).unwrap())));
        let mut st = conn.prepare(q).unwrap();
        let cols = st.column_count();
        g.bench_function(format!("{name}/sqlite"), |b| {
            b.iter(|| {
                let mut rows = st.query([]).unwrap();
                let mut k = 0;
                while let Some(r) = rows.next().unwrap() {
                    for i in 0..cols {
                        black_box(r.get_ref(i).unwrap());
                    }
                    k += 1;
                }
                k
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
