//! Issue 17 item 1: an autocommit `INSERT` of many records is written straight into the
//! storage's write transaction (`Engine::write_direct`) — its keys checked absent where
//! nothing can change underneath, no write buffer, no batch, no second read at commit.
//! These tests prove the path is taken (no batch is committed), that it keeps every rule a
//! buffered insert keeps (unique keys within the statement and against stored records,
//! validation, TTL, the change feed, other writers meanwhile), that a refused statement
//! leaves nothing, and that a map too small to hold it grows and the statement runs again —
//! on LMDB and on the memory backend.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use kvm::storage::{
    CountingEngine, Durability, Engine, LmdbEngine, LmdbOptions, ManualClock, MemoryEngine,
    ReadCounts, Versionstamp,
};
use kvm::{Database, Options, Params, Value};

const START: u64 = 1_700_000_000_000;

/// A database on a counting engine over LMDB with a map of `map_size` bytes (or memory).
fn open(
    dir: &tempfile::TempDir,
    clock: &ManualClock,
    lmdb: bool,
    map_size: usize,
) -> (Database, Arc<dyn Engine>, Arc<ReadCounts>) {
    let (engine, counts): (Arc<dyn Engine>, _) = if lmdb {
        let opts = LmdbOptions {
            clock: Arc::new(clock.clone()),
            durability: Durability::Process,
            map_size,
            ..LmdbOptions::default()
        };
        let e = CountingEngine::new(LmdbEngine::open(dir.path().join("db.kvm"), opts).unwrap());
        let counts = e.counts.clone();
        (Arc::new(e), counts)
    } else {
        let e = CountingEngine::new(MemoryEngine::with_clock(Arc::new(clock.clone())));
        let counts = e.counts.clone();
        (Arc::new(e), counts)
    };
    let db = Database::with_engine(
        engine.clone(),
        Options { clock: Arc::new(clock.clone()), sweep_interval: None, ..Options::default() },
    )
    .unwrap();
    db.execute(
        "DEFINE MODEL people (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, \
         age INT NOT NULL CHECK (age >= 0), note STRING, INDEX by_age (age))",
        (),
    )
    .unwrap();
    db.execute("DEFINE MODEL pings (id INT PRIMARY KEY)", ()).unwrap();
    (db, engine, counts)
}

fn person(id: i64, email: &str, age: i64) -> Value {
    Value::Object(
        [
            ("id".to_string(), Value::Int(id)),
            ("email".to_string(), Value::String(email.into())),
            ("age".to_string(), Value::Int(age)),
            ("note".to_string(), Value::String(format!("a note about person number {id}"))),
        ]
        .into(),
    )
}

/// `INSERT INTO people [$1, …, $n] [EXPIRE IN …]` of `records`.
fn insert(db: &Database, records: Vec<Value>, expire: &str) -> kvm::Result<kvm::Output> {
    let slots: Vec<String> = (1..=records.len()).map(|i| format!("${i}")).collect();
    let kql = format!("INSERT INTO people [{}]{expire}", slots.join(", "));
    db.execute(&kql, Params { positional: records, ..Params::default() })
}

fn count(db: &Database, kql: &str) -> i64 {
    match &db.query(kql, ()).unwrap().rows[0][0] {
        Value::Int(n) => *n,
        other => panic!("{other:?}"),
    }
}

fn people(n: i64) -> Vec<Value> {
    (0..n).map(|i| person(i, &format!("p{i}@example.com"), i % 90)).collect()
}

#[test]
fn a_large_insert_is_written_directly_and_reads_back_like_a_buffered_one() {
    for lmdb in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        // A 1 MiB map cannot hold 5,000 people: the direct write fills it, the map grows
        // and the statement runs again from the start.
        let (db, engine, counts) = open(&dir, &clock, lmdb, 1 << 20);
        let before: Versionstamp = engine.snapshot().unwrap().versionstamp();
        counts.reset();
        // Other writers commit small statements while the bulk statement runs.
        let pinger = {
            let db = db.clone();
            std::thread::spawn(move || {
                for id in 0..200 {
                    db.execute("INSERT INTO pings {id: $1}", (id,)).unwrap();
                }
            })
        };
        let out = insert(&db, people(5_000), "").unwrap();
        assert_eq!(out.to_string(), "inserted 5000");
        pinger.join().unwrap();
        assert_eq!(counts.directs(), 1, "the insert was one direct write");
        assert_eq!(counts.commits(), 200, "the pings' batches, none for the direct insert");

        assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 5_000);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM pings"), 200);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM people WHERE age = 7"), 56);
        let found =
            db.query("SELECT id FROM people WHERE email = 'p4321@example.com'", ()).unwrap();
        assert_eq!(found.rows, vec![vec![Value::Int(4321)]]);
        let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
        assert!(check.contains("ok"), "{check}");

        // The change feed holds the statement as one commit of its 15,000 keys (record,
        // unique entry, index entry per person).
        let sets = engine.changes_since(before, 1_000).unwrap();
        let bulk: Vec<_> = sets.iter().filter(|s| s.changes.len() > 1).collect();
        assert_eq!(bulk.len(), 1, "one commit for the statement");
        assert_eq!(bulk[0].changes.len(), 15_000);
    }
}

