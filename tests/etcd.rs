//! KVM on a real etcd (feature `etcd`): two handles on one database (two "machines") see
//! each other's writes, schema and WATCH events; counters from both are exact and never
//! fail; a unique value is taken once; the round trips of the common operations are
//! counted; an unreachable or stopped cluster is a clear `storage.unavailable` error, not a
//! hang. Without an etcd binary each test prints why and does nothing else.
#![cfg(feature = "etcd")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvm::storage::{etcd_testing, EtcdEngine};
use kvm::{Database, Options, Value, WatchOp};

/// Two handles (own engine, own client) on one new database of the shared test cluster,
/// and the first one's engine; `None` (printed) without etcd.
fn two_handles() -> Option<(Database, Database, Arc<EtcdEngine>)> {
    two_handles_and_engines().map(|(a, b, e, _)| (a, b, e))
}

fn two_handles_and_engines() -> Option<(Database, Database, Arc<EtcdEngine>, Arc<EtcdEngine>)> {
    let cluster = match etcd_testing::shared() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return None;
        }
    };
    let url = cluster.url(&etcd_testing::unique_app("api"));
    let clock = Options::default().clock;
    let a = Arc::new(EtcdEngine::open_url(&url, clock.clone()).unwrap());
    let b = Arc::new(EtcdEngine::open_url(&url, clock).unwrap());
    // (No background sweeper: its requests would be counted with the statements'.)
    let options = || Options { sweep_interval: None, ..Options::default() };
    let db_a = Database::with_engine(a.clone(), options()).unwrap();
    let db_b = Database::with_engine(b.clone(), options()).unwrap();
    Some((db_a, db_b, a, b))
}

/// A WATCH tails the change feed every few milliseconds; on etcd an idle one asks the
/// cluster nothing (a watch stream on the feed key says when a commit came), and still
/// sees another handle's commit.
#[test]
fn an_idle_watch_asks_the_cluster_nothing_and_still_sees_commits() {
    let Some((a, b, _, b_engine)) = two_handles_and_engines() else { return };
    a.execute_batch("DEFINE MODEL t (id INT PRIMARY KEY, v INT); INSERT INTO t {id: 1, v: 0};")
        .unwrap();
    let mut w = b.watch("WATCH t WHERE id = 1", ()).unwrap();
    while w.next_timeout(Duration::from_secs(10)).unwrap().unwrap().op != WatchOp::Ready {}
    std::thread::sleep(Duration::from_millis(300));
    let before = b_engine.round_trips();
    std::thread::sleep(Duration::from_secs(1));
    let idle = b_engine.round_trips() - before;
    eprintln!("an idle watch for 1 s: {idle} requests (polling the feed would be ~200)");
    assert!(idle <= 5, "an idle watch made {idle} requests in a second");
    for v in 1..=3 {
        a.execute("UPDATE t SET v = $1 WHERE id = 1", (v,)).unwrap();
        let e = w.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(e.op, WatchOp::Update, "{e}");
    }
}

/// The first column of the first row.
fn first(db: &Database, kql: &str) -> Value {
    db.query(kql, ()).unwrap().rows[0][0].clone()
}

