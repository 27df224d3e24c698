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
    // The sort keeps LIMIT + OFFSET rows, added when they are bound (a typed plan node, not
    // a magic function call).
    let explain = "EXPLAIN SELECT id FROM t ORDER BY b LIMIT $1 OFFSET $2";
    let kvm::Output::Plan(plan) = db.execute(explain, params![1i64, 2i64]).unwrap() else {
        panic!("a plan")
    };
    assert!(plan.contains("Sort b (keeps top $1 + $2)"), "{plan}");
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

    // Opening the database again finishes it (in the background; finish_backfills waits).
    let reopened = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    reopened.finish_backfills().unwrap();
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
    reopened.finish_backfills().unwrap();
    assert!(index_state(&reopened, "m").is_empty());
    let check = reopened.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok:"), "{check}");
}

// ---- Issue 15: what an adversarial run found ----

/// Issue 15 item 2: NaN and infinities are refused on every write path (they exported as
/// `null` and broke the order); −0.0 is stored, indexed and found as 0.0.
#[test]
fn floats_are_finite_and_have_one_zero() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL fl (id INT PRIMARY KEY, f FLOAT UNIQUE)", ()).unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = db.execute("INSERT INTO fl {id: 1, f: $1}", params![bad]).unwrap_err();
        assert_eq!(err.code(), "kvm.validation", "{bad}: {err}");
    }
    db.execute("INSERT INTO fl {id: 1, f: $1}", params![-0.0f64]).unwrap();
    let err = db.execute("INSERT INTO fl {id: 2, f: $1}", params![0.0f64]).unwrap_err();
    assert_eq!(err.code(), "kvm.unique_violation");
    let one = vec![Value::Int(1)];
    assert_eq!(ids(&db, "SELECT id FROM fl WHERE f = $1", params![0.0f64]), one);
    assert_eq!(ids(&db, "SELECT id FROM fl WHERE f = $1", params![-0.0f64]), one);
    assert_eq!(ids(&db, "SELECT id FROM fl WHERE f * 1 = $1", params![-0.0f64]), one);
    let f = db.query("SELECT f FROM fl", ()).unwrap().rows[0][0].clone();
    assert!(matches!(f, Value::Float(x) if x.to_bits() == 0), "{f:?}");
    // UPDATE goes through the same rule.
    let err = db.execute("UPDATE fl SET f = $1 WHERE id = 1", params![f64::NAN]).unwrap_err();
    assert_eq!(err.code(), "kvm.validation");
}

