//! QA regressions that KQL goldens cannot express (they bind parameters); the rest are in
//! `tests/kql/regressions.kql`.
#![allow(clippy::unwrap_used)]

use kvm::{params, Database, Value};

fn ids(db: &Database, kql: &str, p: kvm::Params) -> Vec<Value> {
    db.query(kql, p).unwrap().rows.into_iter().map(|mut r| r.remove(0)).collect()
}

/// QA bug 3: a parameter compared with a LOWERCASE/TRIM or TIMESTAMP field is put in the
/// field's stored form, so an index path and a scan agree (before: the index found the
/// record, the re-checking filter compared the raw value and dropped it; a scan never
/// matched).
#[test]
fn parameters_compare_in_the_fields_stored_form_on_every_path() {
    let db = Database::memory().unwrap();
    db.execute(
        "DEFINE MODEL u (id INT PRIMARY KEY, e STRING LOWERCASE TRIM, f STRING LOWERCASE, \
         at TIMESTAMP, INDEX ie (e))",
        (),
    )
    .unwrap();
    db.execute(
        "INSERT INTO u [{id: 1, e: 'ann@x.com', f: 'ann@x.com', at: '2025-01-01T00:00:00Z'}, \
         {id: 2, e: 'bo@x.com', f: 'bo@x.com', at: '2025-01-02T00:00:00Z'}]",
        (),
    )
    .unwrap();
    let one = vec![Value::Int(1)];
    // Indexed field (index range + filter) and unindexed field (scan + filter).
    assert_eq!(ids(&db, "SELECT id FROM u WHERE e = $1", params![" ANN@x.com"]), one);
    assert_eq!(ids(&db, "SELECT id FROM u WHERE f = $1", params!["ANN@X.COM"]), one);
    assert_eq!(ids(&db, "SELECT id FROM u WHERE e IN ($1, $2)", params!["ANN@X.COM", "zz"]), one);
    // A range on the LOWERCASE field means the same on both paths.
    let ge = |field: &str| ids(&db, &format!("SELECT id FROM u WHERE {field} >= $1"), params!["B"]);
    assert_eq!(ge("e"), ge("f"));
    assert_eq!(ge("e"), vec![Value::Int(2)]);
    // A string parameter compared with a TIMESTAMP field is a timestamp.
    assert_eq!(ids(&db, "SELECT id FROM u WHERE at < $1", params!["2025-01-01 12:00:00"]), one);
    let rows = db.query("SELECT COUNT(*) FROM u WHERE e = $1", params!["BO@X.COM"]).unwrap();
    assert_eq!(rows.rows[0][0], Value::Int(1));
}

/// QA bug 16: a sort under LIMIT/OFFSET parameters keeps LIMIT + OFFSET rows, saturating.
#[test]
fn limit_and_offset_parameters_saturate() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, b INT)", ()).unwrap();
    db.execute("INSERT INTO t [{id: 1, b: 3}, {id: 2, b: 2}, {id: 3, b: 1}]", ()).unwrap();
    let got = ids(&db, "SELECT id FROM t ORDER BY b LIMIT $1 OFFSET $2", params![i64::MAX, 1i64]);
    assert_eq!(got, vec![Value::Int(2), Value::Int(1)]);
}

/// QA bug 4: a value nested deeper than the codec can read back is refused on write, so it
/// can never make its model unreadable.
#[test]
fn values_nested_too_deeply_are_refused_on_write() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, o OBJECT)", ()).unwrap();
    let nest = |levels: usize| {
        let mut v = Value::Object(Default::default());
        for _ in 0..levels {
            v = Value::Object([("a".to_string(), v)].into_iter().collect());
        }
        v
    };
    db.execute("INSERT INTO t {id: 1, o: $1}", params![nest(120)]).unwrap();
    let err = db.execute("INSERT INTO t {id: 2, o: $1}", params![nest(200)]).unwrap_err();
    assert_eq!(err.code(), "kvm.validation");
    assert!(err.to_string().contains("t.o"), "{err}");
    // Growing a stored value one level at a time stops at the limit too.
    let mut refused = false;
    for _ in 0..20 {
        if db.execute("UPDATE t SET o = {a: o} WHERE id = 1", ()).is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the update past the limit was refused");
    assert_eq!(db.query("SELECT COUNT(*) FROM t", ()).unwrap().rows[0][0], Value::Int(1));
    assert!(db.execute("CHECK DATABASE", ()).is_ok());
}