#[test]
fn a_refused_direct_insert_writes_nothing() {
    for lmdb in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let (db, _engine, counts) = open(&dir, &clock, lmdb, 1 << 24);
        insert(&db, vec![person(9_000, "held@example.com", 30)], "").unwrap();
        // 100 good people, then one record changed: (what, index, record, code).
        let cases = [
            (
                "a key twice in the statement",
                100,
                person(50, "other@example.com", 1),
                "kvm.unique_violation",
            ),
            (
                "a key already stored",
                100,
                person(9_000, "fresh@example.com", 1),
                "kvm.unique_violation",
            ),
            (
                "a unique email already stored",
                100,
                person(100, "held@example.com", 1),
                "kvm.unique_violation",
            ),
            (
                "a CHECK refused on the 80th record",
                79,
                person(79, "p79@example.com", -1),
                "kvm.validation",
            ),
        ];
        for (what, at, bad, code) in cases {
            let mut records = people(100);
            if at == records.len() {
                records.push(bad);
            } else {
                records[at] = bad;
            }
            counts.reset();
            let err = insert(&db, records, "").unwrap_err();
            assert_eq!(err.code(), code, "{what}: {err}");
            assert_eq!(counts.directs() + counts.commits(), 0, "{what}: nothing committed");
            assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 1, "{what}: nothing written");
            assert_eq!(count(&db, "SELECT COUNT(*) FROM people WHERE age = 7"), 0, "{what}");
        }
        let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
        assert!(check.contains("ok"), "{check}");
    }
}

#[test]
fn a_direct_insert_keeps_its_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(START);
    let (db, _engine, counts) = open(&dir, &clock, true, 1 << 24);
    counts.reset();
    insert(&db, people(300), " EXPIRE IN '1h'").unwrap();
    assert_eq!(counts.directs(), 1);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 300);
    clock.advance(3_601_000);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 0, "expired on time");
    let swept = db.sweep_expired().unwrap();
    assert_eq!(swept, 900, "the records and their index entries were in the expiry index");
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.contains("ok"), "{check}");
}

/// `Database::insert_many` is one direct write of all its chunks: no batch, no write
/// buffer, all or nothing — on a map that must grow on the way (the chunks pulled so far
/// are kept and run again), and with a record refused in a later chunk.
#[test]
fn insert_many_is_one_direct_write_all_or_nothing() {
    for lmdb in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(START);
        let (db, _engine, counts) = open(&dir, &clock, lmdb, 1 << 20);
        counts.reset();
        // A lazy iterator, never held whole by the caller, that does not tell its length:
        // the map is grown for the first chunk only, fills up on the way, and the write
        // runs again over the chunks pulled so far, then the rest.
        let lazy = (0..20_000).map(|i| person(i, &format!("p{i}@x.org"), i % 90)).filter(|_| true);
        let n = db.insert_many("people", lazy).unwrap();
        assert_eq!(n, 20_000);
        assert_eq!(counts.directs(), 1, "one direct write for 20 chunks");
        assert_eq!(counts.commits(), 0);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 20_000);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM people WHERE age = 7"), 223);

        counts.reset();
        let refused = (20_000..25_000).map(|i| {
            // The 3,501st record repeats a stored email.
            let email = if i == 23_500 { "p7@x.org".to_string() } else { format!("p{i}@x.org") };
            person(i, &email, 1)
        });
        let err = db.insert_many("people", refused).unwrap_err();
        assert_eq!(err.code(), "kvm.unique_violation", "{err}");
        assert_eq!(counts.directs() + counts.commits(), 0, "nothing committed");
        assert_eq!(count(&db, "SELECT COUNT(*) FROM people"), 20_000, "no chunk kept");
        let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
        assert!(check.contains("ok"), "{check}");
    }
}
