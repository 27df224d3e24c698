//! Storage layer overhead: the LMDB backend through the `Engine` trait against raw heed on
//! the same data in the same run (random point get, single-commit and batched puts, a
//! 1,000-key range scan). Run with `cargo bench --bench storage`; results in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions};
use kvm::storage::{
    AtomicBatch, Durability, Engine, KeyRange, LmdbEngine, LmdbOptions, ScanOptions,
};

/// Records loaded before measuring (override with KVM_BENCH_RECORDS).
fn records() -> u64 {
    std::env::var("KVM_BENCH_RECORDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000)
}

/// 16-byte keys spread over the key space (a multiplicative hash of the index).
fn key(i: u64) -> [u8; 16] {
    let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

const VALUE: [u8; 100] = [7u8; 100];

/// Reads a value's first and last bytes, as any consumer of a read would: without it, a raw
/// read never touches the value's memory and the comparison flatters the baseline.
fn touch(value: &[u8]) -> usize {
    value.len() + usize::from(value[0]) + usize::from(value[value.len() - 1])
}

struct Raw {
    env: heed::Env<heed::WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
}

/// A raw heed database in `path`; `sync` false opens it with `NO_SYNC`. Writes go into the
/// map (`WRITE_MAP`), as `LmdbEngine` does by default: the same LMDB mode on both sides.
fn open_raw(path: &std::path::Path, sync: bool) -> Raw {
    let mut flags = EnvFlags::NO_SUB_DIR | EnvFlags::WRITE_MAP;
    if !sync {
        flags |= EnvFlags::NO_SYNC;
    }
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(8 << 30)
            .max_dbs(2)
            .flags(flags)
            .open(path)
            .unwrap()
    };
    let wtxn = env.write_txn().unwrap();
    let db: Database<'_, Bytes, Bytes> = env
        .create_databases_and_commit(wtxn, |o, w| -> heed::Result<_> {
            Ok(CommitOrAbort::<_, ()>::Commit(o.create_database(w, Some("data"))?))
        })
        .unwrap()
        .unwrap_commit();
    // SAFETY: the handle lives beside its environment in `Raw` and never leaves it.
    let db = unsafe {
        std::mem::transmute::<Database<'_, Bytes, Bytes>, Database<'static, Bytes, Bytes>>(db)
    };
    Raw { env, db }
}

fn bench(c: &mut Criterion) {
    let n = records();
    let dir = tempfile::tempdir().unwrap();
    let raw = open_raw(&dir.path().join("raw.mdb"), false);
    let kvm = LmdbEngine::open(
        dir.path().join("kvm.kvm"),
        LmdbOptions { durability: Durability::Process, map_size: 8 << 30, ..Default::default() },
    )
    .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50_000) {
        let mut w = raw.env.write_txn().unwrap();
        let mut batch = AtomicBatch::new();
        for &i in chunk {
            raw.db.put(&mut w, &key(i), &VALUE).unwrap();
            batch = batch.set(&key(i), &VALUE);
        }
        w.commit().unwrap();
        kvm.commit(&batch).unwrap();
    }

    let mut g = c.benchmark_group("storage");
    g.warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));

    let mut i = 0u64;
    g.bench_function("get/raw_heed", |b| {
        let rtxn = raw.env.read_txn().unwrap();
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(touch(raw.db.get(&rtxn, &key(i)).unwrap().unwrap()))
        })
    });
    g.bench_function("get/kvm_lmdb", |b| {
        let snap = kvm.snapshot().unwrap();
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(touch(snap.get(&key(i)).unwrap().unwrap().value()))
        })
    });

    // 1,000 contiguous keys from a random start.
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("scan_1000/raw_heed", |b| {
        let rtxn = raw.env.read_txn().unwrap();
        b.iter(|| {
            i = (i + 7919) % n;
            let start = key(i);
            let range = (std::ops::Bound::Included(&start[..]), std::ops::Bound::Unbounded);
            let mut total = 0;
            for kv in raw.db.range(&rtxn, &range).unwrap().take(1_000) {
                total += touch(kv.unwrap().1);
            }
            black_box(total)
        })
    });
    g.bench_function("scan_1000/kvm_lmdb", |b| {
        let snap = kvm.snapshot().unwrap();
        b.iter(|| {
            i = (i + 7919) % n;
            let range = KeyRange {
                start: std::ops::Bound::Included(key(i).to_vec()),
                end: std::ops::Bound::Unbounded,
            };
            let mut total = 0;
            for kv in snap.scan(&range, ScanOptions::forward().limit(1_000)).unwrap() {
                total += touch(kv.unwrap().1.value());
            }
            black_box(total)
        })
    });

    // One record per commit (no fsync on either side: this measures the layer, not the disk).
    g.throughput(Throughput::Elements(1));
    let mut next = n;
    g.bench_function("put_single_commit/raw_heed", |b| {
        b.iter(|| {
            next += 1;
            let mut w = raw.env.write_txn().unwrap();
            raw.db.put(&mut w, &key(next), &VALUE).unwrap();
            w.commit().unwrap();
        })
    });
    g.bench_function("put_single_commit/kvm_lmdb", |b| {
        b.iter(|| {
            next += 1;
            kvm.commit(&AtomicBatch::new().set(&key(next), &VALUE)).unwrap();
        })
    });

    // 1,000 records per commit.
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("put_batch_1000/raw_heed", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                next
            },
            |base| {
                let mut w = raw.env.write_txn().unwrap();
                for j in 0..1_000 {
                    raw.db.put(&mut w, &key(base + j), &VALUE).unwrap();
                }
                w.commit().unwrap();
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("put_batch_1000/kvm_lmdb", |b| {
        b.iter_batched(
            || {
                next += 1_000;
                let mut batch = AtomicBatch::new();
                for j in 0..1_000 {
                    batch = batch.set(&key(next + j), &VALUE);
                }
                batch
            },
            |batch| kvm.commit(&batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
    durable_concurrent(c);
}

/// 8 threads each committing one record at a time with fsync on: raw heed pays two syncs per
/// commit; KVM's group commit lets concurrent commits share them.
fn durable_concurrent(c: &mut Criterion) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let Raw { env: raw_env, db: raw_db } = open_raw(&dir.path().join("raw-sync.mdb"), true);
    let kvm = LmdbEngine::open(dir.path().join("kvm-sync.kvm"), LmdbOptions::default()).unwrap();
    let mut g = c.benchmark_group("durable_8_threads");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(THREADS * PER_THREAD));
    let counter = std::sync::atomic::AtomicU64::new(0);
    // Each sample: THREADS threads each make PER_THREAD commits of one fresh key.
    let timed = |commit_one: &(dyn Fn(u64) + Sync), iters: u64| {
        let start = std::time::Instant::now();
        for _ in 0..iters {
            std::thread::scope(|s| {
                for _ in 0..THREADS {
                    s.spawn(|| {
                        for _ in 0..PER_THREAD {
                            commit_one(counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
                        }
                    });
                }
            });
        }
        start.elapsed()
    };
    let raw_commit = |i: u64| {
        let mut w = raw_env.write_txn().unwrap();
        raw_db.put(&mut w, &key(i), &VALUE).unwrap();
        w.commit().unwrap();
    };
    let kvm_commit = |i: u64| {
        kvm.commit(&AtomicBatch::new().set(&key(i), &VALUE)).unwrap();
    };
    g.bench_function("raw_heed", |b| b.iter_custom(|iters| timed(&raw_commit, iters)));
    g.bench_function("kvm_lmdb", |b| b.iter_custom(|iters| timed(&kvm_commit, iters)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
