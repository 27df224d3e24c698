//! Issue 17 item 5: schema changes that do not rewrite every record. `ALTER MODEL … ADD
//! FIELD … DEFAULT <constant>` on a model with records is one small commit: the records
//! are not rewritten and read the default (the field's fill), through every read path —
//! by key, scans, narrow scans, index backfills, updates, counters — and across a reopen.
//! A DEFAULT that is not a constant, or a field other expressions read, still rewrites.
//! `DROP FIELD` is one small commit too: the dropped values stay in the records, unread.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kvm::storage::tuple::{encode, KeyPart};
use kvm::storage::{Engine, MemoryEngine};
use kvm::{params, Database, Options, Value};

const N: i64 = 300;

fn raw(engine: &dyn Engine, model: &str, id: i64) -> Vec<u8> {
    let key = encode(&[KeyPart::String(model.into()), KeyPart::Int(id)]);
    engine.snapshot().unwrap().get(&key).unwrap().unwrap().value().to_vec()
}

fn column(db: &Database, kql: &str) -> Vec<Value> {
    db.query(kql, ()).unwrap().rows.into_iter().map(|mut r| r.remove(0)).collect()
}

fn count(db: &Database, kql: &str) -> Value {
    column(db, kql).remove(0)
}

fn seeded() -> (Arc<dyn Engine>, Database) {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    let db = Database::with_engine(engine.clone(), Options::default()).unwrap();
    db.execute("DEFINE MODEL items (id INT PRIMARY KEY, name STRING NOT NULL)", ()).unwrap();
    for id in 0..N {
        db.execute("INSERT INTO items {id: $1, name: $2}", params![id, format!("n{id}")]).unwrap();
    }
    (engine, db)
}

#[test]
fn add_field_with_a_constant_default_rewrites_no_record_and_every_read_sees_it() {
    let (engine, db) = seeded();
    let before: Vec<Vec<u8>> = (0..N).map(|id| raw(engine.as_ref(), "items", id)).collect();
    db.execute(
        "ALTER MODEL items ADD FIELD status STRING NOT NULL DEFAULT 'new', \
         ADD FIELD score INT DEFAULT 7",
        (),
    )
    .unwrap();
    let after: Vec<Vec<u8>> = (0..N).map(|id| raw(engine.as_ref(), "items", id)).collect();
    assert_eq!(before, after, "no record was rewritten");

    // By key, in a full scan, in a narrow scan (COUNT with a filter), in ORDER BY.
    let row = db.query("SELECT status, score FROM items WHERE id = 5", ()).unwrap();
    assert_eq!(row.rows, vec![vec![Value::String("new".into()), Value::Int(7)]]);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE status = 'new'"), Value::Int(N));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE score = 7"), Value::Int(N));
    let all = db.query("SELECT * FROM items ORDER BY score DESC, id LIMIT 1", ()).unwrap();
    assert_eq!(
        kvm::json::rows_to_json(&all)[0].to_string(),
        r#"{"id":0,"name":"n0","status":"new","score":7}"#
    );

    // A null written after the ALTER is stored, and stays null (not the default); an insert
    // that names no value gets the default as always; an increment starts from the fill.
    db.execute("UPDATE items SET score = NULL WHERE id = 1", ()).unwrap();
    db.execute("UPDATE items SET score += 1 WHERE id = 2", ()).unwrap();
    db.execute("UPDATE items SET status = 'old' WHERE id = 3", ()).unwrap();
    db.execute("INSERT INTO items [{id: 1000, name: 'x'}, {id: 1001, name: 'y', score: null}]", ())
        .unwrap();
    let scores = |db: &Database| {
        column(db, "SELECT score FROM items WHERE id IN (0, 1, 2, 1000, 1001) ORDER BY id")
    };
    let expected = vec![Value::Int(7), Value::Null, Value::Int(8), Value::Int(7), Value::Null];
    assert_eq!(scores(&db), expected);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE score IS NULL"), Value::Int(2));

    // An index added later is backfilled from what the records read.
    db.execute("ALTER MODEL items ADD INDEX by_status (status)", ()).unwrap();
    let explain = db.execute("EXPLAIN SELECT id FROM items WHERE status = 'new'", ()).unwrap();
    assert!(explain.to_string().contains("by_status"), "{explain}");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE status = 'new'"), Value::Int(N + 1));
    assert_eq!(column(&db, "SELECT id FROM items WHERE status = 'old'"), vec![Value::Int(3)]);
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");

    // The fill is in the stored catalog: a new handle (a reload) reads the same.
    drop(db);
    let db = Database::with_engine(engine.clone(), Options::default()).unwrap();
    assert_eq!(scores(&db), expected);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE status = 'new'"), Value::Int(N + 1));
    // A later ALTER keeps it.
    db.execute("ALTER MODEL items ADD FIELD note STRING", ()).unwrap();
    assert_eq!(scores(&db), expected);
}

