//! Indexed queries read only the matching index range and the matching records, never the
//! table: counted by a storage wrapper.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kvm::storage::{CountingEngine, MemoryEngine, ReadCounts};
use kvm::{params, Database, Options};

/// An in-memory database whose storage reads are counted.
fn counted_db() -> (Database, Arc<ReadCounts>) {
    let engine = Arc::new(CountingEngine::new(MemoryEngine::new()));
    let counts = engine.counts.clone();
    let db =
        Database::with_engine(engine, Options { seed: Some(1), ..Options::default() }).unwrap();
    (db, counts)
}

#[test]
fn indexed_queries_read_only_what_matches() {
    let (db, counts) = counted_db();
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
    let (db, counts) = counted_db();
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

/// `INCLUDE` loads each relation level with one batched request for the whole page (a
/// multi-get of authors, one request for every post's comment-index range, a multi-get of
/// the comments), so the number of storage requests does not grow with the page size: no
/// N+1. Keys read do grow with the rows returned, and only with them.
#[test]
fn include_reads_are_batched_per_relation_level() {
    let (db, counts) = counted_db();
    db.execute("DEFINE MODEL users (id INT PRIMARY KEY, name STRING NOT NULL)", ()).unwrap();
    db.execute(
        "DEFINE MODEL posts (id INT PRIMARY KEY, author_id INT NOT NULL, title STRING NOT NULL, \
           RELATION author BELONGS TO users (author_id), \
           RELATION comments HAS MANY comments (post_id))",
        (),
    )
    .unwrap();
    db.execute(
        "DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, body STRING NOT NULL, \
           RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE)",
        (),
    )
    .unwrap();
    let users: Vec<String> = (0..50).map(|i| format!("{{id: {i}, name: 'u{i}'}}")).collect();
    db.execute(&format!("INSERT INTO users [{}]", users.join(", ")), ()).unwrap();
    let posts: Vec<String> = (0..300)
        .map(|i| format!("{{id: {i}, author_id: {}, title: 't{i}'}}", (i * 7) % 50))
        .collect();
    db.execute(&format!("INSERT INTO posts [{}]", posts.join(", ")), ()).unwrap();
    let comments: Vec<String> =
        (0..3000).map(|i| format!("{{id: {i}, post_id: {}, body: 'b{i}'}}", i / 10)).collect();
    db.execute(&format!("INSERT INTO comments [{}]", comments.join(", ")), ()).unwrap();

    let mut requests = Vec::new();
    for n in [10u64, 100] {
        counts.reset();
        let rows = db
            .query("SELECT * FROM posts LIMIT $1 INCLUDE author, comments", params![n as i64])
            .unwrap();
        assert_eq!(rows.rows.len() as u64, n);
        let comments = rows.columns.iter().position(|c| c == "comments").unwrap();
        for r in &rows.rows {
            assert!(matches!(&r[comments], kvm::Value::Array(a) if a.len() == 10));
        }
        let (gets, scanned) = counts.get();
        // n posts scanned (and one past the page, which says whether a next page exists) +
        // 10n comment-index entries; authors and comments fetched by key.
        assert_eq!(scanned, n + 1 + 10 * n, "scanned rows");
        assert!(gets <= 50.min(n) + 10 * n + 3, "keys fetched: {gets}");
        requests.push(counts.requests());
    }
    // (The first may make one more: the catalog version, read once per new commit.)
    assert!(requests[1] <= requests[0], "requests must not grow with the page: {requests:?}");
    assert!(requests[1] <= 8, "requests for a page with two includes: {}", requests[1]);

    // Nested includes: one more batched level, still independent of the page size.
    let mut nested = Vec::new();
    for n in [10i64, 100] {
        counts.reset();
        db.query("SELECT * FROM posts LIMIT $1 INCLUDE comments.post.author", params![n]).unwrap();
        nested.push(counts.requests());
    }
    assert_eq!(nested[0], nested[1], "nested include requests: {nested:?}");

    // COUNT(relation) reads index entries only.
    counts.reset();
    let rows = db.query("SELECT id, COUNT(comments) FROM posts LIMIT 100", ()).unwrap();
    assert_eq!(rows.rows[5][1], kvm::Value::Int(10));
    let (gets, _) = counts.get();
    assert!(gets <= 3, "COUNT(comments) fetched {gets} keys");
}

/// A condition on a related model that its index answers is a semi-join: the matching
/// users are found through their index, then their posts through the posts' foreign-key
/// index — the keys read grow with the matches, not with the posts or users stored; the
/// same holds through `HAS MANY` with `EXISTS`, and for the rows an UPDATE writes.
#[test]
fn relation_conditions_read_only_what_matches() {
    let (db, counts) = counted_db();
    db.execute(
        "DEFINE MODEL users (id INT PRIMARY KEY, status STRING NOT NULL, INDEX by_status (status))",
        (),
    )
    .unwrap();
    db.execute(
        "DEFINE MODEL posts (id INT PRIMARY KEY, author_id INT NOT NULL, title STRING NOT NULL, \
           RELATION author BELONGS TO users (author_id), \
           RELATION comments HAS MANY comments (post_id))",
        (),
    )
    .unwrap();
    db.execute(
        "DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, flagged BOOL NOT NULL, \
           RELATION post BELONGS TO posts (post_id) ON DELETE CASCADE, INDEX by_flagged (flagged))",
        (),
    )
    .unwrap();
    // 500 users, 2 of them banned; 5,000 posts (10 per user); 3 flagged comments.
    let users: Vec<String> = (0..500)
        .map(|i| format!("{{id: {i}, status: '{}'}}", if i % 250 == 7 { "banned" } else { "ok" }))
        .collect();
    db.execute(&format!("INSERT INTO users [{}]", users.join(", ")), ()).unwrap();
    let posts: Vec<String> =
        (0..5000).map(|i| format!("{{id: {i}, author_id: {}, title: 't{i}'}}", i % 500)).collect();
    db.execute(&format!("INSERT INTO posts [{}]", posts.join(", ")), ()).unwrap();
    let comments: Vec<String> = (0..2000)
        .map(|i| format!("{{id: {i}, post_id: {}, flagged: {}}}", i * 2, i % 700 == 3))
        .collect();
    db.execute(&format!("INSERT INTO comments [{}]", comments.join(", ")), ()).unwrap();

    let plan = match db.execute("EXPLAIN SELECT id FROM posts WHERE author.status = 'banned'", ()) {
        Ok(kvm::Output::Plan(p)) => p,
        other => panic!("{other:?}"),
    };
    assert!(plan.contains("Via posts.author") && !plan.contains("FullScan"), "{plan}");
    counts.reset();
    let rows = db.query("SELECT id FROM posts WHERE author.status = 'banned'", ()).unwrap();
    assert_eq!(rows.rows.len(), 20);
    let (gets, scanned) = counts.get();
    // 2 user index entries + 20 post index entries; 2 users + 20 posts fetched (+ the
    // authors again for the filter's re-check, a handful of catalog keys).
    assert!(scanned <= 22, "rows scanned: {scanned}");
    assert!(gets <= 20 + 2 + 2 + 5, "keys fetched: {gets}");

    counts.reset();
    let rows =
        db.query("SELECT id FROM posts WHERE EXISTS comments (WHERE flagged = true)", ()).unwrap();
    assert_eq!(rows.rows.len(), 3);
    let (gets, scanned) = counts.get();
    assert!(scanned <= 3 + 3, "rows scanned: {scanned}");
    assert!(gets <= 3 + 3 + 5, "keys fetched: {gets}");

    counts.reset();
    db.execute("UPDATE posts SET title = 'hidden' WHERE author.status = 'banned'", ()).unwrap();
    let (_, scanned) = counts.get();
    assert!(scanned <= 22, "UPDATE scanned {scanned} rows");
    let n = db.query("SELECT COUNT(*) FROM posts WHERE title = 'hidden'", ()).unwrap();
    assert_eq!(n.rows[0][0], kvm::Value::Int(20));
}

/// Read-only statements commit nothing (issue 17 item 3): queries, counts, EXPLAIN, a
/// prepared query, a streamed query, and a transaction that only read. Each reads the
/// catalog version at most once. A write commits once.
#[test]
fn read_only_statements_commit_nothing() {
    let (db, counts) = counted_db();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, k STRING, INDEX by_k (k))", ()).unwrap();
    db.execute("INSERT INTO t [{id: 1, k: 'a'}, {id: 2, k: 'b'}]", ()).unwrap();
    let prepared = db.prepare("SELECT id FROM t WHERE k = $1").unwrap();
    counts.reset();
    for _ in 0..10 {
        db.query("SELECT * FROM t WHERE id = 1", ()).unwrap();
        db.query("SELECT COUNT(*) FROM t WHERE k = 'a'", ()).unwrap();
        db.execute("EXPLAIN SELECT * FROM t ORDER BY k", ()).unwrap();
        prepared.query(params!["b"]).unwrap();
        for r in db.query_iter("SELECT * FROM t", ()).unwrap() {
            r.unwrap();
        }
        db.transaction(|tx| tx.query("SELECT id FROM t", ()).map(|_| ())).unwrap();
    }
    assert_eq!(counts.commits(), 0, "read-only statements handed batches to commit");
    // The catalog check reads one key per statement at most: a point query reads the
    // version key and its record, nothing else.
    counts.reset();
    db.query("SELECT * FROM t WHERE id = 1", ()).unwrap();
    let (gets, scanned) = counts.get();
    assert!(gets <= 2 && scanned == 0, "a point query read {gets} keys, scanned {scanned}");
    db.execute("INSERT INTO t {id: 3, k: 'c'}", ()).unwrap();
    assert_eq!(counts.commits(), 1, "a write commits once");
}

