//! Many threads committing to one counter: no update is lost, on LMDB directly and through a
//! wrapper that makes commits conflict at random (retried by `transact`).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::thread;

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::{
    transact, AtomicBatch, Durability, Engine, FaultyEngine, LmdbEngine, LmdbOptions, MemoryEngine,
    Value,
};

const THREADS: u64 = 8;

fn counter_key() -> Vec<u8> {
    tuple::encode(&[KeyPart::from("counter")])
}

fn lmdb(dir: &tempfile::TempDir) -> LmdbEngine {
    let opts = LmdbOptions { durability: Durability::Process, ..LmdbOptions::default() };
    LmdbEngine::open(dir.path().join("c.kvm"), opts).unwrap()
}

fn read_counter(e: &dyn Engine) -> u64 {
    let snap = e.snapshot().unwrap();
    let entry = snap.get(&counter_key()).unwrap().unwrap();
    Value::decode_counter(entry.value()).unwrap()
}

/// Each of 8 threads commits `per_thread` times through `op`.
fn hammer<E: Engine + 'static>(engine: Arc<E>, per_thread: u64, op: fn(&E)) {
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let e = engine.clone();
            thread::spawn(move || {
                for _ in 0..per_thread {
                    op(&e);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sum_from_8_threads_is_exact_on_lmdb() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(lmdb(&dir));
    hammer(e.clone(), 10_000, |e| {
        e.commit(&AtomicBatch::new().sum(&counter_key(), 1)).unwrap();
    });
    assert_eq!(read_counter(e.as_ref()), 80_000);
}

#[test]
fn sum_with_injected_conflicts_and_retries_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(FaultyEngine::new(lmdb(&dir), 0.3, 42));
    hammer(e.clone(), 10_000, |e| {
        transact(e, 1_000, |_| Ok((AtomicBatch::new().sum(&counter_key(), 1), ()))).unwrap();
    });
    assert_eq!(read_counter(e.as_ref()), 80_000);
    assert!(e.injected() > 10_000, "faults were injected: {}", e.injected());
}

/// Read-modify-write guarded by a versionstamp check: real conflicts (threads racing for the
/// one key) plus injected ones, and still every increment lands exactly once.
fn checked_increment<E: Engine>(e: &E) {
    let key = counter_key();
    transact(e, 100_000, |snap| {
        let (current, vs) = match snap.get(&key)? {
            Some(en) => (Value::decode_counter(en.value()).unwrap(), Some(en.versionstamp())),
            None => (0, None),
        };
        let batch =
            AtomicBatch::new().check(&key, vs).set(&key, &Value::encode_counter(current + 1));
        Ok((batch, ()))
    })
    .unwrap();
}

#[test]
fn checked_read_modify_write_is_exact_on_lmdb_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(FaultyEngine::new(lmdb(&dir), 0.2, 7));
    hammer(e.clone(), 2_000, checked_increment);
    assert_eq!(read_counter(e.as_ref()), 16_000);
}

#[test]
fn checked_read_modify_write_is_exact_on_memory_with_faults() {
    let e = Arc::new(FaultyEngine::new(MemoryEngine::new(), 0.2, 9));
    hammer(e.clone(), 2_000, checked_increment);
    assert_eq!(read_counter(e.as_ref()), 16_000);
}

/// Durable commits from 8 threads share transactions, and a batch that fails inside a group
/// leaves no trace while its neighbours commit.
#[test]
fn group_commit_shares_syncs_and_isolates_failures() {
    let dir = tempfile::tempdir().unwrap();
    let e = Arc::new(LmdbEngine::open(dir.path().join("g.kvm"), LmdbOptions::default()).unwrap());
    let text = tuple::encode(&[KeyPart::from("text")]);
    e.commit(&AtomicBatch::new().set(&text, b"not a counter")).unwrap();
    let start = e.snapshot().unwrap().versionstamp();
    let handles: Vec<_> = (0..8i64)
        .map(|t| {
            let e = e.clone();
            thread::spawn(move || {
                let mut ok = 0u64;
                for i in 0..100i64 {
                    let key = tuple::encode(&[KeyPart::from("g"), t.into(), i.into()]);
                    let mut batch = AtomicBatch::new().set(&key, b"x").sum(&counter_key(), 1);
                    if i % 3 == 0 {
                        // Fails its check: nothing of it may land.
                        let taken = tuple::encode(&[KeyPart::from("taken")]);
                        batch = batch.check(&taken, None).set(&taken, b"1");
                    } else if i % 10 == 1 {
                        // Fails while deciding its writes (after its set and its sum): none of
                        // them may land.
                        batch = batch.sum(&tuple::encode(&[KeyPart::from("text")]), 1);
                    }
                    if e.commit(&batch).is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let committed: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    // "taken" is absent at first, so the first batch with the check wins and later ones fail.
    assert!(committed >= 8 * 56, "{committed}");
    for t in 0..8i64 {
        for i in (1..100i64).step_by(10).filter(|i| i % 3 != 0) {
            let key = tuple::encode(&[KeyPart::from("g"), t.into(), i.into()]);
            let snap = e.snapshot().unwrap();
            assert!(snap.get(&key).unwrap().is_none(), "a failed batch left its write {t}/{i}");
        }
    }
    assert_eq!(read_counter(e.as_ref()), committed, "every committed sum landed, no other");
    let feed = e.changes_since(start, usize::MAX).unwrap();
    assert_eq!(feed.len() as u64, committed, "one versionstamp per committed batch");
    assert!(feed.windows(2).all(|w| w[0].versionstamp < w[1].versionstamp));
    let stats = e.commit_stats();
    assert_eq!(stats.batches, 801);
    eprintln!("group commit: {stats:?}");
    assert!(
        stats.transactions < stats.batches,
        "concurrent durable commits shared syncs: {stats:?}"
    );
}
