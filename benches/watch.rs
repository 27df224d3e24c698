//! WATCH costs (issue 8), on LMDB (`Durability::Process`, so commits are not fsync-bound and
//! the watch overhead is visible):
//!
//! - `commit_throughput/{0,10000}_idle_watches`: single-record UPDATE commits per second with
//!   no watch, and with 10,000 registered record watches on other records (the hub finds a
//!   commit's watches by record key, off the commit path). Target: ratio ≥ 0.9.
//! - commit → event latency, printed as p50/p99 over `KVM_BENCH_LATENCY_N` (default 300)
//!   commits: in-process (the tailer is woken by the commit), and cross-process (a child
//!   process — this bench binary re-run with `KVM_BENCH_WATCH_CHILD` — commits, stamping
//!   each record with its send time; the watcher finds it by polling the feed).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput};
use kvm::storage::{Durability, LmdbEngine, LmdbOptions};
use kvm::{Database, Options, Value, Watch, WatchOp};

fn open(path: &std::path::Path) -> Database {
    let opts = LmdbOptions { durability: Durability::Process, ..LmdbOptions::default() };
    let engine = Arc::new(LmdbEngine::open(path, opts).expect("open LMDB"));
    Database::with_engine(engine, Options::default()).expect("open database")
}

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

fn setup(db: &Database) {
    db.execute(
        "DEFINE MODEL items (id INT PRIMARY KEY, n INT NOT NULL DEFAULT 0, sent INT NOT NULL DEFAULT 0)",
        (),
    )
    .expect("define");
    db.execute("DEFINE MODEL idle (id INT PRIMARY KEY)", ()).expect("define");
    for chunk in 0..10 {
        let rows: Vec<String> =
            (chunk * 1000..(chunk + 1) * 1000).map(|i| format!("{{id: {i}}}")).collect();
        db.execute(&format!("INSERT INTO items [{}]", rows.join(", ")), ()).expect("insert");
    }
}

fn throughput(c: &mut Criterion, db: &Database) {
    let update = db.prepare("UPDATE items SET n = n + 1 WHERE id = $1").expect("prepare");
    let mut g = c.benchmark_group("commit_throughput");
    g.throughput(Throughput::Elements(1));
    let mut i = 0i64;
    g.bench_function("0_idle_watches", |b| {
        b.iter(|| {
            i = (i + 1) % 10_000;
            update.execute((i,)).expect("update")
        })
    });
    let watches: Vec<Watch> =
        (0..10_000).map(|k| db.watch("WATCH idle WHERE id = $1", (k,)).expect("watch")).collect();
    assert_eq!(db.watch_count(), 10_000);
    g.bench_function("10000_idle_watches", |b| {
        b.iter(|| {
            i = (i + 1) % 10_000;
            update.execute((i,)).expect("update")
        })
    });
    g.finish();
    drop(watches);
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (at(0.5), at(0.99))
}

/// Waits for the update event of record 0 and returns its `sent` stamp.
fn next_sent(w: &mut Watch) -> i64 {
    loop {
        match w.next_timeout(Duration::from_secs(10)) {
            Some(Ok(e)) if e.op == WatchOp::Update => {
                if let Some(Value::Object(m)) = &e.row {
                    if let Some(Value::Int(s)) = m.get("sent") {
                        return *s;
                    }
                }
            }
            Some(Ok(_)) => {}
            other => panic!("no event: {other:?}"),
        }
    }
}

fn latency(db: &Database, path: &std::path::Path) {
    let n: usize =
        std::env::var("KVM_BENCH_LATENCY_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let mut w = db.watch("WATCH items WHERE id = 0", ()).expect("watch");
    while let Some(Ok(e)) = w.next_timeout(Duration::from_millis(200)) {
        if e.op == WatchOp::Ready {
            break;
        }
    }
    let set = db.prepare("UPDATE items SET sent = $1 WHERE id = 0").expect("prepare");
    let mut local = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        set.execute((now_micros(),)).expect("update");
        next_sent(&mut w);
        local.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (p50, p99) = percentiles(local);
    println!("watch latency in-process: p50 {p50:.0} µs, p99 {p99:.0} µs (n = {n})");

    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .env("KVM_BENCH_WATCH_CHILD", path)
        .env("KVM_BENCH_LATENCY_N", n.to_string())
        .spawn()
        .expect("spawn the writer process");
    // Commits close together may be coalesced into one event: read until the writer is
    // done and the watch is quiet.
    let mut remote = Vec::with_capacity(n);
    loop {
        match w.next_timeout(Duration::from_millis(500)) {
            Some(Ok(e)) if e.op == WatchOp::Update => {
                if let Some(Value::Object(m)) = &e.row {
                    if let Some(Value::Int(sent)) = m.get("sent") {
                        remote.push((now_micros() - sent) as f64);
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("{e}"),
            None => {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
            }
        }
    }
    let (p50, p99) = percentiles(remote.clone());
    println!(
        "watch latency cross-process: p50 {p50:.0} µs, p99 {p99:.0} µs ({} events for {n} commits 5 ms apart)",
        remote.len()
    );
}

/// The cross-process writer: one commit every 5 ms, each stamped with its send time.
fn child(path: &str) {
    let n: usize =
        std::env::var("KVM_BENCH_LATENCY_N").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let db = open(std::path::Path::new(path));
    let set = db.prepare("UPDATE items SET sent = $1 WHERE id = 0").expect("prepare");
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..n {
        set.execute((now_micros(),)).expect("update");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    if let Ok(path) = std::env::var("KVM_BENCH_WATCH_CHILD") {
        return child(&path);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("watch.kvm");
    let db = open(&path);
    setup(&db);
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c, &db);
    latency(&db, &path);
    c.final_summary();
}