/// Writes what a process killed during the backfill of `index` leaves behind: the catalog
/// marking the index building, and only the first `keep` of its entries.
fn leave_building(engine: &dyn kvm::storage::Engine, model: &str, index: &str, keep: usize) {
    use kvm::storage::{tuple, AtomicBatch, KeyPart, KeyRange, ScanOptions};

    let s = |x: &str| KeyPart::String(x.into());
    let def_key = tuple::encode(&[s("__sys"), s("catalog"), s("model"), s(model)]);
    let version_key = tuple::encode(&[s("__sys"), s("catalog"), s("version")]);
    let index_prefix = tuple::encode(&[s(model), s("__idx"), s(index)]);
    let snap = engine.snapshot().unwrap();
    let Value::Object(mut def) =
        Value::decode(snap.get(&def_key).unwrap().unwrap().value()).unwrap()
    else {
        panic!("catalog entry is not an object")
    };
    def.insert("building".into(), Value::Array(vec![Value::String(index.into())]));
    let entries: Vec<Vec<u8>> = snap
        .scan(&KeyRange::prefix(&index_prefix), ScanOptions::default())
        .unwrap()
        .map(|r| r.unwrap().0.to_vec())
        .collect();
    assert!(entries.len() > keep);
    drop(snap);
    let mut batch = AtomicBatch::new().set(&def_key, &Value::Object(def).encode());
    for k in &entries[keep..] {
        batch = batch.delete(k);
    }
    engine.commit(&batch.sum(&version_key, 1)).unwrap();
}

fn index_state(db: &Database, model: &str) -> Vec<Value> {
    db.query(&format!("SHOW INDEXES FROM {model}"), ())
        .unwrap()
        .rows
        .iter()
        .map(|r| r[4].clone())
        .collect()
}

/// QA bug 11b: a backfill killed mid-way (SIGKILL) left its index "building" forever:
/// nothing resumed it and `CHECK DATABASE` said ok. Now CHECK reports it, and opening the
/// database (or the next ALTER of the model) restarts the backfill.
#[test]
fn an_index_left_building_by_a_killed_backfill_is_reported_and_rebuilt_on_open() {
    use kvm::storage::{Engine, MemoryEngine};
    use std::sync::Arc;

    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute("DEFINE MODEL m (id INT PRIMARY KEY, a INT)", ()).unwrap();
    db.execute("INSERT INTO m [{id: 1, a: 1}, {id: 2, a: 2}, {id: 3, a: 3}]", ()).unwrap();
    db.execute("ALTER MODEL m ADD INDEX ia (a)", ()).unwrap();
    leave_building(engine.as_ref(), "m", "ia", 1);

    assert_eq!(index_state(&db, "m"), vec![Value::String("building".into())]);
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.contains("index `m.ia` is still building"), "{check}");

    // Opening the database again finishes it.
    let reopened = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    assert_eq!(index_state(&reopened, "m"), vec![Value::String("ready".into())]);
    let check = reopened.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");
    assert_eq!(ids(&reopened, "SELECT id FROM m WHERE a = 3", params![]), vec![Value::Int(3)]);

    // So does the next ALTER of the model, in a process that stayed open.
    leave_building(engine.as_ref(), "m", "ia", 0);
    assert_eq!(index_state(&db, "m"), vec![Value::String("building".into())]);
    db.execute("ALTER MODEL m ADD FIELD z INT", ()).unwrap();
    assert_eq!(index_state(&db, "m"), vec![Value::String("ready".into())]);
    assert!(db.execute("CHECK DATABASE", ()).unwrap().to_string().starts_with("ok:"));
}

/// QA bug 11b: a UNIQUE index left building, whose records meanwhile broke it (a building
/// index is only partly enforced), is dropped when the restarted backfill meets the
/// duplicate, as the interrupted ALTER would have done; the database still opens.
#[test]
fn a_unique_index_left_building_over_duplicates_is_dropped_on_open() {
    use kvm::storage::{Engine, MemoryEngine};
    use std::sync::Arc;

    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute("DEFINE MODEL m (id INT PRIMARY KEY, a INT)", ()).unwrap();
    db.execute("INSERT INTO m [{id: 1, a: 1}, {id: 2, a: 2}]", ()).unwrap();
    db.execute("ALTER MODEL m ADD UNIQUE INDEX ua (a)", ()).unwrap();
    leave_building(engine.as_ref(), "m", "ua", 1);
    // Record 2's entry is missing, so a duplicate of it gets in.
    db.execute("INSERT INTO m {id: 3, a: 2}", ()).unwrap();

    let reopened = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    assert!(index_state(&reopened, "m").is_empty());
    let check = reopened.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");
}
