//! Cursor pagination (`LIMIT n AFTER $cursor`): 1,000 rows in pages of 7 come back each
//! exactly once, forwards and backwards, by primary key and by an indexed ORDER BY, with a
//! filter, while other rows are inserted between pages.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use kvm::{Database, Params, Value};

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn setup(db: &Database) {
    db.execute(
        "DEFINE MODEL items (id STRING PRIMARY KEY, score INT NOT NULL, odd BOOL NOT NULL, INDEX by_score (score))",
        (),
    )
    .unwrap();
    let mut batch = Vec::new();
    for i in 0..1000 {
        // Scores repeat (i % 97), so ties must be broken by the primary key.
        batch.push(format!("{{ id: 'k{i:04}', score: {}, odd: {} }}", i % 97, i % 2 == 1));
    }
    db.execute(&format!("INSERT INTO items [ {} ]", batch.join(", ")), ()).unwrap();
}

/// Pages through `query` (which has `LIMIT 7 AFTER $cursor`), inserting a new row (whose
/// id starts with `n`) between pages; returns the ids seen, in order.
fn paginate(db: &Database, query: &str) -> Vec<String> {
    let stmt = db.prepare(query).unwrap();
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut page = 0;
    loop {
        let rows = stmt.query(Params::none().with("cursor", cursor.clone())).unwrap();
        assert!(rows.rows.len() <= 7);
        for r in &rows.rows {
            let Value::String(id) = &r[0] else { panic!("id") };
            seen.push(id.clone());
        }
        page += 1;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        db.execute(
            &format!("INSERT INTO items {{ id: 'n{n:06}', score: {}, odd: TRUE }}", page % 97),
            (),
        )
        .unwrap();
        match rows.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    seen
}

fn check(db: &Database, query: &str, want: impl Fn(&str) -> bool, expect_order: &[String]) {
    let seen = paginate(db, query);
    let originals: Vec<String> = seen.iter().filter(|id| id.starts_with('k')).cloned().collect();
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for id in &seen {
        *counts.entry(id).or_default() += 1;
    }
    assert!(counts.values().all(|&c| c == 1), "{query}: a row came back twice");
    let expected: Vec<String> = expect_order.iter().filter(|id| want(id)).cloned().collect();
    assert_eq!(originals, expected, "{query}");
}

#[test]
fn thousand_rows_in_pages_of_seven_each_exactly_once() {
    for backend in [common::Backend::Memory, common::Backend::Lmdb] {
        let (db, _, _dir) = common::open(backend);
        setup(&db);
        let ids: Vec<String> = (0..1000).map(|i| format!("k{i:04}")).collect();
        let by_score = {
            let mut v: Vec<(i64, String)> =
                (0..1000).map(|i| (i % 97, format!("k{i:04}"))).collect();
            v.sort();
            v.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        };
        let reversed = |v: &[String]| v.iter().rev().cloned().collect::<Vec<_>>();
        let all = |_: &str| true;
        let odd = |id: &str| id[1..].parse::<u32>().unwrap() % 2 == 1;

        check(&db, "SELECT id FROM items WHERE id < 'l' LIMIT 7 AFTER $cursor", all, &ids);
        check(
            &db,
            "SELECT id FROM items WHERE id < 'l' ORDER BY id DESC LIMIT 7 AFTER $cursor",
            all,
            &reversed(&ids),
        );
        check(&db, "SELECT id FROM items ORDER BY score LIMIT 7 AFTER $cursor", all, &by_score);
        check(
            &db,
            "SELECT id FROM items ORDER BY score DESC LIMIT 7 AFTER $cursor",
            all,
            &reversed(&by_score),
        );
        check(
            &db,
            "SELECT id FROM items WHERE odd = TRUE AND id < 'l' ORDER BY score DESC LIMIT 7 AFTER $cursor",
            odd,
            &reversed(&by_score),
        );
        check(
            &db,
            "SELECT id FROM items WHERE score >= 10 AND score < 50 ORDER BY score LIMIT 7 AFTER $cursor",
            |id| {
                let s = id[1..].parse::<i64>().unwrap() % 97;
                (10..50).contains(&s)
            },
            &by_score,
        );
    }
}

/// A result whose size is an exact multiple of the page size ends on a full page with no
/// cursor: there is never an empty last page (sorted by the key, and kept top-n by a sort).
#[test]
fn an_exact_multiple_of_the_page_size_ends_without_an_empty_page() {
    let db = kvm::Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, n INT NOT NULL)", ()).unwrap();
    for i in 0..12i64 {
        db.execute("INSERT INTO t {id: $1, n: $2}", kvm::params![i, (i * 7) % 12]).unwrap();
    }
    for query in
        ["SELECT id FROM t LIMIT 4 AFTER $1", "SELECT id FROM t ORDER BY n LIMIT 4 AFTER $1"]
    {
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let rows = db.query(query, kvm::params![cursor.clone()]).unwrap();
            pages.push(rows.rows.len());
            match rows.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages, [4, 4, 4], "{query}");
    }
}