/// Grouped queries answered from an index read its entries and no record: `COUNT(*)
/// GROUP BY` an indexed NOT NULL field, `COUNT(DISTINCT …)` over an index range, and a
/// lone `MIN` / `MAX` (one entry, from either end).
#[test]
fn index_assisted_aggregates_read_no_record() {
    let (db, counts) = counted_db();
    db.execute(
        "DEFINE MODEL t (id INT PRIMARY KEY, kind STRING NOT NULL, n INT NOT NULL, note STRING, INDEX (kind), INDEX (n))",
        (),
    )
    .unwrap();
    let insert = db.prepare("INSERT INTO t { id: $1, kind: $2, n: $3, note: 'x' }").unwrap();
    for i in 0..1000i64 {
        insert.execute(params![i, format!("k{}", i % 7), (i * 37) % 1000]).unwrap();
    }
    for (query, rows, scanned_at_most) in [
        ("SELECT kind, COUNT(*) FROM t GROUP BY kind", 7, 1000),
        ("SELECT kind, COUNT(*) FROM t WHERE kind >= 'k5' GROUP BY kind", 2, 286),
        ("SELECT COUNT(DISTINCT kind) FROM t", 1, 1000),
        ("SELECT MIN(n) FROM t", 1, 1),
        ("SELECT MAX(n) FROM t", 1, 1),
        ("SELECT MAX(id) FROM t", 1, 1),
        ("SELECT MIN(n) FROM t WHERE n > 500", 1, 1),
    ] {
        counts.reset();
        let got = db.query(query, ()).unwrap();
        assert_eq!(got.rows.len(), rows, "{query}");
        let (gets, scanned) = counts.get();
        assert!(scanned <= scanned_at_most, "{query}: scanned {scanned} keys");
        // The one get is the catalog version key every statement reads.
        assert!(gets <= 1, "{query}: read {gets} keys by get (records)");
    }
    let check = |q: &str| db.query(q, ()).unwrap().rows;
    assert_eq!(check("SELECT MIN(n) FROM t")[0][0], kvm::Value::Int(0));
    assert_eq!(check("SELECT MAX(n) FROM t")[0][0], kvm::Value::Int(999));
    assert_eq!(check("SELECT MIN(n) FROM t WHERE n > 500")[0][0], kvm::Value::Int(501));
    assert_eq!(check("SELECT COUNT(DISTINCT kind) FROM t")[0][0], kvm::Value::Int(7));
    // Not from the index: `note` is not in it, so the records are read — in one scan of
    // the model (groups held in memory), not one read per index entry.
    counts.reset();
    check("SELECT kind, MAX(note) FROM t GROUP BY kind");
    let (gets, scanned) = counts.get();
    assert!(
        scanned >= 1000 && gets <= 1,
        "one scan of the records: {gets} gets, {scanned} scanned"
    );
}