/// Issue 15 item 12: `query` refuses a statement that yields no rows, or several statements,
/// before running anything (it used to commit a DELETE and then report `kvm.param`).
#[test]
fn query_refuses_non_queries_before_running_them() {
    let db = Database::memory().unwrap();
    db.execute_batch("DEFINE MODEL t (id INT PRIMARY KEY); INSERT INTO t [{id: 1}, {id: 2}]")
        .unwrap();
    let err = db.query("DELETE FROM t WHERE id = 1", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.not_a_query");
    let err = db.query("SELECT * FROM t; DROP MODEL t; SELECT * FROM t", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.not_a_query");
    assert_eq!(ids(&db, "SELECT id FROM t", params![]), vec![Value::Int(1), Value::Int(2)]);
    // A write with RETURNING yields rows, and runs.
    assert_eq!(ids(&db, "DELETE FROM t WHERE id = 1 RETURNING id", params![]), vec![Value::Int(1)]);
    let prepared = db.prepare("DELETE FROM t WHERE id = 2").unwrap();
    assert_eq!(prepared.query(()).unwrap_err().code(), "kvm.not_a_query");
    assert_eq!(ids(&db, "SELECT id FROM t", params![]), vec![Value::Int(2)]);
    db.transaction(|tx| {
        assert_eq!(tx.query("DELETE FROM t", ()).unwrap_err().code(), "kvm.not_a_query");
        Ok(())
    })
    .unwrap();
    assert_eq!(ids(&db, "SELECT id FROM t", params![]), vec![Value::Int(2)]);
}

/// Issue 15 item 9: an unindexed ORDER BY is a real sort (stable, with or without LIMIT,
/// checked against a reference) and refuses past its memory budget instead of growing.
#[test]
fn unindexed_sorts_are_stable_and_bounded() {
    let db = Database::memory_with(kvm::Options {
        sort_budget: 4 << 20,
        sweep_interval: None,
        ..kvm::Options::default()
    })
    .unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, k INT, pad STRING)", ()).unwrap();
    let n = 3000i64;
    let mut batch = Vec::new();
    for id in 0..n {
        batch.push(format!("{{id: {id}, k: {}, pad: 'x'}}", (id * 7919) % 97));
    }
    db.execute(&format!("INSERT INTO t [{}]", batch.join(",")), ()).unwrap();
    let mut reference: Vec<(i64, i64)> = (0..n).map(|id| ((id * 7919) % 97, id)).collect();
    reference.sort_by_key(|(k, id)| (std::cmp::Reverse(*k), *id));
    let want: Vec<Value> = reference.iter().map(|(_, id)| Value::Int(*id)).collect();
    assert_eq!(ids(&db, "SELECT id FROM t ORDER BY k DESC, id", params![]), want);
    assert_eq!(
        ids(&db, "SELECT id FROM t ORDER BY k DESC, id LIMIT 250", params![]),
        want[..250].to_vec()
    );
    // Under LIMIT the sort keeps a bounded buffer, cut back many times over 3,000 rows: ties
    // still come in input (primary-key) order, OFFSET skips kept rows, a filter applies.
    let stable = |desc: bool, keep: &dyn Fn(i64) -> bool| -> Vec<Value> {
        let mut r: Vec<(i64, i64)> =
            (0..n).map(|id| ((id * 7919) % 97, id)).filter(|(k, _)| keep(*k)).collect();
        r.sort_by_key(|(k, _)| if desc { -k } else { *k });
        r.iter().map(|(_, id)| Value::Int(*id)).collect()
    };
    let all = stable(false, &|_| true);
    assert_eq!(ids(&db, "SELECT id FROM t ORDER BY k LIMIT 7 OFFSET 30", params![]), all[30..37]);
    let big = stable(true, &|k| k > 10);
    assert_eq!(
        ids(&db, "SELECT id FROM t WHERE k > 10 ORDER BY k DESC LIMIT 50 OFFSET 5", params![]),
        big[5..55]
    );
    let page = db.query("SELECT id FROM t ORDER BY k DESC, id LIMIT 100 AFTER NULL", ()).unwrap();
    let got: Vec<Value> = page.rows.into_iter().map(|mut r| r.remove(0)).collect();
    assert_eq!(got, want[..100].to_vec());
    // 3,000 rows of ~5 KB are past a 4 MiB budget: a clear error, not an unbounded sort.
    db.execute("UPDATE t SET pad = $1", params!["p".repeat(5000)]).unwrap();
    let err = db.query("SELECT id FROM t ORDER BY k", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.sort_too_large", "{err}");
    // Under LIMIT only the kept rows count.
    assert_eq!(
        ids(&db, "SELECT id FROM t ORDER BY k DESC, id LIMIT 10", params![]),
        want[..10].to_vec()
    );
}

/// Issue 15 item 10: a primary-key IN list is de-duplicated by hashing and needs no
/// re-checking filter (100,000 literals took 20 s, quadratic).
#[test]
fn primary_key_in_lists_are_linear() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY)", ()).unwrap();
    db.execute("INSERT INTO t [{id: 1}, {id: 5}, {id: 99999}]", ()).unwrap();
    let list: Vec<String> = (0..100_000).chain(0..1000).map(|i| i.to_string()).collect();
    let q = format!("SELECT id FROM t WHERE id IN ({})", list.join(","));
    let got = ids(&db, &q, params![]);
    assert_eq!(got, vec![Value::Int(1), Value::Int(5), Value::Int(99999)]);
    let plan = db.prepare("SELECT id FROM t WHERE id IN (1, 2, 2)").unwrap().explain();
    assert!(!plan.contains("Filter"), "an exact key list needs no filter:\n{plan}");
}

// ---- Issue 16: one stored form, one count rule ----

