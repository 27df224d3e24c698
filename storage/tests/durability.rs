//! Durability: a child process commits numbered transactions and prints each acknowledged
//! number; the parent SIGKILLs it mid-stream, reopens the database and finds every
//! acknowledged commit, and no torn one.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use kvm_storage::tuple::{self, KeyPart};
use kvm_storage::{AtomicBatch, Engine, KeyRange, LmdbEngine, LmdbOptions, ScanOptions, Value};

const CHILD_ENV: &str = "KVM_DURABILITY_CHILD_DB";

fn n_key(i: i64) -> Vec<u8> {
    tuple::encode(&[KeyPart::from("n"), KeyPart::Int(i)])
}

fn count_key() -> Vec<u8> {
    tuple::encode(&[KeyPart::from("count")])
}

/// The child: runs only when the parent starts this test binary with the env var set.
#[test]
#[ignore = "run by kill_mid_stream_loses_no_acknowledged_commit as a child process"]
fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let e = LmdbEngine::open(path, LmdbOptions::default()).unwrap();
    let mut out = std::io::stdout().lock();
    for i in 0..1_000_000i64 {
        // Each commit writes its number and bumps the count: a torn commit would leave the
        // count and the number of keys apart.
        e.commit(&AtomicBatch::new().set(&n_key(i), &Value::Int(i).encode()).sum(&count_key(), 1))
            .unwrap();
        writeln!(out, "ack {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill_mid_stream_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.kvm");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            acked.push(n.parse::<i64>().unwrap());
            if acked.len() == 300 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
                           // Numbers printed before the kill were acknowledged too.
    for line in lines {
        if let Some(n) = line.unwrap().strip_prefix("ack ") {
            acked.push(n.parse().unwrap());
        }
    }
    child.wait().unwrap();
    assert!(acked.len() >= 300, "the child acknowledged {} commits", acked.len());

    let e = LmdbEngine::open(&db, LmdbOptions::default()).unwrap();
    let snap = e.snapshot().unwrap();
    for &i in &acked {
        assert!(snap.get(&n_key(i)).unwrap().is_some(), "acknowledged commit {i} was lost");
    }
    let present = snap
        .scan(&KeyRange::prefix(&tuple::encode(&[KeyPart::from("n")])), ScanOptions::forward())
        .unwrap()
        .count() as u64;
    let count = Value::decode_counter(snap.get(&count_key()).unwrap().unwrap().value()).unwrap();
    assert_eq!(count, present, "no torn commit: the count matches the numbers present");
    assert!(present >= acked.len() as u64);
    assert_eq!(snap.versionstamp().seq(), present, "one versionstamp per surviving commit");
}
