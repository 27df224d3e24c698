//! Queue costs (issue 9), on LMDB:
//!
//! - `queue_end_to_end`: one job enqueued, dequeued and acked (three commits: enqueue,
//!   lease, ack), against `raw_commit`: one single-key commit of the storage engine, same
//!   file options, same run. Target: jobs/s ≥ 0.5 × (raw commits/s ÷ 3), i.e. the queue
//!   costs at most twice the commits it needs. Measured with the default durability (each
//!   commit synced) and with `Durability::Process`.
//! - `dequeue_depth/{1000,1000000}`: one dequeue (a lease: one commit) with 1,000 vs
//!   1,000,000 jobs waiting (an ack and an enqueue, untimed, keep the depth put), and a raw
//!   single-key commit into the same file for scale. Target: ratio ≤ 1.5 (dequeue reads the
//!   first due entries, never the queue).
//!   `KVM_BENCH_QUEUE_DEEP` sets the deep size (default 1,000,000).

use std::sync::Arc;

use criterion::{Criterion, Throughput};
use kvm::storage::{AtomicBatch, Durability, Engine, LmdbEngine, LmdbOptions};
use kvm::{Database, Enqueue, Options};

fn open(path: &std::path::Path, durability: Durability) -> (Database, Arc<LmdbEngine>) {
    let opts = LmdbOptions { durability, map_size: 8 << 30, ..LmdbOptions::default() };
    let engine = Arc::new(LmdbEngine::open(path, opts).expect("open LMDB"));
    let db = Database::with_engine(engine.clone(), Options::default()).expect("open database");
    (db, engine)
}

fn end_to_end(c: &mut Criterion, name: &str, durability: Durability) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, engine) = open(&dir.path().join("e2e.kvm"), durability);
    let raw_dir = tempfile::tempdir().expect("tempdir");
    let raw = LmdbEngine::open(
        raw_dir.path().join("raw.kvm"),
        LmdbOptions { durability, ..LmdbOptions::default() },
    )
    .expect("open raw");
    let _ = engine;
    let mut g = c.benchmark_group(format!("queue_end_to_end_{name}"));
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("raw_commit", |b| {
        b.iter(|| {
            n += 1;
            raw.commit(&AtomicBatch::new().set(&n.to_be_bytes(), b"x")).expect("commit")
        })
    });
    let q = db.queue("jobs");
    g.bench_function("enqueue_dequeue_ack", |b| {
        b.iter(|| {
            q.enqueue(n, Enqueue::default()).expect("enqueue");
            let job = q.dequeue(1).expect("dequeue").pop().expect("a job");
            q.ack(&job.lease).expect("ack");
            n += 1;
        })
    });
    g.finish();
}

fn load(db: &Database, jobs: u64) {
    let mut done = 0;
    while done < jobs {
        let n = (jobs - done).min(10_000);
        db.transaction(|tx| {
            for i in 0..n {
                tx.execute("ENQUEUE INTO deep $1", (i as i64,))?;
            }
            Ok(())
        })
        .expect("load");
        done += n;
    }
}

fn depth(c: &mut Criterion) {
    let deep: u64 = std::env::var("KVM_BENCH_QUEUE_DEEP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut g = c.benchmark_group("dequeue_depth");
    g.throughput(Throughput::Elements(1));
    for jobs in [1_000, deep] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (db, engine) = open(&dir.path().join("deep.kvm"), Durability::Process);
        let t = std::time::Instant::now();
        load(&db, jobs);
        eprintln!("loaded {jobs} jobs in {:.1} s", t.elapsed().as_secs_f64());
        let q = db.queue("deep");
        // Only the dequeue (one commit: the lease) is timed; the ack and an enqueue that
        // keeps the depth put run between measurements.
        g.bench_function(jobs.to_string(), |b| {
            b.iter_custom(|iters| {
                let mut spent = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let t = std::time::Instant::now();
                    let job = q.dequeue(1).expect("dequeue").pop().expect("a job");
                    spent += t.elapsed();
                    q.ack(&job.lease).expect("ack");
                    q.enqueue(0, Enqueue::default()).expect("enqueue");
                }
                spent
            })
        });
        // The same storage, for scale: one raw single-key commit into this database file.
        let mut k = 0u64;
        g.bench_function(format!("{jobs}_raw_commit"), |b| {
            b.iter(|| {
                k += 1;
                engine
                    .commit(
                        &AtomicBatch::new()
                            .set(&[b"zz".as_slice(), &k.to_be_bytes()].concat(), b"x"),
                    )
                    .expect("commit")
            })
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    end_to_end(&mut c, "synced", Durability::Full);
    end_to_end(&mut c, "process", Durability::Process);
    depth(&mut c);
    c.final_summary();
}