const UUID_CANONICAL: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";
/// Spellings of [`UUID_CANONICAL`] a UUID field accepts.
const UUID_SPELLINGS: [&str; 5] = [
    "{67E55044-10B1-426F-9247-BB680E5FE0C8}",
    "urn:uuid:67e55044-10b1-426f-9247-bb680e5fe0c8",
    "URN:UUID:67E55044-10B1-426F-9247-BB680E5FE0C8",
    "67E5504410B1426F9247BB680E5FE0C8",
    UUID_CANONICAL,
];

/// Issue 16: a UUID written as `'{67E5…}'` or `'urn:uuid:…'` was stored canonically, but
/// `WHERE k = '{67E5…}'` found nothing, as a literal and as a parameter: writes, literals
/// and parameters each had their own idea of the stored form. Now one function serves all
/// three — checked on the primary key (a key get), a UNIQUE field (an index get), a plain
/// field (a scan) and `IN`.
#[test]
fn a_uuid_in_any_spelling_finds_its_record_as_literal_and_parameter() {
    let db = Database::memory().unwrap();
    db.execute("DEFINE MODEL k (id UUID PRIMARY KEY, u UUID UNIQUE, v UUID, n INT)", ()).unwrap();
    db.execute(
        "INSERT INTO k {id: $1, u: $2, v: $1, n: 1}",
        params![UUID_SPELLINGS[0], UUID_SPELLINGS[1]],
    )
    .unwrap();
    let stored = db.query("SELECT id, u, v FROM k", ()).unwrap();
    assert_eq!(stored.rows, vec![vec![Value::String(UUID_CANONICAL.into()); 3]]);

    let plan = |field: &str| {
        db.execute(&format!("EXPLAIN SELECT n FROM k WHERE {field} = '{}'", UUID_SPELLINGS[0]), ())
            .unwrap()
            .to_string()
    };
    assert!(!plan("id").contains("full scan"), "{}", plan("id"));
    assert!(!plan("u").contains("full scan"), "{}", plan("u"));

    let one = vec![Value::Int(1)];
    for field in ["id", "u", "v"] {
        for spelling in UUID_SPELLINGS {
            let literal = format!("SELECT n FROM k WHERE {field} = '{spelling}'");
            assert_eq!(ids(&db, &literal, params![]), one, "{literal}");
            let param = format!("SELECT n FROM k WHERE {field} = $1");
            assert_eq!(ids(&db, &param, params![spelling]), one, "{param} with {spelling}");
            let list = format!("SELECT n FROM k WHERE {field} IN ('x', '{spelling}')");
            assert_eq!(ids(&db, &list, params![]), one, "{list}");
            let count = format!("SELECT COUNT(*) FROM k WHERE {field} = $1");
            assert_eq!(ids(&db, &count, params![spelling]), one, "{count} with {spelling}");
        }
    }
    // Through an update's WHERE too, and the unique index refuses another spelling of it.
    db.execute("UPDATE k SET n = 2 WHERE u = $1", params![UUID_SPELLINGS[3]]).unwrap();
    assert_eq!(ids(&db, "SELECT n FROM k", params![]), vec![Value::Int(2)]);
    let dup = db
        .execute("INSERT INTO k {id: $1, u: $2}", params![UUID_SPELLINGS[2], UUID_SPELLINGS[0]])
        .unwrap_err();
    assert_eq!(dup.code(), "kvm.unique_violation", "{dup}");
    // Not a UUID: it matches nothing (it is compared as given), and is no error.
    assert!(ids(&db, "SELECT n FROM k WHERE v = 'nope'", params![]).is_empty());
    assert!(ids(&db, "SELECT n FROM k WHERE v = $1", params!["nope"]).is_empty());
}

