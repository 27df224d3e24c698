//! Indexed queries read only the matching index range and the matching records, never the
//! table: counted by a storage wrapper.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kvm::storage::{CountingEngine, MemoryEngine};
use kvm::{params, Database, Options};

#[test]
fn indexed_queries_read_only_what_matches() {
    let engine = Arc::new(CountingEngine::new(MemoryEngine::new()));
    let counts = engine.counts.clone();
    let db =
        Database::with_engine(engine, Options { seed: Some(1), ..Options::default() }).unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, email STRING UNIQUE, kind STRING, n INT NOT NULL, INDEX by_kind_n (kind, n))", ()).unwrap();
    let insert = db.prepare("INSERT INTO t { id: $1, email: $2, kind: $3, n: $4 }").unwrap();
    for i in 0..1000i64 {
        let kind = if i % 10 == 0 { "rare" } else { "common" };
        insert.execute(params![i, format!("u{i}@x.com"), kind, i]).unwrap();
    }
    // Each statement also reads the catalog version key once.
    counts.reset();
    let rows = db.query("SELECT id FROM t WHERE email = 'u500@x.com'", ()).unwrap();
    assert_eq!(rows.rows.len(), 1);
    let (gets, scanned) = counts.get();
    assert!(scanned <= 1 && gets <= 3, "unique get read {gets} keys and scanned {scanned} rows");

    counts.reset();
    let rows =
        db.query("SELECT id FROM t WHERE kind = 'rare' AND n >= 100 AND n < 300", ()).unwrap();
    assert_eq!(rows.rows.len(), 20);
    let (gets, scanned) = counts.get();
    assert_eq!(scanned, 20, "the index range holds exactly the 20 matches");
    assert!(gets <= 20 + 2, "one record get per match, read {gets}");

    counts.reset();
    let rows = db.query("SELECT COUNT(*) FROM t WHERE kind = 'rare'", ()).unwrap();
    assert_eq!(rows.rows[0][0], kvm::Value::Int(100));
    let (gets, scanned) = counts.get();
    assert_eq!(scanned, 100);
    assert!(gets <= 2, "a count from the index reads no record, read {gets}");

    counts.reset();
    let rows = db.query("SELECT id FROM t WHERE id IN (1, 2, 3)", ()).unwrap();
    assert_eq!(rows.rows.len(), 3);
    assert_eq!(counts.get().1, 0);
}

/// A page after a cursor starts reading right past the cursor's row (a seek), by primary
/// key and through an index, forwards and backwards: it never re-reads earlier pages.
#[test]
fn pages_after_a_cursor_seek_instead_of_rereading() {
    let engine = Arc::new(CountingEngine::new(MemoryEngine::new()));
    let counts = engine.counts.clone();
    let db =
        Database::with_engine(engine, Options { seed: Some(1), ..Options::default() }).unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, n INT NOT NULL, INDEX by_n (n))", ()).unwrap();
    let insert = db.prepare("INSERT INTO t { id: $1, n: $2 }").unwrap();
    for i in 0..1000i64 {
        insert.execute(params![i, i % 100]).unwrap();
    }
    for query in [
        "SELECT id FROM t LIMIT 7 AFTER $1",
        "SELECT id FROM t ORDER BY id DESC LIMIT 7 AFTER $1",
        "SELECT id FROM t ORDER BY n LIMIT 7 AFTER $1",
        "SELECT id FROM t ORDER BY n DESC LIMIT 7 AFTER $1",
    ] {
        let page = db.prepare(query).unwrap();
        let mut cursor: Option<String> = None;
        for _ in 0..50 {
            counts.reset();
            let rows = page.query(params![cursor.clone()]).unwrap();
            assert_eq!(rows.rows.len(), 7);
            let (_, scanned) = counts.get();
            assert!(scanned <= 8, "{query}: a page scanned {scanned} rows");
            cursor = rows.next_cursor;
        }
    }
}
