//! LMDB-specific behaviour beyond the conformance suite: persistence across reopen, one shared
//! environment per path, and map growth.

#![allow(clippy::unwrap_used)]

use kvm_storage::{AtomicBatch, Durability, Engine, LmdbEngine, LmdbOptions, Versionstamp};

fn opts() -> LmdbOptions {
    LmdbOptions { durability: Durability::Process, ..LmdbOptions::default() }
}

#[test]
fn data_feed_and_versionstamps_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.kvm");
    let vs1 = {
        let e = LmdbEngine::open(&path, opts()).unwrap();
        e.commit(&AtomicBatch::new().set(b"k", b"v")).unwrap()
    };
    assert!(path.is_file(), "one file per database");
    let e = LmdbEngine::open(&path, opts()).unwrap();
    let snap = e.snapshot().unwrap();
    assert_eq!(snap.get(b"k").unwrap().unwrap().value(), b"v");
    assert_eq!(snap.versionstamp(), vs1);
    drop(snap);
    let vs2 = e.commit(&AtomicBatch::new().set(b"k", b"w")).unwrap();
    assert!(vs2 > vs1);
    assert_eq!(e.changes_since(Versionstamp::ZERO, 10).unwrap().len(), 2);
}

#[test]
fn handles_on_one_path_share_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.kvm");
    let a = LmdbEngine::open(&path, opts()).unwrap();
    let b = LmdbEngine::open(dir.path().join(".").join("db.kvm"), opts()).unwrap();
    a.commit(&AtomicBatch::new().set(b"k", b"v")).unwrap();
    assert!(b.snapshot().unwrap().get(b"k").unwrap().is_some());
}

#[test]
fn map_grows_when_full() {
    let dir = tempfile::tempdir().unwrap();
    let e =
        LmdbEngine::open(dir.path().join("db.kvm"), LmdbOptions { map_size: 256 * 1024, ..opts() })
            .unwrap();
    let start = e.map_size();
    let value = vec![1u8; 8192];
    for i in 0..200u32 {
        e.commit(&AtomicBatch::new().set(&i.to_be_bytes(), &value)).unwrap();
    }
    assert!(e.map_size() > start, "map grew from {start} to {}", e.map_size());
    assert_eq!(e.snapshot().unwrap().get(&199u32.to_be_bytes()).unwrap().unwrap().value(), value);
}

#[test]
fn a_held_snapshot_blocks_growth_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let e =
        LmdbEngine::open(dir.path().join("db.kvm"), LmdbOptions { map_size: 128 * 1024, ..opts() })
            .unwrap();
    let held = e.snapshot().unwrap();
    let value = vec![1u8; 8192];
    let mut err = None;
    for i in 0..200u32 {
        if let Err(e) = e.commit(&AtomicBatch::new().set(&i.to_be_bytes(), &value)) {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the map must fill up");
    assert_eq!(err.code(), "storage.map_full");
    assert!(err.to_string().contains("snapshots open"), "{err}");
    drop(held);
}