/// Issue 16: `INCLUDE comments (LIMIT $1)` with a `u64` parameter failed (`kvm.param`)
/// while a top-level `LIMIT $1` took it; so did `ORDER BY … LIMIT $1 OFFSET $2` (the
/// sort's `LIMIT + OFFSET`). One rule for every count now.
#[test]
fn include_limits_take_a_u64_parameter_like_the_query_limit() {
    let db = Database::memory().unwrap();
    db.execute(
        "DEFINE MODEL posts (id INT PRIMARY KEY, RELATION comments HAS MANY comments (post_id))",
        (),
    )
    .unwrap();
    db.execute("DEFINE MODEL comments (id INT PRIMARY KEY, post_id INT NOT NULL, b INT)", ())
        .unwrap();
    db.execute("INSERT INTO posts [{id: 1}, {id: 2}]", ()).unwrap();
    db.execute(
        "INSERT INTO comments [{id: 1, post_id: 1, b: 3}, {id: 2, post_id: 1, b: 2}, \
         {id: 3, post_id: 1, b: 1}, {id: 4, post_id: 2, b: 0}]",
        (),
    )
    .unwrap();
    let included = |kql: &str, p: kvm::Params| -> Vec<usize> {
        let rows = db.query(kql, p).unwrap();
        let at = rows.columns.iter().position(|c| c == "comments").unwrap();
        rows.rows
            .iter()
            .map(|r| match &r[at] {
                Value::Array(a) => a.len(),
                other => panic!("comments: {other}"),
            })
            .collect()
    };
    assert_eq!(ids(&db, "SELECT id FROM posts LIMIT $1", params![1u64]), vec![Value::Int(1)]);
    let q = "SELECT id FROM posts INCLUDE comments (LIMIT $1)";
    assert_eq!(included(q, params![2u64]), vec![2, 1]);
    assert_eq!(included(q, params![2i64]), vec![2, 1]);
    let q = "SELECT id FROM posts INCLUDE comments (ORDER BY b LIMIT $1 OFFSET $2)";
    assert_eq!(included(q, params![1u64, 1u64]), vec![1, 0]);
    let q = "SELECT id FROM comments ORDER BY b LIMIT $1 OFFSET $2";
    assert_eq!(ids(&db, q, params![2u64, 1u64]), vec![Value::Int(3), Value::Int(2)]);
    assert_eq!(ids(&db, q, params![u64::MAX, 3u64]), vec![Value::Int(1)]);
    // Negative counts and non-numbers stay refused on both paths.
    for q in ["SELECT id FROM posts LIMIT $1", "SELECT id FROM posts INCLUDE comments (LIMIT $1)"] {
        assert_eq!(db.query(q, params![-1i64]).unwrap_err().code(), "kvm.param", "{q}");
        assert_eq!(db.query(q, params!["2"]).unwrap_err().code(), "kvm.param", "{q}");
    }
}

// ---- Issue 16: the catalog's format is stored ----

/// Writes, through the storage API alone, exactly the keys a database written before the
/// catalog format key existed holds (main at fd92d3f): a `users` model with a UNIQUE
/// LOWERCASE field and a non-unique index, two records and their index entries. No
/// `['__sys', 'catalog', 'format']` key.
fn previous_format_fixture(engine: &dyn kvm_storage::Engine) {
    use kvm_storage::tuple::{encode, KeyPart};
    use kvm_storage::AtomicBatch;

    let s = |x: &str| KeyPart::String(x.into());
    let obj = |pairs: Vec<(&str, Value)>| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    };
    let kql = "DEFINE MODEL users (\n  id INT PRIMARY KEY,\n  email STRING UNIQUE LOWERCASE,\n  \
               name STRING NOT NULL,\n  age INT,\n  INDEX by_age (age)\n)";
    let def = obj(vec![("building", Value::Array(vec![])), ("kql", Value::String(kql.into()))]);
    let mut batch = AtomicBatch::new()
        .set(&encode(&[s("__sys"), s("catalog"), s("model"), s("users")]), &def.encode())
        .set(&encode(&[s("__sys"), s("catalog"), s("version")]), &Value::encode_counter(1));
    for (id, email, name, age) in [(1, "ann@x.com", "Ann", 31), (2, "bo@x.com", "Bo", 17)] {
        let record = obj(vec![
            ("age", Value::Int(age)),
            ("email", Value::String(email.into())),
            ("id", Value::Int(id)),
            ("name", Value::String(name.into())),
        ]);
        batch = batch
            .set(&encode(&[s("users"), KeyPart::Int(id)]), &record.encode())
            .set(
                &encode(&[s("users"), s("__idx"), s("email_unique"), s(email)]),
                &Value::Int(id).encode(),
            )
            .set(
                &encode(&[
                    s("users"),
                    s("__idx"),
                    s("by_age"),
                    KeyPart::Int(age),
                    KeyPart::Int(id),
                ]),
                &Value::Null.encode(),
            );
    }
    engine.commit(&batch).unwrap();
}