/// `STARTS WITH` on the primary key or an indexed string reads the keys that start with
/// the prefix only, as a literal and as a parameter.
#[test]
fn starts_with_reads_a_prefix_range() {
    let (db, counts) = counted_db();
    db.execute("DEFINE MODEL t (id STRING PRIMARY KEY, city STRING NOT NULL, INDEX (city))", ())
        .unwrap();
    let insert = db.prepare("INSERT INTO t { id: $1, city: $2 }").unwrap();
    for i in 0..1000i64 {
        insert.execute(params![format!("k{i:04}"), format!("c{:03}", i % 100)]).unwrap();
    }
    for (query, param, rows) in [
        ("SELECT id FROM t WHERE id STARTS WITH 'k01'", None, 100),
        ("SELECT id FROM t WHERE id STARTS WITH $1", Some("k002"), 10),
        ("SELECT id FROM t WHERE city STARTS WITH 'c05'", None, 100),
        ("SELECT id FROM t WHERE city STARTS WITH $1", Some("c09"), 100),
    ] {
        counts.reset();
        let got = match param {
            Some(p) => db.query(query, params![p]).unwrap(),
            None => db.query(query, ()).unwrap(),
        };
        assert_eq!(got.rows.len(), rows, "{query}");
        let (_, scanned) = counts.get();
        assert_eq!(scanned, rows as u64, "{query}: scanned {scanned} keys for {rows} rows");
    }
}