#[test]
fn a_default_that_is_not_a_constant_or_a_field_other_expressions_read_rewrites_the_records() {
    let (engine, db) = seeded();
    let before = raw(engine.as_ref(), "items", 4);
    // A call: evaluated per record (as `now()` would be).
    db.execute("ALTER MODEL items ADD FIELD code STRING DEFAULT lower('ABC')", ()).unwrap();
    assert_ne!(raw(engine.as_ref(), "items", 4), before, "written into the record");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE code = 'abc'"), Value::Int(N));
    // A CHECK of its own, evaluated against every record: a record it refuses fails the
    // whole ALTER.
    let before = raw(engine.as_ref(), "items", 4);
    let err = db
        .execute("ALTER MODEL items ADD FIELD level INT DEFAULT 0 CHECK (level > 0)", ())
        .unwrap_err();
    assert_eq!(err.code(), "kvm.validation", "{err}");
    assert_eq!(raw(engine.as_ref(), "items", 4), before);
    db.execute("ALTER MODEL items ADD FIELD level INT DEFAULT 2 CHECK (level > 0)", ()).unwrap();
    assert_ne!(raw(engine.as_ref(), "items", 4), before, "written into the record");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE level = 2"), Value::Int(N));
}

/// `DROP FIELD` rewrites no record: the values stay in the records' bytes, never read
/// again. A field dropped and added again is a new field (a new id): the old one's values
/// are not read as the new one's, and the new default fills every record.
#[test]
fn drop_field_rewrites_no_record_and_a_field_added_again_reads_its_new_default() {
    let (engine, db) = seeded();
    db.execute("ALTER MODEL items ADD FIELD score INT DEFAULT 7", ()).unwrap();
    db.execute("UPDATE items SET score = 100 WHERE id < 10", ()).unwrap();
    let before: Vec<Vec<u8>> = (0..N).map(|id| raw(engine.as_ref(), "items", id)).collect();
    db.execute("ALTER MODEL items DROP FIELD score", ()).unwrap();
    let after: Vec<Vec<u8>> = (0..N).map(|id| raw(engine.as_ref(), "items", id)).collect();
    assert_eq!(before, after, "no record was rewritten");
    let all = db.query("SELECT * FROM items WHERE id = 3", ()).unwrap();
    assert_eq!(kvm::json::rows_to_json(&all)[0].to_string(), r#"{"id":3,"name":"n3"}"#);
    let err = db.query("SELECT score FROM items", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.unknown_field", "{err}");
    // A record written since the drop no longer holds the value.
    db.execute("UPDATE items SET name = 'x' WHERE id = 3", ()).unwrap();
    assert!(raw(engine.as_ref(), "items", 3).len() < before[3].len());
    db.execute("ALTER MODEL items ADD FIELD score INT DEFAULT 1", ()).unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE score = 1"), Value::Int(N));
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE score = 100"), Value::Int(0));
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");
}