#[test]
fn two_handles_see_each_others_schema_writes_and_watch_events() {
    let Some((a, b, _)) = two_handles() else { return };
    a.execute_batch(
        "DEFINE MODEL users (id STRING PRIMARY KEY, email STRING UNIQUE, name STRING);
         INSERT INTO users {id: 'u1', email: 'ann@x', name: 'Ann'};",
    )
    .unwrap();
    // The other handle reads the catalog and the record the first one wrote.
    assert_eq!(first(&b, "SELECT name FROM users WHERE id = 'u1'"), Value::String("Ann".into()));
    let mut w = b.watch("WATCH users WHERE id = 'u1'", ()).unwrap();
    let mut initial = Vec::new();
    loop {
        let e = w.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
        if e.op == WatchOp::Ready {
            break;
        }
        initial.push(e);
    }
    assert_eq!(initial.len(), 1);
    a.execute("UPDATE users SET name = 'Ann B.' WHERE id = 'u1'", ()).unwrap();
    let e = w.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(e.op, WatchOp::Update, "{e}");
    match &e.row {
        Some(Value::Object(m)) => assert_eq!(m.get("name"), Some(&Value::String("Ann B.".into()))),
        other => panic!("no row: {other:?}"),
    }
    // A unique value taken through one handle is refused through the other.
    let err = b.execute("INSERT INTO users {id: 'u2', email: 'ann@x'}", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.unique_violation", "{err}");
}

#[test]
fn counters_from_two_handles_are_exact_and_never_fail() {
    let Some((a, b, _)) = two_handles() else { return };
    a.execute_batch("DEFINE MODEL c (id INT PRIMARY KEY, n U64); INSERT INTO c {id: 1, n: 0};")
        .unwrap();
    let (a, b) = (Arc::new(a), Arc::new(b));
    const THREADS: usize = 3;
    const EACH: usize = 60;
    let failures = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..2 * THREADS {
            let db = if t % 2 == 0 { a.clone() } else { b.clone() };
            let failures = &failures;
            s.spawn(move || {
                for _ in 0..EACH {
                    if let Err(e) = db.execute("UPDATE c SET n += 1 WHERE id = 1", ()) {
                        eprintln!("increment failed: {e}");
                        failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let Value::Counter(n) = first(&a, "SELECT n FROM c WHERE id = 1") else { panic!("not a U64") };
    let failed = failures.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "counter: {} increments from 2 handles, final {n}, {failed} failed",
        2 * THREADS * EACH
    );
    assert_eq!(failed, 0);
    assert_eq!(n, (2 * THREADS * EACH) as u64);
}

/// The requests (network round trips) each common operation takes: what docs/scaling.md
/// states. A change that adds a request per row fails here.
#[test]
fn round_trips_per_operation() {
    let Some((db, _, engine)) = two_handles() else { return };
    db.execute_batch(
        "DEFINE MODEL authors (id INT PRIMARY KEY, name STRING);
         DEFINE MODEL books (id INT PRIMARY KEY, author_id INT NOT NULL, year INT,
           RELATION author BELONGS TO authors (author_id), INDEX by_year (year));",
    )
    .unwrap();
    let authors: Vec<String> = (0..50).map(|i| format!("{{id: {i}, name: 'a{i}'}}")).collect();
    db.execute(&format!("INSERT INTO authors [{}]", authors.join(", ")), ()).unwrap();
    for chunk in 0..4 {
        let books: Vec<String> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| format!("{{id: {i}, author_id: {}, year: {}}}", i % 50, 1000 + i % 2000))
            .collect();
        db.execute(&format!("INSERT INTO books [{}]", books.join(", ")), ()).unwrap();
    }
    let trips = |what: &str, kql: &str, rows: usize| {
        let before = engine.round_trips();
        let out = db.query(kql, ()).unwrap();
        assert_eq!(out.rows.len(), rows, "{what}");
        let n = engine.round_trips() - before;
        eprintln!("{what}: {n} round trips");
        n
    };
    let pk = trips("PK get", "SELECT * FROM books WHERE id = 7", 1);
    let get = db.prepare("SELECT * FROM books WHERE id = $1").unwrap();
    let before = engine.round_trips();
    assert_eq!(get.query(kvm::params![8i64]).unwrap().rows.len(), 1);
    let prepared_pk = engine.round_trips() - before;
    eprintln!("prepared PK get: {prepared_pk} round trips");
    let range = trips("1,000-row index range", "SELECT * FROM books WHERE year < 2000", 1000);
    let include = trips(
        "INCLUDE page of 100",
        "SELECT id FROM books WHERE year >= 1000 ORDER BY year LIMIT 100 INCLUDE author",
        100,
    );
    let before = engine.round_trips();
    db.execute("UPDATE books SET year = 1 WHERE id = 7", ()).unwrap();
    let update = engine.round_trips() - before;
    eprintln!("UPDATE by PK: {update} round trips");
    let before = engine.round_trips();
    db.execute("INSERT INTO books {id: 5000, author_id: 1, year: 3}", ()).unwrap();
    let insert = engine.round_trips() - before;
    eprintln!("INSERT of one record: {insert} round trips");
    // A statement starts with one request: the snapshot's revision and the catalog's
    // version. Then a PK get is one request; 1,000 rows through an index are pages of 512
    // entries and growing batches of records (16, 64, 256, 1,024); an INCLUDE is one
    // request per relation per page. A commit reads the keys it checks (the catalog's
    // version, a record's, a foreign key's) again at one revision, then sends its
    // transaction: 2 requests. A key read twice in a statement is asked for once (the
    // snapshot keeps it); an INSERT reads its primary key and each unique value apart.
    assert_eq!(pk, 2, "PK get");
    // A prepared point read knows its key before it runs: it is read with the request
    // that opens the snapshot.
    assert_eq!(prepared_pk, 1, "prepared PK get");
    assert_eq!(range, 7, "1,000-row index range: records are fetched in batches, not per row");
    assert_eq!(include, 6, "INCLUDE page");
    assert_eq!(update, 4, "UPDATE by PK");
    assert_eq!(insert, 5, "INSERT with a foreign key");
}

#[test]
fn an_unreachable_or_stopped_cluster_is_a_clear_error_not_a_hang() {
    if let Some(why) = etcd_testing::unavailable() {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let started = Instant::now();
    let Err(err) = Database::open("etcd://127.0.0.1:1/nothing?timeout_ms=1000") else {
        panic!("opened a database on a closed port")
    };
    assert_eq!(err.code(), "storage.unavailable", "{err}");
    assert!(err.to_string().contains("cannot reach etcd at http://127.0.0.1:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let cluster = etcd_testing::EtcdCluster::start(1).unwrap();
    let url = format!("{}&timeout_ms=1500", cluster.url("stopped"));
    let db = Database::open(&url).unwrap();
    db.execute_batch("DEFINE MODEL t (id INT PRIMARY KEY); INSERT INTO t {id: 1};").unwrap();
    cluster.kill(0);
    let started = Instant::now();
    let err = db.execute("INSERT INTO t {id: 2}", ()).unwrap_err();
    assert_eq!(err.code(), "storage.unavailable", "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered in {:?}", started.elapsed());
    // Back up: the same handle works again, and nothing of the failed insert was written
    // (it never reached the cluster).
    cluster.start_member(0).unwrap();
    cluster.wait_ready(Duration::from_secs(20)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match db.query("SELECT COUNT(*) FROM t", ()) {
            Ok(rows) => {
                assert_eq!(rows.rows[0][0], Value::Int(1));
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), "storage.unavailable", "{e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("the cluster came back but the handle did not: {e}"),
        }
    }
    assert_eq!(first(&db, "SELECT COUNT(*) FROM t"), Value::Int(1));
}

/// With etcd's default limits (no `max_txn_ops` in the URL: 128 operations per
/// transaction), a statement too large for one transaction is refused before anything is
/// sent, naming the limits — never split, never partly written; and databases under other
/// names on the same cluster are apart.
#[test]
fn a_statement_past_the_cluster_limits_is_refused_whole_and_databases_are_apart() {
    let cluster = match etcd_testing::shared() {
        Ok(c) => c,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let app = etcd_testing::unique_app("limits");
    let url = format!("etcd://{}/{app}", cluster.hosts());
    let db = Database::open(&url).unwrap();
    db.execute("DEFINE MODEL t (id INT PRIMARY KEY, email STRING UNIQUE)", ()).unwrap();
    let records: Vec<String> = (0..100).map(|i| format!("{{id: {i}, email: 'e{i}'}}")).collect();
    let err = db.execute(&format!("INSERT INTO t [{}]", records.join(", ")), ()).unwrap_err();
    assert_eq!(err.code(), "kvm.batch_too_large", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("etcd") && text.contains("63"),
        "names the backend and its limit: {text}"
    );
    assert_eq!(first(&db, "SELECT COUNT(*) FROM t"), Value::Int(0), "nothing was written");
    // Ten records fit.
    db.execute(&format!("INSERT INTO t [{}]", records[..10].join(", ")), ()).unwrap();
    assert_eq!(first(&db, "SELECT COUNT(*) FROM t"), Value::Int(10));

    let other = Database::open(format!("etcd://{}/{app}-other", cluster.hosts())).unwrap();
    let err = other.query("SELECT COUNT(*) FROM t", ()).unwrap_err();
    assert_eq!(err.code(), "kvm.unknown_model", "another database does not see t: {err}");
}