fn catalog_format_key() -> Vec<u8> {
    use kvm_storage::tuple::{encode, KeyPart};
    let s = |x: &str| KeyPart::String(x.into());
    encode(&[s("__sys"), s("catalog"), s("format")])
}

fn stored_catalog_format(engine: &dyn kvm_storage::Engine) -> Option<u64> {
    let snap = engine.snapshot().unwrap();
    snap.get(&catalog_format_key()).unwrap().and_then(|e| Value::decode_counter(e.value()))
}

/// Issue 16 item 8: a catalog written by the previous format (no format key) opens as
/// format 1 and answers queries — by key, through its unique and non-unique indexes, and
/// CHECK DATABASE is clean — and gets the format key when opened for writing, or at its
/// next catalog write when opened read-only.
#[test]
fn a_catalog_of_the_previous_format_opens_and_is_upgraded() {
    use kvm_storage::{Engine, MemoryEngine};
    use std::sync::Arc;

    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    assert_eq!(stored_catalog_format(engine.as_ref()), None);

    let answers = |db: &Database| {
        assert_eq!(
            ids(db, "SELECT id FROM users WHERE email = 'ANN@x.com'", params![]),
            vec![Value::Int(1)]
        );
        assert_eq!(
            ids(db, "SELECT name FROM users WHERE age < 20", params![]),
            vec![Value::String("Bo".into())]
        );
        assert_eq!(ids(db, "SELECT id FROM users WHERE id = 2", params![]), vec![Value::Int(2)]);
        let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
        assert!(check.starts_with("ok: 1 model(s)"), "{check}");
    };

    // Read-only: it answers, and nothing is written on open.
    let read_only = kvm::Options { read_only: true, ..kvm::Options::default() };
    let db = Database::with_engine(engine.clone(), read_only).unwrap();
    answers(&db);
    assert_eq!(stored_catalog_format(engine.as_ref()), None);
    // (A memory engine does not enforce read-only: a catalog write records the format.)
    db.execute("ALTER MODEL users ADD FIELD nick STRING", ()).unwrap();
    assert_eq!(stored_catalog_format(engine.as_ref()), Some(3));
    drop(db);

    // Opened for writing, a catalog of a previous format (no key, or format 1) gets this
    // version's format at once: records may now be written in a form format 1 cannot read.
    for explicit_v1 in [false, true] {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        previous_format_fixture(engine.as_ref());
        if explicit_v1 {
            let one = kvm_storage::AtomicBatch::new()
                .set(&catalog_format_key(), &Value::encode_counter(1));
            engine.commit(&one).unwrap();
        }
        let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
        assert_eq!(stored_catalog_format(engine.as_ref()), Some(3));
        answers(&db);
        db.execute("INSERT INTO users {id: 3, email: 'Cy@x.com', name: 'Cy', age: 40}", ())
            .unwrap();
        assert_eq!(
            ids(&db, "SELECT id FROM users WHERE email = 'cy@x.com'", params![]),
            vec![Value::Int(3)]
        );
    }
}

/// The raw stored bytes of `users` record `id`.
fn raw_user(engine: &dyn kvm_storage::Engine, id: i64) -> Vec<u8> {
    use kvm_storage::tuple::{encode, KeyPart};
    let key = encode(&[KeyPart::String("users".into()), KeyPart::Int(id)]);
    engine.snapshot().unwrap().get(&key).unwrap().unwrap().value().to_vec()
}

