//! Two processes writing the same LMDB database at once lose no commit: blind counter sums,
//! check-guarded read-modify-writes and per-process keys all add up afterwards.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::{
    transact, AtomicBatch, Durability, Engine, KeyRange, LmdbEngine, LmdbOptions, ScanOptions,
    Value,
};

const CHILD_ENV: &str = "KVM_MULTIPROCESS_CHILD";
const PER_PROCESS: i64 = 5_000;

fn key(parts: &[KeyPart]) -> Vec<u8> {
    tuple::encode(parts)
}

#[test]
#[ignore = "run by two_processes_lose_no_commit as a child process"]
fn child_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let (path, name) = spec.split_once('|').unwrap();
    let opts = LmdbOptions { durability: Durability::Process, ..LmdbOptions::default() };
    let e = LmdbEngine::open(path, opts).unwrap();
    let rmw = key(&["rmw".into()]);
    for i in 0..PER_PROCESS {
        e.commit(
            &AtomicBatch::new()
                .sum(&key(&["sum".into()]), 1)
                .set(&key(&["p".into(), name.into(), i.into()]), b""),
        )
        .unwrap();
        transact(&e, 100_000, |snap| {
            let (n, vs) = match snap.get(&rmw)? {
                Some(en) => (Value::decode_counter(en.value()).unwrap(), Some(en.versionstamp())),
                None => (0, None),
            };
            Ok((AtomicBatch::new().check(&rmw, vs).set(&rmw, &Value::encode_counter(n + 1)), ()))
        })
        .unwrap();
    }
}

#[test]
fn two_processes_lose_no_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.kvm");
    // Create the file first so that both children open an existing database.
    drop(LmdbEngine::open(&db, LmdbOptions::default()).unwrap());
    let children: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "child_worker", "--ignored", "--test-threads=1"])
                .env(CHILD_ENV, format!("{}|{name}", db.display()))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
    let e = LmdbEngine::open(&db, LmdbOptions::default()).unwrap();
    let snap = e.snapshot().unwrap();
    let counter = |k: &[u8]| Value::decode_counter(snap.get(k).unwrap().unwrap().value()).unwrap();
    assert_eq!(counter(&key(&["sum".into()])), 2 * PER_PROCESS as u64);
    assert_eq!(counter(&key(&["rmw".into()])), 2 * PER_PROCESS as u64);
    let keys = snap.scan(&KeyRange::prefix(&key(&["p".into()])), ScanOptions::forward()).unwrap();
    assert_eq!(keys.count() as i64, 2 * PER_PROCESS);
    // Each process commits twice per step; every commit got its own versionstamp.
    assert_eq!(snap.versionstamp().seq(), 4 * PER_PROCESS as u64);
    // The change feed saw every commit of both processes, in order.
    let feed = e.changes_since(kvm_storage::Versionstamp::ZERO, usize::MAX).unwrap();
    assert_eq!(feed.len() as i64, 4 * PER_PROCESS);
    assert!(feed.windows(2).all(|w| w[0].versionstamp < w[1].versionstamp));
}
