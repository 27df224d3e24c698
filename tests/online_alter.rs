//! Issue 17 item 5: schema changes that do not rewrite every record. `ALTER MODEL … ADD
//! FIELD … DEFAULT <constant>` on a model with records is one small commit: the records
//! are not rewritten and read the default (the field's fill), through every read path —
//! by key, scans, narrow scans, index backfills, updates, counters — and across a reopen.
//! A DEFAULT that is not a constant, or a field other expressions read, still rewrites.
//! `DROP FIELD` is one small commit too: the dropped values stay in the records, unread.
//! `DROP INDEX` and `DROP MODEL` commit the catalog change and a removal note, then delete
//! the keys in batches of their own; a removal cut short is finished on the next open, and
//! a schema change first finishes any removal pending, so a name dropped and defined again
//! never sees the old keys.

#![allow(clippy::unwrap_used)]

mod common;

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
fn a_default_that_varies_per_record_or_a_field_other_expressions_read_rewrites_the_records() {
    let (engine, db) = seeded();
    let before = raw(engine.as_ref(), "items", 4);
    // A call whose value differs per record (`ulid()`): evaluated per record. (A call of
    // constants, `lower('ABC')` or `now()`, has one value for the statement: a fill.)
    db.execute("ALTER MODEL items ADD FIELD code STRING DEFAULT ulid()", ()).unwrap();
    assert_ne!(raw(engine.as_ref(), "items", 4), before, "written into the record");
    assert_eq!(count(&db, "SELECT COUNT(DISTINCT code) FROM items"), Value::Int(N));
    let before = raw(engine.as_ref(), "items", 4);
    db.execute("ALTER MODEL items ADD FIELD tag STRING DEFAULT lower('ABC')", ()).unwrap();
    assert_eq!(raw(engine.as_ref(), "items", 4), before, "a fill: the record is not rewritten");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM items WHERE tag = 'abc'"), Value::Int(N));
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

fn keys_under(engine: &dyn Engine, parts: &[KeyPart]) -> usize {
    let prefix = kvm::storage::KeyRange::prefix(&encode(parts));
    let snap = engine.snapshot().unwrap();
    snap.scan(&prefix, kvm::storage::ScanOptions::forward()).unwrap().count()
}

fn s(x: &str) -> KeyPart {
    KeyPart::String(x.into())
}

/// `DROP INDEX` and `DROP MODEL` of 10,000 records: the drop's own commit deletes nothing;
/// the keys go in commits of at most `REMOVE_BATCH` deletes each, and all of them go before
/// the statement returns.
#[test]
fn drops_remove_their_keys_in_batches_of_their_own() {
    for backend in [common::Backend::Memory, common::Backend::Lmdb] {
        let (db, rec, _dir) = common::open(backend);
        db.execute("DEFINE MODEL big (id INT PRIMARY KEY, n INT NOT NULL, INDEX by_n (n))", ())
            .unwrap();
        for chunk in 0..10 {
            let rows: Vec<String> =
                (0..1000).map(|i| format!("{{id: {}, n: {}}}", chunk * 1000 + i, i)).collect();
            db.execute(&format!("INSERT INTO big [{}]", rows.join(", ")), ()).unwrap();
        }
        let deletes = |from: usize| -> Vec<usize> {
            rec.log.lock().unwrap()[from..]
                .iter()
                .map(|b| {
                    b.mutations
                        .iter()
                        .filter(|m| matches!(m, kvm::storage::Mutation::Delete { .. }))
                        .count()
                })
                .collect()
        };
        let from = rec.log.lock().unwrap().len();
        db.execute("ALTER MODEL big DROP INDEX by_n", ()).unwrap();
        let per_commit = deletes(from);
        assert_eq!(per_commit[0], 0, "the ALTER's own commit deletes nothing");
        assert!(per_commit.len() >= 4, "{per_commit:?}");
        assert!(per_commit.iter().all(|d| *d <= 4097), "{per_commit:?}");
        assert_eq!(per_commit.iter().sum::<usize>(), 10_001, "every entry and the note");
        let engine: &dyn Engine = rec.as_ref();
        assert_eq!(keys_under(engine, &[s("big"), s("__idx")]), 0);
        assert_eq!(keys_under(engine, &[s("__sys"), s("removing")]), 0);

        let from = rec.log.lock().unwrap().len();
        db.execute("DROP MODEL big", ()).unwrap();
        let per_commit = deletes(from);
        assert!(per_commit.iter().all(|d| *d <= 4097), "{per_commit:?}");
        assert_eq!(keys_under(engine, &[s("big")]), 0);
        let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
        assert!(check.starts_with("ok:"), "{check}");
    }
}

/// Plants what a process killed right after a `DROP MODEL`'s commit leaves: the model gone
/// from the catalog, its removal note, and every one of its keys.
fn killed_after_drop(engine: &Arc<dyn Engine>) {
    let db = Database::with_engine(engine.clone(), Options::default()).unwrap();
    db.execute("DEFINE MODEL gone (id INT PRIMARY KEY, n INT, INDEX by_n (n))", ()).unwrap();
    let rows: Vec<String> = (0..N).map(|i| format!("{{id: {i}, n: {i}}}")).collect();
    db.execute(&format!("INSERT INTO gone [{}]", rows.join(", ")), ()).unwrap();
    drop(db);
    let note = Value::Array(vec![Value::String("gone".into())]);
    let version = encode(&[s("__sys"), s("catalog"), s("version")]);
    engine
        .commit(
            &kvm::storage::AtomicBatch::new()
                .delete(&encode(&[s("__sys"), s("catalog"), s("model"), s("gone")]))
                .set(&encode(&[s("__sys"), s("removing"), s("gone")]), &note.encode())
                .sum(&version, 1),
        )
        .unwrap();
    assert_eq!(keys_under(engine.as_ref(), &[s("gone")]), 2 * N as usize);
}

/// A removal cut short is finished in the background when the database is next opened.
#[test]
fn a_removal_cut_short_is_finished_on_the_next_open() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    killed_after_drop(&engine);
    let _db = Database::with_engine(engine.clone(), Options::default()).unwrap();
    let start = std::time::Instant::now();
    while keys_under(engine.as_ref(), &[s("gone")]) > 0 {
        assert!(start.elapsed().as_secs() < 30, "the removal was not resumed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(keys_under(engine.as_ref(), &[s("__sys"), s("removing")]), 0);
}

/// A model defined again under the name of one whose removal is pending starts empty: a
/// schema change finishes pending removals before it runs and after it commits, so the old
/// records and index entries are never the new model's.
#[test]
fn a_model_defined_again_while_its_old_keys_are_pending_removal_starts_empty() {
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    // A handle opened before the kill left its removal: it resumes nothing on its own.
    let db = Database::with_engine(engine.clone(), Options::default()).unwrap();
    killed_after_drop(&engine);
    db.execute("DEFINE MODEL gone (id INT PRIMARY KEY, n INT, INDEX by_n (n))", ()).unwrap();
    assert_eq!(count(&db, "SELECT COUNT(*) FROM gone"), Value::Int(0));
    assert_eq!(column(&db, "SELECT id FROM gone WHERE n = 5"), Vec::<Value>::new());
    assert_eq!(keys_under(engine.as_ref(), &[s("gone")]), 0);
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");
}