/// Issue 16 item 2: records name their fields by id (catalog format 2). Records written as
/// objects by the previous format still read — by key, by index, in scans and in CHECK
/// DATABASE — next to records written by id; an update rewrites one by id; and an ALTER
/// keeps every field's id, so neither kind of record is misread after it.
#[test]
fn records_of_the_previous_format_read_beside_records_by_field_id() {
    use kvm_storage::{Engine, MemoryEngine};
    use std::sync::Arc;

    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    assert!(!Value::is_record(&raw_user(engine.as_ref(), 1)), "the fixture writes objects");
    db.execute("UPDATE users SET age = 32 WHERE id = 1", ()).unwrap();
    db.execute("INSERT INTO users {id: 3, email: 'cy@x.com', name: 'Cy', age: 40}", ()).unwrap();
    assert!(Value::is_record(&raw_user(engine.as_ref(), 1)), "an update writes by id");
    assert!(Value::is_record(&raw_user(engine.as_ref(), 3)));
    assert!(!Value::is_record(&raw_user(engine.as_ref(), 2)), "untouched stays an object");
    // The new field gets a fresh id: no record's field is taken for it.
    db.execute("ALTER MODEL users ADD FIELD nick STRING", ()).unwrap();
    db.execute("UPDATE users SET nick = 'b' WHERE id = 2", ()).unwrap();
    let rows = db.query("SELECT id, email, name, age, nick FROM users", ()).unwrap();
    let got: Vec<Vec<Value>> = rows.rows;
    let s = |x: &str| Value::String(x.into());
    assert_eq!(
        got,
        vec![
            vec![Value::Int(1), s("ann@x.com"), s("Ann"), Value::Int(32), Value::Null],
            vec![Value::Int(2), s("bo@x.com"), s("Bo"), Value::Int(17), s("b")],
            vec![Value::Int(3), s("cy@x.com"), s("Cy"), Value::Int(40), Value::Null],
        ]
    );
    assert_eq!(ids(&db, "SELECT id FROM users WHERE age < 35", params![]).len(), 2);
    let check = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(check.starts_with("ok: 1 model(s)"), "{check}");

    // A record that is an object names its fields: a dropped field must not come back as a
    // later field of the same name, so DROP FIELD rewrites these records (issue 17 leaves
    // dropped values in place only in records by id).
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute("ALTER MODEL users DROP INDEX by_age", ()).unwrap();
    db.execute("ALTER MODEL users DROP FIELD age", ()).unwrap();
    db.execute("ALTER MODEL users ADD FIELD age INT", ()).unwrap();
    assert_eq!(ids(&db, "SELECT age FROM users ORDER BY id", params![]), vec![Value::Null; 2]);
    // Across a reload of the catalog too (the entry says its records may be objects).
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute("ALTER MODEL users ADD FIELD nick STRING", ()).unwrap();
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute("ALTER MODEL users DROP FIELD name", ()).unwrap();
    db.execute("ALTER MODEL users ADD FIELD name STRING", ()).unwrap();
    assert_eq!(ids(&db, "SELECT name FROM users ORDER BY id", params![]), vec![Value::Null; 2]);
}

