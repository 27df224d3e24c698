//! KVM on etcd beside KVM on LMDB and raw etcd, in the same run (feature `etcd`; issue 18).
//!
//! Starts a single-member and a 3-member etcd cluster on loopback (`etcd_testing`, with the
//! transaction limits KVM's docs recommend) and loads the engine bench's `users` model
//! (`KVM_BENCH_ETCD_ROWS` rows, default 10,000, in 500-record statements) into KVM on each
//! and on LMDB. Measured, each with the requests (round trips) it took on etcd:
//! (a) a point get by primary key through a prepared statement, beside a raw etcd get of
//! one key through the same client crate; (b) the 1,000-row index range; (c) single-row
//! durable inserts, one thread, beside a raw etcd put; (d) 8 threads × 100 increments of one
//! counter.
//!
//! Run: `cargo bench --features etcd --bench etcd`. Results in docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kvm::storage::etcd_testing::{self, etcd_client, tokio, EtcdCluster};
use kvm::storage::EtcdEngine;
use kvm::{params, Database, Options, Prepared, Value};

const RANGE: i64 = 1_000;
const THREADS: usize = 8;
const INCREMENTS: usize = 100;
const INSERTS: usize = 300;

fn rows() -> i64 {
    std::env::var("KVM_BENCH_ETCD_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(10_000)
}

/// KVM on one backend, with its prepared statements and (on etcd) its engine, to count
/// requests.
struct Store {
    name: String,
    db: Database,
    etcd: Option<Arc<EtcdEngine>>,
    get: Prepared,
    range: Prepared,
}

impl Store {
    fn open(name: &str, db: Database, etcd: Option<Arc<EtcdEngine>>, n: i64) -> Store {
        db.execute(
            "DEFINE MODEL users (id INT PRIMARY KEY, email STRING UNIQUE NOT NULL, \
             name STRING NOT NULL, age INT NOT NULL, status STRING NOT NULL, INDEX by_age (age))",
            (),
        )
        .unwrap();
        // Ages are a permutation of 0..n: `age >= x AND age < x + 1000` is 1,000 rows.
        let p = [7_919i64, 104_729, 3].into_iter().find(|p| gcd(*p, n) == 1).unwrap_or(1);
        let t = Instant::now();
        for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
            let records: Vec<String> = chunk
                .iter()
                .map(|i| {
                    format!(
                        "{{id: {i}, email: 'u{i}@example.com', name: 'user {i}', age: {}, \
                         status: 'active'}}",
                        (i * p) % n
                    )
                })
                .collect();
            db.execute(&format!("INSERT INTO users [{}]", records.join(", ")), ()).unwrap();
        }
        println!(
            "load/{name}: {n} rows in 500-record statements in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        let get = db.prepare("SELECT * FROM users WHERE id = $1").unwrap();
        let range = db.prepare("SELECT * FROM users WHERE age >= $1 AND age < $2").unwrap();
        Store { name: name.into(), db, etcd, get, range }
    }

    fn trips(&self) -> u64 {
        self.etcd.as_ref().map_or(0, |e| e.round_trips())
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn on_etcd(cluster: &EtcdCluster, name: &str, n: i64) -> Store {
    let url = cluster.url(&etcd_testing::unique_app("bench"));
    let engine = Arc::new(EtcdEngine::open_url(&url, Options::default().clock).unwrap());
    let options = Options { sweep_interval: None, ..Options::default() };
    let db = Database::with_engine(engine.clone(), options).unwrap();
    Store::open(name, db, Some(engine), n)
}

/// Raw etcd through the same client crate, on its own runtime: the floor for (a) and (c).
struct Raw {
    name: String,
    rt: tokio::runtime::Runtime,
    client: etcd_client::Client,
}

impl Raw {
    fn open(name: &str, cluster: &EtcdCluster) -> Raw {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let endpoints: Vec<String> =
            cluster.hosts().split(',').map(|h| format!("http://{h}")).collect();
        let client = rt.block_on(etcd_client::Client::connect(endpoints, None)).unwrap();
        let raw = Raw { name: name.into(), rt, client };
        for i in 0..1_000 {
            raw.put(i);
        }
        raw
    }
    fn get(&self, i: i64) -> usize {
        let mut kv = self.client.kv_client();
        let r = self.rt.block_on(kv.get(format!("raw/{i}"), None)).unwrap();
        r.kvs().len()
    }
    fn put(&self, i: i64) {
        let mut kv = self.client.kv_client();
        self.rt.block_on(kv.put(format!("raw/{i}"), format!("value {i}"), None)).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    if let Some(why) = etcd_testing::unavailable() {
        println!("SKIPPED: {why}");
        return;
    }
    let n = rows();
    let one = EtcdCluster::start(1).unwrap();
    let three = EtcdCluster::start(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    println!("etcd bench: {n} rows (KVM_BENCH_ETCD_ROWS)");
    let mut stores = vec![
        Store::open("lmdb", Database::open(dir.path().join("bench.kvm")).unwrap(), None, n),
        on_etcd(&one, "etcd1", n),
        on_etcd(&three, "etcd3", n),
    ];
    let raws = [Raw::open("etcd1", &one), Raw::open("etcd3", &three)];

    // Requests per operation (etcd), measured once each.
    for s in &stores[1..] {
        let t0 = s.trips();
        black_box(s.get.query(params![7i64]).unwrap());
        let t1 = s.trips();
        black_box(s.range.query(params![0i64, RANGE]).unwrap());
        let t2 = s.trips();
        s.db.execute(
            "INSERT INTO users {id: $1, email: 'x@x', name: 'x', age: -1, status: 'x'}",
            params![-1i64],
        )
        .unwrap();
        let t3 = s.trips();
        println!(
            "round trips/{}: PK get {}, 1,000-row index range {}, single-row INSERT {}",
            s.name,
            t1 - t0,
            t2 - t1,
            t3 - t2
        );
    }

    let mut g = c.benchmark_group("etcd");
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(20);
    for s in stores.iter_mut() {
        let mut i = 0i64;
        g.bench_function(format!("get_pk/kvm-{}", s.name), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(s.get.query(params![i]).unwrap().rows.len())
            })
        });
    }
    for r in &raws {
        let mut i = 0i64;
        g.bench_function(format!("get_pk/raw-{}", r.name), |b| {
            b.iter(|| {
                i = (i + 7919) % 1_000;
                black_box(r.get(i))
            })
        });
    }
    g.throughput(Throughput::Elements(RANGE as u64));
    for s in stores.iter_mut() {
        let mut lo = 0i64;
        g.bench_function(format!("range_1000/kvm-{}", s.name), |b| {
            b.iter(|| {
                lo = (lo + 7919) % (n - RANGE);
                let rows = s.range.query(params![lo, lo + RANGE]).unwrap().rows.len();
                assert_eq!(rows, RANGE as usize);
                rows
            })
        });
    }
    g.finish();

    // (c) single-row durable inserts, one thread; raw etcd puts beside them.
    for s in &stores {
        s.db.execute("DEFINE MODEL events (id INT PRIMARY KEY, kind STRING NOT NULL)", ()).unwrap();
        let ins = s.db.prepare("INSERT INTO events {id: $1, kind: 'click'}").unwrap();
        let t = Instant::now();
        for i in 0..INSERTS as i64 {
            ins.execute(params![i]).unwrap();
        }
        let el = t.elapsed();
        println!(
            "inserts/kvm-{}: {INSERTS} single-row durable inserts, one thread: {:.0} commits/s \
             ({:.2} ms each)",
            s.name,
            INSERTS as f64 / el.as_secs_f64(),
            el.as_secs_f64() * 1e3 / INSERTS as f64
        );
    }
    for r in &raws {
        let t = Instant::now();
        for i in 0..INSERTS as i64 {
            r.put(10_000 + i);
        }
        let el = t.elapsed();
        println!(
            "inserts/raw-{}: {INSERTS} puts, one thread: {:.0} puts/s ({:.2} ms each)",
            r.name,
            INSERTS as f64 / el.as_secs_f64(),
            el.as_secs_f64() * 1e3 / INSERTS as f64
        );
    }

    // (d) 8 threads × 100 increments of one counter.
    for s in &stores {
        s.db.execute_batch("DEFINE MODEL counters (id INT PRIMARY KEY, n INT NOT NULL); INSERT INTO counters {id: 1, n: 0};").unwrap();
        let t = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..THREADS {
                scope.spawn(|| {
                    let inc = s.db.prepare("UPDATE counters SET n += 1 WHERE id = 1").unwrap();
                    for _ in 0..INCREMENTS {
                        inc.execute(()).unwrap();
                    }
                });
            }
        });
        let el = t.elapsed();
        let n = s.db.query("SELECT n FROM counters WHERE id = 1", ()).unwrap().rows[0][0].clone();
        assert_eq!(n, Value::Int((THREADS * INCREMENTS) as i64), "{}", s.name);
        println!(
            "counter/kvm-{}: {THREADS} threads x {INCREMENTS} increments, exact: {:.0} commits/s",
            s.name,
            (THREADS * INCREMENTS) as f64 / el.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