/// Issue 16 item 8: a catalog in a format newer than this version reads is refused with
/// `kvm.catalog_version` — on open, and when another (newer) process upgrades it while
/// this one has it open — instead of being misread.
#[test]
fn a_catalog_in_a_newer_format_is_refused() {
    use kvm_storage::{AtomicBatch, Engine, MemoryEngine};
    use std::sync::Arc;

    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    engine
        .commit(&AtomicBatch::new().set(&catalog_format_key(), &Value::encode_counter(4)))
        .unwrap();
    let err = Database::with_engine(engine.clone(), kvm::Options::default()).err().unwrap();
    assert_eq!(err.code(), "kvm.catalog_version", "{err}");
    assert!(err.to_string().contains("format 4"), "{err}");
    let read_only = kvm::Options { read_only: true, ..kvm::Options::default() };
    let err = Database::with_engine(engine.clone(), read_only).err().unwrap();
    assert_eq!(err.code(), "kvm.catalog_version", "{err}");

    // Open in this format; a newer process then rewrites the catalog in format 4.
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    previous_format_fixture(engine.as_ref());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    assert_eq!(ids(&db, "SELECT id FROM users WHERE id = 1", params![]), vec![Value::Int(1)]);
    let version = kvm_storage::tuple::encode(&[
        kvm_storage::KeyPart::String("__sys".into()),
        kvm_storage::KeyPart::String("catalog".into()),
        kvm_storage::KeyPart::String("version".into()),
    ]);
    engine
        .commit(
            &AtomicBatch::new()
                .set(&catalog_format_key(), &Value::encode_counter(4))
                .sum(&version, 1),
        )
        .unwrap();
    let err = db.query("SELECT id FROM users WHERE id = 1", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.catalog_version", "{err}");
}

// ---- Issue 16: CHECK DATABASE is an error when it finds problems ----

/// Commits raw writes and deletes, below the engine (what a bug or a damaged file leaves).
fn plant(
    engine: &dyn kvm_storage::Engine,
    set: &[Vec<kvm_storage::KeyPart>],
    delete: &[Vec<kvm_storage::KeyPart>],
) {
    let mut batch = kvm_storage::AtomicBatch::new();
    for k in set {
        batch = batch.set(&kvm_storage::tuple::encode(k), &Value::Null.encode());
    }
    for k in delete {
        batch = batch.delete(&kvm_storage::tuple::encode(k));
    }
    engine.commit(&batch).unwrap();
}

/// Issue 16 item 7: CHECK DATABASE returned `Ok("1 problem(s)…")`, so a script or CI job
/// running it passed on a damaged database. Now it is `kvm.check_failed` with a typed report:
/// a planted dangling index entry (its record missing), a missing entry (a record without
/// it) and a unique entry naming another record are each found, with kind, model, index
/// and key. A clean database still passes.
#[test]
fn check_database_fails_on_dangling_and_missing_index_entries() {
    use kvm::{CheckProblemKind, Error};
    use kvm_storage::{Engine, KeyPart, MemoryEngine};
    use std::sync::Arc;

    let s = |x: &str| KeyPart::String(x.into());
    let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    let db = Database::with_engine(engine.clone(), kvm::Options::default()).unwrap();
    db.execute(
        "DEFINE MODEL users (id INT PRIMARY KEY, age INT, email STRING UNIQUE, INDEX by_age (age))",
        (),
    )
    .unwrap();
    db.execute(
        "INSERT INTO users [{id: 1, age: 31, email: 'a@x'}, {id: 2, age: 17, email: 'b@x'}]",
        (),
    )
    .unwrap();
    let clean = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(clean.starts_with("ok: 1 model(s)"), "{clean}");

    let dangling = vec![s("users"), s("__idx"), s("by_age"), KeyPart::Int(50), KeyPart::Int(9)];
    let missing = vec![s("users"), s("__idx"), s("by_age"), KeyPart::Int(31), KeyPart::Int(1)];
    plant(engine.as_ref(), &[dangling], &[missing]);
    let err = db.execute("CHECK DATABASE", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.check_failed", "{err}");
    let Error::Check(report) = &err else { panic!("{err:?}") };
    assert_eq!((report.models, report.records), (1, 2));
    let found: Vec<(CheckProblemKind, &str, Option<&str>, Option<&str>)> = report
        .problems
        .iter()
        .map(|p| (p.kind, p.model.as_str(), p.index.as_deref(), p.key.as_deref()))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                CheckProblemKind::DanglingEntry,
                "users",
                Some("by_age"),
                Some("['users', '__idx', 'by_age', 50, 9]")
            ),
            (
                CheckProblemKind::MissingEntry,
                "users",
                Some("by_age"),
                Some("['users', '__idx', 'by_age', 31, 1]")
            ),
        ]
    );
    let message = err.to_string();
    assert!(message.starts_with("CHECK found 2 problems:"), "{message}");
    assert!(message.contains("[dangling_entry] users.by_age: entry ['users', '__idx', 'by_age', 50, 9] matches no record"), "{message}");
    assert!(
        message.contains(
            "[missing_entry] users.by_age: missing index entry ['users', '__idx', 'by_age', 31, 1]"
        ),
        "{message}"
    );
    // CHECK MODEL fails the same way.
    assert_eq!(db.execute("CHECK MODEL users", ()).unwrap_err().code(), "kvm.check_failed");

    // A unique entry holding another record's key is dangling too.
    let engine2: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
    let db2 = Database::with_engine(engine2.clone(), kvm::Options::default()).unwrap();
    db2.execute("DEFINE MODEL u (id INT PRIMARY KEY, email STRING UNIQUE)", ()).unwrap();
    db2.execute("INSERT INTO u [{id: 1, email: 'a@x'}, {id: 2, email: 'b@x'}]", ()).unwrap();
    let key = kvm_storage::tuple::encode(&[s("u"), s("__idx"), s("email_unique"), s("a@x")]);
    engine2.commit(&kvm_storage::AtomicBatch::new().set(&key, &Value::Int(2).encode())).unwrap();
    let err = db2.execute("CHECK DATABASE", ()).unwrap_err();
    let Error::Check(report) = &err else { panic!("{err:?}") };
    assert_eq!(report.problems.len(), 1, "{err}");
    assert_eq!(report.problems[0].kind, CheckProblemKind::DanglingEntry);
    assert!(
        err.to_string().contains("holds key 2, but the record with these values is 1"),
        "{err}"
    );
}

/// Issue 16 item 4: a backfill writes index entries through `ModelTxn`, so an entry of a
/// record with a time to live expires with it. Before, backfilled entries never expired:
/// once the record was swept its entry dangled and CHECK DATABASE failed.
#[test]
fn backfilled_index_entries_expire_with_their_records() {
    let clock = kvm::storage::ManualClock::new(1_000_000);
    let db = Database::memory_with(kvm::Options {
        clock: std::sync::Arc::new(clock.clone()),
        sweep_interval: None,
        ..kvm::Options::default()
    })
    .unwrap();
    db.execute("DEFINE MODEL s (id INT PRIMARY KEY, tag STRING, code STRING)", ()).unwrap();
    db.execute(
        "INSERT INTO s [{id: 1, tag: 'a', code: 'x'}, {id: 2, tag: 'b', code: 'y'}] EXPIRE IN '5s'",
        (),
    )
    .unwrap();
    db.execute("INSERT INTO s {id: 3, tag: 'a', code: 'z'}", ()).unwrap();
    db.execute("ALTER MODEL s ADD INDEX by_tag (tag)", ()).unwrap();
    db.execute("ALTER MODEL s ADD UNIQUE INDEX by_code (code)", ()).unwrap();
    db.finish_backfills().unwrap();
    clock.advance(6_000);
    assert!(db.sweep_expired().unwrap() > 0);
    let ok = db.execute("CHECK DATABASE", ()).unwrap().to_string();
    assert!(ok.starts_with("ok:"), "{ok}");
    let ids = db.query("SELECT id FROM s WHERE tag = 'a'", ()).unwrap().rows;
    assert_eq!(ids, vec![vec![Value::Int(3)]]);
    // The expired code is free again.
    db.execute("INSERT INTO s {id: 4, code: 'x'}", ()).unwrap();
}

/// Issue 19: a GROUP BY whose groups are held in memory, a `COUNT(DISTINCT …)` and an
/// `IN (SELECT …)` refuse past the sort budget (a clear error, nothing held without bound),
/// while the same groups streamed from an index hold one group at a time and succeed.
#[test]
fn grouping_distinct_and_subqueries_are_bounded() {
    let db = Database::memory_with(kvm::Options {
        sort_budget: 512 << 10,
        sweep_interval: None,
        ..kvm::Options::default()
    })
    .unwrap();
    db.execute(
        "DEFINE MODEL t (id INT PRIMARY KEY, k STRING NOT NULL, u STRING NOT NULL, INDEX (u))",
        (),
    )
    .unwrap();
    let n = 20_000i64;
    let batch: Vec<String> =
        (0..n).map(|id| format!("{{id: {id}, k: 'key-{id:08}', u: 'u-{id:08}'}}")).collect();
    db.execute(&format!("INSERT INTO t [{}]", batch.join(",")), ()).unwrap();
    for q in [
        "SELECT k, COUNT(*) FROM t GROUP BY k",
        "SELECT COUNT(DISTINCT k) FROM t",
        "SELECT COUNT(*) FROM t WHERE id IN (SELECT k FROM t)",
    ] {
        let err = db.query(q, ()).unwrap_err();
        assert!(
            matches!(err.code(), "kvm.group_too_large" | "kvm.subquery_too_large"),
            "{q}: {err}"
        );
    }
    // Streamed from the index on `u`: one group at a time, within any budget.
    let rows = db.query("SELECT u, COUNT(*) FROM t GROUP BY u", ()).unwrap();
    assert_eq!(rows.rows.len(), n as usize);
}
